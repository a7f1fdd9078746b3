"""What ``Context.forward`` / ``backward`` accept as arrays, beyond shapes and dtypes: outputs
that must not be written (read-only memory however it is exposed, tensors autograd tracks),
views that overlap themselves or reach outside the memory that holds them, tensors whose bytes
are not what they show (negative/conjugate bits, subclasses, meta and sparse tensors), and
arguments changed by caller code while the call is prepared. Every refusal is an
``UmfaError`` with a status, and leaves every output byte as it was.
"""

from __future__ import annotations

import ctypes
import mmap
import warnings
from typing import Any, Callable

import numpy as np
import pytest

import umfa
from umfa import Status, UmfaError

torch = pytest.importorskip("torch")

SENTINEL = 7.0


@pytest.fixture(scope="module")
def ctx():
    with umfa.Context("cpu", num_threads=2) as c:
        yield c


def qkv(shape=(1, 6, 2, 8), seed=0):
    rng = np.random.default_rng(seed)
    # clone(): memory torch allocated itself (from_numpy memory is numpy's)
    return tuple(torch.from_numpy(rng.standard_normal(shape).astype(np.float32)).clone()
                 for _ in range(3))


def refused(fn: Callable[[], Any], status: int, *words: str) -> UmfaError:
    with pytest.raises(UmfaError) as e:
        fn()
    assert e.value.status == status, e.value
    for w in words:
        assert w in e.value.message, e.value.message
    return e.value


# ---------------------------------------------------------------------------------------------
# Outputs that must not be written
# ---------------------------------------------------------------------------------------------


def test_requires_grad_outputs_are_refused_in_grad_mode(ctx):
    q, k, v = qkv()
    leaf = torch.full(q.shape, SENTINEL, requires_grad=True)
    refused(lambda: ctx.forward(q, k, v, leaf), Status.INVALID_ARGUMENT, "out", "requires grad")
    assert (leaf.detach() == SENTINEL).all()
    nonleaf = leaf * 1.0
    refused(lambda: ctx.forward(q, k, v, nonleaf), Status.INVALID_ARGUMENT, "requires grad")
    lse = torch.empty(1, 2, 6, requires_grad=True)
    refused(lambda: ctx.forward(q, k, v, torch.empty_like(q), lse), Status.INVALID_ARGUMENT,
            "lse")
    grads = [torch.empty_like(q) for _ in range(3)]
    out, lse = torch.empty_like(q), torch.empty(1, 2, 6)
    ctx.forward(q, k, v, out, lse)
    grads[1].requires_grad_()
    refused(lambda: ctx.backward(q, k, v, out, q, lse, *grads), Status.INVALID_ARGUMENT, "dk")
    # Outside grad mode an in-place write is what optimizers do: allowed.
    with torch.no_grad():
        ctx.forward(q, k, v, leaf)
    assert not (leaf.detach() == SENTINEL).all()


def test_outputs_bump_the_version_counter(ctx):
    # An output that autograd saved for a backward pass and that umfa then overwrote: the
    # backward must notice, as it does for PyTorch's own in-place writes.
    q, k, v = qkv()
    x = torch.randn(q.shape, requires_grad=True)
    y = torch.empty_like(q)
    with torch.no_grad():
        y.copy_(q)
    z = (x * y).sum()  # saves y
    ctx.forward(q, k, v, y)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.backward()


