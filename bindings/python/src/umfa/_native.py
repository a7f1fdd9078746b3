"""Loading libumfa and describing its C ABI (``include/umfa.h``) to ctypes.

Nothing here is public API except :class:`UmfaError`, :class:`Status` and :func:`library_path`
(re-exported from :mod:`umfa`). The structures below mirror the header field for field; a test
compiles a small C program against the header and compares sizes and offsets.
"""

from __future__ import annotations

import ctypes
import enum
import os
import platform
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

#: The ABI version this package was written for (``UMFA_ABI_VERSION`` in umfa.h).
ABI_VERSION = 1

# ----------------------------------------------------------------------------------------------
# Status codes and errors
# ----------------------------------------------------------------------------------------------


class Status(enum.IntEnum):
    """The ``UMFA_STATUS_*`` codes of the C ABI."""

    OK = 0
    NULL_CONTEXT = 1
    NULL_POINTER = 2
    INVALID_ARGUMENT = 3
    INVALID_RANK = 4
    SHAPE_MISMATCH = 5
    HEADS_NOT_DIVISIBLE = 6
    HEAD_DIM_OUT_OF_RANGE = 7
    INVALID_STRIDE = 8
    UNSUPPORTED_DTYPE = 9
    DEVICE_MISMATCH = 10
    STRUCT_VERSION = 11
    SIZE_OVERFLOW = 12
    OUT_OF_MEMORY = 13
    BACKEND_UNAVAILABLE = 14
    UNSUPPORTED = 15
    BACKEND_ERROR = 16
    WORKSPACE_LIMIT = 17
    INVALID_SEQLENS = 18
    INVALID_HANDLE = 19
    INTERNAL = 20


def status_name(status: int) -> str:
    """``UMFA_STATUS_<NAME>`` for a known status code, ``UMFA_STATUS_<code>`` otherwise."""
    try:
        return "UMFA_STATUS_" + Status(status).name
    except ValueError:
        return f"UMFA_STATUS_{int(status)}"


class UmfaError(RuntimeError):
    """An error reported by libumfa (or detected by the binding before calling it).

    Attributes:
        status: the ``UMFA_STATUS_*`` code (an int; compare with :class:`umfa.Status`).
        name: the status' name, e.g. ``"UMFA_STATUS_SHAPE_MISMATCH"``.
        message: the library's message for the failure (the call's own for attention calls,
            else ``umfa_last_error``).
    """

    def __init__(self, status: int, name: Optional[str] = None, message: str = "") -> None:
        self.status: int = int(status)
        self.name: str = name if name is not None else status_name(status)
        self.message: str = message
        super().__init__(f"{self.name}: {message}" if message else self.name)

    def __reduce__(self):  # keep the three fields through pickling (multiprocessing, etc.)
        return (type(self), (self.status, self.name, self.message))


# ----------------------------------------------------------------------------------------------
# Constants (mirrors of the header's enums)
# ----------------------------------------------------------------------------------------------

BACKEND_AUTO, BACKEND_CPU, BACKEND_CUDA, BACKEND_METAL = 0, 1, 2, 3
DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_BOOL, DTYPE_I32 = 0, 1, 2, 3, 4
DEVICE_CPU, DEVICE_CUDA = 0, 1
MAX_RANK = 4
MAX_HEAD_DIM = 256
MASK_NONE, MASK_CAUSAL_TOP_LEFT, MASK_CAUSAL_BOTTOM_RIGHT = 0, 1, 2
FLAG_DETERMINISTIC = 1
BACKEND_FLAG_FORWARD, BACKEND_FLAG_BACKWARD = 1, 2
MFA_PRECISION_FP16, MFA_PRECISION_BF16, MFA_PRECISION_FP32 = 0, 1, 2

DTYPE_NAMES = {DTYPE_F32: "f32", DTYPE_F16: "f16", DTYPE_BF16: "bf16", DTYPE_BOOL: "bool",
               DTYPE_I32: "i32"}
DTYPE_SIZES = {DTYPE_F32: 4, DTYPE_F16: 2, DTYPE_BF16: 2, DTYPE_BOOL: 1, DTYPE_I32: 4}

# ----------------------------------------------------------------------------------------------
# Structures
# ----------------------------------------------------------------------------------------------


