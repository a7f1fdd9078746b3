#!/usr/bin/env python3
"""Correctness checks of umfa's CUDA backend, through the Python binding, on a CUDA GPU.

1. Every conformance vector (conformance/manifest.json) with CUDA tensors: NaN-poisoned
   outputs, the manifest's per-case tolerances, the forward's own out/lse fed to the backward.
2. Random shapes and options against a float64 reference computed on the GPU
   (torch.nn.functional.scaled_dot_product_attention in float64 where it applies, an explicit
   float64 implementation for FlashAttention-style options), forward and gradients, with relative
   L2 error thresholds; every output NaN-poisoned first.
3. Deterministic backward: two runs must be bit-identical.

Usage: PYTHONPATH=bindings/python/src UMFA_LIB_DIR=dist/native/linux-x64/lib \
           python3 bench/cuda/check_cuda.py [--json OUT.json] [--quick]
Exit status 0 when everything passed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import umfa

ROOT = Path(__file__).resolve().parents[2]
DEV = torch.device("cuda")
TORCH_DTYPE = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}

# Relative L2 error thresholds (||got - ref|| / ||ref||) for the random checks.
THRESH = {
    torch.float16: {"out": 4e-3, "grad": 1.5e-2},
    torch.bfloat16: {"out": 2.5e-2, "grad": 6e-2},
    torch.float32: {"out": 2e-5, "grad": 2e-4},
}
LSE_ATOL = {torch.float16: 2e-3, torch.bfloat16: 2e-3, torch.float32: 2e-5}

MASK_NONE, MASK_TL, MASK_BR = 0, 1, 2


# ------------------------------------------------------------------------------------------------
# Conformance vectors
# ------------------------------------------------------------------------------------------------

def _load_input(base: Path, e: dict) -> torch.Tensor:
    arr = np.load(base / e["file"])
    if e["dtype"] == "bf16":
        t = torch.from_numpy(arr.astype(np.uint16).view(np.int16).copy()).view(torch.bfloat16)
    elif e["dtype"] == "bool":
        t = torch.from_numpy(arr.astype(np.bool_))
    else:
        t = torch.from_numpy(np.ascontiguousarray(arr))
    order = e["storage_order"]
    t = t.to(DEV)
    if t.numel() == 0:  # keep a non-NULL data pointer for empty tensors
        t = torch.empty(1, dtype=t.dtype, device=DEV).as_strided(t.shape, t.stride())
    return t.permute(*np.argsort(order).tolist())


def _alloc_output(e: dict, dtype: torch.dtype) -> torch.Tensor:
    order = e["storage_order"]
    file_shape = [e["shape"][p] for p in order]
    n = int(np.prod(file_shape)) if file_shape else 1
    store = torch.full((max(n, 1),), float("nan"), dtype=dtype, device=DEV)
    t = store[:n].view(file_shape) if n > 0 else store.as_strided(file_shape, [0] * len(file_shape))
    return t.permute(*np.argsort(order).tolist())


def _storage_flat(t: torch.Tensor, order) -> np.ndarray:
    return t.permute(*order).contiguous().float().cpu().numpy().ravel()


def _compare(got: np.ndarray, exp: np.ndarray, tol: dict) -> tuple[bool, float]:
    if got.size == 0:
        return True, 0.0
    ninf = np.isneginf(exp)
    ok = np.all(np.isneginf(got[ninf])) if ninf.any() else True
    g, x = got[~ninf], exp[~ninf]
    if np.isnan(g).any():
        return False, float("nan")
    err = np.abs(g - x)
    ok = ok and bool(np.all(err <= tol["atol"] + tol["rtol"] * np.abs(x)))
    return ok, float(err.max()) if err.size else 0.0


def run_conformance(ctx: umfa.Context, manifest: Path) -> dict:
    m = json.loads(manifest.read_text())
    base = manifest.parent
    results = []
    stream = torch.cuda.current_stream().cuda_stream
    for case in m["cases"]:
        cid = case["id"]
        o = case["options"]
        try:
            ins = {k: _load_input(base, e) for k, e in case["inputs"].items()}
            opts = dict(stream=stream)
            opts["mask_mode"] = o["mask_mode"]
            if o["softmax_scale"]:
                opts["softmax_scale"] = o["softmax_scale"]
            opts["softcap"] = o["softcap"]
            if o["has_window"]:
                # window_size (-1, -1) means "no window" to the binding; the ABI's has_window with
                # both bounds unbounded is the same thing.
                opts["window_size"] = (o["window_left"], o["window_right"])
            for key in ("attn_mask", "alibi_slopes", "cu_seqlens_q", "cu_seqlens_k"):
                if o[key] is not None:
                    opts[key] = _load_input(base, o[key])
            # Device offsets are not read back: CUDA varlen calls need the bounds (the case's
            # longest sequences) when the vector leaves them to the core.
            varlen = o["cu_seqlens_q"] is not None
            opts["max_seqlen_q"] = o["max_seqlen_q"] or (case["seqlen_q"] if varlen else 0)
            opts["max_seqlen_k"] = o["max_seqlen_k"] or (case["seqlen_k"] if varlen else 0)
            opts["deterministic"] = bool(o["flags"] & 1)
            exp = case["expected"]
            odt = TORCH_DTYPE[case["out_dtype"]]
            out = _alloc_output(exp["out"], odt)
            lse = _alloc_output(exp["lse"], torch.float32)
            ctx.forward(ins["q"], ins["k"], ins["v"], out, lse, **opts)
            got = {"out": out, "lse": lse}
            if case["backward"]:
                grads = {n: _alloc_output(exp[n], odt) for n in ("dq", "dk", "dv")}
                ctx.backward(ins["q"], ins["k"], ins["v"], out, ins["dout"], lse, grads["dq"],
                             grads["dk"], grads["dv"], **opts)
                got.update(grads)
            torch.cuda.synchronize()
            ok_all, worst = True, {}
            for name, t in got.items():
                e = exp[name]
                ref = np.load(base / e["file"]).astype(np.float32).ravel()
                ok, err = _compare(_storage_flat(t, e["storage_order"]), ref,
                                   case["tolerances"][name])
                ok_all &= ok
                worst[name] = err
            results.append({"id": cid, "ok": bool(ok_all), "max_abs_err": worst})
            print(f"{'PASS' if ok_all else 'FAIL'} conformance {cid} "
                  + " ".join(f"{k}={v:.2e}" for k, v in worst.items()), flush=True)
        except Exception as exc:  # noqa: BLE001 - report and go on
            results.append({"id": cid, "ok": False, "error": repr(exc)})
            print(f"FAIL conformance {cid}: {exc!r}", flush=True)
    n_ok = sum(r["ok"] for r in results)
    print(f"conformance (python, cuda): {n_ok} passed, {len(results) - n_ok} failed", flush=True)
    return {"passed": n_ok, "failed": len(results) - n_ok, "cases": results}


# ------------------------------------------------------------------------------------------------
# float64 reference
# ------------------------------------------------------------------------------------------------

def reference(q, k, v, *, mask_mode=0, scale=None, softcap=0.0, window=None, alibi=None,
              attn_mask=None):
    """Dense BSHD float64 reference with every umfa option; returns (out BSHD, lse [B,H,Nq])."""
    B, Nq, Hq, D = q.shape
    Nk, Hkv = k.shape[1], k.shape[2]
    g = Hq // Hkv
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    qh = q.permute(0, 2, 1, 3)
    kh = k.permute(0, 2, 1, 3).repeat_interleave(g, dim=1)
    vh = v.permute(0, 2, 1, 3).repeat_interleave(g, dim=1)
    s = (qh @ kh.transpose(-1, -2)) * scale
    if softcap > 0:
        s = softcap * torch.tanh(s / softcap)
    i = torch.arange(Nq, device=q.device).view(-1, 1)
    j = torch.arange(Nk, device=q.device).view(1, -1)
    off = 0 if mask_mode == MASK_TL else Nk - Nq
    vis = torch.ones(Nq, Nk, dtype=torch.bool, device=q.device)
    if mask_mode == MASK_TL:
        vis &= j <= i
    elif mask_mode == MASK_BR:
        vis &= j <= i + Nk - Nq
    if window is not None:
        left, right = window
        d = j - (i + off)
        if left >= 0:
            vis &= d >= -left
        if right >= 0:
            vis &= d <= right
    vis = vis.expand(B, Hq, Nq, Nk)
    if alibi is not None:
        sl = alibi.double()
        sl = sl.view(1, Hq, 1, 1) if sl.dim() == 1 else sl.view(B, Hq, 1, 1)
        s = s - sl * (i + off - j).abs().double()
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            vis = vis & attn_mask
        else:
            s = s + attn_mask.double()
    vis = vis & torch.isfinite(s)
    any_vis = vis.any(-1, keepdim=True)
    s2 = torch.where(vis, s, torch.full_like(s, -math.inf))
    s2 = torch.where(any_vis, s2, torch.zeros_like(s2))
    p = torch.softmax(s2, dim=-1) * any_vis
    lse = torch.where(any_vis.squeeze(-1), torch.logsumexp(s2, dim=-1),
                      torch.full_like(s2[..., 0], -math.inf))
    out = (p @ vh).permute(0, 2, 1, 3)
    return out, lse


def reference_with_grads(q, k, v, dout, **kw):
    q64, k64, v64 = (t.detach().double().requires_grad_(True) for t in (q, k, v))
    out, lse = reference(q64, k64, v64, **kw)
    out.backward(dout.double())
    return out.detach(), lse.detach(), q64.grad, k64.grad, v64.grad


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    got = got.double()
    if not torch.isfinite(got).all():
        return float("inf")
    den = ref.norm().item()
    num = (got - ref).norm().item()
    return num / den if den > 0 else num


def lse_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    ninf = torch.isneginf(ref)
    if not torch.equal(torch.isneginf(got), ninf) or torch.isnan(got).any():
        return float("inf")
    fin = ~ninf
    return (got[fin].double() - ref[fin]).abs().max().item() if fin.any() else 0.0


def nan_like(t: torch.Tensor) -> torch.Tensor:
    return torch.full_like(t, float("nan"))


def make_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """Same values, another memory layout (BSHD logical view)."""
    if layout == "bshd":
        return x.contiguous()
    if layout == "bhsd":
        return x.permute(0, 2, 1, 3).contiguous().permute(0, 2, 1, 3)
    if layout == "padded":  # rows padded: head_dim stride 1, row stride not a multiple of 8
        B, S, H, D = x.shape
        buf = torch.zeros(B, S, H, D + 3, dtype=x.dtype, device=x.device)
        buf[..., :D] = x
        return buf[..., :D]
    if layout == "dstride":  # last dim not contiguous
        return x.transpose(-1, -2).contiguous().transpose(-1, -2)
    raise ValueError(layout)


def check_case(ctx, name, *, dtype, B, Nq, Nk, Hq, Hkv, D, mask_mode=0, scale=None, softcap=0.0,
               window=None, alibi=False, mask=None, layout="bshd", deterministic=False,
               backward=True, out_dtype=None, stream=None):
    gen = torch.Generator(device=DEV)
    gen.seed()
    q = torch.randn(B, Nq, Hq, D, device=DEV, generator=gen).to(dtype)
    k = torch.randn(B, Nk, Hkv, D, device=DEV, generator=gen).to(dtype)
    v = torch.randn(B, Nk, Hkv, D, device=DEV, generator=gen).to(dtype)
    dout = torch.randn(B, Nq, Hq, D, device=DEV, generator=gen).to(dtype)
    slopes = (torch.rand(Hq, device=DEV, generator=gen) * 0.5 + 0.05) if alibi else None
    attn_mask = None
    if mask == "bool":
        attn_mask = torch.rand(B, 1, Nq, Nk, device=DEV, generator=gen) > 0.3
    elif mask == "add":
        attn_mask = torch.randn(Nq, Nk, device=DEV, generator=gen).to(dtype)
    kw = dict(mask_mode=mask_mode, scale=scale, softcap=softcap, window=window, alibi=slopes,
              attn_mask=attn_mask)
    ref = reference_with_grads(q, k, v, dout, **kw)
    # PyTorch's own SDPA in float64 as a second reference where its contract applies.
    sdpa_err = None
    if softcap == 0 and window is None and slopes is None and mask_mode != MASK_BR and mask is None:
        qh, kh, vh = (t.double().permute(0, 2, 1, 3) for t in (q, k, v))
        o2 = F.scaled_dot_product_attention(qh, kh, vh, is_causal=mask_mode == MASK_TL,
                                            scale=scale, enable_gqa=Hq != Hkv)
        sdpa_err = rel_err(o2.permute(0, 2, 1, 3), ref[0]) if Nq <= Nk or mask_mode == 0 else None

    ql, kl, vl, dl = (make_layout(t, layout) for t in (q, k, v, dout))
    odt = out_dtype or dtype
    out = nan_like(make_layout(torch.empty(B, Nq, Hq, D, device=DEV, dtype=odt), layout))
    lse = torch.full((B, Hq, Nq), float("nan"), device=DEV)
    opts = dict(mask_mode=mask_mode, softmax_scale=scale, softcap=softcap,
                window_size=window, alibi_slopes=slopes, attn_mask=attn_mask,
                deterministic=deterministic,
                stream=(stream or torch.cuda.current_stream()).cuda_stream)
    ctx.forward(ql, kl, vl, out, lse, **opts)
    res = {"name": name, "dtype": str(dtype).replace("torch.", ""), "B": B, "Nq": Nq, "Nk": Nk,
           "Hq": Hq, "Hkv": Hkv, "D": D}
    errs = {"out": rel_err(out, ref[0]), "lse": lse_err(lse, ref[1])}
    if backward:
        grads = [nan_like(make_layout(torch.empty_like(t, dtype=odt), layout)) for t in (q, k, v)]
        ctx.backward(ql, kl, vl, out, dl, lse, *grads, **opts)
        for n, g_, r_ in zip(("dq", "dk", "dv"), grads, ref[2:]):
            errs[n] = rel_err(g_, r_)
        if deterministic:
            again = [nan_like(g_) for g_ in grads]
            ctx.backward(ql, kl, vl, out, dl, lse, *again, **opts)
            torch.cuda.synchronize()
            errs["bitwise_repeat"] = 0.0 if all(torch.equal(a, b) for a, b in
                                                zip(grads, again)) else float("inf")
    torch.cuda.synchronize()
    th = THRESH[odt if odt != torch.float32 else dtype]
    ok = errs["out"] <= th["out"] and errs["lse"] <= LSE_ATOL[dtype]
    for n in ("dq", "dk", "dv"):
        if n in errs:
            ok = ok and errs[n] <= th["grad"]
    if "bitwise_repeat" in errs:
        ok = ok and errs["bitwise_repeat"] == 0.0
    res.update(ok=bool(ok), errors=errs, sdpa_f64_vs_reference=sdpa_err)
    print(f"{'PASS' if ok else 'FAIL'} {name}: " +
          " ".join(f"{k}={v:.2e}" for k, v in errs.items()), flush=True)
    return res


def check_varlen(ctx, name, *, dtype, lens_q, lens_k, Hq, Hkv, D, mask_mode=0, window=None,
                 softcap=0.0, alibi=False, deterministic=False):
    gen = torch.Generator(device=DEV)
    gen.seed()
    tq, tk = sum(lens_q), sum(lens_k)
    pad = 5  # rows after the last sequence: must come back as zeros
    q = torch.randn(tq + pad, Hq, D, device=DEV, generator=gen).to(dtype)
    k = torch.randn(tk + pad, Hkv, D, device=DEV, generator=gen).to(dtype)
    v = torch.randn(tk + pad, Hkv, D, device=DEV, generator=gen).to(dtype)
    dout = torch.randn(tq + pad, Hq, D, device=DEV, generator=gen).to(dtype)
    cu_q = torch.tensor([0] + list(np.cumsum(lens_q)), dtype=torch.int32, device=DEV)
    cu_k = torch.tensor([0] + list(np.cumsum(lens_k)), dtype=torch.int32, device=DEV)
    slopes = (torch.rand(len(lens_q), Hq, device=DEV, generator=gen) * 0.3) if alibi else None
    out = torch.full_like(q, float("nan"))
    lse = torch.full((Hq, tq + pad), float("nan"), device=DEV)
    grads = [torch.full_like(t, float("nan")) for t in (q, k, v)]
    opts = dict(mask_mode=mask_mode, window_size=window, softcap=softcap, alibi_slopes=slopes,
                cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, max_seqlen_q=max(lens_q),
                max_seqlen_k=max(lens_k), deterministic=deterministic,
                stream=torch.cuda.current_stream().cuda_stream)
    ctx.forward(q, k, v, out, lse, **opts)
    ctx.backward(q, k, v, out, dout, lse, *grads, **opts)
    torch.cuda.synchronize()
    refs = {n: torch.zeros_like(t, dtype=torch.float64) for n, t in
            (("out", q), ("dq", q), ("dk", k), ("dv", v))}
    ref_lse = torch.full((Hq, tq + pad), -math.inf, device=DEV, dtype=torch.float64)
    for b, (lq, lk) in enumerate(zip(lens_q, lens_k)):
        sq, sk = int(cu_q[b]), int(cu_k[b])
        sl = slopes[b] if alibi else None
        o_, l_, dq_, dk_, dv_ = reference_with_grads(
            q[sq:sq + lq][None], k[sk:sk + lk][None], v[sk:sk + lk][None], dout[sq:sq + lq][None],
            mask_mode=mask_mode, window=window, softcap=softcap, alibi=sl)
        refs["out"][sq:sq + lq] = o_[0]
        refs["dq"][sq:sq + lq] = dq_[0]
        refs["dk"][sk:sk + lk] = dk_[0]
        refs["dv"][sk:sk + lk] = dv_[0]
        ref_lse[:, sq:sq + lq] = l_[0]
    errs = {"out": rel_err(out, refs["out"]), "lse": lse_err(lse, ref_lse),
            "dq": rel_err(grads[0], refs["dq"]), "dk": rel_err(grads[1], refs["dk"]),
            "dv": rel_err(grads[2], refs["dv"])}
    th = THRESH[dtype]
    ok = (errs["out"] <= th["out"] and errs["lse"] <= LSE_ATOL[dtype]
          and all(errs[n] <= th["grad"] for n in ("dq", "dk", "dv")))
    print(f"{'PASS' if ok else 'FAIL'} {name}: " +
          " ".join(f"{k}={v:.2e}" for k, v in errs.items()), flush=True)
    return {"name": name, "dtype": str(dtype).replace("torch.", ""), "lens_q": lens_q,
            "lens_k": lens_k, "Hq": Hq, "Hkv": Hkv, "D": D, "ok": bool(ok), "errors": errs}


def random_cases(quick: bool):
    cases = []
    for dt in (torch.float16, torch.bfloat16):
        t = "f16" if dt == torch.float16 else "bf16"
        for D in (64, 96, 128, 256):
            cases.append((f"{t}_d{D}_plain", dict(dtype=dt, B=2, Nq=333, Nk=333, Hq=4, Hkv=4, D=D)))
            cases.append((f"{t}_d{D}_causal_br_gqa", dict(dtype=dt, B=2, Nq=300, Nk=517, Hq=8,
                                                          Hkv=2, D=D, mask_mode=MASK_BR)))
            cases.append((f"{t}_d{D}_causal_tl", dict(dtype=dt, B=1, Nq=517, Nk=300, Hq=4, Hkv=4,
                                                      D=D, mask_mode=MASK_TL)))
        cases += [
            (f"{t}_d128_large", dict(dtype=dt, B=2, Nq=1024, Nk=1024, Hq=8, Hkv=8, D=128)),
            (f"{t}_d64_causal_large", dict(dtype=dt, B=1, Nq=2048, Nk=2048, Hq=4, Hkv=4, D=64,
                                           mask_mode=MASK_BR)),
            (f"{t}_d40_window", dict(dtype=dt, B=2, Nq=200, Nk=260, Hq=3, Hkv=1, D=40,
                                     window=(50, 7))),
            (f"{t}_d72_softcap", dict(dtype=dt, B=2, Nq=150, Nk=150, Hq=2, Hkv=2, D=72,
                                      softcap=5.0, scale=0.3)),
            (f"{t}_d36_staged_alibi", dict(dtype=dt, B=2, Nq=97, Nk=131, Hq=4, Hkv=2, D=36,
                                           alibi=True, mask_mode=MASK_BR)),
            (f"{t}_d128_bhsd", dict(dtype=dt, B=2, Nq=257, Nk=383, Hq=4, Hkv=2, D=128,
                                    layout="bhsd", mask_mode=MASK_TL)),
            (f"{t}_d64_padded_rows", dict(dtype=dt, B=2, Nq=130, Nk=140, Hq=2, Hkv=2, D=64,
                                          layout="padded")),
            (f"{t}_d64_dstride", dict(dtype=dt, B=1, Nq=70, Nk=90, Hq=2, Hkv=2, D=64,
                                      layout="dstride")),
            (f"{t}_d128_deterministic", dict(dtype=dt, B=2, Nq=400, Nk=400, Hq=4, Hkv=2, D=128,
                                             mask_mode=MASK_BR, deterministic=True)),
            (f"{t}_d256_det_window_softcap", dict(dtype=dt, B=1, Nq=200, Nk=333, Hq=2, Hkv=1,
                                                  D=256, window=(64, 16), softcap=10.0,
                                                  deterministic=True)),
            (f"{t}_decode_split", dict(dtype=dt, B=2, Nq=1, Nk=5000, Hq=16, Hkv=2, D=128,
                                       mask_mode=MASK_BR)),
            (f"{t}_decode4_split_alibi", dict(dtype=dt, B=1, Nq=4, Nk=3000, Hq=8, Hkv=8, D=64,
                                              alibi=True, mask_mode=MASK_BR)),
            (f"{t}_q_gt_k_br", dict(dtype=dt, B=1, Nq=300, Nk=100, Hq=2, Hkv=2, D=64,
                                    mask_mode=MASK_BR)),
            (f"{t}_mask_bool", dict(dtype=dt, B=2, Nq=65, Nk=77, Hq=2, Hkv=2, D=64, mask="bool")),
            (f"{t}_mask_add", dict(dtype=dt, B=2, Nq=65, Nk=77, Hq=2, Hkv=1, D=32, mask="add")),
            (f"{t}_f32_out", dict(dtype=dt, B=1, Nq=100, Nk=120, Hq=2, Hkv=2, D=64,
                                  out_dtype=torch.float32)),
            (f"{t}_tiny", dict(dtype=dt, B=3, Nq=1, Nk=1, Hq=1, Hkv=1, D=8)),
        ]
    cases += [
        ("f32_d64_generic", dict(dtype=torch.float32, B=2, Nq=100, Nk=130, Hq=4, Hkv=2, D=64,
                                 mask_mode=MASK_BR)),
        ("f32_d256_window", dict(dtype=torch.float32, B=1, Nq=50, Nk=70, Hq=2, Hkv=2, D=256,
                                 window=(5, 5))),
        ("f32_mask_softcap_alibi", dict(dtype=torch.float32, B=2, Nq=33, Nk=45, Hq=2, Hkv=2,
                                        D=24, mask="bool", softcap=4.0, alibi=True)),
    ]
    if quick:
        cases = cases[::4]
    return cases


def context_with_env(env: dict) -> umfa.Context:
    """A CUDA context created while `env` is set (the backend reads its settings at creation)."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return umfa.Context("cuda", 0)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--manifest", default=str(ROOT / "conformance" / "manifest.json"))
    ap.add_argument("--skip-conformance", action="store_true")
    args = ap.parse_args()

    print("umfa", umfa.version_string(), "|", umfa.build_info(), flush=True)
    print("torch", torch.__version__, "|", torch.cuda.get_device_name(), flush=True)
    ctx = umfa.Context("cuda", 0)
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "umfa_build": umfa.build_info().replace(str(ROOT) + "/", "")}
    t0 = time.time()
    if not args.skip_conformance and Path(args.manifest).exists():
        report["conformance"] = run_conformance(ctx, Path(args.manifest))
    random_results = []
    side = torch.cuda.Stream()
    # The dispatcher picks kernels by size; these run-time settings force every path on the same
    # cases: the main forward kernel instead of the small one, and split-KV on either.
    paths = [("", {}), ("[main]", {"UMFA_CUDA_SMALL": "0"}),
             ("[main+split]", {"UMFA_CUDA_SMALL": "0", "UMFA_CUDA_FORCE_SPLITS": "3"}),
             ("[small+split]", {"UMFA_CUDA_FORCE_SPLITS": "3"})]
    if args.quick:
        paths = paths[:2]
    for tag, env in paths:
        pctx = context_with_env(env) if env else ctx
        for i, (name, kw) in enumerate(random_cases(args.quick)):
            name = name + tag
            try:
                # Every third case runs on a side stream (the call must use the stream it is given).
                if i % 3 == 2:
                    with torch.cuda.stream(side):
                        r = check_case(pctx, name, stream=side, **kw)
                    side.synchronize()
                else:
                    r = check_case(pctx, name, **kw)
            except Exception as exc:  # noqa: BLE001
                r = {"name": name, "ok": False, "error": repr(exc)}
                print(f"FAIL {name}: {exc!r}", flush=True)
            random_results.append(r)
    varlen = [
        ("f16_varlen_d64", dict(dtype=torch.float16, lens_q=[5, 300, 0, 129], lens_k=[7, 280, 3, 129],
                                Hq=4, Hkv=2, D=64)),
        ("bf16_varlen_d128_causal", dict(dtype=torch.bfloat16, lens_q=[200, 1, 77],
                                         lens_k=[260, 90, 77], Hq=4, Hkv=4, D=128,
                                         mask_mode=MASK_BR)),
        ("f16_varlen_d96_window_alibi_det", dict(dtype=torch.float16, lens_q=[64, 150],
                                                 lens_k=[100, 150], Hq=2, Hkv=1, D=96,
                                                 window=(20, 3), alibi=True, deterministic=True)),
        ("f32_varlen_d32_tl", dict(dtype=torch.float32, lens_q=[9, 17], lens_k=[12, 5], Hq=2,
                                   Hkv=2, D=32, mask_mode=MASK_TL)),
    ]
    for name, kw in varlen:
        try:
            random_results.append(check_varlen(ctx, name, **kw))
        except Exception as exc:  # noqa: BLE001
            random_results.append({"name": name, "ok": False, "error": repr(exc)})
            print(f"FAIL {name}: {exc!r}", flush=True)
    n_ok = sum(r["ok"] for r in random_results)
    report["random"] = {"passed": n_ok, "failed": len(random_results) - n_ok,
                        "cases": random_results}
    report["seconds"] = time.time() - t0
    conf = report.get("conformance", {"passed": 0, "failed": 0})
    print(f"SUMMARY conformance {conf['passed']} passed {conf['failed']} failed | "
          f"random {n_ok} passed {len(random_results) - n_ok} failed | {report['seconds']:.0f}s",
          flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    return 0 if conf["failed"] == 0 and n_ok == len(random_results) else 1


if __name__ == "__main__":
    sys.exit(main())
