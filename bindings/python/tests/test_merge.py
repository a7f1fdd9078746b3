"""umfa.attention_merge: partial attention results merged in place, through the binding.

Attention over key parts (float64 reference) merged with umfa equals the attention over all
keys; numpy arrays (bfloat16 through umfa.reinterpret), torch CPU tensors of every float dtype,
BHSD views, varlen layouts, an explicit context; errors leave the outputs untouched; a libumfa
without the function raises UNSUPPORTED. CUDA tensors where libumfa has a CUDA backend.
"""

from __future__ import annotations

import numpy as np
import pytest

import umfa
from _ref import attention_ref


def _parts(seed: int, b=2, n=5, h=3, d=8, nk=11, cuts=(0, 4, 7, 11)):
    """q, the full (out, lse), and the (out, lse) of each key part, all float64."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((b, n, h, d))
    k = rng.standard_normal((b, nk, h, d))
    v = rng.standard_normal((b, nk, h, d))
    full = attention_ref(q, k, v)
    parts = [attention_ref(q, k[:, a:c], v[:, a:c]) for a, c in zip(cuts[:-1], cuts[1:])]
    return full, parts


def _running(full_out: np.ndarray, full_lse: np.ndarray, dtype=np.float32):
    """An empty running result: out NaN (never read: its LSE is -inf), lse -inf."""
    return (np.full(full_out.shape, np.nan, dtype=dtype),
            np.full(full_lse.shape, -np.inf, dtype=np.float32))


def test_numpy_parts_merge_into_the_full_attention():
    (full_out, full_lse), parts = _parts(1)
    out, lse = _running(full_out, full_lse)
    for part_out, part_lse in parts:
        umfa.attention_merge(out, lse, part_out.astype(np.float32), part_lse.astype(np.float32))
    np.testing.assert_allclose(out, full_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lse, full_lse, rtol=1e-5, atol=1e-6)


def test_numpy_bf16_parts_and_explicit_context():
    (full_out, full_lse), parts = _parts(2)
    out, lse = _running(full_out, full_lse)
    with umfa.Context("cpu", num_threads=1) as ctx:
        for part_out, part_lse in parts:
            bits = (part_out.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
            umfa.attention_merge(out, lse, umfa.reinterpret(bits, "bf16"),
                                 part_lse.astype(np.float32), context=ctx)
    np.testing.assert_allclose(out, full_out, atol=2e-2)  # parts truncated to bfloat16
    np.testing.assert_allclose(lse, full_lse, rtol=1e-5, atol=1e-6)


def test_varlen_layouts():
    (full_out, full_lse), parts = _parts(3, b=1)
    out, lse = _running(full_out[0], full_lse[0])  # [total, H, D] and [H, total]
    for part_out, part_lse in parts:
        umfa.attention_merge(out, lse, part_out[0].astype(np.float32),
                             part_lse[0].astype(np.float32))
    np.testing.assert_allclose(out, full_out[0], rtol=1e-5, atol=1e-6)


def test_masked_rows_give_zero_and_minus_inf():
    out = np.full((1, 2, 1, 4), np.nan, np.float32)
    lse = np.full((1, 1, 2), -np.inf, np.float32)
    part = np.full((1, 2, 1, 4), np.nan, np.float32)
    umfa.attention_merge(out, lse, part, lse.copy())
    assert np.array_equal(out, np.zeros_like(out)) and np.isneginf(lse).all()


def test_errors_leave_outputs_untouched(monkeypatch):
    out = np.ones((1, 3, 2, 4), np.float32)
    lse = np.zeros((1, 2, 3), np.float32)
    before = out.copy(), lse.copy()
    bad = [
        ((out, lse, np.ones((1, 3, 1, 4), np.float32), lse.copy()), umfa.Status.SHAPE_MISMATCH),
        ((out, lse, out, lse.copy()), umfa.Status.INVALID_ARGUMENT),  # part is out
        ((out, lse.astype(np.float16), out.copy(), lse.copy()), umfa.Status.UNSUPPORTED_DTYPE),
        ((out, None, out.copy(), lse.copy()), umfa.Status.NULL_POINTER),
    ]
    for args, status in bad:
        with pytest.raises(umfa.UmfaError) as e:
            umfa.attention_merge(*args)
        assert e.value.status == status, e.value
        assert "umfa_attention_merge" in e.value.message
        np.testing.assert_array_equal(out, before[0])
        np.testing.assert_array_equal(lse, before[1])
    frozen = out.copy()
    frozen.flags.writeable = False
    with pytest.raises(umfa.UmfaError):
        umfa.attention_merge(frozen, lse, out.copy(), lse.copy())
    import umfa._merge as merge_module

    monkeypatch.setattr(merge_module, "_merge_fn", None)  # a libumfa older than the function
    with pytest.raises(umfa.UmfaError) as e:
        umfa.attention_merge(out, lse, out.copy(), lse.copy())
    assert e.value.status == umfa.Status.UNSUPPORTED


def _torch_case(torch, device: str, dtype):
    (full_out, full_lse), parts = _parts(4)

    def t(x, dt=torch.float32):
        return torch.from_numpy(np.ascontiguousarray(x)).to(device, dt)

    # The running out in BHSD, passed as its BSHD view (a transpose, no copy).
    out_bhsd = torch.full((2, 3, 5, 8), float("nan"), dtype=dtype, device=device)
    lse = torch.full((2, 3, 5), float("-inf"), dtype=torch.float32, device=device)
    for part_out, part_lse in parts:
        umfa.attention_merge(out_bhsd.transpose(1, 2), lse, t(part_out, dtype), t(part_lse))
    return out_bhsd.transpose(1, 2).double().cpu().numpy(), lse.double().cpu().numpy(), \
        full_out, full_lse


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_torch_cpu(dtype):
    torch = pytest.importorskip("torch")
    got_out, got_lse, full_out, full_lse = _torch_case(torch, "cpu", getattr(torch, dtype))
    tol = {"float32": 1e-5, "float16": 4e-3, "bfloat16": 3e-2}[dtype]
    np.testing.assert_allclose(got_out, full_out, rtol=tol, atol=tol)
    np.testing.assert_allclose(got_lse, full_lse, rtol=1e-5, atol=1e-5)


def test_torch_in_place_semantics():
    torch = pytest.importorskip("torch")
    out = torch.zeros(1, 2, 1, 4)
    lse = torch.full((1, 1, 2), float("-inf"))
    version = out._version
    umfa.attention_merge(out, lse, torch.ones(1, 2, 1, 4), torch.zeros(1, 1, 2))
    assert out._version > version  # autograd sees the in-place write
    assert torch.equal(out, torch.ones(1, 2, 1, 4)) and torch.equal(lse, torch.zeros(1, 1, 2))
    with pytest.raises(umfa.UmfaError):  # an output that requires grad is refused
        umfa.attention_merge(out.clone().requires_grad_(), lse, out.clone(), lse.clone())


def test_torch_cuda():
    torch = pytest.importorskip("torch")
    import umfa.torch as ut

    if not ut.cuda_available():
        pytest.skip("no CUDA device, or libumfa without its CUDA backend")
    for dtype, side_stream in ((torch.float32, False), (torch.bfloat16, False),
                               (torch.float32, True)):
        # On a side stream, the merges run on it (torch's current stream), ordered with the
        # tensor operations around them.
        with torch.cuda.stream(torch.cuda.Stream() if side_stream else
                               torch.cuda.current_stream()):
            got_out, got_lse, full_out, full_lse = _torch_case(torch, "cuda", dtype)
        tol = 1e-5 if dtype == torch.float32 else 3e-2
        np.testing.assert_allclose(got_out, full_out, rtol=tol, atol=tol)
        np.testing.assert_allclose(got_lse, full_lse, rtol=1e-5, atol=1e-5)
