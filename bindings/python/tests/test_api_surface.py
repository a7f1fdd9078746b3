"""The public surface: every public function and method has a docstring and type hints, the
package ships py.typed, signatures match the APIs they mirror (FlashAttention's flash_attn_func,
PyTorch's scaled_dot_product_attention, the classic package), and the classic package's
helpers (MFABuffer, create_context, print_system_info) work."""

from __future__ import annotations

import ctypes
import inspect
from pathlib import Path

import numpy as np
import pytest

import umfa
from umfa import Status, UmfaError

from _ref import attention_ref


def _public_callables(module):
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj
        elif inspect.isclass(obj) and obj.__module__.startswith("umfa"):
            yield f"{module.__name__}.{name}", obj
            for attr, member in vars(obj).items():
                fn = member.fget if isinstance(member, property) else member
                if inspect.isfunction(fn) and (not attr.startswith("_") or attr == "__init__"):
                    yield f"{module.__name__}.{name}.{attr}", fn


def _modules():
    mods = [umfa]
    try:
        import umfa.torch as ut

        mods.append(ut)
    except ImportError:  # pragma: no cover - torch is optional
        pass
    return mods


def test_every_public_callable_is_documented_and_typed():
    missing = []
    for mod in _modules():
        for qualname, obj in _public_callables(mod):
            if not qualname.endswith("__init__") and not (obj.__doc__ or "").strip():
                missing.append(f"{qualname}: no docstring")
            if inspect.isclass(obj):
                continue
            sig = inspect.signature(obj)
            for p in sig.parameters.values():
                if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty:
                    missing.append(f"{qualname}({p.name}): no type hint")
            if sig.return_annotation is inspect.Signature.empty:
                missing.append(f"{qualname}: no return type")
    assert not missing, "\n".join(missing)


def test_py_typed_marker():
    assert (Path(umfa.__file__).parent / "py.typed").is_file()


def _params(fn):
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]


def test_signatures_mirror_the_originals():
    # FlashAttention 2's flash_attn_func / flash_attn_varlen_func, then umfa's return_lse.
    assert _params(umfa.flash_attn_func) == [
        ("q", inspect.Parameter.empty), ("k", inspect.Parameter.empty),
        ("v", inspect.Parameter.empty), ("dropout_p", 0.0), ("softmax_scale", None),
        ("causal", False), ("window_size", (-1, -1)), ("softcap", 0.0), ("alibi_slopes", None),
        ("deterministic", False), ("return_attn_probs", False), ("return_lse", False)]
    names = [n for n, _ in _params(umfa.flash_attn_varlen_func)]
    assert names[:7] == ["q", "k", "v", "cu_seqlens_q", "cu_seqlens_k", "max_seqlen_q",
                         "max_seqlen_k"]
    assert "block_table" in names and names[-1] == "return_lse"
    # The classic package.
    assert _params(umfa.flash_attention_forward) == [
        ("context", inspect.Parameter.empty), ("q", inspect.Parameter.empty),
        ("k", inspect.Parameter.empty), ("v", inspect.Parameter.empty), ("causal", False),
        ("input_precision", "fp16"), ("intermediate_precision", "fp16"),
        ("output_precision", None), ("softmax_scale", None)]
    assert isinstance(umfa.get_version(), tuple) and len(umfa.get_version()) == 3
    assert umfa.is_metal_available() is ("metal" in umfa.backends())
    torch = pytest.importorskip("torch")
    import umfa.torch as ut

    ours = _params(ut.scaled_dot_product_attention)
    theirs = [("query", inspect.Parameter.empty), ("key", inspect.Parameter.empty),
              ("value", inspect.Parameter.empty), ("attn_mask", None), ("dropout_p", 0.0),
              ("is_causal", False), ("scale", None), ("enable_gqa", False)]
    assert ours == theirs
    assert "enable_gqa" in (torch.nn.functional.scaled_dot_product_attention.__doc__ or "")


def test_classic_helpers():
    ctx = umfa.create_context()
    assert isinstance(ctx, umfa.MFAContext) and bool(ctx)
    with ctx as entered:
        assert entered is ctx
    assert not ctx

    # MFABuffer: wraps a contiguous array without a copy, or allocates zeroed bytes.
    with umfa.MFAContext() as ctx:
        a = np.arange(12, dtype=np.float32)
        with umfa.MFABuffer(ctx, a) as buf:
            assert buf and buf.contents_ptr() == a.ctypes.data  # the same memory
        assert not buf
        with pytest.raises(UmfaError) as e:
            buf.handle  # noqa: B018
        assert e.value.status == Status.INVALID_HANDLE
        owned = umfa.MFABuffer(ctx, size=64)
        view = (ctypes.c_uint8 * 64).from_address(owned.contents_ptr())
        assert bytes(view) == bytes(64)
        owned.close()
        owned.close()  # idempotent
        with pytest.raises(UmfaError) as e:
            umfa.MFABuffer(ctx, a[::2])
        assert e.value.status == Status.INVALID_ARGUMENT
        with pytest.raises(UmfaError):
            umfa.MFABuffer(ctx)
        with pytest.raises(UmfaError) as e:
            umfa.MFABuffer(ctx, size=0)  # the C call's MFA_ERROR_INVALID_ARGS
        assert e.value.status == Status.INVALID_ARGUMENT and "MFA" in str(e.value)


def test_classic_buffer_feeds_the_classic_c_call():
    # Code written for the classic package passes MFABuffer handles to mfa_attention_forward.
    lib = umfa._native.lib
    fn = lib.mfa_attention_forward
    fn.restype = ctypes.c_int
    c = ctypes
    fn.argtypes = [c.c_void_p] * 5 + [c.c_uint32] * 4 + [c.c_uint16, c.c_float, c.c_bool] + \
        [c.c_int] * 3 + [c.c_bool] * 4
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, n, 2, 8)).astype(np.float32) for n in (5, 7, 7))
    out = np.full_like(q, np.nan)
    with umfa.MFAContext() as ctx:
        bufs = [umfa.MFABuffer(ctx, x) for x in (q, k, v, out)]
        code = fn(ctx.handle, *(b.handle for b in bufs), 1, 5, 7, 2, 8, 0.0, True, 2, 2, 2,
                  False, False, False, False)
        for b in bufs:
            b.close()
    assert code == 0
    ref, _ = attention_ref(q, k, v, causal="top_left")
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-4)


def test_print_system_info(capsys):
    umfa.print_system_info()
    text = capsys.readouterr().out
    assert umfa.version_string() in text and umfa.library_path() in text and "cpu" in text
