//! Bad inputs: each rejected call returns the documented status, a message, and writes nothing.

use std::sync::Arc;

use umfa::classic::{ClassicAttention, MfaBuffer, MfaContext};
use umfa::{
    AttentionOptions, Backend, Context, ContextOptions, DType, Device, Error, MaskMode, Status,
    TensorView, TensorViewMut, Varlen, F16,
};

const SENTINEL: f32 = 12345.0;

fn ctx() -> Context {
    Context::with_options(&ContextOptions::new(Backend::Cpu).num_threads(2)).unwrap()
}

fn fill(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
        })
        .collect()
}

/// A dense problem: q [b, sq, hq, d], k/v [b, sk, hkv, d].
struct Problem {
    b: usize,
    sq: usize,
    sk: usize,
    hq: usize,
    hkv: usize,
    d: usize,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
}

impl Problem {
    fn new(b: usize, sq: usize, sk: usize, hq: usize, hkv: usize, d: usize) -> Problem {
        Problem {
            b,
            sq,
            sk,
            hq,
            hkv,
            d,
            q: fill(b * sq * hq * d, 1),
            k: fill(b * sk * hkv * d, 2),
            v: fill(b * sk * hkv * d, 3),
        }
    }

    fn q_shape(&self) -> [usize; 4] {
        [self.b, self.sq, self.hq, self.d]
    }

    fn kv_shape(&self) -> [usize; 4] {
        [self.b, self.sk, self.hkv, self.d]
    }
}

/// Runs a forward call that must fail with `status` and leave out and lse untouched.
#[allow(clippy::too_many_arguments)]
fn expect_forward_error(
    ctx: &Context,
    q: TensorView<'_>,
    k: TensorView<'_>,
    v: TensorView<'_>,
    out_shape: &[usize],
    lse_shape: &[usize],
    opts: &AttentionOptions<'_>,
    status: Status,
) {
    let mut out = vec![SENTINEL; out_shape.iter().product()];
    let mut lse = vec![SENTINEL; lse_shape.iter().product()];
    let err = ctx
        .forward(
            &q,
            &k,
            &v,
            &mut TensorViewMut::new(&mut out, out_shape).unwrap(),
            Some(&mut TensorViewMut::new(&mut lse, lse_shape).unwrap()),
            opts,
        )
        .expect_err("the call must fail");
    assert_eq!(err.status(), status, "unexpected status; error: {err}");
    assert!(matches!(err, Error::Native { .. }));
    assert!(!err.message().is_empty(), "the library gives a message");
    assert_eq!(ctx.last_error(), err.message());
    assert!(out.iter().all(|&x| x == SENTINEL), "out was written");
    assert!(lse.iter().all(|&x| x == SENTINEL), "lse was written");
}

#[test]
fn valid_call_succeeds() {
    let ctx = ctx();
    let p = Problem::new(2, 5, 7, 4, 2, 16);
    let mut out = vec![SENTINEL; p.q.len()];
    let mut lse = vec![SENTINEL; p.b * p.hq * p.sq];
    ctx.forward(
        &TensorView::new(&p.q, &p.q_shape()).unwrap(),
        &TensorView::new(&p.k, &p.kv_shape()).unwrap(),
        &TensorView::new(&p.v, &p.kv_shape()).unwrap(),
        &mut TensorViewMut::new(&mut out, &p.q_shape()).unwrap(),
        Some(&mut TensorViewMut::new(&mut lse, &[p.b, p.hq, p.sq]).unwrap()),
        &AttentionOptions::default(),
    )
    .unwrap();
    assert!(out.iter().all(|x| x.is_finite() && *x != SENTINEL));
    assert!(lse.iter().all(|x| x.is_finite() && *x != SENTINEL));
}

