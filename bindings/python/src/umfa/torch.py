"""PyTorch integration: umfa attention as torch custom ops with autograd.

* :func:`scaled_dot_product_attention` — the contract of
  :func:`torch.nn.functional.scaled_dot_product_attention` (BHSD, top-left ``is_causal``, boolean
  or additive broadcastable ``attn_mask``, ``scale``, ``enable_gqa``), forward and backward
  through libumfa.
* :func:`patch` / :func:`unpatch` / :func:`patched` — route ``F.scaled_dot_product_attention``
  through umfa, falling back to PyTorch's own implementation for what umfa does not support
  (dropout, float64, nested tensors, gradients with respect to the mask, ...). Every call is
  counted in :data:`stats` (``stats.umfa_calls``, ``stats.fallbacks`` by reason).
* The ops themselves, ``torch.ops.umfa.attention_fwd`` and ``torch.ops.umfa.attention_bwd``
  (registered with :func:`torch.library.custom_op`, fake implementations for tracing, and
  :func:`torch.library.register_autograd`). The FlashAttention-style functions
  :func:`umfa.flash_attn_func` / :func:`umfa.flash_attn_varlen_func` use them for torch inputs.
* :func:`ring_attention` / :class:`RingAttention` — exact attention over a sequence sharded
  across a ``torch.distributed`` process group (context parallelism, module
  :mod:`umfa.torch_ring`), with :func:`shard_sequence` / :func:`unshard_sequence`.

CPU tensors run on the CPU backend. CUDA tensors run on the CUDA backend when libumfa has one
(``"cuda" in umfa.backends()``): device pointers go to the core as they are, on
``torch.cuda.current_stream()``, without any host round trip or synchronization. Tensors on
PyTorch's ``mps`` device are not served yet (umfa's Metal backend reads host memory; an ``mps``
tensor's storage is an ``MTLBuffer`` handle): they count as fallback reason ``"device"``.

Numerics: umfa accumulates in float32 for every input dtype and supports float32, float16 and
bfloat16 tensors. float64 inputs are not supported by the core; :func:`patch` sends them to
PyTorch (counted as fallback reason ``"dtype"``) and :func:`scaled_dot_product_attention`
raises ``UmfaError(UMFA_STATUS_UNSUPPORTED_DTYPE)`` for them.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from . import _checks
from . import _native as N
from ._context import Context, backend_available, default_context
from ._native import Status, UmfaError
from ._views import check_torch_extent

__all__ = [
    "scaled_dot_product_attention",
    "patch",
    "unpatch",
    "patched",
    "is_patched",
    "stats",
    "PatchStats",
    "fallback_count",
    "cuda_available",
]

# Layout of the q/k/v/out tensors given to the ops.
LAYOUT_BSHD = 0  # FlashAttention dense: [B, S, H, D]
LAYOUT_BHSD = 1  # PyTorch SDPA: [B, H, S, D]
LAYOUT_THD = 2  # FlashAttention varlen: [total, H, D]

_SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_MASK_DTYPES = (torch.bool, torch.float32, torch.float16, torch.bfloat16)

# ----------------------------------------------------------------------------------------------
# Devices
# ----------------------------------------------------------------------------------------------

_cuda_state: Optional[bool] = None


def cuda_available() -> bool:
    """True when libumfa has a usable CUDA backend *and* torch sees a CUDA device."""
    global _cuda_state
    if _cuda_state is None:
        _cuda_state = bool(torch.cuda.is_available()) and backend_available("cuda")[0]
    return _cuda_state


_contexts: Dict[Any, Context] = {}


def _context_for(t: Tensor) -> Context:
    dev = t.device
    ctx = _contexts.get(dev)
    if ctx is None or ctx.closed:  # closed by someone: default_context() makes a new one
        if dev.type == "cuda":
            index = dev.index if dev.index is not None else torch.cuda.current_device()
            ctx = default_context("cuda", index)
        else:
            ctx = default_context("cpu")
        if dev.type != "cuda" or dev.index is not None:
            _contexts[dev] = ctx
    return ctx


# The current stream's cudaStream_t without building a torch.cuda.Stream object (when this torch
# has the accessor its compiler uses; else through torch.cuda.current_stream).
_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)


def _stream_for(t: Tensor) -> Optional[int]:
    if t.is_cuda:
        if _raw_stream is not None:
            return int(_raw_stream(t.get_device()))
        return int(torch.cuda.current_stream(t.device).cuda_stream)
    return None


def _to_core(t: Tensor, layout: int) -> Tensor:
    """The BSHD (or THD) view the core reads: BHSD tensors are permuted, never copied."""
    return t.permute(0, 2, 1, 3) if layout == LAYOUT_BHSD else t


def _out_shapes(q: Tensor, v: Tensor, layout: int) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    if layout not in (LAYOUT_BSHD, LAYOUT_BHSD, LAYOUT_THD):
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"layout must be {LAYOUT_BSHD} (BSHD), {LAYOUT_BHSD} (BHSD) or "
                        f"{LAYOUT_THD} (THD), not {layout}")
    expected = 3 if layout == LAYOUT_THD else 4
    if q.dim() != expected or v.dim() != expected:
        raise UmfaError(Status.INVALID_RANK, None,
                        f"q and v must have rank {expected} for this layout, got shapes "
                        f"{tuple(q.shape)} and {tuple(v.shape)}")
    dv = v.shape[-1]
    if layout == LAYOUT_THD:
        t, h, _ = q.shape
        return (t, h, dv), (h, t)
    if layout == LAYOUT_BHSD:
        b, h, s, _ = q.shape
        return (b, h, s, dv), (b, h, s)
    b, s, h, _ = q.shape
    return (b, s, h, dv), (b, h, s)


def _core_options(q: Tensor, attn_mask: Optional[Tensor], alibi_slopes: Optional[Tensor],
                  cu_seqlens_q: Optional[Tensor], cu_seqlens_k: Optional[Tensor],
                  max_seqlen_q: int, max_seqlen_k: int, mask_mode: int, scale: float,
                  softcap: float, window_left: int, window_right: int,
                  deterministic: bool) -> Dict[str, Any]:
    # Only what differs from the defaults (fewer entries: less work per call).
    o: Dict[str, Any] = {"mask_mode": mask_mode, "stream": _stream_for(q)}
    if scale != 0.0:
        o["softmax_scale"] = scale
    if softcap:
        o["softcap"] = softcap
    if window_left >= 0 or window_right >= 0:
        o["window_size"] = (window_left, window_right)
    if max_seqlen_q:
        o["max_seqlen_q"] = max_seqlen_q
    if max_seqlen_k:
        o["max_seqlen_k"] = max_seqlen_k
    if deterministic:
        o["deterministic"] = True
    for name, t in (("attn_mask", attn_mask), ("alibi_slopes", alibi_slopes),
                    ("cu_seqlens_q", cu_seqlens_q), ("cu_seqlens_k", cu_seqlens_k)):
        if t is not None:
            o[name] = t
    return o


# ----------------------------------------------------------------------------------------------
# The custom ops
# ----------------------------------------------------------------------------------------------


def _allocate(make: Callable[[], Tensor], what: str) -> Tensor:
    """A tensor from ``make()``, which allocates; torch's allocation failure (a RuntimeError on
    the CPU) becomes ``UmfaError(UMFA_STATUS_OUT_OF_MEMORY)``, as the core reports its own."""
    try:
        return make()
    except UmfaError:
        raise
    except RuntimeError as exc:
        raise UmfaError(Status.OUT_OF_MEMORY, None,
                        f"{what}: could not allocate the result: {exc}") from None


def _fwd_impl(q: Tensor, k: Tensor, v: Tensor, attn_mask: Optional[Tensor],
              alibi_slopes: Optional[Tensor], cu_seqlens_q: Optional[Tensor],
              cu_seqlens_k: Optional[Tensor], max_seqlen_q: int, max_seqlen_k: int,
              layout: int, mask_mode: int, scale: float, softcap: float, window_left: int,
              window_right: int, deterministic: bool) -> Tuple[Tensor, Tensor]:
    out_shape, lse_shape = _out_shapes(q, v, layout)
    out = _allocate(lambda: torch.empty(out_shape, dtype=q.dtype, device=q.device), "out")
    lse = _allocate(lambda: torch.empty(lse_shape, dtype=torch.float32, device=q.device), "lse")
    opts = _core_options(q, attn_mask, alibi_slopes, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                         max_seqlen_k, mask_mode, scale, softcap, window_left, window_right,
                         deterministic)
    ctx = _context_for(q)
    if not ctx._forward_fast(layout == LAYOUT_BHSD, q, k, v, out, lse, opts, fresh=True):
        ctx.forward(_to_core(q, layout), _to_core(k, layout), _to_core(v, layout),
                    _to_core(out, layout), lse, **opts)
    return out, lse


@torch.library.custom_op("umfa::attention_fwd", mutates_args=())
def _attention_fwd(q: Tensor, k: Tensor, v: Tensor, attn_mask: Optional[Tensor],
                   alibi_slopes: Optional[Tensor], cu_seqlens_q: Optional[Tensor],
                   cu_seqlens_k: Optional[Tensor], max_seqlen_q: int, max_seqlen_k: int,
                   layout: int, mask_mode: int, scale: float, softcap: float, window_left: int,
                   window_right: int, deterministic: bool) -> Tuple[Tensor, Tensor]:
    """Forward attention through libumfa; returns ``(out, lse)``.

    ``layout`` is 0 (BSHD), 1 (BHSD) or 2 (THD varlen); ``mask_mode`` a ``UMFA_MASK_*`` value;
    ``scale`` 0.0 selects 1/sqrt(head_dim); windows use -1 for unbounded.
    """
    return _fwd_impl(q, k, v, attn_mask, alibi_slopes, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                     max_seqlen_k, layout, mask_mode, scale, softcap, window_left, window_right,
                     deterministic)


@_attention_fwd.register_fake
def _attention_fwd_fake(q, k, v, attn_mask, alibi_slopes, cu_seqlens_q, cu_seqlens_k,
                        max_seqlen_q, max_seqlen_k, layout, mask_mode, scale, softcap,
                        window_left, window_right, deterministic):
    out_shape, lse_shape = _out_shapes(q, v, layout)
    return q.new_empty(out_shape), q.new_empty(lse_shape, dtype=torch.float32)


def _bwd_impl(dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
              attn_mask: Optional[Tensor], alibi_slopes: Optional[Tensor],
              cu_seqlens_q: Optional[Tensor], cu_seqlens_k: Optional[Tensor],
              max_seqlen_q: int, max_seqlen_k: int, layout: int, mask_mode: int,
              scale: float, softcap: float, window_left: int, window_right: int,
              deterministic: bool) -> Tuple[Tensor, Tensor, Tensor]:
    dq = _allocate(lambda: torch.empty_like(q), "dq")
    dk = _allocate(lambda: torch.empty_like(k), "dk")
    dv = _allocate(lambda: torch.empty_like(v), "dv")
    opts = _core_options(q, attn_mask, alibi_slopes, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                         max_seqlen_k, mask_mode, scale, softcap, window_left, window_right,
                         deterministic)
    ctx = _context_for(q)
    if not ctx._backward_fast(layout == LAYOUT_BHSD, q, k, v, out, dout, lse, dq, dk, dv, opts,
                              fresh=True):
        c = lambda t: _to_core(t, layout)  # noqa: E731
        ctx.backward(c(q), c(k), c(v), c(out), c(dout), lse, c(dq), c(dk), c(dv), **opts)
    return dq, dk, dv


@torch.library.custom_op("umfa::attention_bwd", mutates_args=())
def _attention_bwd(dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
                   attn_mask: Optional[Tensor], alibi_slopes: Optional[Tensor],
                   cu_seqlens_q: Optional[Tensor], cu_seqlens_k: Optional[Tensor],
                   max_seqlen_q: int, max_seqlen_k: int, layout: int, mask_mode: int,
                   scale: float, softcap: float, window_left: int, window_right: int,
                   deterministic: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """Backward attention through libumfa; returns ``(dq, dk, dv)`` shaped like q, k, v."""
    return _bwd_impl(dout, q, k, v, out, lse, attn_mask, alibi_slopes, cu_seqlens_q,
                     cu_seqlens_k, max_seqlen_q, max_seqlen_k, layout, mask_mode, scale, softcap,
                     window_left, window_right, deterministic)


@_attention_bwd.register_fake
def _attention_bwd_fake(dout, q, k, v, out, lse, attn_mask, alibi_slopes, cu_seqlens_q,
                        cu_seqlens_k, max_seqlen_q, max_seqlen_k, layout, mask_mode, scale,
                        softcap, window_left, window_right, deterministic):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tuple[Tensor, Tensor]) -> None:
    (q, k, v, attn_mask, alibi_slopes, cu_seqlens_q, cu_seqlens_k, *params) = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, attn_mask, alibi_slopes, cu_seqlens_q,
                          cu_seqlens_k)
    ctx.params = tuple(params)
    ctx.mark_non_differentiable(lse)


def _backward(ctx: Any, grad_out: Optional[Tensor], grad_lse: Optional[Tensor]):
    q, k, v, out, lse, attn_mask, alibi, cu_q, cu_k = ctx.saved_tensors
    none13 = (None,) * 13
    if grad_out is None:
        return (None, None, None) + none13
    dq, dk, dv = torch.ops.umfa.attention_bwd(grad_out, q, k, v, out, lse, attn_mask, alibi,
                                              cu_q, cu_k, *ctx.params)
    return (dq, dk, dv) + none13


torch.library.register_autograd("umfa::attention_fwd", _backward, setup_context=_setup_context)


# ----------------------------------------------------------------------------------------------
# Eager calls: the same computation without the dispatcher
# ----------------------------------------------------------------------------------------------
#
# Going through torch.ops.umfa.* costs tens of microseconds of Python per call (the custom-op
# wrapper, its autograd layer and dynamo's disable guard). Plain eager calls on plain tensors,
# with nothing that must observe the op (torch.compile/dynamo tracing, tensor subclasses such as
# FakeTensor or DTensor, torch function or dispatch modes, functorch transforms), run the same
# implementation directly, with a torch.autograd.Function when a gradient is needed. Everything
# else still calls the registered ops, which stay the traceable, compilable entry.

_tf_mode_enabled = getattr(torch._C, "_is_torch_function_mode_enabled", None)
_dispatch_stack_len = getattr(torch._C, "_len_torch_dispatch_stack", None)
try:
    from torch._C._functorch import peek_interpreter_stack as _functorch_stack
except ImportError:  # pragma: no cover - older torch
    _functorch_stack = None
_is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
_EAGER_OK = (_tf_mode_enabled is not None and _dispatch_stack_len is not None
             and _functorch_stack is not None and _is_compiling is not None)


def _eager(*tensors: Optional[Tensor]) -> bool:
    """True when the call may bypass the dispatcher (see above)."""
    if not _EAGER_OK or _is_compiling():
        return False
    for t in tensors:
        if t is not None and type(t) is not Tensor:
            return False
    return not (_tf_mode_enabled() or _dispatch_stack_len() or _functorch_stack() is not None)


class _AttentionFunction(torch.autograd.Function):
    """Eager autograd for the direct calls: forward and backward of umfa::attention_fwd."""

    @staticmethod
    def forward(ctx: Any, q: Tensor, k: Tensor, v: Tensor, attn_mask: Optional[Tensor],
                alibi_slopes: Optional[Tensor], cu_seqlens_q: Optional[Tensor],
                cu_seqlens_k: Optional[Tensor], *params: Any) -> Tuple[Tensor, Tensor]:
        out, lse = _fwd_impl(q, k, v, attn_mask, alibi_slopes, cu_seqlens_q, cu_seqlens_k,
                             *params)
        ctx.save_for_backward(q, k, v, out, lse, attn_mask, alibi_slopes, cu_seqlens_q,
                              cu_seqlens_k)
        ctx.params = params
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx: Any, grad_out: Optional[Tensor], grad_lse: Optional[Tensor]):
        none13 = (None,) * 13
        if grad_out is None:
            return (None, None, None) + none13
        q, k, v, out, lse, attn_mask, alibi, cu_q, cu_k = ctx.saved_tensors
        # create_graph=True (grad mode on here): the registered op, whose own missing autograd
        # makes a double backward raise as it does on the dispatcher path.
        bwd = torch.ops.umfa.attention_bwd if torch.is_grad_enabled() else _attention_backward
        dq, dk, dv = bwd(grad_out, q, k, v, out, lse, attn_mask, alibi, cu_q, cu_k, *ctx.params)
        return (dq, dk, dv) + none13


def _attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Optional[Tensor],
               alibi_slopes: Optional[Tensor], cu_seqlens_q: Optional[Tensor],
               cu_seqlens_k: Optional[Tensor], *params: Any) -> Tuple[Tensor, Tensor]:
    """umfa::attention_fwd: directly for plain eager calls, else through the dispatcher."""
    if _eager(q, k, v, attn_mask, alibi_slopes, cu_seqlens_q, cu_seqlens_k):
        if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
            return _AttentionFunction.apply(q, k, v, attn_mask, alibi_slopes, cu_seqlens_q,
                                            cu_seqlens_k, *params)
        return _fwd_impl(q, k, v, attn_mask, alibi_slopes, cu_seqlens_q, cu_seqlens_k, *params)
    return torch.ops.umfa.attention_fwd(q, k, v, attn_mask, alibi_slopes, cu_seqlens_q,
                                        cu_seqlens_k, *params)


def _attention_backward(dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        lse: Tensor, *rest: Any) -> Tuple[Tensor, Tensor, Tensor]:
    """umfa::attention_bwd: directly for plain eager calls, else through the dispatcher."""
    if _eager(dout, q, k, v, out, lse, *rest[:4]):
        return _bwd_impl(dout, q, k, v, out, lse, *rest)
    return torch.ops.umfa.attention_bwd(dout, q, k, v, out, lse, *rest)


# ----------------------------------------------------------------------------------------------
# FlashAttention-style entry (used by umfa.flash_attn_func / flash_attn_varlen_func)
# ----------------------------------------------------------------------------------------------


def _check_storage(t: Tensor, name: str) -> None:
    """Refuse a tensor whose view reaches outside its storage (``untyped_storage().resize_()``)
    before a torch op here reads it: torch's own kernels do not check, and would read freed
    memory."""
    if (t.layout == torch.strided and not t.is_nested and t.device.type != "meta"
            and t.numel()):
        check_torch_extent(t.data_ptr(), t.shape, t.stride(), t.element_size(),
                           t.untyped_storage(), name)


def _aux(x: Any, dtype: torch.dtype, device: torch.device, name: str) -> Optional[Tensor]:
    """Small side inputs (slopes, offsets) as tensors of ``dtype`` on ``device``; a conversion
    that would wrap integers or overflow floats is refused."""
    if x is None:
        return None
    if not isinstance(x, Tensor):
        x = torch.as_tensor(np.asarray(x))
    if x.dtype == dtype and x.device == device:
        return x.detach()
    _check_storage(x, name)  # the conversion below reads it
    return _allocate(lambda: _converted(x, dtype, device, name), name)


def _converted(x: Tensor, dtype: torch.dtype, device: torch.device, name: str) -> Tensor:
    """``x`` as ``dtype`` on ``device``, refusing values the conversion would wrap or make
    infinite."""
    if dtype == torch.int32 and not x.is_floating_point() and x.dtype != torch.bool:
        info = torch.iinfo(torch.int32)
        if x.numel() and (x.min().item() < info.min or x.max().item() > info.max):
            raise _checks.invalid(f"{name} holds values outside the int32 range")
    elif dtype == torch.float32 and x.is_floating_point():
        big = x.isfinite() & (x.abs() > torch.finfo(torch.float32).max)
        if bool(big.any()):
            raise _checks.invalid(f"{name} holds values outside the float32 range")
    return x.to(device=device, dtype=dtype).detach()


def _scale_arg(softmax_scale: Optional[float]) -> float:
    return 0.0 if softmax_scale is None else _checks.softmax_scale(softmax_scale)


def _flash_forward(q: Tensor, k: Tensor, v: Tensor, alibi_slopes: Any, cu_seqlens_q: Any,
                   cu_seqlens_k: Any, max_seqlen_q: int, max_seqlen_k: int,
                   softmax_scale: Optional[float], causal: bool, window: Tuple[int, int],
                   softcap: float, deterministic: bool) -> Tuple[Tensor, Tensor]:
    varlen = cu_seqlens_q is not None or cu_seqlens_k is not None
    # Every scalar is checked here, before the op converts it (int64 / double / bool).
    mask = N.MASK_CAUSAL_BOTTOM_RIGHT if _checks.flag(causal, "causal") else N.MASK_NONE
    scale = _scale_arg(softmax_scale)
    cap = _checks.float32(0.0 if softcap is None else softcap, "softcap")
    max_q = _checks.optional_integer(max_seqlen_q, "max_seqlen_q", _checks.INT64)
    max_k = _checks.optional_integer(max_seqlen_k, "max_seqlen_k", _checks.INT64)
    det = _checks.flag(deterministic, "deterministic")
    return _attention(
        q, k, v, None, _aux(alibi_slopes, torch.float32, q.device, "alibi_slopes"),
        _aux(cu_seqlens_q, torch.int32, q.device, "cu_seqlens_q"),
        _aux(cu_seqlens_k, torch.int32, q.device, "cu_seqlens_k"),
        max_q, max_k, LAYOUT_THD if varlen else LAYOUT_BSHD, mask, scale, cap, window[0],
        window[1], det)


# ----------------------------------------------------------------------------------------------
# scaled_dot_product_attention
# ----------------------------------------------------------------------------------------------


class _Unsupported(UmfaError):
    """A call umfa does not run; ``reason`` is the key counted by :data:`stats`."""

    def __init__(self, reason: str, status: int, message: str) -> None:
        super().__init__(status, None, message)
        self.reason = reason


def _device_ok(t: Tensor) -> bool:
    return t.device.type == "cpu" or (t.device.type == "cuda" and cuda_available())


def _broadcast_shapes(*shapes: Tuple[int, ...]) -> Tuple[int, ...]:
    """torch.broadcast_shapes for plain int tuples, without its per-call overhead (it is called
    on every SDPA call); raises RuntimeError for shapes that do not broadcast."""
    first = shapes[0]
    if all(s == first for s in shapes):
        return tuple(first)
    n = max(len(s) for s in shapes)
    out = [1] * n
    for s in shapes:
        off = n - len(s)
        for i, d in enumerate(s):
            o = out[off + i]
            if o == 1:
                out[off + i] = d
            elif d != 1 and d != o:
                raise RuntimeError(f"shapes {shapes} cannot be broadcast")
    return tuple(out)


def _prepare_sdpa(query: Any, key: Any, value: Any, attn_mask: Any, dropout_p: float,
                  is_causal: bool, scale: Optional[float], enable_gqa: bool):
    """Check a call against what umfa runs and bring it to 4-D BHSD; raises _Unsupported.

    Shapes follow PyTorch: every tensor has rank >= 2; the dimensions before the last two
    broadcast against each other (a key/value with batch 1, or with 1 head, serves every query
    batch/head), and with ``enable_gqa`` the query head count (dim -3) may be a multiple of the
    key/value head count. Broadcasting is done with stride-0 views (``expand``), never copies,
    except where more than one leading dimension must be folded into the batch (rank > 4).
    Returns ``(q, k, v, mask, out_lead)``: 4-D ``[B, H, L, E]`` views and the leading shape the
    ``[B, H, L, E]`` output is reshaped to. The scalars come checked by :func:`_sdpa_scalars`.
    """
    # The common call (4-D plain tensors of one supported dtype and device, equal batch and head
    # counts, head_dim within range, no mask or dropout) needs none of the broadcasting below.
    if (attn_mask is None and not dropout_p and type(query) is Tensor and type(key) is Tensor
            and type(value) is Tensor and query.dim() == 4 and key.dim() == 4
            and value.dim() == 4):
        qs, ks, vs = query.shape, key.shape, value.shape
        dt = query.dtype
        if (qs[0] == ks[0] == vs[0] and qs[1] == ks[1] == vs[1] and ks[2] == vs[2]
                and qs[3] == ks[3] == vs[3] and 1 <= qs[3] <= N.MAX_HEAD_DIM
                and dt in _SUPPORTED_DTYPES and key.dtype == dt and value.dtype == dt
                and query.layout == torch.strided and not query.is_nested
                and key.layout == torch.strided and not key.is_nested
                and value.layout == torch.strided and not value.is_nested):
            dev = query.device
            if key.device == dev and value.device == dev and _device_ok(query):
                return query, key, value, None, (qs[0], qs[1])

    U = _Unsupported
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise U("type", Status.INVALID_ARGUMENT, f"{name} must be a torch.Tensor")
        if t.is_nested or t.layout != torch.strided:
            raise U("nested", Status.UNSUPPORTED, f"{name}: nested/sparse tensors are not "
                    "supported")
    if dropout_p != 0.0:
        raise U("dropout", Status.UNSUPPORTED, f"dropout_p={dropout_p}: attention dropout is "
                "not implemented by umfa")
    dtype = query.dtype
    if dtype not in _SUPPORTED_DTYPES:
        raise U("dtype", Status.UNSUPPORTED_DTYPE, f"dtype {dtype} is not supported (float32, "
                "float16, bfloat16)")
    if key.dtype != dtype or value.dtype != dtype:
        raise U("dtype", Status.UNSUPPORTED_DTYPE, f"query, key and value dtypes differ "
                f"({dtype}, {key.dtype}, {value.dtype})")
    if not (query.device == key.device == value.device):
        raise U("device", Status.DEVICE_MISMATCH, "query, key and value are on different "
                "devices")
    if query.device.type == "mps":
        raise U("device", Status.DEVICE_MISMATCH, "mps tensors are not served by umfa.torch yet "
                "(their storage is an MTLBuffer; passing it to umfa's Metal backend without a "
                "copy is not implemented)")
    if not _device_ok(query):
        raise U("device", Status.DEVICE_MISMATCH, f"device {query.device} is not supported by "
                "this libumfa (see umfa.backends())")
    if min(query.dim(), key.dim(), value.dim()) < 2:
        raise U("shape", Status.INVALID_RANK, f"query/key/value ranks {query.dim()}, "
                f"{key.dim()}, {value.dim()}: each must be at least 2")
    L, E = query.shape[-2], query.shape[-1]
    S, Ev = key.shape[-2], value.shape[-1]
    if key.shape[-1] != E or value.shape[-2] != S:
        raise U("shape", Status.SHAPE_MISMATCH, f"incompatible shapes query {tuple(query.shape)}"
                f", key {tuple(key.shape)}, value {tuple(value.shape)}")
    if Ev != E:
        raise U("head_dim", Status.UNSUPPORTED, f"value head_dim {Ev} differs from query's {E}")
    if not 1 <= E <= N.MAX_HEAD_DIM:
        raise U("head_dim", Status.HEAD_DIM_OUT_OF_RANGE, f"head_dim {E} is outside 1.."
                f"{N.MAX_HEAD_DIM}")

    # Leading dimensions: align the ranks (views with leading 1s), then heads (dim -3) and the
    # batch dimensions before it.
    nd = max(query.dim(), key.dim(), value.dim(), 3)
    q, k, v = (t.reshape((1,) * (nd - t.dim()) + tuple(t.shape)) if t.dim() < nd else t
               for t in (query, key, value))
    hq, hk, hv = q.shape[-3], k.shape[-3], v.shape[-3]
    if enable_gqa and (hk == 0 or hv == 0 or hq % hk or hq % hv):
        raise U("shape", Status.HEADS_NOT_DIVISIBLE, f"{hq} query heads are not a multiple of "
                f"{hk} key / {hv} value heads (enable_gqa)")
    # The core's grouped-query attention: query head h reads key/value head h // (hq // hk).
    # With one key/value head that is also PyTorch's plain broadcasting.
    grouped = hk == hv and hk != hq and hq % max(hk, 1) == 0 and (enable_gqa or hk == 1)
    if grouped:
        H, Hkv = hq, hk
    else:
        if enable_gqa and not (hq == hk == hv):
            raise U("shape", Status.UNSUPPORTED, f"enable_gqa with {hk} key heads and {hv} "
                    f"value heads (query {hq}) is not supported: key and value need the same "
                    "head count")
        try:
            H = _broadcast_shapes((hq,), (hk,), (hv,))[0]
        except RuntimeError:
            raise U("shape", Status.SHAPE_MISMATCH, f"query has {hq} heads and key/value "
                    f"{hk}/{hv}: pass enable_gqa=True for grouped-query attention") from None
        Hkv = H
    try:
        batch = tuple(_broadcast_shapes(tuple(q.shape[:-3]), tuple(k.shape[:-3]),
                                             tuple(v.shape[:-3])))
    except RuntimeError:
        raise U("shape", Status.SHAPE_MISMATCH, f"batch dimensions of query "
                f"{tuple(query.shape)}, key {tuple(key.shape)} and value {tuple(value.shape)} "
                "do not broadcast") from None

    mask = attn_mask
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.is_nested or mask.layout != torch.strided:
            raise U("mask", Status.UNSUPPORTED, "attn_mask must be a dense torch.Tensor")
        if mask.dtype not in _MASK_DTYPES:
            raise U("mask", Status.UNSUPPORTED_DTYPE, f"attn_mask dtype {mask.dtype} is not "
                    "supported (bool, float32, float16, bfloat16)")
        if mask.device != query.device:
            raise U("mask", Status.DEVICE_MISMATCH, "attn_mask is on another device")
        if mask.requires_grad and torch.is_grad_enabled():
            raise U("mask_grad", Status.UNSUPPORTED, "gradients with respect to attn_mask are "
                    "not supported")
        full = batch + (H, L, S)
        try:
            fits = _broadcast_shapes(tuple(mask.shape), full) == full
        except RuntimeError:
            fits = False
        if not fits:
            raise U("mask", Status.SHAPE_MISMATCH, f"attn_mask of shape {tuple(mask.shape)} "
                    f"does not broadcast to {full}")

    def fit(t: Tensor, heads: int, rows: int) -> Tensor:
        target = batch + (heads, rows, E)
        return t if tuple(t.shape) == target else t.expand(target)

    q, k, v = fit(q, H, L), fit(k, Hkv, S), fit(v, Hkv, S)
    if len(batch) == 0:  # rank 2 or 3: one batch entry
        q, k, v = q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0)
    elif len(batch) > 1:  # rank > 4: fold the batch dimensions into one (may copy)
        for t, name in ((q, "query"), (k, "key"), (v, "value")):
            _check_storage(t, name)
        q, k, v = (_allocate(lambda t=t: t.reshape((-1,) + tuple(t.shape[-3:])), name)
                   for t, name in ((q, "query"), (k, "key"), (v, "value")))
        if mask is not None and mask.dim() > 3:
            # Masks of rank <= 3 broadcast against [B', H, L, S] as they are; a mask with batch
            # dimensions is expanded and flattened like query (a copy only where unavoidable).
            _check_storage(mask, "attn_mask")
            full = mask.expand(batch + (H, L, S))
            mask = _allocate(lambda: full.reshape((-1, H, L, S)), "attn_mask")
    return q, k, v, mask, batch + (H,)


def _autocast(q: Tensor, k: Tensor, v: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Apply autocast's cast for SDPA (it is on the lower-precision list) when it is active."""
    dev = q.device.type
    try:
        enabled = torch.is_autocast_enabled(dev)
    except TypeError:  # pragma: no cover - older torch
        enabled = False
    if not enabled:
        return q, k, v
    dt = torch.get_autocast_dtype(dev)
    for t, name in ((q, "query"), (k, "key"), (v, "value")):
        _check_storage(t, name)  # the casts read them
    return tuple(t.to(dt) if t.is_floating_point() else t for t in (q, k, v))  # type: ignore


