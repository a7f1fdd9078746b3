"""Option values are range-checked before ctypes converts them.

ctypes stores a Python int into a C integer field modulo 2**bits and a float into a C float as
inf or 0, silently: ``num_threads=2**32+1`` became 1 thread, ``workspace_limit_bytes=-1`` no
limit, ``mask_mode=2**32+1`` a causal mask and ``window_size=(2**64+2, 0)`` a window of 2.
Every option that becomes a C number is checked here at its C type's boundaries (min - 1, min,
max, max + 1): values outside raise ``UmfaError(UMFA_STATUS_INVALID_ARGUMENT)`` naming the
option, values inside reach the C struct unchanged (the core then applies its own rules, e.g.
no negative thread count), and values of the wrong kind (floats for integers, bools for
numbers, strings) are refused rather than coerced. Nothing is written by a refused call.
"""

from __future__ import annotations

import ctypes
from typing import Any, Callable, Dict

import numpy as np
import pytest

import umfa
from umfa import Status, UmfaError
from umfa import _native as N

I32 = (-(2 ** 31), 2 ** 31 - 1)
U32 = (0, 2 ** 32 - 1)
I64 = (-(2 ** 63), 2 ** 63 - 1)
U64 = (0, 2 ** 64 - 1)


def refused(fn: Callable[[], Any], option: str) -> UmfaError:
    with pytest.raises(UmfaError) as e:
        fn()
    assert e.value.status == Status.INVALID_ARGUMENT, e.value
    assert option in e.value.message, e.value.message
    return e.value


# ---------------------------------------------------------------------------------------------
# Context options: what reaches umfa_context_create
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def captured_create(monkeypatch):
    """umfa_context_create replaced by a stand-in that records the options struct and fails,
    so values the core would act on (2**31 - 1 worker threads) can be checked safely."""
    seen: Dict[str, int] = {}

    def fake_create(opts_ref, out):
        opts = ctypes.cast(opts_ref, ctypes.POINTER(N.ContextOptions)).contents
        seen.update(backend=opts.backend, device_index=opts.device_index,
                    num_threads=opts.num_threads,
                    workspace_limit_bytes=opts.workspace_limit_bytes)
        return int(Status.UNSUPPORTED)

    monkeypatch.setattr(N.lib, "umfa_context_create", fake_create)
    return seen


@pytest.mark.parametrize("option,bounds", [("num_threads", I32), ("device_index", I32),
                                           ("workspace_limit_bytes", U64)])
def test_context_integer_options_at_their_bounds(captured_create, option, bounds):
    lo, hi = bounds
    for value in (lo, hi, np.array(hi).astype(np.uint64 if lo == 0 else np.int64)[()], np.uint8(7)):
        with pytest.raises(UmfaError) as e:
            umfa.Context("cpu", **{option: value})
        assert e.value.status == Status.UNSUPPORTED  # the stand-in's answer: it got there
        assert captured_create[option] == int(value)
    for value in (lo - 1, hi + 1, hi + 2 ** 32 + 2, lo - 2 ** 64):
        refused(lambda: umfa.Context("cpu", **{option: value}), option)
    for value in (2.0, True, "2", None, 1 + 0j):
        refused(lambda: umfa.Context("cpu", **{option: value}), option)


def test_context_options_with_the_core():
    # The values from the issue, against the real library.
    refused(lambda: umfa.Context("cpu", num_threads=2 ** 32 + 1), "num_threads")
    refused(lambda: umfa.Context("cpu", workspace_limit_bytes=-1), "workspace_limit_bytes")
    with pytest.raises(UmfaError) as e:  # in range, refused by the core
        umfa.Context("cpu", num_threads=-1)
    assert e.value.status == Status.INVALID_ARGUMENT and "num_threads" in e.value.message
    with umfa.Context("cpu", num_threads=np.int32(2), workspace_limit_bytes=2 ** 64 - 1) as c:
        assert c.num_threads == 2
    refused(lambda: umfa.Context(backend=["cpu"]), "backend")
    refused(lambda: umfa.default_context("cuda", 2 ** 31), "index")


