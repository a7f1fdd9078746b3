//! Contexts, attention calls and library information.

use std::ptr::NonNull;

use umfa_sys as sys;

use crate::error::{check, last_error, static_str, Error, Result, Status};
use crate::options::AttentionOptions;
use crate::tensor::{TensorView, TensorViewMut};

/// Backend selection (`UMFA_BACKEND_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// CUDA when libumfa_cuda and a GPU are available; else, on Apple platforms, Metal when
    /// libumfa_metal loads and its kernels compile; otherwise the CPU.
    #[default]
    Auto,
    /// The CPU backend (always available).
    Cpu,
    /// The CUDA backend.
    Cuda,
    /// The Metal backend (Apple GPUs; host slices are read in place, unified memory). On Linux
    /// only reachable when `UMFA_METAL_LIB` names the simulated backend (tests, development).
    Metal,
}

impl Backend {
    /// The C value.
    pub fn code(self) -> u32 {
        match self {
            Backend::Auto => sys::UMFA_BACKEND_AUTO,
            Backend::Cpu => sys::UMFA_BACKEND_CPU,
            Backend::Cuda => sys::UMFA_BACKEND_CUDA,
            Backend::Metal => sys::UMFA_BACKEND_METAL,
        }
    }

    fn from_code(code: u32) -> Backend {
        match code {
            sys::UMFA_BACKEND_CPU => Backend::Cpu,
            sys::UMFA_BACKEND_CUDA => Backend::Cuda,
            sys::UMFA_BACKEND_METAL => Backend::Metal,
            _ => Backend::Auto,
        }
    }
}

/// Options for creating a [`Context`] (`umfa_context_options`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContextOptions {
    /// Which backend; default [`Backend::Auto`].
    pub backend: Backend,
    /// CUDA device ordinal (ignored by the CPU backend).
    pub device_index: i32,
    /// CPU worker threads; 0 = one per core (or `UMFA_NUM_THREADS`); 1 = the calling thread.
    pub num_threads: i32,
    /// Upper bound on the scratch memory of one call in bytes; 0 = no limit.
    pub workspace_limit_bytes: u64,
}

impl ContextOptions {
    /// Options for `backend`, everything else default.
    pub fn new(backend: Backend) -> Self {
        ContextOptions {
            backend,
            ..Default::default()
        }
    }

    /// Sets the worker thread count.
    pub fn num_threads(mut self, threads: i32) -> Self {
        self.num_threads = threads;
        self
    }

    /// Sets the CUDA device ordinal.
    pub fn device_index(mut self, index: i32) -> Self {
        self.device_index = index;
        self
    }

    /// Sets the workspace limit.
    pub fn workspace_limit_bytes(mut self, bytes: u64) -> Self {
        self.workspace_limit_bytes = bytes;
        self
    }
}

/// Fails unless the loaded library implements the ABI version these bindings were written for.
pub(crate) fn check_abi() -> Result<()> {
    // SAFETY: no arguments, cannot fail.
    let found = unsafe { sys::umfa_abi_version() };
    if found != sys::ABI_VERSION {
        return Err(Error::AbiMismatch {
            expected: sys::ABI_VERSION,
            found,
        });
    }
    Ok(())
}

/// An execution context: one backend, one device, a thread pool and scratch memory.
///
/// Freed when dropped. The C API allows any number of threads to use one context at once, so
/// `Context` is `Send` and `Sync`: share it with `&Context` or `Arc<Context>`.
///
/// ```
/// use umfa::{AttentionOptions, Backend, Context, MaskMode, TensorView, TensorViewMut};
///
/// let ctx = Context::new(Backend::Cpu)?;
/// let (b, s, h, d) = (1, 4, 2, 8);
/// let q: Vec<f32> = (0..b * s * h * d).map(|i| (i % 7) as f32 * 0.1).collect();
/// let k = q.clone();
/// let v = q.clone();
/// let mut out = vec![0.0f32; q.len()];
/// let mut lse = vec![0.0f32; b * h * s];
///
/// let opts = AttentionOptions::default().mask_mode(MaskMode::CausalBottomRight);
/// ctx.forward(
///     &TensorView::new(&q, &[b, s, h, d])?,
///     &TensorView::new(&k, &[b, s, h, d])?,
///     &TensorView::new(&v, &[b, s, h, d])?,
///     &mut TensorViewMut::new(&mut out, &[b, s, h, d])?,
///     Some(&mut TensorViewMut::new(&mut lse, &[b, h, s])?),
///     &opts,
/// )?;
/// // With a causal mask the first query only sees the first key: out[0] == v[0].
/// assert!((out[0] - v[0]).abs() < 1e-6);
/// # Ok::<(), umfa::Error>(())
/// ```
#[derive(Debug)]
pub struct Context {
    raw: NonNull<sys::umfa_context>,
    device_index: i32,
}