#[test]
fn shape_mismatch() {
    let ctx = ctx();
    let p = Problem::new(1, 4, 6, 2, 2, 8);
    // v has a different sequence length than k.
    let v = fill(p.b * (p.sk + 1) * p.hkv * p.d, 9);
    expect_forward_error(
        &ctx,
        TensorView::new(&p.q, &p.q_shape()).unwrap(),
        TensorView::new(&p.k, &p.kv_shape()).unwrap(),
        TensorView::new(&v, &[p.b, p.sk + 1, p.hkv, p.d]).unwrap(),
        &p.q_shape(),
        &[p.b, p.hq, p.sq],
        &AttentionOptions::default(),
        Status::ShapeMismatch,
    );
    // lse of the wrong shape.
    expect_forward_error(
        &ctx,
        TensorView::new(&p.q, &p.q_shape()).unwrap(),
        TensorView::new(&p.k, &p.kv_shape()).unwrap(),
        TensorView::new(&p.v, &p.kv_shape()).unwrap(),
        &p.q_shape(),
        &[p.b, p.sq, p.hq + 1],
        &AttentionOptions::default(),
        Status::ShapeMismatch,
    );
}

#[test]
fn heads_not_divisible() {
    let ctx = ctx();
    let p = Problem::new(1, 4, 4, 3, 2, 8);
    expect_forward_error(
        &ctx,
        TensorView::new(&p.q, &p.q_shape()).unwrap(),
        TensorView::new(&p.k, &p.kv_shape()).unwrap(),
        TensorView::new(&p.v, &p.kv_shape()).unwrap(),
        &p.q_shape(),
        &[p.b, p.hq, p.sq],
        &AttentionOptions::default(),
        Status::HeadsNotDivisible,
    );
}

#[test]
fn head_dim_out_of_range() {
    let ctx = ctx();
    for d in [0usize, 257] {
        let p = Problem::new(1, 2, 2, 1, 1, d);
        expect_forward_error(
            &ctx,
            TensorView::new(&p.q, &p.q_shape()).unwrap(),
            TensorView::new(&p.k, &p.kv_shape()).unwrap(),
            TensorView::new(&p.v, &p.kv_shape()).unwrap(),
            &p.q_shape(),
            &[p.b, p.hq, p.sq],
            &AttentionOptions::default(),
            Status::HeadDimOutOfRange,
        );
    }
}

#[test]
fn wrong_rank() {
    let ctx = ctx();
    let p = Problem::new(1, 4, 4, 2, 2, 8);
    // Rank-3 q without varlen.
    expect_forward_error(
        &ctx,
        TensorView::new(&p.q, &[p.sq, p.hq, p.d]).unwrap(),
        TensorView::new(&p.k, &p.kv_shape()).unwrap(),
        TensorView::new(&p.v, &p.kv_shape()).unwrap(),
        &p.q_shape(),
        &[p.b, p.hq, p.sq],
        &AttentionOptions::default(),
        Status::InvalidRank,
    );
}

#[test]
fn mixed_input_dtypes() {
    let ctx = ctx();
    let p = Problem::new(1, 4, 4, 2, 2, 8);
    let k16 = F16::vec_from_f32(&p.k);
    expect_forward_error(
        &ctx,
        TensorView::new(&p.q, &p.q_shape()).unwrap(),
        TensorView::new(&k16, &p.kv_shape()).unwrap(),
        TensorView::new(&p.v, &p.kv_shape()).unwrap(),
        &p.q_shape(),
        &[p.b, p.hq, p.sq],
        &AttentionOptions::default(),
        Status::UnsupportedDtype,
    );
    // An integer tensor as q.
    let qi: Vec<i32> = vec![1; p.q.len()];
    expect_forward_error(
        &ctx,
        TensorView::new(&qi, &p.q_shape()).unwrap(),
        TensorView::new(&p.k, &p.kv_shape()).unwrap(),
        TensorView::new(&p.v, &p.kv_shape()).unwrap(),
        &p.q_shape(),
        &[p.b, p.hq, p.sq],
        &AttentionOptions::default(),
        Status::UnsupportedDtype,
    );
}

