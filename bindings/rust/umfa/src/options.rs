//! Attention options (`umfa_attention_options`).

use std::os::raw::c_void;

use umfa_sys as sys;

use crate::tensor::TensorView;

/// The built-in masks (`UMFA_MASK_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MaskMode {
    /// No built-in mask.
    #[default]
    None,
    /// PyTorch's `is_causal`: query `i` sees keys `j <= i` (diagonal from the top-left corner).
    CausalTopLeft,
    /// FlashAttention's `causal`: query `i` sees keys `j <= i + seqlen_k - seqlen_q`
    /// (diagonal ending in the bottom-right corner).
    CausalBottomRight,
}

impl MaskMode {
    fn code(self) -> u32 {
        match self {
            MaskMode::None => sys::UMFA_MASK_NONE,
            MaskMode::CausalTopLeft => sys::UMFA_MASK_CAUSAL_TOP_LEFT,
            MaskMode::CausalBottomRight => sys::UMFA_MASK_CAUSAL_BOTTOM_RIGHT,
        }
    }
}

/// A sliding window (FlashAttention's `window_size`): keys at most `left` positions before and
/// `right` positions after the (offset) diagonal are visible. A negative bound is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// Keys visible to the left of the diagonal; negative = unbounded.
    pub left: i64,
    /// Keys visible to the right of the diagonal; negative = unbounded (causal forces 0).
    pub right: i64,
}

impl Window {
    /// A window with the given bounds (negative = unbounded).
    pub fn new(left: i64, right: i64) -> Window {
        Window { left, right }
    }
}

/// Variable-length batches (FlashAttention's varlen): sequences packed along the first
/// dimension, with tensors in the THD layouts (`[total, heads, head_dim]`).
#[derive(Debug, Clone, Copy)]
pub struct Varlen<'a> {
    /// `i32` offsets, shape `[batch + 1]`: the first query row of each sequence.
    pub cu_seqlens_q: TensorView<'a>,
    /// `i32` offsets, shape `[batch + 1]`: the first key/value row of each sequence.
    pub cu_seqlens_k: TensorView<'a>,
    /// Upper bound of the query lengths; 0 = computed from `cu_seqlens_q`.
    pub max_seqlen_q: i64,
    /// Upper bound of the key lengths; 0 = computed from `cu_seqlens_k`.
    pub max_seqlen_k: i64,
}

impl<'a> Varlen<'a> {
    /// Varlen offsets with the maximum lengths computed by the library.
    pub fn new(cu_seqlens_q: TensorView<'a>, cu_seqlens_k: TensorView<'a>) -> Varlen<'a> {
        Varlen {
            cu_seqlens_q,
            cu_seqlens_k,
            max_seqlen_q: 0,
            max_seqlen_k: 0,
        }
    }
}

/// A CUDA stream (`cudaStream_t`) for calls on a CUDA context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaStream(*mut c_void);

// SAFETY: a stream handle is an opaque token that CUDA allows to be used from any thread.
unsafe impl Send for CudaStream {}
// SAFETY: as above.
unsafe impl Sync for CudaStream {}

impl CudaStream {
    /// Wraps a `cudaStream_t`.
    ///
    /// # Safety
    /// `stream` must be NULL (the legacy default stream) or a live stream of the context's
    /// device for as long as calls use it.
    pub unsafe fn from_raw(stream: *mut c_void) -> CudaStream {
        CudaStream(stream)
    }

    /// The raw `cudaStream_t`.
    pub fn as_raw(self) -> *mut c_void {
        self.0
    }
}

/// Options for [`Context::forward`](crate::Context::forward) and
/// [`Context::backward`](crate::Context::backward): every field of `umfa_attention_options`.
///
/// `AttentionOptions::default()` is plain softmax attention with scale `1/sqrt(head_dim)` and no
/// mask. Fields can be set directly or with the builder methods. Pass the same options to
/// backward as to forward.
///
/// ```
/// use umfa::{AttentionOptions, MaskMode};
/// let opts = AttentionOptions::default()
///     .mask_mode(MaskMode::CausalBottomRight)
///     .window(128, 0)
///     .softcap(30.0);
/// assert_eq!(opts.mask_mode, MaskMode::CausalBottomRight);
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct AttentionOptions<'a> {
    /// Built-in mask; default none.
    pub mask_mode: MaskMode,
    /// Multiplies `q·k`; `None` (or `Some(0.0)`) = `1/sqrt(head_dim)`. Must be finite.
    pub softmax_scale: Option<f32>,
    /// Tanh soft-capping of scores; 0 = off; must be >= 0.
    pub softcap: f32,
    /// Sliding window; `None` = no window.
    pub window: Option<Window>,
    /// Bit-identical backward results run to run (`UMFA_FLAG_DETERMINISTIC`).
    pub deterministic: bool,
    /// Boolean mask (`bool`/`u8`, nonzero = visible) or additive float bias, broadcastable to
    /// `[batch, heads_q, seqlen_q, seqlen_k]` (rank 1..4, aligned at the right).
    pub attn_mask: Option<TensorView<'a>>,
    /// ALiBi slopes, `f32`, shape `[heads_q]` or `[batch, heads_q]`.
    pub alibi_slopes: Option<TensorView<'a>>,
    /// Variable-length batches; `None` = dense BSHD tensors.
    pub varlen: Option<Varlen<'a>>,
    /// CUDA stream (ignored on the CPU); `None` = the legacy default stream.
    pub stream: Option<CudaStream>,
}