def _frombuffer(buf, n: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "The given buffer is not writable"
        return torch.frombuffer(buf, dtype=torch.float32, count=n)


def test_tensors_over_memory_torch_did_not_allocate(ctx):
    q, k, v = qkv()
    n = q.numel()
    frozen = bytes(4 * n)
    out = _frombuffer(frozen, n).view(q.shape)
    refused(lambda: ctx.forward(q, k, v, out), Status.INVALID_ARGUMENT, "out", "torch")
    assert frozen == bytes(4 * n)
    # A read-only mapping: writing there would crash the process.
    ro = mmap.mmap(-1, 4 * n, access=mmap.ACCESS_READ)
    out = _frombuffer(ro, n).view(q.shape)
    refused(lambda: ctx.forward(q, k, v, out), Status.INVALID_ARGUMENT, "out")
    ro_np = np.zeros(q.shape, np.float32)
    ro_np.setflags(write=False)
    refused(lambda: ctx.forward(q, k, v, torch.from_numpy(ro_np)), Status.INVALID_ARGUMENT, "out")
    # The owning objects say whether they may be written: pass those.
    writable = bytearray(4 * n)
    ctx.forward(q, k, v, np.frombuffer(writable, np.float32).reshape(q.shape))
    assert any(writable)
    refused(lambda: ctx.forward(q, k, v, np.frombuffer(frozen, np.float32).reshape(q.shape)),
            Status.INVALID_ARGUMENT, "read-only")
    # As inputs such tensors are fine.
    ctx.forward(_frombuffer(bytes(4 * n), n).view(q.shape), k, v, torch.empty_like(q))
    # Shared-memory tensors (DataLoader workers) are torch's own.
    shared = torch.empty_like(q).share_memory_()
    ctx.forward(q, k, v, shared)


class _DLPackOf:
    """Exports another array through DLPack only; ``versioned`` selects whether it accepts
    ``max_version`` (DLPack 1.0, which can say "read-only")."""

    def __init__(self, a, versioned=True):
        self._a, self._versioned = a, versioned

    def __dlpack__(self, stream=None, **kw):
        if not self._versioned and "max_version" in kw:
            raise TypeError("max_version")
        return self._a.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


class _CAI:
    def __init__(self, a, readonly):
        self.a = a
        self.__cuda_array_interface__ = {"shape": a.shape, "typestr": a.dtype.str,
                                         "data": (a.ctypes.data, readonly), "strides": None,
                                         "version": 3}


def test_read_only_views_through_protocols(ctx):
    q = np.random.default_rng(1).standard_normal((1, 6, 2, 8)).astype(np.float32)
    out = np.full_like(q, SENTINEL)
    out.setflags(write=False)
    refused(lambda: ctx.forward(q, q, q, _DLPackOf(out)), Status.INVALID_ARGUMENT, "read-only")
    # An unversioned DLPack export of a read-only numpy array fails in numpy itself.
    refused(lambda: ctx.forward(q, q, q, _DLPackOf(out, versioned=False)),
            Status.INVALID_ARGUMENT, "DLPack")
    assert (out == SENTINEL).all()
    refused(lambda: ctx.forward(q, q, q, _CAI(np.zeros_like(q), readonly=True)),
            Status.INVALID_ARGUMENT, "read-only")

    class Interface:  # numpy would view it read-only or not; as an output it is refused
        def __init__(self, a):
            self.__array_interface__ = a.__array_interface__

    refused(lambda: ctx.forward(q, q, q, Interface(np.zeros_like(q))), Status.INVALID_ARGUMENT,
            "outputs must be")
    dst = np.empty_like(q)
    ctx.forward(Interface(out), q, q, dst)  # read-only memory is fine to read
    # Read-only inputs are fine, through DLPack as well.
    dst = np.empty_like(q)
    ctx.forward(_DLPackOf(out), q, q, dst)
    writable = np.full_like(q, SENTINEL)
    ctx.forward(q, q, q, _DLPackOf(writable))
    assert not (writable == SENTINEL).all()


# ---------------------------------------------------------------------------------------------
# Views that overlap themselves or reach outside their memory
# ---------------------------------------------------------------------------------------------


def test_self_overlapping_outputs_are_refused(ctx):
    q, k, v = qkv()
    expanded = torch.full((1, 6, 1, 8), SENTINEL).expand(1, 6, 2, 8)  # stride 0 over heads
    refused(lambda: ctx.forward(q, k, v, expanded), Status.INVALID_STRIDE)
    overlapping = torch.full((64,), SENTINEL).as_strided((1, 6, 2, 8), (0, 8, 4, 1))
    refused(lambda: ctx.forward(q, k, v, overlapping), Status.INVALID_STRIDE)
    npo = np.lib.stride_tricks.as_strided(np.full(64, SENTINEL, np.float32), (1, 6, 2, 8),
                                          (0, 32, 16, 4), writeable=True)
    refused(lambda: ctx.forward(q.numpy(), k.numpy(), v.numpy(), npo), Status.INVALID_STRIDE)
    assert (expanded == SENTINEL).all()
    # Non-contiguous outputs that do not overlap are written in place.
    big = torch.full((1, 6, 4, 8), SENTINEL)
    ctx.forward(q, k, v, big[:, :, ::2])
    assert (big[:, :, 1::2] == SENTINEL).all() and not (big[:, :, ::2] == SENTINEL).any()


# Before the fixes these cases read or wrote freed memory: they run in a child interpreter
# (a regression is a failed test, not a dead suite).
PAST_STORAGE = """
import torch, umfa.torch
torch.set_num_threads(1)
ctx = umfa.Context("cpu", num_threads=2)
q, k, v = (torch.randn(1, 6, 2, 8) for _ in range(3))

def status(call):
    try:
        call()
        return "OK"
    except umfa.UmfaError as exc:
        return exc.name + ("/storage" if "storage" in exc.message else "")

# The storage freed under the tensor (what FSDP does to parameters between uses).
gone = torch.randn(1 + 96)[1:].view(1, 6, 2, 8)
gone.untyped_storage().resize_(0)
freed_input = status(lambda: ctx.forward(gone, k, v, torch.empty_like(q)))
out = torch.randn(1 + 96)[1:].view(1, 6, 2, 8)
out.untyped_storage().resize_(16)
shrunk_output = status(lambda: ctx.forward(q, k, v, out))
# flash_attn_func converts ALiBi slopes (bool -> float32) with a torch op after reading
# `causal`: a `causal` whose __index__ frees the slopes' storage must not make it read there.
slopes = torch.ones(2, dtype=torch.bool)
class FreeSlopes:
    def __index__(self):
        slopes.untyped_storage().resize_(0)
        return 1
freed_by_callback = status(lambda: umfa.flash_attn_func(q, k, v, causal=FreeSlopes(),
                                                        alibi_slopes=slopes))
report(freed_input=freed_input, shrunk_output=shrunk_output,
       freed_by_callback=freed_by_callback)
"""


def test_tensors_reaching_outside_their_storage():
    from _isolated import run_scenario

    r = run_scenario(PAST_STORAGE, timeout=120)
    bad = "UMFA_STATUS_INVALID_ARGUMENT/storage"
    assert r == {"freed_input": bad, "shrunk_output": bad, "freed_by_callback": bad}, r


def test_numpy_views_reaching_outside_their_memory(ctx):
    q = np.random.default_rng(2).standard_normal((1, 6, 2, 8)).astype(np.float32)
    small = np.zeros(10, np.float32)
    reach = np.lib.stride_tricks.as_strided(small, (1, 6, 2, 8), (384, 64, 32, 4),
                                            writeable=True)
    refused(lambda: ctx.forward(reach, q, q, np.empty_like(q)), Status.INVALID_ARGUMENT,
            "outside")
    refused(lambda: ctx.forward(q, q, q, reach), Status.INVALID_ARGUMENT, "outside")
    over_bytes = np.lib.stride_tricks.as_strided(np.frombuffer(bytearray(40), np.float32),
                                                 (1, 6, 2, 8), (384, 64, 32, 4))
    refused(lambda: ctx.forward(over_bytes, q, q, np.empty_like(q)), Status.INVALID_ARGUMENT,
            "outside")
    # as_strided within the memory is fine (a sliding-window view, a broadcast).
    inside = np.lib.stride_tricks.as_strided(np.arange(200, dtype=np.float32), (1, 6, 2, 8),
                                             (0, 64, 32, 4))
    ctx.forward(inside, q, q, np.empty_like(q))


# ---------------------------------------------------------------------------------------------
# Tensors whose bytes are not what they show
# ---------------------------------------------------------------------------------------------


def test_negative_and_conjugate_bits(ctx):
    q, k, v = qkv()
    neg = torch.randn(1, 6, 2, 8, dtype=torch.complex64).conj().imag  # a negative-bit view
    assert neg.is_neg()
    refused(lambda: ctx.forward(neg, k, v, torch.empty_like(q)), Status.UNSUPPORTED,
            "resolve_neg")
    out = torch.full_like(q, SENTINEL)
    refused(lambda: ctx.forward(q, neg, v, out), Status.UNSUPPORTED)
    ctx.forward(neg.resolve_neg(), k, v, out)
    conj = torch.randn(1, 6, 2, 8, dtype=torch.complex64).conj()
    refused(lambda: ctx.forward(conj, k, v, out), Status.UNSUPPORTED_DTYPE)


def test_meta_sparse_and_integer_tensors(ctx):
    q, k, v = qkv()
    out = torch.full_like(q, SENTINEL)
    refused(lambda: ctx.forward(q.to("meta"), k, v, out), Status.DEVICE_MISMATCH, "meta")
    refused(lambda: ctx.forward(q, k, v, torch.empty(q.shape, device="meta")),
            Status.DEVICE_MISMATCH)
    refused(lambda: ctx.forward(q.to_sparse(), k, v, out), Status.UNSUPPORTED, "strided")
    for dtype in (torch.int64, torch.int16, torch.uint8, torch.float64):
        refused(lambda: ctx.forward(q.to(dtype), k.to(dtype), v.to(dtype), out),
                Status.UNSUPPORTED_DTYPE)
    # int32 and bool are umfa dtypes, for cu_seqlens and masks: the core refuses them here.
    for dtype in (torch.int32, torch.bool):
        refused(lambda: ctx.forward(q.to(dtype), k.to(dtype), v.to(dtype), out),
                Status.UNSUPPORTED_DTYPE)
    refused(lambda: ctx.forward(q, k, v, torch.empty(q.shape, dtype=torch.int32)),
            Status.UNSUPPORTED_DTYPE)
    assert (out == SENTINEL).all()


class _LyingTensor(torch.Tensor):
    """A subclass that reports another tensor's address as its own."""

    def data_ptr(self):  # pragma: no cover - must never be called
        raise AssertionError("umfa asked a tensor subclass for its data pointer")


def test_tensor_subclasses(ctx):
    q, k, v = qkv()
    out = torch.full_like(q, SENTINEL)
    lying = q.as_subclass(_LyingTensor)
    refused(lambda: ctx.forward(lying, k, v, out), Status.UNSUPPORTED, "_LyingTensor")
    refused(lambda: ctx.forward(q, k, v, out.as_subclass(_LyingTensor)), Status.UNSUPPORTED)
    assert (out == SENTINEL).all()
    # Parameters are plain tensors with requires_grad.
    ctx.forward(torch.nn.Parameter(q), k, v, out)
    torch.testing.assert_close(out, _reference(q, k, v))
    # ... and what umfa.torch hands subclasses to is the dispatcher, not raw memory.
    import umfa.torch as ut

    got = ut.scaled_dot_product_attention(q.transpose(1, 2).as_subclass(_LyingTensor),
                                          k.transpose(1, 2), v.transpose(1, 2))
    torch.testing.assert_close(got.as_subclass(torch.Tensor).transpose(1, 2),
                               _reference(q, k, v))


def _reference(q, k, v):
    return torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)