// SAFETY: umfa.h: "a context may be used by any number of threads at once"; only creation and
// destruction must not race with other use, which `Drop` taking ownership guarantees.
unsafe impl Send for Context {}
// SAFETY: as above; every method takes &self and the C calls are thread-safe per context.
unsafe impl Sync for Context {}

impl Context {
    /// Creates a context on `backend` with default options.
    pub fn new(backend: Backend) -> Result<Context> {
        Context::with_options(&ContextOptions::new(backend))
    }

    /// Creates a context with explicit options.
    pub fn with_options(options: &ContextOptions) -> Result<Context> {
        check_abi()?;
        let raw_options = sys::umfa_context_options {
            struct_size: std::mem::size_of::<sys::umfa_context_options>() as u32,
            backend: options.backend.code(),
            device_index: options.device_index,
            num_threads: options.num_threads,
            workspace_limit_bytes: options.workspace_limit_bytes,
        };
        let mut raw: *mut sys::umfa_context = std::ptr::null_mut();
        // SAFETY: both pointers are valid for the call; on success `raw` is a new context we own.
        let status = unsafe { sys::umfa_context_create(&raw_options, &mut raw) };
        check(status, std::ptr::null())?;
        NonNull::new(raw)
            .map(|raw| Context {
                raw,
                device_index: options.device_index,
            })
            .ok_or_else(|| Error::Native {
                status: Status::Internal,
                message: "umfa_context_create returned OK and a NULL context".into(),
            })
    }

    /// The backend actually chosen (CPU or CUDA).
    pub fn backend(&self) -> Backend {
        let mut backend = 0u32;
        // SAFETY: live context, valid out-pointer.
        let status = unsafe { sys::umfa_context_backend(self.raw.as_ptr(), &mut backend) };
        debug_assert_eq!(status, 0);
        Backend::from_code(backend)
    }

    /// The device ordinal the context was created for (meaningful for CUDA).
    pub fn device_index(&self) -> i32 {
        self.device_index
    }

    /// The number of CPU worker threads.
    pub fn num_threads(&self) -> i32 {
        let mut threads = 0i32;
        // SAFETY: live context, valid out-pointer.
        let status = unsafe { sys::umfa_context_num_threads(self.raw.as_ptr(), &mut threads) };
        debug_assert_eq!(status, 0);
        threads
    }

    /// The message of the most recent failed call on this context (from any thread), or "".
    pub fn last_error(&self) -> String {
        last_error(self.raw.as_ptr())
    }

    /// The raw handle, for calling `umfa_sys` directly. It stays owned by `self`.
    pub fn as_raw(&self) -> *mut sys::umfa_context {
        self.raw.as_ptr()
    }

    /// Forward attention: `out = softmax(mask(q·kᵀ·scale))·v` (see `umfa_attention_forward`).
    ///
    /// `q` is `[batch, seqlen_q, heads_q, head_dim]`, `k`/`v` are
    /// `[batch, seqlen_k, heads_kv, head_dim]` (same dtype as `q`); `out` is shaped like `q`
    /// (any float dtype). `lse`, when given, receives the `f32` log-sum-exp, `[batch, heads_q,
    /// seqlen_q]`. Varlen calls use the THD layouts instead. Nothing is written on error.
    pub fn forward(
        &self,
        q: &TensorView<'_>,
        k: &TensorView<'_>,
        v: &TensorView<'_>,
        out: &mut TensorViewMut<'_>,
        lse: Option<&mut TensorViewMut<'_>>,
        options: &AttentionOptions<'_>,
    ) -> Result<()> {
        let mut message = CallMessage::new();
        let raw_options = message.attach(options.c_struct());
        let lse_ptr = lse.map_or(std::ptr::null(), |l| l.as_raw() as *const sys::umfa_tensor);
        // SAFETY: every view was checked to lie inside live memory it borrows for the call
        // (inputs shared, outputs exclusive, so outputs cannot alias inputs); the options'
        // tensor pointers point into `options`, which outlives the call.
        let status = unsafe {
            sys::umfa_attention_forward(
                self.raw.as_ptr(),
                &raw_options,
                q.as_raw(),
                k.as_raw(),
                v.as_raw(),
                out.as_raw(),
                lse_ptr,
            )
        };
        message.check(status, self.raw.as_ptr())
    }

