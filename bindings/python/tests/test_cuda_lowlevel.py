"""The CUDA backend through the low-level API with ``__cuda_array_interface__`` objects.

Device memory comes from umfa's own buffers (umfa_buffer_create on a CUDA context), so this
runs on any machine where libumfa has its CUDA backend, with or without a CUDA build of PyTorch.
Skipped when ``"cuda" not in umfa.backends()``.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

import umfa
from umfa import _native as N

pytestmark = pytest.mark.skipif("cuda" not in umfa.backends(),
                                reason="libumfa has no usable CUDA backend here")


class DeviceArray:
    """A device buffer described by ``__cuda_array_interface__`` (C-contiguous or permuted)."""

    def __init__(self, ctx: umfa.Context, host: np.ndarray, perm=None):
        self.ctx = ctx
        self.store_shape = host.shape
        self.dtype = host.dtype
        buf = ctypes.c_void_p()
        N.check(N.lib.umfa_buffer_create(ctx.handle, max(host.nbytes, 1), ctypes.byref(buf)),
                ctx.handle)
        self.buf = buf
        N.check(N.lib.umfa_buffer_upload(buf, 0, host.ctypes.data, host.nbytes), ctx.handle)
        ptr = ctypes.c_void_p()
        N.check(N.lib.umfa_buffer_data(buf, ctypes.byref(ptr)), ctx.handle)
        strides = np.empty(host.shape, host.dtype).strides
        perm = perm or list(range(host.ndim))
        self.__cuda_array_interface__ = {
            "shape": tuple(host.shape[p] for p in perm),
            "strides": tuple(strides[p] for p in perm),
            "typestr": host.dtype.str, "data": (ptr.value, False), "version": 3}

    def download(self) -> np.ndarray:
        out = np.empty(self.store_shape, self.dtype)
        N.check(N.lib.umfa_buffer_download(self.buf, 0, out.ctypes.data, out.nbytes),
                self.ctx.handle)
        return out

    def __del__(self):
        N.lib.umfa_buffer_destroy(self.buf)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_cuda_forward_backward_match_cpu(dtype):
    rng = np.random.default_rng(0)
    B, L, S, Hq, Hkv, D = 2, 37, 45, 4, 2, 64
    q, k, v, do = (rng.standard_normal(s).astype(dtype) for s in
                   ((B, Hq, L, D), (B, S, Hkv, D), (B, S, Hkv, D), (B, L, Hq, D)))
    opts = dict(mask_mode="causal_bottom_right")
    cpu = umfa.Context("cpu")
    qv = q.transpose(0, 2, 1, 3)  # BHSD storage as a BSHD view
    out_c = np.zeros((B, L, Hq, D), dtype)
    lse_c = np.zeros((B, Hq, L), np.float32)
    cpu.forward(qv, k, v, out_c, lse_c, **opts)
    grads_c = [np.zeros_like(x) for x in (qv, k, v)]
    cpu.backward(qv, k, v, out_c, do, lse_c, *grads_c, **opts)

    with umfa.Context("cuda") as gpu:
        assert gpu.backend == "cuda"
        dq_ = DeviceArray(gpu, q, perm=[0, 2, 1, 3])
        dk_, dv_, ddo = DeviceArray(gpu, k), DeviceArray(gpu, v), DeviceArray(gpu, do)
        dout = DeviceArray(gpu, np.zeros((B, L, Hq, D), dtype))
        dlse = DeviceArray(gpu, np.zeros((B, Hq, L), np.float32))
        gpu.forward(dq_, dk_, dv_, dout, dlse, **opts)
        g = [DeviceArray(gpu, np.zeros((B, Hq, L, D), dtype), perm=[0, 2, 1, 3]),
             DeviceArray(gpu, np.zeros_like(k)), DeviceArray(gpu, np.zeros_like(v))]
        gpu.backward(dq_, dk_, dv_, dout, ddo, dlse, *g, **opts)
        tol = 2e-5 if dtype == np.float32 else 4e-3
        np.testing.assert_allclose(dout.download().astype(np.float32), out_c.astype(np.float32),
                                   atol=tol, rtol=tol)
        np.testing.assert_allclose(dlse.download(), lse_c, atol=1e-4, rtol=1e-5)
        got = [g[0].download().transpose(0, 2, 1, 3), g[1].download(), g[2].download()]
        for a, b in zip(got, grads_c):
            np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32),
                                       atol=10 * tol, rtol=10 * tol)


def test_classic_api_on_a_cuda_context():
    # MFAContext picks CUDA here: numpy arrays are staged through device buffers.
    rng = np.random.default_rng(1)
    q = rng.standard_normal((2, 33, 4, 64)).astype(np.float16)
    with umfa.MFAContext() as ctx:
        assert ctx.backend == "cuda"
        out = umfa.flash_attention_forward(ctx, q, q, q, causal=True)
    ref = umfa.flash_attention_forward(umfa.Context("cpu"), q, q, q, causal=True)
    np.testing.assert_allclose(out.astype(np.float32), ref.astype(np.float32), atol=4e-3,
                               rtol=4e-3)
