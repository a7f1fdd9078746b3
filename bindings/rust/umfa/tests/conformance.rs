//! Runs every case of the language-neutral conformance suite (conformance/manifest.json)
//! through the safe API: forward (out, lse) and, where the case asks for it, backward
//! (dq, dk, dv), compared with the float64 reference within the manifest's tolerances.
//!
//! The suite lives in the repository's `conformance/` directory, or wherever
//! `UMFA_CONFORMANCE_DIR` points. When neither exists (e.g. in a packaged crate) the test
//! prints that it skipped and passes; with `UMFA_CONFORMANCE_DIR` set it must exist.

mod common;

use std::path::{Path, PathBuf};

use common::{Json, Npy};
use umfa::{
    AttentionOptions, Backend, Bf16, Context, ContextOptions, MaskMode, TensorView, TensorViewMut,
    Varlen, Window, F16,
};

/// This binding's skip list (format of conformance/README.md: `<id or prefix*> <reason>`).
const SKIP_LIST: &str = include_str!("conformance-skip.txt");

fn skip_reason(id: &str) -> Option<String> {
    SKIP_LIST
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find_map(|line| {
            let (pattern, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let hit = match pattern.strip_suffix('*') {
                Some(prefix) => id.starts_with(prefix),
                None => id == pattern,
            };
            hit.then(|| reason.trim().to_string())
        })
}

/// Typed storage for one tensor of a case.
enum Data {
    F32(Vec<f32>),
    F16(Vec<F16>),
    Bf16(Vec<Bf16>),
    Bool(Vec<u8>),
    I32(Vec<i32>),
}

impl Data {
    fn load(npy: &Npy, dtype: &str) -> Data {
        match dtype {
            "f32" => Data::F32(npy.f32s()),
            "f16" => Data::F16(F16::from_bits_slice(&npy.u16s()).to_vec()),
            "bf16" => Data::Bf16(Bf16::from_bits_slice(&npy.u16s()).to_vec()),
            "bool" => Data::Bool(npy.u8s()),
            "i32" => Data::I32(npy.i32s()),
            other => panic!("unknown dtype {other}"),
        }
    }

    /// Output storage of `count` elements, filled with NaN so unwritten elements show up.
    fn nan(dtype: &str, count: usize) -> Data {
        match dtype {
            "f32" => Data::F32(vec![f32::NAN; count]),
            "f16" => Data::F16(vec![F16::from_f32(f32::NAN); count]),
            "bf16" => Data::Bf16(vec![Bf16::from_f32(f32::NAN); count]),
            other => panic!("not an output dtype: {other}"),
        }
    }

    fn view(&self, shape: &[usize], strides: &[usize]) -> umfa::Result<TensorView<'_>> {
        match self {
            Data::F32(d) => TensorView::with_strides(d, shape, strides),
            Data::F16(d) => TensorView::with_strides(d, shape, strides),
            Data::Bf16(d) => TensorView::with_strides(d, shape, strides),
            Data::Bool(d) => TensorView::with_strides(d, shape, strides),
            Data::I32(d) => TensorView::with_strides(d, shape, strides),
        }
    }

    fn view_mut(&mut self, shape: &[usize], strides: &[usize]) -> umfa::Result<TensorViewMut<'_>> {
        match self {
            Data::F32(d) => TensorViewMut::with_strides(d, shape, strides),
            Data::F16(d) => TensorViewMut::with_strides(d, shape, strides),
            Data::Bf16(d) => TensorViewMut::with_strides(d, shape, strides),
            _ => panic!("not an output dtype"),
        }
    }

    fn to_f32(&self) -> Vec<f32> {
        match self {
            Data::F32(d) => d.clone(),
            Data::F16(d) => d.iter().map(|x| x.to_f32()).collect(),
            Data::Bf16(d) => d.iter().map(|x| x.to_f32()).collect(),
            Data::Bool(d) => d.iter().map(|&x| x as f32).collect(),
            Data::I32(d) => d.iter().map(|&x| x as f32).collect(),
        }
    }
}

/// One tensor of a case: its data and the logical shape/strides to view it with.
struct Tensor {
    data: Data,
    shape: Vec<usize>,
    strides: Vec<usize>,
}

impl Tensor {
    fn input(dir: &Path, spec: &Json) -> Tensor {
        let npy = Npy::read(&dir.join(spec.get("file").str())).unwrap();
        Tensor {
            data: Data::load(&npy, spec.get("dtype").str()),
            shape: spec.get("shape").usizes(),
            strides: spec.get("strides").usizes(),
        }
    }

    /// An output laid out like the expected file (same strides), in the case's output dtype.
    fn output(spec: &Json) -> Tensor {
        let shape = spec.get("shape").usizes();
        Tensor {
            data: Data::nan(spec.get("dtype").str(), shape.iter().product()),
            shape,
            strides: spec.get("strides").usizes(),
        }
    }

