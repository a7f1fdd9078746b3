"""Every conformance vector (conformance/manifest.json), run through the Python binding.

The vectors come from an independent float64 reference (conformance/reference.py). Each case
builds zero-copy strided views of the .npy files (permuted layouts included), NaN-fills the
outputs, runs forward (and backward for backward cases) through ``umfa.Context`` and compares
element by element with the case's own tolerances. The merge cases (``merge_cases``) load the
running result into writable arrays, merge every part into it with ``umfa.attention_merge`` and
compare likewise. Skips come from conformance_skips.txt and are reported with their reasons.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pytest

import umfa

CONF = Path(__file__).resolve().parents[3] / "conformance"
MANIFEST = CONF / "manifest.json"
SKIP_FILE = Path(__file__).resolve().parent / "conformance_skips.txt"


def _load_manifest() -> Dict[str, Any]:
    if not MANIFEST.is_file():
        return {"cases": []}
    m = json.loads(MANIFEST.read_text())
    assert m["format_version"] == 1, "unknown conformance manifest format"
    return m


def _load_skips() -> List[Tuple[str, str]]:
    out = []
    for line in SKIP_FILE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        out.append((parts[0], parts[1] if len(parts) > 1 else "no reason given"))
    return out


MAN = _load_manifest()
CASES = MAN["cases"]
MERGE_CASES = MAN.get("merge_cases", [])
SKIPS = _load_skips()


def skip_reason(case_id: str) -> Optional[str]:
    for pattern, reason in SKIPS:
        if pattern.endswith("*") and case_id.startswith(pattern[:-1]) or pattern == case_id:
            return reason
    return None


# numpy storage dtypes of each umfa dtype; bf16 and bool are reinterpreted raw memory.
_STORAGE = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16, "bool": np.uint8,
            "i32": np.int32}
_NAN_BITS = {"f32": np.float32(np.nan), "f16": np.float16(np.nan), "bf16": np.uint16(0x7FC0)}


def _inverse(perm: List[int]) -> List[int]:
    return [int(i) for i in np.argsort(perm)]


def _as_arg(arr: np.ndarray, dtype: str) -> Any:
    return umfa.reinterpret(arr, dtype) if dtype in ("bf16", "bool") else arr


def load_input(entry: Dict[str, Any]) -> Tuple[np.ndarray, Any]:
    """(storage array, argument for umfa): the logical view is a transpose, never a copy."""
    store = np.load(CONF / entry["file"])
    assert store.dtype == np.dtype(_STORAGE[entry["dtype"]]), entry
    logical = store.transpose(_inverse(entry["storage_order"]))
    assert list(logical.shape) == entry["shape"]
    assert [s // logical.itemsize for s in logical.strides] == entry["strides"] or \
        0 in entry["shape"]
    return store, _as_arg(logical, entry["dtype"])


def new_output(entry: Dict[str, Any]) -> Tuple[np.ndarray, Any]:
    """A NaN-filled output buffer in the entry's storage order and dtype, and its view."""
    dtype = entry["dtype"]
    store_shape = [entry["shape"][p] for p in entry["storage_order"]]
    store = np.full(store_shape, _NAN_BITS[dtype], dtype=_STORAGE[dtype])
    logical = store.transpose(_inverse(entry["storage_order"]))
    return store, _as_arg(logical, dtype)


