//! The shared bad-input cases (`conformance/bad_cases.json`) through the Rust binding.
//!
//! Every case must give an `Err` with the expected status (and, when the library refused it,
//! the library's message), leave every output and input element as it was, and keep the
//! process alive. Cases go through the safe API (`Context`, `TensorView`, `TensorViewMut`,
//! `AttentionOptions`) unless the file marks them `raw` for Rust: those cannot be written with
//! the safe types (negative extents or strides, unknown dtype codes, NULL data, option struct
//! sizes, unknown enum values, NULL contexts), so the test fills the `umfa::sys` structs
//! directly. Cases the file skips for Rust say why (e.g. the borrow checker forbids them).
//!
//! The file lives in the repository's `conformance/` directory, or wherever
//! `UMFA_CONFORMANCE_DIR` points; without it (a packaged crate) the test says so and passes.

mod common;

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::os::raw::c_void;
use std::path::PathBuf;

use common::Json;
use umfa::{
    sys, AttentionOptions, Backend, Bf16, Context, ContextOptions, DType, Device, Error, MaskMode,
    Status, TensorView, TensorViewMut, Varlen, Window, F16,
};

const STATUS_NAMES: [&str; 21] = [
    "OK",
    "NULL_CONTEXT",
    "NULL_POINTER",
    "INVALID_ARGUMENT",
    "INVALID_RANK",
    "SHAPE_MISMATCH",
    "HEADS_NOT_DIVISIBLE",
    "HEAD_DIM_OUT_OF_RANGE",
    "INVALID_STRIDE",
    "UNSUPPORTED_DTYPE",
    "DEVICE_MISMATCH",
    "STRUCT_VERSION",
    "SIZE_OVERFLOW",
    "OUT_OF_MEMORY",
    "BACKEND_UNAVAILABLE",
    "UNSUPPORTED",
    "BACKEND_ERROR",
    "WORKSPACE_LIMIT",
    "INVALID_SEQLENS",
    "INVALID_HANDLE",
    "INTERNAL",
];
const SHORT_BY: usize = 24;
const MAX_ELEMENTS: i64 = 1 << 16;

fn status_of(name: &str) -> Status {
    let code = STATUS_NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("unknown status {name}"));
    Status::from_code(code as i32).expect("not OK")
}

fn cases_file() -> Option<PathBuf> {
    let dir = match std::env::var_os("UMFA_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../conformance"),
    };
    let file = dir.join("bad_cases.json");
    file.is_file().then_some(file)
}

fn members(j: &Json) -> BTreeMap<String, Json> {
    match j {
        Json::Obj(m) => m.clone(),
        Json::Null => BTreeMap::new(),
        other => panic!("expected an object, got {other:?}"),
    }
}

fn merged(base: &Json, over: &Json) -> BTreeMap<String, Json> {
    let mut m = members(base);
    m.extend(members(over));
    m
}

fn number(j: &Json) -> f64 {
    match j {
        Json::Str(s) if s == "nan" => f64::NAN,
        Json::Str(s) if s == "inf" => f64::INFINITY,
        Json::Str(s) if s == "-inf" => f64::NEG_INFINITY,
        other => other.f64(),
    }
}

/// Typed storage for one tensor.
enum Data {
    F32(Vec<f32>),
    F16(Vec<F16>),
    Bf16(Vec<Bf16>),
    Bool(Vec<u8>),
    I32(Vec<i32>),
    /// An unknown dtype code: 4-byte elements.
    Other(Vec<u32>),
}

impl Data {
    fn ptr(&self) -> *const c_void {
        match self {
            Data::F32(d) => d.as_ptr().cast(),
            Data::F16(d) => d.as_ptr().cast(),
            Data::Bf16(d) => d.as_ptr().cast(),
            Data::Bool(d) => d.as_ptr().cast(),
            Data::I32(d) => d.as_ptr().cast(),
            Data::Other(d) => d.as_ptr().cast(),
        }
    }