    /// Backward attention: writes `dq`, `dk`, `dv` from `dout` (see `umfa_attention_backward`).
    ///
    /// `q`, `k`, `v`, `out` and `lse` must be exactly what forward used and produced (`lse` is
    /// required), and `options` the same as for forward. `dq`, `dk`, `dv` are shaped like `q`,
    /// `k`, `v` (any float dtype). Nothing is written on error.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        q: &TensorView<'_>,
        k: &TensorView<'_>,
        v: &TensorView<'_>,
        out: &TensorView<'_>,
        dout: &TensorView<'_>,
        lse: &TensorView<'_>,
        dq: &mut TensorViewMut<'_>,
        dk: &mut TensorViewMut<'_>,
        dv: &mut TensorViewMut<'_>,
        options: &AttentionOptions<'_>,
    ) -> Result<()> {
        let mut message = CallMessage::new();
        let raw_options = message.attach(options.c_struct());
        // SAFETY: as in `forward`; the three outputs are distinct exclusive borrows.
        let status = unsafe {
            sys::umfa_attention_backward(
                self.raw.as_ptr(),
                &raw_options,
                q.as_raw(),
                k.as_raw(),
                v.as_raw(),
                out.as_raw(),
                dout.as_raw(),
                lse.as_raw(),
                dq.as_raw(),
                dk.as_raw(),
                dv.as_raw(),
            )
        };
        message.check(status, self.raw.as_ptr())
    }
}

/// The per-call error message of an attention call (`umfa_attention_options.error_message`).
///
/// A `Context` is shared between threads, and the context's last-error message is the latest
/// failure of any of them: read after a failed call, it may already be another call's. The
/// library also writes each failed call's message into this buffer, which belongs to the call.
struct CallMessage([u8; 1024]);

impl CallMessage {
    fn new() -> Self {
        CallMessage([0; 1024])
    }

    /// Points `raw`'s message fields at this buffer (which must outlive the call).
    fn attach(&mut self, mut raw: sys::umfa_attention_options) -> sys::umfa_attention_options {
        raw.error_message = self.0.as_mut_ptr().cast();
        raw.error_message_capacity = self.0.len() as u64;
        raw
    }

    /// `Ok(())`, or the error with this call's message (the context's as a fallback).
    fn check(&self, status: sys::umfa_status, context: *const sys::umfa_context) -> Result<()> {
        if status == sys::UMFA_STATUS_OK as sys::umfa_status {
            return Ok(());
        }
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        if len == 0 {
            return check(status, context);
        }
        Err(Error::Native {
            status: Status::from_code(status).unwrap_or(Status::Internal),
            message: String::from_utf8_lossy(&self.0[..len]).into_owned(),
        })
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: we own the context; buffers borrow it, so none outlives it.
        unsafe { sys::umfa_context_destroy(self.raw.as_ptr()) }
    }
}

/// The library's version as `(major, minor, patch)`.
pub fn version() -> (u32, u32, u32) {
    // SAFETY: no arguments, cannot fail.
    let v = unsafe { sys::umfa_version() };
    (v / 10000, (v / 100) % 100, v % 100)
}

/// The library's version as `"MAJOR.MINOR.PATCH"`.
pub fn version_string() -> &'static str {
    // SAFETY: returns a static string.
    unsafe { static_str(sys::umfa_version_string()) }
}

/// The ABI version of the loaded library.
pub fn abi_version() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { sys::umfa_abi_version() }
}

/// A one-line description of how the library was built and what it detected at run time.
pub fn build_info() -> &'static str {
    // SAFETY: returns a static string.
    unsafe { static_str(sys::umfa_build_info()) }
}

/// Whether `backend` can run on this machine, and its device count.
///
/// ```
/// let (available, _devices) = umfa::backend_available(umfa::Backend::Cpu)?;
/// assert!(available);
/// # Ok::<(), umfa::Error>(())
/// ```
pub fn backend_available(backend: Backend) -> Result<(bool, i32)> {
    let mut available = 0i32;
    let mut devices = 0i32;
    // SAFETY: valid out-pointers.
    let status =
        unsafe { sys::umfa_backend_available(backend.code(), &mut available, &mut devices) };
    check(status, std::ptr::null())?;
    Ok((available != 0, devices))
}
