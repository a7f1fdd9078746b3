"""A small float64 reference for the tests (BSHD layout, FlashAttention/umfa semantics)."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


def attention_ref(q: np.ndarray, k: np.ndarray, v: np.ndarray, *, causal: str = "none",
                  scale: Optional[float] = None, window: Tuple[int, int] = (-1, -1),
                  softcap: float = 0.0, alibi: Optional[np.ndarray] = None,
                  mask: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(out [B,Sq,H,D], lse [B,H,Sq]) in float64.

    causal: "none", "top_left" or "bottom_right". mask: bool (True = visible) or additive,
    broadcastable to [B, H, Sq, Sk].
    """
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    b, sq, hq, d = q.shape
    sk, hk = k.shape[1], k.shape[2]
    g = hq // hk
    k = np.repeat(k, g, axis=2)
    v = np.repeat(v, g, axis=2)
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    s = np.einsum("bqhd,bkhd->bhqk", q, k) * scale
    if softcap > 0:
        s = softcap * np.tanh(s / softcap)
    offset = 0 if causal == "top_left" else sk - sq
    i = np.arange(sq)[:, None]
    j = np.arange(sk)[None, :]
    visible = np.ones((sq, sk), dtype=bool)
    if causal == "top_left":
        visible &= j <= i
    elif causal == "bottom_right":
        visible &= j <= i + sk - sq
    left, right = window
    if left >= 0 or right >= 0:
        dd = j - (i + offset)
        if left >= 0:
            visible &= dd >= -left
        if right >= 0:
            visible &= dd <= right
    vis = np.broadcast_to(visible, s.shape).copy()
    if alibi is not None:
        slopes = np.asarray(alibi, dtype=np.float64)
        slopes = slopes.reshape(1, hq, 1, 1) if slopes.ndim == 1 else slopes.reshape(b, hq, 1, 1)
        s = s - slopes * np.abs(i + offset - j)[None, None]
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype == bool:
            vis &= np.broadcast_to(m, s.shape)
        else:
            s = s + np.broadcast_to(m.astype(np.float64), s.shape)
    s = np.where(vis, s, -np.inf)
    mx = s.max(axis=-1, keepdims=True)
    safe = np.where(np.isfinite(mx), mx, 0.0)
    p = np.exp(s - safe)
    den = p.sum(axis=-1, keepdims=True)
    lse = np.where(den[..., 0] > 0, np.log(np.where(den > 0, den, 1))[..., 0] + safe[..., 0],
                   -np.inf)
    p = np.where(den > 0, p / np.where(den > 0, den, 1), 0.0)
    out = np.einsum("bhqk,bkhd->bqhd", p, v)
    return out, lse