    fn byte_len(&self) -> usize {
        match self {
            Data::F32(d) => d.len() * 4,
            Data::F16(d) => d.len() * 2,
            Data::Bf16(d) => d.len() * 2,
            Data::Bool(d) => d.len(),
            Data::I32(d) => d.len() * 4,
            Data::Other(d) => d.len() * 4,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        // SAFETY: plain-old-data elements, `byte_len` bytes from a live Vec.
        unsafe { std::slice::from_raw_parts(self.ptr().cast::<u8>(), self.byte_len()).to_vec() }
    }
}

/// One tensor of a case: memory (covering every element the view reaches with non-negative
/// strides) and the view's fields.
struct Tensor {
    data: Data,
    dtype: i32,
    shape: Vec<i64>,
    strides: Vec<i64>,
    cuda: bool,
    null: bool,
    same_as: Option<String>,
}

impl Tensor {
    fn new(spec: &BTreeMap<String, Json>, output: bool) -> Tensor {
        let dtype = match spec.get("dtype").expect("dtype") {
            Json::Str(s) => match s.as_str() {
                "f32" => sys::UMFA_DTYPE_F32 as i32,
                "f16" => sys::UMFA_DTYPE_F16 as i32,
                "bf16" => sys::UMFA_DTYPE_BF16 as i32,
                "bool" => sys::UMFA_DTYPE_BOOL as i32,
                "i32" => sys::UMFA_DTYPE_I32 as i32,
                other => panic!("unknown dtype {other}"),
            },
            other => other.i64() as i32,
        };
        let shape: Vec<i64> = spec["shape"].arr().iter().map(Json::i64).collect();
        let strides: Vec<i64> = match spec.get("strides") {
            Some(s) => s.arr().iter().map(Json::i64).collect(),
            None => {
                let mut st = vec![0i64; shape.len()];
                let mut acc = 1i64;
                for i in (0..shape.len()).rev() {
                    st[i] = acc;
                    acc = acc.saturating_mul(shape[i].max(1));
                }
                st
            }
        };
        let mut reach: i128 = 1;
        let mut bounded = true;
        for (&n, &s) in shape.iter().zip(&strides) {
            if n < 0 {
                bounded = false;
            }
            if n > 0 && s > 0 {
                reach += (n as i128 - 1) * s as i128;
            }
        }
        let mode = spec
            .get("data")
            .map(|d| d.str().to_string())
            .unwrap_or_default();
        let mut count = if bounded && reach <= MAX_ELEMENTS as i128 {
            reach as usize
        } else {
            64
        };
        if mode == "short" {
            count -= SHORT_BY;
        }
        let values: Vec<i32> = spec
            .get("values")
            .map(|v| v.arr().iter().map(|x| x.i64() as i32).collect())
            .unwrap_or_default();
        let data = match dtype as u32 {
            sys::UMFA_DTYPE_F32 => Data::F32(vec![if output { 12345.0 } else { 0.25 }; count]),
            sys::UMFA_DTYPE_F16 => {
                Data::F16(vec![
                    F16::from_f32(if output { 12345.0 } else { 0.25 });
                    count
                ])
            }
            sys::UMFA_DTYPE_BF16 => {
                Data::Bf16(vec![
                    Bf16::from_f32(if output { 12345.0 } else { 0.25 });
                    count
                ])
            }
            sys::UMFA_DTYPE_BOOL => Data::Bool(vec![1; count]),
            sys::UMFA_DTYPE_I32 => {
                let mut v = vec![0i32; count];
                for (d, s) in v.iter_mut().zip(&values) {
                    *d = *s;
                }
                Data::I32(v)
            }
            _ => Data::Other(vec![0xA7A7_A7A7; count]),
        };
        Tensor {
            data,
            dtype,
            shape,
            strides,
            cuda: spec
                .get("device")
                .map(|d| d.str() == "cuda")
                .unwrap_or(false),
            null: mode == "null",
            same_as: mode.strip_prefix("same_as:").map(str::to_string),
        }
    }

    fn usizes(v: &[i64]) -> Vec<usize> {
        v.iter()
            .map(|&x| usize::try_from(x).expect("negative: mark the case raw for rust"))
            .collect()
    }

    /// A read-only view through the safe API (or its unsafe raw-parts constructor for device
    /// memory, which the safe types cannot describe).
    fn view(&self) -> umfa::Result<TensorView<'_>> {
        let (shape, strides) = (Self::usizes(&self.shape), Self::usizes(&self.strides));
        if self.cuda {
            let dtype = DType::from_code(self.dtype).expect("known dtype");
            // SAFETY: the library refuses the device before reading (a CPU context).
            return unsafe {
                TensorView::from_raw_parts(
                    self.data.ptr(),
                    dtype,
                    Device::Cuda(0),
                    &shape,
                    &strides,
                )
            };
        }
        match &self.data {
            Data::F32(d) => TensorView::with_strides(d, &shape, &strides),
            Data::F16(d) => TensorView::with_strides(d, &shape, &strides),
            Data::Bf16(d) => TensorView::with_strides(d, &shape, &strides),
            Data::Bool(d) => TensorView::with_strides(d, &shape, &strides),
            Data::I32(d) => TensorView::with_strides(d, &shape, &strides),
            Data::Other(_) => panic!("unknown dtype: mark the case raw for rust"),
        }
    }

