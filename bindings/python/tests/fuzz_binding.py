"""A bounded random search for hostile-but-legal Python calls into umfa.

Each case is a JSON-able description (so a finding can be kept and replayed): which entry point
(``Context.forward``/``backward``, ``flash_attn_func``, ``flash_attn_varlen_func``,
``umfa.torch.scaled_dot_product_attention``), the problem's dimensions, and for every array how
it is made: container (numpy, torch, DLPack or CUDA-array-interface wrappers,
``__array_interface__`` objects, bfloat16 reinterpreted from uint16, torch tensors over
``bytes``, parameters, subclasses, meta/sparse/negative-bit tensors), dtype, layout (permuted,
padded, reversed, broadcast, self-overlapping, reaching past its memory, storage shrunk after
creation), read-only or not, and whether it starts at or overlaps another argument (option
tensors included). Options take in-range, boundary and out-of-range values of every type, and a
*hostile hook* can run caller code from an option's ``__index__``/``__float__``/``__len__`` or
an array protocol (``__dlpack__``, ``__array_interface__``) in the middle of the call: close the context, free or swap a tensor's storage, make an
output read-only or require grad, make a nested call, raise.

Every array lives in an *arena*, a byte buffer with random guard bytes around (and between) its
elements. After each call:

* the call either returned, or raised :class:`umfa.UmfaError` (or the exception a hook raised);
  any other exception is a finding;
* bytes outside the output views are unchanged (inputs, guards, holes of strided outputs), and
  after a refusal no byte changed at all;
* a call the case marks as one that must be refused (a read-only output, an out-of-range
  option, a closed context, ...) was refused, and a clean call was not;
* the results of a clean call match the float64 reference (``conformance/reference.py``) within
  the conformance tolerances.

Crashes and hangs are caught by running the search in a child process: the case being executed
is written to a file first, and a watchdog (``faulthandler``) ends a case that runs too long.

Command line::

    python bindings/python/tests/fuzz_binding.py --seconds 60 [--seed N] [--save-findings]

replays the corpus (``fuzz_corpus/*.json``), then searches for ``--seconds``; prints one JSON
summary line (executions, outcomes, findings) and exits 1 when there were findings.
"""

from __future__ import annotations

import argparse
import copy
import faulthandler
import gc
import hashlib
import json
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
CORPUS = HERE / "fuzz_corpus"
if os.environ.get("UMFA_TEST_INSTALLED") != "1":
    sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(REPO / "conformance"))

import reference  # noqa: E402  (conformance/reference.py: float64, independent of the core)
import umfa  # noqa: E402
from umfa import UmfaError  # noqa: E402

try:
    import torch  # noqa: E402

    torch.set_num_threads(1)
    import umfa.torch as umfa_torch  # noqa: E402
except ImportError:  # the search runs without torch, on numpy containers only
    torch = None
    umfa_torch = None

# ---------------------------------------------------------------------------------------------
# Case generation
# ---------------------------------------------------------------------------------------------

FLOAT_DTYPES = ("f32", "f16", "bf16")
OUTPUTS = {"forward": ("out", "lse"), "backward": ("dq", "dk", "dv")}
TOLERANCES = {  # conformance/README.md, "Tolerances": (atol, rtol)
    "f32": {"out": (1e-5, 1e-4), "lse": (1e-5, 1e-5), "grad": (5e-5, 5e-4)},
    "f16": {"out": (2e-3, 4e-3), "lse": (1e-4, 1e-4), "grad": (1e-2, 1e-2)},
    "bf16": {"out": (1.6e-2, 3.2e-2), "lse": (1e-4, 1e-4), "grad": (8e-2, 8e-2)},
}
HOSTILE_ACTIONS = ("close", "free", "swap", "readonly", "grad", "nested", "gc", "raise")


class Rng:
    """numpy's Generator with the few helpers the generator needs."""

    def __init__(self, seed: int) -> None:
        self.g = np.random.default_rng(seed)

    def chance(self, p: float) -> bool:
        return bool(self.g.random() < p)

    def pick(self, items: Any) -> Any:
        items = list(items)
        return items[int(self.g.integers(len(items)))]

    def int(self, lo: int, hi: int) -> int:
        return int(self.g.integers(lo, hi + 1))


def _tensor_spec(container: str = "numpy") -> Dict[str, Any]:
    return {"container": container, "dtype": None, "shape": None, "layout": "contiguous",
            "readonly": False, "alias": None}


# Option values: ("ok" | "refuse", encoded value). Encoded values are JSON: numbers, strings,
# lists, None, and {"np": type, "v": value} for numpy scalars.
def _option_values(name: str, rng: Rng, dims: Dict[str, int]) -> Tuple[str, Any]:
    good = {
        "mask_mode": [None, "none", "causal_top_left", "causal_bottom_right", "top_left",
                      "bottom_right", 0, 1, 2, True, False, {"np": "uint8", "v": 2}],
        "softmax_scale": [None, 0.3, 1.7, -0.5, 2, {"np": "float64", "v": 0.125}, 1e-30],
        "softcap": [0.0, 0, 1.5, 30.0, {"np": "float32", "v": 5.0}],
        "window_size": [None, [-1, -1], [rng.int(0, 6), rng.int(0, 6)], [rng.int(0, 6), -1],
                        [-1, rng.int(0, 6)], [2 ** 63 - 1, 0], [-(2 ** 63), 3],
                        [{"np": "int64", "v": 2}, {"np": "int32", "v": 1}]],
        "deterministic": [True, False, 0, 1, {"np": "bool", "v": True}],
        "stream": [None, 0, 2 ** 64 - 1],
    }
    bad = {
        "mask_mode": [3, -1, 2 ** 32, 2 ** 32 + 1, 1.5, "causal", [1]],
        "softmax_scale": [0.0, float("nan"), float("inf"), 1e39, -1e39, 1e-50, "1", True],
        "softcap": [-1.0, float("nan"), float("inf"), 1e39, 1e-50, "2", True],
        "window_size": [[2 ** 64 + 2, 0], [0, 2 ** 63], [-(2 ** 63) - 1, 0], [1.5, 0],
                        [True, 0], [1, 2, 3], 5, "ab", [None, 0]],
        "deterministic": [2, -1, "yes", 1.0],
        "stream": [-1, 2 ** 64, 1.5],
    }
    if rng.chance(0.8):
        return "ok", rng.pick(good[name])
    return "refuse", rng.pick(bad[name])


def _dims(rng: Rng) -> Dict[str, int]:
    hkv = rng.pick([1, 1, 2])
    d = rng.pick([8, 16, 32])
    return {"b": rng.int(1, 2), "sq": rng.int(1, 20), "sk": rng.int(1, 20),
            "hq": hkv * rng.pick([1, 2]), "hkv": hkv, "d": d, "dv": d}


def _cu_seqlens(rng: Rng, batch: int, total: int) -> List[int]:
    cuts = sorted(rng.int(0, total) for _ in range(batch - 1))
    return [0] + cuts + [total]


