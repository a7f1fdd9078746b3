//! Compile-time checks of the public types' auto traits and conventions: what may cross threads
//! (the header allows any number of threads on one context), that the error type works with
//! `Box<dyn Error + Send + Sync>` and `?`, and that options are plain `Default + Copy` values.
//! Each assertion fails to compile, not just to run, if the property is lost.

use std::sync::Arc;

use umfa::classic::{MfaBuffer, MfaContext};
use umfa::{
    AttentionOptions, Backend, Bf16, Buffer, Context, ContextOptions, DType, Device, Error,
    MaskMode, Status, TensorView, TensorViewMut, F16,
};

fn send_sync<T: Send + Sync>() {}
fn error_like<T: std::error::Error + Send + Sync + 'static>() {}
fn plain_value<T: Default + Copy + std::fmt::Debug>() {}

#[test]
fn thread_safety_follows_the_header() {
    // umfa.h: "a context may be used by any number of threads at once".
    send_sync::<Context>();
    send_sync::<Arc<Context>>();
    send_sync::<MfaContext>();
    // Views are borrows of Sync data, like &[T] / &mut [T].
    send_sync::<TensorView<'static>>();
    send_sync::<TensorViewMut<'static>>();
    send_sync::<Buffer<'static>>();
    send_sync::<MfaBuffer<'static>>();
    send_sync::<AttentionOptions<'static>>();
    send_sync::<Error>();
}

#[test]
fn errors_are_ordinary_rust_errors() {
    error_like::<Error>();
    fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let ctx = Context::new(Backend::Cpu)?;
        let data = [0.0f32; 8];
        let view = TensorView::new(&data, &[1, 2, 1, 4])?;
        let mut out = [0.0f32; 8];
        // Wrong rank for lse: the library's error travels through `?` as a boxed error.
        let mut lse = [0.0f32; 8];
        ctx.forward(
            &view,
            &view,
            &view,
            &mut TensorViewMut::new(&mut out, &[1, 2, 1, 4])?,
            Some(&mut TensorViewMut::new(&mut lse, &[8])?),
            &AttentionOptions::default(),
        )?;
        Ok(())
    }
    let err = run().unwrap_err();
    let umfa_err = err.downcast_ref::<Error>().expect("an umfa::Error inside");
    assert_eq!(umfa_err.status(), Status::InvalidRank);
    assert!(err.to_string().contains("[status 4]"), "{err}");
}

#[test]
fn options_are_plain_values() {
    plain_value::<AttentionOptions<'static>>();
    plain_value::<ContextOptions>();
    plain_value::<MaskMode>();
    plain_value::<Backend>();
    plain_value::<F16>();
    plain_value::<Bf16>();
    let defaults = AttentionOptions::default();
    assert_eq!(defaults.mask_mode, MaskMode::None);
    assert!(defaults.softmax_scale.is_none() && defaults.window.is_none());
    assert!(defaults.attn_mask.is_none() && defaults.varlen.is_none());
    assert_eq!(ContextOptions::default().backend, Backend::Auto);
    // Enums that may grow are matched with a wildcard outside the crate.
    let describe = |d: DType| match d {
        DType::F32 => "f32",
        _ => "other",
    };
    assert_eq!(describe(DType::F16), "other");
    assert_eq!(Device::Cpu, Device::Cpu);
}
