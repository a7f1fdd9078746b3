//! The classic API: `MfaContext` and `MfaBuffer` over the `mfa_*` entry points, for code
//! written against the older Universal Metal Flash Attention Rust wrapper.
//!
//! ```
//! use umfa::classic::{ClassicAttention, MfaBuffer, MfaContext, Precision};
//!
//! let context = MfaContext::new()?;
//! let (seq, dim) = (4usize, 8usize);
//! let bytes = seq * dim * 4; // one batch, one head, FP32
//! let mut q = MfaBuffer::new(&context, bytes)?;
//! let mut k = MfaBuffer::new(&context, bytes)?;
//! let mut v = MfaBuffer::new(&context, bytes)?;
//! let mut out = MfaBuffer::new(&context, bytes)?;
//! let ones = vec![1.0f32; seq * dim];
//! q.copy_from_slice(&ones)?;
//! k.copy_from_slice(&ones)?;
//! v.copy_from_slice(&ones)?;
//!
//! let params = ClassicAttention::new(1, seq as u32, seq as u32, 1, dim as u16)
//!     .precision(Precision::Fp32);
//! context.attention_forward(&q, &k, &v, &mut out, &params)?;
//! assert!(out.to_vec::<f32>().iter().all(|&x| (x - 1.0).abs() < 1e-6));
//! # Ok::<(), umfa::classic::MfaError>(())
//! ```

use std::marker::PhantomData;
use std::os::raw::c_void;
use std::ptr::NonNull;

use umfa_sys as sys;

use crate::buffer::AnyBits;
use crate::error::{last_error, Error, Result};
use crate::tensor::Element;

/// Errors of the classic API: an [`Error::Classic`] carrying the `MFA_ERROR_*` code and the
/// detailed message.
pub type MfaError = Error;

fn classic_check(code: sys::mfa_error_t, context: *mut c_void) -> Result<()> {
    if code == sys::MFA_SUCCESS as sys::mfa_error_t {
        return Ok(());
    }
    Err(Error::Classic {
        code,
        message: last_error(context as *const sys::umfa_context),
    })
}

/// Element precision of the classic API (`MFA_PRECISION_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// IEEE binary16.
    Fp16,
    /// bfloat16.
    Bf16,
    /// 32-bit float.
    #[default]
    Fp32,
}

impl Precision {
    fn code(self) -> sys::mfa_precision_t {
        (match self {
            Precision::Fp16 => sys::MFA_PRECISION_FP16,
            Precision::Bf16 => sys::MFA_PRECISION_BF16,
            Precision::Fp32 => sys::MFA_PRECISION_FP32,
        }) as sys::mfa_precision_t
    }
}

/// A classic context (a umfa context on the AUTO backend). Freed when dropped.
#[derive(Debug)]
pub struct MfaContext(NonNull<c_void>);

// SAFETY: a classic context is a umfa context, which may be used by many threads at once.
unsafe impl Send for MfaContext {}
// SAFETY: as above.
unsafe impl Sync for MfaContext {}

impl MfaContext {
    /// Creates a context (`mfa_create_context`).
    pub fn new() -> Result<MfaContext> {
        crate::context::check_abi()?;
        let mut raw: sys::mfa_context_t = std::ptr::null_mut();
        // SAFETY: valid out-pointer.
        let code = unsafe { sys::mfa_create_context(&mut raw) };
        classic_check(code, std::ptr::null_mut())?;
        NonNull::new(raw).map(MfaContext).ok_or(Error::Classic {
            code: sys::MFA_ERROR_EXECUTION_FAILED as i32,
            message: "mfa_create_context returned success and NULL".into(),
        })
    }

    /// The raw `mfa_context_t`; it stays owned by `self`.
    pub fn as_ptr(&self) -> *mut c_void {
        self.0.as_ptr()
    }

    /// The detailed message of the last failure on this context, or "".
    pub fn last_error(&self) -> String {
        last_error(self.0.as_ptr() as *const sys::umfa_context)
    }

