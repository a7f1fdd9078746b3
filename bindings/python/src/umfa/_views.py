"""Turning array objects into ``umfa_tensor`` views without copying their data.

Accepted, in this order:

* :class:`numpy.ndarray` (and subclasses, read as the plain array they hold) — data pointer and
  strides from the array itself (``bfloat16`` through the ``ml_dtypes`` dtype when that package
  is installed);
* :class:`torch.Tensor` and :class:`torch.nn.Parameter` — ``data_ptr()`` and ``stride()`` (CPU
  and CUDA tensors). Other tensor subclasses are refused: what their memory holds is theirs to
  say, so umfa never reads them as raw memory;
* objects with ``__cuda_array_interface__`` (CuPy, Numba, ...): device pointer and strides;
* objects with ``__dlpack__``: the DLPack capsule is read in place (never consumed, so its
  producer keeps ownership and frees it when the capsule is collected);
* anything else numpy can view without a copy (buffer protocol, ``__array_interface__``).

Strides are passed through as they are (negative or broadcast strides included): the core
validates them once. Only what a ``umfa_tensor`` cannot express at all (rank > 4, strides that
are not a whole number of elements, element types umfa does not know) and what only the binding
can see (read-only memory, tensors that require grad, views reaching past their storage) is
rejected here, with the status the core would use.

Making a view happens in two steps, so that no Python code of the caller runs between reading
a pointer and the C call that uses it: :func:`resolve` runs everything that may call back into
user code (``__cuda_array_interface__``, ``__dlpack__``, ``__array_interface__``,
``np.asarray``) and returns a :class:`Source`; :meth:`Source.view` then reads pointers, shapes
and strides from plain numpy arrays, plain tensors (with ``__torch_function__`` handling off)
or values already copied out, and checks them. A call resolves every argument first and takes
every view after, so a callback that resizes, frees or re-flags one argument while another is
resolved is seen by the checks instead of leaving a stale pointer behind.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from . import _checks
from . import _native as N
from ._native import Status, UmfaError

# A valid address for views of zero elements (torch gives data_ptr() == 0 for those); the core
# never reads through it because there is nothing to read.
_EMPTY = (ctypes.c_uint8 * 64)()
_EMPTY_ADDR = ctypes.addressof(_EMPTY)

_NP_DTYPES = {
    np.dtype(np.float32): N.DTYPE_F32,
    np.dtype(np.float16): N.DTYPE_F16,
    np.dtype(np.bool_): N.DTYPE_BOOL,
    np.dtype(np.int32): N.DTYPE_I32,
}


def numpy_bfloat16() -> Optional[np.dtype]:
    """numpy's ``bfloat16`` dtype when ``ml_dtypes`` (or another provider) registered one."""
    try:
        return np.dtype("bfloat16")
    except TypeError:
        pass
    try:  # pragma: no cover - depends on an optional package
        import ml_dtypes  # type: ignore

        return np.dtype(ml_dtypes.bfloat16)
    except Exception:
        return None


def _np_dtype_code(dt: np.dtype, what: str) -> int:
    code = _NP_DTYPES.get(dt)
    if code is not None:
        return code
    if dt.name == "bfloat16" and dt.itemsize == 2:
        return N.DTYPE_BF16
    if dt.byteorder not in ("=", "|") and dt.newbyteorder("=") in _NP_DTYPES:
        raise UmfaError(Status.UNSUPPORTED_DTYPE, None,
                        f"{what}: non-native byte order {dt.str} is not supported")
    raise UmfaError(Status.UNSUPPORTED_DTYPE, None,
                    f"{what}: dtype {dt} is not supported (float32, float16, bfloat16; "
                    "bool masks; int32 cu_seqlens)")


def _torch_module():
    return sys.modules.get("torch")


def is_torch_tensor(x: Any) -> bool:
    """True for a ``torch.Tensor`` (without importing torch when it is not loaded)."""
    torch = _torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


_TORCH_DTYPES: Optional[dict] = None


