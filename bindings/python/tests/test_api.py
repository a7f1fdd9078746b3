"""The package without PyTorch: loading, versions, the classic and FlashAttention-style APIs on
numpy arrays, zero-copy views (strides, DLPack, CUDA array interface), and bad inputs."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import umfa
from umfa import Status, UmfaError
from umfa import _native, _views

from _ref import attention_ref

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
rng = np.random.default_rng(1234)


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------------------------------------
# Loading, versions, capabilities
# ---------------------------------------------------------------------------------------------


def test_versions_and_capabilities():
    assert umfa.abi_version() == umfa.ABI_VERSION == 1
    major, minor, patch = umfa.get_version()
    assert umfa.version_string() == f"{major}.{minor}.{patch}"
    assert umfa.__version__ == umfa.version_string()
    if sys.platform != "darwin" and not os.environ.get("UMFA_METAL_LIB"):
        assert umfa.is_metal_available() is False
    assert umfa.is_metal_available() is ("metal" in umfa.backends())
    assert "cpu" in umfa.backends()
    assert isinstance(umfa.build_info(), str) and umfa.build_info()
    assert Path(umfa.library_path()).is_file()


def _run_import(env_extra, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("UMFA_LIB_DIR", "PYTHONPATH")}
    env.update(env_extra)
    code = "import umfa; print(umfa.library_path())"
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                          text=True)


def test_loader_says_what_it_tried(tmp_path):
    # A copy of the package outside the checkout, with no _lib and a UMFA_LIB_DIR that is empty.
    pkg = tmp_path / "site" / "umfa"
    shutil.copytree(HERE.parent / "src" / "umfa", pkg,
                    ignore=shutil.ignore_patterns("_lib", "__pycache__"))
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _run_import({"PYTHONPATH": str(tmp_path / "site"), "UMFA_LIB_DIR": str(empty)},
                    tmp_path)
    assert r.returncode != 0
    assert "could not load the native library" in r.stderr
    assert str(empty) in r.stderr and "UMFA_LIB_DIR" in r.stderr
    assert str(pkg / "_lib") in r.stderr


def test_loader_order_prefers_umfa_lib_dir(tmp_path):
    lib = Path(umfa.library_path())
    d = tmp_path / "libdir"
    d.mkdir()
    shutil.copy(lib, d / lib.name)
    r = _run_import({"PYTHONPATH": str(HERE.parent / "src"), "UMFA_LIB_DIR": str(d)}, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(d / lib.name)


def test_abi_mismatch_is_refused(tmp_path):
    # A stand-in library that reports ABI 2 must be refused at import with a clear message.
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a stand-in library")
    src = tmp_path / "fake.c"
    src.write_text(textwrap.dedent("""
        #include <stdint.h>
        uint32_t umfa_abi_version(void) { return 2; }
        uint32_t umfa_version(void) { return 20000; }
        const char* umfa_version_string(void) { return "2.0.0"; }
    """))
    d = tmp_path / "lib"
    d.mkdir()
    subprocess.run([cc, "-shared", "-fPIC", str(src), "-o", str(d / "libumfa.so.1")], check=True)
    r = _run_import({"PYTHONPATH": str(HERE.parent / "src"), "UMFA_LIB_DIR": str(d)}, tmp_path)
    assert r.returncode != 0
    assert "ABI version 2" in r.stderr and "ABI version 1" in r.stderr


def test_struct_layouts_match_the_header(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    fields = {
        "umfa_context_options": (_native.ContextOptions,
                                 [f[0] for f in _native.ContextOptions._fields_]),
        "umfa_tensor": (_native.Tensor, [f[0] for f in _native.Tensor._fields_]),
        "umfa_attention_options": (_native.AttentionOptions,
                                   [f[0] for f in _native.AttentionOptions._fields_]),
        "umfa_merge_options": (_native.MergeOptions,
                               [f[0] for f in _native.MergeOptions._fields_]),
    }
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "umfa.h"',
             "int main(void) {"]
    for struct, (_, names) in fields.items():
        lines.append(f'printf("{struct} size %zu\\n", sizeof({struct}));')
        for n in names:
            lines.append(f'printf("{struct} {n} %zu\\n", offsetof({struct}, {n}));')
    lines += ["return 0; }"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run([cc, f"-I{REPO / 'include'}", str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        struct, name, value = line.split()
        cls = fields[struct][0]
        got = ctypes.sizeof(cls) if name == "size" else getattr(cls, name).offset
        assert got == int(value), f"{struct}.{name}: ctypes {got}, C {value}"


# ---------------------------------------------------------------------------------------------
# Classic API
# ---------------------------------------------------------------------------------------------


def test_classic_single_head_and_context_manager():
    q, k, v = randn(33, 16), randn(40, 16), randn(40, 16)
    with umfa.MFAContext() as ctx:  # "auto": the CUDA backend where there is one
        assert not ctx.closed
        backend = ctx.backend
        out = umfa.flash_attention_forward(ctx, q, k, v, causal=True)
    assert ctx.closed
    assert out.shape == (33, 16) and out.dtype == np.float32
    ref, _ = attention_ref(q[None, :, None], k[None, :, None], v[None, :, None],
                           causal="top_left")
    # float32 tolerances of the conformance table on a GPU; float32 rounding on the CPU.
    tol = dict(atol=2e-6, rtol=1e-5) if backend == "cpu" else dict(atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(out, ref[0, :, 0], **tol)


def test_classic_multi_head_gqa_and_precisions():
    q, k, v = randn(2, 17, 4, 32), randn(2, 19, 2, 32), randn(2, 19, 2, 32)
    out = umfa.attention(q, k, v, softmax_scale=0.2, context=umfa.default_context())
    ref, _ = attention_ref(q, k, v, scale=0.2)
    np.testing.assert_allclose(out, ref, atol=2e-6, rtol=1e-5)
    # float16 inputs read in place; the result in fp32 when asked for.
    q16, k16, v16 = (x.astype(np.float16) for x in (q, k, v))
    out32 = umfa.attention(q16, k16, v16, output_precision="fp32", context=umfa.default_context())
    assert out32.dtype == np.float32
    ref16, _ = attention_ref(q16, k16, v16)
    np.testing.assert_allclose(out32, ref16, atol=1e-5, rtol=1e-4)
    assert umfa.attention(q16, k16, v16).dtype == np.float16
    # float64 inputs are converted once to input_precision.
    out64 = umfa.attention(q.astype(np.float64), k, v, input_precision="fp32",
                           softmax_scale=0.2, context=umfa.default_context())
    assert out64.dtype == np.float32
    np.testing.assert_allclose(out64, ref, atol=2e-6, rtol=1e-5)
    with pytest.raises(UmfaError) as e:
        umfa.attention(q, k, v, input_precision="fp8")
    assert e.value.status == Status.INVALID_ARGUMENT


def test_classic_rejects_bad_rank():
    with pytest.raises(UmfaError) as e:
        umfa.attention(randn(2, 3, 4), randn(2, 3, 4), randn(2, 3, 4))
    assert e.value.status == Status.INVALID_RANK


# ---------------------------------------------------------------------------------------------
# FlashAttention-style API on numpy
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sq,sk", [(7, 7), (5, 11), (11, 5)])
@pytest.mark.parametrize("causal", [False, True])
def test_flash_attn_func_numpy(sq, sk, causal):
    q, k, v = randn(2, sq, 4, 16), randn(2, sk, 2, 16), randn(2, sk, 2, 16)
    out, lse = umfa.flash_attn_func(q, k, v, causal=causal, return_lse=True)
    ref, ref_lse = attention_ref(q, k, v, causal="bottom_right" if causal else "none")
    assert out.shape == (2, sq, 4, 16) and lse.shape == (2, 4, sq) and lse.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=2e-6, rtol=1e-5)
    np.testing.assert_allclose(lse, ref_lse, atol=2e-6, rtol=1e-5)  # -inf rows match exactly
    o3 = umfa.flash_attn_func(q, k, v, causal=causal, return_attn_probs=True)
    assert len(o3) == 3 and o3[2] is None


def test_flash_attn_func_options_numpy():
    q, k, v = randn(2, 9, 4, 8), randn(2, 12, 4, 8), randn(2, 12, 4, 8)
    slopes = np.array([0.5, 0.25, 0.125, 0.0625], np.float32)
    out = umfa.flash_attn_func(q, k, v, causal=True, window_size=(3, -1), softcap=2.0,
                               alibi_slopes=slopes, softmax_scale=0.4)
    ref, _ = attention_ref(q, k, v, causal="bottom_right", window=(3, 0), softcap=2.0,
                           alibi=slopes, scale=0.4)
    np.testing.assert_allclose(out, ref, atol=2e-6, rtol=1e-5)


def test_flash_attn_varlen_numpy():
    lens_q, lens_k = [3, 6, 1], [4, 6, 5]
    cq = np.concatenate([[0], np.cumsum(lens_q)]).astype(np.int32)
    ck = np.concatenate([[0], np.cumsum(lens_k)]).astype(np.int64)  # converted to int32
    q, k, v = randn(cq[-1], 4, 16), randn(ck[-1], 2, 16), randn(ck[-1], 2, 16)
    out, lse = umfa.flash_attn_varlen_func(q, k, v, cq, ck, max(lens_q), max(lens_k),
                                           causal=True, return_lse=True)
    assert out.shape == q.shape and lse.shape == (4, cq[-1])
    for i in range(3):
        qs, ks = slice(cq[i], cq[i + 1]), slice(ck[i], ck[i + 1])
        ref, rl = attention_ref(q[None, qs], k[None, ks], v[None, ks], causal="bottom_right")
        np.testing.assert_allclose(out[qs], ref[0], atol=2e-6, rtol=1e-5)
        np.testing.assert_allclose(lse[:, qs], rl[0], atol=2e-6, rtol=1e-5)


def test_dropout_and_paged_kv_raise_clearly():
    q = randn(1, 4, 2, 8)
    with pytest.raises(UmfaError) as e:
        umfa.flash_attn_func(q, q, q, dropout_p=0.1)
    assert e.value.status == Status.UNSUPPORTED and "dropout" in e.value.message
    cu = np.array([0, 4], np.int32)
    with pytest.raises(UmfaError) as e:
        umfa.flash_attn_varlen_func(q[0], q[0], q[0], cu, cu, 4, 4, dropout_p=0.5)
    assert e.value.status == Status.UNSUPPORTED
    with pytest.raises(UmfaError) as e:
        umfa.flash_attn_varlen_func(q[0], q[0], q[0], cu, cu, 4, 4,
                                    block_table=np.zeros((1, 1), np.int32))
    assert e.value.status == Status.UNSUPPORTED


def test_empty_sequences():
    q, k = randn(1, 0, 2, 8), randn(1, 5, 2, 8)
    out, lse = umfa.flash_attn_func(q, k, k, return_lse=True)
    assert out.shape == (1, 0, 2, 8) and lse.shape == (1, 2, 0)
    q, k = randn(1, 3, 2, 8), randn(1, 0, 2, 8)
    out, lse = umfa.flash_attn_func(q, k, k, return_lse=True)
    assert np.all(out == 0) and np.all(np.isneginf(lse))


# ---------------------------------------------------------------------------------------------
# Zero-copy views
# ---------------------------------------------------------------------------------------------


def test_strided_views_are_read_in_place():
    # BHSD storage passed as BSHD through transposed strides; a sliced (non-contiguous) k.
    q_bhsd = randn(2, 4, 9, 16)
    kbig = randn(2, 12, 2, 32)
    k = kbig[:, :, :, ::2]  # stride 2 in head_dim
    v = randn(2, 12, 2, 16)
    q = q_bhsd.transpose(0, 2, 1, 3)
    assert not q.flags.c_contiguous and not k.flags.c_contiguous
    view = _views.make_view(q, "q")
    assert view.tensor.data == q_bhsd.ctypes.data  # no copy
    assert list(view.tensor.strides) == [4 * 9 * 16, 16, 9 * 16, 1]
    out = umfa.flash_attn_func(q, k, v)
    ref, _ = attention_ref(q, k, v)
    np.testing.assert_allclose(out, ref, atol=2e-6, rtol=1e-5)
    # Outputs with strides: write into a BHSD buffer through the low-level call.
    out_bhsd = np.full((2, 4, 9, 16), np.nan, np.float32)
    umfa.default_context().forward(q, k, v, out_bhsd.transpose(0, 2, 1, 3))
    np.testing.assert_allclose(out_bhsd.transpose(0, 2, 1, 3), ref, atol=2e-6, rtol=1e-5)


def test_broadcast_stride_zero_inputs():
    k1 = randn(1, 6, 1, 8)
    k = np.broadcast_to(k1, (3, 6, 2, 8))  # stride 0 on batch and heads, read-only
    q = randn(3, 4, 2, 8)
    out = umfa.flash_attn_func(q, k, k)
    ref, _ = attention_ref(q, np.ascontiguousarray(k), np.ascontiguousarray(k))
    np.testing.assert_allclose(out, ref, atol=2e-6, rtol=1e-5)


class _DLPackOnly:
    """Exposes only the DLPack protocol (so umfa must read the capsule itself)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, stream=None):
        return self._a.__dlpack__()

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def test_dlpack_inputs_and_outputs():
    q, k = randn(1, 5, 2, 8), randn(1, 7, 2, 8)
    qt = q.transpose(0, 2, 1, 3).copy().transpose(0, 2, 1, 3)  # strided
    view = _views.make_view(_DLPackOnly(qt), "q")
    assert view.tensor.data == qt.ctypes.data
    assert list(view.tensor.strides)[:4] == [s // 4 for s in qt.strides]
    out = np.full((1, 5, 2, 8), np.nan, np.float32)
    umfa.default_context().forward(_DLPackOnly(qt), _DLPackOnly(k), _DLPackOnly(k),
                                   _DLPackOnly(out))
    ref, _ = attention_ref(q, k, k)
    np.testing.assert_allclose(out, ref, atol=2e-6, rtol=1e-5)


class _FakeCuda:
    def __init__(self, a, strides=True):
        self.a = a
        self.__cuda_array_interface__ = {
            "shape": a.shape, "typestr": a.dtype.str, "data": (a.ctypes.data, False),
            "strides": a.strides if strides else None, "version": 3}


def test_cuda_array_interface_views():
    a = randn(2, 3, 4, 8).transpose(0, 2, 1, 3)
    v = _views.make_view(_FakeCuda(a), "q", device_index=1)
    t = v.tensor
    assert t.device == _native.DEVICE_CUDA and t.device_index == 1
    assert t.data == a.ctypes.data and list(t.strides) == [s // 4 for s in a.strides]
    c = _views.make_view(_FakeCuda(np.zeros((2, 3), np.float16), strides=False), "x")
    assert list(c.tensor.strides)[:2] == [3, 1] and c.tensor.dtype == _native.DTYPE_F16
    # The CPU context refuses device memory with the core's status.
    out = np.zeros((2, 4, 3, 8), np.float32)
    with pytest.raises(UmfaError) as e:
        umfa.default_context().forward(_FakeCuda(a), a, a, out)
    assert e.value.status == Status.DEVICE_MISMATCH


def test_reinterpret_bf16():
    x = randn(1, 6, 2, 8)
    bits = (x.view(np.uint32) >> 16).astype(np.uint16)  # truncation is fine for a test
    xb = (bits.astype(np.uint32) << 16).view(np.float32)
    out_bits = np.zeros((1, 6, 2, 8), np.uint16)
    lse = np.zeros((1, 2, 6), np.float32)
    b16 = umfa.reinterpret(bits, "bf16")
    umfa.default_context().forward(b16, b16, b16, umfa.reinterpret(out_bits, "bf16"), lse)
    out = (out_bits.astype(np.uint32) << 16).view(np.float32)
    ref, ref_lse = attention_ref(xb, xb, xb)
    np.testing.assert_allclose(out, ref, atol=2e-2, rtol=1e-2)
    np.testing.assert_allclose(lse, ref_lse, atol=1e-5)
    with pytest.raises(UmfaError):
        umfa.reinterpret(np.zeros(3, np.float32), "bf16")


# ---------------------------------------------------------------------------------------------
# Bad inputs: the right status, the core's message, outputs untouched
# ---------------------------------------------------------------------------------------------

S = Status


def _bad_cases():
    f = randn
    q, k = f(2, 5, 4, 8), f(2, 6, 2, 8)
    qv, kv = f(10, 4, 8), f(12, 2, 8)
    cu = dict(cu_seqlens_q=np.array([0, 4, 10], np.int32),
              cu_seqlens_k=np.array([0, 5, 12], np.int32))
    yield "rank", S.INVALID_RANK, (q[0], k, k), {}
    yield "batch", S.SHAPE_MISMATCH, (q, f(3, 6, 2, 8), f(3, 6, 2, 8)), {}
    yield "heads", S.HEADS_NOT_DIVISIBLE, (f(2, 5, 4, 8), f(2, 6, 3, 8), f(2, 6, 3, 8)), {}
    yield "head_dim", S.HEAD_DIM_OUT_OF_RANGE, (f(2, 5, 4, 300), f(2, 6, 2, 300),
                                                 f(2, 6, 2, 300)), {}
    yield "negative_stride", S.INVALID_STRIDE, (q[:, ::-1], k, k), {}
    yield "mixed_dtype", S.UNSUPPORTED_DTYPE, (q, k.astype(np.float16), k), {}
    yield "float64", S.UNSUPPORTED_DTYPE, (q.astype(np.float64), k, k), {}
    yield "int_input", S.UNSUPPORTED_DTYPE, (q.astype(np.int64), k, k), {}
    yield "mask_shape", S.SHAPE_MISMATCH, (q, k, k), {"attn_mask": np.ones((3, 6), bool)}
    yield "mask_dtype", S.UNSUPPORTED_DTYPE, (q, k, k), {"attn_mask": np.ones(6, np.int32)}
    yield "alibi_dtype", S.UNSUPPORTED_DTYPE, (q, k, k), {"alibi_slopes": np.ones(4, np.float16)}
    yield "softcap", S.INVALID_ARGUMENT, (q, k, k), {"softcap": -1.0}
    yield "mask_mode", S.INVALID_ARGUMENT, (q, k, k), {"mask_mode": 7}
    yield "scale_zero", S.INVALID_ARGUMENT, (q, k, k), {"softmax_scale": 0.0}
    yield "rank5", S.INVALID_RANK, (q[None], k, k), {}
    yield "seqlens", S.INVALID_SEQLENS, (qv, kv, kv), dict(
        cu, cu_seqlens_q=np.array([0, 6, 4], np.int32))
    yield "seqlens_one_side", S.NULL_POINTER, (qv, kv, kv), {
        "cu_seqlens_q": cu["cu_seqlens_q"]}
    yield "varlen_mask", S.INVALID_ARGUMENT, (qv, kv, kv), dict(
        cu, attn_mask=np.ones(12, bool))
    yield "null_q", S.NULL_POINTER, (None, k, k), {}


BAD = list(_bad_cases())


@pytest.mark.parametrize("name,status,args,kw", BAD, ids=[b[0] for b in BAD])
def test_bad_forward_inputs(name, status, args, kw):
    q = args[0] if args[0] is not None else args[1]
    varlen = "cu_seqlens_q" in kw
    if varlen:
        out = np.full(q.shape[:-1] + (args[2].shape[-1],), np.nan, np.float32)
        lse = np.full((q.shape[1], q.shape[0]), np.nan, np.float32)
    else:
        shape = (2, 5, 4, args[2].shape[-1]) if q.ndim == 4 else (2, 5, 4, 8)
        out = np.full(shape, np.nan, np.float32)
        lse = np.full((2, 4, 5), np.nan, np.float32)
    ins = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    with pytest.raises(UmfaError) as e:
        umfa.default_context().forward(*args, out, lse, **kw)
    err = e.value
    assert err.status == status, f"{name}: got {err.name}: {err.message}"
    assert err.name == "UMFA_STATUS_" + Status(status).name
    assert err.message  # the core's (or binding's) explanation
    assert np.isnan(out).all() and np.isnan(lse).all(), "output written on failure"
    for a, b in zip(args, ins):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)


def test_bad_output_arguments():
    q = randn(1, 4, 2, 8)
    ctx = umfa.default_context()
    overlapping = np.lib.stride_tricks.as_strided(np.zeros(8, np.float32), (1, 4, 2, 8),
                                                  (0, 0, 0, 4))
    with pytest.raises(UmfaError) as e:
        ctx.forward(q, q, q, overlapping)
    assert e.value.status == S.INVALID_STRIDE
    lse = np.full((1, 2, 4), np.nan, np.float16)
    out = np.full((1, 4, 2, 8), np.nan, np.float32)
    with pytest.raises(UmfaError) as e:
        ctx.forward(q, q, q, out, lse)
    assert e.value.status == S.UNSUPPORTED_DTYPE and np.isnan(out).all()
    with pytest.raises(UmfaError) as e:
        ctx.forward(q, q, q, out, np.full((1, 2, 5), np.nan, np.float32))
    assert e.value.status == S.SHAPE_MISMATCH and np.isnan(out).all()
    ro = np.zeros((1, 4, 2, 8), np.float32)
    ro.flags.writeable = False
    with pytest.raises(UmfaError) as e:
        ctx.forward(q, q, q, ro)
    assert e.value.status == S.INVALID_ARGUMENT
    with pytest.raises(UmfaError):
        ctx.forward(q, q, q, [[1.0]])  # a list is no output


def test_bad_backward_inputs():
    q = randn(1, 4, 2, 8)
    ctx = umfa.default_context()
    out = np.zeros_like(q)
    lse = np.zeros((1, 2, 4), np.float32)
    ctx.forward(q, q, q, out, lse)
    dq, dk, dv = (np.full_like(q, np.nan) for _ in range(3))
    with pytest.raises(UmfaError) as e:
        ctx.backward(q, q, q, out, q, None, dq, dk, dv)
    assert e.value.status == S.NULL_POINTER
    with pytest.raises(UmfaError) as e:
        ctx.backward(q, q, q, out, q, lse, dq, dk, np.full((1, 4, 2, 9), np.nan, np.float32))
    assert e.value.status == S.SHAPE_MISMATCH
    assert all(np.isnan(x).all() for x in (dq, dk, dv))


def test_context_errors():
    with pytest.raises(UmfaError) as e:
        umfa.Context(backend="vulkan")
    assert e.value.status == S.INVALID_ARGUMENT
    if "metal" not in umfa.backends():
        with pytest.raises(UmfaError) as e:
            umfa.Context(backend="metal")
        assert e.value.status == S.BACKEND_UNAVAILABLE and "Metal" in e.value.message
    if "cuda" not in umfa.backends():
        with pytest.raises(UmfaError) as e:
            umfa.Context(backend="cuda")
        assert e.value.status == S.BACKEND_UNAVAILABLE and e.value.message
    ctx = umfa.Context("cpu", num_threads=1)
    assert ctx.backend == "cpu" and ctx.num_threads == 1
    ctx.close()
    ctx.close()  # idempotent
    q = randn(1, 2, 1, 4)
    with pytest.raises(UmfaError) as e:
        ctx.forward(q, q, q, np.zeros_like(q))
    assert e.value.status == S.INVALID_HANDLE


def test_workspace_limit():
    ctx = umfa.Context("cpu", workspace_limit_bytes=1)
    q = randn(1, 256, 2, 64)
    out = np.full_like(q, np.nan)
    try:
        ctx.forward(q, q, q, out)
    except UmfaError as e:
        assert e.status == S.WORKSPACE_LIMIT and np.isnan(out).all()
    else:  # a backend that needs no scratch for this size is fine too
        assert not np.isnan(out).any()


def test_error_is_picklable():
    import pickle

    e = UmfaError(S.SHAPE_MISMATCH, None, "boom")
    e2 = pickle.loads(pickle.dumps(e))
    assert (e2.status, e2.name, e2.message) == (5, "UMFA_STATUS_SHAPE_MISMATCH", "boom")
    assert umfa.MFAError is UmfaError


def test_one_context_from_many_threads():
    # ctypes drops the GIL during the call, so these run concurrently on one context.
    from concurrent.futures import ThreadPoolExecutor

    ctx = umfa.Context("cpu")
    inputs = [(randn(1, 32, 2, 16), randn(1, 40, 2, 16)) for _ in range(8)]
    expected = [umfa.flash_attn_func(q, k, k) for q, k in inputs]

    def work(i):
        q, k = inputs[i]
        out = np.empty_like(q)
        ctx.forward(q, k, k, out)
        return out

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, list(range(8)) * 3))
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out, expected[i % 8])


