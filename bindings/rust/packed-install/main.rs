//! The program of the packed-artifact install test (test.sh): a fresh binary crate outside the
//! repository that depends on the packed `umfa` crate like a crates.io user, computes attention
//! on a small grouped-query, bottom-right-causal problem, and checks the output and the
//! log-sum-exp against a float64 reference computed here. Exits non-zero on any mismatch.

use umfa::{AttentionOptions, Backend, Context, MaskMode, TensorView, TensorViewMut};

/// Deterministic values in [-1, 1) (a 64-bit LCG), so the check needs no dependency.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

fn main() {
    println!("{}", umfa::build_info());
    let (b, sq, sk, hq, hkv, d) = (2usize, 5usize, 7usize, 4usize, 2usize, 16usize);
    let q = values(b * sq * hq * d, 1);
    let k = values(b * sk * hkv * d, 2);
    let v = values(b * sk * hkv * d, 3);
    let mut out = vec![0.0f32; q.len()];
    let mut lse = vec![0.0f32; b * hq * sq];

    let ctx = Context::new(Backend::Cpu).expect("CPU context");
    ctx.forward(
        &TensorView::new(&q, &[b, sq, hq, d]).unwrap(),
        &TensorView::new(&k, &[b, sk, hkv, d]).unwrap(),
        &TensorView::new(&v, &[b, sk, hkv, d]).unwrap(),
        &mut TensorViewMut::new(&mut out, &[b, sq, hq, d]).unwrap(),
        Some(&mut TensorViewMut::new(&mut lse, &[b, hq, sq]).unwrap()),
        &AttentionOptions::default().mask_mode(MaskMode::CausalBottomRight),
    )
    .expect("forward");

    // float64 reference: softmax(q k^T / sqrt(d)) v, query i sees keys j <= i + (sk - sq), query
    // head h reads key/value head h / (hq / hkv).
    let scale = 1.0 / (d as f64).sqrt();
    let (mut max_out_err, mut max_lse_err) = (0.0f64, 0.0f64);
    for bi in 0..b {
        for h in 0..hq {
            let kh = h / (hq / hkv);
            for i in 0..sq {
                let qi = |c: usize| q[((bi * sq + i) * hq + h) * d + c] as f64;
                let kv_at =
                    |t: &[f32], j: usize, c: usize| t[((bi * sk + j) * hkv + kh) * d + c] as f64;
                let last = i + (sk - sq);
                let scores: Vec<f64> = (0..=last)
                    .map(|j| (0..d).map(|c| qi(c) * kv_at(&k, j, c)).sum::<f64>() * scale)
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                let ref_lse = m + sum.ln();
                max_lse_err = max_lse_err.max((lse[(bi * hq + h) * sq + i] as f64 - ref_lse).abs());
                for c in 0..d {
                    let o: f64 = scores
                        .iter()
                        .enumerate()
                        .map(|(j, s)| (s - ref_lse).exp() * kv_at(&v, j, c))
                        .sum();
                    let got = out[((bi * sq + i) * hq + h) * d + c] as f64;
                    max_out_err = max_out_err.max((got - o).abs());
                }
            }
        }
    }
    println!(
        "packed umfa: [{b}, {sq}, {hq}, {d}] x [{b}, {sk}, {hkv}, {d}] causal GQA forward: \
         max |out - ref| = {max_out_err:.2e}, max |lse - ref| = {max_lse_err:.2e}"
    );
    if !(max_out_err < 1e-5 && max_lse_err < 1e-5) {
        eprintln!("packed umfa: result differs from the float64 reference");
        std::process::exit(1);
    }
    println!("packed umfa: ok");
}
