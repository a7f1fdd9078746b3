#!/usr/bin/env python3
"""Generates the umfa conformance vectors from the float64 reference.

  python3 conformance/generate.py            # (re)writes conformance/manifest.json + vectors/
  python3 conformance/generate.py --check    # regenerates into a temp dir, compares byte for byte
  python3 conformance/generate.py --list     # prints the case ids

Deterministic by construction: random inputs come from the raw 64-bit output of NumPy's PCG64
bit generator (a fixed algorithm), turned into floats with integer arithmetic only; inputs are
rounded to their dtype before the reference runs on them; .npy files are written by a small
writer here (format 1.0, fixed header text), and the manifest by json.dumps with fixed settings.
See README.md for the file format.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import math
import os
import shutil
import sys
import tempfile
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import reference as ref  # noqa: E402

FORMAT_VERSION = 1

# dtype name (as in UMFA_DTYPE_*, lower case) -> (.npy descr of the stored file, bytes)
FILE_DESCR = {"f32": "<f4", "f16": "<f2", "bf16": "<u2", "bool": "|u1", "i32": "<i4"}

# Absolute + relative tolerances, keyed by the case's tolerance class (the lowest precision among
# its input and output dtypes). An element passes when |got - expected| <= atol + rtol * |expected|.
# Each case carries its resolved per-output tolerances ("tolerances"); cases with large gradient
# magnitudes scale the gradient atol (grad_atol_scale). README.md explains the numbers.
TOLERANCES = {
    "f32": {
        "out": {"atol": 1e-5, "rtol": 1e-4},
        "lse": {"atol": 1e-5, "rtol": 1e-5},
        "grad": {"atol": 5e-5, "rtol": 5e-4},
    },
    "f16": {
        "out": {"atol": 2e-3, "rtol": 4e-3},
        "lse": {"atol": 1e-4, "rtol": 1e-4},
        "grad": {"atol": 1e-2, "rtol": 1e-2},
    },
    "bf16": {
        "out": {"atol": 1.6e-2, "rtol": 3.2e-2},
        "lse": {"atol": 1e-4, "rtol": 1e-4},
        "grad": {"atol": 8e-2, "rtol": 8e-2},
    },
}
PRECISION_ORDER = ["f32", "f16", "bf16"]  # increasing tolerance

LAYOUT_PERMS = {
    # rank-4 logical [B, S, H, D]
    "bshd": [0, 1, 2, 3],
    "bhsd": [0, 2, 1, 3],
    "sbhd": [1, 0, 2, 3],
    # rank-3 logical [T, H, D] (varlen)
    "thd": [0, 1, 2],
    "htd": [1, 0, 2],
}


# ------------------------------------------------------------------------------------------------
# Deterministic random numbers (integer arithmetic on PCG64 raw output only)


class Rand:
    def __init__(self, seed: int):
        self.bg = np.random.PCG64(seed)

    def uniform(self, shape, lo=-1.0, hi=1.0) -> np.ndarray:
        n = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
        raw = self.bg.random_raw(n) if n > 0 else np.zeros(0, dtype=np.uint64)
        u = (np.asarray(raw, dtype=np.uint64) >> np.uint64(11)).astype(np.float64) * (2.0**-53)
        return (lo + (hi - lo) * u).reshape(shape)

    def bernoulli(self, shape, p_true: float) -> np.ndarray:
        return self.uniform(shape, 0.0, 1.0) < p_true


# ------------------------------------------------------------------------------------------------
# .npy writer: format 1.0, C order, little endian, fixed header text


def npy_bytes(arr: np.ndarray, descr: str) -> bytes:
    arr = np.ascontiguousarray(arr)
    if arr.dtype.str != descr and not (descr == "|u1" and arr.dtype == np.uint8):
        raise ValueError(f"array dtype {arr.dtype.str} != {descr}")
    shape = tuple(int(x) for x in arr.shape)
    if len(shape) == 1:
        shape_txt = f"({shape[0]},)"
    else:
        shape_txt = "(" + ", ".join(str(x) for x in shape) + ")"
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_txt)
    total = 10 + len(header) + 1
    header += " " * ((64 - total % 64) % 64) + "\n"
    hb = header.encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(hb).to_bytes(2, "little") + hb + arr.tobytes(order="C")


# ------------------------------------------------------------------------------------------------
# Case construction


def f32r(x: float) -> float:
    """x rounded to float32 (the C struct stores floats)."""
    return float(np.float32(x))


def alibi_default(h: int) -> np.ndarray:
    """FlashAttention / ALiBi paper slopes 2^(-8 (i+1) / H)."""
    return np.array([2.0 ** (-8.0 * (i + 1) / h) for i in range(h)], dtype=np.float64)


def tensor_entry(files, case_id, name, arr, dtype, file_dtype, perm, base_shape=None):
    """Registers the file of tensor `name` of case `case_id`; returns its manifest entry.

    base_shape: `arr` is a broadcast of an array of this (right-aligned) shape. The file
    holds the materialized data; the entry gets "view_strides" with stride 0 on every
    broadcast dimension, addressing only the first copy of the repeated data.
    """
    logical = [int(x) for x in arr.shape]
    stored = np.transpose(arr, perm) if perm is not None else arr
    perm = list(perm) if perm is not None else list(range(arr.ndim))
    storage_shape = [logical[p] for p in perm]
    cstr = [0] * len(perm)
    acc = 1
    for a in range(len(perm) - 1, -1, -1):
        cstr[a] = acc
        acc *= storage_shape[a]
    strides = [0] * len(perm)
    for a, p in enumerate(perm):
        strides[p] = cstr[a]
    if file_dtype == "f32":
        data = stored.astype(np.float32)
    elif file_dtype == "f16":
        data = stored.astype(np.float16)
    elif file_dtype == "bf16":
        data = ref.bf16_bits(stored)
    elif file_dtype == "bool":
        data = stored.astype(np.uint8)
    elif file_dtype == "i32":
        data = stored.astype(np.int32)
    else:
        raise ValueError(file_dtype)
    rel = f"vectors/{case_id}/{name}.npy"
    files[rel] = npy_bytes(data, FILE_DESCR[file_dtype])
    entry = {"file": rel, "dtype": dtype, "shape": logical, "storage_order": perm,
             "strides": strides}
    if base_shape is not None:
        lead = len(logical) - len(base_shape)
        vstr = []
        for i, n in enumerate(logical):
            a = i - lead
            bcast = a < 0 or (base_shape[a] == 1 and n != 1)
            vstr.append(0 if bcast else strides[i])
        entry["view_strides"] = vstr
    return entry


class Case:
    """One conformance case: parameters, inputs, reference outputs, file writing."""

    def __init__(self, cid: str, desc: str, tags, *, dtype="f32", out_dtype=None, B=2, Nq=10,
                 Nk=10, Hq=2, Hkv=2, D=16, layout="bshd", out_layout=None, amp=1.7320508,
                 backward=True, seqlens_q=None, seqlens_k=None, mask=None, alibi=None,
                 grad_atol_scale=1.0, kv_batch_broadcast=False, **opts):
        self.id = cid
        self.desc = desc
        self.tags = list(tags)
        self.dtype = dtype
        self.out_dtype = out_dtype or dtype
        self.varlen = seqlens_q is not None
        self.B, self.Nq, self.Nk, self.Hq, self.Hkv, self.D = B, Nq, Nk, Hq, Hkv, D
        self.seqlens_q, self.seqlens_k = seqlens_q, seqlens_k
        if self.varlen:
            self.B = len(seqlens_q)
            self.Nq = max(seqlens_q) if seqlens_q else 0
            self.Nk = max(seqlens_k) if seqlens_k else 0
        # layout: a name for every tensor, or a dict per tensor name
        self.layout = layout
        self.out_layout = out_layout
        self.amp = amp
        self.backward = backward
        self.mask_spec = mask  # dict(kind=bool|add, shape=[...], dtype=..., ...) or None
        self.alibi_spec = alibi  # "h" | "bh" | np.ndarray | None
        self.opts = dict(mask_mode=0, softmax_scale=0.0, softcap=0.0, has_window=0, flags=0,
                         window_left=0, window_right=0, max_seqlen_q=0, max_seqlen_k=0)
        for key, val in opts.items():
            if key not in self.opts:
                raise KeyError(f"{cid}: unknown option {key}")
            self.opts[key] = val
        self.opts["softmax_scale"] = f32r(self.opts["softmax_scale"])
        self.opts["softcap"] = f32r(self.opts["softcap"])
        self.seed = zlib.crc32(cid.encode()) & 0xFFFFFFFF
        self.tol_class = max([self.dtype, self.out_dtype], key=PRECISION_ORDER.index)
        self.grad_atol_scale = grad_atol_scale
        # k/v stored with batch 1 and passed to umfa as [B, ...] with batch stride 0
        self.kv_batch_broadcast = kv_batch_broadcast

    def tolerances(self, names):
        base = TOLERANCES[self.tol_class]
        out = {}
        for n in names:
            t = dict(base["lse" if n == "lse" else "out" if n == "out" else "grad"])
            if n in ("dq", "dk", "dv"):
                t["atol"] = t["atol"] * self.grad_atol_scale
            out[n] = t
        return out

    # -- tensors -------------------------------------------------------------------------------

    def _layout_of(self, name: str) -> str:
        lay = self.layout
        if name in ("out", "dq", "dk", "dv") and self.out_layout is not None:
            lay = self.out_layout
        if isinstance(lay, dict):
            lay = lay.get(name, "thd" if self.varlen else "bshd")
        if self.varlen and lay in ("bshd", "bhsd", "sbhd"):
            lay = {"bshd": "thd", "bhsd": "htd"}.get(lay, lay)
        return lay

    def logical_shapes(self):
        if self.varlen:
            tq, tk = sum(self.seqlens_q), sum(self.seqlens_k)
            return {"q": [tq, self.Hq, self.D], "k": [tk, self.Hkv, self.D],
                    "v": [tk, self.Hkv, self.D], "lse": [self.Hq, tq]}
        return {"q": [self.B, self.Nq, self.Hq, self.D], "k": [self.B, self.Nk, self.Hkv, self.D],
                "v": [self.B, self.Nk, self.Hkv, self.D], "lse": [self.B, self.Hq, self.Nq]}

    def build(self):
        r = Rand(self.seed)
        sh = self.logical_shapes()
        q = ref.round_to(r.uniform(sh["q"]) * self.amp, self.dtype)
        kv_gen = [1] + sh["k"][1:] if self.kv_batch_broadcast else sh["k"]
        k = ref.round_to(r.uniform(kv_gen) * self.amp, self.dtype)
        v = ref.round_to(r.uniform(kv_gen) * 1.7320508, self.dtype)
        self.k_base, self.v_base = k, v
        if self.kv_batch_broadcast:
            k = np.broadcast_to(k, sh["k"])
            v = np.broadcast_to(v, sh["v"])
        dout = ref.round_to(r.uniform(sh["q"]) * 1.7320508, self.dtype) if self.backward else None
        o = ref.Options(**self.opts)
        self.mask_arr = None
        if self.mask_spec is not None:
            ms = self.mask_spec
            shape = list(ms["shape"])
            if ms["kind"] == "bool":
                m = r.bernoulli(shape, ms.get("p", 0.7))
                for idx in ms.get("false_rows", []):  # fully masked rows
                    m[tuple(idx)] = False
                for idx in ms.get("true_cols", []):
                    m[tuple(idx)] = True
                self.mask_arr = m
                o.attn_mask = self._mask_view(m)
            else:
                m = r.uniform(shape) * ms.get("amp", 2.0)
                for idx in ms.get("ninf", []):
                    m[tuple(idx)] = -np.inf
                mdt = ms.get("dtype", "f32")
                m = ref.round_to(m, mdt)
                self.mask_arr = m
                self.mask_dtype = mdt
                o.attn_mask = self._mask_view(m)
        self.alibi_arr = None
        if self.alibi_spec is not None:
            if isinstance(self.alibi_spec, str) and self.alibi_spec == "h":
                a = alibi_default(self.Hq)
            elif isinstance(self.alibi_spec, str) and self.alibi_spec == "bh":
                a = r.uniform([self.B, self.Hq], 0.05, 1.0)
            else:
                a = np.asarray(self.alibi_spec, dtype=np.float64)
            a = ref.round_to(a, "f32")
            self.alibi_arr = a
            o.alibi_slopes = a
        if self.varlen:
            self.cu_q = np.concatenate([[0], np.cumsum(self.seqlens_q)]).astype(np.int32)
            self.cu_k = np.concatenate([[0], np.cumsum(self.seqlens_k)]).astype(np.int32)
            o.cu_seqlens_q, o.cu_seqlens_k = self.cu_q, self.cu_k
        res = ref.attention(q, k, v, o, dout=dout)
        self.q, self.k, self.v, self.dout = q, k, v, dout
        self.res = res
        for name, x in (("out", res.out), ("lse", res.lse), ("dq", res.dq), ("dk", res.dk),
                        ("dv", res.dv)):
            if x is not None and np.isnan(x).any():
                raise RuntimeError(f"{self.id}: reference produced NaN in {name}")

    def _mask_view(self, m):
        view = self.mask_spec.get("view_shape")
        if view is None:
            return m
        return np.broadcast_to(m.reshape((1,) * (len(view) - m.ndim) + m.shape), view)

    # -- writing -------------------------------------------------------------------------------

    def _tensor(self, files, name, arr, dtype, file_dtype, perm, base_shape=None):
        return tensor_entry(files, self.id, name, arr, dtype, file_dtype, perm, base_shape)

    def manifest_entry(self, files):
        perm = lambda name: LAYOUT_PERMS[self._layout_of(name)]  # noqa: E731
        inputs = {
            "q": self._tensor(files, "q", self.q, self.dtype, self.dtype, perm("q")),
            "k": self._tensor(files, "k", self.k, self.dtype, self.dtype, perm("k"),
                              list(self.k_base.shape) if self.kv_batch_broadcast else None),
            "v": self._tensor(files, "v", self.v, self.dtype, self.dtype, perm("v"),
                              list(self.v_base.shape) if self.kv_batch_broadcast else None),
        }
        if self.backward:
            inputs["dout"] = self._tensor(files, "dout", self.dout, self.dtype, self.dtype,
                                          perm("dout"))
        opts = dict(self.opts)
        opts["attn_mask"] = None
        opts["alibi_slopes"] = None
        opts["cu_seqlens_q"] = None
        opts["cu_seqlens_k"] = None
        if self.mask_arr is not None:
            mdt = "bool" if self.mask_arr.dtype == np.bool_ else self.mask_dtype
            if self.mask_spec.get("view_shape") is None:
                opts["attn_mask"] = self._tensor(files, "attn_mask", self.mask_arr, mdt, mdt, None)
            else:
                opts["attn_mask"] = self._tensor(files, "attn_mask", self._mask_view(self.mask_arr),
                                                 mdt, mdt, None, list(self.mask_arr.shape))
        if self.alibi_arr is not None:
            opts["alibi_slopes"] = self._tensor(files, "alibi_slopes", self.alibi_arr, "f32",
                                                "f32", None)
        if self.varlen:
            opts["cu_seqlens_q"] = self._tensor(files, "cu_seqlens_q", self.cu_q, "i32", "i32",
                                                None)
            opts["cu_seqlens_k"] = self._tensor(files, "cu_seqlens_k", self.cu_k, "i32", "i32",
                                                None)
        expected = {
            "out": self._tensor(files, "out", self.res.out, self.out_dtype, "f32", perm("out")),
            "lse": self._tensor(files, "lse", self.res.lse, "f32", "f32", None),
        }
        if self.backward:
            expected["dq"] = self._tensor(files, "dq", self.res.dq, self.out_dtype, "f32",
                                          perm("dq"))
            expected["dk"] = self._tensor(files, "dk", self.res.dk, self.out_dtype, "f32",
                                          perm("dk"))
            expected["dv"] = self._tensor(files, "dv", self.res.dv, self.out_dtype, "f32",
                                          perm("dv"))
        return {
            "id": self.id,
            "description": self.desc,
            "tags": self.tags,
            "seed": self.seed,
            "dtype": self.dtype,
            "out_dtype": self.out_dtype,
            "tolerance_class": self.tol_class,
            "tolerances": self.tolerances(list(expected)),
            "varlen": self.varlen,
            "backward": self.backward,
            "batch": self.B,
            "seqlen_q": self.Nq,
            "seqlen_k": self.Nk,
            "heads_q": self.Hq,
            "heads_kv": self.Hkv,
            "head_dim": self.D,
            "options": opts,
            "inputs": inputs,
            "expected": expected,
        }


def all_cases():
    C = []

    def add(cid, desc, tags, **kw):
        C.append(Case(cid, desc, tags, **kw))

    # --- dtypes, scale, flags -----------------------------------------------------------------
    for dt in ("f32", "f16", "bf16"):
        add(f"basic_{dt}", f"plain attention, {dt}", ["basic", "dtype"], dtype=dt)
        add(f"scale_{dt}", f"explicit softmax_scale, {dt}", ["scale", "dtype"], dtype=dt,
            softmax_scale=0.3)
    add("mixed_bf16_in_f32_out", "bf16 q/k/v/dout, f32 out/dq/dk/dv", ["dtype", "mixed"],
        dtype="bf16", out_dtype="f32")
    add("mixed_f16_in_f32_out", "f16 q/k/v/dout, f32 out/dq/dk/dv", ["dtype", "mixed"],
        dtype="f16", out_dtype="f32")
    add("mixed_f32_in_f16_out", "f32 q/k/v/dout, f16 out/dq/dk/dv", ["dtype", "mixed"],
        dtype="f32", out_dtype="f16")
    add("mixed_f32_in_bf16_out", "f32 q/k/v/dout, bf16 out/dq/dk/dv", ["dtype", "mixed"],
        dtype="f32", out_dtype="bf16")
    add("flag_deterministic", "UMFA_FLAG_DETERMINISTIC set (same values)", ["flags"], flags=1)
    add("large_logits_f32", "scores up to ~|150| (exp would overflow f32 without max shift)",
        ["large_logits"], amp=5.0, softmax_scale=1.0, D=8, Nq=8, Nk=8)
    add("large_logits_bf16", "scores up to ~|150|, bf16 (gradient atol x4: |scale k| ~ 5 "
        "amplifies the rounding of out, which the backward reads)", ["large_logits", "dtype"],
        dtype="bf16", amp=5.0, softmax_scale=1.0, D=8, Nq=8, Nk=8, grad_atol_scale=4.0)
    add("sharp_softmax_f16", "softmax_scale 2.0 (peaked attention), f16 (gradient atol x3)", ["scale", "dtype"],
        dtype="f16", softmax_scale=2.0, D=16, grad_atol_scale=3.0)

    add("forward_only_f32", "forward only (no dout, no expected gradients)", ["forward_only"],
        backward=False, Nq=9, Nk=14)
    add("forward_only_bf16_causal_br", "forward only, bf16, causal bottom-right, Nq > Nk",
        ["forward_only", "causal", "dtype", "masked_rows"], dtype="bf16", backward=False,
        mask_mode=2, Nq=12, Nk=8)

    # --- causal --------------------------------------------------------------------------------
    for mode, mname in ((1, "tl"), (2, "br")):
        add(f"causal_{mname}_square", f"causal {mname}, Nq = Nk", ["causal"], mask_mode=mode)
        add(f"causal_{mname}_q_lt_k", f"causal {mname}, Nq < Nk", ["causal"], mask_mode=mode,
            Nq=7, Nk=12)
        add(f"causal_{mname}_q_gt_k", f"causal {mname}, Nq > Nk" +
            (" (first rows fully masked)" if mode == 2 else ""),
            ["causal"] + (["masked_rows"] if mode == 2 else []), mask_mode=mode, Nq=12, Nk=7)
    add("causal_tl_f16", "causal top-left, f16, Nq < Nk", ["causal", "dtype"], dtype="f16",
        mask_mode=1, Nq=6, Nk=11)
    add("causal_br_bf16", "causal bottom-right, bf16, Nq > Nk", ["causal", "dtype",
        "masked_rows"], dtype="bf16", mask_mode=2, Nq=11, Nk=6)
    add("causal_br_decode", "causal bottom-right decode step: Nq = 1, Nk = 37", ["causal",
        "sizes"], mask_mode=2, Nq=1, Nk=37, Hq=4, Hkv=1)

    # --- sliding window -----------------------------------------------------------------------
    add("window_left", "window_left = 3, right unbounded", ["window"], has_window=1,
        window_left=3, window_right=-1, Nq=9, Nk=13)
    add("window_right", "window_right = 2, left unbounded", ["window"], has_window=1,
        window_left=-1, window_right=2, Nq=9, Nk=13)
    add("window_both", "window (2, 1), Nq < Nk (bottom-right diagonal)", ["window"],
        has_window=1, window_left=2, window_right=1, Nq=9, Nk=13)
    add("window_both_q_gt_k", "window (1, 1), Nq > Nk: rows above the shifted band are empty",
        ["window", "masked_rows"], has_window=1, window_left=1, window_right=1, Nq=13, Nk=9)
    add("window_diag_only", "window (0, 0): only the diagonal", ["window"], has_window=1,
        window_left=0, window_right=0, Nq=8, Nk=8)
    add("window_unbounded", "has_window with both sides < 0 (no restriction)", ["window"],
        has_window=1, window_left=-1, window_right=-1)
    add("window_causal_tl", "window_left 3 with causal top-left (offset 0), Nq < Nk",
        ["window", "causal"], mask_mode=1, has_window=1, window_left=3, window_right=-1,
        Nq=8, Nk=12)
    add("window_causal_br", "window_left 2, window_right 5 with causal bottom-right "
        "(causal forces right 0)", ["window", "causal"], mask_mode=2, has_window=1,
        window_left=2, window_right=5, Nq=8, Nk=12)
    add("window_causal_tl_q_gt_k", "window (2, -1) with causal top-left, Nq > Nk",
        ["window", "causal"], mask_mode=1, has_window=1, window_left=2, window_right=-1,
        Nq=12, Nk=8)
    add("window_f16", "window (4, 0), f16", ["window", "dtype"], dtype="f16", has_window=1,
        window_left=4, window_right=0, Nq=11, Nk=11)
    add("window_bf16", "window (3, 3), bf16, Nq < Nk", ["window", "dtype"], dtype="bf16",
        has_window=1, window_left=3, window_right=3, Nq=7, Nk=12)

    # --- softcap --------------------------------------------------------------------------------
    for dt in ("f32", "f16", "bf16"):
        add(f"softcap_{dt}", f"softcap 2.5 with raw scores up to ~|12|, {dt}",
            ["softcap", "dtype"], dtype=dt, softcap=2.5, amp=3.0)
    add("softcap_causal_br", "softcap 4 + causal bottom-right, Nq < Nk",
        ["softcap", "causal"], softcap=4.0, amp=3.0, mask_mode=2, Nq=6, Nk=10)
    add("softcap_window_alibi", "softcap 3 + window (2, 2) + ALiBi [H]",
        ["softcap", "window", "alibi"], softcap=3.0, amp=2.5, has_window=1, window_left=2,
        window_right=2, alibi="h", Nq=9, Nk=11)

    # --- ALiBi -----------------------------------------------------------------------------------
    for dt in ("f32", "f16", "bf16"):
        add(f"alibi_h_{dt}", f"ALiBi slopes [H] (2^(-8(h+1)/H)), {dt}", ["alibi", "dtype"],
            dtype=dt, alibi="h", Hq=4, Hkv=4)
    add("alibi_bh", "ALiBi slopes [B, H]", ["alibi"], alibi="bh", B=3, Hq=2, Hkv=2)
    add("alibi_q_lt_k", "ALiBi, no mask, Nq < Nk (offset Nk - Nq)", ["alibi"], alibi="h",
        Nq=5, Nk=12)
    add("alibi_q_gt_k", "ALiBi, no mask, Nq > Nk (negative offset)", ["alibi"], alibi="bh",
        Nq=12, Nk=5)
    add("alibi_causal_tl", "ALiBi with causal top-left (offset 0), Nq < Nk",
        ["alibi", "causal"], alibi="h", mask_mode=1, Nq=6, Nk=10)
    add("alibi_causal_br", "ALiBi with causal bottom-right, Nq < Nk", ["alibi", "causal"],
        alibi="bh", mask_mode=2, Nq=6, Nk=10)

    # --- masks -----------------------------------------------------------------------------------
    B, H, Nq, Nk = 2, 2, 8, 11
    base = dict(B=B, Hq=H, Hkv=H, Nq=Nq, Nk=Nk)
    add("mask_bool_full", "bool mask [B, H, Nq, Nk] with a fully masked row",
        ["mask", "mask_bool", "masked_rows"], mask=dict(kind="bool", shape=[B, H, Nq, Nk],
                                                        false_rows=[[1, 0, 3]]), **base)
    add("mask_bool_2d", "bool mask [Nq, Nk] (rank 2, broadcast over B and H)",
        ["mask", "mask_bool"], mask=dict(kind="bool", shape=[Nq, Nk]), **base)
    add("mask_bool_1d", "bool mask [Nk] (rank 1)", ["mask", "mask_bool"],
        mask=dict(kind="bool", shape=[Nk]), **base)
    add("mask_bool_3d", "bool mask [H, Nq, Nk] (rank 3)", ["mask", "mask_bool"],
        mask=dict(kind="bool", shape=[H, Nq, Nk]), **base)
    add("mask_bool_keypad", "bool key-padding mask [B, 1, 1, Nk]", ["mask", "mask_bool"],
        mask=dict(kind="bool", shape=[B, 1, 1, Nk], p=0.6, true_cols=[[0, 0, 0, 0], [1, 0, 0, 0]]),
        **base)
    add("mask_bool_rows", "bool mask [1, H, Nq, 1]: whole query rows masked",
        ["mask", "mask_bool", "masked_rows"], mask=dict(kind="bool", shape=[1, H, Nq, 1], p=0.6),
        **base)
    add("mask_bool_causal_window", "bool [B, 1, Nq, Nk] + causal bottom-right + window left 4",
        ["mask", "mask_bool", "causal", "window"], mask=dict(kind="bool", shape=[B, 1, Nq, Nk]),
        mask_mode=2, has_window=1, window_left=4, window_right=-1, **base)
    for dt in ("f16", "bf16"):
        add(f"mask_bool_{dt}", f"bool mask [B, H, Nq, Nk], {dt}", ["mask", "mask_bool", "dtype"],
            dtype=dt, mask=dict(kind="bool", shape=[B, H, Nq, Nk]), **base)
    add("mask_add_full", "additive f32 mask [B, H, Nq, Nk]", ["mask", "mask_add"],
        mask=dict(kind="add", shape=[B, H, Nq, Nk]), **base)
    add("mask_add_2d_ninf", "additive f32 mask [Nq, Nk] with -inf entries and a -inf row",
        ["mask", "mask_add", "masked_rows"],
        mask=dict(kind="add", shape=[Nq, Nk], ninf=[[2, 0], [2, 5], [4, 1]] + [[6, j]
                                                                            for j in range(Nk)]),
        **base)
    add("mask_add_1d", "additive f32 mask [Nk]", ["mask", "mask_add"],
        mask=dict(kind="add", shape=[Nk], amp=3.0), **base)
    add("mask_add_keypad", "additive [B, 1, 1, Nk] with -inf padding", ["mask", "mask_add"],
        mask=dict(kind="add", shape=[B, 1, 1, Nk], ninf=[[0, 0, 0, 9], [0, 0, 0, 10],
                                                         [1, 0, 0, 10]]), **base)
    add("mask_add_b1qk", "additive [B, 1, Nq, Nk]", ["mask", "mask_add"],
        mask=dict(kind="add", shape=[B, 1, Nq, Nk]), **base)
    add("mask_add_f16", "additive f16 mask [Nq, Nk], f16 inputs", ["mask", "mask_add", "dtype"],
        dtype="f16", mask=dict(kind="add", shape=[Nq, Nk], dtype="f16"), **base)
    add("mask_add_bf16", "additive bf16 mask [B, H, Nq, Nk], bf16 inputs",
        ["mask", "mask_add", "dtype"], dtype="bf16",
        mask=dict(kind="add", shape=[B, H, Nq, Nk], dtype="bf16"), **base)
    add("mask_add_f32_bf16_inputs", "additive f32 mask [Nq, Nk], bf16 inputs",
        ["mask", "mask_add", "dtype"], dtype="bf16", mask=dict(kind="add", shape=[Nq, Nk]),
        **base)
    add("mask_add_f16_f32_inputs", "additive f16 mask [B, 1, Nq, Nk], f32 inputs",
        ["mask", "mask_add", "dtype"], mask=dict(kind="add", shape=[B, 1, Nq, Nk], dtype="f16"),
        **base)
    add("mask_add_everything", "additive [Nq, Nk] + causal top-left + window + softcap + ALiBi "
        "[B, H] + GQA 2", ["mask", "mask_add", "causal", "window", "softcap", "alibi", "gqa"],
        mask=dict(kind="add", shape=[Nq, Nk]), mask_mode=1, has_window=1, window_left=5,
        window_right=-1, softcap=3.5, amp=2.5, alibi="bh", B=2, Hq=4, Hkv=2, Nq=Nq, Nk=Nk)

    add("mask_bool_expanded", "bool mask [Nq, Nk] expanded to [B, H, Nq, Nk]: view_strides 0 "
        "over B and H", ["mask", "mask_bool", "broadcast"],
        mask=dict(kind="bool", shape=[Nq, Nk], view_shape=[B, H, Nq, Nk]), **base)
    add("mask_add_expanded_keypad", "additive mask [B, 1, 1, Nk] expanded to [B, H, Nq, Nk]: "
        "view_strides 0 over H and Nq", ["mask", "mask_add", "broadcast"],
        mask=dict(kind="add", shape=[B, 1, 1, Nk], view_shape=[B, H, Nq, Nk],
                  ninf=[[0, 0, 0, 10], [1, 0, 0, 2]]), **base)
    add("kv_batch_broadcast", "k and v shared by every batch row: view_strides 0 over the batch "
        "(dk/dv are per batch row)", ["broadcast", "layout"], kv_batch_broadcast=True,
        B=3)
    add("kv_batch_broadcast_bhsd_gqa", "k/v BHSD shared by every batch row (view_strides 0), GQA 2, "
        "causal top-left",
        ["broadcast", "layout", "gqa", "causal"], kv_batch_broadcast=True, layout="bhsd", B=2,
        Hq=4, Hkv=2, mask_mode=1, Nq=7, Nk=9)

    # --- GQA / MQA ----------------------------------------------------------------------------
    for dt in ("f32", "f16", "bf16"):
        add(f"gqa2_{dt}", f"GQA ratio 2 (Hq 4, Hkv 2), {dt}", ["gqa", "dtype"], dtype=dt,
            Hq=4, Hkv=2)
    add("gqa4", "GQA ratio 4 (Hq 8, Hkv 2)", ["gqa"], Hq=8, Hkv=2, B=1)
    add("gqa3", "GQA ratio 3 (Hq 3, Hkv 1, odd head count)", ["gqa"], Hq=3, Hkv=1)
    add("mqa", "MQA (Hq 4, Hkv 1)", ["gqa", "mqa"], Hq=4, Hkv=1)
    add("mqa_bf16_causal_br", "MQA, bf16, causal bottom-right, Nq < Nk", ["gqa", "mqa",
        "causal", "dtype"], dtype="bf16", Hq=4, Hkv=1, mask_mode=2, Nq=6, Nk=9)
    add("gqa2_alibi_bh_window", "GQA 2 with ALiBi [B, H] and window (3, 1)",
        ["gqa", "alibi", "window"], Hq=4, Hkv=2, alibi="bh", has_window=1, window_left=3,
        window_right=1)

    # --- layouts --------------------------------------------------------------------------------
    for dt in ("f32", "f16", "bf16"):
        add(f"bhsd_{dt}", f"every tensor stored BHSD (permuted strides), {dt}",
            ["layout", "dtype"], dtype=dt, layout="bhsd", Nq=9, Nk=7)
    add("bhsd_inputs_only", "q/k/v/dout BHSD, out/dq/dk/dv BSHD", ["layout"], layout="bhsd",
        out_layout="bshd")
    add("bhsd_outputs_only", "q/k/v/dout BSHD, out/dq/dk/dv BHSD", ["layout"], layout="bshd",
        out_layout="bhsd")
    add("layout_mixed", "q BSHD, k BHSD, v SBHD, dout BHSD, out SBHD, dq BHSD, dk SBHD, dv BSHD",
        ["layout"], layout=dict(q="bshd", k="bhsd", v="sbhd", dout="bhsd", out="sbhd",
                                dq="bhsd", dk="sbhd", dv="bshd"))
    add("bhsd_gqa_causal_tl", "BHSD with GQA 2 and causal top-left (PyTorch style)",
        ["layout", "gqa", "causal"], layout="bhsd", Hq=4, Hkv=2, mask_mode=1)
    add("sbhd_mask_bool", "SBHD storage + bool mask [B, 1, Nq, Nk]", ["layout", "mask",
        "mask_bool"], layout="sbhd", mask=dict(kind="bool", shape=[2, 1, 10, 10]))

    # --- varlen -----------------------------------------------------------------------------------
    add("varlen_basic", "varlen, 4 sequences incl. an empty query sequence", ["varlen"],
        seqlens_q=[5, 0, 7, 3], seqlens_k=[6, 4, 7, 1])
    add("varlen_k_empty", "varlen, a sequence with 0 keys (its rows fully masked)",
        ["varlen", "masked_rows"], seqlens_q=[4, 3, 2], seqlens_k=[5, 0, 3])
    add("varlen_single", "varlen with one sequence", ["varlen"], seqlens_q=[9], seqlens_k=[12])
    add("varlen_causal_br", "varlen, causal bottom-right, Nq > Nk in one sequence",
        ["varlen", "causal", "masked_rows"], mask_mode=2, seqlens_q=[4, 6, 3],
        seqlens_k=[7, 3, 3])
    add("varlen_causal_tl", "varlen, causal top-left", ["varlen", "causal"], mask_mode=1,
        seqlens_q=[4, 6, 3], seqlens_k=[7, 3, 3])
    add("varlen_window", "varlen, window (2, 1)", ["varlen", "window"], has_window=1,
        window_left=2, window_right=1, seqlens_q=[5, 8], seqlens_k=[9, 6])
    add("varlen_softcap", "varlen, softcap 2.5", ["varlen", "softcap"], softcap=2.5, amp=3.0,
        seqlens_q=[5, 8], seqlens_k=[9, 6])
    add("varlen_alibi_h", "varlen, ALiBi [H], causal bottom-right", ["varlen", "alibi",
        "causal"], alibi="h", mask_mode=2, seqlens_q=[3, 7, 5], seqlens_k=[8, 7, 6])
    add("varlen_alibi_bh", "varlen, ALiBi [B, H] (B = number of sequences)", ["varlen",
        "alibi"], alibi="bh", seqlens_q=[3, 7, 5], seqlens_k=[8, 7, 6])
    add("varlen_gqa2", "varlen, GQA 2", ["varlen", "gqa"], Hq=4, Hkv=2, seqlens_q=[6, 4],
        seqlens_k=[5, 9])
    add("varlen_mqa_causal_tl", "varlen, MQA, causal top-left", ["varlen", "gqa", "mqa",
        "causal"], Hq=4, Hkv=1, mask_mode=1, seqlens_q=[6, 4], seqlens_k=[5, 9])
    add("varlen_f16", "varlen, f16", ["varlen", "dtype"], dtype="f16", seqlens_q=[5, 0, 7],
        seqlens_k=[6, 4, 7])
    add("varlen_bf16_causal_br", "varlen, bf16, causal bottom-right", ["varlen", "dtype",
        "causal"], dtype="bf16", mask_mode=2, seqlens_q=[5, 2, 7], seqlens_k=[6, 4, 7])
    add("varlen_htd", "varlen with every tensor stored [H, T, D] (permuted strides)",
        ["varlen", "layout"], layout="htd", seqlens_q=[5, 3, 7], seqlens_k=[6, 4, 7])
    add("varlen_max_seqlen", "varlen with max_seqlen_q/k given (non-tight upper bounds)",
        ["varlen"], max_seqlen_q=10, max_seqlen_k=12, seqlens_q=[5, 3, 7], seqlens_k=[6, 4, 7])

    # --- sizes ---------------------------------------------------------------------------------
    add("n1", "Nq = Nk = 1", ["sizes"], Nq=1, Nk=1)
    add("n3", "Nq = Nk = 3", ["sizes"], Nq=3, Nk=3)
    add("n127", "Nq = Nk = 127, D 8", ["sizes"], B=1, Nq=127, Nk=127, D=8)
    add("n127_causal_br_f16", "Nq = Nk = 127, causal, f16, D 8", ["sizes", "causal", "dtype"],
        dtype="f16", B=1, Nq=127, Nk=127, D=8, mask_mode=2)
    add("n127_window_bf16", "Nq = Nk = 127, window (16, 0), bf16, D 8", ["sizes", "window",
        "dtype"], dtype="bf16", B=1, Nq=127, Nk=127, D=8, has_window=1, window_left=16,
        window_right=0)
    add("nq1_nk127", "Nq = 1, Nk = 127", ["sizes"], Nq=1, Nk=127, D=8)
    add("nq127_nk1", "Nq = 127, Nk = 1", ["sizes"], Nq=127, Nk=1, D=8, B=1)
    add("nq3_nk127_causal_tl", "Nq = 3, Nk = 127, causal top-left", ["sizes", "causal"], Nq=3,
        Nk=127, D=8, B=1, mask_mode=1)
    add("n300_causal_br_gqa", "Nq = Nk = 300 (several blocks), causal bottom-right, GQA 2, D 8",
        ["sizes", "long", "causal", "gqa"], B=1, Hq=2, Hkv=1, Nq=300, Nk=300, D=8, mask_mode=2)
    add("nq200_nk333_window_bf16", "Nq 200, Nk 333, window (50, 10), bf16, D 8",
        ["sizes", "long", "window", "dtype"], dtype="bf16", B=1, Hq=1, Hkv=1, Nq=200, Nk=333,
        D=8, has_window=1, window_left=50, window_right=10)
    add("varlen_long_f16", "varlen with sequences of 130/1/257 queries, causal bottom-right, f16",
        ["varlen", "long", "causal", "dtype"], dtype="f16", Hq=2, Hkv=1, D=8, mask_mode=2,
        seqlens_q=[130, 1, 257], seqlens_k=[200, 129, 257])
    add("nq0", "Nq = 0 (nothing to compute; dk/dv are zero)", ["sizes", "empty"], Nq=0, Nk=5)
    add("nk0", "Nk = 0 (every row fully masked)", ["sizes", "empty", "masked_rows"], Nq=5, Nk=0)
    add("nq0_nk0", "Nq = Nk = 0", ["sizes", "empty"], Nq=0, Nk=0)
    for d, dt, extra in ((1, "f32", {}), (8, "f32", {}), (40, "f32", {}), (72, "f32", {}),
                         (96, "f32", {}), (256, "f32", {}), (40, "f16", dict(mask_mode=2)),
                         (72, "f16", {}), (96, "bf16", dict(mask_mode=1)), (256, "bf16", {}),
                         (256, "f16", dict(has_window=1, window_left=2, window_right=2))):
            cid = f"d{d}_{dt}" + ("" if not extra else "_" + "_".join(
                {"mask_mode": "causal", "has_window": "window"}[key] for key in extra
                if key in ("mask_mode", "has_window")))
            add(cid, f"head_dim {d}, {dt}", ["head_dim", "dtype"] + (["causal"] if "mask_mode"
                in extra else []) + (["window"] if "has_window" in extra else []), dtype=dt,
                D=d, B=1, Nq=7, Nk=9, **extra)
    add("d72_gqa_bhsd_bf16", "head_dim 72, GQA 2, BHSD, bf16", ["head_dim", "gqa", "layout",
        "dtype"], dtype="bf16", D=72, B=1, Hq=4, Hkv=2, Nq=5, Nk=6, layout="bhsd")
    return C


# ------------------------------------------------------------------------------------------------
# Merge cases (umfa_attention_merge): a running (out, lse) and the partial results merged into it,
# one call per part, in order.

# Storage orders of lse [B, H, N] (dense) / [H, T] (varlen).
LSE_PERMS = {"bhn": [0, 1, 2], "bnh": [0, 2, 1], "ht": [0, 1], "th": [1, 0]}


class MergeCase:
    """One merge case.

    source "random": the running result and the parts are drawn at random (LSE in [-4, 4], out
    in [-2, 2]); rows listed in ninf_running / ninf_part (indices into the rows of the flattened
    [..., N, H] grid, taken modulo its size) get LSE -inf and an out of NaN, which the library
    must ignore. source "attention": the parts are forward results of the float64 reference over
    key shards (cut at `cuts`, visibility `causal` top-left or a random bool mask with a fully
    masked row), rounded to part_dtype; the running result starts as LSE -inf, out NaN.
    The expected values fold reference.merge over the parts, in float64.
    """

    def __init__(self, cid, desc, tags, *, out_dtype="f32", part_dtype="f32", B=2, N=7, H=3,
                 D=16, varlen=False, out_layout="bshd", part_layout="bshd", lse_layout=None,
                 part_lse_layout=None, parts=1, source="random", ninf_running=(1, 8),
                 ninf_part=(1, 5), lse_amp=4.0, cuts=None, causal=False, Hkv=None):
        self.id, self.desc, self.tags = cid, desc, list(tags)
        self.out_dtype, self.part_dtype = out_dtype, part_dtype
        self.varlen = varlen
        self.B, self.N, self.H, self.D = (1 if varlen else B), N, H, D
        self.Hkv = Hkv or H
        dense_lse, packed_lse = "bhn", "ht"
        self.out_layout = {"bshd": "thd", "bhsd": "htd"}.get(out_layout, out_layout) if varlen \
            else out_layout
        self.part_layout = {"bshd": "thd", "bhsd": "htd"}.get(part_layout, part_layout) if varlen \
            else part_layout
        self.lse_layout = lse_layout or (packed_lse if varlen else dense_lse)
        self.part_lse_layout = part_lse_layout or self.lse_layout
        self.nparts = parts
        self.source = source
        self.ninf_running, self.ninf_part = ninf_running, ninf_part
        self.lse_amp = lse_amp
        self.cuts, self.causal = cuts, causal
        self.seed = zlib.crc32(cid.encode()) & 0xFFFFFFFF
        self.tol_class = max([out_dtype, part_dtype], key=PRECISION_ORDER.index)

    def _shapes(self):
        if self.varlen:
            return [self.N, self.H, self.D], [self.H, self.N]
        return [self.B, self.N, self.H, self.D], [self.B, self.H, self.N]

    def _random_result(self, r: Rand, dtype: str, ninf):
        """(out, lse) drawn at random, -inf LSE (and NaN out) on the listed rows."""
        out_shape, lse_shape = self._shapes()
        out = ref.round_to(r.uniform(out_shape, -2.0, 2.0), dtype)
        lse = ref.round_to(r.uniform(lse_shape, -self.lse_amp, self.lse_amp), "f32")
        rows = np.swapaxes(lse, -1, -2)  # a view of lse with out's [..., N, H] row grid
        for idx in ninf:
            at = np.unravel_index(idx % rows.size, rows.shape)
            rows[at] = -np.inf
            out[at] = np.nan
        return out, lse

    def _attention_parts(self, r: Rand):
        """Forward results of the reference over the key shards, as (out, lse) per part."""
        B, N, Hq, Hkv, D = self.B, self.N, self.H, self.Hkv, self.D
        q = ref.round_to(r.uniform([B, N, Hq, D]) * 1.7320508, "f32")
        nk = self.cuts[-1]
        k = ref.round_to(r.uniform([B, nk, Hkv, D]) * 1.7320508, "f32")
        v = ref.round_to(r.uniform([B, nk, Hkv, D]) * 1.7320508, "f32")
        if self.causal:
            visible = np.arange(nk)[None, :] <= np.arange(N)[:, None]
        else:
            visible = r.bernoulli([N, nk], 0.6)
            visible[0, :] = False  # a query row that sees no key at all
        parts = []
        for c0, c1 in zip(self.cuts[:-1], self.cuts[1:]):
            o = ref.Options(attn_mask=visible[:, c0:c1])
            res = ref.attention(q, k[:, c0:c1], v[:, c0:c1], o)
            parts.append((ref.round_to(res.out, self.part_dtype), res.lse))
        self.full = ref.attention(q, k, v, ref.Options(attn_mask=visible))
        return parts

    def build(self):
        r = Rand(self.seed)
        out_shape, lse_shape = self._shapes()
        if self.source == "random":
            self.run_out, self.run_lse = self._random_result(r, self.out_dtype, self.ninf_running)
            self.parts = [self._random_result(r, self.part_dtype, self.ninf_part)
                          for _ in range(self.nparts)]
        else:
            self.parts = self._attention_parts(r)
            self.run_out = np.full(out_shape, np.nan)
            self.run_lse = np.full(lse_shape, -np.inf)
        out, lse = self.run_out, self.run_lse
        for part_out, part_lse in self.parts:
            out, lse = ref.merge(out, lse, part_out, part_lse)
        if np.isnan(out).any() or np.isnan(lse).any():
            raise RuntimeError(f"{self.id}: reference merge produced NaN")
        self.exp_out, self.exp_lse = out, lse

    def manifest_entry(self, files):
        def entry(name, arr, dtype, file_dtype, layout, perms):
            return tensor_entry(files, self.id, name, arr, dtype, file_dtype, perms[layout])

        inputs = {
            "out": entry("out", self.run_out, self.out_dtype, self.out_dtype, self.out_layout,
                         LAYOUT_PERMS),
            "lse": entry("lse", self.run_lse, "f32", "f32", self.lse_layout, LSE_PERMS),
        }
        parts = []
        for i, (part_out, part_lse) in enumerate(self.parts):
            parts.append({
                "out": entry(f"part{i}_out", part_out, self.part_dtype, self.part_dtype,
                             self.part_layout, LAYOUT_PERMS),
                "lse": entry(f"part{i}_lse", part_lse, "f32", "f32", self.part_lse_layout,
                             LSE_PERMS),
            })
        expected = {
            "out": entry("expected_out", self.exp_out, self.out_dtype, "f32", self.out_layout,
                         LAYOUT_PERMS),
            "lse": entry("expected_lse", self.exp_lse, "f32", "f32", self.lse_layout, LSE_PERMS),
        }
        base = TOLERANCES[self.tol_class]
        return {
            "id": self.id,
            "description": self.desc,
            "tags": self.tags,
            "seed": self.seed,
            "out_dtype": self.out_dtype,
            "part_dtype": self.part_dtype,
            "tolerance_class": self.tol_class,
            "tolerances": {"out": dict(base["out"]), "lse": dict(base["lse"])},
            "varlen": self.varlen,
            "batch": self.B,
            "seqlen": self.N,
            "heads": self.H,
            "head_dim": self.D,
            "inputs": inputs,
            "parts": parts,
            "expected": expected,
        }


def all_merge_cases():
    C = []

    def add(cid, desc, tags, **kw):
        C.append(MergeCase(cid, desc, ["merge"] + tags, **kw))

    for dt in ("f32", "f16", "bf16"):
        add(f"merge_{dt}", f"one part into a running result, {dt}; -inf LSE (NaN out) on some "
            "rows of either side, on one row of both", ["dtype", "masked_rows"], out_dtype=dt,
            part_dtype=dt, ninf_running=(1, 8, 30), ninf_part=(1, 5, 17))
    for odt, pdt in (("f32", "bf16"), ("f32", "f16"), ("f16", "f32"), ("bf16", "f16")):
        add(f"merge_mixed_out_{odt}_part_{pdt}", f"running out {odt}, part {pdt}",
            ["dtype", "mixed"], out_dtype=odt, part_dtype=pdt)
    add("merge_masked_part", "a fully masked part (every LSE -inf): the running result is "
        "unchanged", ["masked_rows"], ninf_part=tuple(range(42)))
    add("merge_empty_running", "an empty running result (every LSE -inf, out NaN): the result "
        "is the part", ["masked_rows"], ninf_running=tuple(range(42)), ninf_part=())
    add("merge_both_masked", "both sides fully masked: out 0, LSE -inf", ["masked_rows"],
        ninf_running=tuple(range(42)), ninf_part=tuple(range(42)))
    add("merge_far_apart", "LSEs up to 60 apart: the smaller side's weight underflows",
        ["large_logits"], lse_amp=30.0, ninf_running=(), ninf_part=())
    add("merge_three_parts_f16", "three parts folded into an f16 running result",
        ["dtype"], out_dtype="f16", part_dtype="f16", parts=3, ninf_part=(2, 9))
    add("merge_layouts", "out BHSD, part SBHD, lse stored [B, N, H], part_lse [B, H, N]",
        ["layout"], out_layout="bhsd", part_layout="sbhd", lse_layout="bnh",
        part_lse_layout="bhn")
    add("merge_varlen", "varlen results: out [total, H, D], lse [H, total]", ["varlen"],
        varlen=True, N=11, H=2, D=8)
    add("merge_varlen_htd_bf16", "varlen, out stored HTD and lse [total, H], bf16 part",
        ["varlen", "layout", "dtype", "mixed"], varlen=True, N=9, H=3, D=12, out_layout="bhsd",
        lse_layout="th", part_dtype="bf16")
    add("merge_d1", "head_dim 1", ["head_dim"], D=1, N=5)
    add("merge_d256_bf16", "head_dim 256, bf16", ["head_dim", "dtype"], D=256, B=1, N=3, H=2,
        out_dtype="bf16", part_dtype="bf16")
    add("merge_shards_causal", "forward results over 3 key shards of a causal (top-left) "
        "problem, folded into an empty running result: the early query rows see no key of the "
        "later shards (fully masked rows within a shard)", ["shards", "causal", "masked_rows"],
        source="attention", B=1, N=12, H=2, D=16, parts=3, cuts=[0, 4, 8, 12], causal=True)
    add("merge_shards_mask_gqa", "forward results over 4 key shards of a GQA problem with a "
        "random bool mask (query row 0 sees no key): bf16 parts, f32 running out",
        ["shards", "gqa", "mask_bool", "masked_rows", "mixed"], source="attention", B=2, N=9,
        H=4, Hkv=2, D=8, parts=4, cuts=[0, 3, 5, 11, 13], part_dtype="bf16")
    return C


# ------------------------------------------------------------------------------------------------


def build_all():
    cases = all_cases()
    merges = all_merge_cases()
    ids = [c.id for c in cases + merges]  # also the folder names under vectors/
    if len(set(ids)) != len(ids):
        raise RuntimeError("duplicate case ids")
    files: dict[str, bytes] = {}
    entries = []
    for c in cases:
        c.build()
        entries.append(c.manifest_entry(files))
    merge_entries = []
    for c in merges:
        c.build()
        merge_entries.append(c.manifest_entry(files))
    manifest = {
        "format_version": FORMAT_VERSION,
        "description": "umfa conformance vectors from the float64 reference "
                       "(conformance/reference.py); see conformance/README.md",
        "generator": "conformance/generate.py",
        "file_dtypes": dict(FILE_DESCR),
        "expected_file_dtype": "f32",
        "tolerances": TOLERANCES,
        "cases": entries,
        "merge_cases": merge_entries,
    }
    text = json.dumps(manifest, indent=1, sort_keys=False, allow_nan=False) + "\n"
    files["manifest.json"] = text.encode("utf-8")
    return files


def write_tree(root: str, files: dict) -> None:
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def list_tree(root: str):
    out = set()
    if os.path.exists(os.path.join(root, "manifest.json")):
        out.add("manifest.json")
    vec = os.path.join(root, "vectors")
    for d, _, fs in os.walk(vec):
        for f in fs:
            out.add(os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temp dir and verify the committed files are identical")
    ap.add_argument("--list", action="store_true", help="print case ids and exit")
    ap.add_argument("--out", default=HERE, help="output directory (default: conformance/)")
    args = ap.parse_args()

    if args.list:
        for c in all_cases() + all_merge_cases():
            print(f"{c.id:28s} {c.desc}")
        return 0

    files = build_all()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            write_tree(tmp, files)
            want = list_tree(tmp)
            have = list_tree(HERE)
            bad = []
            for rel in sorted(want | have):
                if rel not in have:
                    bad.append(f"missing: {rel}")
                elif rel not in want:
                    bad.append(f"stale (not generated): {rel}")
                elif not filecmp.cmp(os.path.join(tmp, rel), os.path.join(HERE, rel),
                                     shallow=False):
                    bad.append(f"differs: {rel}")
            if bad:
                for line in bad:
                    print(line)
                print(f"check FAILED: {len(bad)} file(s) differ; run python3 conformance/generate.py")
                return 1
            print(f"check passed: {len(want)} files identical "
                  f"({sum(len(b) for b in files.values())} bytes)")
            return 0

    root = os.path.abspath(args.out)
    vec = os.path.join(root, "vectors")
    if os.path.isdir(vec):
        shutil.rmtree(vec)
    write_tree(root, files)
    n = sum(1 for r in files if r.endswith(".npy"))
    size = sum(len(b) for b in files.values())
    manifest = json.loads(files["manifest.json"])
    print(f"wrote {len(manifest['cases'])} cases and {len(manifest['merge_cases'])} merge cases, "
          f"{n} .npy files, {size} bytes to {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