    fn view_mut(&mut self) -> umfa::Result<TensorViewMut<'_>> {
        let (shape, strides) = (Self::usizes(&self.shape), Self::usizes(&self.strides));
        match &mut self.data {
            Data::F32(d) => TensorViewMut::with_strides(d, &shape, &strides),
            Data::F16(d) => TensorViewMut::with_strides(d, &shape, &strides),
            Data::Bf16(d) => TensorViewMut::with_strides(d, &shape, &strides),
            _ => panic!("outputs are float tensors"),
        }
    }

    /// The raw C view (data may be another tensor's, for `same_as`).
    fn raw(&self, data: *const c_void) -> sys::umfa_tensor {
        let mut t = sys::umfa_tensor {
            data: if self.null {
                std::ptr::null_mut()
            } else {
                data as *mut c_void
            },
            dtype: self.dtype,
            device: if self.cuda {
                sys::UMFA_DEVICE_CUDA as i32
            } else {
                sys::UMFA_DEVICE_CPU as i32
            },
            device_index: 0,
            rank: self.shape.len() as i32,
            shape: [0; 4],
            strides: [0; 4],
        };
        for i in 0..self.shape.len().min(4) {
            t.shape[i] = self.shape[i];
            t.strides[i] = self.strides[i];
        }
        t
    }
}

struct Case<'a> {
    c: &'a Json,
    doc: &'a Json,
}