def to_f32(store: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bf16":
        return (store.astype(np.uint32) << 16).view(np.float32)
    return store.astype(np.float32)


def compare(name: str, got: np.ndarray, expected: np.ndarray, tol: Dict[str, float]) -> float:
    """Assert the README's element rule; returns the largest |got - expected| (finite part)."""
    got = got.reshape(-1).astype(np.float64)
    exp = expected.reshape(-1).astype(np.float64)
    assert got.shape == exp.shape
    assert not np.isnan(got).any(), f"{name}: NaN in output ({np.isnan(got).sum()} elements)"
    neg_inf = np.isneginf(exp)
    assert np.all(np.isneginf(got[neg_inf])), f"{name}: expected -inf where the row is masked"
    fin = ~neg_inf
    err = np.abs(got[fin] - exp[fin])
    bound = tol["atol"] + tol["rtol"] * np.abs(exp[fin])
    bad = err > bound
    if bad.any():
        i = int(np.argmax(err - bound))
        pytest.fail(f"{name}: {int(bad.sum())}/{err.size} elements out of tolerance; worst "
                    f"|{got[fin][i]} - {exp[fin][i]}| = {err[i]:.3g} > {bound[i]:.3g}")
    return float(err.max()) if err.size else 0.0


def case_options(case: Dict[str, Any], keep: List[np.ndarray]) -> Dict[str, Any]:
    o = case["options"]
    kw: Dict[str, Any] = dict(
        mask_mode=int(o["mask_mode"]),
        softmax_scale=float(o["softmax_scale"]) or None,
        softcap=float(o["softcap"]),
        window_size=(int(o["window_left"]), int(o["window_right"])) if o["has_window"] else None,
        deterministic=bool(int(o["flags"]) & 1),
        max_seqlen_q=int(o["max_seqlen_q"]),
        max_seqlen_k=int(o["max_seqlen_k"]),
    )
    for name in ("attn_mask", "alibi_slopes", "cu_seqlens_q", "cu_seqlens_k"):
        if o.get(name) is not None:
            store, arg = load_input(o[name])
            keep.append(store)
            kw[name] = arg
    return kw


@pytest.fixture(scope="module")
def ctx():
    with umfa.Context("cpu") as c:
        yield c


def test_manifest_present():
    assert CASES, f"no conformance cases found at {MANIFEST}"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_vector(case: Dict[str, Any], ctx: umfa.Context) -> None:
    reason = skip_reason(case["id"])
    if reason:
        pytest.skip(f"{case['id']}: {reason}")
    keep: List[np.ndarray] = []
    opts = case_options(case, keep)
    ins = {n: load_input(e) for n, e in case["inputs"].items()}
    before = {n: s.copy() for n, (s, _) in ins.items()}
    exp = case["expected"]
    tol = case["tolerances"]

    out_store, out = new_output(exp["out"])
    lse_store, lse = new_output(exp["lse"])
    ctx.forward(ins["q"][1], ins["k"][1], ins["v"][1], out, lse, **opts)
    compare("out", to_f32(out_store, exp["out"]["dtype"]), np.load(CONF / exp["out"]["file"]),
            tol["out"])
    compare("lse", lse_store, np.load(CONF / exp["lse"]["file"]), tol["lse"])

    # Forward without lse gives the same out.
    out2_store, out2 = new_output(exp["out"])
    ctx.forward(ins["q"][1], ins["k"][1], ins["v"][1], out2, None, **opts)
    np.testing.assert_array_equal(out2_store.view(np.uint8), out_store.view(np.uint8))

    if case["backward"]:
        grads = {n: new_output(exp[n]) for n in ("dq", "dk", "dv")}
        ctx.backward(ins["q"][1], ins["k"][1], ins["v"][1], out, ins["dout"][1], lse,
                     grads["dq"][1], grads["dk"][1], grads["dv"][1], **opts)
        for n in ("dq", "dk", "dv"):
            compare(n, to_f32(grads[n][0], exp[n]["dtype"]), np.load(CONF / exp[n]["file"]),
                    tol[n])

    for n, (s, _) in ins.items():  # inputs untouched
        np.testing.assert_array_equal(s.view(np.uint8), before[n].view(np.uint8), err_msg=n)


def test_merge_manifest_present():
    assert MERGE_CASES, f"no merge cases found at {MANIFEST}"


@pytest.mark.parametrize("case", MERGE_CASES, ids=[c["id"] for c in MERGE_CASES])
def test_merge_vector(case: Dict[str, Any], ctx: umfa.Context) -> None:
    reason = skip_reason(case["id"])
    if reason:
        pytest.skip(f"{case['id']}: {reason}")
    # The running result: the input files themselves (np.load gives writable arrays).
    out_store, out = load_input(case["inputs"]["out"])
    lse_store, lse = load_input(case["inputs"]["lse"])
    parts = [(load_input(p["out"]), load_input(p["lse"])) for p in case["parts"]]
    before = [(o[0].copy(), l[0].copy()) for o, l in parts]
    for (_, part_out), (_, part_lse) in parts:
        umfa.attention_merge(out, lse, part_out, part_lse, context=ctx)
    exp, tol = case["expected"], case["tolerances"]
    compare("out", to_f32(out_store, exp["out"]["dtype"]), np.load(CONF / exp["out"]["file"]),
            tol["out"])
    compare("lse", lse_store, np.load(CONF / exp["lse"]["file"]), tol["lse"])
    for (o, l), (o0, l0) in zip(parts, before):  # parts untouched
        np.testing.assert_array_equal(o[0].view(np.uint8), o0.view(np.uint8))
        np.testing.assert_array_equal(l[0].view(np.uint8), l0.view(np.uint8))
