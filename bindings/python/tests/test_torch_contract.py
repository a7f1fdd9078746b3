"""umfa.torch.scaled_dot_product_attention against torch.nn.functional.scaled_dot_product_attention
on the shape rules PyTorch accepts beyond the plain 4-D case: ranks 2 and 3, ranks that differ
between query and key/value, broadcasting of batch and head dimensions (a key/value with batch 1
or one head serves every query), grouped-query attention in 3-D and 5-D, and the errors for what
neither implementation accepts. Outputs and gradients (of every input) are compared; the
deliberate differences from PyTorch are pinned down at the end."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import umfa.torch as ut  # noqa: E402
from umfa import Status, UmfaError  # noqa: E402

from conftest import record_error  # noqa: E402


def _gen(seed):
    g = torch.Generator().manual_seed(seed)
    return lambda *s: torch.randn(*s, generator=g)


# (id, query shape, key shape, value shape, kwargs)
CASES = [
    ("rank2", (5, 8), (7, 8), (7, 8), {}),
    ("rank2_causal", (9, 8), (4, 8), (4, 8), {"is_causal": True}),
    ("rank3", (3, 5, 8), (3, 7, 8), (3, 7, 8), {"is_causal": True}),
    ("rank3_gqa", (4, 5, 8), (2, 7, 8), (2, 7, 8), {"enable_gqa": True}),
    ("q4_k3", (2, 3, 5, 8), (3, 7, 8), (3, 7, 8), {}),
    ("q4_k2", (2, 3, 5, 8), (7, 8), (7, 8), {"is_causal": True}),
    ("q2_k4", (5, 8), (2, 3, 7, 8), (2, 3, 7, 8), {}),
    ("q3_k4_batch", (3, 5, 8), (2, 3, 7, 8), (2, 3, 7, 8), {}),
    ("q_batch1", (1, 3, 5, 8), (2, 3, 7, 8), (2, 3, 7, 8), {}),
    ("kv_batch1", (2, 3, 5, 8), (1, 3, 7, 8), (1, 3, 7, 8), {"is_causal": True}),
    ("q_heads1", (2, 1, 5, 8), (2, 3, 7, 8), (2, 3, 7, 8), {}),
    ("kv_heads1_no_gqa", (2, 4, 5, 8), (2, 1, 7, 8), (2, 1, 7, 8), {}),
    ("k_heads1_v_heads4", (2, 4, 5, 8), (2, 1, 7, 8), (2, 4, 7, 8), {}),
    ("gqa_kv_heads1", (2, 8, 5, 8), (2, 1, 7, 8), (2, 1, 7, 8), {"enable_gqa": True}),
    ("gqa_kv_batch1", (2, 8, 5, 8), (1, 2, 7, 8), (1, 2, 7, 8), {"enable_gqa": True}),
    ("rank5_gqa", (2, 2, 8, 5, 8), (2, 2, 2, 7, 8), (2, 2, 2, 7, 8), {"enable_gqa": True}),
    ("rank5_broadcast", (2, 2, 4, 5, 8), (1, 2, 4, 7, 8), (1, 2, 4, 7, 8), {}),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_shapes_match_torch(case, dtype):
    name, qs, ks, vs, kw = case
    r = _gen(len(name))
    q, k, v = (r(*s).to(dtype).requires_grad_() for s in (qs, ks, vs))
    out = ut.scaled_dot_product_attention(q, k, v, **kw)
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    ref = F.scaled_dot_product_attention(q32, k32, v32, **kw)
    assert out.shape == ref.shape and out.dtype == dtype
    dout = r(*ref.shape)
    g = torch.autograd.grad(out, (q, k, v), dout.to(dtype))
    rg = torch.autograd.grad(ref, (q32, k32, v32), dout)
    if dtype == torch.float32:
        tol_out, tol_grad = dict(atol=2e-6, rtol=2e-5), dict(atol=1e-5, rtol=1e-4)
    else:
        tol_out, tol_grad = dict(atol=1.6e-2, rtol=2e-2), dict(atol=6e-2, rtol=4e-2)
    label = "float32" if dtype == torch.float32 else "bfloat16"
    record_error(label, "out", (out.float() - ref).abs().max().item())
    torch.testing.assert_close(out.float(), ref, **tol_out)
    for what, a, b in zip(("dq", "dk", "dv"), g, rg):
        assert a.shape == b.shape, what  # gradients of broadcast inputs keep their shapes
        record_error(label, what, (a.float() - b).abs().max().item())
        torch.testing.assert_close(a.float(), b, **tol_grad, msg=lambda m: f"{what}: {m}")


@pytest.mark.skipif(not ut.cuda_available(),
                    reason="needs a CUDA device (torch) and libumfa's CUDA backend")
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_shapes_match_torch_cuda(case):
    # The same shapes on CUDA tensors (stride-0 broadcast views read by the CUDA backend).
    name, qs, ks, vs, kw = case
    r = _gen(len(name))
    q, k, v = (r(*s) for s in (qs, ks, vs))
    qc, kc, vc = (t.cuda().requires_grad_() for t in (q, k, v))
    out = ut.scaled_dot_product_attention(qc, kc, vc, **kw)
    q32, k32, v32 = (t.requires_grad_() for t in (q, k, v))
    ref = F.scaled_dot_product_attention(q32, k32, v32, **kw)
    assert out.is_cuda and out.shape == ref.shape
    dout = r(*ref.shape)
    g = torch.autograd.grad(out, (qc, kc, vc), dout.cuda())
    rg = torch.autograd.grad(ref, (q32, k32, v32), dout)
    torch.testing.assert_close(out.cpu(), ref, atol=1e-5, rtol=1e-4)
    for what, a, b in zip(("dq", "dk", "dv"), g, rg):
        assert a.shape == b.shape, what
        torch.testing.assert_close(a.cpu(), b, atol=5e-5, rtol=5e-4, msg=lambda m: f"{what}: {m}")


def test_broadcast_inputs_are_not_copied(monkeypatch):
    # A key/value with batch 1 reaches the core as a stride-0 view of the caller's memory.
    import umfa

    r = _gen(3)
    q, k = r(4, 2, 5, 8), r(1, 2, 7, 8)
    seen = {}
    original = umfa.Context.forward
    original_fast = umfa.Context._forward_fast

    def spy(self, q_, k_, v_, *args, **kwargs):
        seen["k"] = (k_.data_ptr(), k_.stride())
        return original(self, q_, k_, v_, *args, **kwargs)

    def spy_fast(self, swap, q_, k_, v_, *args, **kwargs):  # the per-call fast path
        seen["k"] = (k_.data_ptr(), k_.stride())
        return original_fast(self, swap, q_, k_, v_, *args, **kwargs)

    monkeypatch.setattr(umfa.Context, "forward", spy)
    monkeypatch.setattr(umfa.Context, "_forward_fast", spy_fast)
    ut.scaled_dot_product_attention(q, k, k)
    ptr, stride = seen["k"]
    assert ptr == k.data_ptr() and stride[0] == 0


@pytest.mark.parametrize("qs,ks,kw,status", [
    ((2, 2, 5, 8), (2, 4, 7, 8), {"enable_gqa": True}, Status.HEADS_NOT_DIVISIBLE),
    ((2, 8, 5, 8), (2, 2, 7, 8), {}, Status.SHAPE_MISMATCH),  # needs enable_gqa
    ((8,), (8,), {}, Status.INVALID_RANK),
    ((2, 3, 5, 8), (3, 3, 7, 8), {}, Status.SHAPE_MISMATCH),  # batch 2 vs 3
], ids=["gqa_not_divisible", "heads_without_gqa", "rank1", "batch_mismatch"])
def test_rejected_like_torch(qs, ks, kw, status):
    r = _gen(4)
    q, k = r(*qs), r(*ks)
    with pytest.raises(RuntimeError):
        F.scaled_dot_product_attention(q, k, k, **kw)
    with pytest.raises(UmfaError) as e:
        ut.scaled_dot_product_attention(q, k, k, **kw)
    assert e.value.status == status
    ut.stats.reset()
    with ut.patched() as st, pytest.raises(RuntimeError):
        F.scaled_dot_product_attention(q, k, k, **kw)  # PyTorch's own error, after a fallback
    assert st.umfa_calls == 0 and st.total_fallbacks == 1


def test_gqa_with_unequal_key_and_value_heads_falls_back():
    # PyTorch repeats key and value heads separately; umfa needs equal counts: the patch sends
    # the call to PyTorch, the explicit function says why.
    r = _gen(5)
    q, k, v = r(2, 8, 5, 8), r(2, 2, 7, 8), r(2, 4, 7, 8)
    ref = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    with pytest.raises(UmfaError) as e:
        ut.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    assert e.value.status == Status.UNSUPPORTED
    ut.stats.reset()
    with ut.patched() as st:
        out = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    assert st.fallbacks["shape"] == 1
    torch.testing.assert_close(out, ref)


def test_fully_masked_rows_match_torch():
    # PyTorch's CPU SDPA gives zeros (and zero gradients) for a query row that sees no key;
    # so does umfa (the core's rule), for boolean and -inf additive masks alike.
    r = _gen(6)
    q, k, v = (r(2, 3, s, 8).requires_grad_() for s in (5, 7, 7))
    bool_mask = r(5, 7) > 0
    bool_mask[1] = False
    add_mask = torch.where(bool_mask, 0.0, float("-inf"))
    for mask in (bool_mask, add_mask):
        out = ut.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        assert not out.isnan().any()
        assert torch.all(out[:, :, 1] == 0)
        torch.testing.assert_close(out, ref, atol=2e-6, rtol=2e-5)
        g = torch.autograd.grad(out.sum(), (q, k, v))
        rg = torch.autograd.grad(ref.sum(), (q, k, v))
        assert torch.all(g[0][:, :, 1] == 0)
        for a, b in zip(g, rg):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_deliberate_differences():
    r = _gen(7)
    q, k = r(2, 3, 5, 8), r(2, 3, 7, 8)
    # 1. More permissive masks: a rank-1 mask (one value per key) and a float16 additive mask
    #    on float32 inputs are accepted (PyTorch raises for both); results are those of the
    #    mask broadcast/upcast by hand.
    m1 = r(7)
    torch.testing.assert_close(ut.scaled_dot_product_attention(q, k, k, attn_mask=m1),
                               F.scaled_dot_product_attention(q, k, k,
                                                              attn_mask=m1.expand(5, 7)),
                               atol=2e-6, rtol=2e-5)
    m16 = r(5, 7).half()
    torch.testing.assert_close(ut.scaled_dot_product_attention(q, k, k, attn_mask=m16),
                               F.scaled_dot_product_attention(q, k, k, attn_mask=m16.float()),
                               atol=2e-6, rtol=2e-5)
    # 2. Not computed by umfa (the patch falls back to PyTorch for these): value head dim
    #    different from the query's, head dim > 256, float64, scale=0, dropout.
    for args, kw, status in [
        ((q, k, r(2, 3, 7, 4)), {}, Status.UNSUPPORTED),
        ((r(1, 1, 3, 300),) * 3, {}, Status.HEAD_DIM_OUT_OF_RANGE),
        ((q.double(), k.double(), k.double()), {}, Status.UNSUPPORTED_DTYPE),
        ((q, k, k), {"scale": 0.0}, Status.UNSUPPORTED),
        ((q, k, k), {"dropout_p": 0.5}, Status.UNSUPPORTED),
    ]:
        with pytest.raises(UmfaError) as e:
            ut.scaled_dot_product_attention(*args, **kw)
        assert e.value.status == status
    # 3. Second-order gradients: the backward is not itself differentiable; asking for a
    #    double backward raises instead of returning wrong numbers.
    qg = q.clone().requires_grad_()
    out = ut.scaled_dot_product_attention(qg, k, k)
    (g,) = torch.autograd.grad(out.square().sum(), qg, create_graph=True)
    with pytest.raises(RuntimeError, match="autograd"):
        torch.autograd.grad(g.sum(), qg)