def _torch_dtype_code(dtype: Any, what: str) -> int:
    global _TORCH_DTYPES
    if _TORCH_DTYPES is None:
        torch = _torch_module()
        _TORCH_DTYPES = {torch.float32: N.DTYPE_F32, torch.float16: N.DTYPE_F16,
                         torch.bfloat16: N.DTYPE_BF16, torch.bool: N.DTYPE_BOOL,
                         torch.int32: N.DTYPE_I32}
    code = _TORCH_DTYPES.get(dtype)
    if code is None:
        raise UmfaError(Status.UNSUPPORTED_DTYPE, None,
                        f"{what}: dtype {dtype} is not supported (float32, float16, bfloat16; "
                        "bool masks; int32 cu_seqlens)")
    return code


def _fill(t: N.Tensor, ptr: int, dtype: int, device: int, device_index: int,
          shape: Sequence[int], strides: Sequence[int], what: str) -> None:
    rank = len(shape)
    if rank > N.MAX_RANK:
        raise UmfaError(Status.INVALID_RANK, None,
                        f"{what}: rank {rank} is more than a umfa tensor holds ({N.MAX_RANK})")
    if not ptr and 0 in tuple(shape):
        ptr = _EMPTY_ADDR
    t.data = ptr or None
    t.dtype = dtype
    t.device = device
    t.device_index = device_index
    t.rank = rank
    pad = _PADS[rank]
    t.shape[:] = tuple(shape) + pad
    t.strides[:] = tuple(strides) + pad


_PADS = [(0,) * (N.MAX_RANK - r) for r in range(N.MAX_RANK + 1)]


def _byte_strides_to_elements(strides: Sequence[int], itemsize: int, what: str) -> List[int]:
    out = []
    for s in strides:
        if s % itemsize:
            raise UmfaError(Status.INVALID_STRIDE, None,
                            f"{what}: stride of {s} bytes is not a whole number of "
                            f"{itemsize}-byte elements")
        out.append(s // itemsize)
    return out


def _contiguous_strides(shape: Sequence[int]) -> List[int]:
    strides = [0] * len(shape)
    acc = 1
    for i in range(len(shape) - 1, -1, -1):
        strides[i] = acc
        acc *= max(int(shape[i]), 1)
    return strides


def byte_span(shape: Sequence[int], strides: Sequence[int], itemsize: int) -> Tuple[int, int]:
    """(lowest, one past the highest) byte offset from the data pointer that a non-empty view
    touches (strides in elements, possibly negative)."""
    lo = hi = 0
    for n, s in zip(shape, strides):
        if s < 0:
            lo += (n - 1) * s
        else:
            hi += (n - 1) * s
    return lo * itemsize, (hi + 1) * itemsize


def _read_only(what: str, how: str) -> UmfaError:
    return UmfaError(Status.INVALID_ARGUMENT, None, f"{what}: {how} is read-only")


# --- DLPack (read in place) -------------------------------------------------------------------


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", _DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p)]


class _DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class _DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [("version", _DLPackVersion), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p), ("flags", ctypes.c_uint64),
                ("dl_tensor", _DLTensor)]


_capsule_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_get_pointer.restype = ctypes.c_void_p
_capsule_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capsule_is_valid = ctypes.pythonapi.PyCapsule_IsValid
_capsule_is_valid.restype = ctypes.c_int
_capsule_is_valid.argtypes = [ctypes.py_object, ctypes.c_char_p]

_DL_CPU, _DL_CUDA, _DL_CUDA_HOST, _DL_CUDA_MANAGED = 1, 2, 3, 13
_DL_INT, _DL_UINT, _DL_FLOAT, _DL_BFLOAT, _DL_BOOL = 0, 1, 2, 4, 6
_DL_FLAG_READ_ONLY = 1
_DL_MAX_VERSION = (1, 0)


def _dlpack_dtype(code: int, bits: int, lanes: int, what: str) -> int:
    table = {(_DL_FLOAT, 32): N.DTYPE_F32, (_DL_FLOAT, 16): N.DTYPE_F16,
             (_DL_BFLOAT, 16): N.DTYPE_BF16, (_DL_BOOL, 8): N.DTYPE_BOOL,
             (_DL_UINT, 8): N.DTYPE_BOOL, (_DL_INT, 32): N.DTYPE_I32}
    dt = table.get((code, bits))
    if dt is None or lanes != 1:
        raise UmfaError(Status.UNSUPPORTED_DTYPE, None,
                        f"{what}: DLPack dtype (code {code}, {bits} bits, {lanes} lanes) is "
                        "not supported")
    return dt