# ---------------------------------------------------------------------------------------------
# Attention options: umfa_attention_options fields
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ctx():
    with umfa.Context("cpu", num_threads=1) as c:
        yield c


def _arrays():
    rng = np.random.default_rng(3)
    q = rng.standard_normal((1, 5, 2, 8)).astype(np.float32)
    return q, q.copy(), q.copy(), np.full_like(q, 7.0)


def call_with(ctx, **options):
    q, k, v, out = _arrays()
    try:
        ctx.forward(q, k, v, out, **options)
    except UmfaError:
        assert (out == 7.0).all(), "a refused call wrote its output"
        raise
    return out


def struct_of(**options) -> N.AttentionOptions:
    opts, _keep = umfa.attention_options(**options)
    return opts


def test_issue_examples_are_refused(ctx):
    refused(lambda: call_with(ctx, mask_mode=2 ** 32 + 1), "mask_mode")
    refused(lambda: call_with(ctx, window_size=(2 ** 64 + 2, 0)), "window_size")


def test_mask_mode_bounds(ctx):
    assert struct_of(mask_mode=U32[1]).mask_mode == U32[1]
    assert struct_of(mask_mode=np.uint8(1)).mask_mode == N.MASK_CAUSAL_TOP_LEFT
    assert struct_of(mask_mode=0).mask_mode == N.MASK_NONE
    assert struct_of(mask_mode=True).mask_mode == N.MASK_CAUSAL_BOTTOM_RIGHT  # documented
    for value in (-1, U32[1] + 1, 2 ** 32 + 1, 2 ** 64 + 1):
        refused(lambda: call_with(ctx, mask_mode=value), "mask_mode")
    for value in (1.0, "causal", b"none", [1]):
        refused(lambda: call_with(ctx, mask_mode=value), "mask_mode")
    # In range but not a UMFA_MASK_* value: the core's own refusal.
    with pytest.raises(UmfaError) as e:
        call_with(ctx, mask_mode=3)
    assert e.value.status == Status.INVALID_ARGUMENT and "mask_mode" in e.value.message


@pytest.mark.parametrize("side", [0, 1])
def test_window_bounds(ctx, side):
    def window(x):  # the other side 0, so that the struct holds the window
        return (x, 0) if side == 0 else (0, x)

    for value in I64:
        opts = struct_of(window_size=window(value))
        assert (opts.window_left, opts.window_right)[side] == value
    call_with(ctx, window_size=window(I64[1]))
    call_with(ctx, window_size=window(np.int64(2)))
    for value in (I64[0] - 1, I64[1] + 1, 2 ** 64 + 2):
        refused(lambda: call_with(ctx, window_size=window(value)), f"window_size[{side}]")
    for value in (1.5, True, "3", None):
        refused(lambda: call_with(ctx, window_size=window(value)), f"window_size[{side}]")


def test_window_shape(ctx):
    for value in ((1, 2, 3), (1,), 5, "ab", {1: 2}):
        refused(lambda: call_with(ctx, window_size=value), "window_size")
    call_with(ctx, window_size=[3, 0])
    call_with(ctx, window_size=None)


@pytest.mark.parametrize("option", ["softmax_scale", "softcap"])
def test_float_options(ctx, option):
    big = float(np.finfo(np.float32).max)
    assert getattr(struct_of(**{option: big}), option) == big
    call_with(ctx, **{option: np.float64(0.5)})
    call_with(ctx, **{option: 2})  # an int is a real number
    for value in (1e39, 2 * big, 10 ** 400, float("inf"), float("-inf"), float("nan"), 1e-50):
        refused(lambda: call_with(ctx, **{option: value}), option)
    for value in (True, "0.5", b"1", [0.5], 1j):
        refused(lambda: call_with(ctx, **{option: value}), option)
    if option == "softmax_scale":
        refused(lambda: call_with(ctx, softmax_scale=0.0), "softmax_scale")
        call_with(ctx, softmax_scale=-big)
    else:  # negative softcaps are the core's to refuse
        with pytest.raises(UmfaError) as e:
            call_with(ctx, softcap=-1.0)
        assert e.value.status == Status.INVALID_ARGUMENT and "softcap" in e.value.message