def _sdpa_scalars(dropout_p: Any, is_causal: Any, scale: Any,
                  enable_gqa: Any) -> Tuple[float, bool, Optional[float], bool]:
    """The scalar arguments of SDPA, each read once (so that an object whose ``__float__``
    answers differently on each call cannot make the checks and the call disagree) and
    checked: what is not a number or a bool is reason ``"type"``, a scale that is zero, not
    finite or beyond float32 reason ``"scale"``."""
    try:
        p = _checks.number(dropout_p, "dropout_p")
        causal = _checks.flag(is_causal, "is_causal")
        gqa = _checks.flag(enable_gqa, "enable_gqa")
        s = None if scale is None else _checks.number(scale, "scale")
    except UmfaError as exc:
        raise _Unsupported("type", exc.status, exc.message) from None
    if s is not None:
        try:
            s = _checks.softmax_scale(s, "scale")
        except UmfaError:
            raise _Unsupported("scale", Status.UNSUPPORTED, f"scale={s!r} is not supported "
                               "(finite, nonzero, within float32)") from None
    return p, causal, s, gqa


def _run_sdpa(query: Tensor, key: Tensor, value: Tensor, attn_mask: Optional[Tensor],
              dropout_p: float, is_causal: bool, scale: Optional[float],
              enable_gqa: bool) -> Tensor:
    dropout_p, is_causal, scale, enable_gqa = _sdpa_scalars(dropout_p, is_causal, scale,
                                                            enable_gqa)
    query, key, value = _autocast(query, key, value)
    try:
        q, k, v, mask, lead = _prepare_sdpa(query, key, value, attn_mask, dropout_p, is_causal,
                                            scale, enable_gqa)
    except UmfaError:
        raise
    except RuntimeError as exc:  # a view op refused a tensor, e.g. one past its storage
        raise _Unsupported("shape", Status.INVALID_ARGUMENT,
                           f"PyTorch refused to view the inputs: {exc}") from None
    out, _lse = _attention(
        q, k, v, mask, None, None, None, 0, 0, LAYOUT_BHSD,
        N.MASK_CAUSAL_TOP_LEFT if is_causal else N.MASK_NONE,
        0.0 if scale is None else scale, 0.0, -1, -1, False)
    # The result has the broadcast rank of the inputs (PyTorch keeps 2-D calls 2-D).
    rank = max(query.dim(), key.dim(), value.dim())
    shape = (lead + tuple(out.shape[-2:]))[-rank:]
    return out if tuple(out.shape) == shape else out.reshape(shape)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor,
                                 attn_mask: Optional[Tensor] = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: Optional[float] = None,
                                 enable_gqa: bool = False) -> Tensor:
    """:func:`torch.nn.functional.scaled_dot_product_attention`, computed by libumfa.

    Args:
        query: ``(N, ..., Hq, L, E)``, or ``(N, L, E)`` / ``(L, E)``.
        key: ``(N, ..., H, S, E)``.
        value: ``(N, ..., H, S, E)`` (umfa needs value's head dim equal to E).
        attn_mask: boolean (True = take part in attention) or additive float mask,
            broadcastable to ``(N, ..., Hq, L, S)``. Gradients with respect to it are not
            supported.
        dropout_p: must be 0.0 (dropout is not implemented).
        is_causal: top-left causal mask (query i sees keys j <= i); combined with
            ``attn_mask`` when both are given, as PyTorch's CPU implementation does.
        scale: multiplies q·k; ``None`` = 1/sqrt(E).
        enable_gqa: allow ``Hq`` a multiple of ``H`` (grouped-query attention).

    Shapes follow PyTorch's rules: the dimensions before the last two broadcast between
    query, key and value (a key/value with batch 1 or a single head serves every query; ranks
    may differ), without copying (stride-0 views). Rows with no visible key give zeros and zero
    gradients, as PyTorch's CPU implementation does.

    Returns:
        The broadcast ``(N, ..., Hq, L, E)`` in the query's dtype; differentiable with respect
        to query, key and value (backward through libumfa; not twice differentiable).

    Raises:
        UmfaError: for calls umfa does not run (the status says why: UNSUPPORTED for dropout,
            ``scale=0``, a value head dim unlike the query's, or key/value head counts that
            differ under ``enable_gqa``; UNSUPPORTED_DTYPE for float64;
            HEAD_DIM_OUT_OF_RANGE above 256; SHAPE_MISMATCH / HEADS_NOT_DIVISIBLE /
            INVALID_RANK where PyTorch raises too). :func:`patch` sends all of these to PyTorch.

    Deliberate differences from PyTorch (more permissive): a rank-1 ``attn_mask`` (one value per
    key) and a float16/bfloat16 additive mask on inputs of another float dtype are accepted.
    """
    try:
        return _run_sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    except _Unsupported as exc:
        raise UmfaError(exc.status, exc.name, exc.message) from None


