"""An emulated low-precision attention implementation, used to size the tolerances.

It mimics what a real kernel does rather than what the reference does: float32 arithmetic
throughout, a fixed 1/l normalisation after the P.V product, and, for f16/bf16 inputs, the
probabilities P and the score gradients dS rounded to the input dtype before their matrix
products (as tensor-core GPU kernels do); outputs are rounded to their dtype. The backward
reads the *rounded* forward output, like a real forward/backward pair.

selfcheck.py runs it over every manifest case and requires its error to stay well inside the
manifest tolerances, so a correct implementation has headroom and a wrong one does not pass.
The merge cases (manifest "merge_cases") get the same treatment from merge32: the merge in
float32, the running out rounded to its dtype after every part. Also serves as an example
manifest reader (load_tensor, run_merge_case).
"""

from __future__ import annotations

import os

import numpy as np

import reference as ref


def load_tensor(root: str, spec: dict, expected: bool = False) -> np.ndarray:
    """Loads a manifest tensor into its *logical* shape (float64, bool or int64)."""
    arr = np.load(os.path.join(root, spec["file"]))
    file_dtype = "f32" if expected else spec["dtype"]
    if file_dtype == "bf16":
        arr = ref.bf16_to_f64(arr)
    elif file_dtype == "bool":
        arr = arr != 0
    elif file_dtype == "i32":
        arr = arr.astype(np.int64)
    else:
        arr = arr.astype(np.float64)
    perm = spec["storage_order"]
    inv = np.argsort(perm)
    out = np.transpose(arr, inv)
    assert list(out.shape) == spec["shape"], (spec["file"], out.shape, spec["shape"])
    if "view_strides" in spec and not expected:  # read through the stride-0 view instead
        base = out[tuple(slice(None) if st else slice(0, 1) for st in spec["view_strides"])]
        out = np.broadcast_to(base, out.shape)
    return out