def generate(rng: Rng, containers: Tuple[str, ...]) -> Dict[str, Any]:
    """A random case (see the module docstring), with ``case["expect"]`` from :func:`judge`."""
    torch_ok = "torch" in containers
    api = rng.pick(["forward"] * 5 + ["backward"] * 3 + ["flash_attn_func", "varlen"]
                   + (["sdpa"] if torch_ok else []))
    case: Dict[str, Any] = {"api": api, "seed": rng.int(0, 2 ** 31), "threads": rng.pick([1, 2]),
                            "dims": _dims(rng), "dtype": rng.pick(FLOAT_DTYPES),
                            "varlen": None, "args": {}, "options": {}, "option_verdicts": {},
                            "hostile": None}
    dims = case["dims"]
    clean = rng.chance(0.3)
    varlen = api == "varlen" or (api in ("forward", "backward") and rng.chance(0.2))
    if varlen:
        batch = rng.int(1, 3)
        tq, tk = rng.int(0, 30), rng.int(0, 30)
        case["varlen"] = {"cu_q": _cu_seqlens(rng, batch, tq), "cu_k": _cu_seqlens(rng, batch, tk)}
    container = "torch" if api == "sdpa" else rng.pick(containers)
    if api in ("flash_attn_func", "varlen") and container == "numpy" and case["dtype"] == "bf16":
        case["dtype"] = "f16"  # numpy has no bfloat16
    roles = {"forward": ["q", "k", "v", "out", "lse"],
             "backward": ["q", "k", "v", "out", "dout", "lse", "dq", "dk", "dv"]}.get(
        api, ["q", "k", "v"])
    for role in roles:
        case["args"][role] = _tensor_spec(container)
    if api in ("forward", "backward") and case["dtype"] == "bf16" and container == "numpy":
        for role in ("q", "k", "v", "out", "dout", "dq", "dk", "dv"):
            if role in case["args"]:
                case["args"][role]["container"] = "reinterpret"
    if api == "forward" and rng.chance(0.3):
        case["args"]["lse"] = None  # optional
    names = ["mask_mode", "softmax_scale", "softcap", "window_size", "deterministic"]
    if api in ("forward", "backward"):
        names.append("stream")
    for name in names:
        if not rng.chance(0.35) or (api == "sdpa" and name in ("softcap", "window_size",
                                                               "deterministic")):
            continue
        verdict, value = _option_values(name, rng, dims)
        if clean and verdict == "refuse":
            continue
        if api in ("flash_attn_func", "varlen", "sdpa") and name == "mask_mode":
            verdict, value = "ok", rng.pick([True, False])  # their causal flag
        case["options"][name] = value
        case["option_verdicts"][name] = verdict
    if not varlen and api in ("forward", "backward") and rng.chance(0.25):
        shape = rng.pick([[dims["sk"]], [dims["sq"], dims["sk"]],
                          [1, dims["hq"], dims["sq"], dims["sk"]],
                          [dims["b"], 1, dims["sq"], dims["sk"]],
                          [dims["b"], dims["hq"], dims["sq"], dims["sk"]]])
        spec = _tensor_spec(container if container != "reinterpret" else "numpy")
        spec.update(dtype=rng.pick(["bool", "f32"]), shape=shape, base=shape)
        case["args"]["attn_mask"] = spec
    if api in ("forward", "backward", "flash_attn_func", "varlen") and rng.chance(0.2):
        spec = _tensor_spec(container if container in ("numpy", "torch") else "numpy")
        shape = [dims["hq"]] if varlen else rng.pick([[dims["hq"]], [dims["b"], dims["hq"]]])
        spec.update(dtype="f32", shape=shape, base=shape)
        case["args"]["alibi_slopes"] = spec
    if varlen and api in ("forward", "backward"):
        for side in ("q", "k"):
            spec = _tensor_spec(container if container in ("numpy", "torch") else "numpy")
            spec["dtype"] = "i32"
            case["args"][f"cu_seqlens_{side}"] = spec
        if rng.chance(0.3):
            case["options"]["max_seqlen_q"] = rng.pick([0, 30, 2 ** 63 - 1, 1])
            case["option_verdicts"]["max_seqlen_q"] = "either"  # may be below the longest
    if not clean:
        for _ in range(rng.int(1, 2)):
            _mutate(case, rng)
        if rng.chance(0.3):
            _add_hook(case, rng)
    case["expect"] = judge(case)
    return case


def _shape_of(case: Dict[str, Any], role: str) -> List[int]:
    spec = case["args"][role]
    if spec["shape"] is not None:
        return spec["shape"]
    return spec.get("base") or _logical_shape(case, role)


def _has_empty_tensor(case: Dict[str, Any]) -> bool:
    return any(0 in _shape_of(case, r) for r in _present(case))


def _present(case: Dict[str, Any]) -> List[str]:
    return [r for r, s in case["args"].items() if s is not None]


REQUIRED = {"forward": ("q", "k", "v", "out"),
            "backward": ("q", "k", "v", "out", "dout", "lse", "dq", "dk", "dv")}
REFUSED_CONTAINERS = ("cai", "subclass", "meta", "sparse", "negbit")
ARENA_CONTAINERS = ("numpy", "torch", "reinterpret", "dlpack")
VIEW_CONTAINERS = ARENA_CONTAINERS + ("cai", "iface")  # the ones a layout applies to
NOT_OUTPUT_CONTAINERS = ("iface", "frombuffer", "requires_grad", "param", "list")


def judge(case: Dict[str, Any]) -> str:
    """The oracle, from the finished description: "ok" (must succeed and match the
    reference), "refuse" (must raise UmfaError), "either" (either, with the memory checks
    only), or "raise" (the hook's own exception, or UmfaError)."""
    api = case["api"]
    outputs = OUTPUTS.get(api, ())
    fixed: List[str] = [v for n, v in case["option_verdicts"].items() if n in case["options"]]
    sized: List[str] = []  # verdicts that hold only when the tensors have elements
    h = case["hostile"] or {}
    swapped = h.get("target") if h.get("action") == "swap" else None
    for role in REQUIRED.get(api, ()):
        if case["args"].get(role) is None:
            fixed.append("refuse")
    if case["varlen"] and api in OUTPUTS and (case["args"].get("cu_seqlens_q") is None
                                              or case["args"].get("cu_seqlens_k") is None):
        fixed.append("either")  # packed layouts without (both) offsets
    for role in _present(case):
        spec = case["args"][role]
        alias = spec.get("alias")
        if swapped and (role == swapped or (alias and alias["target"] == swapped)):
            fixed.append("either")  # its memory is replaced mid-call
            continue
        is_out = role in outputs
        default = _default_dtype(case, role)
        dtype = spec["dtype"] or default
        c = spec["container"]
        if spec["shape"] is not None and spec["shape"] != (spec.get("base")
                                                           or _logical_shape(case, role)):
            fixed.append("either")
        if dtype != default or (dtype == "bf16" and c in ("dlpack", "cai", "iface", "list")):
            fixed.append("either")  # another dtype (bfloat16 through protocols is uint16)
        if c in REFUSED_CONTAINERS or (c == "reinterpret" and api not in OUTPUTS):
            fixed.append("refuse")  # (the high-level functions take plain arrays)
        elif c in NOT_OUTPUT_CONTAINERS:
            fixed.append("refuse" if is_out else ("either" if c == "list" else "ok"))
        layout = spec["layout"] if c in VIEW_CONTAINERS else "contiguous"
        if layout == "shrunk" and c != "torch":
            layout = "contiguous"  # only torch storages are resized
        if layout == "beyond" and alias and _shares_arena(case, role, alias["target"]):
            layout = "contiguous"  # placed in its target's (larger) arena instead
        shape = _shape_of(case, role)
        if layout in ("reversed", "beyond", "shrunk"):
            sized.append("refuse")
        elif layout in ("broadcast", "overlap") and any(n > 1 for n in shape):
            constrained = role.startswith("cu_seqlens") or (api == "backward"
                                                             and role in ("out", "lse"))
            sized.append("refuse" if is_out else "either" if constrained else "ok")
        elif layout == "broadcast_all":
            fixed.append("either")
        if api not in OUTPUTS and role == "alibi_slopes" and layout != "contiguous":
            fixed.append("either")  # the high-level functions may convert (copy) it first
        if spec["readonly"] and is_out and c in ("numpy", "reinterpret", "dlpack"):
            fixed.append("refuse")
        if alias and _shares_arena(case, role, alias["target"]):
            sized.append("refuse" if alias["offset"] == 0 else "either")
        if api == "backward" and role in ("out", "lse") and c not in ARENA_CONTAINERS:
            fixed.append("either")  # not the forward's results (they cannot be written there)
    action = h.get("action")
    if action == "raise":
        fixed.append("raise")
    elif action == "close":
        fixed.append("refuse" if api in ("forward", "backward") else "either")
    elif action in ("readonly", "grad"):
        fixed.append("refuse")
    elif action == "free":
        sized.append("refuse")
    if _has_empty_tensor(case):  # nothing to read or write: refusing is optional
        sized = ["either" if v == "refuse" else v for v in sized]
    verdicts = fixed + sized
    for verdict in ("raise", "refuse", "either"):
        if verdict in verdicts:
            return verdict
    return "ok"