impl Case<'_> {
    fn id(&self) -> &str {
        self.c.get("id").str()
    }

    fn rule(&self) -> &Json {
        self.c.get("bindings").get("rust")
    }

    fn expect(&self, result: Result<(), Error>) -> Result<(), String> {
        let err = match result {
            Ok(()) => return Err("no error".into()),
            Err(e) => e,
        };
        let want_name = if self.rule().get("status").is_null() {
            self.c.get("status").str()
        } else {
            self.rule().get("status").str()
        };
        let want = status_of(want_name);
        if err.status() != want {
            return Err(format!(
                "got {:?} ({}), expected {want:?}",
                err.status(),
                err.message()
            ));
        }
        if err.message().is_empty() {
            return Err("empty message".into());
        }
        let by_binding = self.rule().get("binding").bool_or(false);
        if !by_binding {
            if !matches!(err, Error::Native { .. }) {
                return Err(format!("expected the library's error, got {err:?}"));
            }
            if let Json::Str(m) = self.c.get("message") {
                if !err.message().contains(m.as_str()) {
                    return Err(format!(
                        "message {:?} does not contain {m:?}",
                        err.message()
                    ));
                }
            }
        }
        Ok(())
    }

    fn run(&self) -> Result<Option<String>, String> {
        let rule = self.rule();
        if let Json::Str(reason) = rule.get("skip") {
            return Ok(Some(reason.clone()));
        }
        if matches!(self.c.get("requires"), Json::Str(r) if r == "no_cuda")
            && umfa::backend_available(Backend::Cuda)
                .map(|(a, _)| a)
                .unwrap_or(false)
        {
            return Ok(Some("CUDA is available here".into()));
        }
        let raw = rule.get("raw").bool_or(false);
        match self.c.get("call").str() {
            "context_create" => self.context_create(raw).map(|_| None),
            "forward" | "backward" => self.attention(raw).map(|_| None),
            other => Err(format!(
                "call {other} is not expressible in Rust without a skip"
            )),
        }
    }

    fn context_create(&self, raw: bool) -> Result<(), String> {
        let co = self.c.get("context_options");
        let int = |k: &str| {
            if co.get(k).is_null() {
                0
            } else {
                co.get(k).i64()
            }
        };
        if raw {
            let o = sys::umfa_context_options {
                struct_size: (std::mem::size_of::<sys::umfa_context_options>() as i64
                    + int("struct_size_delta")) as u32,
                backend: int("backend") as u32,
                device_index: int("device_index") as i32,
                num_threads: int("num_threads") as i32,
                workspace_limit_bytes: 0,
            };
            let sentinel = 0x1234usize as *mut sys::umfa_context;
            let mut out = sentinel;
            // SAFETY: valid pointers for the call.
            let st = unsafe { sys::umfa_context_create(&o, &mut out) };
            if out != sentinel {
                return Err("a failed create wrote *out_context".into());
            }
            return self.expect(native(st, std::ptr::null()));
        }
        let backend = match int("backend") {
            0 => Backend::Auto,
            1 => Backend::Cpu,
            2 => Backend::Cuda,
            b => return Err(format!("backend {b} needs the raw path")),
        };
        let opts = ContextOptions::new(backend)
            .num_threads(int("num_threads") as i32)
            .device_index(int("device_index") as i32);
        self.expect(Context::with_options(&opts).map(|_| ()))
    }

    fn attention(&self, raw: bool) -> Result<(), String> {
        let backward = self.c.get("call").str() == "backward";
        let varlen = self.c.get("varlen").bool_or(false);
        let base = self
            .doc
            .get("base")
            .get(if varlen { "varlen" } else { "dense" });
        let roles: &[&str] = if backward {
            &["q", "k", "v", "out", "dout", "lse", "dq", "dk", "dv"]
        } else {
            &["q", "k", "v", "out", "lse"]
        };
        let outputs: &[&str] = if backward {
            &["dq", "dk", "dv"]
        } else {
            &["out", "lse"]
        };
        let tensors = self.c.get("tensors");
        let mut ts: BTreeMap<String, Tensor> = BTreeMap::new();
        for &role in roles {
            let over = tensors.get(role);
            if matches!(tensors, Json::Obj(m) if m.contains_key(role)) && over.is_null() {
                continue; // a NULL tensor pointer
            }
            ts.insert(
                role.into(),
                Tensor::new(&merged(base.get(role), over), outputs.contains(&role)),
            );
        }
        let opts = self.c.get("options");
        let mut ots: BTreeMap<String, Tensor> = BTreeMap::new();
        for name in ["attn_mask", "alibi_slopes", "cu_seqlens_q", "cu_seqlens_k"] {
            let over = opts.get(name);
            let given = matches!(opts, Json::Obj(m) if m.contains_key(name));
            if given && over.is_null() {
                continue;
            }
            if !given && base.get(name).is_null() {
                continue;
            }
            ots.insert(
                name.into(),
                Tensor::new(&merged(base.get(name), over), false),
            );
        }
        let before: Vec<(String, Vec<u8>)> = ts
            .iter()
            .chain(ots.iter())
            .map(|(k, t)| (k.clone(), t.data.bytes()))
            .collect();
        let cj = self.c.get("context");
        let limit = if cj.get("workspace_limit_bytes").is_null() {
            0
        } else {
            cj.get("workspace_limit_bytes").i64() as u64
        };
        let ctx = Context::with_options(
            &ContextOptions::new(Backend::Cpu)
                .num_threads(2)
                .workspace_limit_bytes(limit),
        )
        .map_err(|e| e.to_string())?;
        let handle = match cj.get("handle") {
            Json::Str(h) => Some(h.clone()),
            _ => None,
        };
        let result = if raw || handle.is_some() {
            self.raw_call(&ctx, handle.as_deref(), backward, &ts, &ots, opts)
        } else {
            self.safe_call(&ctx, backward, &mut ts, &ots, opts)
        };
        self.expect(result)?;
        drop(ctx);
        for (k, b) in before {
            let now = ts
                .get(&k)
                .or_else(|| ots.get(&k))
                .expect("tensor")
                .data
                .bytes();
            if now != b {
                return Err(format!("{k} was written by a rejected call"));
            }
        }
        Ok(())
    }

    fn safe_call(
        &self,
        ctx: &Context,
        backward: bool,
        ts: &mut BTreeMap<String, Tensor>,
        ots: &BTreeMap<String, Tensor>,
        o: &Json,
    ) -> Result<(), Error> {
        let mut opts = AttentionOptions::default();
        if !o.get("mask_mode").is_null() {
            opts.mask_mode = match o.get("mask_mode").i64() {
                0 => MaskMode::None,
                1 => MaskMode::CausalTopLeft,
                2 => MaskMode::CausalBottomRight,
                m => panic!("mask_mode {m}: mark the case raw for rust"),
            };
        }
        if !o.get("softmax_scale").is_null() {
            opts.softmax_scale = Some(number(o.get("softmax_scale")) as f32);
        }
        if !o.get("softcap").is_null() {
            opts.softcap = number(o.get("softcap")) as f32;
        }
        if o.get("has_window").bool_or(false) {
            opts.window = Some(Window::new(
                o.get("window_left").i64(),
                o.get("window_right").i64(),
            ));
        }
        for f in ["flags", "struct_size", "struct_size_delta"] {
            assert!(o.get(f).is_null(), "{f} needs the raw path");
        }
        if let Some(m) = ots.get("attn_mask") {
            opts.attn_mask = Some(m.view()?);
        }
        if let Some(a) = ots.get("alibi_slopes") {
            opts.alibi_slopes = Some(a.view()?);
        }
        if let (Some(q), Some(k)) = (ots.get("cu_seqlens_q"), ots.get("cu_seqlens_k")) {
            let mut v = Varlen::new(q.view()?, k.view()?);
            if !o.get("max_seqlen_q").is_null() {
                v.max_seqlen_q = o.get("max_seqlen_q").i64();
            }
            if !o.get("max_seqlen_k").is_null() {
                v.max_seqlen_k = o.get("max_seqlen_k").i64();
            }
            opts.varlen = Some(v);
        }
        if backward {
            let mut dq = ts.remove("dq").expect("dq");
            let mut dk = ts.remove("dk").expect("dk");
            let mut dv = ts.remove("dv").expect("dv");
            let r = (|| {
                let (mut vdq, mut vdk, mut vdv) = (dq.view_mut()?, dk.view_mut()?, dv.view_mut()?);
                let lse = ts
                    .get("lse")
                    .expect("lse: a missing lse needs a skip")
                    .view()?;
                ctx.backward(
                    &ts["q"].view()?,
                    &ts["k"].view()?,
                    &ts["v"].view()?,
                    &ts["out"].view()?,
                    &ts["dout"].view()?,
                    &lse,
                    &mut vdq,
                    &mut vdk,
                    &mut vdv,
                    &opts,
                )
            })();
            ts.insert("dq".into(), dq);
            ts.insert("dk".into(), dk);
            ts.insert("dv".into(), dv);
            return r;
        }
        let mut out = ts.remove("out").expect("out: a missing out needs a skip");
        let mut lse = ts.remove("lse");
        let r = (|| {
            let mut vout = out.view_mut()?;
            let mut vlse = match lse.as_mut() {
                Some(l) => Some(l.view_mut()?),
                None => None,
            };
            ctx.forward(
                &ts["q"].view()?,
                &ts["k"].view()?,
                &ts["v"].view()?,
                &mut vout,
                vlse.as_mut(),
                &opts,
            )
        })();
        ts.insert("out".into(), out);
        if let Some(l) = lse {
            ts.insert("lse".into(), l);
        }
        r
    }

    fn raw_call(
        &self,
        ctx: &Context,
        handle: Option<&str>,
        backward: bool,
        ts: &BTreeMap<String, Tensor>,
        ots: &BTreeMap<String, Tensor>,
        o: &Json,
    ) -> Result<(), Error> {
        let data_of = |t: &Tensor| match &t.same_as {
            Some(other) => ts[other].data.ptr(),
            None => t.data.ptr(),
        };
        let raws: BTreeMap<&str, sys::umfa_tensor> = ts
            .iter()
            .map(|(k, t)| (k.as_str(), t.raw(data_of(t))))
            .collect();
        let oraws: BTreeMap<&str, sys::umfa_tensor> = ots
            .iter()
            .map(|(k, t)| (k.as_str(), t.raw(t.data.ptr())))
            .collect();
        let size = std::mem::size_of::<sys::umfa_attention_options>() as i64;
        let int = |k: &str, d: i64| {
            if o.get(k).is_null() {
                d
            } else {
                o.get(k).i64()
            }
        };
        let flt = |k: &str| {
            if o.get(k).is_null() {
                0.0
            } else {
                number(o.get(k)) as f32
            }
        };
        let ptr = |k: &str| {
            oraws
                .get(k)
                .map_or(std::ptr::null(), |t| t as *const sys::umfa_tensor)
        };
        let opts = sys::umfa_attention_options {
            struct_size: int("struct_size", size + int("struct_size_delta", 0)) as u32,
            mask_mode: int("mask_mode", 0) as u32,
            softmax_scale: flt("softmax_scale"),
            softcap: flt("softcap"),
            has_window: int("has_window", 0) as u32,
            flags: int("flags", 0) as u32,
            window_left: int("window_left", 0),
            window_right: int("window_right", 0),
            attn_mask: ptr("attn_mask"),
            alibi_slopes: ptr("alibi_slopes"),
            cu_seqlens_q: ptr("cu_seqlens_q"),
            cu_seqlens_k: ptr("cu_seqlens_k"),
            max_seqlen_q: int("max_seqlen_q", 0),
            max_seqlen_k: int("max_seqlen_k", 0),
            stream: std::ptr::null_mut(),
            error_message: std::ptr::null_mut(),
            error_message_capacity: 0,
        };
        let not_a_context = vec![0u64; 64];
        let c: *mut sys::umfa_context = match handle {
            Some("null") => std::ptr::null_mut(),
            Some("not_a_context") => not_a_context.as_ptr() as *mut sys::umfa_context,
            Some(other) => panic!("handle {other} needs a skip for rust"),
            None => ctx.as_raw(),
        };
        let t = |k: &str| {
            raws.get(k)
                .map_or(std::ptr::null(), |t| t as *const sys::umfa_tensor)
        };
        // SAFETY: every pointer is NULL or points at a live struct; every data pointer covers
        // what its view reaches unless the view is one the library must refuse first.
        let st = unsafe {
            if backward {
                sys::umfa_attention_backward(
                    c,
                    &opts,
                    t("q"),
                    t("k"),
                    t("v"),
                    t("out"),
                    t("dout"),
                    t("lse"),
                    t("dq"),
                    t("dk"),
                    t("dv"),
                )
            } else {
                sys::umfa_attention_forward(c, &opts, t("q"), t("k"), t("v"), t("out"), t("lse"))
            }
        };
        // Handle errors are recorded on the calling thread only.
        native(
            st,
            if handle.is_some() {
                std::ptr::null()
            } else {
                c
            },
        )
    }
}