# The Metal backend as libumfa loads it on Linux: the simulated library (core/src/metal, built by
# `bash core/src/metal/scripts/test.sh`), opted into through UMFA_METAL_LIB in a child process (the
# variable is read once, when libumfa first looks for Metal). Skipped when that library is not built.
_METAL_SIM = Path(os.environ.get("UMFA_METAL_SIM_LIB") or
                  Path(__file__).resolve().parents[3] / "build/metal-sim/lib/libumfa_metal_sim.so")


@pytest.mark.skipif(sys.platform == "darwin" or not _METAL_SIM.is_file(),
                    reason="needs the simulated Metal backend (Linux)")
def test_metal_backend_through_the_simulated_library():
    script = textwrap.dedent("""
        import numpy as np, umfa
        assert umfa.is_metal_available() and "metal" in umfa.backends()
        assert umfa.Context(backend="auto").backend == "cpu"  # AUTO never picks a simulation
        rng = np.random.default_rng(3)
        q, k, v = (rng.standard_normal((2, 13, 4, 40), dtype=np.float32) for _ in range(3))
        k, v = k[:, :, :2].copy(), v[:, :, :2].copy()  # GQA 4:2
        out = {}
        for name in ("cpu", "metal"):
            with umfa.Context(backend=name) as ctx:
                assert ctx.backend == name
                o = np.full((2, 13, 4, 40), np.nan, np.float32)
                lse = np.full((2, 4, 13), np.nan, np.float32)
                ctx.forward(q, k, v, o, lse, mask_mode="causal_top_left")
                out[name] = (o, lse)
        assert np.abs(out["cpu"][0] - out["metal"][0]).max() < 1e-5
        assert np.abs(out["cpu"][1] - out["metal"][1]).max() < 1e-5
        print("metal ok")
    """)
    env = dict(os.environ, UMFA_METAL_LIB=str(_METAL_SIM))
    # The child imports the umfa this test session imports (the checkout's src/ unless installed).
    src = str(Path(umfa.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "metal ok" in r.stdout