def test_torch_function_modes_do_not_run_between_pointer_reads(ctx):
    # A mode that frees q's storage whenever umfa reads a tensor's metadata: the reads happen
    # with torch function handling off, so it never gets the chance.
    q, k, v = qkv()
    keep = q.clone()
    calls = []

    class Meddler(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            calls.append(getattr(func, "__name__", str(func)))
            return func(*args, **(kwargs or {}))

    out = torch.empty_like(q)
    with Meddler():
        ctx.forward(q, k, v, out)
    assert not any(c in ("data_ptr", "stride", "untyped_storage") for c in calls), calls
    torch.testing.assert_close(out, _reference(keep, k, v))


# ---------------------------------------------------------------------------------------------
# Caller code that changes arguments while a call is prepared
# ---------------------------------------------------------------------------------------------


class _Index:
    def __init__(self, value, action):
        self.value, self.action = value, action

    def __index__(self):
        self.action()
        return self.value


class _CAIThatActs:
    """A device array (refused by a CPU context after its protocol ran) whose interface
    property runs caller code."""

    def __init__(self, action):
        self.action = action

    @property
    def __cuda_array_interface__(self):
        self.action()
        return {"shape": (1, 6, 2, 8), "typestr": "<f4", "data": (0, False), "version": 3}


def test_storage_freed_by_an_option_conversion(ctx):
    # The TypeScript hole, in Python: caller code run while options are read frees an
    # argument whose pointer would otherwise already have been taken.
    q, k, v = qkv()
    out = torch.full_like(q, SENTINEL)
    free_q = _Index(3, lambda: q.untyped_storage().resize_(0))
    refused(lambda: ctx.forward(q, k, v, out, window_size=(free_q, 0)), Status.INVALID_ARGUMENT,
            "q", "storage")
    assert (out == SENTINEL).all()


def test_storage_replaced_by_a_protocol_call(ctx):
    # A later argument's protocol swaps an earlier argument's storage for a larger one: the
    # call reads the tensor as it is when the pointers are taken (after all caller code).
    q, k, v = qkv()
    bigger = torch.randn(1, 6, 2, 8)

    def swap():
        k.set_(bigger.clone())

    out = torch.full_like(q, SENTINEL)
    mask = _CAIThatActs(swap)  # resolved (and run) before q's pointer is read
    refused(lambda: ctx.forward(q, k, v, out, attn_mask=mask), Status.DEVICE_MISMATCH)
    assert torch.equal(k, bigger)
    ctx.forward(q, k, v, out, window_size=(_Index(100, lambda: k.set_(bigger.clone() * 2)), 100))
    torch.testing.assert_close(out, _reference(q, bigger * 2, v))


def test_numpy_array_resized_by_caller_code(ctx):
    q = np.random.default_rng(3).standard_normal((1, 6, 2, 8)).astype(np.float32)
    view = q.copy()[:, :, :1]  # a view: checked against its owner's memory when read

    def shrink():
        view.base.resize(4, refcheck=False)  # frees the memory the view points into

    refused(lambda: ctx.forward(view, view, view, np.empty_like(view),
                                window_size=(_Index(1, shrink), 0)),
            Status.INVALID_ARGUMENT, "outside")


def test_classic_buffer_of_read_only_array_is_fine_to_read():
    # MFABuffer wraps memory for the classic C API; reading a read-only array is allowed.
    with umfa.MFAContext() as c:
        a = np.zeros(16, np.float32)
        a.setflags(write=False)
        with umfa.MFABuffer(c, a) as b:
            assert b.contents_ptr() == a.ctypes.data


def test_buffer_protocol_inputs_keep_working(ctx):
    q = np.random.default_rng(4).standard_normal((1, 6, 2, 8)).astype(np.float32)
    arr = (ctypes.c_float * q.size).from_buffer_copy(q.tobytes())
    src = np.frombuffer(arr, np.float32).reshape(q.shape)
    out = np.empty_like(q)
    ctx.forward(src, src, src, out)
    ref = np.empty_like(q)
    ctx.forward(q, q, q, ref)
    np.testing.assert_array_equal(out, ref)


def test_results_too_large_to_allocate():
    # Broadcast (stride-0) inputs can describe results no machine holds: the allocation's
    # failure is a typed error, as the core's own are.
    q1 = np.ones((1, 1, 1, 8), np.float32)
    huge = np.broadcast_to(q1, (2 ** 40, 4, 1, 8))
    refused(lambda: umfa.flash_attn_func(huge, huge, huge), Status.OUT_OF_MEMORY)
    import umfa.torch as ut

    t = torch.ones(1, 1, 4, 8)
    refused(lambda: ut.scaled_dot_product_attention(t, t.expand(2 ** 40, 1, 4, 8), t),
            Status.OUT_OF_MEMORY)
    # Side inputs converted to float32: a broadcast of 2^40 slopes cannot be.
    q = np.ones((1, 4, 1, 8), np.float32)
    slopes = np.broadcast_to(np.ones(1), (2 ** 40,))
    refused(lambda: umfa.flash_attn_func(q, q, q, alibi_slopes=slopes), Status.OUT_OF_MEMORY)
    tq = torch.ones(1, 4, 1, 8)
    refused(lambda: umfa.flash_attn_func(tq, tq, tq, alibi_slopes=torch.from_numpy(slopes)),
            Status.OUT_OF_MEMORY)


def test_sdpa_on_a_tensor_past_its_storage():
    import umfa.torch as ut

    q = torch.randn(1 + 2 * 4 * 8)[1:].view(1, 2, 4, 8)
    q.untyped_storage().resize_(16)
    k = torch.randn(1, 1, 4, 8)  # broadcast over heads: the view ops see q first
    refused(lambda: ut.scaled_dot_product_attention(q, k, k), Status.INVALID_ARGUMENT)



def test_numpy_side_inputs_past_their_memory_are_not_converted():
    # The high-level functions convert ALiBi slopes and offsets with numpy, which reads every
    # element: a view past its memory is refused before that.
    q = np.ones((1, 4, 2, 8), np.float32)
    small = np.arange(2, dtype=np.int32)
    past = np.lib.stride_tricks.as_strided(small, (2,), (16,))
    refused(lambda: umfa.flash_attn_func(q, q, q, alibi_slopes=past), Status.INVALID_ARGUMENT,
            "alibi_slopes", "outside")
    qv = np.ones((4, 2, 8), np.float32)
    cu = np.lib.stride_tricks.as_strided(np.array([0, 4], np.int64), (2,), (64,))
    refused(lambda: umfa.flash_attn_varlen_func(qv, qv, qv, cu, cu, 4, 4),
            Status.INVALID_ARGUMENT, "cu_seqlens_q", "outside")
    q64 = np.lib.stride_tricks.as_strided(np.ones(8), (8, 8), (64, 8))
    refused(lambda: umfa.attention(q64, q64, q64), Status.INVALID_ARGUMENT, "outside")
