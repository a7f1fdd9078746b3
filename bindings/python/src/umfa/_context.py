"""Contexts and the low-level forward/backward calls (views in, results written in place)."""

from __future__ import annotations

import ctypes
import math
import sys
import threading
import weakref
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native as N
from ._native import Status, UmfaError
from ._views import RawView, View, dtype_code_of, make_view

_BACKENDS = {"auto": N.BACKEND_AUTO, "cpu": N.BACKEND_CPU, "cuda": N.BACKEND_CUDA}
_BACKEND_NAMES = {N.BACKEND_CPU: "cpu", N.BACKEND_CUDA: "cuda"}

MaskMode = Union[int, str, None]
_MASK_MODES = {
    None: N.MASK_NONE,
    "none": N.MASK_NONE,
    "causal_top_left": N.MASK_CAUSAL_TOP_LEFT,
    "top_left": N.MASK_CAUSAL_TOP_LEFT,
    "causal_bottom_right": N.MASK_CAUSAL_BOTTOM_RIGHT,
    "bottom_right": N.MASK_CAUSAL_BOTTOM_RIGHT,
}


def _destroy(handle: int) -> None:
    N.lib.umfa_context_destroy(handle)


class Context:
    """An execution context of libumfa: one backend, one device, a thread pool, scratch memory.

    Args:
        backend: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"`` or ``"cuda"``.
        device_index: CUDA device ordinal (ignored on the CPU).
        num_threads: CPU worker threads; 0 = one per core (or ``UMFA_NUM_THREADS``).
        workspace_limit_bytes: most scratch memory one call may allocate; 0 = no limit.

    A context may be used from several threads at once. Close it with :meth:`close` or use it
    as a context manager; it is also freed when garbage-collected.

    Raises:
        UmfaError: e.g. ``UMFA_STATUS_BACKEND_UNAVAILABLE`` when CUDA is asked for but absent.
    """

    def __init__(self, backend: str = "auto", device_index: int = 0, num_threads: int = 0,
                 workspace_limit_bytes: int = 0) -> None:
        if backend not in _BACKENDS:
            raise UmfaError(Status.INVALID_ARGUMENT, None,
                            f"backend must be one of {sorted(_BACKENDS)}, not {backend!r}")
        opts = N.ContextOptions()
        opts.struct_size = ctypes.sizeof(N.ContextOptions)
        opts.backend = _BACKENDS[backend]
        opts.device_index = int(device_index)
        opts.num_threads = int(num_threads)
        opts.workspace_limit_bytes = int(workspace_limit_bytes)
        handle = ctypes.c_void_p()
        N.check(N.lib.umfa_context_create(ctypes.byref(opts), ctypes.byref(handle)), None)
        value = int(handle.value or 0)
        self._handle: Optional[int] = value
        self._device_index = int(device_index)
        self._finalizer = weakref.finalize(self, _destroy, value)

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Destroy the native context now (idempotent). Later calls raise ``UmfaError``."""
        if self._finalizer.detach() is not None and self._handle is not None:
            _destroy(self._handle)
        self._handle = None

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._handle is None

    @property
    def handle(self) -> int:
        """The ``umfa_context*`` as an integer (for other ctypes/cffi code)."""
        return self._live()

    def _live(self) -> int:
        if self._handle is None:
            raise UmfaError(Status.INVALID_HANDLE, None, "this umfa context has been closed")
        return self._handle

    # -- queries -----------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """The backend actually chosen: ``"cpu"`` or ``"cuda"``."""
        out = ctypes.c_uint32()
        h = self._live()
        N.check(N.lib.umfa_context_backend(h, ctypes.byref(out)), h)
        return _BACKEND_NAMES.get(out.value, str(out.value))

    @property
    def device_index(self) -> int:
        """The device ordinal this context was created for."""
        return self._device_index

    @property
    def num_threads(self) -> int:
        """Worker threads of the CPU backend."""
        out = ctypes.c_int32()
        h = self._live()
        N.check(N.lib.umfa_context_num_threads(h, ctypes.byref(out)), h)
        return out.value

    @property
    def last_error(self) -> str:
        """Message of the most recent failed call on this context (``""`` if none)."""
        return N.last_error(self._live())

    def __repr__(self) -> str:
        if self._handle is None:
            return "<umfa.Context closed>"
        return f"<umfa.Context backend={self.backend} device={self._device_index}>"

    # -- attention ---------------------------------------------------------------------------

    def forward(self, q: Any, k: Any, v: Any, out: Any, lse: Any = None, **options: Any) -> None:
        """Forward attention into caller-provided outputs (the C call, nothing more).

        ``q``/``out`` are ``[batch, seqlen_q, heads_q, head_dim]``, ``k``/``v``
        ``[batch, seqlen_k, heads_kv, head_dim]`` (any strides), ``lse`` (optional, float32)
        ``[batch, heads_q, seqlen_q]``; varlen calls use the packed ``[total, heads, head_dim]``
        layouts and ``lse`` ``[heads_q, total_q]``. Arrays are numpy arrays, torch tensors, or
        objects with ``__cuda_array_interface__`` / ``__dlpack__``.

        Keyword options (see :func:`attention_options`): ``mask_mode``, ``softmax_scale``,
        ``softcap``, ``window_size``, ``attn_mask``, ``alibi_slopes``, ``cu_seqlens_q``,
        ``cu_seqlens_k``, ``max_seqlen_q``, ``max_seqlen_k``, ``deterministic``, ``stream``.

        Raises:
            UmfaError: with the core's status and message; nothing is written then.
        """
        h = self._handle
        if h is None:
            self._live()
        if self._forward_fast(False, q, k, v, out, lse, options):
            return
        di = self._device_index
        opts, keep = attention_options(device_index=di, **options)
        st = options.get("stream")
        views = [_view_or_none(x, name, False, di, st) for x, name in
                 ((q, "q"), (k, "k"), (v, "v"))]
        views += [_view_or_none(x, name, True, di, st) for x, name in
                  ((out, "out"), (lse, "lse"))]
        message = _attach_message_buffer(opts)
        status = N.lib.umfa_attention_forward(h, ctypes.byref(opts), *map(_ref, views))
        del keep
        _check_call(status, h, message)

    def backward(self, q: Any, k: Any, v: Any, out: Any, dout: Any, lse: Any, dq: Any, dk: Any,
                 dv: Any, **options: Any) -> None:
        """Backward attention: writes ``dq``, ``dk``, ``dv`` (shaped like ``q``, ``k``, ``v``).

        ``out`` and ``lse`` are what :meth:`forward` produced with the same options; ``dout``
        is the gradient of the loss with respect to ``out``. Layouts and options as
        :meth:`forward`.

        Raises:
            UmfaError: with the core's status and message; nothing is written then.
        """
        h = self._handle
        if h is None:
            self._live()
        if self._backward_fast(False, q, k, v, out, dout, lse, dq, dk, dv, options):
            return
        di = self._device_index
        opts, keep = attention_options(device_index=di, **options)
        st = options.get("stream")
        views = [_view_or_none(x, name, False, di, st) for x, name in
                 ((q, "q"), (k, "k"), (v, "v"), (out, "out"), (dout, "dout"), (lse, "lse"))]
        views += [_view_or_none(x, name, True, di, st) for x, name in
                  ((dq, "dq"), (dk, "dk"), (dv, "dv"))]
        message = _attach_message_buffer(opts)
        status = N.lib.umfa_attention_backward(h, ctypes.byref(opts), *map(_ref, views))
        del keep
        _check_call(status, h, message)


    # -- the per-call fast path (see _fast_call) ------------------------------------------------

    def _forward_fast(self, swap: bool, q: Any, k: Any, v: Any, out: Any, lse: Any,
                      options: Dict[str, Any]) -> bool:
        """forward() on the fast path; False (nothing done) when the call needs the general
        path. ``swap``: q, k, v and out are BHSD tensors passed as their BSHD views."""
        fast = _fast_call(options)
        if fast is None:
            return False
        slots, opts_ref, message = fast
        refs = (_fast_ref(slots[0], q, "q", False, swap), _fast_ref(slots[1], k, "k", False, swap),
                _fast_ref(slots[2], v, "v", False, swap),
                _fast_ref(slots[3], out, "out", True, swap),
                _fast_ref(slots[4], lse, "lse", True, False))
        if _SLOW in refs:
            return False
        h = self._handle
        if h is None:
            self._live()
        status = _forward_fn(h, opts_ref, *refs)
        if status:
            _check_call(status, h, message)
        return True

    def _backward_fast(self, swap: bool, q: Any, k: Any, v: Any, out: Any, dout: Any, lse: Any,
                       dq: Any, dk: Any, dv: Any, options: Dict[str, Any]) -> bool:
        """backward() on the fast path (see _forward_fast)."""
        fast = _fast_call(options)
        if fast is None:
            return False
        slots, opts_ref, message = fast
        refs = (_fast_ref(slots[0], q, "q", False, swap), _fast_ref(slots[1], k, "k", False, swap),
                _fast_ref(slots[2], v, "v", False, swap),
                _fast_ref(slots[5], out, "out", False, swap),
                _fast_ref(slots[6], dout, "dout", False, swap),
                _fast_ref(slots[4], lse, "lse", False, False),
                _fast_ref(slots[7], dq, "dq", True, swap), _fast_ref(slots[8], dk, "dk", True, swap),
                _fast_ref(slots[9], dv, "dv", True, swap))
        if _SLOW in refs:
            return False
        h = self._handle
        if h is None:
            self._live()
        status = _backward_fn(h, opts_ref, *refs)
        if status:
            _check_call(status, h, message)
        return True


# Per-call error messages (umfa_attention_options.error_message): the context's own last-error
# message is shared by every thread using it, so with calls failing at once on one context it
# may hold another call's message by the time it is read. One buffer per thread suffices: a
# thread runs one call at a time.
_MESSAGE_CAPACITY = 1024
_message_buffers = threading.local()


def _attach_message_buffer(opts: N.AttentionOptions) -> Any:
    buf = getattr(_message_buffers, "buf", None)
    if buf is None:
        buf = ctypes.create_string_buffer(_MESSAGE_CAPACITY)
        _message_buffers.buf = buf
    buf[0] = b"\0"
    opts.error_message = ctypes.cast(buf, ctypes.c_char_p)
    opts.error_message_capacity = _MESSAGE_CAPACITY
    return buf


# ---- the per-call fast path ------------------------------------------------------------------
#
# A call's Python overhead is mostly building ctypes structs: one umfa_tensor per argument and the
# options struct. The fast path keeps, per thread, one umfa_tensor per argument position and one
# options struct per distinct set of scalar options, and refills a tensor struct only when the
# tensor's dtype, device, shape or strides differ from the previous call at that position (the
# data pointer is written every call). Calls with tensor-valued options (masks, ALiBi slopes,
# cu_seqlens) or arguments other than torch tensors take the general path. The structs are only
# read during the C call, which returns before the next call on the thread can change them.

_fast_tls = threading.local()
_FAST_OPTION_KEYS = frozenset(("mask_mode", "softmax_scale", "softcap", "window_size",
                               "max_seqlen_q", "max_seqlen_k", "deterministic", "stream"))
_TENSOR_OPTIONS = ("attn_mask", "alibi_slopes", "cu_seqlens_q", "cu_seqlens_k")
_OPTIONS_CACHE_LIMIT = 64
_SLOW = object()  # a _fast_ref result: this argument needs the general path
_forward_fn = N.lib.umfa_attention_forward
_backward_fn = N.lib.umfa_attention_backward
_torch_tensor_type: Any = None


class _Slot:
    """One argument position of the fast path: its tensor struct and what it was filled from."""

    __slots__ = ("tensor", "ref", "key")

    def __init__(self) -> None:
        self.tensor = N.Tensor()
        self.ref = ctypes.byref(self.tensor)
        self.key: Any = None


def _fast_state() -> Any:
    tls = _fast_tls
    try:
        return tls.slots, tls.options
    except AttributeError:
        tls.slots = tuple(_Slot() for _ in range(10))
        tls.options = {}
        return tls.slots, tls.options


def _fast_call(options: Dict[str, Any]) -> Optional[Tuple[Any, Any, Any]]:
    """(slots, byref(options struct), message buffer) for calls the fast path takes, else
    None."""
    if not _FAST_OPTION_KEYS.issuperset(options):
        for name in _TENSOR_OPTIONS:
            if options.get(name) is not None:
                return None
        options = {k: v for k, v in options.items() if k not in _TENSOR_OPTIONS}
        if not _FAST_OPTION_KEYS.issuperset(options):
            return None  # unknown keywords: the general path raises the usual TypeError
    slots, cache = _fast_state()
    try:
        key = tuple(options.items())
        entry = cache.get(key)
    except TypeError:  # an unhashable option value
        return None
    if entry is None:
        opts, keep = attention_options(**options)
        if keep:
            return None
        message = _attach_message_buffer(opts)
        if len(cache) >= _OPTIONS_CACHE_LIMIT:
            cache.clear()
        entry = (opts, ctypes.byref(opts), message)
        cache[key] = entry
    return slots, entry[1], entry[2]


def _fast_ref(slot: _Slot, x: Any, name: str, writable: bool, swap: bool) -> Any:
    """byref of the slot's tensor struct filled from torch tensor ``x`` (with dimensions 1 and
    2 exchanged when ``swap``: a BHSD tensor as its BSHD view); None for None; _SLOW for
    anything else (or a tensor the struct cannot describe as it is)."""
    global _torch_tensor_type
    if x is None:
        return None
    tt = _torch_tensor_type
    if tt is None:
        torch = sys.modules.get("torch")
        if torch is None:
            return _SLOW
        tt = _torch_tensor_type = torch.Tensor
    if type(x) is not tt:
        return _SLOW
    try:
        key = (x.dtype, x.device, x.shape, x.stride(), swap)
    except RuntimeError:  # nested or sparse tensors have no strides
        return _SLOW
    ptr = x.data_ptr()
    if not ptr:
        return _SLOW  # empty tensors: the general path points them at a dummy address
    if slot.key != key:
        if swap and x.dim() != 4:
            return _SLOW
        view = make_view(x, name, writable=writable)
        t = slot.tensor
        ctypes.memmove(ctypes.addressof(t), ctypes.addressof(view.tensor), ctypes.sizeof(t))
        if swap:
            t.shape[1], t.shape[2] = t.shape[2], t.shape[1]
            t.strides[1], t.strides[2] = t.strides[2], t.strides[1]
        slot.key = key
    slot.tensor.data = ptr
    return slot.ref


def _check_call(status: int, handle: int, message: Any) -> None:
    """Raise :class:`UmfaError` for a failed attention call, with the call's own message (the
    buffer is cleared again for the thread's next call)."""
    if status != 0:
        text = message.value.decode("utf-8", "replace") if message.value else N.last_error(
            handle)
        message[0] = b"\0"
        raise UmfaError(status, N.status_name(status), text)