def _rnd(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "f32" or dtype is None:
        return x.astype(np.float32)
    if dtype == "f16":
        return x.astype(np.float16).astype(np.float32)
    return ref.round_bf16(x).astype(np.float32)


def _dense32(q, k, v, do, o: ref.Options, alibi, dtype, out_dtype, mutation=None):
    """dtype None = keep P and dS in float32 (CPU-style); else round them to dtype."""
    f = np.float32
    B, Nq, Hq, D = q.shape
    Nk, Hkv = k.shape[1], k.shape[2]
    g = Hq // Hkv
    if mutation == "gqa_modulo":  # wrong head mapping h % Hkv
        kx = np.tile(k, (1, 1, g, 1)).astype(f)
        vx = np.tile(v, (1, 1, g, 1)).astype(f)
    else:
        kx = np.repeat(k, g, axis=2).astype(f)
        vx = np.repeat(v, g, axis=2).astype(f)
    q = q.astype(f)
    scale = f(ref.resolved_scale(o, D))
    if mutation == "default_scale_1_over_d" and o.softmax_scale == 0:
        scale = f(1.0 / D)
    s_raw = np.einsum("bihd,bjhd->bhij", q, kx).astype(f) * scale
    cap = f(o.softcap)
    if o.softcap > 0:
        t = np.tanh(s_raw / cap).astype(f)
        s = cap * t
    else:
        t = None
        s = s_raw
    ov = o
    if mutation == "causal_br_as_tl" and o.mask_mode == 2:
        ov = ref.Options(**{**o.__dict__, "mask_mode": 1})
    if mutation == "window_offset_zero" and o.has_window and o.mask_mode == 0:
        ov = ref.Options(**{**o.__dict__, "mask_mode": 1})
        vis_tl = ref.visibility(ov, Nq, Nk)
        ov = o
    vis = np.broadcast_to(ref.visibility(ov, Nq, Nk)[None, None], (B, Hq, Nq, Nk)).copy()
    if mutation == "window_offset_zero" and o.has_window and o.mask_mode == 0:
        vis = np.broadcast_to(vis_tl[None, None], (B, Hq, Nq, Nk)).copy()
    off = ref.diag_offset(o.mask_mode, Nq, Nk)
    if mutation == "alibi_offset_zero":
        off = 0
    if alibi is not None:
        dist = np.abs(np.arange(Nq)[:, None] + off - np.arange(Nk)[None, :]).astype(f)
        s = s - alibi.astype(f)[:, :, None, None] * dist
    if o.attn_mask is not None:
        m = np.asarray(o.attn_mask)
        m = np.broadcast_to(m.reshape((1,) * (4 - m.ndim) + m.shape), (B, Hq, Nq, Nk))
        if m.dtype == np.bool_:
            vis &= m
        else:
            s = s + m.astype(f)
    vis &= s > -np.inf
    s = np.where(vis, s, f(-np.inf)).astype(f)
    any_ = vis.any(-1)
    mx = np.where(any_, np.max(s, axis=-1, initial=-np.inf), 0).astype(f)
    e = np.where(vis, np.exp(s - mx[..., None]), 0).astype(f)
    l_ = e.sum(-1, dtype=f)
    lse = np.where(any_, mx + np.log(np.where(any_, l_, 1)), -np.inf).astype(f)
    if mutation == "lse_without_max":
        lse = np.where(any_, np.log(np.where(any_, l_, 1)), -np.inf).astype(f)
    e_lp = _rnd(e, dtype)
    o_acc = np.einsum("bhij,bjhd->bihd", e_lp, vx).astype(f)
    inv = np.where(any_, 1 / np.where(any_, l_, 1), 0).astype(f)
    out = _rnd(o_acc * np.transpose(inv, (0, 2, 1))[..., None], out_dtype)
    if do is None:
        return out, lse, None, None, None
    do = do.astype(f)
    p = np.where(vis, np.exp(s - np.where(any_, lse, 0)[..., None]), 0).astype(f)
    dv = np.einsum("bhij,bihd->bjhd", _rnd(p, dtype), do).astype(f)
    dp = np.einsum("bihd,bjhd->bhij", do, vx).astype(f)
    delta = np.einsum("bihd,bihd->bhi", do, out).astype(f)
    if mutation == "no_delta":
        delta = delta * 0
    ds = (p * (dp - delta[..., None])).astype(f)
    if t is not None and mutation != "softcap_no_chain_rule":
        ds = ds * (1 - t * t)
    ds = _rnd(ds, dtype)
    dq = np.einsum("bhij,bjhd->bihd", ds, kx).astype(f) * scale
    dk = np.einsum("bhij,bihd->bjhd", ds, q).astype(f) * scale
    dk = dk.reshape(B, Nk, Hkv, g, D).sum(3, dtype=f)
    dv = dv.reshape(B, Nk, Hkv, g, D).sum(3, dtype=f)
    return out, lse, _rnd(dq, out_dtype), _rnd(dk, out_dtype), _rnd(dv, out_dtype)


MUTATIONS = ("gqa_modulo", "default_scale_1_over_d", "causal_br_as_tl", "window_offset_zero",
             "alibi_offset_zero", "lse_without_max", "no_delta", "softcap_no_chain_rule")


def run_case(root: str, case: dict, mode: str = "gpu", mutation=None):
    """Runs the emulation on a manifest case; returns dict name -> logical array.

    mode "gpu": P and dS rounded to the input dtype before their products; "cpu": kept in f32.
    """
    ins = {n: load_tensor(root, s) for n, s in case["inputs"].items()}
    op = case["options"]
    o = ref.Options(**{k: v for k, v in op.items() if not isinstance(v, dict) and v is not None})
    for key in ("attn_mask", "alibi_slopes", "cu_seqlens_q", "cu_seqlens_k"):
        if op.get(key) is not None:
            setattr(o, key, load_tensor(root, op[key]))
    dt, odt = (case["dtype"] if mode == "gpu" else None), case["out_dtype"]
    do = ins.get("dout")
    q, k, v = ins["q"], ins["k"], ins["v"]
    if not case["varlen"]:
        B, Hq = q.shape[0], q.shape[2]
        alibi = None
        if o.alibi_slopes is not None:
            a = o.alibi_slopes
            alibi = np.broadcast_to(a[None, :], (B, Hq)) if a.ndim == 1 else a
        out, lse, dq, dk, dv = _dense32(q, k, v, do, o, alibi, dt, odt, mutation)
    else:
        cq, ck = o.cu_seqlens_q, o.cu_seqlens_k
        B = len(cq) - 1
        Hq = q.shape[1]
        out = np.zeros((q.shape[0], Hq, v.shape[2]), np.float32)
        lse = np.full((Hq, q.shape[0]), -np.inf, np.float32)
        dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
        for b in range(B):
            q0, q1, k0, k1 = int(cq[b]), int(cq[b + 1]), int(ck[b]), int(ck[b + 1])
            alibi = None
            if o.alibi_slopes is not None:
                a = o.alibi_slopes
                alibi = (a[None, :] if a.ndim == 1 else a[b : b + 1])
            r = _dense32(q[None, q0:q1], k[None, k0:k1], v[None, k0:k1],
                         None if do is None else do[None, q0:q1], o, alibi, dt, odt, mutation)
            out[q0:q1], lse[:, q0:q1] = r[0][0], r[1][0]
            if do is not None:
                dq[q0:q1], dk[k0:k1], dv[k0:k1] = r[2][0], r[3][0], r[4][0]
        if do is None:
            dq = dk = dv = None
    return {"out": out, "lse": lse, "dq": dq, "dk": dk, "dv": dv}


def error_ratio(got: np.ndarray, want: np.ndarray, atol: float, rtol: float) -> float:
    """max |got - want| / (atol + rtol |want|); inf on NaN or a -inf mismatch."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if np.isnan(got).any():
        return float("inf")
    inf_w = np.isinf(want)
    if not np.array_equal(np.isinf(got), inf_w) or not np.array_equal(got[inf_w], want[inf_w]):
        return float("inf")
    fin = ~inf_w
    if not fin.any():
        return 0.0
    return float(np.max(np.abs(got[fin] - want[fin]) / (atol + rtol * np.abs(want[fin]))))


def case_error_ratio(manifest: dict, case: dict, root: str, per_output: bool = False,
                     mode: str = "gpu", mutation=None):
    with np.errstate(over="ignore", invalid="ignore"):  # (only the mutants overflow)
        got = run_case(root, case, mode, mutation)
    ratios = {}
    for name, spec in case["expected"].items():
        want = load_tensor(root, spec, expected=True)
        t = case["tolerances"][name]
        ratios[name] = error_ratio(got[name], want, t["atol"], t["rtol"])
    return ratios if per_output else max(ratios.values())


# ------------------------------------------------------------------------------------------------
# Merge cases (umfa_attention_merge)

MERGE_MUTATIONS = ("merge_plain_average", "merge_drop_part", "merge_no_inf_guard")


def merge32(out, lse, part_out, part_lse, out_dtype, mutation=None):
    """One merge in float32, as a kernel does it: m = max, e = exp(other - m), lse' = m +
    log1p(e), weights 1 / (1 + e) and e / (1 + e); a side of weight 0 is not read; the result
    rounded to out_dtype."""
    f = np.float32
    rows = np.swapaxes(np.asarray(lse, f), -1, -2)
    prows = np.swapaxes(np.asarray(part_lse, f), -1, -2)
    out, part_out = np.asarray(out, f), np.asarray(part_out, f)
    out_is_max = rows > prows
    m = np.where(out_is_max, rows, prows)
    empty = np.isneginf(m)
    e = np.exp(np.where(out_is_max, prows, rows) - np.where(empty, f(0), m))
    w_max = f(1) / (f(1) + e)
    w_other = e * w_max
    w_out = np.where(empty, f(0), np.where(out_is_max, w_max, w_other))
    w_part = np.where(empty, f(0), np.where(out_is_max, w_other, w_max))
    merged = np.where(empty, f(-np.inf), m + np.log1p(e))
    if mutation == "merge_plain_average":  # no LSE weighting at all
        w_out = w_part = np.where(empty, f(0), f(0.5))
    if mutation == "merge_drop_part":
        w_part = np.zeros_like(w_part)
    if mutation == "merge_no_inf_guard":  # a side of weight 0 read anyway: its NaN leaks
        a, b = w_out[..., None] * out, w_part[..., None] * part_out
    else:
        a = np.where((w_out == 0)[..., None], f(0), w_out[..., None] * out)
        b = np.where((w_part == 0)[..., None], f(0), w_part[..., None] * part_out)
    return _rnd(a + b, out_dtype), np.swapaxes(merged, -1, -2).astype(f)


def run_merge_case(root: str, case: dict, mutation=None):
    """Folds every part of a merge case into its running result; returns {"out", "lse"}."""
    out = load_tensor(root, case["inputs"]["out"])
    lse = load_tensor(root, case["inputs"]["lse"])
    for part in case["parts"]:
        out, lse = merge32(out, lse, load_tensor(root, part["out"]),
                           load_tensor(root, part["lse"]), case["out_dtype"], mutation)
    return {"out": out, "lse": lse}


def merge_case_error_ratio(case: dict, root: str, per_output: bool = False, mutation=None):
    with np.errstate(over="ignore", invalid="ignore"):
        got = run_merge_case(root, case, mutation)
    ratios = {}
    for name, spec in case["expected"].items():
        t = case["tolerances"][name]
        ratios[name] = error_ratio(got[name], load_tensor(root, spec, expected=True), t["atol"],
                                   t["rtol"])
    return ratios if per_output else max(ratios.values())