impl<'a> AttentionOptions<'a> {
    /// Same as `AttentionOptions::default()`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the built-in mask.
    pub fn mask_mode(mut self, mode: MaskMode) -> Self {
        self.mask_mode = mode;
        self
    }

    /// Sets the softmax scale (0 = `1/sqrt(head_dim)`).
    pub fn softmax_scale(mut self, scale: f32) -> Self {
        self.softmax_scale = Some(scale);
        self
    }

    /// Sets tanh soft-capping (0 = off).
    pub fn softcap(mut self, softcap: f32) -> Self {
        self.softcap = softcap;
        self
    }

    /// Enables a sliding window (negative bounds are unbounded).
    pub fn window(mut self, left: i64, right: i64) -> Self {
        self.window = Some(Window { left, right });
        self
    }

    /// Requests deterministic backward results.
    pub fn deterministic(mut self, deterministic: bool) -> Self {
        self.deterministic = deterministic;
        self
    }

    /// Sets a boolean mask or additive bias.
    pub fn attn_mask(mut self, mask: TensorView<'a>) -> Self {
        self.attn_mask = Some(mask);
        self
    }

    /// Sets ALiBi slopes.
    pub fn alibi_slopes(mut self, slopes: TensorView<'a>) -> Self {
        self.alibi_slopes = Some(slopes);
        self
    }

    /// Switches to variable-length (THD) tensors.
    pub fn varlen(mut self, varlen: Varlen<'a>) -> Self {
        self.varlen = Some(varlen);
        self
    }

    /// Sets the CUDA stream.
    pub fn stream(mut self, stream: CudaStream) -> Self {
        self.stream = Some(stream);
        self
    }

    /// The C struct. Its tensor pointers point into `self`, so it is valid while `self` is.
    pub(crate) fn c_struct(&self) -> sys::umfa_attention_options {
        let window = self.window.unwrap_or(Window {
            left: -1,
            right: -1,
        });
        let tensor = |t: &Option<TensorView<'a>>| {
            t.as_ref()
                .map_or(std::ptr::null(), |t| t.as_raw() as *const sys::umfa_tensor)
        };
        let (cu_q, cu_k, max_q, max_k) = match &self.varlen {
            Some(v) => (
                v.cu_seqlens_q.as_raw() as *const sys::umfa_tensor,
                v.cu_seqlens_k.as_raw() as *const sys::umfa_tensor,
                v.max_seqlen_q,
                v.max_seqlen_k,
            ),
            None => (std::ptr::null(), std::ptr::null(), 0, 0),
        };
        sys::umfa_attention_options {
            struct_size: std::mem::size_of::<sys::umfa_attention_options>() as u32,
            mask_mode: self.mask_mode.code(),
            softmax_scale: self.softmax_scale.unwrap_or(0.0),
            softcap: self.softcap,
            has_window: self.window.is_some() as u32,
            flags: if self.deterministic {
                sys::UMFA_FLAG_DETERMINISTIC
            } else {
                0
            },
            window_left: window.left,
            window_right: window.right,
            attn_mask: tensor(&self.attn_mask),
            alibi_slopes: tensor(&self.alibi_slopes),
            cu_seqlens_q: cu_q,
            cu_seqlens_k: cu_k,
            max_seqlen_q: max_q,
            max_seqlen_k: max_k,
            stream: self.stream.map_or(std::ptr::null_mut(), CudaStream::as_raw),
            // Context::forward/backward point these at a per-call buffer (see context.rs).
            error_message: std::ptr::null_mut(),
            error_message_capacity: 0,
        }
    }
}