def _dlpack_capsule(obj: Any, what: str, stream: Optional[int]) -> Any:
    """``obj.__dlpack__`` asked for a versioned capsule (which can say "read-only"), falling
    back to the unversioned protocol for producers that predate it."""
    dev_type, _ = obj.__dlpack_device__()
    kwargs = {}
    if dev_type in (_DL_CUDA, _DL_CUDA_MANAGED):
        # Ask the producer to make the data ready on the stream the call will run on.
        kwargs["stream"] = stream if stream is not None else 1
    try:
        try:
            return obj.__dlpack__(max_version=_DL_MAX_VERSION, **kwargs)
        except TypeError:
            pass
        try:
            return obj.__dlpack__(**kwargs)
        except TypeError:
            if not kwargs:
                raise
            return obj.__dlpack__()
    except BufferError as exc:  # e.g. numpy refusing to export a read-only array unversioned
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: the DLPack export failed: {exc}") from None


def _resolve_dlpack(obj: Any, what: str, writable: bool, stream: Optional[int]) -> "Source":
    capsule = _dlpack_capsule(obj, what, stream)
    if _capsule_is_valid(capsule, b"dltensor_versioned"):
        managed_v = _DLManagedTensorVersioned.from_address(
            _capsule_get_pointer(capsule, b"dltensor_versioned"))
        if managed_v.version.major != _DL_MAX_VERSION[0]:
            raise UmfaError(Status.UNSUPPORTED, None,
                            f"{what}: DLPack version {managed_v.version.major}."
                            f"{managed_v.version.minor} is not supported")
        if writable and managed_v.flags & _DL_FLAG_READ_ONLY:
            raise _read_only(what, "the DLPack tensor")
        dl = managed_v.dl_tensor
    elif _capsule_is_valid(capsule, b"dltensor"):
        dl = _DLManagedTensor.from_address(_capsule_get_pointer(capsule, b"dltensor")).dl_tensor
    else:
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: __dlpack__ returned {type(capsule).__name__}, not a DLPack "
                        "capsule")
    ndim = int(dl.ndim)
    if not 0 <= ndim <= N.MAX_RANK:
        raise UmfaError(Status.INVALID_RANK, None,
                        f"{what}: rank {ndim} is not one a umfa tensor holds (0..{N.MAX_RANK})")
    shape = [int(dl.shape[i]) for i in range(ndim)]
    strides = ([int(dl.strides[i]) for i in range(ndim)] if dl.strides
               else _contiguous_strides(shape))
    dtype = _dlpack_dtype(dl.dtype.code, dl.dtype.bits, dl.dtype.lanes, what)
    ptr = (dl.data or 0) + int(dl.byte_offset)
    if ptr > _checks.UINT64[1]:
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: DLPack data + byte_offset is beyond the address space")
    if dl.device.device_type in (_DL_CPU, _DL_CUDA_HOST):
        device, index = N.DEVICE_CPU, 0
    elif dl.device.device_type in (_DL_CUDA, _DL_CUDA_MANAGED):
        device, index = N.DEVICE_CUDA, int(dl.device.device_id)
    else:
        raise UmfaError(Status.DEVICE_MISMATCH, None,
                        f"{what}: DLPack device type {dl.device.device_type} is not supported")
    # The capsule is not consumed: keeping it alive keeps the memory alive; when it is collected
    # its own destructor returns the tensor to the producer.
    return _Frozen(ptr, dtype, device, index, shape, strides, (obj, capsule), what)


# --- CUDA array interface ----------------------------------------------------------------------

_CAI_TYPES = {"f4": N.DTYPE_F32, "f2": N.DTYPE_F16, "b1": N.DTYPE_BOOL, "i4": N.DTYPE_I32}


