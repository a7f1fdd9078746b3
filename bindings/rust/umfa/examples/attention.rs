//! Forward and backward attention on PyTorch-style BHSD data, viewed as BSHD without copying.
//!
//!     cargo run --example attention

use umfa::{AttentionOptions, Backend, Context, MaskMode, TensorView, TensorViewMut};

fn main() -> Result<(), umfa::Error> {
    println!("umfa {} — {}", umfa::version_string(), umfa::build_info());
    let ctx = Context::new(Backend::Auto)?;
    println!("backend {:?}, {} threads", ctx.backend(), ctx.num_threads());

    let (b, h, s, d) = (2, 4, 64, 32);
    let n = b * h * s * d;
    let wave = |phase: f32| -> Vec<f32> {
        (0..n).map(|i| ((i as f32) * 0.37 + phase).sin() * 0.5).collect()
    };
    let (q, k, v, dout) = (wave(0.0), wave(1.0), wave(2.0), wave(3.0));
    let bhsd = [b, h, s, d];
    let to_bshd = [0, 2, 1, 3];

    // Inputs stored [batch, heads, seq, dim]; the attention calls take [batch, seq, heads, dim].
    let qv = TensorView::new(&q, &bhsd)?.permuted(&to_bshd)?;
    let kv = TensorView::new(&k, &bhsd)?.permuted(&to_bshd)?;
    let vv = TensorView::new(&v, &bhsd)?.permuted(&to_bshd)?;
    let opts = AttentionOptions::default().mask_mode(MaskMode::CausalTopLeft);

    let mut out = vec![0.0f32; n];
    let mut lse = vec![0.0f32; b * h * s];
    ctx.forward(
        &qv,
        &kv,
        &vv,
        &mut TensorViewMut::new(&mut out, &bhsd)?.permuted(&to_bshd)?,
        Some(&mut TensorViewMut::new(&mut lse, &[b, h, s])?),
        &opts,
    )?;
    println!("out[0, 0, 0, 0..4] = {:?}", &out[..4]);

    let (mut dq, mut dk, mut dv) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
    ctx.backward(
        &qv,
        &kv,
        &vv,
        &TensorView::new(&out, &bhsd)?.permuted(&to_bshd)?,
        &TensorView::new(&dout, &bhsd)?.permuted(&to_bshd)?,
        &TensorView::new(&lse, &[b, h, s])?,
        &mut TensorViewMut::new(&mut dq, &bhsd)?.permuted(&to_bshd)?,
        &mut TensorViewMut::new(&mut dk, &bhsd)?.permuted(&to_bshd)?,
        &mut TensorViewMut::new(&mut dv, &bhsd)?.permuted(&to_bshd)?,
        &opts,
    )?;
    let norm = |x: &[f32]| x.iter().map(|v| v * v).sum::<f32>().sqrt();
    println!("|dq| = {:.4}, |dk| = {:.4}, |dv| = {:.4}", norm(&dq), norm(&dk), norm(&dv));

    // A mistake is an Error with the library's status and message, not a crash.
    let err = ctx
        .forward(
            &qv,
            &TensorView::new(&k[..n / 2], &[b, s / 2, h, d])?,
            &vv,
            &mut TensorViewMut::new(&mut out, &bhsd)?.permuted(&to_bshd)?,
            None,
            &opts,
        )
        .unwrap_err();
    println!("expected error: {err}");
    Ok(())
}