class _DeviceBuffer:
    """A ``umfa_buffer`` on the context's device (used to stage host arrays for a GPU context)."""

    def __init__(self, ctx: Context, nbytes: int) -> None:
        self.ctx = ctx
        handle = ctypes.c_void_p()
        h = ctx.handle
        N.check(N.lib.umfa_buffer_create(h, max(int(nbytes), 1), ctypes.byref(handle)), h)
        self.handle = handle
        ptr = ctypes.c_void_p()
        N.check(N.lib.umfa_buffer_data(handle, ctypes.byref(ptr)), h)
        self.ptr = int(ptr.value or 0)

    def upload(self, a: np.ndarray) -> None:
        if a.nbytes:
            N.check(N.lib.umfa_buffer_upload(self.handle, 0, a.ctypes.data, a.nbytes),
                    self.ctx.handle)

    def download(self, a: np.ndarray) -> None:
        if a.nbytes:
            N.check(N.lib.umfa_buffer_download(self.handle, 0, a.ctypes.data, a.nbytes),
                    self.ctx.handle)

    def close(self) -> None:
        if self.handle:
            N.lib.umfa_buffer_destroy(self.handle)
            self.handle = None  # type: ignore[assignment]


def staged_forward(ctx: Context, q: np.ndarray, k: np.ndarray, v: np.ndarray, out: np.ndarray,
                   **options: Any) -> None:
    """Forward on host numpy arrays with a device (CUDA) context: copies the inputs into device
    buffers, runs there, and copies ``out`` (C-contiguous) back. The host round trip is what
    host arrays on a GPU cost; CPU contexts never come here."""
    bufs: List[_DeviceBuffer] = []
    try:
        views = []
        for a, name in ((q, "q"), (k, "k"), (v, "v"), (out, "out")):
            c = np.ascontiguousarray(a)
            buf = _DeviceBuffer(ctx, c.nbytes)
            bufs.append(buf)
            if name != "out":
                buf.upload(c)
            views.append(RawView(buf.ptr, dtype_code_of(c, name), N.DEVICE_CUDA,
                                 ctx.device_index, c.shape))
        ctx.forward(views[0], views[1], views[2], views[3], None, **options)
        bufs[-1].download(out)
    finally:
        for b in bufs:
            b.close()