#[test]
fn invalid_option_values() {
    let ctx = ctx();
    let p = Problem::new(1, 4, 4, 2, 2, 8);
    let cases = [
        AttentionOptions::default().softcap(-1.0),
        AttentionOptions::default().softmax_scale(f32::NAN),
        AttentionOptions::default().softmax_scale(f32::INFINITY),
    ];
    for opts in &cases {
        expect_forward_error(
            &ctx,
            TensorView::new(&p.q, &p.q_shape()).unwrap(),
            TensorView::new(&p.k, &p.kv_shape()).unwrap(),
            TensorView::new(&p.v, &p.kv_shape()).unwrap(),
            &p.q_shape(),
            &[p.b, p.hq, p.sq],
            opts,
            Status::InvalidArgument,
        );
    }
}

#[test]
fn mask_not_broadcastable() {
    let ctx = ctx();
    let p = Problem::new(1, 4, 6, 2, 2, 8);
    let mask = vec![1u8; 5 * 6];
    let opts = AttentionOptions::default().attn_mask(TensorView::new(&mask, &[5, 6]).unwrap());
    expect_forward_error(
        &ctx,
        TensorView::new(&p.q, &p.q_shape()).unwrap(),
        TensorView::new(&p.k, &p.kv_shape()).unwrap(),
        TensorView::new(&p.v, &p.kv_shape()).unwrap(),
        &p.q_shape(),
        &[p.b, p.hq, p.sq],
        &opts,
        Status::ShapeMismatch,
    );
}

#[test]
fn invalid_seqlens() {
    let ctx = ctx();
    let (hq, d, total_q, total_k) = (2usize, 8usize, 6usize, 6usize);
    let q = fill(total_q * hq * d, 1);
    let k = fill(total_k * hq * d, 2);
    let v = fill(total_k * hq * d, 3);
    for offsets in [[0i32, 4, 2], [1, 2, 6], [0, 3, 7]] {
        let cu = offsets;
        let varlen = Varlen::new(
            TensorView::new(&cu, &[3]).unwrap(),
            TensorView::new(&cu, &[3]).unwrap(),
        );
        let opts = AttentionOptions::default().varlen(varlen);
        expect_forward_error(
            &ctx,
            TensorView::new(&q, &[total_q, hq, d]).unwrap(),
            TensorView::new(&k, &[total_k, hq, d]).unwrap(),
            TensorView::new(&v, &[total_k, hq, d]).unwrap(),
            &[total_q, hq, d],
            &[hq, total_q],
            &opts,
            Status::InvalidSeqlens,
        );
    }
}

#[test]
fn device_mismatch() {
    let ctx = ctx();
    let p = Problem::new(1, 4, 4, 2, 2, 8);
    // Host memory labelled as CUDA memory: the library must refuse it before touching it.
    let q = unsafe {
        TensorView::from_raw_parts(
            p.q.as_ptr().cast(),
            DType::F32,
            Device::Cuda(0),
            &p.q_shape(),
            &umfa::contiguous_strides(&p.q_shape()),
        )
        .unwrap()
    };
    expect_forward_error(
        &ctx,
        q,
        TensorView::new(&p.k, &p.kv_shape()).unwrap(),
        TensorView::new(&p.v, &p.kv_shape()).unwrap(),
        &p.q_shape(),
        &[p.b, p.hq, p.sq],
        &AttentionOptions::default(),
        Status::DeviceMismatch,
    );
}