    /// Classic forward attention (`mfa_attention_forward`): `q`/`out` are
    /// `[batch, seq_len_q, num_heads, head_dim]`, `k`/`v` `[batch, seq_len_kv, num_heads,
    /// head_dim]`, row-major, unless a transpose flag says otherwise. Buffers that are too
    /// small are rejected before any work.
    pub fn attention_forward(
        &self,
        q: &MfaBuffer<'_>,
        k: &MfaBuffer<'_>,
        v: &MfaBuffer<'_>,
        out: &mut MfaBuffer<'_>,
        params: &ClassicAttention,
    ) -> Result<()> {
        // SAFETY: all handles are live and belong to this context (lifetimes); `out` is borrowed
        // exclusively, so it cannot be one of the inputs; the library checks sizes.
        let code = unsafe {
            sys::mfa_attention_forward(
                self.as_ptr(),
                q.as_ptr(),
                k.as_ptr(),
                v.as_ptr(),
                out.as_ptr(),
                params.batch_size,
                params.seq_len_q,
                params.seq_len_kv,
                params.num_heads,
                params.head_dim,
                params.softmax_scale,
                params.causal,
                params.input_precision.code(),
                params.intermediate_precision.code(),
                params.output_precision.code(),
                params.transpose_q,
                params.transpose_k,
                params.transpose_v,
                params.transpose_o,
            )
        };
        classic_check(code, self.as_ptr())
    }
}

impl Drop for MfaContext {
    fn drop(&mut self) {
        // SAFETY: we own the context; buffers borrow it, so none outlives it.
        unsafe { sys::mfa_destroy_context(self.0.as_ptr()) }
    }
}

/// Parameters of [`MfaContext::attention_forward`] (the scalar arguments of
/// `mfa_attention_forward`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassicAttention {
    /// Batch size.
    pub batch_size: u32,
    /// Query sequence length.
    pub seq_len_q: u32,
    /// Key/value sequence length.
    pub seq_len_kv: u32,
    /// Number of heads (the same for q, k and v).
    pub num_heads: u32,
    /// Head dimension.
    pub head_dim: u16,
    /// Softmax scale; 0 = `1/sqrt(head_dim)`.
    pub softmax_scale: f32,
    /// Causal mask (top-left diagonal).
    pub causal: bool,
    /// Element type of q, k, v.
    pub input_precision: Precision,
    /// Accepted for compatibility; umfa always accumulates in FP32.
    pub intermediate_precision: Precision,
    /// Element type of out.
    pub output_precision: Precision,
    /// q stored as `[batch, heads, head_dim, seq]`.
    pub transpose_q: bool,
    /// k stored as `[batch, heads, head_dim, seq]`.
    pub transpose_k: bool,
    /// v stored as `[batch, heads, head_dim, seq]`.
    pub transpose_v: bool,
    /// out stored as `[batch, heads, head_dim, seq]`.
    pub transpose_o: bool,
}

impl ClassicAttention {
    /// FP32, non-causal, default scale, no transposes.
    pub fn new(
        batch_size: u32,
        seq_len_q: u32,
        seq_len_kv: u32,
        num_heads: u32,
        head_dim: u16,
    ) -> ClassicAttention {
        ClassicAttention {
            batch_size,
            seq_len_q,
            seq_len_kv,
            num_heads,
            head_dim,
            softmax_scale: 0.0,
            causal: false,
            input_precision: Precision::Fp32,
            intermediate_precision: Precision::Fp32,
            output_precision: Precision::Fp32,
            transpose_q: false,
            transpose_k: false,
            transpose_v: false,
            transpose_o: false,
        }
    }

    /// Sets input, intermediate and output precision at once.
    pub fn precision(mut self, precision: Precision) -> Self {
        self.input_precision = precision;
        self.intermediate_precision = precision;
        self.output_precision = precision;
        self
    }

    /// Sets the causal flag.
    pub fn causal(mut self, causal: bool) -> Self {
        self.causal = causal;
        self
    }

    /// Sets the softmax scale.
    pub fn softmax_scale(mut self, scale: f32) -> Self {
        self.softmax_scale = scale;
        self
    }
}

/// A classic buffer: host-visible memory allocated by the library (zero-filled), or a caller's
/// slice wrapped without copying. Borrows its context.
#[derive(Debug)]
pub struct MfaBuffer<'a> {
    raw: NonNull<c_void>,
    size: usize,
    _borrow: PhantomData<(&'a MfaContext, &'a mut [u8])>,
}

// SAFETY: host memory plus a handle; &self methods only read.
unsafe impl Send for MfaBuffer<'_> {}
// SAFETY: as above.
unsafe impl Sync for MfaBuffer<'_> {}