    fn view(&self) -> TensorView<'_> {
        self.data.view(&self.shape, &self.strides).unwrap()
    }

    fn view_mut(&mut self) -> TensorViewMut<'_> {
        self.data.view_mut(&self.shape, &self.strides).unwrap()
    }
}

/// Compares `got` with the expected file element by element (same physical layout):
/// |got - want| <= atol + rtol * |want|, infinities and NaN must match exactly.
/// Returns the worst |diff| / (atol + rtol*|expected|) over the finite elements.
fn compare(name: &str, got: &Tensor, dir: &Path, spec: &Json, tol: &Json) -> Result<f64, String> {
    let want = Npy::read(&dir.join(spec.get("file").str()))?.f32s();
    let got = got.data.to_f32();
    if want.len() != got.len() {
        return Err(format!(
            "{name}: {} elements, expected {}",
            got.len(),
            want.len()
        ));
    }
    let atol = tol.get("atol").f64();
    let rtol = tol.get("rtol").f64();
    let mut worst: Option<(usize, f64)> = None;
    let mut bad = 0usize;
    let mut ratio = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let (g, w) = (g as f64, w as f64);
        let ok = if g.is_nan() || w.is_nan() {
            false // a NaN output always fails (outputs start as NaN: it was never written)
        } else if w.is_infinite() || g.is_infinite() {
            g == w
        } else {
            let bound = atol + rtol * w.abs();
            ratio = ratio.max((g - w).abs() / bound);
            (g - w).abs() <= bound
        };
        if !ok {
            bad += 1;
            let err = if (g - w).is_nan() {
                f64::INFINITY
            } else {
                (g - w).abs()
            };
            if worst.map_or(true, |(_, e)| err > e) {
                worst = Some((i, err));
            }
        }
    }
    match worst {
        None => Ok(ratio),
        Some((i, err)) => Err(format!(
            "{name}: {bad}/{} elements off (worst at flat index {i}: got {}, expected {}, \
             |diff| {err:.3e}, atol {atol:.1e} rtol {rtol:.1e})",
            want.len(),
            got[i],
            want[i]
        )),
    }
}