/// A status of a raw call as the binding reports it.
fn native(st: sys::umfa_status, ctx: *const sys::umfa_context) -> Result<(), Error> {
    match Status::from_code(st) {
        None => Ok(()),
        Some(status) => {
            // SAFETY: never NULL; copied before the next call.
            let message = unsafe { CStr::from_ptr(sys::umfa_last_error(ctx)) }
                .to_string_lossy()
                .into_owned();
            Err(Error::Native { status, message })
        }
    }
}

trait BoolOr {
    fn bool_or(&self, default: bool) -> bool;
}
impl BoolOr for Json {
    fn bool_or(&self, default: bool) -> bool {
        if self.is_null() {
            default
        } else {
            self.bool()
        }
    }
}

#[test]
fn shared_bad_cases() {
    let Some(file) = cases_file() else {
        println!(
            "bad_cases: conformance/bad_cases.json not found (set UMFA_CONFORMANCE_DIR); skipped"
        );
        return;
    };
    let doc = Json::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(doc.get("format_version").i64(), 1);
    let (mut passed, mut skipped, mut failures) = (0, 0, Vec::new());
    for c in doc.get("cases").arr() {
        let case = Case { c, doc: &doc };
        match case.run() {
            Ok(None) => passed += 1,
            Ok(Some(reason)) => {
                skipped += 1;
                println!("SKIP {}: {reason}", case.id());
            }
            Err(why) => failures.push(format!("{}: {why}", case.id())),
        }
    }
    // The process is alive and computes after every rejected call.
    let ctx = Context::new(Backend::Cpu).unwrap();
    let q = vec![0.5f32; 64];
    let mut out = vec![0f32; 64];
    ctx.forward(
        &TensorView::new(&q, &[1, 4, 2, 8]).unwrap(),
        &TensorView::new(&q, &[1, 4, 2, 8]).unwrap(),
        &TensorView::new(&q, &[1, 4, 2, 8]).unwrap(),
        &mut TensorViewMut::new(&mut out, &[1, 4, 2, 8]).unwrap(),
        None,
        &AttentionOptions::default(),
    )
    .unwrap();
    assert!(out.iter().all(|&x| (x - 0.5).abs() < 1e-6));
    println!(
        "bad cases (Rust): {passed} passed, {} failed, {skipped} skipped",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