impl<'a> MfaBuffer<'a> {
    /// Allocates `size_bytes` of zero-filled host-visible memory (`mfa_create_buffer`).
    pub fn new(context: &'a MfaContext, size_bytes: usize) -> Result<MfaBuffer<'a>> {
        let mut raw: sys::mfa_buffer_t = std::ptr::null_mut();
        // SAFETY: live context, valid out-pointer.
        let code = unsafe { sys::mfa_create_buffer(context.as_ptr(), size_bytes, &mut raw) };
        classic_check(code, context.as_ptr())?;
        MfaBuffer::from_created(raw, size_bytes)
    }

    /// Wraps a caller's slice without copying (`mfa_buffer_from_ptr`); the buffer borrows it
    /// exclusively and never frees it.
    pub fn from_slice<T: AnyBits>(
        context: &'a MfaContext,
        data: &'a mut [T],
    ) -> Result<MfaBuffer<'a>> {
        let size = std::mem::size_of_val(data);
        let mut raw: sys::mfa_buffer_t = std::ptr::null_mut();
        // SAFETY: `data` is valid for `size` bytes and borrowed for the buffer's lifetime; every
        // bit pattern the library may write is a valid T.
        let code = unsafe {
            sys::mfa_buffer_from_ptr(
                context.as_ptr(),
                data.as_mut_ptr().cast::<c_void>(),
                size,
                &mut raw,
            )
        };
        classic_check(code, context.as_ptr())?;
        MfaBuffer::from_created(raw, size)
    }

    fn from_created(raw: sys::mfa_buffer_t, size: usize) -> Result<MfaBuffer<'a>> {
        let raw = NonNull::new(raw).ok_or(Error::Classic {
            code: sys::MFA_ERROR_MEMORY_ALLOCATION as i32,
            message: "buffer creation returned success and NULL".into(),
        })?;
        Ok(MfaBuffer {
            raw,
            size,
            _borrow: PhantomData,
        })
    }

    /// The raw `mfa_buffer_t`; it stays owned by `self`.
    pub fn as_ptr(&self) -> *mut c_void {
        self.raw.as_ptr()
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.size
    }

    /// True for a zero-sized buffer.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    fn contents(&self) -> *mut u8 {
        // SAFETY: live buffer.
        unsafe { sys::mfa_buffer_contents(self.raw.as_ptr()) }.cast::<u8>()
    }

    /// The buffer's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        let ptr = self.contents();
        if ptr.is_null() || self.size == 0 {
            return &[];
        }
        // SAFETY: classic buffers are host-visible and `size` bytes long.
        unsafe { std::slice::from_raw_parts(ptr, self.size) }
    }

    /// The buffer's bytes, mutably.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        let ptr = self.contents();
        if ptr.is_null() || self.size == 0 {
            return &mut [];
        }
        // SAFETY: as above, exclusive borrow.
        unsafe { std::slice::from_raw_parts_mut(ptr, self.size) }
    }

    /// Copies `data` to the start of the buffer; fails if it does not fit.
    pub fn copy_from_slice<T: Element>(&mut self, data: &[T]) -> Result<()> {
        let bytes = std::mem::size_of_val(data);
        if bytes > self.size {
            return Err(Error::Classic {
                code: sys::MFA_ERROR_INVALID_ARGS as i32,
                message: format!("{bytes} bytes do not fit in a {}-byte buffer", self.size),
            });
        }
        // SAFETY: `data` is `bytes` readable bytes (Element types have no padding).
        let src = unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), bytes) };
        self.as_bytes_mut()[..bytes].copy_from_slice(src);
        Ok(())
    }

    /// Copies the buffer into a new `Vec<T>` (as many whole elements as fit).
    pub fn to_vec<T: AnyBits + Default>(&self) -> Vec<T> {
        let count = self.size / std::mem::size_of::<T>();
        let mut out = vec![T::default(); count];
        let bytes = count * std::mem::size_of::<T>();
        // SAFETY: `out` has room for `bytes`; every bit pattern is a valid T.
        let dst = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), bytes) };
        dst.copy_from_slice(&self.as_bytes()[..bytes]);
        out
    }
}

impl Drop for MfaBuffer<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the buffer handle (never the wrapped memory).
        unsafe { sys::mfa_destroy_buffer(self.raw.as_ptr()) }
    }
}

/// True when a backend can run attention here (`mfa_is_device_supported`; the CPU always can).
pub fn is_device_supported() -> bool {
    // SAFETY: no arguments.
    unsafe { sys::mfa_is_device_supported() }
}

/// The library version as `(major, minor, patch)` (`mfa_get_version`).
pub fn get_version() -> (i32, i32, i32) {
    let (mut major, mut minor, mut patch) = (0, 0, 0);
    // SAFETY: valid out-pointers.
    unsafe { sys::mfa_get_version(&mut major, &mut minor, &mut patch) };
    (major, minor, patch)
}