def _arena_kind(container: str) -> Optional[str]:
    if container not in ARENA_CONTAINERS:
        return None
    return "torch" if container == "torch" else "numpy"


def _shares_arena(case: Dict[str, Any], role: str, target: str) -> bool:
    """Whether ``role`` is really built inside ``target``'s arena (see ``_make``)."""
    t = case["args"].get(target)
    if t is None or t.get("alias") or t["layout"] in ("beyond", "broadcast_all"):
        return False
    kind = _arena_kind(case["args"][role]["container"])
    return kind is not None and kind == _arena_kind(t["container"])


def _mutate(case: Dict[str, Any], rng: Rng) -> None:
    """One hostile change to an argument."""
    api = case["api"]
    roles = _present(case)
    role = rng.pick(roles)
    spec = case["args"][role]
    outputs = OUTPUTS.get(api, ())
    kind = rng.pick(["dtype", "shape", "layout", "layout", "container", "readonly", "alias",
                     "alias", "none"])
    if api not in ("forward", "backward"):
        kind = rng.pick(["dtype", "shape", "layout", "readonly"])
    if kind == "dtype":
        spec["dtype"] = rng.pick(["f64", "i32", "i64", "bool", "u8", "c64", "f16", "bf16", "f32"])
        if spec["container"] == "reinterpret" and spec["dtype"] not in ("bf16", "f16", "i32",
                                                                        "f32", "bool"):
            spec["container"] = "numpy"
        if spec["dtype"] == "bf16" and spec["container"] == "numpy":
            spec["container"] = "reinterpret"
    elif kind == "shape":
        _mutate_shape(case, role, rng)
    elif kind == "layout":
        choices = ["permuted", "padded", "broadcast", "overlap"]
        if spec["container"] in ("numpy", "dlpack", "iface", "reinterpret"):
            choices += ["reversed", "beyond"]  # (torch itself refuses such views)
        if spec["container"] == "torch":
            choices.append("shrunk")
        spec["layout"] = rng.pick(choices)
    elif kind == "container":
        spec["container"] = rng.pick(
            ["dlpack", "cai", "iface", "frombuffer", "param", "subclass", "meta", "sparse",
             "negbit", "requires_grad", "list"] if torch is not None else
            ["dlpack", "cai", "iface", "list"])
    elif kind == "readonly":
        spec["readonly"] = True
    elif kind == "alias":
        present_outputs = [r for r in roles if r in outputs]
        if present_outputs and len(roles) > 1:
            role = rng.pick(present_outputs)
            spec = case["args"][role]
            target = rng.pick([r for r in roles if r != role])
            spec["alias"] = {"target": target, "offset": 0 if rng.chance(0.6) else rng.int(1, 40)}
            # Both views of one arena: arena-backed containers of one kind.
            kind_of = "torch" if case["args"][target]["container"] == "torch" else "numpy"
            for r in (role, target):
                c = case["args"][r]["container"]
                if c not in ("numpy", "torch", "reinterpret", "dlpack") or (
                        ("torch" if c == "torch" else "numpy") != kind_of):
                    case["args"][r]["container"] = kind_of
    elif not any((s or {}).get("alias") and s["alias"]["target"] == role
                 for s in case["args"].values()):
        case["args"][role] = None  # missing (None passes NULL); alias targets stay


def _mutate_shape(case: Dict[str, Any], role: str, rng: Rng) -> None:
    spec = case["args"][role]
    shape = list(_shape_of(case, role))
    how = rng.pick(["grow", "shrink", "rank+", "rank-", "zero", "huge"])
    if how == "rank+":
        shape = [1] + shape
    elif how == "rank-":
        shape = shape[1:]
    elif shape:
        i = rng.int(0, len(shape) - 1)
        if how == "grow":
            shape[i] += 1
        elif how == "shrink":
            shape[i] = max(shape[i] - 1, 0)
        elif how == "zero":
            shape[i] = 0
        else:  # huge, with no memory behind it: every stride 0
            shape[i] = 2 ** 40
            spec["layout"] = "broadcast_all"
    spec["shape"] = shape


def _add_hook(case: Dict[str, Any], rng: Rng) -> None:
    """Caller code run mid-call from an option's conversion or an array protocol."""
    api = case["api"]
    action = rng.pick(HOSTILE_ACTIONS)
    hooks = [n for n in ("window_size", "window_size_len", "softmax_scale", "softcap",
                         "mask_mode") if not (api == "sdpa" and n.startswith(("window", "softcap")))]
    if api in ("forward", "backward"):
        hooks += ["max_seqlen_k"] + [f"protocol:{r}" for r in _present(case)
                                     if case["args"][r]["container"] in ("dlpack", "iface")]
    hook = rng.pick(hooks)
    present = _present(case)
    torch_args = [r for r in present if case["args"][r]["container"] == "torch"
                  and case["args"][r]["layout"] != "shrunk"]
    outputs = OUTPUTS.get(api, ())
    np_outputs = [r for r in present if r in outputs
                  and case["args"][r]["container"] in ("numpy", "reinterpret")]
    torch_outputs = [r for r in torch_args if r in outputs]
    candidates = {"free": torch_args, "swap": torch_args, "readonly": np_outputs,
                  "grad": torch_outputs}
    target = None
    if action in candidates:
        if candidates[action]:
            target = rng.pick(candidates[action])
        else:
            action = "gc"
    case["hostile"] = {"hook": hook, "action": action, "target": target}
    case["options"].pop(HOOKED_OPTION.get(hook, hook), None)  # the hook takes its place


