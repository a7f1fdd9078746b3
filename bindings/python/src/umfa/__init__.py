"""umfa: flash attention through one C library (libumfa), for numpy and PyTorch.

The package loads the libumfa shared library it bundles (or the one in ``UMFA_LIB_DIR``) and
checks its ABI version at import.

Classic API (Universal Metal Flash Attention's Python package)::

    import numpy as np, umfa
    q = np.random.randn(128, 64).astype(np.float32)
    out = umfa.attention(q, q, q, causal=True)

FlashAttention-style API (numpy arrays or torch tensors, BSHD layout)::

    out, lse = umfa.flash_attn_func(q4, k4, v4, causal=True, return_lse=True)
    umfa.attention_merge(out, lse, part_out, part_lse)   # fold in a result over other keys

PyTorch (``import umfa.torch``): ``umfa.torch.scaled_dot_product_attention`` with
``torch.nn.functional.scaled_dot_product_attention``'s contract, and ``umfa.torch.patch()`` to
route that function through umfa.
"""

from ._native import ABI_VERSION, Status, UmfaError, library_path
from ._views import Reinterpreted, reinterpret
from ._context import Context, default_context, attention_options
from ._merge import attention_merge
from ._api import (
    MFABuffer,
    MFAContext,
    abi_version,
    attention,
    backends,
    build_info,
    create_context,
    flash_attention_forward,
    flash_attn_func,
    flash_attn_varlen_func,
    get_version,
    is_metal_available,
    print_system_info,
    version_string,
)

__version__ = "0.1.0"

#: Alias kept for code written against the classic package.
MFAError = UmfaError

__all__ = [
    "ABI_VERSION",
    "Context",
    "MFABuffer",
    "MFAContext",
    "MFAError",
    "Status",
    "UmfaError",
    "__version__",
    "abi_version",
    "attention",
    "attention_merge",
    "attention_options",
    "backends",
    "build_info",
    "create_context",
    "default_context",
    "flash_attention_forward",
    "flash_attn_func",
    "flash_attn_varlen_func",
    "get_version",
    "is_metal_available",
    "library_path",
    "print_system_info",
    "reinterpret",
    "Reinterpreted",
    "version_string",
]