#[test]
fn backward_rejects_bad_gradient_shape() {
    let ctx = ctx();
    let p = Problem::new(1, 4, 5, 2, 1, 8);
    let opts = AttentionOptions::default().mask_mode(MaskMode::CausalBottomRight);
    let (q, k, v) = (
        TensorView::new(&p.q, &p.q_shape()).unwrap(),
        TensorView::new(&p.k, &p.kv_shape()).unwrap(),
        TensorView::new(&p.v, &p.kv_shape()).unwrap(),
    );
    let mut out = vec![0.0f32; p.q.len()];
    let mut lse = vec![0.0f32; p.b * p.hq * p.sq];
    ctx.forward(
        &q,
        &k,
        &v,
        &mut TensorViewMut::new(&mut out, &p.q_shape()).unwrap(),
        Some(&mut TensorViewMut::new(&mut lse, &[p.b, p.hq, p.sq]).unwrap()),
        &opts,
    )
    .unwrap();
    let dout = fill(p.q.len(), 7);
    let mut dq = vec![SENTINEL; p.q.len()];
    let mut dk = vec![SENTINEL; p.k.len() * 2];
    let mut dv = vec![SENTINEL; p.v.len()];
    let err = ctx
        .backward(
            &q,
            &k,
            &v,
            &TensorView::new(&out, &p.q_shape()).unwrap(),
            &TensorView::new(&dout, &p.q_shape()).unwrap(),
            &TensorView::new(&lse, &[p.b, p.hq, p.sq]).unwrap(),
            &mut TensorViewMut::new(&mut dq, &p.q_shape()).unwrap(),
            &mut TensorViewMut::new(&mut dk, &[p.b, p.sk, 2, p.d]).unwrap(),
            &mut TensorViewMut::new(&mut dv, &p.kv_shape()).unwrap(),
            &opts,
        )
        .unwrap_err();
    assert_eq!(err.status(), Status::ShapeMismatch, "{err}");
    for g in [&dq, &dk, &dv] {
        assert!(g.iter().all(|&x| x == SENTINEL), "a gradient was written");
    }
}

#[test]
fn views_are_checked_in_rust() {
    let data = vec![0.0f32; 64];
    // Does not fit in the slice.
    let e = TensorView::new(&data, &[1, 4, 2, 9]).unwrap_err();
    assert!(matches!(e, Error::InvalidView { .. }));
    assert_eq!(e.status(), Status::InvalidArgument);
    let e = TensorView::with_strides(&data, &[2, 2], &[64, 1]).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    // Rank above UMFA_MAX_RANK.
    let e = TensorView::new(&data, &[1, 1, 1, 1, 64]).unwrap_err();
    assert_eq!(e.status(), Status::InvalidRank);
    // Strides whose extent overflows.
    let e = TensorView::with_strides(&data, &[3, 2], &[usize::MAX / 2, 1]).unwrap_err();
    assert_eq!(e.status(), Status::SizeOverflow);
    // Shape and strides of different lengths.
    let e = TensorView::with_strides(&data, &[4, 4], &[4]).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    // Overlapping output elements.
    let mut out = vec![0.0f32; 64];
    let e = TensorViewMut::with_strides(&mut out, &[1, 4, 2, 8], &[64, 8, 4, 1]).unwrap_err();
    assert_eq!(e.status(), Status::InvalidStride);
    assert!(!e.to_string().is_empty());
}

#[test]
fn unavailable_cuda_is_an_error() {
    let (available, _) = umfa::backend_available(Backend::Cuda).unwrap();
    if available {
        println!("CUDA is available here; nothing to check");
        return;
    }
    let err = Context::new(Backend::Cuda).unwrap_err();
    assert_eq!(err.status(), Status::BackendUnavailable);
    // AUTO falls back to the CPU.
    assert_eq!(Context::new(Backend::Auto).unwrap().backend(), Backend::Cpu);
}

#[test]
fn metal_is_selected_by_name() {
    let (available, devices) = umfa::backend_available(Backend::Metal).unwrap();
    if available {
        // An Apple GPU, or the simulated backend named by UMFA_METAL_LIB.
        assert_eq!(devices, 1);
        assert_eq!(
            Context::new(Backend::Metal).unwrap().backend(),
            Backend::Metal
        );
        return;
    }
    let err = Context::new(Backend::Metal).unwrap_err();
    assert_eq!(err.status(), Status::BackendUnavailable);
    assert!(err.to_string().contains("Metal"), "{err}");
}