# ---------------------------------------------------------------------------------------------
# Building arguments: arenas with guard bytes
# ---------------------------------------------------------------------------------------------

NP_DTYPES = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16, "f64": np.float64,
             "i32": np.int32, "i64": np.int64, "bool": np.bool_, "u8": np.uint8,
             "c64": np.complex64}
GUARD = 64


def _torch_dtype(name: str) -> Any:
    return {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16,
            "f64": torch.float64, "i32": torch.int32, "i64": torch.int64, "bool": torch.bool,
            "u8": torch.uint8, "c64": torch.complex64}[name]


def _logical_shape(case: Dict[str, Any], role: str) -> List[int]:
    d = case["dims"]
    vl = case["varlen"]
    if vl is not None:
        tq, tk = vl["cu_q"][-1], vl["cu_k"][-1]
        return {"q": [tq, d["hq"], d["d"]], "k": [tk, d["hkv"], d["d"]],
                "v": [tk, d["hkv"], d["dv"]], "out": [tq, d["hq"], d["dv"]],
                "dout": [tq, d["hq"], d["dv"]], "lse": [d["hq"], tq],
                "dq": [tq, d["hq"], d["d"]], "dk": [tk, d["hkv"], d["d"]],
                "dv": [tk, d["hkv"], d["dv"]],
                "cu_seqlens_q": [len(vl["cu_q"])], "cu_seqlens_k": [len(vl["cu_k"])],
                "alibi_slopes": [d["hq"]]}[role]
    b, sq, sk = d["b"], d["sq"], d["sk"]
    if case["api"] == "sdpa":  # BHSD
        return {"q": [b, d["hq"], sq, d["d"]], "k": [b, d["hq"], sk, d["d"]],
                "v": [b, d["hq"], sk, d["d"]]}[role]
    return {"q": [b, sq, d["hq"], d["d"]], "k": [b, sk, d["hkv"], d["d"]],
            "v": [b, sk, d["hkv"], d["dv"]], "out": [b, sq, d["hq"], d["dv"]],
            "dout": [b, sq, d["hq"], d["dv"]], "lse": [b, d["hq"], sq],
            "dq": [b, sq, d["hq"], d["d"]], "dk": [b, sk, d["hkv"], d["d"]],
            "dv": [b, sk, d["hkv"], d["dv"]], "alibi_slopes": [d["hq"]]}[role]


def _default_dtype(case: Dict[str, Any], role: str) -> str:
    if role == "lse":
        return "f32"
    if role.startswith("cu_seqlens"):
        return "i32"
    if role in ("alibi_slopes", "attn_mask"):
        return "f32"
    return case["dtype"]


def _element_strides(shape: List[int], layout: str, rng: np.random.Generator) -> List[int]:
    n = len(shape)
    contiguous = [0] * n
    acc = 1
    for i in range(n - 1, -1, -1):
        contiguous[i] = acc
        acc *= max(shape[i], 1)
    if layout in ("contiguous", "beyond", "shrunk") or n == 0:
        return contiguous
    if layout == "permuted" and n >= 3:
        order = list(range(n))
        order[1], order[2] = order[2], order[1]  # memory laid out with dims 1 and 2 swapped
        strides = [0] * n
        acc = 1
        for i in reversed(order):
            strides[i] = acc
            acc *= max(shape[i], 1)
        return strides
    if layout == "padded":
        strides = [0] * n
        acc = int(rng.integers(1, 3))
        for i in range(n - 1, -1, -1):
            strides[i] = acc
            acc = acc * max(shape[i], 1) + int(rng.integers(0, 3))
        return strides
    if layout == "reversed":
        strides = list(contiguous)
        strides[int(rng.integers(n))] *= -1
        return strides
    if layout == "broadcast":
        strides = list(contiguous)
        dims = [i for i in range(n) if shape[i] > 1] or [0]
        strides[dims[int(rng.integers(len(dims)))]] = 0
        return strides
    if layout == "broadcast_all":
        return [0] * n
    if layout == "overlap":
        strides = list(contiguous)
        big = [i for i in range(n) if shape[i] > 1]
        if len(big) >= 2:
            strides[big[0]] = strides[big[1]]  # (1, 0, ..) and (0, 1, ..) meet
        elif big:
            strides[big[0]] = 0
        return strides
    return contiguous


def _span(shape: List[int], strides: List[int]) -> Tuple[int, int]:
    """(lowest, one past highest) element offset a view touches (0, 0 when empty)."""
    if any(s == 0 for s in shape):
        return 0, 0
    lo = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)
    hi = sum((n - 1) * s for n, s in zip(shape, strides) if s > 0)
    return lo, hi + 1


class Arena:
    """A byte buffer (numpy or torch) holding one or more views, with its first contents."""

    def __init__(self, nbytes: int, kind: str, rng: np.random.Generator,
                 exact: bool = False) -> None:
        if not exact:  # whole 8-byte words, so that every dtype can view it
            nbytes = (nbytes + 7) // 8 * 8
        noise = rng.integers(0, 256, nbytes, dtype=np.uint8)
        self.kind = kind
        if kind == "torch":
            self.buf = torch.empty(nbytes, dtype=torch.uint8)
            self.buf.copy_(torch.from_numpy(noise))
        else:
            self.buf = noise.copy()
        self.nbytes = nbytes
        self.before: Optional[np.ndarray] = None
        self.writable_mask = np.zeros(nbytes, bool)

    def bytes_now(self) -> np.ndarray:
        if self.kind == "torch":
            if self.buf.untyped_storage().nbytes() < self.nbytes:
                return None  # shrunk on purpose by the case: not comparable
            return self.buf.clone().numpy()
        return np.array(self.buf, copy=True)

    def typed(self, dtype: str) -> Any:
        if self.kind == "torch":
            return self.buf.view(_torch_dtype(dtype) if dtype != "bool" else torch.bool)
        return self.buf.view(NP_DTYPES[dtype])


class Built:
    """The arguments of one case, with what the checks need."""

    def __init__(self) -> None:
        self.objects: Dict[str, Any] = {}  # role -> what is passed
        self.values: Dict[str, np.ndarray] = {}  # role -> float64 (or int) logical values
        self.arenas: List[Arena] = []
        self.places: Dict[str, Tuple[Arena, int, List[int], List[int], int]] = {}
        self.untouchable: set = set()  # views past their storage
        self.readonly: List[np.ndarray] = []  # views made read-only once built


def _fill_values(role: str, dtype: str, count: int, rng: np.random.Generator,
                 case: Dict[str, Any]) -> np.ndarray:
    if dtype == "bool":
        return rng.random(count) < 0.8
    if dtype in ("i32", "i64", "u8"):
        return rng.integers(0, 5, count).astype(NP_DTYPES[dtype])
    if role == "alibi_slopes":
        return (rng.random(count) * 0.5).astype(np.float32)
    x = rng.standard_normal(count) * (0.5 if role != "attn_mask" else 1.0)
    if dtype == "bf16":
        return (np.float32(x).view(np.uint32) >> 16).astype(np.uint16)
    if dtype == "c64":
        return (x + 1j * x).astype(np.complex64)
    return x.astype(NP_DTYPES[dtype])


