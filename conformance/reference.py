"""Float64 NumPy reference for umfa attention, written from the definitions in include/umfa.h.

This module never calls libumfa. It implements the semantics documented on
``umfa_attention_options`` and ``umfa_attention_forward`` / ``umfa_attention_backward`` directly,
in float64, materializing the full score matrix (it is a reference, not a fast implementation),
and ``umfa_attention_merge`` (:func:`merge`).

Layouts (logical, as in the C ABI):
  dense : q/out/dout/dq [B, Nq, Hq, D]; k/v/dk/dv [B, Nk, Hkv, D]; lse [B, Hq, Nq]
  varlen: q/out/dout/dq [total_q, Hq, D]; k/v/dk/dv [total_k, Hkv, D]; lse [Hq, total_q]

Semantics (copied from the header's definition, per sequence of lengths nq, nk):
  offset = 0 if mask_mode == CAUSAL_TOP_LEFT else nk - nq
  key j is visible to query i when every enabled rule allows it:
    CAUSAL_TOP_LEFT     : j <= i
    CAUSAL_BOTTOM_RIGHT : j <= i + nk - nq
    window (has_window) : d = j - (i + offset);
                          (left < 0 or d >= -left) and (right < 0 or d <= right)
    boolean attn_mask   : nonzero = visible
  score s = (q . k) * scale; if softcap > 0: s = softcap * tanh(s / softcap);
        s += alibi_slope[b, h] * -|i + offset - j|;  s += additive attn_mask
  masked scores are -inf; a row with no visible key (or only -inf scores) gives out = 0,
  lse = -inf, and zero gradients.

Backward (analytic): with P = softmax(s) and O = P V,
  dV = P^T dO,  dP = dO V^T,  Delta_i = sum_d dO_id O_id,  dS = P * (dP - Delta)
  softcap chain rule: ds/ds_raw = 1 - tanh(s_raw / softcap)^2
  dQ = scale * dS_raw K,  dK = scale * dS_raw^T Q
  GQA/MQA: query head h uses KV head h // (Hq / Hkv); dK/dV of a KV head sum over its group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

MASK_NONE = 0
MASK_CAUSAL_TOP_LEFT = 1
MASK_CAUSAL_BOTTOM_RIGHT = 2


@dataclass
class Options:
    """Mirror of umfa_attention_options (tensor fields hold NumPy arrays or None).

    Field names match the C struct. ``attn_mask`` is boolean when its dtype is bool (nonzero =
    visible), otherwise an additive float bias; both broadcast to [B, Hq, Nq, Nk] (dense only).
    ``alibi_slopes`` has shape [Hq] or [B, Hq]. ``cu_seqlens_q``/``cu_seqlens_k`` (int arrays of
    length B + 1) switch to the varlen THD layout.
    """

    mask_mode: int = MASK_NONE
    softmax_scale: float = 0.0
    softcap: float = 0.0
    has_window: int = 0
    flags: int = 0
    window_left: int = 0
    window_right: int = 0
    attn_mask: Optional[np.ndarray] = None
    alibi_slopes: Optional[np.ndarray] = None
    cu_seqlens_q: Optional[np.ndarray] = None
    cu_seqlens_k: Optional[np.ndarray] = None
    max_seqlen_q: int = 0
    max_seqlen_k: int = 0


@dataclass
class Result:
    out: np.ndarray
    lse: np.ndarray
    dq: Optional[np.ndarray] = None
    dk: Optional[np.ndarray] = None
    dv: Optional[np.ndarray] = None
    extras: dict = field(default_factory=dict)


def resolved_scale(opts: Options, head_dim: int) -> float:
    if opts.softmax_scale != 0.0:
        return float(opts.softmax_scale)
    return 1.0 / math.sqrt(head_dim) if head_dim > 0 else 1.0


def diag_offset(mask_mode: int, nq: int, nk: int) -> int:
    return 0 if mask_mode == MASK_CAUSAL_TOP_LEFT else nk - nq


def visibility(opts: Options, nq: int, nk: int) -> np.ndarray:
    """[nq, nk] boolean matrix of the built-in rules (mask_mode and window)."""
    i = np.arange(nq, dtype=np.int64)[:, None]
    j = np.arange(nk, dtype=np.int64)[None, :]
    vis = np.ones((nq, nk), dtype=bool)
    if opts.mask_mode == MASK_CAUSAL_TOP_LEFT:
        vis &= j <= i
    elif opts.mask_mode == MASK_CAUSAL_BOTTOM_RIGHT:
        vis &= j <= i + (nk - nq)
    elif opts.mask_mode != MASK_NONE:
        raise ValueError(f"unknown mask_mode {opts.mask_mode}")
    if opts.has_window:
        d = j - (i + diag_offset(opts.mask_mode, nq, nk))
        if opts.window_left >= 0:
            vis &= d >= -opts.window_left
        if opts.window_right >= 0:
            vis &= d <= opts.window_right
    return vis


def _broadcast_mask(mask: np.ndarray, b: int, h: int, nq: int, nk: int) -> np.ndarray:
    if mask.ndim < 1 or mask.ndim > 4:
        raise ValueError("attn_mask must have rank 1..4")
    shape = (1,) * (4 - mask.ndim) + tuple(mask.shape)
    return np.broadcast_to(mask.reshape(shape), (b, h, nq, nk))


def _alibi_matrix(slopes: np.ndarray, b: int, h: int) -> np.ndarray:
    s = np.asarray(slopes, dtype=np.float64)
    if s.ndim == 1:
        s = np.broadcast_to(s[None, :], (b, h))
    if s.shape != (b, h):
        raise ValueError(f"alibi_slopes shape {slopes.shape} does not fit B={b}, H={h}")
    return s


def _dense(q, k, v, dout, opts: Options, alibi_bh: Optional[np.ndarray], want_grad: bool):
    """Dense attention on float64 arrays q [B,Nq,Hq,D], k/v [B,Nk,Hkv,D].

    alibi_bh: [B, Hq] slopes already resolved for these batch rows (or None).
    """
    B, Nq, Hq, D = q.shape
    _, Nk, Hkv, Dv = v.shape
    if k.shape[:3] != v.shape[:3] or k.shape[3] != D:
        raise ValueError("k/v shapes disagree with q")
    if Hkv == 0 or Hq % Hkv != 0:
        raise ValueError("heads_q must be a multiple of heads_kv")
    group = Hq // Hkv
    scale = resolved_scale(opts, D)

    # Expand KV heads to query heads: head h reads KV head h // group.
    kx = np.repeat(k, group, axis=2) if group > 1 else k
    vx = np.repeat(v, group, axis=2) if group > 1 else v

    # s_raw[b,h,i,j] = scale * sum_d q[b,i,h,d] k[b,j,h,d]
    s_raw = np.einsum("bihd,bjhd->bhij", q, kx) * scale
    if opts.softcap > 0:
        t = np.tanh(s_raw / opts.softcap)
        s = opts.softcap * t
    else:
        t = None
        s = s_raw.copy()

    vis = np.broadcast_to(visibility(opts, Nq, Nk)[None, None], (B, Hq, Nq, Nk)).copy()
    off = diag_offset(opts.mask_mode, Nq, Nk)
    if alibi_bh is not None:
        i = np.arange(Nq, dtype=np.float64)[:, None]
        j = np.arange(Nk, dtype=np.float64)[None, :]
        dist = np.abs(i + off - j)
        s = s - alibi_bh[:, :, None, None] * dist[None, None]
    if opts.attn_mask is not None:
        m = _broadcast_mask(np.asarray(opts.attn_mask), B, Hq, Nq, Nk)
        if m.dtype == np.bool_:
            vis &= m
        else:
            s = s + m.astype(np.float64)
    vis &= s > -np.inf  # an additive -inf also masks

    s_m = np.where(vis, s, -np.inf)
    row_any = vis.any(axis=-1)  # [B,H,Nq]
    row_max = np.where(row_any, np.max(s_m, axis=-1, initial=-np.inf), 0.0)
    e = np.where(vis, np.exp(s_m - row_max[..., None]), 0.0)
    denom = e.sum(axis=-1)
    safe = np.where(row_any, denom, 1.0)
    p = e / safe[..., None]
    lse = np.where(row_any, row_max + np.log(safe), -np.inf)  # [B,H,Nq]
    out = np.einsum("bhij,bjhd->bihd", p, vx)

    res = Result(out=out, lse=lse)
    res.extras.update(p=p, s=s, vis=vis)
    if not want_grad:
        return res

    do = dout
    dv_x = np.einsum("bhij,bihd->bjhd", p, do)  # [B,Nk,Hq,Dv]
    dp = np.einsum("bihd,bjhd->bhij", do, vx)
    delta = np.einsum("bihd,bihd->bhi", do, out)
    ds = p * (dp - delta[..., None])
    if t is not None:
        ds = ds * (1.0 - t * t)
    ds = np.where(vis, ds, 0.0)
    dq = np.einsum("bhij,bjhd->bihd", ds, kx) * scale
    dk_x = np.einsum("bhij,bihd->bjhd", ds, q) * scale
    if group > 1:
        dk = dk_x.reshape(B, Nk, Hkv, group, D).sum(axis=3)
        dv = dv_x.reshape(B, Nk, Hkv, group, Dv).sum(axis=3)
    else:
        dk, dv = dk_x, dv_x
    res.dq, res.dk, res.dv = dq, dk, dv
    return res


def attention(q, k, v, opts: Optional[Options] = None, dout=None) -> Result:
    """Forward (and backward when ``dout`` is given) in float64.

    Returns Result(out, lse[, dq, dk, dv]) in the ABI's logical layouts (dense or varlen).
    """
    opts = opts or Options()
    q = np.asarray(q, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    want_grad = dout is not None
    if want_grad:
        dout = np.asarray(dout, dtype=np.float64)

    if opts.cu_seqlens_q is None and opts.cu_seqlens_k is None:
        if q.ndim != 4:
            raise ValueError("dense q must be [B, Nq, Hq, D]")
        B, _, Hq, _ = q.shape
        alibi = None if opts.alibi_slopes is None else _alibi_matrix(opts.alibi_slopes, B, Hq)
        r = _dense(q, k, v, dout, opts, alibi, want_grad)
        r.extras = {}
        return r

    if opts.cu_seqlens_q is None or opts.cu_seqlens_k is None:
        raise ValueError("cu_seqlens_q and cu_seqlens_k must both be set")
    if opts.attn_mask is not None:
        raise ValueError("attn_mask is not allowed with varlen")
    cq = np.asarray(opts.cu_seqlens_q, dtype=np.int64)
    ck = np.asarray(opts.cu_seqlens_k, dtype=np.int64)
    if q.ndim != 3:
        raise ValueError("varlen q must be [total_q, Hq, D]")
    B = len(cq) - 1
    Tq, Hq, D = q.shape
    Tk, Hkv, Dv = v.shape
    alibi = None if opts.alibi_slopes is None else _alibi_matrix(opts.alibi_slopes, B, Hq)
    out = np.zeros((Tq, Hq, Dv))
    lse = np.full((Hq, Tq), -np.inf)
    dq = np.zeros_like(q) if want_grad else None
    dk = np.zeros_like(k) if want_grad else None
    dv = np.zeros_like(v) if want_grad else None
    for b in range(B):
        q0, q1 = int(cq[b]), int(cq[b + 1])
        k0, k1 = int(ck[b]), int(ck[b + 1])
        r = _dense(
            q[None, q0:q1],
            k[None, k0:k1],
            v[None, k0:k1],
            None if dout is None else dout[None, q0:q1],
            opts,
            None if alibi is None else alibi[b : b + 1],
            want_grad,
        )
        out[q0:q1] = r.out[0]
        lse[:, q0:q1] = r.lse[0]
        if want_grad:
            dq[q0:q1] = r.dq[0]
            dk[k0:k1] += r.dk[0]
            dv[k0:k1] += r.dv[0]
    return Result(out=out, lse=lse, dq=dq, dk=dk, dv=dv)


# ------------------------------------------------------------------------------------------------
# Merging partial results (umfa_attention_merge)


def merge(out, lse, part_out, part_lse):
    """One step of umfa_attention_merge in float64: returns the merged (out, lse).

    Layouts as the forward's: out/part_out [B, N, H, D] with lse/part_lse [B, H, N], or varlen
    [T, H, D] with [H, T]. Per row and head:
      lse' = log(exp(lse) + exp(part_lse)),
      out' = exp(lse - lse') * out + exp(part_lse - lse') * part_out,
    where a side whose LSE is -inf contributes nothing, whatever its out holds (even NaN), and
    two -inf sides give out' = 0, lse' = -inf.
    """
    out = np.asarray(out, dtype=np.float64)
    part_out = np.asarray(part_out, dtype=np.float64)
    # LSE per [..., N, H] row, aligned with out's leading dimensions.
    lse_rows = np.swapaxes(np.asarray(lse, dtype=np.float64), -1, -2)
    part_rows = np.swapaxes(np.asarray(part_lse, dtype=np.float64), -1, -2)
    merged = np.logaddexp(lse_rows, part_rows)  # -inf when both are -inf

    def share(side_lse, side_out):
        w = np.exp(side_lse - merged)  # NaN only where both sides are -inf (masked below)
        return np.where(np.isneginf(side_lse)[..., None], 0.0, w[..., None] * side_out)

    with np.errstate(invalid="ignore"):
        new_out = share(lse_rows, out) + share(part_rows, part_out)
    return new_out, np.swapaxes(merged, -1, -2)


# ------------------------------------------------------------------------------------------------
# Element-type rounding (round-to-nearest-even), used to put inputs on the dtype's grid.


def round_f16(x: np.ndarray) -> np.ndarray:
    """Values of x rounded to IEEE binary16 (returned as float64)."""
    return np.asarray(x, dtype=np.float64).astype(np.float16).astype(np.float64)


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) of x, rounding float32(x) to nearest even."""
    f = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    u = f.view(np.uint32).astype(np.uint64)
    is_nan = np.isnan(f)
    lsb = (u >> 16) & 1
    r = ((u + 0x7FFF + lsb) >> 16).astype(np.uint16)
    return np.where(is_nan, np.uint16(0x7FC0), r).astype(np.uint16)


def bf16_to_f64(bits: np.ndarray) -> np.ndarray:
    b = np.ascontiguousarray(np.asarray(bits, dtype=np.uint16))
    return (b.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def round_bf16(x: np.ndarray) -> np.ndarray:
    """Values of x rounded to bfloat16 (via float32; returned as float64)."""
    return bf16_to_f64(bf16_bits(x))


def round_to(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "f32":
        return np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float64)
    if dtype == "f16":
        return round_f16(x)
    if dtype == "bf16":
        return round_bf16(x)
    raise ValueError(dtype)
