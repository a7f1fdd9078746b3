"""umfa.torch on CUDA tensors (device pointers, torch's current stream): the SDPA variant table,
FlashAttention-style calls, the patch and a training step, against PyTorch's float32 results.
Skipped unless torch sees a GPU and libumfa has its CUDA backend."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import umfa  # noqa: E402
import umfa.torch as ut  # noqa: E402

from conftest import record_error  # noqa: E402
from test_torch import DT, TOL, VARIANTS, _cast_kw, _make  # noqa: E402

pytestmark = pytest.mark.skipif(not ut.cuda_available(),
                                reason="needs a CUDA device (torch) and libumfa's CUDA backend")

# GPU kernels round P and dS to the input dtype before their matrix products; float32 goes
# through a float32 path. Tolerances: the conformance table's (README of conformance/).
CUDA_TOL = {
    "float32": ((1e-5, 1e-4), (5e-5, 5e-4)),
    "bfloat16": ((1.6e-2, 3.2e-2), (8e-2, 8e-2)),
    "float16": ((2e-3, 4e-3), (1e-2, 1e-2)),
}


def _check(name, dtype, got, ref, tol):
    got32, ref32 = got.detach().float().cpu(), ref.detach().float().cpu()
    record_error("cuda-" + dtype, name, (got32 - ref32).abs().max().item())
    torch.testing.assert_close(got32, ref32, atol=tol[0], rtol=tol[1],
                               msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("dtype", list(DT))
@pytest.mark.parametrize("variant", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_sdpa_cuda_matches_torch(variant, dtype):
    name, B, Hq, Hkv, L, S, D, build = variant
    tdt = DT[dtype]
    (q, k, v), r = _make(B, Hq, Hkv, L, S, D, tdt, seed=17, layout="bshd")
    kw = build(r)
    dout = r(B, Hq, L, D).to(tdt)
    qc, kc, vc = (t.detach().cuda().requires_grad_() for t in (q, k, v))
    kwc = {k_: (v_.cuda() if isinstance(v_, torch.Tensor) else v_)
           for k_, v_ in _cast_kw(kw, tdt).items()}
    out = ut.scaled_dot_product_attention(qc, kc, vc, **kwc)
    assert out.is_cuda and out.dtype == tdt
    g = torch.autograd.grad(out, (qc, kc, vc), dout.cuda())
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    ref = F.scaled_dot_product_attention(q32, k32, v32, **_cast_kw(kw, torch.float32))
    rg = torch.autograd.grad(ref, (q32, k32, v32), dout.float())
    tol_out, tol_grad = CUDA_TOL[dtype]
    _check("out", dtype, out, ref, tol_out)
    for n, a, b in zip(("dq", "dk", "dv"), g, rg):
        _check(n, dtype, a, b, tol_grad)


def test_flash_attn_cuda_matches_cpu():
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, n, h, 64, generator=g) for n, h in ((40, 8), (56, 2), (56, 2)))
    slopes = torch.rand(8, generator=g)
    kw = dict(causal=True, window_size=(24, 0), softcap=5.0, alibi_slopes=slopes,
              return_lse=True)
    for dt, tol in ((torch.float32, 1e-4), (torch.bfloat16, 3e-2), (torch.float16, 4e-3)):
        # The CPU backend on the same (rounded) inputs is the reference.
        out_c, lse_c = umfa.flash_attn_func(q.to(dt), k.to(dt), v.to(dt), **kw)
        qc, kc, vc = (t.to("cuda", dt).requires_grad_() for t in (q, k, v))
        out, lse = umfa.flash_attn_func(qc, kc, vc, **kw)
        torch.testing.assert_close(out.float().cpu(), out_c.float(), atol=tol, rtol=tol)
        torch.testing.assert_close(lse.cpu(), lse_c, atol=1e-4, rtol=1e-4)
        out.float().square().sum().backward()
        assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (qc, kc, vc))


def test_varlen_cuda_matches_cpu():
    g = torch.Generator().manual_seed(4)
    cu = torch.tensor([0, 17, 40, 41], dtype=torch.int32)
    q, k, v = (torch.randn(41, h, 32, generator=g) for h in (4, 2, 2))
    out_c = umfa.flash_attn_varlen_func(q, k, v, cu, cu, 23, 23, causal=True)
    out = umfa.flash_attn_varlen_func(q.cuda(), k.cuda(), v.cuda(), cu.cuda(), cu.cuda(), 23, 23,
                                      causal=True)
    torch.testing.assert_close(out.cpu(), out_c, atol=1e-4, rtol=1e-4)


def test_patch_on_cuda_uses_umfa_and_the_current_stream():
    g = torch.Generator().manual_seed(5)
    q = torch.randn(2, 4, 128, 64, generator=g).cuda().half()
    side = torch.cuda.Stream()
    ut.stats.reset()
    with ut.patched() as st, torch.cuda.stream(side):
        out = F.scaled_dot_product_attention(q, q, q, is_causal=True)
    torch.cuda.synchronize()
    assert st.umfa_calls == 1 and st.total_fallbacks == 0
    ref = F.scaled_dot_product_attention(q.float(), q.float(), q.float(), is_causal=True)
    torch.testing.assert_close(out.float(), ref, atol=4e-3, rtol=4e-3)