# ----------------------------------------------------------------------------------------------
# Patching torch.nn.functional.scaled_dot_product_attention
# ----------------------------------------------------------------------------------------------


class PatchStats:
    """Counters of the patched ``F.scaled_dot_product_attention``.

    Attributes:
        umfa_calls: calls computed by umfa.
        fallbacks: :class:`collections.Counter` of calls sent to PyTorch, by reason
            (``"dropout"``, ``"dtype"``, ``"device"``, ``"nested"``, ``"mask_grad"``,
            ``"shape"``, ``"head_dim"``, ``"mask"``, ``"scale"``, ``"kwargs"``, ``"type"``, or ``"core:<STATUS>"`` when the core refused the call).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.umfa_calls = 0
        self.fallbacks: "collections.Counter[str]" = collections.Counter()

    @property
    def total_fallbacks(self) -> int:
        """Number of calls sent to PyTorch's implementation."""
        return sum(self.fallbacks.values())

    def reset(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self.umfa_calls = 0
            self.fallbacks.clear()

    def _hit(self) -> None:
        with self._lock:
            self.umfa_calls += 1

    def _miss(self, reason: str) -> None:
        with self._lock:
            self.fallbacks[reason] += 1

    def __repr__(self) -> str:
        return f"PatchStats(umfa_calls={self.umfa_calls}, fallbacks={dict(self.fallbacks)})"


#: The counters of the patched function (shared by every patch()).
stats = PatchStats()

_original: Optional[Callable[..., Tensor]] = None
_depth = 0
_patch_lock = threading.Lock()


def fallback_count() -> int:
    """Total number of patched calls that fell back to PyTorch since the last reset."""
    return stats.total_fallbacks


def _patched_sdpa(query: Tensor, key: Tensor, value: Tensor,
                  attn_mask: Optional[Tensor] = None, dropout_p: float = 0.0,
                  is_causal: bool = False, scale: Optional[float] = None,
                  enable_gqa: bool = False, **kwargs: Any) -> Tensor:
    original = _original if _original is not None else _TORCH_SDPA
    args = (query, key, value, attn_mask, dropout_p, is_causal)
    extra = dict(kwargs, scale=scale, enable_gqa=enable_gqa)
    if kwargs:
        stats._miss("kwargs")
        return original(*args, **extra)
    try:
        out = _run_sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    except _Unsupported as exc:
        stats._miss(exc.reason)
        return original(*args, **extra)
    except UmfaError as exc:
        stats._miss("core:" + exc.name.replace("UMFA_STATUS_", ""))
        return original(*args, **extra)
    stats._hit()
    return out


_patched_sdpa.__doc__ = (
    "torch.nn.functional.scaled_dot_product_attention routed through umfa (see umfa.torch."
    "patch); falls back to PyTorch's implementation for unsupported calls.")

_TORCH_SDPA = torch.nn.functional.scaled_dot_product_attention


def patch() -> None:
    """Route ``torch.nn.functional.scaled_dot_product_attention`` through umfa.

    Calls umfa runs (float32/float16/bfloat16 tensors on the CPU, or CUDA with a CUDA-enabled
    libumfa; no dropout) are computed by umfa, with autograd; every other call goes to the
    original PyTorch function and is counted in :data:`stats` ``.fallbacks``. Calls nest:
    each :func:`patch` needs one :func:`unpatch`. Code that imported the function itself
    (``from torch.nn.functional import scaled_dot_product_attention``) before patching keeps
    the original.
    """
    global _original, _depth
    with _patch_lock:
        if _depth == 0:
            _original = torch.nn.functional.scaled_dot_product_attention
            torch.nn.functional.scaled_dot_product_attention = _patched_sdpa
        _depth += 1


def unpatch() -> None:
    """Undo one :func:`patch`; the original function is restored when the last one is undone."""
    global _original, _depth
    with _patch_lock:
        if _depth == 0:
            return
        _depth -= 1
        if _depth == 0:
            torch.nn.functional.scaled_dot_product_attention = _original  # type: ignore
            _original = None


def is_patched() -> bool:
    """True while ``F.scaled_dot_product_attention`` is routed through umfa."""
    return torch.nn.functional.scaled_dot_product_attention is _patched_sdpa


@contextlib.contextmanager
def patched() -> Iterator[PatchStats]:
    """Context manager: :func:`patch` on entry, :func:`unpatch` on exit; yields :data:`stats`.

    Example::

        with umfa.torch.patched() as st:
            loss = model(x).sum()
            loss.backward()
        print(st.umfa_calls, st.fallbacks)
    """
    patch()
    try:
        yield stats
    finally:
        unpatch()


# Context parallelism (ring attention over torch.distributed); imported last, as it builds on
# the helpers above.
from .torch_ring import RingAttention, ring_attention, shard_sequence, unshard_sequence  # noqa: E402

__all__ += ["ring_attention", "RingAttention", "shard_sequence", "unshard_sequence"]