def _resolve_cai(obj: Any, what: str, writable: bool, device_index: int) -> "Source":
    cai = obj.__cuda_array_interface__
    if not isinstance(cai, dict):
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: __cuda_array_interface__ is not a dict")
    # Every entry is copied out (and range-checked) here, once.
    cai = dict(cai)
    typestr = cai.get("typestr")
    if not isinstance(typestr, str) or len(typestr) < 2:
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: __cuda_array_interface__ typestr {typestr!r} is not valid")
    if typestr[0] == ">":
        raise UmfaError(Status.UNSUPPORTED_DTYPE, None, f"{what}: big-endian {typestr}")
    code = _CAI_TYPES.get(typestr[1:])
    if code is None:
        raise UmfaError(Status.UNSUPPORTED_DTYPE, None,
                        f"{what}: __cuda_array_interface__ typestr {typestr} is not supported")
    if cai.get("mask") is not None:
        raise UmfaError(Status.UNSUPPORTED, None,
                        f"{what}: masked __cuda_array_interface__ arrays are not supported")
    try:
        shape = [_checks.integer(s, f"{what}: shape", _checks.INT64) for s in cai["shape"]]
        raw_strides = cai.get("strides")
        byte_strides = (None if raw_strides is None else
                        [_checks.integer(s, f"{what}: strides", _checks.INT64)
                         for s in raw_strides])
        data = tuple(cai["data"])
    except (KeyError, TypeError) as exc:
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: __cuda_array_interface__ is malformed ({exc})") from None
    if len(shape) > N.MAX_RANK:
        raise UmfaError(Status.INVALID_RANK, None,
                        f"{what}: rank {len(shape)} is more than a umfa tensor holds "
                        f"({N.MAX_RANK})")
    if byte_strides is not None and len(byte_strides) != len(shape):
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: __cuda_array_interface__ has {len(byte_strides)} strides for "
                        f"rank {len(shape)}")
    if len(data) != 2:
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: __cuda_array_interface__ data must be (pointer, read_only)")
    ptr = _checks.pointer(data[0], f"{what}: data pointer")
    if writable and data[1]:
        raise _read_only(what, "the __cuda_array_interface__ array")
    itemsize = N.DTYPE_SIZES[code]
    strides = (_byte_strides_to_elements(byte_strides, itemsize, what)
               if byte_strides is not None else _contiguous_strides(shape))
    return _Frozen(ptr, code, N.DEVICE_CUDA, device_index, shape, strides, obj, what)


# --- reinterpreting memory -------------------------------------------------------------------

_DTYPE_CODES = {"f32": N.DTYPE_F32, "float32": N.DTYPE_F32, "f16": N.DTYPE_F16,
                "float16": N.DTYPE_F16, "bf16": N.DTYPE_BF16, "bfloat16": N.DTYPE_BF16,
                "bool": N.DTYPE_BOOL, "i32": N.DTYPE_I32, "int32": N.DTYPE_I32}


class Reinterpreted:
    """An array whose memory umfa reads (or writes) as another element type of the same size.

    Made by :func:`umfa.reinterpret`; accepted wherever umfa takes an array. The typical use is
    bfloat16 data held in a ``uint16`` numpy array (numpy has no bfloat16 of its own).
    """

    __slots__ = ("array", "dtype_code")

    def __init__(self, array: Any, dtype: str) -> None:
        code = _DTYPE_CODES.get(dtype)
        if code is None:
            raise UmfaError(Status.UNSUPPORTED_DTYPE, None,
                            f"unknown umfa dtype {dtype!r} ({sorted(set(_DTYPE_CODES))})")
        arr = array if isinstance(array, np.ndarray) else np.asarray(array)
        if arr.itemsize != N.DTYPE_SIZES[code]:
            raise UmfaError(Status.UNSUPPORTED_DTYPE, None,
                            f"cannot read {arr.dtype} elements ({arr.itemsize} bytes) as {dtype} "
                            f"({N.DTYPE_SIZES[code]} bytes)")
        self.array = arr
        self.dtype_code = code

    @property
    def shape(self) -> Tuple[int, ...]:
        """The array's shape."""
        return tuple(self.array.shape)


def reinterpret(array: Any, dtype: str) -> Reinterpreted:
    """View a numpy array's memory as umfa dtype ``dtype`` (same element size), without a copy.

    Example: ``umfa.reinterpret(bits_u16, "bf16")`` passes bfloat16 data stored as uint16.
    """
    return Reinterpreted(array, dtype)


