"""The high-level functions: the classic API and FlashAttention-style calls."""

from __future__ import annotations

import ctypes
import weakref
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _checks
from . import _native as N
from ._context import Context, backend_available, default_context, staged_forward
from ._native import Status, UmfaError
from ._views import check_numpy_extent, is_torch_tensor, numpy_bfloat16

ArrayLike = Any  # numpy arrays, torch tensors, or anything numpy can view without a copy

# ----------------------------------------------------------------------------------------------
# Version and capabilities
# ----------------------------------------------------------------------------------------------


def get_version() -> Tuple[int, int, int]:
    """The loaded libumfa's version as ``(major, minor, patch)``."""
    packed = int(N.lib.umfa_version())
    return packed // 10000, (packed // 100) % 100, packed % 100


def version_string() -> str:
    """The loaded libumfa's version as ``"MAJOR.MINOR.PATCH"``."""
    return N.lib.umfa_version_string().decode()


def abi_version() -> int:
    """The ABI version the loaded libumfa implements (this package requires 1)."""
    return int(N.lib.umfa_abi_version())


def build_info() -> str:
    """One line on how libumfa was built and what it detected (SIMD level, CUDA, ...)."""
    return N.lib.umfa_build_info().decode("utf-8", "replace")


def is_metal_available() -> bool:
    """Whether the Metal (Apple GPU) backend can run here: libumfa_metal loaded and sees a GPU
    (on Linux only the simulated backend named by ``UMFA_METAL_LIB``, for tests)."""
    return backend_available("metal")[0]


def backends() -> List[str]:
    """Backends this build of libumfa can run on this machine, e.g. ``["cpu"]`` or
    ``["cpu", "cuda"]`` or ``["cpu", "metal"]``."""
    names = []
    for name in ("cpu", "cuda", "metal"):
        if backend_available(name)[0]:
            names.append(name)
    return names


# ----------------------------------------------------------------------------------------------
# Classic API (Universal Metal Flash Attention's Python package)
# ----------------------------------------------------------------------------------------------


class MFAContext(Context):
    """A umfa context with the ``auto`` backend, as the classic API names it.

    Use it as a context manager or call :meth:`close`. Any :class:`umfa.Context` argument works
    where an ``MFAContext`` is expected.
    """

    def __init__(self) -> None:
        super().__init__(backend="auto")

    def __enter__(self) -> "MFAContext":
        return self

    def __bool__(self) -> bool:
        """True while the context is open (the classic package's validity check)."""
        return not self.closed


def create_context() -> MFAContext:
    """A new :class:`MFAContext` (the classic package's factory function)."""
    return MFAContext()