def _bf16_to_f64(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def build(case: Dict[str, Any], ctx: "umfa.Context", plain: Dict[str, Any]) -> Built:
    """Arenas, views and wrappers for every argument of ``case`` (``plain``: its options, as
    the values any hook objects stand for)."""
    rng = np.random.default_rng(case["seed"])
    out = Built()
    specs = {r: s for r, s in case["args"].items() if s is not None}
    layouts: Dict[str, Tuple[List[int], str, List[int]]] = {}
    for role, spec in specs.items():
        shape = list(_shape_of(case, role))
        dtype = spec["dtype"] or _default_dtype(case, role)
        layouts[role] = (shape, dtype, _element_strides(shape, spec["layout"], rng))
    biggest = max((max(1, (_span(sh, st)[1] - _span(sh, st)[0])) * NP_DTYPES[dt]().itemsize
                   for sh, dt, st in layouts.values() if max(sh or [0]) < 2 ** 30), default=8)
    aliased = {s["alias"]["target"] for s in specs.values() if s.get("alias")}
    order = sorted(specs, key=lambda r: specs[r].get("alias") is not None)
    for role in order:
        spec = specs[role]
        shape, dtype, strides = layouts[role]
        out.objects[role] = _make(case, role, spec, shape, dtype, strides, rng, out, biggest,
                                  role in aliased, ctx)
    h = case["hostile"]
    if case["api"] == "backward" and (h is None or h["action"] in ("gc", "nested")):
        _forward_results_into(case, out, plain)
    for view in out.readonly:  # last: the forward's results were written first
        view.flags.writeable = False
    return out


def _make(case, role, spec, shape, dtype, strides, rng, out: Built, biggest, is_target, ctx):
    container = spec["container"]
    itemsize = NP_DTYPES[dtype]().itemsize
    lo, hi = _span(shape, strides)
    if role.startswith("cu_seqlens"):
        values = np.array(case["varlen"]["cu_q" if role.endswith("q") else "cu_k"], np.int64)
        if dtype not in ("i32", "i64") or values.size != int(np.prod(shape)):
            values = None
    else:
        values = None
    if container == "list":
        vals = _fill_values(role, dtype if dtype != "bf16" else "f32", int(np.prod(shape)),
                            rng, case)
        arr = vals.reshape(shape)
        out.values[role] = arr.astype(np.float64) if arr.dtype != np.complex64 else arr
        return arr.tolist()
    if container in ("meta", "sparse", "subclass", "negbit", "frombuffer", "param",
                     "requires_grad") and torch is not None:
        vals = (values.astype(NP_DTYPES[dtype]) if values is not None else
                _fill_values(role, dtype if dtype not in ("bf16",) else "f32",
                             max(int(np.prod(shape)), 0), rng, case))
        t = torch.from_numpy(np.ascontiguousarray(vals.reshape(shape))).clone()
        if dtype == "bf16":
            t = t.to(torch.bfloat16)
        out.values[role] = _as_f64(t)
        if container == "meta":
            return t.to("meta")
        if container == "sparse":
            return t.to_sparse()
        if container == "subclass":
            return t.as_subclass(_Subclass)
        if container in ("requires_grad", "param") and not t.is_floating_point():
            raise ValueError("only floating tensors have that form")
        if container == "negbit" and t.dtype != torch.float32:
            raise ValueError("negative-bit views of float32 only")
        if container == "negbit":
            return torch.complex(t, -t).conj().imag  # shows t, stores -t
        if container == "frombuffer":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                raw = bytes(t.contiguous().view(torch.uint8).numpy().tobytes()) if t.numel() else b"\0" * 8
                frozen = torch.frombuffer(raw, dtype=torch.uint8)
            return frozen[: t.numel() * t.element_size()].view(t.dtype).view(t.shape) \
                if t.numel() else t
        if container == "param":
            return torch.nn.Parameter(t)
        if container == "requires_grad":
            return t.requires_grad_()
    # Arena-backed containers.
    kind = "torch" if container == "torch" and torch is not None else "numpy"
    span_bytes = (hi - lo) * itemsize
    alias = spec.get("alias")
    if alias and alias["target"] in out.places and _shares_arena(case, role, alias["target"]):
        arena, t_off, _, _, _ = out.places[alias["target"]]
        offset = t_off + alias["offset"] * itemsize
        offset -= offset % itemsize
        if offset - (-lo) * itemsize < 0 or offset + hi * itemsize > arena.nbytes:
            offset = t_off  # does not fit at that offset: the exact start instead
    else:
        slack = biggest * 2 if is_target else 0
        if spec["layout"] == "beyond":  # one element short of the view, no guard after
            if span_bytes <= itemsize:  # (numpy points empty slices back at their base)
                raise ValueError("a lone element cannot start inside and reach past")
            if container not in ("numpy", "reinterpret"):
                # DLPack and the array interfaces describe memory their producer vouches for;
                # umfa cannot see past them (README: "Not covered"), so such a case is the
                # harness writing out of bounds, not umfa.
                raise ValueError("only numpy views reaching past their memory are checkable")
            total = GUARD + span_bytes - itemsize
        elif spec["layout"] == "broadcast_all":
            total = GUARD * 2 + itemsize
        else:
            total = GUARD + span_bytes + slack + GUARD + int(rng.integers(0, 16)) * 8
        arena = Arena(total, kind, rng, exact=spec["layout"] == "beyond")
        out.arenas.append(arena)
        offset = GUARD + (-lo) * itemsize
        offset -= offset % max(itemsize, 1)
    out.places[role] = (arena, offset, shape, strides, itemsize)
    # Values: written over the view's whole span (any layout reads valid numbers).
    if spec["layout"] not in ("beyond", "broadcast_all") and hi > lo:
        start = offset // itemsize + lo
        count = hi - lo
        vals = _fill_values(role, dtype, count, rng, case)
        typed = arena.typed(dtype)
        if kind == "torch":
            typed[start:start + count] = torch.from_numpy(np.ascontiguousarray(vals)).view(
                _torch_dtype(dtype)) if dtype == "bf16" else torch.from_numpy(vals)
        else:
            typed[start:start + count] = vals
    view = _strided(arena, kind, dtype, offset, shape, strides, itemsize)
    if values is not None and spec["layout"] not in ("broadcast", "overlap", "beyond",
                                                     "broadcast_all") and not alias:
        values = values.astype(NP_DTYPES[dtype]).reshape(shape)
        if kind == "torch":
            view.copy_(torch.from_numpy(values))
        else:
            view[...] = values
    if spec["layout"] == "beyond":
        # The view reaches past its arena: reading or writing it here would be the harness's
        # own overflow (umfa must refuse it without touching it).
        out.values[role] = None
        out.untouchable.add(role)
    else:
        out.values[role] = _snapshot(view, dtype, kind)
    if spec["layout"] == "shrunk" and kind == "torch":
        # The view now reaches past its storage: torch itself would read and write there
        # unchecked, so nothing here touches it again (umfa must refuse it).
        arena.buf.untyped_storage().resize_(max(offset, 8))
        for other, place in out.places.items():  # every view of that arena
            if place[0] is arena:
                out.values[other] = None
                out.untouchable.add(other)
    if spec["readonly"] and kind == "numpy":
        out.readonly.append(view)
    if container == "reinterpret":
        return umfa.reinterpret(view, dtype if dtype in ("bf16", "f16", "f32", "i32",
                                                         "bool") else "f32")
    if container == "dlpack":
        return _DLPack(view)
    if container == "cai":
        return _CAI(view, spec["readonly"])
    if container == "iface":
        return _Iface(view)
    return view


def _strided(arena: Arena, kind: str, dtype: str, offset: int, shape, strides, itemsize) -> Any:
    if kind == "torch":
        base = arena.typed(dtype)
        if any(s < 0 for s in strides):
            raise ValueError("torch views have no negative strides")
        return base.as_strided(shape, strides, offset // itemsize)
    base = arena.typed(dtype)
    start = base[offset // itemsize:]
    return np.lib.stride_tricks.as_strided(start, shape, [s * itemsize for s in strides],
                                           writeable=True)


def _as_f64(t: Any) -> Optional[np.ndarray]:
    try:
        if t.is_complex():
            return None
        return t.detach().double().numpy()
    except Exception:
        return None


def _snapshot(view: Any, dtype: str, kind: str) -> Optional[np.ndarray]:
    try:
        if kind == "torch":
            return _as_f64(view)
        if dtype == "bf16":
            return _bf16_to_f64(np.array(view))
        if dtype == "c64":
            return None
        return np.array(view, dtype=np.float64)
    except Exception:
        return None


if torch is not None:
    class _Subclass(torch.Tensor):
        """A tensor subclass umfa does not know."""

else:  # pragma: no cover
    _Subclass = None


class _DLPack:
    """An array exported through DLPack only."""

    def __init__(self, a: Any, hook: Any = None) -> None:
        self.a, self.hook = a, hook

    def __dlpack__(self, stream: Any = None, **kw: Any) -> Any:
        if self.hook:
            self.hook()
        return self.a.__dlpack__(**kw)

    def __dlpack_device__(self) -> Any:
        return self.a.__dlpack_device__()


class _CAI:
    """An array that says it lives on a CUDA device (a CPU context refuses it)."""

    def __init__(self, a: Any, readonly: bool) -> None:
        self.a = a
        self.readonly = readonly

    @property
    def __cuda_array_interface__(self) -> Dict[str, Any]:
        a = self.a
        return {"shape": a.shape, "typestr": a.dtype.str, "data": (a.ctypes.data, self.readonly),
                "strides": a.strides, "version": 3}


class _Iface:
    """An object numpy views through ``__array_interface__``."""

    def __init__(self, a: Any, hook: Any = None) -> None:
        self.a, self.hook = a, hook

    @property
    def __array_interface__(self) -> Dict[str, Any]:
        if self.hook:
            self.hook()
        return self.a.__array_interface__


class HookRaised(Exception):
    """Raised by a hostile hook on purpose; the call must let it through unchanged."""


class HookFailed(HookRaised):
    """A hook's action itself failed (e.g. allocating a huge tensor): the caller's own
    exception, which the call must let through as well."""


class _HookInt:
    def __init__(self, value: int, hook: Any) -> None:
        self.value, self.hook = value, hook

    def __index__(self) -> int:
        self.hook()
        return self.value


class _HookSeq:
    """A sequence whose length runs the hook (``tuple()`` asks for it first)."""

    def __init__(self, values: Tuple[int, ...], hook: Any) -> None:
        self.values, self.hook = values, hook

    def __len__(self) -> int:
        self.hook()
        return len(self.values)

    def __iter__(self) -> Any:
        return iter(self.values)


class _HookFloat:
    def __init__(self, value: float, hook: Any) -> None:
        self.value, self.hook = value, hook

    def __float__(self) -> float:
        self.hook()
        return self.value


# ---------------------------------------------------------------------------------------------
# Executing a case and judging it
# ---------------------------------------------------------------------------------------------


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "np" in value:
        return getattr(np, value["np"])(value["v"])
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _hook_fn(case: Dict[str, Any], built: Built, ctx: "umfa.Context", target_ctx: Any) -> Any:
    h = case["hostile"]
    action, target = h["action"], h.get("target")
    obj = built.objects.get(target) if target else None

    def run() -> None:
        try:
            act()
        except HookRaised:
            raise
        except Exception as exc:
            raise HookFailed(f"{type(exc).__name__}: {exc}") from exc

    def act() -> None:
        if action == "close":
            target_ctx().close()
        elif action == "free" and obj is not None:
            obj.untyped_storage().resize_(0)
        elif action == "swap" and obj is not None:
            obj.set_(torch.zeros(obj.shape, dtype=obj.dtype))
        elif action == "readonly" and obj is not None:
            (obj.array if isinstance(obj, umfa.Reinterpreted) else obj).flags.writeable = False
        elif action == "grad" and obj is not None:
            if obj.is_floating_point():
                obj.requires_grad_()
        elif action == "nested":
            small = np.ones((1, 2, 1, 8), np.float32)
            ctx.forward(small, small, small, np.empty_like(small))
        elif action == "gc":
            gc.collect()
        elif action == "raise":
            raise HookRaised("raised by the case's hook")
    return run


# The value each hooked option stands for, and the option a hook name sets.
HOOK_VALUES = {"window_size": (2, 2), "window_size_len": (3, 1), "softmax_scale": 0.5,
               "softcap": 0.5, "mask_mode": 0, "max_seqlen_k": 0}
HOOKED_OPTION = {"window_size_len": "window_size"}


def _hooked_options(case: Dict[str, Any], hook: Any) -> Dict[str, Any]:
    """The call's options; with ``hook`` None, the values the hook objects stand for."""
    options = {k: _decode(v) for k, v in case["options"].items()}
    h = case["hostile"]
    if h is None or h["hook"].startswith("protocol:"):
        return options
    name = h["hook"]
    value = HOOK_VALUES[name]
    option = HOOKED_OPTION.get(name, name)
    if hook is None:
        options[option] = value
    elif name == "window_size_len":
        options[option] = _HookSeq(value, hook)
    elif name == "window_size":
        options[name] = (_HookInt(value[0], hook), value[1])
    elif name in ("softmax_scale", "softcap"):
        options[name] = _HookFloat(value, hook)
    else:
        options[name] = _HookInt(value, hook)
    return options


class Outcome:
    def __init__(self, status: str, finding: Optional[str] = None) -> None:
        self.status, self.finding = status, finding


def _reference_options(case: Dict[str, Any], built: Built, options: Dict[str, Any]) -> Any:
    o = reference.Options()
    mm = options.get("mask_mode")
    if case["api"] == "sdpa":  # is_causal: top-left
        o.mask_mode = 1 if mm else 0
    elif isinstance(mm, (bool, np.bool_)):
        o.mask_mode = 2 if mm else 0
    elif isinstance(mm, str):
        o.mask_mode = {"none": 0, "causal_top_left": 1, "top_left": 1,
                       "causal_bottom_right": 2, "bottom_right": 2}[mm]
    elif mm is not None:
        o.mask_mode = int(mm)
    if options.get("softmax_scale") is not None:
        o.softmax_scale = float(np.float32(options["softmax_scale"]))
    o.softcap = float(np.float32(options.get("softcap") or 0.0))
    w = options.get("window_size")
    if w is not None:
        left, right = int(w[0]), int(w[1])
        if left >= 0 or right >= 0:
            o.has_window, o.window_left, o.window_right = 1, left, right
    for name in ("attn_mask", "alibi_slopes"):
        if name in built.values:
            v = built.values[name]
            if name == "attn_mask" and case["args"][name]["dtype"] == "bool":
                v = v != 0
            setattr(o, name, v)
    if case["varlen"] is not None:
        o.cu_seqlens_q = np.array(case["varlen"]["cu_q"])
        o.cu_seqlens_k = np.array(case["varlen"]["cu_k"])
    return o


def _close(got: Any, want: np.ndarray, tol: Tuple[float, float]) -> bool:
    got = np.asarray(got, dtype=np.float64)
    if got.shape != want.shape:
        return False
    inf = np.isinf(want)
    if not np.array_equal(np.isinf(got) & inf, inf) or np.isnan(got).any():
        return False
    fin = ~inf
    return bool(np.all(np.abs(got[fin] - want[fin]) <= tol[0] + tol[1] * np.abs(want[fin])))


def _tolerance_class(case: Dict[str, Any], roles: List[str]) -> str:
    dts = [case["dtype"]] + [(case["args"][r] or {}).get("dtype") or case["dtype"]
                             for r in roles if case["args"].get(r)]
    return "bf16" if "bf16" in dts else ("f16" if "f16" in dts else "f32")


def _read(obj: Any, dtype: str) -> np.ndarray:
    if isinstance(obj, umfa.Reinterpreted):
        a = obj.array
        return _bf16_to_f64(np.array(a)) if dtype == "bf16" else np.array(a, np.float64)
    if isinstance(obj, (_DLPack, _Iface)):
        return np.array(obj.a, np.float64)
    if torch is not None and isinstance(obj, torch.Tensor):
        return obj.detach().double().numpy()
    return np.array(obj, np.float64)


def _check_results(case: Dict[str, Any], built: Built, options: Dict[str, Any],
                   results: Dict[str, Any]) -> Optional[str]:
    v = built.values
    if any(v.get(r) is None for r in ("q", "k", "v")):
        return None
    opts = _reference_options(case, built, options)
    q, k, vv = v["q"], v["k"], v["v"]
    if case["api"] == "sdpa":  # BHSD in, BHSD out
        q, k, vv = (x.transpose(0, 2, 1, 3) for x in (q, k, vv))
    dout = v.get("dout") if case["api"] == "backward" else None
    with np.errstate(all="ignore"):
        ref = reference.attention(q, k, vv, opts, dout=dout)
    cls = _tolerance_class(case, list(results))
    tol = TOLERANCES[cls]
    want = {"out": ref.out, "lse": ref.lse, "dq": ref.dq, "dk": ref.dk, "dv": ref.dv}
    for name, obj in results.items():
        spec = case["args"].get(name)
        got = _read(obj, (spec or {}).get("dtype") or _default_dtype(case, name))
        expected = want[name]
        if case["api"] == "sdpa" and name == "out":
            expected = expected.transpose(0, 2, 1, 3)
        t = tol["out"] if name == "out" else tol["lse"] if name == "lse" else tol["grad"]
        if not _close(got, expected, t):
            diff = np.nanmax(np.abs(np.asarray(got, np.float64) - expected)) if np.shape(
                got) == expected.shape else "shape"
            return f"wrong {name} (tolerance class {cls}, largest difference {diff})"
    return None


def _write_set(built: Built, roles: List[str]) -> None:
    for arena in built.arenas:
        arena.writable_mask[:] = False
    for role in roles:
        place = built.places.get(role)
        if place is None:
            continue
        arena, offset, shape, strides, itemsize = place
        if any(s == 0 for s in shape) or max(shape or [1]) >= 2 ** 30:
            continue
        idx = np.zeros(1, np.int64) + offset
        for n, s in zip(shape, strides):
            idx = (idx[:, None] + np.arange(n, dtype=np.int64)[None, :] * s * itemsize).ravel()
        idx = (idx[:, None] + np.arange(itemsize)[None, :]).ravel()
        idx = idx[(idx >= 0) & (idx < arena.nbytes)]
        arena.writable_mask[idx] = True


def _memory_finding(built: Built, wrote_allowed: bool) -> Optional[str]:
    for i, arena in enumerate(built.arenas):
        now = arena.bytes_now()
        if now is None or arena.before is None:
            continue
        changed = now != arena.before
        if not changed.any():
            continue
        if not wrote_allowed:
            return f"a refused call changed {int(changed.sum())} bytes of arena {i}"
        outside = changed & ~arena.writable_mask
        if outside.any():
            where = np.flatnonzero(outside)
            return (f"{int(outside.sum())} bytes changed outside the output views (arena {i}, "
                    f"offsets {where[:4].tolist()}...)")
    return None


def _call(case: Dict[str, Any], built: Built, ctx: "umfa.Context",
          options: Dict[str, Any]) -> Dict[str, Any]:
    """Run the case's entry point; returns the results to compare (role -> array-like)."""
    api = case["api"]
    o = built.objects
    if api == "forward":
        kw = dict(options)
        for name in ("attn_mask", "alibi_slopes", "cu_seqlens_q", "cu_seqlens_k"):
            if name in o:
                kw[name] = o[name]
        ctx.forward(o.get("q"), o.get("k"), o.get("v"), o.get("out"), o.get("lse"), **kw)
        return {r: o[r] for r in ("out", "lse") if o.get(r) is not None}
    if api == "backward":
        kw = dict(options)
        for name in ("attn_mask", "alibi_slopes", "cu_seqlens_q", "cu_seqlens_k"):
            if name in o:
                kw[name] = o[name]
        ctx.backward(o.get("q"), o.get("k"), o.get("v"), o.get("out"), o.get("dout"),
                     o.get("lse"), o.get("dq"), o.get("dk"), o.get("dv"), **kw)
        return {r: o[r] for r in ("dq", "dk", "dv") if o.get(r) is not None}
    causal = options.pop("mask_mode", False)
    if api == "flash_attn_func":
        kw = {k2: v2 for k2, v2 in options.items() if k2 in ("softmax_scale", "softcap",
                                                             "window_size", "deterministic")}
        if "alibi_slopes" in o:
            kw["alibi_slopes"] = o["alibi_slopes"]
        out, lse = umfa.flash_attn_func(o["q"], o["k"], o["v"], causal=causal,
                                        return_lse=True, **kw)
        return {"out": out, "lse": lse}
    if api == "varlen":
        vl = case["varlen"]
        kw = {k2: v2 for k2, v2 in options.items() if k2 in ("softmax_scale", "softcap",
                                                             "window_size", "deterministic")}
        if "alibi_slopes" in o:
            kw["alibi_slopes"] = o["alibi_slopes"]
        out, lse = umfa.flash_attn_varlen_func(
            o["q"], o["k"], o["v"], np.array(vl["cu_q"], np.int32),
            np.array(vl["cu_k"], np.int32), max(np.diff(vl["cu_q"]).max(initial=0), 1),
            max(np.diff(vl["cu_k"]).max(initial=0), 1), causal=causal, return_lse=True, **kw)
        return {"out": out, "lse": lse}
    # sdpa (top-left causal, BHSD)
    scale = options.get("softmax_scale")
    out = umfa_torch.scaled_dot_product_attention(o["q"], o["k"], o["v"], is_causal=causal,
                                                  scale=scale)
    return {"out": out}


_contexts: Dict[int, "umfa.Context"] = {}


def _context(threads: int) -> "umfa.Context":
    ctx = _contexts.get(threads)
    if ctx is None or ctx.closed:
        ctx = _contexts[threads] = umfa.Context("cpu", num_threads=threads)
    return ctx


def execute(case: Dict[str, Any]) -> Outcome:
    """Run one case and judge it (see the module docstring)."""
    ctx = _context(case["threads"])
    plain = _hooked_options(case, None)
    try:
        built = build(case, ctx, plain)
    except (ValueError, RuntimeError, TypeError, OverflowError, MemoryError):
        return Outcome("skipped")  # not constructible as described (the generator's miss)
    api = case["api"]
    uses_default = api not in ("forward", "backward")
    target_ctx = (lambda: umfa.default_context("cpu")) if uses_default else (lambda: ctx)
    hook = _hook_fn(case, built, ctx, target_ctx) if case["hostile"] else None
    options = _hooked_options(case, hook)
    h = case["hostile"]
    if h and h["hook"].startswith("protocol:"):
        role = h["hook"].split(":", 1)[1]
        obj = built.objects.get(role)
        if isinstance(obj, (_DLPack, _Iface)):
            obj.hook = hook
    outputs = list(OUTPUTS.get(api, ()))
    _write_set(built, outputs)
    for arena in built.arenas:
        arena.before = arena.bytes_now()
    expect = judge(case)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = _call(case, built, ctx, dict(options))
    except HookRaised as exc:
        if expect != "raise" and not isinstance(exc, HookFailed):
            return Outcome("raised", "the hook's exception escaped a case that must not raise")
        return Outcome("propagated", _memory_finding(built, False))
    except UmfaError as exc:
        finding = _memory_finding(built, False)
        if finding is None and expect == "ok":
            finding = f"a valid call was refused: {exc}"
        return Outcome("refused:" + exc.name.replace("UMFA_STATUS_", ""), finding)
    except Exception as exc:  # noqa: BLE001 - every other exception is a finding
        return Outcome("untyped", f"untyped exception {type(exc).__name__}: {exc}\n"
                                  + "".join(traceback.format_exc(limit=6)))
    finding = _memory_finding(built, True)
    if finding is None and expect in ("refuse", "raise"):
        finding = "a call that must be refused returned normally"
    if finding is None and expect == "ok":
        finding = _check_results(case, built, plain, results)
    return Outcome("ok", finding)


def _forward_results_into(case: Dict[str, Any], built: Built, options: Dict[str, Any]) -> None:
    """Backward reads ``out`` and ``lse`` as the forward produced them: the reference's,
    rounded to their dtypes, are written into those arguments (where they can be)."""
    v = built.values
    if any(v.get(r) is None for r in ("q", "k", "v")):
        return
    try:
        with np.errstate(all="ignore"):
            ref = reference.attention(v["q"], v["k"], v["v"],
                                      _reference_options(case, built, options))
    except Exception:  # shapes the reference cannot take: the call is refused anyway
        return
    for role, value in (("out", ref.out), ("lse", ref.lse)):
        obj = built.objects.get(role)
        spec = case["args"].get(role)
        if (role not in built.places or role in built.untouchable
                or spec["layout"] == "broadcast_all"):
            continue  # not an arena view (meta, sparse, ...), or nothing behind it
        dtype = spec["dtype"] or _default_dtype(case, role)
        try:
            _assign(obj, value, dtype)
            v[role] = _read(obj, dtype)
        except (ValueError, RuntimeError, TypeError):
            continue  # shapes that differ from the forward's: the call is refused anyway


def _assign(obj: Any, value: np.ndarray, dtype: str) -> None:
    target = obj.array if isinstance(obj, umfa.Reinterpreted) else getattr(obj, "a", obj)
    if torch is not None and isinstance(target, torch.Tensor):
        with torch.no_grad():
            target.copy_(torch.from_numpy(np.ascontiguousarray(value)))
        return
    if dtype == "bf16":
        value = (np.float32(value).view(np.uint32) >> 16).astype(np.uint16)
    target[...] = value  # a read-only target raises: that argument keeps its random values


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def load_corpus(folder: Path = CORPUS) -> List[Tuple[str, Dict[str, Any]]]:
    entries = []
    for path in sorted(folder.glob("*.json")):
        doc = json.loads(path.read_text())
        entries.append((path.name, doc["case"]))
    return entries


def case_id(case: Dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(case, sort_keys=True).encode()).hexdigest()[:12]


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="search time after the replay")
    p.add_argument("--seed", type=int, default=None, help="master seed (default: from time)")
    p.add_argument("--case-timeout", type=float, default=20.0,
                   help="seconds one case may take before the watchdog ends the process")
    p.add_argument("--in-flight", type=Path, default=None,
                   help="file the case being run is written to (kept when the process dies)")
    p.add_argument("--save-findings", action="store_true",
                   help="write each finding's case to the corpus folder")
    p.add_argument("--replay-only", action="store_true")
    p.add_argument("--corpus", type=Path, default=CORPUS, help="folder of cases to replay")
    args = p.parse_args(argv)
    np.seterr(all="ignore")  # arenas hold random bytes: casting them may overflow
    warnings.simplefilter("ignore")
    seed = args.seed if args.seed is not None else int(time.time()) % 2 ** 31
    containers = ("numpy", "torch") if torch is not None else ("numpy",)
    counts: Dict[str, int] = {}
    findings: List[Dict[str, Any]] = []
    executions = 0

    def run(case: Dict[str, Any], origin: str) -> None:
        nonlocal executions
        if args.in_flight:
            args.in_flight.write_text(json.dumps({"origin": origin, "case": case}))
        faulthandler.dump_traceback_later(args.case_timeout, exit=True)
        outcome = execute(copy.deepcopy(case))
        faulthandler.cancel_dump_traceback_later()
        executions += 1
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if outcome.finding:
            findings.append({"origin": origin, "id": case_id(case), "finding": outcome.finding,
                             "case": case})
            if args.save_findings:
                args.corpus.mkdir(exist_ok=True)
                (args.corpus / f"finding-{case_id(case)}.json").write_text(json.dumps(
                    {"description": outcome.finding.splitlines()[0], "case": case}, indent=1))

    start = time.monotonic()
    replayed = 0
    for name, case in load_corpus(args.corpus):
        run(case, f"corpus/{name}")
        replayed += 1
    if not args.replay_only:
        rng = Rng(seed)
        deadline = time.monotonic() + args.seconds
        i = 0
        while time.monotonic() < deadline:
            run(generate(rng, containers), f"seed {seed} case {i}")
            i += 1
    if args.in_flight and args.in_flight.exists():
        args.in_flight.unlink()
    summary = {"seed": seed, "replayed": replayed, "executions": executions,
               "seconds": round(time.monotonic() - start, 1), "outcomes": counts,
               "findings": [{k: f[k] for k in ("origin", "id", "finding")} for f in findings]}
    print(json.dumps(summary))
    for f in findings:
        sys.stderr.write(f"\nFINDING {f['id']} ({f['origin']}): {f['finding']}\n"
                         f"{json.dumps(f['case'])}\n")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
