"""Contexts and the low-level forward/backward calls (views in, results written in place)."""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import weakref
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _checks
from . import _native as N
from . import _views
from ._native import Status, UmfaError
from ._views import RawView, dtype_code_of, is_torch_tensor, make_view, resolve

_BACKENDS = {"auto": N.BACKEND_AUTO, "cpu": N.BACKEND_CPU, "cuda": N.BACKEND_CUDA,
             "metal": N.BACKEND_METAL}
_BACKEND_NAMES = {N.BACKEND_CPU: "cpu", N.BACKEND_CUDA: "cuda", N.BACKEND_METAL: "metal"}

MaskMode = Union[int, str, None]
_MASK_MODES = {
    None: N.MASK_NONE,
    "none": N.MASK_NONE,
    "causal_top_left": N.MASK_CAUSAL_TOP_LEFT,
    "top_left": N.MASK_CAUSAL_TOP_LEFT,
    "causal_bottom_right": N.MASK_CAUSAL_BOTTOM_RIGHT,
    "bottom_right": N.MASK_CAUSAL_BOTTOM_RIGHT,
}


_natives: "weakref.WeakSet[_NativeContext]" = weakref.WeakSet()
_get_ident = threading.get_ident


def _closed_error() -> UmfaError:
    return UmfaError(Status.INVALID_HANDLE, None, "this umfa context has been closed")