@pytest.mark.parametrize("option", ["max_seqlen_q", "max_seqlen_k"])
def test_max_seqlen_bounds(ctx, option):
    for value in I64:
        assert getattr(struct_of(**{option: value}), option) == value
    for value in (I64[0] - 1, I64[1] + 1, 2 ** 64 + 3):
        refused(lambda: call_with(ctx, **{option: value}), option)
    for value in (3.0, True, "3"):
        refused(lambda: call_with(ctx, **{option: value}), option)
    # In range: varlen with the core's own checks.
    q = np.random.default_rng(2).standard_normal((6, 2, 8)).astype(np.float32)
    cu = np.array([0, 2, 6], np.int32)
    out = np.empty_like(q)
    ctx.forward(q, q, q, out, cu_seqlens_q=cu, cu_seqlens_k=cu, **{option: I64[1]})
    with pytest.raises(UmfaError) as e:
        ctx.forward(q, q, q, out, cu_seqlens_q=cu, cu_seqlens_k=cu, **{option: -1})
    assert e.value.status == Status.INVALID_ARGUMENT and option in e.value.message


def test_flags_and_stream(ctx):
    for value in (True, False, np.bool_(True), 0, 1):
        call_with(ctx, deterministic=value)
    for value in (2, -1, "yes", 1.0, None):
        refused(lambda: call_with(ctx, deterministic=value), "deterministic")
    for value in (0, None, U64[1], np.uint64(5)):
        call_with(ctx, stream=value)  # ignored by the CPU backend
    for value in (-1, U64[1] + 1, 1.5, "0"):
        refused(lambda: call_with(ctx, stream=value), "stream")


def test_fast_path_options_are_checked_too(ctx):
    # Torch tensors take the per-call fast path with its cached option structs; a value equal
    # to a cached one but of another type (1.0 == 1 == True) must not reuse the cached struct.
    torch = pytest.importorskip("torch")
    q = torch.randn(1, 5, 2, 8)
    out = torch.empty_like(q)
    ctx.forward(q, q, q, out, max_seqlen_q=1, window_size=(1, 1))
    for options, name in (({"max_seqlen_q": 1.0}, "max_seqlen_q"),
                          ({"max_seqlen_q": True}, "max_seqlen_q"),
                          ({"window_size": (1.0, 1)}, "window_size"),
                          ({"mask_mode": 2 ** 32 + 1}, "mask_mode"),
                          ({"softmax_scale": 1e39}, "softmax_scale")):
        refused(lambda: ctx.forward(q, q, q, out, **options), name)


# ---------------------------------------------------------------------------------------------
# The high-level functions
# ---------------------------------------------------------------------------------------------


def _qkv(torch_tensors: bool):
    q = np.random.default_rng(4).standard_normal((1, 6, 2, 8)).astype(np.float32)
    if torch_tensors:
        torch = pytest.importorskip("torch")
        return (torch.from_numpy(q.copy()),) * 3
    return q, q.copy(), q.copy()


@pytest.mark.parametrize("use_torch", [False, True], ids=["numpy", "torch"])
def test_flash_attn_func_options(use_torch):
    q, k, v = _qkv(use_torch)
    f = umfa.flash_attn_func
    refused(lambda: f(q, k, v, window_size=(2 ** 64 + 2, 0)), "window_size")
    refused(lambda: f(q, k, v, window_size=(-(2 ** 63) - 1, 0)), "window_size")
    refused(lambda: f(q, k, v, softcap=1e39), "softcap")
    refused(lambda: f(q, k, v, softcap=float("nan")), "softcap")
    refused(lambda: f(q, k, v, softmax_scale=1e-50), "softmax_scale")
    refused(lambda: f(q, k, v, softmax_scale=0.0), "softmax_scale")
    refused(lambda: f(q, k, v, causal=2), "causal")
    refused(lambda: f(q, k, v, deterministic="yes"), "deterministic")
    refused(lambda: f(q, k, v, dropout_p=float("nan")), "dropout_p")
    refused(lambda: f(q, k, v, dropout_p=-0.5), "dropout_p")
    refused(lambda: f(q, k, v, alibi_slopes=np.array([1e39, 1.0])), "alibi_slopes")
    with pytest.raises(UmfaError) as e:
        f(q, k, v, dropout_p=0.5)
    assert e.value.status == Status.UNSUPPORTED
    f(q, k, v, window_size=(I64[1], 0), causal=np.bool_(True), softcap=3.0)