class ContextOptions(ctypes.Structure):
    """``umfa_context_options``."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("backend", ctypes.c_uint32),
        ("device_index", ctypes.c_int32),
        ("num_threads", ctypes.c_int32),
        ("workspace_limit_bytes", ctypes.c_uint64),
    ]


class Tensor(ctypes.Structure):
    """``umfa_tensor``: a strided view (strides in elements)."""

    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int32),
        ("device", ctypes.c_int32),
        ("device_index", ctypes.c_int32),
        ("rank", ctypes.c_int32),
        ("shape", ctypes.c_int64 * MAX_RANK),
        ("strides", ctypes.c_int64 * MAX_RANK),
    ]


class AttentionOptions(ctypes.Structure):
    """``umfa_attention_options``."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("mask_mode", ctypes.c_uint32),
        ("softmax_scale", ctypes.c_float),
        ("softcap", ctypes.c_float),
        ("has_window", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("window_left", ctypes.c_int64),
        ("window_right", ctypes.c_int64),
        ("attn_mask", ctypes.POINTER(Tensor)),
        ("alibi_slopes", ctypes.POINTER(Tensor)),
        ("cu_seqlens_q", ctypes.POINTER(Tensor)),
        ("cu_seqlens_k", ctypes.POINTER(Tensor)),
        ("max_seqlen_q", ctypes.c_int64),
        ("max_seqlen_k", ctypes.c_int64),
        ("stream", ctypes.c_void_p),
        ("error_message", ctypes.c_char_p),
        ("error_message_capacity", ctypes.c_uint64),
    ]