class _NativeContext:
    """A ``umfa_context*`` and everything using it.

    The C header makes destroying a context while another thread uses it the caller's problem;
    this object takes that problem off Python code. Calls *pin* the native context for their
    duration, buffers made on it *hold* it for their lifetime, and :meth:`close` (from
    :meth:`Context.close` or the context's finalizer) marks it closed, waits until no call is
    running, and destroys it once no buffer holds it either (else the last buffer to go does).
    Pins and holds taken after the close raise ``UMFA_STATUS_INVALID_HANDLE``.
    """

    __slots__ = ("handle", "_lock", "_idle", "_calls", "_callers", "_holds", "_closed",
                 "__weakref__")

    def __init__(self, handle: int) -> None:
        self.handle = handle
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when the last call ends
        self._calls = 0
        self._callers: Dict[int, int] = {}  # thread id -> calls of that thread in flight
        self._holds = 0
        self._closed = False
        _natives.add(self)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran (the native context may live on for running calls)."""
        return self._closed

    def pin(self) -> int:
        """Count a call in flight and return the handle (raises once closed)."""
        me = _get_ident()
        with self._lock:
            if self._closed:
                raise _closed_error()
            self._calls += 1
            callers = self._callers
            callers[me] = callers.get(me, 0) + 1
            return self.handle

    def unpin(self) -> None:
        """End a call started by :meth:`pin`."""
        me = _get_ident()
        with self._lock:
            self._calls -= 1
            callers = self._callers
            left = callers[me] - 1
            if left:
                callers[me] = left
            else:
                del callers[me]
            if self._closed:
                self._idle.notify_all()
                self._destroy_if_unused()

    def hold(self) -> int:
        """Keep the native context alive for a buffer (raises once closed)."""
        with self._lock:
            if self._closed:
                raise _closed_error()
            self._holds += 1
            return self.handle

    def release(self) -> None:
        """Drop a :meth:`hold`; destroys the native context if it was closed meanwhile."""
        with self._lock:
            self._holds -= 1
            self._destroy_if_unused()

    def close(self) -> None:
        """Refuse new calls, wait for the running ones, destroy when nothing holds it.

        Calls of the closing thread itself are not waited for (a close from a destructor the
        garbage collector runs during one of them): the last of them destroys the context.
        """
        with self._lock:
            self._closed = True
            me = _get_ident()
            while self._calls > self._callers.get(me, 0):
                self._idle.wait()
            self._destroy_if_unused()

    def _destroy_if_unused(self) -> None:  # with the lock held
        if self._closed and not self._calls and not self._holds and self.handle:
            handle, self.handle = self.handle, 0
            N.lib.umfa_context_destroy(handle)

    def _after_fork_in_child(self) -> None:
        # Only the forking thread exists in the child: calls of other threads never finish there,
        # and the lock may have been held by one of them.
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        mine = self._callers.get(_get_ident(), 0)
        self._calls = mine
        self._callers = {_get_ident(): mine} if mine else {}


class Context:
    """An execution context of libumfa: one backend, one device, a thread pool, scratch memory.

    Args:
        backend: ``"auto"`` (CUDA when available; else Metal on Apple GPUs; else the CPU),
            ``"cpu"``, ``"cuda"`` or ``"metal"``. A Metal context reads host (numpy) arrays in
            place: the Apple GPU shares the memory. On Linux ``"metal"`` is only reachable when
            the ``UMFA_METAL_LIB`` environment variable names the simulated backend (tests).
        device_index: CUDA device ordinal (ignored on the CPU).
        num_threads: CPU worker threads; 0 = one per core (or ``UMFA_NUM_THREADS``).
        workspace_limit_bytes: most scratch memory one call may allocate; 0 = no limit.

    A context may be used from several threads at once, and closed from any thread at any
    time (see :meth:`close`). Close it with :meth:`close` or use it as a context manager; it is
    also freed when garbage-collected. A process that forks may go on using and closing it in
    the child.

    Raises:
        UmfaError: ``UMFA_STATUS_INVALID_ARGUMENT`` for options of the wrong type or out of
            range of their C types (``num_threads`` and ``device_index`` are int32,
            ``workspace_limit_bytes`` uint64), or the core's status, e.g.
            ``UMFA_STATUS_BACKEND_UNAVAILABLE`` when CUDA or Metal is asked for but absent (for
            Metal whose kernels the Metal compiler rejects, the message carries its log).
    """

    def __init__(self, backend: str = "auto", device_index: int = 0, num_threads: int = 0,
                 workspace_limit_bytes: int = 0) -> None:
        if not isinstance(backend, str) or backend not in _BACKENDS:
            raise UmfaError(Status.INVALID_ARGUMENT, None,
                            f"backend must be one of {sorted(_BACKENDS)}, not {backend!r}")
        opts = N.ContextOptions()
        opts.struct_size = ctypes.sizeof(N.ContextOptions)
        opts.backend = _BACKENDS[backend]
        opts.device_index = device = _checks.integer(device_index, "device_index",
                                                     _checks.INT32)
        opts.num_threads = _checks.integer(num_threads, "num_threads", _checks.INT32)
        opts.workspace_limit_bytes = _checks.integer(workspace_limit_bytes,
                                                     "workspace_limit_bytes", _checks.UINT64)
        handle = ctypes.c_void_p()
        N.check(N.lib.umfa_context_create(ctypes.byref(opts), ctypes.byref(handle)), None)
        self._native = _NativeContext(int(handle.value or 0))
        self._device_index = device
        self._finalizer = weakref.finalize(self, self._native.close)

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the context (idempotent; any thread, any time).

        Calls already running on this context, from other threads, finish normally: close waits
        for them, then destroys the native context. Calls started after close raise
        ``UmfaError(UMFA_STATUS_INVALID_HANDLE)``. Buffers made on the context
        (:class:`umfa.MFABuffer`) keep the native context alive until they are freed.

        Waiting rather than refusing: a close that raised while calls run would leave the
        caller to retry in a loop, and a finalizer (garbage collection, interpreter exit)
        cannot retry at all; waiting is bounded by the running calls, gives the same "free on
        last release" lifetime as the TypeScript packages, and a close that returns has freed
        the native context (unless buffers hold it).
        """
        self._finalizer.detach()
        self._native.close()

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._native.closed

    @property
    def handle(self) -> int:
        """The ``umfa_context*`` as an integer (for other ctypes/cffi code).

        The integer is not protected against :meth:`close`: code that uses it must not race
        with closing this context (the binding's own calls are).
        """
        if self._native.closed:
            raise _closed_error()
        return self._native.handle

    # -- queries -----------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """The backend actually chosen: ``"cpu"``, ``"cuda"`` or ``"metal"``."""
        out = ctypes.c_uint32()
        native = self._native
        h = native.pin()
        try:
            N.check(N.lib.umfa_context_backend(h, ctypes.byref(out)), h)
        finally:
            native.unpin()
        return _BACKEND_NAMES.get(out.value, str(out.value))

    @property
    def device_index(self) -> int:
        """The device ordinal this context was created for."""
        return self._device_index

    @property
    def num_threads(self) -> int:
        """Worker threads of the CPU backend."""
        out = ctypes.c_int32()
        native = self._native
        h = native.pin()
        try:
            N.check(N.lib.umfa_context_num_threads(h, ctypes.byref(out)), h)
        finally:
            native.unpin()
        return out.value

    @property
    def last_error(self) -> str:
        """Message of the most recent failed call on this context (``""`` if none)."""
        native = self._native
        h = native.pin()
        try:
            return N.last_error(h)
        finally:
            native.unpin()

    def __repr__(self) -> str:
        try:
            backend = self.backend
        except UmfaError:
            return "<umfa.Context closed>"
        return f"<umfa.Context backend={backend} device={self._device_index}>"

    # -- attention ---------------------------------------------------------------------------

    def forward(self, q: Any, k: Any, v: Any, out: Any, lse: Any = None, **options: Any) -> None:
        """Forward attention into caller-provided outputs (the C call, nothing more).

        ``q``/``out`` are ``[batch, seqlen_q, heads_q, head_dim]``, ``k``/``v``
        ``[batch, seqlen_k, heads_kv, head_dim]`` (any strides), ``lse`` (optional, float32)
        ``[batch, heads_q, seqlen_q]``; varlen calls use the packed ``[total, heads, head_dim]``
        layouts and ``lse`` ``[heads_q, total_q]``. Arrays are numpy arrays, torch tensors, or
        objects with ``__cuda_array_interface__`` / ``__dlpack__``.

        Outputs must be writable: read-only numpy arrays, read-only DLPack or CUDA array
        interface exports, torch tensors that require grad (in grad mode) and CPU tensors over
        memory torch did not allocate (``torch.frombuffer``, ``torch.from_numpy``) are refused.
        Torch outputs get their version counter bumped, as PyTorch's in-place ops do.

        Keyword options (see :func:`attention_options`): ``mask_mode``, ``softmax_scale``,
        ``softcap``, ``window_size``, ``attn_mask``, ``alibi_slopes``, ``cu_seqlens_q``,
        ``cu_seqlens_k``, ``max_seqlen_q``, ``max_seqlen_k``, ``deterministic``, ``stream``.

        Raises:
            UmfaError: with the core's status and message, or the binding's for arguments it
                refuses itself; nothing is written then.
        """
        if self._native._closed:  # said first, whatever else is wrong with the call
            raise _closed_error()
        if self._forward_fast(False, q, k, v, out, lse, options):
            _torch._C._increment_version((out,) if lse is None else (out, lse))
            return
        _general_call(self, _forward_fn, options,
                      ((q, "q", False), (k, "k", False), (v, "v", False), (out, "out", True),
                       (lse, "lse", True)))
        _bump_versions(out, lse)

    def backward(self, q: Any, k: Any, v: Any, out: Any, dout: Any, lse: Any, dq: Any, dk: Any,
                 dv: Any, **options: Any) -> None:
        """Backward attention: writes ``dq``, ``dk``, ``dv`` (shaped like ``q``, ``k``, ``v``).

        ``out`` and ``lse`` are what :meth:`forward` produced with the same options; ``dout``
        is the gradient of the loss with respect to ``out``. Layouts, options and what outputs
        may be as :meth:`forward`.

        Raises:
            UmfaError: with the core's status and message; nothing is written then.
        """
        if self._native._closed:
            raise _closed_error()
        if self._backward_fast(False, q, k, v, out, dout, lse, dq, dk, dv, options):
            _torch._C._increment_version((dq, dk, dv))
            return
        _general_call(self, _backward_fn, options,
                      ((q, "q", False), (k, "k", False), (v, "v", False), (out, "out", False),
                       (dout, "dout", False), (lse, "lse", False), (dq, "dq", True),
                       (dk, "dk", True), (dv, "dv", True)))
        _bump_versions(dq, dk, dv)

    # -- the per-call fast path (see _fast_call) ------------------------------------------------

    def _forward_fast(self, swap: bool, q: Any, k: Any, v: Any, out: Any, lse: Any,
                      options: Dict[str, Any], fresh: bool = False) -> bool:
        """forward() on the fast path; False (nothing done) when the call needs the general
        path. ``swap``: q, k, v and out are BHSD tensors passed as their BSHD views.
        ``fresh``: the outputs were just allocated by umfa (nothing to check about them)."""
        fast = _fast_call(options)
        if fast is None:
            return False
        slots, opts_ref, message = fast
        o = _FRESH if fresh else _OUTPUT
        refs = (_fast_ref(slots[0], q, "q", _INPUT, swap), _fast_ref(slots[1], k, "k", _INPUT, swap),
                _fast_ref(slots[2], v, "v", _INPUT, swap), _fast_ref(slots[3], out, "out", o, swap),
                _fast_ref(slots[4], lse, "lse", o, False))
        if _SLOW in refs:
            return False
        _pinned_call(self._native, _forward_fn, opts_ref, refs, message)
        return True

    def _backward_fast(self, swap: bool, q: Any, k: Any, v: Any, out: Any, dout: Any, lse: Any,
                       dq: Any, dk: Any, dv: Any, options: Dict[str, Any],
                       fresh: bool = False) -> bool:
        """backward() on the fast path (see _forward_fast)."""
        fast = _fast_call(options)
        if fast is None:
            return False
        slots, opts_ref, message = fast
        o, i = (_FRESH if fresh else _OUTPUT), _INPUT
        refs = (_fast_ref(slots[0], q, "q", i, swap), _fast_ref(slots[1], k, "k", i, swap),
                _fast_ref(slots[2], v, "v", i, swap), _fast_ref(slots[5], out, "out", i, swap),
                _fast_ref(slots[6], dout, "dout", i, swap), _fast_ref(slots[4], lse, "lse", i, False),
                _fast_ref(slots[7], dq, "dq", o, swap), _fast_ref(slots[8], dk, "dk", o, swap),
                _fast_ref(slots[9], dv, "dv", o, swap))
        if _SLOW in refs:
            return False
        _pinned_call(self._native, _backward_fn, opts_ref, refs, message)
        return True