class RawView:
    """A view described field by field (pointer, umfa dtype code, device, shape, strides in
    elements), for memory that no array object describes, e.g. a ``umfa_buffer``."""

    __slots__ = ("ptr", "dtype_code", "device", "device_index", "shape", "strides", "owner")

    def __init__(self, ptr: int, dtype_code: int, device: int, device_index: int,
                 shape: Sequence[int], strides: Optional[Sequence[int]] = None,
                 owner: Any = None) -> None:
        self.ptr = int(ptr)
        self.dtype_code = int(dtype_code)
        self.device = int(device)
        self.device_index = int(device_index)
        self.shape = tuple(int(s) for s in shape)
        self.strides = tuple(strides) if strides is not None else tuple(
            _contiguous_strides(self.shape))
        self.owner = owner


def dtype_code_of(arr: np.ndarray, what: str) -> int:
    """The umfa dtype code of a numpy array's element type (raises for unsupported ones)."""
    return _np_dtype_code(arr.dtype, what)


# --- views and their sources -------------------------------------------------------------------


class View:
    """A ``umfa_tensor`` plus the Python objects that must stay alive while it is used."""

    __slots__ = ("tensor", "keep", "obj")

    def __init__(self, tensor: N.Tensor, keep: Any, obj: Any) -> None:
        self.tensor = tensor
        self.keep = keep
        self.obj = obj

    @property
    def shape(self) -> Tuple[int, ...]:
        """The view's shape."""
        return tuple(int(self.tensor.shape[i]) for i in range(self.tensor.rank))

    @property
    def device(self) -> int:
        """``UMFA_DEVICE_*`` of the memory."""
        return int(self.tensor.device)


class Source:
    """An argument after :func:`resolve`: :meth:`view` reads its memory's address and layout
    without running caller code."""

    __slots__ = ()

    def view(self) -> View:
        raise NotImplementedError


class _Frozen(Source):
    """Fields already copied out of a protocol object (and range-checked)."""

    __slots__ = ("ptr", "dtype", "device", "index", "shape", "strides", "keep", "what")

    def __init__(self, ptr: int, dtype: int, device: int, index: int, shape: Sequence[int],
                 strides: Sequence[int], keep: Any, what: str = "") -> None:
        self.ptr, self.dtype, self.device, self.index = ptr, dtype, device, index
        self.shape, self.strides, self.keep, self.what = shape, strides, keep, what

    def view(self) -> View:
        t = N.Tensor()
        _fill(t, self.ptr, self.dtype, self.device, self.index, self.shape, self.strides,
              self.what)
        return View(t, self.keep, self.keep)


_np_base = np.ndarray.base.__get__
_np_flags = np.ndarray.flags.__get__
_np_interface = np.ndarray.__array_interface__.__get__
_np_nbytes = np.ndarray.nbytes.__get__
_DummyArray = getattr(getattr(np.lib, "_stride_tricks_impl", None), "DummyArray",
                      getattr(getattr(np.lib, "stride_tricks", None), "DummyArray", None))
_MAX_BASE_DEPTH = 32


def _np_address(arr: np.ndarray) -> int:
    """The data pointer of ``arr``, read through ndarray's own descriptor (a subclass cannot
    answer for it)."""
    return int(_np_interface(arr)["data"][0] or 0)


def _memory_owner(arr: np.ndarray) -> Optional[np.ndarray]:
    """The array whose memory holds ``arr``'s data, found through its chain of bases: an array
    that owns its data, or a byte view of a buffer (bytes, bytearray, mmap, a ctypes array)
    that stays exported, so fixed, while the result lives. None when the chain ends in an
    object whose extent cannot be known (an ``__array_interface__`` exporter)."""
    obj: Any = arr
    for _ in range(_MAX_BASE_DEPTH):
        if isinstance(obj, np.ndarray):
            if _np_flags(obj).owndata:
                return obj
            nxt = _np_base(obj)
            if nxt is None:
                return None
            obj = nxt
        elif _DummyArray is not None and type(obj) is _DummyArray:
            obj = obj.base  # np.lib.stride_tricks.as_strided's holder of the original array
        else:
            try:
                return np.frombuffer(memoryview(obj).cast("B"), np.uint8)
            except (TypeError, ValueError):
                return None
    return None


def _check_within(a: np.ndarray, strides: Sequence[int], owner: np.ndarray, what: str) -> None:
    """Refuse the (non-empty, plain) array ``a`` when its elements reach outside ``owner``."""
    lo, hi = byte_span(a.shape, strides, a.itemsize)
    ptr, start = _np_address(a), _np_address(owner)
    if ptr + lo < start or ptr + hi > start + _np_nbytes(owner):
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: the array's shape and strides reach outside the memory that "
                        "holds it (np.lib.stride_tricks.as_strided, or its base was resized)")