class MergeOptions(ctypes.Structure):
    """``umfa_merge_options``."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("stream", ctypes.c_void_p),
        ("error_message", ctypes.c_char_p),
        ("error_message_capacity", ctypes.c_uint64),
    ]


# ----------------------------------------------------------------------------------------------
# Finding and loading the library
# ----------------------------------------------------------------------------------------------


def platform_dir() -> str:
    """The ``dist/native/<os>-<arch>`` folder name for this machine (e.g. ``linux-x64``)."""
    system = {"darwin": "darwin", "windows": "win32"}.get(platform.system().lower(),
                                                            platform.system().lower())
    machine = platform.machine().lower()
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(machine,
                                                                                        machine)
    return f"{system}-{arch}"


def library_names() -> List[str]:
    """File names libumfa may have on this platform, best first."""
    if sys.platform == "darwin":
        return [f"libumfa.{ABI_VERSION}.dylib", "libumfa.dylib"]
    if sys.platform == "win32":
        return ["umfa.dll", f"umfa-{ABI_VERSION}.dll", "libumfa.dll"]
    return [f"libumfa.so.{ABI_VERSION}", "libumfa.so"]


def _repo_dist_dirs() -> List[Path]:
    """``dist/native/<platform>/lib`` of the source checkout this file sits in, if any."""
    found = []
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "dist" / "native" / platform_dir() / "lib"
        if (parent / "include" / "umfa.h").is_file() or candidate.is_dir():
            found.append(candidate)
            break
    return found


def candidate_dirs() -> List[Tuple[str, Path]]:
    """Folders searched for libumfa, in order, each with where it came from."""
    dirs: List[Tuple[str, Path]] = []
    env = os.environ.get("UMFA_LIB_DIR")
    if env:
        dirs.append(("UMFA_LIB_DIR", Path(env)))
    dirs.append(("package", Path(__file__).resolve().parent / "_lib"))
    for d in _repo_dist_dirs():
        dirs.append(("source checkout", d))
    return dirs


#: Handles from os.add_dll_directory (Windows), kept so the folders stay on the search path.
_DLL_DIRECTORIES: List[object] = []


def _load() -> Tuple[ctypes.CDLL, str]:
    tried: List[str] = []
    for origin, folder in candidate_dirs():
        for name in library_names():
            path = folder / name
            if not path.exists():
                tried.append(f"{path} ({origin}: not found)")
                continue
            try:
                if sys.platform == "win32" and hasattr(os, "add_dll_directory"):
                    # The library's folder joins the DLL search path for what umfa.dll loads
                    # later (the CUDA backend umfa_cuda.dll and its runtime sit next to it).
                    _DLL_DIRECTORIES.append(os.add_dll_directory(str(folder.resolve())))
                return ctypes.CDLL(str(path)), str(path)
            except OSError as exc:  # present but unloadable: say why, keep looking
                tried.append(f"{path} ({origin}: {exc})")
    raise ImportError(
        "umfa: could not load the native library libumfa. Tried:\n  "
        + "\n  ".join(tried)
        + "\nSet UMFA_LIB_DIR to the folder holding libumfa, or install a umfa wheel "
        "(which bundles it)."
    )


#: Functions a libumfa of ABI version 1 may lack (added after its first release).
OPTIONAL = frozenset(("umfa_attention_merge",))


def _declare(lib: ctypes.CDLL) -> None:
    c = ctypes
    P = c.POINTER
    ctx_p = c.c_void_p
    sigs = {
        "umfa_version": (c.c_uint32, []),
        "umfa_version_string": (c.c_char_p, []),
        "umfa_abi_version": (c.c_uint32, []),
        "umfa_status_string": (c.c_char_p, [c.c_int32]),
        "umfa_context_create": (c.c_int32, [P(ContextOptions), P(ctx_p)]),
        "umfa_context_destroy": (None, [ctx_p]),
        "umfa_context_backend": (c.c_int32, [ctx_p, P(c.c_uint32)]),
        "umfa_context_num_threads": (c.c_int32, [ctx_p, P(c.c_int32)]),
        "umfa_last_error": (c.c_char_p, [ctx_p]),
        "umfa_backend_available": (c.c_int32, [c.c_uint32, P(c.c_int32), P(c.c_int32)]),
        "umfa_build_info": (c.c_char_p, []),
        "umfa_tensor_init_contiguous": (c.c_int32, [P(Tensor), c.c_void_p, c.c_int32, c.c_int32,
                                                    P(c.c_int64)]),
        "umfa_dtype_size": (c.c_uint32, [c.c_int32]),
        "umfa_attention_forward": (c.c_int32, [ctx_p, P(AttentionOptions), P(Tensor), P(Tensor),
                                               P(Tensor), P(Tensor), P(Tensor)]),
        "umfa_attention_backward": (c.c_int32, [ctx_p, P(AttentionOptions), P(Tensor), P(Tensor),
                                                P(Tensor), P(Tensor), P(Tensor), P(Tensor),
                                                P(Tensor), P(Tensor), P(Tensor)]),
        "umfa_attention_merge": (c.c_int32, [ctx_p, P(MergeOptions), P(Tensor), P(Tensor),
                                             P(Tensor), P(Tensor)]),
        "umfa_buffer_create": (c.c_int32, [ctx_p, c.c_uint64, P(c.c_void_p)]),
        "umfa_buffer_wrap": (c.c_int32, [ctx_p, c.c_void_p, c.c_uint64, P(c.c_void_p)]),
        "umfa_buffer_destroy": (None, [c.c_void_p]),
        "umfa_buffer_size": (c.c_int32, [c.c_void_p, P(c.c_uint64)]),
        "umfa_buffer_data": (c.c_int32, [c.c_void_p, P(c.c_void_p)]),
        "umfa_buffer_device": (c.c_int32, [c.c_void_p, P(c.c_int32)]),
        "umfa_buffer_contents": (c.c_int32, [c.c_void_p, P(c.c_void_p)]),
        "umfa_buffer_upload": (c.c_int32, [c.c_void_p, c.c_uint64, c.c_void_p, c.c_uint64]),
        "umfa_buffer_download": (c.c_int32, [c.c_void_p, c.c_uint64, c.c_void_p, c.c_uint64]),
        "mfa_create_context": (c.c_int, [P(c.c_void_p)]),
        "mfa_destroy_context": (None, [c.c_void_p]),
        "mfa_error_string": (c.c_char_p, [c.c_int]),
        "mfa_is_device_supported": (c.c_bool, []),
        "mfa_get_version": (None, [P(c.c_int), P(c.c_int), P(c.c_int)]),
    }
    missing = []
    for name, (restype, argtypes) in sigs.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    # Functions added after the first release (OPTIONAL) may be missing from an older
    # libumfa: the package loads, and the function that needs one raises UNSUPPORTED.
    core = [n for n in missing if n not in OPTIONAL and (
            n.startswith("umfa_version") or n == "umfa_abi_version"
            or n.startswith("umfa_attention") or n.startswith("umfa_context")
            or n == "umfa_last_error")]
    if core:
        raise ImportError(f"umfa: libumfa at {_path} lacks required symbols: {', '.join(core)}")


_path = "<not loaded>"
lib, _path = _load()

# The ABI version first: a library of another ABI may lack (or change) everything else.
try:
    lib.umfa_abi_version.restype = ctypes.c_uint32
    lib.umfa_abi_version.argtypes = []
except AttributeError:
    raise ImportError(f"umfa: {_path} is not libumfa (no umfa_abi_version symbol)") from None
_abi = int(lib.umfa_abi_version())
if _abi != ABI_VERSION:
    raise ImportError(
        f"umfa: libumfa at {_path} implements ABI version {_abi}, but this umfa Python package "
        f"was written for ABI version {ABI_VERSION}. Install matching versions (or point "
        "UMFA_LIB_DIR at a matching library)."
    )
_declare(lib)


def library_path() -> str:
    """Absolute path of the libumfa shared library this process loaded."""
    return _path


def last_error(ctx: Optional[int]) -> str:
    """``umfa_last_error(ctx)`` decoded (ctx None = this thread's last failure)."""
    msg = lib.umfa_last_error(ctx)
    return msg.decode("utf-8", "replace") if msg else ""


def check(status: int, ctx: Optional[int]) -> None:
    """Raise :class:`UmfaError` for a non-OK status, with the context's last message."""
    if status != 0:
        raise UmfaError(status, status_name(status), last_error(ctx))


def tensor_ptr(t: Optional[Tensor]):
    """``ctypes.byref`` of a tensor view, or None."""
    return None if t is None else ctypes.byref(t)


def int64_array(values: Sequence[int]):
    """A ``int64_t[len(values)]`` ctypes array."""
    return (ctypes.c_int64 * len(values))(*values)