#[test]
fn buffers() {
    let ctx = ctx();
    let err = ctx.create_buffer(0).unwrap_err();
    assert_eq!(err.status(), Status::InvalidArgument);
    let mut buf = ctx.create_buffer(64).unwrap();
    assert_eq!(buf.size(), 64);
    assert_eq!(buf.as_bytes().unwrap(), &[0u8; 64][..]);
    let err = buf.upload(60, &[1.0f32, 2.0]).unwrap_err();
    assert_eq!(err.status(), Status::InvalidArgument);
    buf.upload(0, &[1.0f32, 2.0, 3.0, 4.0]).unwrap();
    assert!(
        buf.view::<f32>(&[17]).is_err(),
        "a view larger than the buffer"
    );
    let v = buf.view::<f32>(&[4]).unwrap();
    assert_eq!(v.shape(), &[4]);

    let mut host = vec![5.0f32; 8];
    let wrapped = ctx.wrap_buffer(&mut host).unwrap();
    assert_eq!(wrapped.size(), 32);
    drop(wrapped);
    assert_eq!(
        host,
        vec![5.0; 8],
        "destroying a wrapped buffer leaves the memory alone"
    );
}

#[test]
fn classic_rejects_small_buffers() {
    let ctx = MfaContext::new().unwrap();
    let small = MfaBuffer::new(&ctx, 16).unwrap();
    let k = MfaBuffer::new(&ctx, 4 * 8 * 4).unwrap();
    let v = MfaBuffer::new(&ctx, 4 * 8 * 4).unwrap();
    let mut out = MfaBuffer::new(&ctx, 4 * 8 * 4).unwrap();
    out.copy_from_slice(&[SENTINEL; 32]).unwrap();
    let err = ctx
        .attention_forward(
            &small,
            &k,
            &v,
            &mut out,
            &ClassicAttention::new(1, 4, 4, 1, 8),
        )
        .unwrap_err();
    match &err {
        Error::Classic { code, .. } => assert_eq!(*code, umfa::sys::MFA_ERROR_INVALID_ARGS as i32),
        other => panic!("expected a classic error, got {other:?}"),
    }
    assert!(out.to_vec::<f32>().iter().all(|&x| x == SENTINEL));
    assert!(umfa::classic::is_device_supported());
    let (major, minor, patch) = umfa::classic::get_version();
    assert_eq!(
        (major as u32, minor as u32, patch as u32),
        umfa::version(),
        "classic and umfa versions agree"
    );
}

#[test]
fn context_is_shared_across_threads() {
    let ctx = Arc::new(ctx());
    let p = Arc::new(Problem::new(2, 33, 47, 4, 2, 32));
    let run = |ctx: &Context, p: &Problem| {
        let mut out = vec![0.0f32; p.q.len()];
        ctx.forward(
            &TensorView::new(&p.q, &p.q_shape()).unwrap(),
            &TensorView::new(&p.k, &p.kv_shape()).unwrap(),
            &TensorView::new(&p.v, &p.kv_shape()).unwrap(),
            &mut TensorViewMut::new(&mut out, &p.q_shape()).unwrap(),
            None,
            &AttentionOptions::default().mask_mode(MaskMode::CausalTopLeft),
        )
        .unwrap();
        out
    };
    let reference = run(&ctx, &p);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (ctx, p) = (Arc::clone(&ctx), Arc::clone(&p));
            std::thread::spawn(move || run(&ctx, &p))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), reference);
    }
}

#[test]
fn library_info() {
    assert_eq!(umfa::abi_version(), umfa::sys::UMFA_ABI_VERSION);
    let (major, minor, patch) = umfa::version();
    assert_eq!(umfa::version_string(), format!("{major}.{minor}.{patch}"));
    assert!(!umfa::build_info().is_empty());
    assert!(umfa::backend_available(Backend::Cpu).unwrap().0);
    assert!(!Status::ShapeMismatch.description().is_empty());
    assert_eq!(Status::from_code(5), Some(Status::ShapeMismatch));
    assert_eq!(Status::from_code(0), None);
    assert_eq!(Status::from_code(99), Some(Status::Unknown(99)));
}
