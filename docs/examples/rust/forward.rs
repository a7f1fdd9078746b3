//! Forward and backward attention with the safe `umfa` crate.
use umfa::{AttentionOptions, Backend, Context, MaskMode, TensorView, TensorViewMut};

fn main() -> Result<(), umfa::Error> {
    println!("umfa {} (ABI {})", umfa::version_string(), umfa::abi_version());
    let ctx = Context::new(Backend::Cpu)?;

    // [batch, seqlen, heads, head_dim] (FlashAttention's BSHD); 8 query heads share 2 kv heads.
    let (b, n, hq, hkv, d) = (1, 64, 8, 2, 32);
    let q: Vec<f32> = (0..b * n * hq * d).map(|i| (i as f32 * 0.01).sin()).collect();
    let k: Vec<f32> = (0..b * n * hkv * d).map(|i| (i as f32 * 0.02).cos()).collect();
    let v: Vec<f32> = (0..b * n * hkv * d).map(|i| (i % 7) as f32).collect();
    let mut out = vec![0.0f32; q.len()];
    let mut lse = vec![0.0f32; b * hq * n];

    let options = AttentionOptions::new().mask_mode(MaskMode::CausalBottomRight);
    let (qv, kv, vv) = (
        TensorView::new(&q, &[b, n, hq, d])?,
        TensorView::new(&k, &[b, n, hkv, d])?,
        TensorView::new(&v, &[b, n, hkv, d])?,
    );
    ctx.forward(
        &qv,
        &kv,
        &vv,
        &mut TensorViewMut::new(&mut out, &[b, n, hq, d])?,
        Some(&mut TensorViewMut::new(&mut lse, &[b, hq, n])?),
        &options,
    )?;
    // Causal: query 0 sees only key 0, so its output row equals v's first row.
    assert_eq!(&out[..d], &v[..d]);
    println!("out[0, 0, 0, ..4] = {:?}", &out[..4]);

    // Gradients, given dL/dout; the same options as forward.
    let dout = vec![1.0f32; out.len()];
    let (mut dq, mut dk, mut dv) = (vec![0.0f32; q.len()], vec![0.0f32; k.len()], vec![0.0f32; v.len()]);
    ctx.backward(
        &qv,
        &kv,
        &vv,
        &TensorView::new(&out, &[b, n, hq, d])?,
        &TensorView::new(&dout, &[b, n, hq, d])?,
        &TensorView::new(&lse, &[b, hq, n])?,
        &mut TensorViewMut::new(&mut dq, &[b, n, hq, d])?,
        &mut TensorViewMut::new(&mut dk, &[b, n, hkv, d])?,
        &mut TensorViewMut::new(&mut dv, &[b, n, hkv, d])?,
        &options,
    )?;
    // With dout = 1 every query row distributes weight 1 over the keys: sum(dv) = heads·n·d.
    let total: f32 = dv.iter().sum();
    println!("sum(dv) = {total}");
    assert!((total - (hq * n * d) as f32).abs() < 1e-2 * total);
    Ok(())
}