def _pinned_call(native: _NativeContext, fn: Any, opts_ref: Any, refs: Sequence[Any],
                 message: Any) -> None:
    """The C call itself, with the context pinned (see :class:`_NativeContext`); raises
    :class:`UmfaError` for a failure, with the call's own message."""
    h = native.pin()  # the pin is taken last: nothing after it runs the caller's code
    try:
        status = fn(h, opts_ref, *refs)
        if status:
            raise _call_error(status, h, message)
    finally:
        native.unpin()


def _general_call(ctx: Context, fn: Any, options: Dict[str, Any],
                  args: Sequence[Tuple[Any, str, bool]]) -> None:
    """A forward or backward call for any arguments: every option is converted and every
    argument resolved (the steps that may run the caller's code) before any pointer is read;
    then the views are taken, checked, and passed to ``fn`` with the context pinned."""
    scalars = dict(options)
    tensor_options = [(name, scalars.pop(name)) for name in _TENSOR_OPTIONS if name in scalars]
    opts = _scalar_options(**scalars)
    stream = opts.stream
    di = ctx._device_index
    sources = [(name, resolve(value, name, device_index=di, stream=stream))
               for name, value in tensor_options if value is not None]
    arg_sources = [None if x is None else
                   resolve(x, name, writable=writable, device_index=di, stream=stream)
                   for x, name, writable in args]
    keep = []
    for name, source in sources:
        view = source.view()
        keep.append(view)
        setattr(opts, name, ctypes.pointer(view.tensor))
    views = [None if s is None else s.view() for s in arg_sources]
    message = _attach_message_buffer(opts)
    refs = [None if v is None else ctypes.byref(v.tensor) for v in views]
    _pinned_call(ctx._native, fn, ctypes.byref(opts), refs, message)
    del keep