def _declare_classic_buffers() -> None:
    c = ctypes
    for name, restype, argtypes in (
            ("mfa_create_buffer", c.c_int, [c.c_void_p, c.c_size_t, c.POINTER(c.c_void_p)]),
            ("mfa_buffer_from_ptr", c.c_int, [c.c_void_p, c.c_void_p, c.c_size_t,
                                              c.POINTER(c.c_void_p)]),
            ("mfa_buffer_contents", c.c_void_p, [c.c_void_p]),
            ("mfa_destroy_buffer", None, [c.c_void_p])):
        fn = getattr(N.lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


_declare_classic_buffers()


def _destroy_classic_buffer(handle: int, native: Any) -> None:
    N.lib.mfa_destroy_buffer(handle)
    native.release()  # the context may go now (if it was closed meanwhile)


_SIZE_T = (0, (1 << (8 * ctypes.sizeof(ctypes.c_size_t))) - 1)


class MFABuffer:
    """A classic buffer (``mfa_buffer_t``): a C-contiguous numpy array wrapped without a copy,
    or ``size`` bytes of zero-filled memory allocated by the library.

    Args:
        context: the :class:`MFAContext` the buffer belongs to (it must outlive the buffer).
        data: a C-contiguous numpy array to wrap; it is kept alive by the buffer.
        size: bytes to allocate when ``data`` is None.

    Freed by :meth:`close`, at the end of a ``with`` block, or when garbage-collected. The
    buffer keeps its context's native memory alive: closing the context first is safe (the
    context is then destroyed with its last buffer).

    Raises:
        UmfaError: ``INVALID_ARGUMENT`` for a non-contiguous array, a size that is not an
            integer in ``size_t`` range, neither/both arguments or a closed context
            (``INVALID_HANDLE``), or the classic error of the C call.
    """

    def __init__(self, context: Context, data: Optional[np.ndarray] = None,
                 size: Optional[int] = None) -> None:
        if (data is None) == (size is None):
            raise UmfaError(Status.INVALID_ARGUMENT, None,
                            "MFABuffer needs either a numpy array (data=) or a size in bytes")
        if data is not None:
            if not isinstance(data, np.ndarray) or not data.flags.c_contiguous:
                raise UmfaError(Status.INVALID_ARGUMENT, None,
                                "MFABuffer wraps C-contiguous numpy arrays only (zero-copy)")
            nbytes = data.nbytes
        else:
            nbytes = _checks.integer(size, "size", _SIZE_T)
        handle = ctypes.c_void_p()
        native = context._native
        ctx = native.hold()
        try:
            if data is not None:
                code = N.lib.mfa_buffer_from_ptr(ctx, data.ctypes.data or None, nbytes,
                                                 ctypes.byref(handle))
            else:
                code = N.lib.mfa_create_buffer(ctx, nbytes, ctypes.byref(handle))
            if code != 0:
                raise UmfaError(Status.INVALID_ARGUMENT if code == 1 else Status.BACKEND_ERROR,
                                None,
                                f"{N.lib.mfa_error_string(code).decode()}: {N.last_error(ctx)}")
        except BaseException:
            native.release()
            raise
        self._array = data
        self._context = context
        self._handle: Optional[int] = int(handle.value or 0)
        self._finalizer = weakref.finalize(self, _destroy_classic_buffer, self._handle, native)

    @property
    def handle(self) -> int:
        """The ``mfa_buffer_t`` as an integer (for ctypes calls of the classic C API)."""
        if self._handle is None:
            raise UmfaError(Status.INVALID_HANDLE, None, "this MFABuffer has been closed")
        return self._handle

    def contents_ptr(self) -> int:
        """Address of the buffer's bytes (``mfa_buffer_contents``)."""
        return int(N.lib.mfa_buffer_contents(self.handle) or 0)

    def close(self) -> None:
        """Free the buffer now (idempotent); a wrapped array itself is never freed."""
        self._handle = None
        self._finalizer()  # runs the destruction at most once

    def __enter__(self) -> "MFABuffer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __bool__(self) -> bool:
        """True while the buffer is open."""
        return self._handle is not None


def print_system_info() -> None:
    """Print the library version, its path, the backends this machine can run and the build
    description (the classic package's diagnostic)."""
    print(f"umfa {version_string()} (ABI {abi_version()})")
    print(f"library: {N.library_path()}")
    print(f"backends: {', '.join(backends())}; Metal: "
          f"{'available' if is_metal_available() else 'not available'}")
    print(f"build: {build_info()}")


Precision = Union[str, int, None]
_PRECISIONS = {
    "fp16": "float16", "half": "float16", "float16": "float16",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
    "fp32": "float32", "float": "float32", "float32": "float32",
    N.MFA_PRECISION_FP16: "float16", N.MFA_PRECISION_BF16: "bfloat16",
    N.MFA_PRECISION_FP32: "float32",
}


def _precision_name(p: Precision, what: str) -> str:
    key = p.lower() if isinstance(p, str) else p
    name = _PRECISIONS.get(key)
    if name is None:
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: unknown precision {p!r} (fp16, bf16, fp32)")
    return name


def _precision_dtype(p: Precision, what: str) -> np.dtype:
    name = _precision_name(p, what)
    if name == "bfloat16":
        dt = numpy_bfloat16()
        if dt is None:
            raise UmfaError(Status.UNSUPPORTED_DTYPE, None,
                            f"{what}: bf16 numpy arrays need the ml_dtypes package")
        return dt
    return np.dtype(name)


def _result(shape: Tuple[int, ...], dtype: Any, what: str) -> np.ndarray:
    """An uninitialized result array; numpy's allocation failures become UmfaError."""
    try:
        return np.empty(shape, dtype=dtype)
    except MemoryError:
        raise UmfaError(Status.OUT_OF_MEMORY, None,
                        f"{what}: could not allocate {shape} {np.dtype(dtype)}") from None
    except ValueError as exc:  # "array is too big"
        raise UmfaError(Status.SIZE_OVERFLOW, None, f"{what}: {exc}") from None


def _readable(x: np.ndarray) -> bool:
    return x.dtype in (np.float32, np.float16) or x.dtype.name == "bfloat16"


def flash_attention_forward(context: Context, q: ArrayLike, k: ArrayLike, v: ArrayLike,
                            causal: bool = False, input_precision: Precision = "fp16",
                            intermediate_precision: Precision = "fp16",
                            output_precision: Precision = None,
                            softmax_scale: Optional[float] = None) -> np.ndarray:
    """Classic forward attention on numpy arrays.

    Args:
        context: an :class:`MFAContext` (or any :class:`umfa.Context`).
        q: ``[seq_len_q, head_dim]`` (one head) or ``[batch, seq_len_q, heads, head_dim]``.
        k, v: ``[seq_len_kv, head_dim]`` or ``[batch, seq_len_kv, heads_kv, head_dim]``
            (``heads`` a multiple of ``heads_kv``: grouped-query attention).
        causal: PyTorch-style causal mask (query i sees keys j <= i, top-left diagonal).
        input_precision: element type for inputs that umfa cannot read as they are (e.g.
            float64 arrays or lists), which are converted once to it. float32, float16 and
            bfloat16 arrays are read in place, whatever this says.
        intermediate_precision: accepted for compatibility; umfa accumulates in float32.
        output_precision: element type of the result; ``None`` = the inputs' element type.
        softmax_scale: multiplies q·k; ``None`` = 1/sqrt(head_dim).

    Returns:
        The attention output, shaped like ``q`` (numpy array).

    Raises:
        UmfaError: for inputs the core rejects (status + message), nothing computed.
    """
    _precision_name(intermediate_precision, "intermediate_precision")  # validated, unused
    _precision_name(input_precision, "input_precision")
    causal = _checks.flag(causal, "causal")
    arrays = []
    for x, name in ((q, "q"), (k, "k"), (v, "v")):
        a = np.asarray(x)
        if not _readable(a):
            check_numpy_extent(a, name)  # the conversion reads it
            a = a.astype(_precision_dtype(input_precision, "input_precision"))
        arrays.append(a)
    q, k, v = arrays
    if q.ndim == 2:
        q4, k4, v4 = (a[None, :, None, :] if a.ndim == 2 else a for a in (q, k, v))
    elif q.ndim == 4:
        q4, k4, v4 = q, k, v
    else:
        raise UmfaError(Status.INVALID_RANK, None,
                        f"q must be [seq_len, head_dim] or [batch, seq_len, heads, head_dim], "
                        f"got shape {q.shape}")
    out_dtype = (q.dtype if output_precision is None
                 else _precision_dtype(output_precision, "output_precision"))
    out_shape = q4.shape[:-1] + (v4.shape[-1],)
    out = _result(out_shape, out_dtype, "out")
    opts = dict(softmax_scale=softmax_scale, mask_mode="causal_top_left" if causal else None)
    if context.backend == "cuda":  # MFAContext is "auto": numpy arrays go through the device
        staged_forward(context, q4, k4, v4, out, **opts)
    else:
        context.forward(q4, k4, v4, out, None, **opts)
    return out.reshape(q.shape[:-1] + (out.shape[-1],)) if q.ndim == 2 else out


def attention(q: ArrayLike, k: ArrayLike, v: ArrayLike, context: Optional[Context] = None,
              **kwargs: Any) -> np.ndarray:
    """:func:`flash_attention_forward` with a context of its own (or ``context`` if given).

    Keyword arguments are those of :func:`flash_attention_forward` (``causal``,
    ``softmax_scale``, precisions).
    """
    if context is not None:
        return flash_attention_forward(context, q, k, v, **kwargs)
    with MFAContext() as ctx:
        return flash_attention_forward(ctx, q, k, v, **kwargs)


# ----------------------------------------------------------------------------------------------
# FlashAttention-style API
# ----------------------------------------------------------------------------------------------


def _check_dropout(dropout_p: float) -> None:
    p = _checks.real(dropout_p, "dropout_p")
    if not 0.0 <= p <= 1.0:
        raise UmfaError(Status.INVALID_ARGUMENT, None, f"dropout_p={p!r} is not in [0, 1]")
    if p > 0.0:
        raise UmfaError(Status.UNSUPPORTED, None,
                        f"dropout_p={p}: umfa does not implement attention dropout yet; "
                        "pass dropout_p=0.0 (or apply dropout outside attention)")


def _uses_torch(*xs: Any) -> bool:
    flags = [is_torch_tensor(x) for x in xs]
    if any(flags) and not all(flags):
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        "q, k and v must all be torch tensors or all be numpy arrays")
    return all(flags)