@pytest.mark.parametrize("use_torch", [False, True], ids=["numpy", "torch"])
def test_varlen_offsets_are_not_wrapped(use_torch):
    # int64 offsets beyond int32 would wrap to small, valid-looking ones when converted.
    q = np.random.default_rng(5).standard_normal((6, 2, 8)).astype(np.float32)
    if use_torch:
        torch = pytest.importorskip("torch")
        q = torch.from_numpy(q)
    f = umfa.flash_attn_varlen_func
    wrapped = np.array([0, 2 ** 32 + 2, 2 ** 32 + 6], np.int64)  # int32: [0, 2, 6]
    refused(lambda: f(q, q, q, wrapped, wrapped, 4, 4), "cu_seqlens_q")
    ok = np.array([0, 2, 6], np.int64)
    f(q, q, q, ok, ok, 4, 4)
    refused(lambda: f(q, q, q, ok, ok, 2 ** 63, 4), "max_seqlen_q")
    refused(lambda: f(q, q, q, ok, ok, 4, 2.5), "max_seqlen_k")


def test_sdpa_scalars():
    torch = pytest.importorskip("torch")
    import umfa.torch as ut

    q = torch.randn(1, 2, 5, 8)
    for kwargs, status in (({"scale": 1e39}, Status.UNSUPPORTED),
                           ({"scale": 1e-50}, Status.UNSUPPORTED),
                           ({"scale": float("nan")}, Status.UNSUPPORTED),
                           ({"scale": "0.5"}, Status.INVALID_ARGUMENT),
                           ({"is_causal": 2}, Status.INVALID_ARGUMENT),
                           ({"enable_gqa": "no"}, Status.INVALID_ARGUMENT),
                           ({"dropout_p": float("nan")}, Status.UNSUPPORTED)):
        with pytest.raises(UmfaError) as e:
            ut.scaled_dot_product_attention(q, q, q, **kwargs)
        assert e.value.status == status, (kwargs, e.value)

    class FlakyScale:
        """A scale whose __float__ answers 1.0 once, then NaN: it is read exactly once."""

        def __init__(self) -> None:
            self.calls = 0

        def __float__(self) -> float:
            self.calls += 1
            return 0.5 if self.calls == 1 else float("nan")

    flaky = FlakyScale()
    out = ut.scaled_dot_product_attention(q, q, q, scale=flaky)
    torch.testing.assert_close(out, torch.nn.functional.scaled_dot_product_attention(
        q, q, q, scale=0.5), atol=2e-6, rtol=2e-5)
    assert flaky.calls == 1


def test_classic_buffer_size():
    with umfa.MFAContext() as c:
        for value in (-1, 2 ** 64, 2 ** 64 + 16, 1.5, True, "16"):
            refused(lambda: umfa.MFABuffer(c, size=value), "size")
        with umfa.MFABuffer(c, size=np.int64(64)) as b:
            assert b.contents_ptr()
    with pytest.raises(UmfaError):
        umfa.MFABuffer(c, size=64)  # the context is closed


def test_classic_causal_flag():
    q = np.random.default_rng(6).standard_normal((8, 16)).astype(np.float32)
    refused(lambda: umfa.attention(q, q, q, causal=2), "causal")
    umfa.attention(q, q, q, causal=np.bool_(False))