def _bump_versions(*outputs: Any) -> None:
    """Mark torch outputs as modified in place, so that autograd notices when one of them was
    saved for a backward pass (PyTorch's own ``out=`` arguments do the same)."""
    tensors = tuple(t for t in outputs if t is not None and is_torch_tensor(t))
    if tensors:
        sys.modules["torch"]._C._increment_version(tensors)


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
# data pointer is written every call). It takes only plain torch tensors and option values of
# plain types (so no caller code runs while it reads pointers), with no torch function mode
# active; what the general path would refuse (a tensor reaching outside its storage, a
# negative-bit view, an output that must not be written) makes it step aside, and the general
# path then raises. The structs are only read during the C call, which returns before the next
# call on the thread can change them.

_fast_tls = threading.local()
_FAST_OPTION_KEYS = frozenset(("mask_mode", "softmax_scale", "softcap", "window_size",
                               "max_seqlen_q", "max_seqlen_k", "deterministic", "stream"))
_TENSOR_OPTIONS = ("attn_mask", "alibi_slopes", "cu_seqlens_q", "cu_seqlens_k")
# Option values the fast path caches structs for; the key holds each value's type too, so that
# values that are equal across types (1, 1.0, True) never share a struct.
_PLAIN_TYPES = frozenset((int, float, bool, str, type(None), tuple))
_OPTIONS_CACHE_LIMIT = 64
_SLOW = object()  # a _fast_ref result: this argument needs the general path
_forward_fn = N.lib.umfa_attention_forward
_backward_fn = N.lib.umfa_attention_backward
_torch: Any = None  # the torch module once a torch tensor was seen


