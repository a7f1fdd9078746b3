"""Turning array objects into ``umfa_tensor`` views without copying their data.

Accepted, in this order:

* :class:`numpy.ndarray` — data pointer and strides from the array itself (``bfloat16`` through
  the ``ml_dtypes`` dtype when that package is installed);
* :class:`torch.Tensor` — ``data_ptr()`` and ``stride()`` (CPU and CUDA tensors);
* objects with ``__cuda_array_interface__`` (CuPy, Numba, ...): device pointer and strides;
* objects with ``__dlpack__``: the DLPack capsule is read in place (never consumed, so its
  producer keeps ownership and frees it when the capsule is collected);
* anything else numpy can view without a copy (buffer protocol, ``__array_interface__``).

Strides are passed through as they are (negative or broadcast strides included): the core
validates them once. Only what a ``umfa_tensor`` cannot express at all (rank > 4, strides that
are not a whole number of elements, element types umfa does not know) is rejected here, with the
status the core would use.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

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


_capsule_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_get_pointer.restype = ctypes.c_void_p
_capsule_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]

_DL_CPU, _DL_CUDA, _DL_CUDA_HOST, _DL_CUDA_MANAGED = 1, 2, 3, 13
_DL_INT, _DL_UINT, _DL_FLOAT, _DL_BFLOAT, _DL_BOOL = 0, 1, 2, 4, 6


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


def _from_dlpack(obj: Any, t: N.Tensor, what: str, stream: Optional[int]) -> Any:
    dev_type, dev_id = obj.__dlpack_device__()
    if dev_type in (_DL_CUDA, _DL_CUDA_MANAGED):
        # Ask the producer to make the data ready on the stream the call will run on.
        try:
            capsule = obj.__dlpack__(stream=stream if stream is not None else 1)
        except TypeError:
            capsule = obj.__dlpack__()
    else:
        capsule = obj.__dlpack__()
    addr = _capsule_get_pointer(capsule, b"dltensor")
    managed = _DLManagedTensor.from_address(addr)
    dl = managed.dl_tensor
    ndim = int(dl.ndim)
    shape = [int(dl.shape[i]) for i in range(ndim)]
    strides = ([int(dl.strides[i]) for i in range(ndim)] if dl.strides
               else _contiguous_strides(shape))
    dtype = _dlpack_dtype(dl.dtype.code, dl.dtype.bits, dl.dtype.lanes, what)
    ptr = (dl.data or 0) + int(dl.byte_offset)
    if dl.device.device_type in (_DL_CPU, _DL_CUDA_HOST):
        device, index = N.DEVICE_CPU, 0
    elif dl.device.device_type in (_DL_CUDA, _DL_CUDA_MANAGED):
        device, index = N.DEVICE_CUDA, int(dl.device.device_id)
    else:
        raise UmfaError(Status.DEVICE_MISMATCH, None,
                        f"{what}: DLPack device type {dl.device.device_type} is not supported")
    _fill(t, ptr, dtype, device, index, shape, strides, what)
    # The capsule is not consumed: keeping it alive keeps the memory alive; when it is collected
    # its own destructor returns the tensor to the producer.
    return capsule


# --- CUDA array interface ----------------------------------------------------------------------

_CAI_TYPES = {"f4": N.DTYPE_F32, "f2": N.DTYPE_F16, "b1": N.DTYPE_BOOL, "i4": N.DTYPE_I32}


def _from_cai(obj: Any, t: N.Tensor, what: str, device_index: int) -> None:
    cai = obj.__cuda_array_interface__
    typestr = cai["typestr"]
    if typestr[0] == ">":
        raise UmfaError(Status.UNSUPPORTED_DTYPE, None, f"{what}: big-endian {typestr}")
    code = _CAI_TYPES.get(typestr[1:])
    if code is None:
        raise UmfaError(Status.UNSUPPORTED_DTYPE, None,
                        f"{what}: __cuda_array_interface__ typestr {typestr} is not supported")
    shape = [int(s) for s in cai["shape"]]
    itemsize = N.DTYPE_SIZES[code]
    strides = (_byte_strides_to_elements(cai["strides"], itemsize, what)
               if cai.get("strides") is not None else _contiguous_strides(shape))
    ptr = int(cai["data"][0] or 0)
    _fill(t, ptr, code, N.DEVICE_CUDA, device_index, shape, strides, what)


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


# --- the entry point ---------------------------------------------------------------------------


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


def make_view(obj: Any, what: str, *, writable: bool = False, device_index: int = 0,
              stream: Optional[int] = None) -> View:
    """A :class:`View` of ``obj`` (see the module docstring for what is accepted).

    ``writable`` rejects read-only numpy arrays (outputs). ``device_index`` is used for
    ``__cuda_array_interface__`` objects, which do not say which GPU they live on.
    """
    t = N.Tensor()
    if isinstance(obj, np.ndarray):
        if writable and not obj.flags.writeable:
            raise UmfaError(Status.INVALID_ARGUMENT, None, f"{what}: the array is read-only")
        code = _np_dtype_code(obj.dtype, what)
        strides = _byte_strides_to_elements(obj.strides, obj.itemsize, what)
        _fill(t, int(obj.__array_interface__["data"][0] or 0), code, N.DEVICE_CPU, 0,
              obj.shape, strides, what)
        return View(t, obj, obj)
    if isinstance(obj, RawView):
        _fill(t, obj.ptr, obj.dtype_code, obj.device, obj.device_index, obj.shape, obj.strides,
              what)
        return View(t, obj.owner, obj)
    if isinstance(obj, Reinterpreted):
        a = obj.array
        if writable and not a.flags.writeable:
            raise UmfaError(Status.INVALID_ARGUMENT, None, f"{what}: the array is read-only")
        strides = _byte_strides_to_elements(a.strides, a.itemsize, what)
        _fill(t, int(a.__array_interface__["data"][0] or 0), obj.dtype_code, N.DEVICE_CPU, 0,
              a.shape, strides, what)
        return View(t, a, a)
    if is_torch_tensor(obj):
        torch = _torch_module()
        if obj.is_nested or obj.layout != torch.strided:
            raise UmfaError(Status.UNSUPPORTED, None,
                            f"{what}: only strided (dense) tensors are supported, not "
                            f"{'nested' if obj.is_nested else obj.layout} ones")
        code = _torch_dtype_code(obj.dtype, what)
        dev = obj.device
        if dev.type == "cpu":
            device, index = N.DEVICE_CPU, 0
        elif dev.type == "cuda":
            device, index = N.DEVICE_CUDA, dev.index if dev.index is not None else 0
        else:
            raise UmfaError(Status.DEVICE_MISMATCH, None,
                            f"{what}: tensors on '{dev.type}' are not supported (cpu, cuda)")
        _fill(t, int(obj.data_ptr()), code, device, index, obj.shape, obj.stride(), what)
        return View(t, obj, obj)
    if hasattr(obj, "__cuda_array_interface__"):
        _from_cai(obj, t, what, device_index)
        return View(t, obj, obj)
    if hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__"):
        capsule = _from_dlpack(obj, t, what, stream)
        return View(t, (obj, capsule), obj)
    if writable:
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: outputs must be numpy arrays, torch tensors or objects with "
                        f"__cuda_array_interface__/__dlpack__, not {type(obj).__name__}")
    try:
        arr = np.asarray(obj)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: cannot view a {type(obj).__name__} as a tensor") from exc
    if arr.dtype == object:
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"{what}: cannot view a {type(obj).__name__} as a tensor")
    return make_view(arr, what, writable=writable)