def _view_or_none(x: Any, name: str, writable: bool, device_index: int,
                  stream: Optional[int] = None) -> Optional[View]:
    # None passes NULL, so that the core reports the missing argument with its own status.
    if x is None:
        return None
    return make_view(x, name, writable=writable, device_index=device_index, stream=stream)


def _ref(view: Optional[View]) -> Any:
    return None if view is None else ctypes.byref(view.tensor)


def _mask_mode(value: MaskMode) -> int:
    if isinstance(value, bool):
        return N.MASK_CAUSAL_BOTTOM_RIGHT if value else N.MASK_NONE
    if isinstance(value, int):
        return value
    try:
        return _MASK_MODES[value]
    except KeyError:
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"mask_mode must be one of {[m for m in _MASK_MODES if m]}, "
                        f"not {value!r}") from None


def attention_options(*, mask_mode: MaskMode = None, softmax_scale: Optional[float] = None,
                      softcap: float = 0.0,
                      window_size: Optional[Tuple[int, int]] = None, attn_mask: Any = None,
                      alibi_slopes: Any = None, cu_seqlens_q: Any = None,
                      cu_seqlens_k: Any = None, max_seqlen_q: int = 0, max_seqlen_k: int = 0,
                      deterministic: bool = False, stream: Optional[int] = None,
                      device_index: int = 0) -> Tuple[N.AttentionOptions, List[Any]]:
    """Build a ``umfa_attention_options`` and the views it points to (keep them alive).

    Args:
        mask_mode: ``None``/``"none"``, ``"causal_top_left"`` (PyTorch's ``is_causal``),
            ``"causal_bottom_right"`` (FlashAttention's ``causal``) or a ``UMFA_MASK_*`` int.
        softmax_scale: multiplies q·k; ``None`` = 1/sqrt(head_dim).
        softcap: tanh soft-capping of scores; 0 = off.
        window_size: ``(left, right)`` sliding window (negative = unbounded), or None.
        attn_mask: bool mask (True = attend) or additive float bias, broadcastable to
            ``[batch, heads_q, seqlen_q, seqlen_k]``.
        alibi_slopes: float32 ``[heads_q]`` or ``[batch, heads_q]``.
        cu_seqlens_q, cu_seqlens_k: int32 ``[batch + 1]`` offsets (varlen).
        max_seqlen_q, max_seqlen_k: varlen upper bounds (0 = computed by the core).
        deterministic: ask for a bit-reproducible backward.
        stream: CUDA stream handle (``cudaStream_t`` as an int); ignored on the CPU.
    """
    o = N.AttentionOptions()
    o.struct_size = ctypes.sizeof(N.AttentionOptions)
    o.mask_mode = _mask_mode(mask_mode)
    if softmax_scale is not None:
        s = float(softmax_scale)
        if s == 0.0 or not math.isfinite(s):
            raise UmfaError(Status.INVALID_ARGUMENT, None,
                            f"softmax_scale must be finite and nonzero, not {s!r} "
                            "(None selects 1/sqrt(head_dim))")
        o.softmax_scale = s
    o.softcap = float(softcap or 0.0)
    if window_size is not None:
        left, right = (int(window_size[0]), int(window_size[1]))
        if left >= 0 or right >= 0:
            o.has_window = 1
            o.window_left = left
            o.window_right = right
    if deterministic:
        o.flags |= N.FLAG_DETERMINISTIC
    keep: List[Any] = []
    for field, value, name in (("attn_mask", attn_mask, "attn_mask"),
                               ("alibi_slopes", alibi_slopes, "alibi_slopes"),
                               ("cu_seqlens_q", cu_seqlens_q, "cu_seqlens_q"),
                               ("cu_seqlens_k", cu_seqlens_k, "cu_seqlens_k")):
        if value is not None:
            view = make_view(value, name, device_index=device_index)
            keep.append(view)
            setattr(o, field, ctypes.pointer(view.tensor))
    o.max_seqlen_q = int(max_seqlen_q or 0)
    o.max_seqlen_k = int(max_seqlen_k or 0)
    o.stream = stream or None
    return o, keep


# ----------------------------------------------------------------------------------------------
# Shared default contexts (one per device), used by the high-level functions
# ----------------------------------------------------------------------------------------------

_defaults: Dict[Tuple[str, int], Context] = {}
_defaults_lock = threading.Lock()


def default_context(device: str = "cpu", index: int = 0) -> Context:
    """The process-wide context for ``device`` (``"cpu"`` or ``"cuda"``) and device ordinal.

    Created on first use and kept for the life of the process.
    """
    key = (device, int(index) if device == "cuda" else 0)
    ctx = _defaults.get(key)
    if ctx is None:
        with _defaults_lock:
            ctx = _defaults.get(key)
            if ctx is None:
                ctx = Context(backend=device, device_index=key[1])
                _defaults[key] = ctx
    return ctx


def backend_available(backend: str) -> Tuple[bool, int]:
    """``(available, device_count)`` for ``"cpu"`` or ``"cuda"`` (never raises for CUDA)."""
    avail = ctypes.c_int32()
    count = ctypes.c_int32()
    N.check(N.lib.umfa_backend_available(_BACKENDS[backend], ctypes.byref(avail),
                                         ctypes.byref(count)), None)
    return bool(avail.value), int(count.value)