class _Slot:
    """One argument position of the fast path: its tensor struct, what it was filled from, and
    the byte span the view covers from its data pointer."""

    __slots__ = ("tensor", "ref", "key", "lo", "hi")

    def __init__(self) -> None:
        self.tensor = N.Tensor()
        self.ref = ctypes.byref(self.tensor)
        self.key: Any = None
        self.lo = self.hi = 0


def _fast_state() -> Any:
    tls = _fast_tls
    try:
        return tls.slots, tls.options
    except AttributeError:
        tls.slots = tuple(_Slot() for _ in range(10))
        tls.options = {}
        return tls.slots, tls.options


def _fast_key(options: Dict[str, Any]) -> Optional[Tuple[Any, ...]]:
    """The options-cache key of ``options``, or None when a value is not of a plain type."""
    types = tuple(map(type, options.values()))
    if not _PLAIN_TYPES.issuperset(types):
        return None
    if tuple in types:
        for value in options.values():
            if type(value) is tuple and not all(type(x) is int for x in value):
                return None
    return tuple(options.items()), types


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
    global _torch
    torch = _torch
    if torch is None:
        torch = _torch = sys.modules.get("torch")
        if torch is None:
            return None
    if torch._C._is_torch_function_mode_enabled():
        return None
    key = _fast_key(options)
    if key is None:
        return None
    slots, cache = _fast_state()
    entry = cache.get(key)
    if entry is None:
        opts = _scalar_options(**options)
        message = _attach_message_buffer(opts)
        if len(cache) >= _OPTIONS_CACHE_LIMIT:
            cache.clear()
        entry = (opts, ctypes.byref(opts), message)
        cache[key] = entry
    return slots, entry[1], entry[2]


_INPUT, _OUTPUT, _FRESH = 0, 1, 2  # roles of a _fast_ref argument (_FRESH: an output umfa made)


def _fast_ref(slot: _Slot, x: Any, name: str, role: int, swap: bool) -> Any:
    """byref of the slot's tensor struct filled from torch tensor ``x`` (with dimensions 1 and
    2 exchanged when ``swap``: a BHSD tensor as its BSHD view); None for None; _SLOW for
    anything else (or a tensor the general path must look at)."""
    if x is None:
        return None
    torch = _torch
    if type(x) is not torch.Tensor:
        return _SLOW
    try:
        key = (x.dtype, x.device, x.shape, x.stride(), swap)
        ptr = x.data_ptr()
    except RuntimeError:  # nested or sparse tensors have no strides, meta ones no data
        return _SLOW
    if not ptr:
        return _SLOW  # empty tensors: the general path points them at a dummy address
    if role != _FRESH:
        if x.is_neg():
            return _SLOW
        storage = x.untyped_storage()
        if role == _OUTPUT and (x.requires_grad or not storage.resizable()):
            return _SLOW  # perhaps not writable: the general path decides
    if slot.key != key:
        if swap and x.dim() != 4:
            return _SLOW
        view = make_view(x, name, writable=role != _INPUT)
        t = slot.tensor
        ctypes.memmove(ctypes.addressof(t), ctypes.addressof(view.tensor), ctypes.sizeof(t))
        slot.lo, slot.hi = _views.byte_span(x.shape, x.stride(), x.element_size())
        if swap:
            t.shape[1], t.shape[2] = t.shape[2], t.shape[1]
            t.strides[1], t.strides[2] = t.strides[2], t.strides[1]
        slot.key = key
    if role != _FRESH:
        start = storage.data_ptr()
        if ptr + slot.lo < start or ptr + slot.hi > start + storage.nbytes():
            return _SLOW  # outside its storage (resized or freed): the general path says so
    slot.tensor.data = ptr
    return slot.ref