/// Runs one case; returns the worst error/tolerance ratio over its outputs.
fn run_case(ctx: &Context, dir: &Path, case: &Json) -> Result<f64, String> {
    let inputs = case.get("inputs");
    let expected = case.get("expected");
    let tolerances = case.get("tolerances");
    let o = case.get("options");

    let q = Tensor::input(dir, inputs.get("q"));
    let k = Tensor::input(dir, inputs.get("k"));
    let v = Tensor::input(dir, inputs.get("v"));
    let optional = |name: &str| {
        let spec = o.get(name);
        (!spec.is_null()).then(|| Tensor::input(dir, spec))
    };
    let attn_mask = optional("attn_mask");
    let alibi = optional("alibi_slopes");
    let cu_q = optional("cu_seqlens_q");
    let cu_k = optional("cu_seqlens_k");

    let mut opts = AttentionOptions::default();
    opts.mask_mode = match o.get("mask_mode").i64() {
        0 => MaskMode::None,
        1 => MaskMode::CausalTopLeft,
        2 => MaskMode::CausalBottomRight,
        other => return Err(format!("unknown mask_mode {other}")),
    };
    let scale = o.get("softmax_scale").f64() as f32;
    opts.softmax_scale = (scale != 0.0).then_some(scale);
    opts.softcap = o.get("softcap").f64() as f32;
    if o.get("has_window").bool() {
        opts.window = Some(Window::new(
            o.get("window_left").i64(),
            o.get("window_right").i64(),
        ));
    }
    opts.deterministic = o.get("flags").i64() & 1 != 0;
    opts.attn_mask = attn_mask.as_ref().map(Tensor::view);
    opts.alibi_slopes = alibi.as_ref().map(Tensor::view);
    match (&cu_q, &cu_k) {
        (Some(cq), Some(ck)) => {
            let mut varlen = Varlen::new(cq.view(), ck.view());
            varlen.max_seqlen_q = o.get("max_seqlen_q").i64();
            varlen.max_seqlen_k = o.get("max_seqlen_k").i64();
            opts.varlen = Some(varlen);
        }
        (None, None) => {}
        _ => return Err("the case sets only one of cu_seqlens_q/cu_seqlens_k".into()),
    }

    let mut out = Tensor::output(expected.get("out"));
    let mut lse = Tensor::output(expected.get("lse"));
    ctx.forward(
        &q.view(),
        &k.view(),
        &v.view(),
        &mut out.view_mut(),
        Some(&mut lse.view_mut()),
        &opts,
    )
    .map_err(|e| format!("forward failed: {e}"))?;

    let mut failures = Vec::new();
    let mut worst = 0.0f64;
    for (name, t) in [("out", &out), ("lse", &lse)] {
        match compare(name, t, dir, expected.get(name), tolerances.get(name)) {
            Ok(r) => worst = worst.max(r),
            Err(e) => failures.push(e),
        }
    }

    // Forward without lse (NULL) gives the same out.
    let mut out2 = Tensor::output(expected.get("out"));
    ctx.forward(
        &q.view(),
        &k.view(),
        &v.view(),
        &mut out2.view_mut(),
        None,
        &opts,
    )
    .map_err(|e| format!("forward without lse failed: {e}"))?;
    if out2.data.to_f32().iter().map(|x| x.to_bits()).ne(out
        .data
        .to_f32()
        .iter()
        .map(|x| x.to_bits()))
    {
        failures.push("out differs when lse is not requested".to_string());
    }

    if case.get("backward").bool() {
        let dout = Tensor::input(dir, inputs.get("dout"));
        let mut dq = Tensor::output(expected.get("dq"));
        let mut dk = Tensor::output(expected.get("dk"));
        let mut dv = Tensor::output(expected.get("dv"));
        ctx.backward(
            &q.view(),
            &k.view(),
            &v.view(),
            &out.view(),
            &dout.view(),
            &lse.view(),
            &mut dq.view_mut(),
            &mut dk.view_mut(),
            &mut dv.view_mut(),
            &opts,
        )
        .map_err(|e| format!("backward failed: {e}"))?;
        for (name, t) in [("dq", &dq), ("dk", &dk), ("dv", &dv)] {
            match compare(name, t, dir, expected.get(name), tolerances.get(name)) {
                Ok(r) => worst = worst.max(r),
                Err(e) => failures.push(e),
            }
        }
        let dout_again = Tensor::input(dir, inputs.get("dout"));
        if dout.data.to_f32().iter().map(|x| x.to_bits()).ne(dout_again
            .data
            .to_f32()
            .iter()
            .map(|x| x.to_bits()))
        {
            failures.push("dout was modified".to_string());
        }
    }
    // Inputs are left unmodified.
    for name in ["q", "k", "v"] {
        let fresh = Tensor::input(dir, inputs.get(name));
        let used = match name {
            "q" => &q,
            "k" => &k,
            _ => &v,
        };
        if used.data.to_f32().iter().map(|x| x.to_bits()).ne(fresh
            .data
            .to_f32()
            .iter()
            .map(|x| x.to_bits()))
        {
            failures.push(format!("input {name} was modified"));
        }
    }
    if failures.is_empty() {
        Ok(worst)
    } else {
        Err(failures.join("; "))
    }
}

fn conformance_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("UMFA_CONFORMANCE_DIR") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("manifest.json").is_file(),
            "UMFA_CONFORMANCE_DIR={} has no manifest.json",
            dir.display()
        );
        return Some(dir);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../conformance");
    dir.join("manifest.json").is_file().then_some(dir)
}

#[test]
fn conformance_vectors() {
    let Some(dir) = conformance_dir() else {
        println!("conformance: skipped (no conformance/manifest.json; set UMFA_CONFORMANCE_DIR)");
        return;
    };
    let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let manifest = Json::parse(&text).expect("manifest.json parses");
    assert_eq!(
        manifest.get("format_version").i64(),
        1,
        "unknown manifest format"
    );

    let ctx = Context::with_options(&ContextOptions::new(Backend::Cpu)).unwrap();
    let filter = std::env::var("UMFA_CONFORMANCE_FILTER").unwrap_or_default();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut failed_ids = Vec::new();
    for case in manifest.get("cases").arr() {
        let id = case.get("id").str();
        if !id.contains(&filter) {
            continue;
        }
        if let Some(reason) = skip_reason(id) {
            println!("SKIP {id}: {reason}");
            skipped += 1;
            continue;
        }
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(&ctx, &dir, case)))
                .unwrap_or_else(|p| {
                    Err(format!(
                        "panicked: {}",
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default()
                    ))
                });
        match result {
            Ok(ratio) => {
                println!("PASS {id} (worst error/tolerance {ratio:.3})");
                passed += 1;
            }
            Err(e) => {
                println!("FAIL {id}: {e}");
                failed += 1;
                failed_ids.push(id.to_string());
            }
        }
    }
    println!("rust conformance: {passed} passed, {failed} failed, {skipped} skipped");
    assert!(
        passed + failed + skipped > 0,
        "no case matched UMFA_CONFORMANCE_FILTER={filter:?}"
    );
    assert_eq!(failed, 0, "failed cases: {failed_ids:?}");
}