def check_numpy_extent(arr: np.ndarray, what: str) -> None:
    """Refuse a numpy view reaching outside the memory that holds it, before numpy code of the
    binding reads it (a conversion copies every element: numpy does not check either)."""
    if not arr.size or _np_flags(arr).owndata:
        return
    owner = _memory_owner(arr)
    if owner is not None:
        plain = arr if type(arr) is np.ndarray else np.ndarray.view(arr, np.ndarray)
        _check_within(plain, _byte_strides_to_elements(plain.strides, plain.itemsize, what),
                      owner, what)


class _Array(Source):
    """A numpy array; a subclass is read as the plain array it holds."""

    __slots__ = ("obj", "keep", "code", "writable", "what", "owner")

    def __init__(self, obj: np.ndarray, keep: Any, code: Optional[int], writable: bool,
                 what: str) -> None:
        self.obj = obj
        self.keep = keep
        self.code = code
        self.writable = writable
        self.what = what
        # An array that owns its data lies within it (numpy sees to that); a view may not
        # (np.lib.stride_tricks.as_strided), so it is checked against its owner's memory.
        self.owner = None if _np_flags(obj).owndata else _memory_owner(obj)

    def view(self) -> View:
        obj, what = self.obj, self.what
        a = obj if type(obj) is np.ndarray else np.ndarray.view(obj, np.ndarray)
        if self.writable and not a.flags.writeable:
            raise _read_only(what, "the array")
        code = self.code if self.code is not None else _np_dtype_code(a.dtype, what)
        strides = _byte_strides_to_elements(a.strides, a.itemsize, what)
        t = N.Tensor()
        _fill(t, _np_address(a), code, N.DEVICE_CPU, 0, a.shape, strides, what)  # rank first
        if a.size and self.owner is not None:
            _check_within(a, strides, self.owner, what)
        return View(t, self.keep, self.keep)


class _Torch(Source):
    """A ``torch.Tensor`` or ``torch.nn.Parameter``."""

    __slots__ = ("t", "writable", "what")

    def __init__(self, t: Any, writable: bool, what: str) -> None:
        self.t, self.writable, self.what = t, writable, what

    def view(self) -> View:
        torch = _torch_module()
        with torch._C.DisableTorchFunction():  # a mode must not run code between reads
            return self._view(torch)

    def _view(self, torch: Any) -> View:
        x, what = self.t, self.what
        if x.is_nested or x.layout != torch.strided:
            raise UmfaError(Status.UNSUPPORTED, None,
                            f"{what}: only strided (dense) tensors are supported, not "
                            f"{'nested' if x.is_nested else x.layout} ones")
        code = _torch_dtype_code(x.dtype, what)
        dev = x.device
        if dev.type == "cpu":
            device, index = N.DEVICE_CPU, 0
        elif dev.type == "cuda":
            device, index = N.DEVICE_CUDA, dev.index if dev.index is not None else 0
        else:
            raise UmfaError(Status.DEVICE_MISMATCH, None,
                            f"{what}: tensors on '{dev.type}' are not supported (cpu, cuda)")
        if x.is_neg() or x.is_conj():
            raise UmfaError(Status.UNSUPPORTED, None,
                            f"{what}: a tensor with the {'negative' if x.is_neg() else 'conjugate'}"
                            " bit set stores other values than it shows; pass "
                            "t.resolve_neg() / t.resolve_conj()")
        storage = x.untyped_storage()
        if self.writable:
            check_torch_output(x, storage, what)
        shape, strides, ptr = tuple(x.shape), x.stride(), x.data_ptr()
        if x.numel():
            check_torch_extent(ptr, shape, strides, x.element_size(), storage, what)
        t = N.Tensor()
        _fill(t, ptr, code, device, index, shape, strides, what)
        return View(t, x, x)


