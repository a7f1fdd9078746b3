"""umfa.torch against torch.nn.functional.scaled_dot_product_attention on the CPU: outputs and
gradients for float32/bfloat16/float16 over masks, GQA, causal variants and layouts; a
float64-checked gradient test; the custom op's registration; patch() with its fallbacks; and the
FlashAttention-style functions on torch tensors.

Tolerances. umfa accumulates in float32 whatever the input dtype. float32 results are compared
with PyTorch's float32 results (differences are float32 rounding, ~1e-6). For float16/bfloat16
the reference is PyTorch's math on the same (rounded) inputs upcast to float32, so the only
legitimate difference is the final rounding of out/grads to 11/8 significant bits (plus
float32 noise): atol/rtol are a few units of that rounding at magnitudes ~1.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import umfa  # noqa: E402
import umfa.torch as ut  # noqa: E402
from umfa import Status, UmfaError  # noqa: E402

from conftest import record_error  # noqa: E402

DT = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# (atol, rtol) for out and for grads, per dtype (see the module docstring)
TOL = {
    "float32": ((2e-6, 2e-5), (1e-5, 1e-4)),
    "bfloat16": ((1.6e-2, 2e-2), (4e-2, 4e-2)),
    "float16": ((2e-3, 4e-3), (8e-3, 8e-3)),
}


def _gen(seed):
    g = torch.Generator().manual_seed(seed)
    return lambda *s: torch.randn(*s, generator=g)


def _check(name, dtype, got, ref, tol):
    atol, rtol = tol
    got32, ref32 = got.float(), ref.float()
    err = (got32 - ref32).abs()
    record_error(dtype, name, err.max().item() if err.numel() else 0.0)
    torch.testing.assert_close(got32, ref32, atol=atol, rtol=rtol, msg=lambda m: f"{name}: {m}")


# Each variant: (id, B, Hq, Hkv, L, S, D, kwargs builder)
def _variants():
    yield "plain", 2, 4, 4, 9, 9, 16, lambda r: {}
    yield "causal_square", 2, 4, 4, 12, 12, 32, lambda r: {"is_causal": True}
    yield "causal_L<S", 1, 2, 2, 5, 13, 16, lambda r: {"is_causal": True}
    yield "causal_L>S", 1, 2, 2, 13, 5, 16, lambda r: {"is_causal": True}
    yield "gqa_causal", 2, 8, 2, 10, 10, 16, lambda r: {"is_causal": True, "enable_gqa": True}
    yield "mqa", 1, 4, 1, 7, 11, 8, lambda r: {"enable_gqa": True}
    yield "scale", 1, 2, 2, 8, 8, 64, lambda r: {"scale": 0.3}
    yield "bool_mask_LS", 2, 2, 2, 6, 9, 16, lambda r: {"attn_mask": r(6, 9) > 0}
    yield "bool_mask_B1LS", 2, 2, 2, 6, 9, 16, lambda r: {"attn_mask": r(2, 1, 6, 9) > -0.5}
    yield "bool_mask_1S", 2, 2, 2, 6, 9, 16, lambda r: {"attn_mask": r(1, 9) > 0}
    yield "add_mask_BHLS", 2, 2, 2, 6, 9, 16, lambda r: {"attn_mask": r(2, 2, 6, 9)}
    yield "add_mask_1LS_inf", 1, 2, 2, 6, 9, 16, lambda r: {
        "attn_mask": torch.where(r(1, 6, 9) > 1.0, -math.inf, r(1, 6, 9))}
    yield "masked_rows", 1, 2, 2, 6, 9, 16, lambda r: {
        "attn_mask": torch.cat([torch.zeros(2, 9, dtype=torch.bool), r(4, 9) > 0])}
    yield "mask_and_causal", 2, 2, 2, 7, 9, 16, lambda r: {"attn_mask": r(2, 1, 7, 9),
                                                            "is_causal": True}
    yield "head_dim_128", 1, 2, 2, 17, 33, 128, lambda r: {"is_causal": True}


VARIANTS = list(_variants())


def _make(B, Hq, Hkv, L, S, D, dtype, seed, layout="bhsd"):
    r = _gen(seed)
    if layout == "bshd":  # BHSD views of BSHD storage (e.g. after a projection + transpose)
        q = r(B, L, Hq, D).to(dtype).transpose(1, 2)
        k = r(B, S, Hkv, D).to(dtype).transpose(1, 2)
        v = r(B, S, Hkv, D).to(dtype).transpose(1, 2)
    else:
        q, k, v = r(B, Hq, L, D).to(dtype), r(B, Hkv, S, D).to(dtype), r(B, Hkv, S, D).to(dtype)
    return [t.detach().requires_grad_() for t in (q, k, v)], r


def _cast_kw(kw, dtype):
    m = kw.get("attn_mask")
    if m is not None and m.dtype != torch.bool:
        kw = dict(kw, attn_mask=m.to(dtype))
    return kw


@pytest.mark.parametrize("dtype", list(DT))
@pytest.mark.parametrize("variant", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_sdpa_matches_torch(variant, dtype):
    name, B, Hq, Hkv, L, S, D, build = variant
    tdt = DT[dtype]
    (q, k, v), r = _make(B, Hq, Hkv, L, S, D, tdt, seed=zlib.crc32(name.encode()) % 1000,
                         layout="bshd" if "gqa" in name or "plain" in name else "bhsd")
    kw = build(r)
    dout = r(B, Hq, L, D).to(tdt)
    out = ut.scaled_dot_product_attention(q, k, v, **_cast_kw(kw, tdt))
    assert out.dtype == tdt and out.shape == (B, Hq, L, D)
    dq, dk, dv = torch.autograd.grad(out, (q, k, v), dout)

    # Reference: PyTorch on the same inputs in float32 (exact for float32 inputs).
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    ref = F.scaled_dot_product_attention(q32, k32, v32, **_cast_kw(kw, torch.float32))
    rq, rk, rv = torch.autograd.grad(ref, (q32, k32, v32), dout.float())
    tol_out, tol_grad = TOL[dtype]
    _check("out", dtype, out, ref, tol_out)
    _check("dq", dtype, dq, rq, tol_grad)
    _check("dk", dtype, dk, rk, tol_grad)
    _check("dv", dtype, dv, rv, tol_grad)
    if name == "masked_rows":  # rows with no visible key: zeros, zero gradients, no NaN
        assert torch.all(out[:, :, :2] == 0) and torch.all(dq[:, :, :2] == 0)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_matches_torch_same_dtype(dtype):
    # Against PyTorch computing in the low precision itself: looser, both sides round.
    tdt = DT[dtype]
    (q, k, v), r = _make(2, 4, 2, 16, 16, 32, tdt, seed=7)
    out = ut.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    tol = 3e-2 if dtype == "bfloat16" else 4e-3
    torch.testing.assert_close(out, ref, atol=tol, rtol=tol)


def test_torch_views_are_zero_copy():
    from umfa import _views

    t = torch.randn(2, 5, 3, 8)  # BSHD storage
    bhsd = t.transpose(1, 2)
    v = _views.make_view(bhsd, "q")
    assert v.tensor.data == bhsd.data_ptr() == t.data_ptr()
    assert list(v.tensor.strides) == list(bhsd.stride())
    sliced = t[:, 1:]
    assert _views.make_view(sliced, "q").tensor.data == sliced.data_ptr() != t.data_ptr()


def test_input_ranks_3_and_5():
    r = _gen(3)
    q, k, v = r(2, 7, 16), r(2, 9, 16), r(2, 9, 16)
    m = r(2, 7, 9) > 0
    torch.testing.assert_close(ut.scaled_dot_product_attention(q, k, v, attn_mask=m),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=m))
    q5, k5, v5 = r(2, 3, 2, 7, 16), r(2, 3, 2, 9, 16), r(2, 3, 2, 9, 16)
    m5 = r(3, 1, 7, 9)
    torch.testing.assert_close(ut.scaled_dot_product_attention(q5, k5, v5, attn_mask=m5),
                               F.scaled_dot_product_attention(q5, k5, v5, attn_mask=m5),
                               atol=2e-6, rtol=2e-5)
    m5b = r(2, 3, 1, 7, 9)
    torch.testing.assert_close(ut.scaled_dot_product_attention(q5, k5, v5, attn_mask=m5b),
                               F.scaled_dot_product_attention(q5, k5, v5, attn_mask=m5b),
                               atol=2e-6, rtol=2e-5)


def test_gradients_against_float64():
    """Analytic gradients (float32 accumulation) against PyTorch's float64 gradients of the
    same inputs: agreement to float32 rounding."""
    (q, k, v), r = _make(2, 4, 2, 11, 13, 16, torch.float32, seed=11)
    m = r(2, 1, 11, 13)
    dout = r(2, 4, 11, 16)
    out = ut.scaled_dot_product_attention(q, k, v, attn_mask=m, enable_gqa=True)
    g = torch.autograd.grad(out, (q, k, v), dout)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref = F.scaled_dot_product_attention(q64, k64, v64, attn_mask=m.double(), enable_gqa=True)
    g64 = torch.autograd.grad(ref, (q64, k64, v64), dout.double())
    torch.testing.assert_close(out.double(), ref, atol=1e-6, rtol=1e-5)
    for a, b in zip(g, g64):
        torch.testing.assert_close(a.double(), b, atol=5e-6, rtol=5e-5)


@pytest.mark.parametrize("kw", [{}, {"is_causal": True}, {"attn_mask": "bool"},
                                {"enable_gqa": True}], ids=["plain", "causal", "mask", "gqa"])
def test_gradcheck(kw):
    """torch.autograd.gradcheck needs float64; umfa computes in float32. The checked function
    casts float64 inputs to float32, runs umfa, and casts back, so gradcheck compares umfa's
    analytic backward with central differences of umfa's own forward. With eps=1e-3 the
    float32 rounding of the forward (~6e-8 relative) puts ~3e-5 of noise into the numerical
    Jacobian, hence atol=1e-3/rtol=1e-3 instead of gradcheck's float64 defaults."""
    hk = 1 if kw.get("enable_gqa") else 2
    g = torch.Generator().manual_seed(5)
    q = torch.randn(1, 2, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    k = torch.randn(1, hk, 5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    v = torch.randn(1, hk, 5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    extra = dict(kw)
    if extra.get("attn_mask") == "bool":
        extra["attn_mask"] = torch.tensor([[True, False, True, True, False]])

    def fn(q, k, v):
        return ut.scaled_dot_product_attention(q.float(), k.float(), v.float(), **extra).double()

    assert torch.autograd.gradcheck(fn, (q, k, v), eps=1e-3, atol=1e-3, rtol=1e-3)


def test_custom_op_registration():
    r = _gen(9)
    q, k, v = (r(1, 2, 4, 8).requires_grad_() for _ in range(3))
    args = (q, k, v, None, None, None, None, 0, 0, ut.LAYOUT_BHSD, 1, 0.0, 0.0, -1, -1, False)
    torch.library.opcheck(torch.ops.umfa.attention_fwd.default, args,
                          test_utils=("test_schema", "test_autograd_registration",
                                      "test_faketensor"))


def test_unsupported_calls_raise_clearly():
    r = _gen(1)
    q = r(1, 2, 4, 8)
    with pytest.raises(UmfaError) as e:
        ut.scaled_dot_product_attention(q, q, q, dropout_p=0.1)
    assert e.value.status == Status.UNSUPPORTED and "dropout" in e.value.message
    with pytest.raises(UmfaError) as e:
        ut.scaled_dot_product_attention(q.double(), q.double(), q.double())
    assert e.value.status == Status.UNSUPPORTED_DTYPE
    with pytest.raises(UmfaError) as e:
        ut.scaled_dot_product_attention(q, q, q, attn_mask=r(4, 4).requires_grad_())
    assert e.value.status == Status.UNSUPPORTED
    with pytest.raises(UmfaError) as e:
        # 4 query heads, 2 key/value heads: grouped-query attention needs enable_gqa (one
        # key/value head would broadcast, as in PyTorch)
        ut.scaled_dot_product_attention(r(1, 4, 4, 8), r(1, 2, 4, 8), r(1, 2, 4, 8))
    assert e.value.status == Status.SHAPE_MISMATCH
    with pytest.raises(UmfaError) as e:
        ut.scaled_dot_product_attention(q, r(1, 3, 4, 8), r(1, 3, 4, 8), enable_gqa=True)
    assert e.value.status == Status.HEADS_NOT_DIVISIBLE


# ---------------------------------------------------------------------------------------------
# patch()
# ---------------------------------------------------------------------------------------------


def test_patch_routes_and_restores():
    original = F.scaled_dot_product_attention
    r = _gen(2)
    q, k, v = r(2, 2, 5, 8), r(2, 2, 6, 8), r(2, 2, 6, 8)
    ut.stats.reset()
    with ut.patched() as st:
        assert ut.is_patched() and F.scaled_dot_product_attention is not original
        with ut.patched():  # nests
            pass
        assert ut.is_patched()
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        assert st.umfa_calls == 1 and st.total_fallbacks == 0
    assert F.scaled_dot_product_attention is original and not ut.is_patched()
    torch.testing.assert_close(out, original(q, k, v, is_causal=True))


def test_patch_fallbacks_are_counted():
    r = _gen(4)
    q = r(1, 2, 4, 8)
    ut.stats.reset()
    with ut.patched() as st:
        torch.manual_seed(0)
        F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
        out64 = F.scaled_dot_product_attention(q.double(), q.double(), q.double())
        assert out64.dtype == torch.float64
        m = r(4, 4).requires_grad_()
        F.scaled_dot_product_attention(q, q, q, attn_mask=m).sum().backward()
        assert m.grad is not None  # PyTorch computed the mask gradient
        with pytest.raises(RuntimeError):  # PyTorch's own error for an invalid call
            F.scaled_dot_product_attention(q, r(1, 3, 4, 8), r(1, 3, 4, 8), enable_gqa=True)
        F.scaled_dot_product_attention(q, r(1, 2, 4, 8), r(1, 2, 4, 6))  # value head dim differs
        F.scaled_dot_product_attention(q, q, q)
    assert st.fallbacks["dropout"] == 1
    assert st.fallbacks["dtype"] == 1
    assert st.fallbacks["mask_grad"] == 1
    assert st.fallbacks["shape"] == 1
    assert st.fallbacks["head_dim"] == 1
    assert st.umfa_calls == 1
    assert ut.fallback_count() == 5


def test_patch_nested_tensors_fall_back():
    r = _gen(6)
    try:
        nt = torch.nested.nested_tensor([r(2, 3, 8), r(2, 5, 8)], layout=torch.jagged)
    except Exception as exc:  # pragma: no cover
        pytest.skip(f"nested tensors unavailable: {exc}")
    ut.stats.reset()
    with ut.patched() as st:
        try:
            F.scaled_dot_product_attention(nt, nt, nt)
        except Exception:
            pass  # whether PyTorch runs it on this build is PyTorch's business
    assert st.fallbacks["nested"] == 1 and st.umfa_calls == 0


def test_patch_multihead_attention_module():
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(32, 4, batch_first=True).train()
    x = torch.randn(2, 10, 32)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(10)
    ref, _ = mha(x, x, x, attn_mask=mask, need_weights=False)
    ut.stats.reset()
    with ut.patched() as st:
        out, _ = mha(x, x, x, attn_mask=mask, need_weights=False)
    assert st.umfa_calls == 1
    torch.testing.assert_close(out, ref, atol=2e-6, rtol=1e-5)


def test_patch_under_autocast():
    r = _gen(8)
    q, k, v = r(1, 2, 8, 16), r(1, 2, 8, 16), r(1, 2, 8, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        with ut.patched() as st:
            st.reset()
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            assert st.umfa_calls == 1
    assert out.dtype == ref.dtype
    torch.testing.assert_close(out.float(), ref.float(), atol=3e-2, rtol=3e-2)


# ---------------------------------------------------------------------------------------------
# FlashAttention-style functions on torch tensors
# ---------------------------------------------------------------------------------------------


def _ref_bshd(q, k, v, causal=False, window=(-1, -1), softcap=0.0, alibi=None, scale=None):
    """float64 autograd reference in BSHD with FlashAttention semantics."""
    q, k, v = (t.permute(0, 2, 1, 3) for t in (q, k, v))  # BHSD
    B, H, L, D = q.shape
    S = k.shape[2]
    k = k.repeat_interleave(H // k.shape[1], dim=1)
    v = v.repeat_interleave(H // v.shape[1], dim=1)
    s = (q @ k.transpose(-1, -2)) * (scale if scale is not None else D ** -0.5)
    if softcap:
        s = softcap * torch.tanh(s / softcap)
    i = torch.arange(L)[:, None]
    j = torch.arange(S)[None, :]
    off = S - L
    vis = torch.ones(L, S, dtype=torch.bool)
    if causal:
        vis &= j <= i + off
    if window[0] >= 0:
        vis &= (j - i - off) >= -window[0]
    if window[1] >= 0:
        vis &= (j - i - off) <= window[1]
    if alibi is not None:
        s = s - alibi.view(1, H, 1, 1).to(s.dtype) * (i + off - j).abs()
    s = s.masked_fill(~vis, -math.inf)
    lse = torch.logsumexp(s, dim=-1)
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)
    return (p @ v).permute(0, 2, 1, 3), lse


@pytest.mark.parametrize("opts", [
    {},
    {"causal": True},
    {"causal": True, "window_size": (4, 0)},
    {"softcap": 1.5},
    {"alibi": True, "causal": True},
    {"softmax_scale": 0.5, "window_size": (3, 2)},
], ids=["plain", "causal", "window", "softcap", "alibi", "scale_window"])
def test_flash_attn_func_torch(opts):
    r = _gen(12)
    B, L, S, Hq, Hkv, D = 2, 7, 10, 4, 2, 16
    q, k, v = (r(B, n, h, D).requires_grad_() for n, h in ((L, Hq), (S, Hkv), (S, Hkv)))
    kw = dict(opts)
    alibi = None
    if kw.pop("alibi", False):
        alibi = torch.tensor([0.5, 0.25, 0.125, 0.0625])
        kw["alibi_slopes"] = alibi
    out, lse = umfa.flash_attn_func(q, k, v, return_lse=True, **kw)
    assert isinstance(out, torch.Tensor) and lse.shape == (B, Hq, L)
    assert lse.dtype == torch.float32 and not lse.requires_grad
    dout = r(B, L, Hq, D)
    g = torch.autograd.grad(out, (q, k, v), dout)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref, ref_lse = _ref_bshd(q64, k64, v64, causal=kw.get("causal", False),
                             window=kw.get("window_size", (-1, -1)),
                             softcap=kw.get("softcap", 0.0), alibi=alibi,
                             scale=kw.get("softmax_scale"))
    g64 = torch.autograd.grad(ref, (q64, k64, v64), dout.double())
    torch.testing.assert_close(out.double(), ref, atol=2e-6, rtol=2e-5)
    torch.testing.assert_close(lse.double(), ref_lse, atol=2e-6, rtol=2e-5)
    for a, b in zip(g, g64):
        torch.testing.assert_close(a.double(), b, atol=1e-5, rtol=1e-4)
    # numpy inputs give the same numbers
    out_np = umfa.flash_attn_func(q.detach().numpy(), k.detach().numpy(), v.detach().numpy(),
                                  **{**kw, **({"alibi_slopes": alibi.numpy()} if alibi is not None
                                              else {})})
    np.testing.assert_array_equal(out_np, out.detach().numpy())


def test_flash_attn_varlen_torch_grads():
    r = _gen(13)
    lens_q, lens_k = [3, 5, 2], [4, 5, 6]
    cq = torch.tensor([0] + list(np.cumsum(lens_q)), dtype=torch.int32)
    ck = torch.tensor([0] + list(np.cumsum(lens_k)), dtype=torch.int64)
    q = r(int(cq[-1]), 4, 8).requires_grad_()
    k = r(int(ck[-1]), 2, 8).requires_grad_()
    v = r(int(ck[-1]), 2, 8).requires_grad_()
    out, lse = umfa.flash_attn_varlen_func(q, k, v, cq, ck, max(lens_q), max(lens_k),
                                           causal=True, return_lse=True)
    assert lse.shape == (4, int(cq[-1]))
    dout = r(*out.shape)
    g = torch.autograd.grad(out, (q, k, v), dout)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    outs, lses = [], []
    for i in range(3):
        qs, ks = slice(int(cq[i]), int(cq[i + 1])), slice(int(ck[i]), int(ck[i + 1]))
        o, l_ = _ref_bshd(q64[None, qs], k64[None, ks], v64[None, ks], causal=True)
        outs.append(o[0])
        lses.append(l_[0])
    ref = torch.cat(outs)
    g64 = torch.autograd.grad(ref, (q64, k64, v64), dout.double())
    torch.testing.assert_close(out.double(), ref, atol=2e-6, rtol=2e-5)
    torch.testing.assert_close(lse.double(), torch.cat(lses, dim=1), atol=2e-6, rtol=2e-5)
    for a, b in zip(g, g64):
        torch.testing.assert_close(a.double(), b, atol=1e-5, rtol=1e-4)


def test_flash_attn_torch_errors():
    q = torch.randn(1, 4, 2, 8)
    with pytest.raises(UmfaError) as e:
        umfa.flash_attn_func(q, q, q, dropout_p=0.1)
    assert e.value.status == Status.UNSUPPORTED
    with pytest.raises(UmfaError) as e:
        umfa.flash_attn_func(q, q.numpy(), q)
    assert e.value.status == Status.INVALID_ARGUMENT
    with pytest.raises(UmfaError) as e:
        umfa.flash_attn_func(q, torch.randn(1, 4, 3, 8), torch.randn(1, 4, 3, 8))
    assert e.value.status == Status.HEADS_NOT_DIVISIBLE


@pytest.mark.skipif(not ut.cuda_available(), reason="needs a CUDA device and libumfa_cuda")
def test_cuda_matches_cpu():  # pragma: no cover - exercised only on CUDA machines
    r = _gen(21)
    q, k, v = r(2, 4, 64, 64), r(2, 2, 64, 64), r(2, 2, 64, 64)
    qc, kc, vc = (t.cuda().requires_grad_() for t in (q, k, v))
    out = ut.scaled_dot_product_attention(qc, kc, vc, is_causal=True, enable_gqa=True)
    out.sum().backward()
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    torch.testing.assert_close(out.cpu(), ref, atol=1e-4, rtol=1e-4)


def test_torch_compile_traces_the_op():
    # The fake implementations and the autograd registration let the op sit in a full graph.
    q = torch.randn(1, 2, 8, 16, requires_grad=True)

    def f(q):
        return ut.scaled_dot_product_attention(q, q, q, is_causal=True).square().sum()

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    loss = compiled(q)
    (g,) = torch.autograd.grad(loss, q)
    q2 = q.detach().requires_grad_()
    loss2 = f(q2)
    (g2,) = torch.autograd.grad(loss2, q2)
    torch.testing.assert_close(loss, loss2)
    torch.testing.assert_close(g, g2)
