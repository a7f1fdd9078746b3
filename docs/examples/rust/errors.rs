//! Bad input is an `Err` carrying the library's status and message, never a crash.
use umfa::{AttentionOptions, Backend, Context, Status, TensorView, TensorViewMut};

fn main() -> Result<(), umfa::Error> {
    let ctx = Context::new(Backend::Cpu)?;
    let q = vec![0.0f32; 4 * 8];
    let k = vec![0.0f32; 4 * 4];
    let mut out = vec![0.0f32; 4 * 8];
    let result = ctx.forward(
        &TensorView::new(&q, &[1, 4, 1, 8])?,
        &TensorView::new(&k, &[1, 4, 1, 4])?, // head_dim 4, q has 8
        &TensorView::new(&k, &[1, 4, 1, 4])?,
        &mut TensorViewMut::new(&mut out, &[1, 4, 1, 8])?,
        None,
        &AttentionOptions::default(),
    );
    match result {
        Err(umfa::Error::Native { status, message }) => {
            println!("{status:?}: {message}");
            assert_eq!(status, Status::ShapeMismatch);
            Ok(())
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
}