def check_torch_output(x: Any, storage: Any, what: str) -> None:
    """Refuse outputs that writing in place would corrupt: tensors that require grad (while
    grad mode is on, as PyTorch's own ``out=`` arguments do), and CPU tensors whose memory is
    not torch's own resizable (or shared-memory) storage. PyTorch has no read-only tensors: a
    tensor made by ``torch.frombuffer`` over ``bytes`` or a read-only mapping looks writable,
    and writing to it corrupts an immutable object or crashes. Such storage is what
    ``torch.frombuffer``, ``torch.from_numpy``, ``torch.from_dlpack`` and memory-mapped files
    give, and what a tensor lent to numpy (``t.numpy()``) becomes; the owning object (a numpy
    array, a bytearray) says whether it may be written, so that is what to pass instead."""
    torch = _torch_module()
    if x.requires_grad and torch.is_grad_enabled():
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: the tensor requires grad; umfa writes outputs in place, which "
                        "autograd cannot track (use torch.no_grad() or a tensor without "
                        "requires_grad)")
    if x.device.type == "cpu" and not (storage.resizable() or storage.is_shared()):
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: the tensor's memory is not torch's own storage (torch."
                        "frombuffer, from_numpy, from_dlpack, a memory-mapped file, or a tensor "
                        "lent to numpy by .numpy()), and torch does not record whether it may "
                        "be written: pass the writable numpy array or buffer itself, or a "
                        "tensor torch allocated")


def check_torch_extent(ptr: int, shape: Sequence[int], strides: Sequence[int], itemsize: int,
                       storage: Any, what: str) -> None:
    """Refuse a (non-empty) tensor whose elements reach outside its storage, e.g. after
    ``t.untyped_storage().resize_(0)``."""
    lo, hi = byte_span(shape, strides, itemsize)
    start = storage.data_ptr()
    if not start or ptr + lo < start or ptr + hi > start + storage.nbytes():
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: the tensor reaches outside its storage ({storage.nbytes()} "
                        "bytes; resized or freed?)")


_TORCH_PLAIN: Optional[Tuple[type, ...]] = None


def _plain_tensor_types() -> Tuple[type, ...]:
    global _TORCH_PLAIN
    if _TORCH_PLAIN is None:
        torch = _torch_module()
        _TORCH_PLAIN = (torch.Tensor, torch.nn.Parameter)
    return _TORCH_PLAIN


def resolve(obj: Any, what: str, *, writable: bool = False, device_index: int = 0,
            stream: Optional[int] = None) -> Source:
    """Step one of making a view: everything that may run the caller's code (see the module
    docstring). ``writable`` marks outputs; ``device_index`` is used for
    ``__cuda_array_interface__`` objects, which do not say which GPU they live on."""
    if isinstance(obj, np.ndarray):
        return _Array(obj, obj, None, writable, what)
    if isinstance(obj, Reinterpreted):
        return _Array(obj.array, obj.array, obj.dtype_code, writable, what)
    if isinstance(obj, RawView):
        return _Frozen(obj.ptr, obj.dtype_code, obj.device, obj.device_index, obj.shape,
                       obj.strides, obj.owner, what)
    if is_torch_tensor(obj):
        if type(obj) not in _plain_tensor_types():
            raise UmfaError(Status.UNSUPPORTED, None,
                            f"{what}: tensor subclass {type(obj).__name__} is not supported "
                            "(pass a plain torch.Tensor, e.g. t.as_subclass(torch.Tensor), if "
                            "its memory holds what it shows)")
        return _Torch(obj, writable, what)
    if hasattr(obj, "__cuda_array_interface__"):
        return _resolve_cai(obj, what, writable, device_index)
    if hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__"):
        return _resolve_dlpack(obj, what, writable, stream)
    if writable:
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: outputs must be numpy arrays, torch tensors or objects with "
                        f"__cuda_array_interface__/__dlpack__, not {type(obj).__name__}")
    try:
        arr = np.asarray(obj)
    except Exception as exc:
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: cannot view a {type(obj).__name__} as a tensor") from exc
    if arr.dtype == object:
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: cannot view a {type(obj).__name__} as a tensor")
    return _Array(arr, (obj, arr), None, False, what)


def make_view(obj: Any, what: str, *, writable: bool = False, device_index: int = 0,
              stream: Optional[int] = None) -> View:
    """A :class:`View` of ``obj``: :func:`resolve` and :meth:`Source.view` in one (for a single
    argument; calls with several resolve them all before taking any view)."""
    return resolve(obj, what, writable=writable, device_index=device_index,
                   stream=stream).view()