def _np(x: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == object:
        raise UmfaError(Status.INVALID_ARGUMENT, None, f"{name}: not an array")
    return a


def _np_i32(x: ArrayLike, name: str) -> np.ndarray:
    # A [batch + 1] offset list: converting it is negligible.
    a = np.asarray(x)
    check_numpy_extent(a, name)  # the range check and the conversion read it
    return _checks.int32_array(a, name)


def _np_f32(x: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(x)
    check_numpy_extent(a, name)
    return _checks.float32_array(a, name)


def _window(window_size: Optional[Sequence[int]]) -> Tuple[int, int]:
    window = _checks.window(window_size)
    return (-1, -1) if window is None else window


def flash_attn_func(q: ArrayLike, k: ArrayLike, v: ArrayLike, dropout_p: float = 0.0,
                    softmax_scale: Optional[float] = None, causal: bool = False,
                    window_size: Tuple[int, int] = (-1, -1), softcap: float = 0.0,
                    alibi_slopes: Optional[ArrayLike] = None, deterministic: bool = False,
                    return_attn_probs: bool = False, *, return_lse: bool = False) -> Any:
    """FlashAttention's ``flash_attn_func`` on numpy arrays or torch tensors.

    Args:
        q: ``[batch, seqlen_q, heads_q, head_dim]``.
        k, v: ``[batch, seqlen_k, heads_kv, head_dim]``; ``heads_q`` a multiple of ``heads_kv``
            (GQA/MQA).
        dropout_p: must be 0.0 (dropout is not implemented; anything else raises).
        softmax_scale: multiplies q·k; ``None`` = 1/sqrt(head_dim).
        causal: bottom-right aligned causal mask (query i sees keys
            j <= i + seqlen_k - seqlen_q), FlashAttention's convention.
        window_size: ``(left, right)`` sliding window; -1 = unbounded.
        softcap: tanh soft-capping of scores (0 = off).
        alibi_slopes: float32 ``[heads_q]`` or ``[batch, heads_q]``; adds
            ``-slope * |i + seqlen_k - seqlen_q - j|`` to the scores.
        deterministic: bit-reproducible backward.
        return_attn_probs: FlashAttention compatibility: also return the log-sum-exp, and
            ``None`` in place of the dropout mask/probabilities (never materialized).
        return_lse: also return the log-sum-exp of each row's scores, float32
            ``[batch, heads_q, seqlen_q]`` (natural log; ``-inf`` for rows that see no key;
            not differentiable, as in FlashAttention).

    Returns:
        ``out`` ``[batch, seqlen_q, heads_q, head_dim]`` in q's dtype, or ``(out, lse)`` with
        ``return_lse``, or ``(out, lse, None)`` with ``return_attn_probs``. Torch inputs give
        torch outputs that are differentiable with respect to q, k and v.

    Raises:
        UmfaError: for rejected inputs (status + message) and for ``dropout_p > 0``.
    """
    _check_dropout(dropout_p)
    left, right = _window(window_size)
    out: Any
    lse: Any
    if _uses_torch(q, k, v):
        from . import torch as umfa_torch

        out, lse = umfa_torch._flash_forward(q, k, v, alibi_slopes, None, None, 0, 0,
                                             softmax_scale, causal, (left, right), softcap,
                                             deterministic)
    else:
        q, k, v = _np(q, "q"), _np(k, "k"), _np(v, "v")
        if q.ndim != 4 or v.ndim != 4:
            raise UmfaError(Status.INVALID_RANK, None,
                            f"q, k, v must be [batch, seqlen, heads, head_dim], got shapes "
                            f"{q.shape}, {k.shape}, {v.shape}")
        b, sq, hq, _ = q.shape
        out = _result((b, sq, hq, v.shape[3]), q.dtype, "out")
        want_lse = return_lse or return_attn_probs
        lse = _result((b, hq, sq), np.float32, "lse") if want_lse else None
        default_context("cpu").forward(
            q, k, v, out, lse, softmax_scale=softmax_scale,
            mask_mode="causal_bottom_right" if _checks.flag(causal, "causal") else None,
            window_size=(left, right), softcap=softcap,
            alibi_slopes=None if alibi_slopes is None else _np_f32(alibi_slopes, "alibi_slopes"),
            deterministic=deterministic)
    if return_attn_probs:
        return out, lse, None
    if return_lse:
        return out, lse
    return out


def flash_attn_varlen_func(q: ArrayLike, k: ArrayLike, v: ArrayLike, cu_seqlens_q: ArrayLike,
                           cu_seqlens_k: ArrayLike, max_seqlen_q: int, max_seqlen_k: int,
                           dropout_p: float = 0.0, softmax_scale: Optional[float] = None,
                           causal: bool = False, window_size: Tuple[int, int] = (-1, -1),
                           softcap: float = 0.0, alibi_slopes: Optional[ArrayLike] = None,
                           deterministic: bool = False, return_attn_probs: bool = False,
                           block_table: Optional[ArrayLike] = None, *,
                           return_lse: bool = False) -> Any:
    """FlashAttention's ``flash_attn_varlen_func``: sequences of different lengths, packed.

    Args:
        q: ``[total_q, heads_q, head_dim]``, the batch's query rows back to back.
        k, v: ``[total_k, heads_kv, head_dim]``.
        cu_seqlens_q, cu_seqlens_k: int32 ``[batch + 1]`` offsets of each sequence (first 0,
            non-decreasing); other integer types are converted.
        max_seqlen_q, max_seqlen_k: the longest sequence of each (upper bounds are fine).
        dropout_p, softmax_scale, causal, window_size, softcap, alibi_slopes, deterministic,
        return_attn_probs, return_lse: as :func:`flash_attn_func`, per sequence (causal is
            bottom-right within each sequence).
        block_table: paged KV cache; not supported yet (raises).

    Returns:
        ``out`` ``[total_q, heads_q, head_dim]``, plus ``lse`` float32 ``[heads_q, total_q]``
        with ``return_lse`` (or ``(out, lse, None)`` with ``return_attn_probs``).

    Raises:
        UmfaError: for rejected inputs, ``dropout_p > 0`` or a ``block_table``.
    """
    _check_dropout(dropout_p)
    if block_table is not None:
        raise UmfaError(Status.UNSUPPORTED, None, "block_table (paged KV) is not supported yet")
    left, right = _window(window_size)
    out: Any
    lse: Any
    if _uses_torch(q, k, v):
        from . import torch as umfa_torch

        out, lse = umfa_torch._flash_forward(q, k, v, alibi_slopes, cu_seqlens_q, cu_seqlens_k,
                                             max_seqlen_q, max_seqlen_k, softmax_scale, causal,
                                             (left, right), softcap, deterministic)
    else:
        q, k, v = _np(q, "q"), _np(k, "k"), _np(v, "v")
        if q.ndim != 3 or v.ndim != 3:
            raise UmfaError(Status.INVALID_RANK, None,
                            f"varlen q, k, v must be [total, heads, head_dim], got shapes "
                            f"{q.shape}, {k.shape}, {v.shape}")
        t, hq, _ = q.shape
        out = _result((t, hq, v.shape[2]), q.dtype, "out")
        want_lse = return_lse or return_attn_probs
        lse = _result((hq, t), np.float32, "lse") if want_lse else None
        default_context("cpu").forward(
            q, k, v, out, lse, softmax_scale=softmax_scale,
            mask_mode="causal_bottom_right" if _checks.flag(causal, "causal") else None,
            window_size=(left, right), softcap=softcap,
            alibi_slopes=None if alibi_slopes is None else _np_f32(alibi_slopes, "alibi_slopes"),
            cu_seqlens_q=_np_i32(cu_seqlens_q, "cu_seqlens_q"),
            cu_seqlens_k=_np_i32(cu_seqlens_k, "cu_seqlens_k"),
            max_seqlen_q=max_seqlen_q, max_seqlen_k=max_seqlen_k, deterministic=deterministic)
    if return_attn_probs:
        return out, lse, None
    if return_lse:
        return out, lse
    return out
