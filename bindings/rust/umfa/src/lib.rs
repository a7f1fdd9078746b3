//! Safe Rust API for **umfa**, a flash-attention library (CPU and CUDA backends) behind one
//! stable C ABI.
//!
//! - [`Context`]: an execution context (backend, threads, scratch memory); `Send + Sync`, freed
//!   on drop.
//! - [`TensorView`] / [`TensorViewMut`]: strided views over slices of `f32`, [`F16`] or
//!   [`Bf16`] (plus `bool`/`u8` masks and `i32` offsets). Their shape and strides are checked
//!   against the slice when the view is made, so the library can never read or write outside
//!   it; logical layout is FlashAttention's `[batch, seqlen, heads, head_dim]`, and other
//!   layouts (PyTorch's BHSD) are zero-copy permutations.
//! - [`AttentionOptions`]: every option of the C ABI (causal masks, sliding window, softcap,
//!   ALiBi, boolean/additive masks, varlen), with `Default`.
//! - [`Context::forward`] and [`Context::backward`] return `Result<(), Error>`; [`Error`]
//!   carries the library's [`Status`] and message.
//! - [`classic`]: `MfaContext`/`MfaBuffer` for code written against the older wrapper.
//!
//! No `unsafe` is needed to use this crate; raw-pointer entry points (device memory from other
//! libraries, CUDA streams) are the only `unsafe fn`s.
//!
//! ```
//! use umfa::{AttentionOptions, Backend, Context, TensorView, TensorViewMut, F16};
//!
//! let ctx = Context::new(Backend::Cpu)?;
//! // Grouped-query attention: 4 query heads share 2 key/value heads.
//! let (b, sq, sk, hq, hkv, d) = (1, 3, 5, 4, 2, 16);
//! let q: Vec<F16> = (0..b * sq * hq * d).map(|i| F16::from_f32((i % 5) as f32 * 0.1)).collect();
//! let k: Vec<F16> = (0..b * sk * hkv * d).map(|i| F16::from_f32((i % 3) as f32 * 0.2)).collect();
//! let v: Vec<F16> = (0..b * sk * hkv * d).map(|i| F16::from_f32((i % 4) as f32)).collect();
//! let mut out = vec![0.0f32; b * sq * hq * d]; // outputs may use another float type
//!
//! ctx.forward(
//!     &TensorView::new(&q, &[b, sq, hq, d])?,
//!     &TensorView::new(&k, &[b, sk, hkv, d])?,
//!     &TensorView::new(&v, &[b, sk, hkv, d])?,
//!     &mut TensorViewMut::new(&mut out, &[b, sq, hq, d])?,
//!     None,
//!     &AttentionOptions::default(),
//! )?;
//! assert!(out.iter().all(|x| x.is_finite()));
//!
//! // Bad input is an error with a status and a message, never a crash:
//! let err = ctx
//!     .forward(
//!         &TensorView::new(&q, &[b, sq, hq, d])?,
//!         &TensorView::new(&k, &[b, sk, 3, d * 2 / 3])?,
//!         &TensorView::new(&v, &[b, sk, hkv, d])?,
//!         &mut TensorViewMut::new(&mut out, &[b, sq, hq, d])?,
//!         None,
//!         &AttentionOptions::default(),
//!     )
//!     .unwrap_err();
//! println!("{err}"); // e.g. "... [status 5]"
//! assert!(matches!(err, umfa::Error::Native { .. }));
//! # Ok::<(), umfa::Error>(())
//! ```

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod buffer;
pub mod classic;
mod context;
mod error;
mod half;
mod options;
mod tensor;

pub use buffer::{AnyBits, Buffer};
pub use context::{
    abi_version, backend_available, build_info, version, version_string, Backend, Context,
    ContextOptions,
};
pub use error::{Error, Result, Status};
pub use half::{Bf16, F16};
pub use options::{AttentionOptions, CudaStream, MaskMode, Varlen, Window};
pub use tensor::{contiguous_strides, DType, Device, Element, Float, TensorView, TensorViewMut};

/// Raw FFI declarations (the `umfa-sys` crate), for what the safe API does not cover.
pub use umfa_sys as sys;