def _call_error(status: int, handle: int, message: Any) -> UmfaError:
    """The :class:`UmfaError` of a failed attention call, with the call's own message (the
    buffer is cleared again for the thread's next call); the context is still pinned."""
    text = message.value.decode("utf-8", "replace") if message.value else N.last_error(handle)
    message[0] = b"\0"
    return UmfaError(status, N.status_name(status), text)


class _DeviceBuffer:
    """A ``umfa_buffer`` on the context's device (used to stage host arrays for a GPU context);
    it holds the native context until :meth:`close`."""

    def __init__(self, ctx: Context, nbytes: int) -> None:
        self.native = ctx._native
        h = self.native.hold()
        handle = ctypes.c_void_p()
        try:
            N.check(N.lib.umfa_buffer_create(h, max(int(nbytes), 1), ctypes.byref(handle)), h)
            ptr = ctypes.c_void_p()
            N.check(N.lib.umfa_buffer_data(handle, ctypes.byref(ptr)), h)
        except BaseException:
            N.lib.umfa_buffer_destroy(handle)
            self.native.release()
            raise
        self.handle = handle
        self.ptr = int(ptr.value or 0)

    def upload(self, a: np.ndarray) -> None:
        if a.nbytes:
            N.check(N.lib.umfa_buffer_upload(self.handle, 0, a.ctypes.data, a.nbytes),
                    self.native.handle)

    def download(self, a: np.ndarray) -> None:
        if a.nbytes:
            N.check(N.lib.umfa_buffer_download(self.handle, 0, a.ctypes.data, a.nbytes),
                    self.native.handle)

    def close(self) -> None:
        if self.handle:
            N.lib.umfa_buffer_destroy(self.handle)
            self.handle = None  # type: ignore[assignment]
            self.native.release()


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


def _mask_mode(value: MaskMode) -> int:
    if isinstance(value, (bool, np.bool_)):
        return N.MASK_CAUSAL_BOTTOM_RIGHT if value else N.MASK_NONE
    if value is None or isinstance(value, str):
        mode = _MASK_MODES.get(value)
        if mode is None:
            raise UmfaError(Status.INVALID_ARGUMENT, None,
                            f"mask_mode must be one of {[m for m in _MASK_MODES if m]}, a bool "
                            f"or a UMFA_MASK_* integer, not {value!r}")
        return mode
    return _checks.integer(value, "mask_mode", _checks.UINT32)


