"""``umfa_attention_merge``: one partial attention result merged into a running one, in place."""

from __future__ import annotations

import ctypes
from typing import Any, Optional, Tuple

from . import _checks
from . import _native as N
from ._context import (Context, _attach_message_buffer, _bump_versions, _pinned_call,
                       default_context)
from ._native import Status, UmfaError
from ._views import is_torch_tensor, resolve

# None when the loaded libumfa predates the function (see _native.OPTIONAL).
_merge_fn = getattr(N.lib, "umfa_attention_merge", None)


def _torch_cuda_defaults(t: Any, context: Optional[Context],
                         stream: Optional[int]) -> Tuple[Context, int]:
    """For a CUDA torch tensor: the given context, else its device's default one; the given
    stream, else torch's current stream on that device."""
    import torch

    if context is None:
        index = t.device.index if t.device.index is not None else torch.cuda.current_device()
        context = default_context("cuda", index)
    if stream is None:
        stream = int(torch.cuda.current_stream(t.device).cuda_stream)
    return context, stream


def attention_merge(out: Any, lse: Any, part_out: Any, part_lse: Any, *,
                    context: Optional[Context] = None, stream: Optional[int] = None) -> None:
    """Merge a partial attention result into a running one, in place.

    Attention over keys split into parts is exactly the merge of the attention over each part:
    with ``(out_i, lse_i)`` the forward over key part ``i`` (``return_lse=True``), folding the
    parts in one call at a time, in any order, gives the attention over all keys. Per row and
    head::

        lse' = log(exp(lse) + exp(part_lse))
        out' = exp(lse - lse') * out + exp(part_lse - lse') * part_out

    A side whose LSE is ``-inf`` (a row that sees no key of that part) contributes nothing,
    whatever its ``out`` holds; both ``-inf`` give ``out' = 0``, ``lse' = -inf``. A running
    result may therefore start as ``lse = -inf`` with ``out`` uninitialized.

    Args:
        out, lse: the running result, written in place. ``out`` is ``[batch, seqlen, heads,
            head_dim]`` (BSHD; pass a BHSD tensor ``o`` as ``o.transpose(1, 2)``) and ``lse``
            ``[batch, heads, seqlen]`` float32, or for varlen results ``[total, heads,
            head_dim]`` and ``[heads, total]``. Any strides.
        part_out, part_lse: the partial result, same shapes (read only).
        context: the :class:`umfa.Context` to run on; default: the process-wide context of the
            tensors' device (the CPU for numpy arrays, the tensor's GPU for torch CUDA tensors).
            Memory described only by ``__cuda_array_interface__`` / DLPack needs a CUDA context.
        stream: CUDA stream (``cudaStream_t`` as an int); torch CUDA tensors default to torch's
            current stream of their device (with or without ``context``). Ignored on the CPU.

    ``out`` and ``part_out`` may be float32, float16 or bfloat16 (each its own). Arithmetic is
    float32, but ``out`` is rounded to its dtype by every call: keep a running ``out`` in float32
    when merging more than two parts. ``out`` and ``lse`` must not overlap each other or the
    part tensors. Arrays are numpy arrays, torch tensors (CPU or CUDA) or objects with
    ``__cuda_array_interface__`` / ``__dlpack__``; outputs must be writable (see
    :meth:`umfa.Context.forward`).

    Raises:
        UmfaError: with the core's status and message (nothing is written then), or
            ``UMFA_STATUS_UNSUPPORTED`` when the loaded libumfa predates this function.
    """
    if _merge_fn is None:
        raise UmfaError(Status.UNSUPPORTED, None,
                        f"the loaded libumfa ({N.library_path()}) has no umfa_attention_merge; "
                        "install a libumfa as new as this package")
    if is_torch_tensor(out) and out.device.type == "cuda":
        context, stream = _torch_cuda_defaults(out, context, stream)
    elif context is None:
        context = default_context("cpu")
    opts = N.MergeOptions()
    opts.struct_size = ctypes.sizeof(N.MergeOptions)
    opts.stream = _checks.pointer(stream, "stream") or None
    di = context.device_index
    # Every argument is resolved (which may run the caller's code) before any view is taken;
    # None passes NULL, for the core to report.
    sources = [None if x is None else
               resolve(x, name, writable=writable, device_index=di, stream=opts.stream)
               for x, name, writable in ((out, "out", True), (lse, "lse", True),
                                         (part_out, "part_out", False),
                                         (part_lse, "part_lse", False))]
    views = [None if s is None else s.view() for s in sources]
    message = _attach_message_buffer(opts)
    _pinned_call(context._native, _merge_fn, ctypes.byref(opts),
                 [None if v is None else ctypes.byref(v.tensor) for v in views], message)
    _bump_versions(out, lse)