def _scalar_options(*, mask_mode: MaskMode = None, softmax_scale: Optional[float] = None,
                    softcap: float = 0.0, window_size: Optional[Tuple[int, int]] = None,
                    max_seqlen_q: Optional[int] = 0, max_seqlen_k: Optional[int] = 0,
                    deterministic: bool = False,
                    stream: Optional[int] = None) -> N.AttentionOptions:
    """A ``umfa_attention_options`` with every scalar option converted and range-checked
    (tensor-valued options are set by the caller)."""
    o = N.AttentionOptions()
    o.struct_size = ctypes.sizeof(N.AttentionOptions)
    o.mask_mode = _mask_mode(mask_mode)
    if softmax_scale is not None:
        o.softmax_scale = _checks.softmax_scale(softmax_scale)
    o.softcap = _checks.float32(0.0 if softcap is None else softcap, "softcap")
    window = _checks.window(window_size)
    if window is not None and (window[0] >= 0 or window[1] >= 0):
        o.has_window = 1
        o.window_left, o.window_right = window
    o.max_seqlen_q = _checks.optional_integer(max_seqlen_q, "max_seqlen_q", _checks.INT64)
    o.max_seqlen_k = _checks.optional_integer(max_seqlen_k, "max_seqlen_k", _checks.INT64)
    if _checks.flag(deterministic, "deterministic"):
        o.flags |= N.FLAG_DETERMINISTIC
    o.stream = _checks.pointer(stream, "stream") or None
    return o


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
            ``"causal_bottom_right"`` (FlashAttention's ``causal``), a bool (True =
            bottom-right causal) or a ``UMFA_MASK_*`` int (uint32).
        softmax_scale: multiplies q·k; ``None`` = 1/sqrt(head_dim). A finite, nonzero float32.
        softcap: tanh soft-capping of scores; 0 = off. A finite float32.
        window_size: ``(left, right)`` sliding window (negative = unbounded; int64), or None.
        attn_mask: bool mask (True = attend) or additive float bias, broadcastable to
            ``[batch, heads_q, seqlen_q, seqlen_k]``.
        alibi_slopes: float32 ``[heads_q]`` or ``[batch, heads_q]``.
        cu_seqlens_q, cu_seqlens_k: int32 ``[batch + 1]`` offsets (varlen).
        max_seqlen_q, max_seqlen_k: varlen upper bounds (0 = computed by the core; int64).
        deterministic: ask for a bit-reproducible backward (a bool).
        stream: CUDA stream handle (``cudaStream_t`` as an int); ignored on the CPU.

    Integers must be ints (or numpy integers), reals ints or floats; values of another type,
    or out of range of the C field, raise ``UmfaError(UMFA_STATUS_INVALID_ARGUMENT)`` naming
    the option (see ``umfa._checks``), before anything is converted.
    """
    o = _scalar_options(mask_mode=mask_mode, softmax_scale=softmax_scale, softcap=softcap,
                        window_size=window_size, max_seqlen_q=max_seqlen_q,
                        max_seqlen_k=max_seqlen_k, deterministic=deterministic, stream=stream)
    di = _checks.integer(device_index, "device_index", _checks.INT32)
    sources = [(name, resolve(value, name, device_index=di, stream=o.stream))
               for name, value in (("attn_mask", attn_mask), ("alibi_slopes", alibi_slopes),
                                   ("cu_seqlens_q", cu_seqlens_q),
                                   ("cu_seqlens_k", cu_seqlens_k)) if value is not None]
    keep: List[Any] = []
    for name, source in sources:
        view = source.view()
        keep.append(view)
        setattr(o, name, ctypes.pointer(view.tensor))
    return o, keep


# ----------------------------------------------------------------------------------------------
# Shared default contexts (one per device), used by the high-level functions
# ----------------------------------------------------------------------------------------------

_defaults: Dict[Tuple[str, int], Context] = {}
_defaults_lock = threading.Lock()


def default_context(device: str = "cpu", index: int = 0) -> Context:
    """The process-wide context for ``device`` (``"cpu"``, ``"cuda"`` or ``"metal"``) and device
    ordinal.

    Created on first use and kept for the life of the process. If someone closes it, the next
    request makes a new one (calls running on the closed one finish first; calls that had
    already fetched it raise ``UMFA_STATUS_INVALID_HANDLE``).
    """
    if device not in ("cpu", "cuda", "metal"):
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"device must be 'cpu', 'cuda' or 'metal', not {device!r}")
    key = (device, _checks.integer(index, "index", _checks.INT32) if device == "cuda" else 0)
    ctx = _defaults.get(key)
    if ctx is None or ctx.closed:
        with _defaults_lock:
            ctx = _defaults.get(key)
            if ctx is None or ctx.closed:
                ctx = Context(backend=device, device_index=key[1])
                _defaults[key] = ctx
    return ctx


def _after_fork_in_child() -> None:
    global _defaults_lock
    _defaults_lock = threading.Lock()
    for native in list(_natives):
        native._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def backend_available(backend: str) -> Tuple[bool, int]:
    """``(available, device_count)`` for ``"cpu"``, ``"cuda"`` or ``"metal"`` (never raises for a
    missing GPU backend)."""
    avail = ctypes.c_int32()
    count = ctypes.c_int32()
    N.check(N.lib.umfa_backend_available(_BACKENDS[backend], ctypes.byref(avail),
                                         ctypes.byref(count)), None)
    return bool(avail.value), int(count.value)
