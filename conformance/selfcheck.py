#!/usr/bin/env python3
"""Self-check of conformance/reference.py (no pytest needed).

  python3 conformance/selfcheck.py

1. Direct formula: a scalar, loop-per-element implementation of the header's definition
   (written separately from reference.py) must agree with the reference's forward (out, lse).
2. Finite differences: central differences of L = sum(out * dout) with respect to q, k, v must
   agree with the reference's analytic backward.
3. PyTorch: when torch is installed, torch.nn.functional.scaled_dot_product_attention in float64
   (forward and autograd backward) must agree on the options it supports (scale, top-left causal,
   boolean / additive masks, GQA). Skipped with a printed reason when torch is absent.
4. Tolerance headroom: when conformance/manifest.json exists, an emulated low-precision
   implementation (emulate.py: float32 arithmetic, outputs rounded to their dtype; "gpu" mode
   also rounds the probabilities and dS to the input dtype before their matrix products, as
   tensor-core kernels do) runs every case from the stored files and must stay within a quarter
   of each case's tolerances.

5. Sensitivity: the same emulation with a deliberate bug (wrong GQA head mapping, wrong default
   scale, top-left instead of bottom-right causal, window or ALiBi without the diagonal offset,
   LSE without the max, backward without the rowsum term, softcap without its chain rule) must
   fail at least one case.
6. Merge (umfa_attention_merge): folding the reference's forwards over key shards with
   reference.merge, in any order, must give the reference's forward over all keys (fully masked
   rows and shards included, dense and varlen); -inf sides are ignored whatever their out holds.
   Then the merge cases of the manifest: a float32 emulation stays within a quarter of their
   tolerances, and deliberately wrong merges fail at least one of them.

Exits 1 on any failure.
"""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import reference as ref  # noqa: E402

FAILURES: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {name}{(' ' + detail) if detail else ''}")
    if not ok:
        FAILURES.append(name)


# ------------------------------------------------------------------------------------------------
# 1. Direct formula


def direct_forward(q, k, v, opts: ref.Options):
    """Scalar loops over (sequence, head, query); independent reading of umfa.h."""
    varlen = opts.cu_seqlens_q is not None
    if varlen:
        cq = [int(x) for x in opts.cu_seqlens_q]
        ck = [int(x) for x in opts.cu_seqlens_k]
        seqs = [(b, cq[b], cq[b + 1], ck[b], ck[b + 1]) for b in range(len(cq) - 1)]
        Hq, D = q.shape[1], q.shape[2]
        Hkv, Dv = v.shape[1], v.shape[2]
        out = np.zeros((q.shape[0], Hq, Dv))
        lse = np.full((Hq, q.shape[0]), -math.inf)
    else:
        B, Nq, Hq, D = q.shape
        Nk, Hkv, Dv = v.shape[1], v.shape[2], v.shape[3]
        seqs = [(b, 0, Nq, 0, Nk) for b in range(B)]
        out = np.zeros((B, Nq, Hq, Dv))
        lse = np.full((B, Hq, Nq), -math.inf)
    scale = opts.softmax_scale if opts.softmax_scale != 0 else 1.0 / math.sqrt(D)
    mask = None
    if opts.attn_mask is not None:
        m = np.asarray(opts.attn_mask)
        mask = m.reshape((1,) * (4 - m.ndim) + m.shape)
    for b, q0, q1, k0, k1 in seqs:
        nq, nk = q1 - q0, k1 - k0
        off = 0 if opts.mask_mode == 1 else nk - nq
        for h in range(Hq):
            hk = h // (Hq // Hkv)
            slope = None
            if opts.alibi_slopes is not None:
                a = np.asarray(opts.alibi_slopes)
                slope = float(a[h]) if a.ndim == 1 else float(a[b, h])
            for i in range(nq):
                scores = []
                for j in range(nk):
                    if opts.mask_mode == 1 and not (j <= i):
                        continue
                    if opts.mask_mode == 2 and not (j <= i + nk - nq):
                        continue
                    if opts.has_window:
                        d = j - (i + off)
                        if opts.window_left >= 0 and d < -opts.window_left:
                            continue
                        if opts.window_right >= 0 and d > opts.window_right:
                            continue
                    if varlen:
                        qi, kj = q[q0 + i, h], k[k0 + j, hk]
                    else:
                        qi, kj = q[b, i, h], k[b, j, hk]
                    s = sum(float(qi[x]) * float(kj[x]) for x in range(D)) * scale
                    if opts.softcap > 0:
                        s = opts.softcap * math.tanh(s / opts.softcap)
                    if slope is not None:
                        s += slope * -abs(i + off - j)
                    if mask is not None:
                        mv = mask[
                            b if mask.shape[0] > 1 else 0,
                            h if mask.shape[1] > 1 else 0,
                            i if mask.shape[2] > 1 else 0,
                            j if mask.shape[3] > 1 else 0,
                        ]
                        if mask.dtype == np.bool_:
                            if not mv:
                                continue
                        else:
                            s += float(mv)
                    if s == -math.inf:
                        continue
                    scores.append((j, s))
                if not scores:
                    continue
                mx = max(s for _, s in scores)
                tot = sum(math.exp(s - mx) for _, s in scores)
                row_lse = mx + math.log(tot)
                acc = np.zeros(Dv)
                for j, s in scores:
                    w = math.exp(s - row_lse)
                    acc += w * (v[k0 + j, hk] if varlen else v[b, j, hk])
                if varlen:
                    out[q0 + i, h] = acc
                    lse[h, q0 + i] = row_lse
                else:
                    out[b, i, h] = acc
                    lse[b, h, i] = row_lse
    return out, lse


def rng_normal(rng, shape, s=1.0):
    return rng.standard_normal(shape) * s


def configs():
    """Small configurations covering every option (name, q, k, v, dout, opts)."""
    rng = np.random.default_rng(1234)
    out = []

    def dense(name, B, Nq, Nk, Hq, Hkv, D, scale_in=1.0, **kw):
        q = rng_normal(rng, (B, Nq, Hq, D), scale_in)
        k = rng_normal(rng, (B, Nk, Hkv, D), scale_in)
        v = rng_normal(rng, (B, Nk, Hkv, D))
        do = rng_normal(rng, (B, Nq, Hq, D))
        out.append((name, q, k, v, do, ref.Options(**kw)))

    dense("plain", 2, 5, 6, 2, 2, 4)
    dense("scale", 1, 4, 4, 2, 2, 3, softmax_scale=0.37)
    dense("causal_tl_q<k", 1, 4, 6, 2, 1, 4, mask_mode=1)
    dense("causal_tl_q>k", 1, 6, 4, 2, 2, 4, mask_mode=1)
    dense("causal_br_q<k", 1, 4, 6, 2, 2, 4, mask_mode=2)
    dense("causal_br_q>k (masked rows)", 2, 6, 3, 2, 1, 4, mask_mode=2)
    dense("window_l2_r1", 1, 5, 7, 2, 2, 4, has_window=1, window_left=2, window_right=1)
    dense("window_l1_causal_tl", 1, 6, 5, 1, 1, 3, mask_mode=1, has_window=1, window_left=1,
          window_right=-1)
    dense("window_l0_r0_q>k", 1, 6, 3, 1, 1, 3, has_window=1, window_left=0, window_right=0)
    dense("softcap", 1, 4, 5, 2, 2, 4, scale_in=2.0, softcap=1.5)
    dense("softcap_causal_br", 1, 5, 5, 2, 1, 4, scale_in=2.0, softcap=2.0, mask_mode=2)
    dense("alibi_h", 2, 4, 6, 2, 2, 4, alibi_slopes=np.array([0.5, 0.25]))
    dense("alibi_bh_causal_tl", 2, 5, 4, 2, 2, 4, mask_mode=1,
          alibi_slopes=np.array([[0.5, 0.25], [0.125, 1.0]]))
    m = rng.random((2, 2, 4, 5)) > 0.4
    m[0, 1, 2, :] = False
    dense("bool_mask_full (masked row)", 2, 4, 5, 2, 2, 3, attn_mask=m)
    dense("bool_mask_rank2", 2, 4, 5, 2, 1, 3, attn_mask=rng.random((4, 5)) > 0.3)
    dense("bool_mask_keypad", 2, 4, 5, 2, 2, 3, attn_mask=rng.random((2, 1, 1, 5)) > 0.3)
    a = rng_normal(rng, (4, 5))
    a[1, :] = -np.inf
    a[2, 3] = -np.inf
    dense("additive_rank2 (-inf row)", 1, 4, 5, 2, 2, 3, attn_mask=a)
    dense("additive_b1qk+causal", 2, 5, 5, 2, 1, 3, mask_mode=2,
          attn_mask=rng_normal(rng, (2, 1, 5, 5)))
    dense("gqa4", 1, 4, 4, 4, 1, 4)
    dense("everything", 2, 5, 7, 4, 2, 4, scale_in=1.5, mask_mode=2, softcap=3.0, has_window=1,
          window_left=3, window_right=-1, alibi_slopes=np.array([0.3, 0.2, 0.1, 0.05]),
          attn_mask=rng_normal(rng, (5, 7)))
    dense("nk=0", 1, 3, 0, 2, 2, 4)
    dense("nq=0", 1, 0, 3, 2, 2, 4)

    def varlen(name, lq, lk, Hq, Hkv, D, **kw):
        cq = np.concatenate([[0], np.cumsum(lq)]).astype(np.int32)
        ck = np.concatenate([[0], np.cumsum(lk)]).astype(np.int32)
        q = rng_normal(rng, (int(cq[-1]), Hq, D))
        k = rng_normal(rng, (int(ck[-1]), Hkv, D))
        v = rng_normal(rng, (int(ck[-1]), Hkv, D))
        do = rng_normal(rng, (int(cq[-1]), Hq, D))
        out.append((name, q, k, v, do, ref.Options(cu_seqlens_q=cq, cu_seqlens_k=ck, **kw)))

    varlen("varlen", [3, 0, 4], [2, 3, 5], 2, 1, 4)
    varlen("varlen_causal_br_alibi", [3, 4, 2], [2, 5, 2], 2, 2, 3, mask_mode=2,
           alibi_slopes=np.array([[0.5, 0.1], [0.2, 0.3], [1.0, 0.0]]))
    varlen("varlen_window_softcap", [4, 3], [5, 3], 2, 2, 3, has_window=1, window_left=1,
           window_right=1, softcap=2.0)
    return out


def section_direct():
    print("1. reference vs direct formula")
    for name, q, k, v, _, opts in configs():
        r = ref.attention(q, k, v, opts)
        o2, l2 = direct_forward(q, k, v, opts)
        same_inf = np.array_equal(np.isneginf(r.lse), np.isneginf(l2))
        fin = np.isfinite(l2)
        err_o = float(np.max(np.abs(r.out - o2), initial=0.0))
        err_l = float(np.max(np.abs(r.lse[fin] - l2[fin]), initial=0.0))
        nan = bool(np.isnan(r.out).any() or np.isnan(r.lse).any())
        check(name, same_inf and err_o < 1e-12 and err_l < 1e-12 and not nan,
              f"out {err_o:.1e} lse {err_l:.1e}")


# ------------------------------------------------------------------------------------------------
# 2. Finite differences


def section_fd():
    print("2. analytic backward vs central finite differences (L = sum(out * dout))")
    eps = 1e-6
    for name, q, k, v, do, opts in configs():
        r = ref.attention(q, k, v, opts, dout=do)
        nan = any(np.isnan(x).any() for x in (r.dq, r.dk, r.dv))

        def loss(qq, kk, vv):
            return float(np.sum(ref.attention(qq, kk, vv, opts).out * do))

        worst = 0.0
        for which, analytic in (("q", r.dq), ("k", r.dk), ("v", r.dv)):
            base = {"q": q, "k": k, "v": v}
            x = base[which]
            num = np.zeros_like(x)
            flat = x.reshape(-1)
            for idx in range(flat.size):
                old = flat[idx]
                flat[idx] = old + eps
                lp = loss(base["q"], base["k"], base["v"])
                flat[idx] = old - eps
                lm = loss(base["q"], base["k"], base["v"])
                flat[idx] = old
                num.reshape(-1)[idx] = (lp - lm) / (2 * eps)
            denom = max(1.0, float(np.max(np.abs(num), initial=0.0)))
            worst = max(worst, float(np.max(np.abs(num - analytic), initial=0.0)) / denom)
        check(name, worst < 1e-6 and not nan, f"max rel err {worst:.1e}")


# ------------------------------------------------------------------------------------------------
# 3. PyTorch


def section_torch():
    print("3. reference vs torch.nn.functional.scaled_dot_product_attention (float64)")
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:  # pragma: no cover - environment dependent
        print(f"  skipped: torch is not installed ({e})")
        return
    rng = np.random.default_rng(99)
    cases = [
        ("plain", dict(B=2, Nq=5, Nk=7, Hq=2, Hkv=2, D=8), {}),
        ("scale", dict(B=1, Nq=4, Nk=4, Hq=2, Hkv=2, D=8), dict(softmax_scale=0.2)),
        ("is_causal q<k", dict(B=1, Nq=4, Nk=6, Hq=2, Hkv=2, D=8), dict(mask_mode=1)),
        ("is_causal q=k", dict(B=2, Nq=6, Nk=6, Hq=2, Hkv=2, D=8), dict(mask_mode=1)),
        ("causal_lower_right q<k", dict(B=1, Nq=4, Nk=7, Hq=2, Hkv=2, D=8), dict(mask_mode=2)),
        ("gqa", dict(B=1, Nq=5, Nk=5, Hq=4, Hkv=2, D=8), {}),
        ("mqa causal", dict(B=1, Nq=5, Nk=5, Hq=4, Hkv=1, D=8), dict(mask_mode=1)),
        ("bool mask", dict(B=2, Nq=4, Nk=6, Hq=2, Hkv=2, D=8), dict(attn_mask="bool")),
        ("additive mask", dict(B=2, Nq=4, Nk=6, Hq=2, Hkv=1, D=8), dict(attn_mask="add")),
    ]
    for name, sh, kw in cases:
        B, Nq, Nk, Hq, Hkv, D = (sh[x] for x in ("B", "Nq", "Nk", "Hq", "Hkv", "D"))
        q = rng.standard_normal((B, Nq, Hq, D))
        k = rng.standard_normal((B, Nk, Hkv, D))
        v = rng.standard_normal((B, Nk, Hkv, D))
        do = rng.standard_normal((B, Nq, Hq, D))
        tmask = None
        if kw.get("attn_mask") == "bool":
            m = rng.random((B, 1, Nq, Nk)) > 0.4
            m[..., 0] = True  # torch's math path gives NaN for fully masked rows; avoid them
            kw = dict(kw, attn_mask=m)
            tmask = torch.from_numpy(m)
        elif kw.get("attn_mask") == "add":
            m = rng.standard_normal((Nq, Nk))
            kw = dict(kw, attn_mask=m)
            tmask = torch.from_numpy(m)
        opts = ref.Options(**kw)
        if opts.mask_mode == 2:  # FlashAttention's causal = torch's lower-right causal bias
            from torch.nn.attention.bias import causal_lower_right

            tmask = causal_lower_right(Nq, Nk)
        r = ref.attention(q, k, v, opts, dout=do)
        tq = torch.from_numpy(q.transpose(0, 2, 1, 3).copy()).requires_grad_()
        tk = torch.from_numpy(k.transpose(0, 2, 1, 3).copy()).requires_grad_()
        tv = torch.from_numpy(v.transpose(0, 2, 1, 3).copy()).requires_grad_()
        o = F.scaled_dot_product_attention(
            tq, tk, tv, attn_mask=tmask, is_causal=opts.mask_mode == 1,
           
            scale=opts.softmax_scale or None, enable_gqa=Hq != Hkv)
        o.backward(torch.from_numpy(do.transpose(0, 2, 1, 3).copy()))
        t = lambda x: x.detach().numpy().transpose(0, 2, 1, 3)  # noqa: E731
        errs = [
            np.max(np.abs(r.out - t(o))),
            np.max(np.abs(r.dq - t(tq.grad))),
            np.max(np.abs(r.dk - t(tk.grad))),
            np.max(np.abs(r.dv - t(tv.grad))),
        ]
        check(name, max(errs) < 1e-10, "out/dq/dk/dv " + " ".join(f"{e:.1e}" for e in errs))


# ------------------------------------------------------------------------------------------------
# 4. Tolerance headroom against the committed manifest


def section_headroom():
    print("4. tolerance headroom: emulated low-precision implementation vs the manifest")
    path = os.path.join(HERE, "manifest.json")
    if not os.path.exists(path):
        print("  skipped: conformance/manifest.json not found (run generate.py)")
        return
    import emulate  # noqa: E402

    with open(path) as f:
        manifest = json.load(f)
    for mode in ("cpu", "gpu"):
        worst: dict = {}
        for case in manifest["cases"]:
            ratios = emulate.case_error_ratio(manifest, case, HERE, per_output=True, mode=mode)
            for name, ratio in ratios.items():
                key = (case["tolerance_class"], "grad" if name in ("dq", "dk", "dv") else name)
                if ratio > worst.get(key, (-1.0, ""))[0]:
                    worst[key] = (ratio, case["id"])
                if ratio > 0.25:
                    check(f"{mode} {case['id']} {name}", False,
                          f"emulated error / tolerance = {ratio:.3f} (> 0.25)")
        summary = ", ".join(f"{c}/{o} {r:.3f}" for (c, o), (r, _) in sorted(worst.items()))
        check(f"{mode}-style emulation, {len(manifest['cases'])} cases",
              all(r <= 0.25 for r, _ in worst.values()),
              f"worst error/tolerance: {summary}")


def section_mutants():
    print("5. sensitivity: deliberately wrong implementations must fail some case")
    path = os.path.join(HERE, "manifest.json")
    if not os.path.exists(path):
        print("  skipped: conformance/manifest.json not found (run generate.py)")
        return
    import emulate  # noqa: E402

    with open(path) as f:
        manifest = json.load(f)
    for mutation in emulate.MUTATIONS:
        failing = []
        for case in manifest["cases"]:
            ratio = emulate.case_error_ratio(manifest, case, HERE, mode="cpu", mutation=mutation)
            if ratio > 1.0:
                failing.append(case["id"])
        check(f"mutant {mutation}", len(failing) > 0,
              f"fails {len(failing)} case(s)" + (f", e.g. {', '.join(failing[:3])}" if failing
                                                  else ""))


# ------------------------------------------------------------------------------------------------
# 6. Merge


def fold(results):
    """reference.merge over a list of (out, lse), starting from an empty running result (out
    NaN, LSE -inf)."""
    out = np.full_like(results[0][0], np.nan)
    lse = np.full_like(results[0][1], -np.inf)
    for part_out, part_lse in results:
        out, lse = ref.merge(out, lse, part_out, part_lse)
    return out, lse


def merge_configs():
    """(name, full result, per-shard results) for problems whose keys are cut into shards."""
    rng = np.random.default_rng(99)
    out = []

    def dense(name, B, Nq, Nk, Hq, Hkv, D, cuts, visible):
        q = rng_normal(rng, (B, Nq, Hq, D))
        k = rng_normal(rng, (B, Nk, Hkv, D))
        v = rng_normal(rng, (B, Nk, Hkv, D))
        full = ref.attention(q, k, v, ref.Options(attn_mask=visible))
        shards = [ref.attention(q, k[:, a:b], v[:, a:b], ref.Options(attn_mask=visible[..., a:b]))
                  for a, b in zip(cuts[:-1], cuts[1:])]
        out.append((name, (full.out, full.lse), [(r.out, r.lse) for r in shards]))

    dense("plain, 2 shards", 2, 5, 8, 2, 2, 4, [0, 3, 8], np.ones((5, 8), bool))
    causal = np.tril(np.ones((9, 9), bool))
    dense("causal, 3 shards (fully masked rows within shards)", 1, 9, 9, 2, 1, 4, [0, 3, 6, 9],
          causal)
    m = rng.random((2, 3, 6, 10)) > 0.5
    m[0, 1, 2, :] = False  # a row with no key at all
    m[1, :, :, 4:7] = False  # a shard no row of batch 1 sees
    dense("bool mask, GQA, 3 shards (masked row, masked shard)", 2, 6, 10, 3, 1, 5,
          [0, 4, 7, 10], m)

    # varlen: each sequence's keys cut in two (shards are varlen problems of their own).
    lq, lk = [3, 0, 4], [4, 3, 6]
    cq = np.concatenate([[0], np.cumsum(lq)]).astype(np.int32)
    q = rng_normal(rng, (int(cq[-1]), 2, 3))
    k = rng_normal(rng, (sum(lk), 1, 3))
    v = rng_normal(rng, (sum(lk), 1, 3))
    ck = np.concatenate([[0], np.cumsum(lk)])
    full = ref.attention(q, k, v, ref.Options(cu_seqlens_q=cq, cu_seqlens_k=ck.astype(np.int32)))
    shards = []
    for half in (0, 1):
        rows = [np.arange(a, a + n // 2) if half == 0 else np.arange(a + n // 2, a + n)
                for a, n in zip(ck[:-1], lk)]
        cks = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int32)
        idx = np.concatenate(rows)
        r = ref.attention(q, k[idx], v[idx], ref.Options(cu_seqlens_q=cq, cu_seqlens_k=cks))
        shards.append((r.out, r.lse))
    out.append(("varlen, each sequence's keys in 2 shards", (full.out, full.lse), shards))
    return out


def section_merge():
    print("6. merge: folded shard forwards vs the full forward, -inf rules, merge cases")
    for name, (full_out, full_lse), shards in merge_configs():
        for order, parts in (("in order", shards), ("reversed", shards[::-1])):
            out, lse = fold(parts)
            same_inf = np.array_equal(np.isneginf(lse), np.isneginf(full_lse))
            fin = np.isfinite(full_lse)
            err_o = float(np.max(np.abs(out - full_out), initial=0.0))
            err_l = float(np.max(np.abs(lse[fin] - full_lse[fin]), initial=0.0))
            nan = bool(np.isnan(out).any() or np.isnan(lse).any())
            check(f"{name}, {order}", same_inf and err_o < 1e-12 and err_l < 1e-12 and not nan,
                  f"out {err_o:.1e} lse {err_l:.1e}")

    one = np.array([[[[1.0, -2.0]]]])
    nan = np.full_like(one, np.nan)
    zero_lse, ninf = np.array([[[0.5]]]), np.array([[[-np.inf]]])
    o, l = ref.merge(nan, ninf, one, zero_lse)
    check("-inf running side ignored (its out is NaN)",
          np.array_equal(o, one) and l[0, 0, 0] == 0.5)
    o, l = ref.merge(one, zero_lse, nan, ninf)
    check("-inf part ignored (its out is NaN)", np.array_equal(o, one) and l[0, 0, 0] == 0.5)
    o, l = ref.merge(nan, ninf, nan, ninf)
    check("both -inf: out 0, lse -inf", np.array_equal(o, np.zeros_like(one)) and
          np.isneginf(l).all())

    path = os.path.join(HERE, "manifest.json")
    if not os.path.exists(path):
        print("  skipped: conformance/manifest.json not found (run generate.py)")
        return
    import emulate  # noqa: E402

    with open(path) as f:
        cases = json.load(f).get("merge_cases", [])
    worst: dict = {}
    for case in cases:
        for name, ratio in emulate.merge_case_error_ratio(case, HERE, per_output=True).items():
            key = (case["tolerance_class"], name)
            worst[key] = max(worst.get(key, 0.0), ratio)
            if ratio > 0.25:
                check(f"merge {case['id']} {name}", False,
                      f"emulated error / tolerance = {ratio:.3f} (> 0.25)")
    summary = ", ".join(f"{c}/{o} {r:.3f}" for (c, o), r in sorted(worst.items()))
    check(f"float32 merge emulation, {len(cases)} merge cases",
          len(cases) > 0 and all(r <= 0.25 for r in worst.values()),
          f"worst error/tolerance: {summary}")
    for mutation in emulate.MERGE_MUTATIONS:
        failing = [c["id"] for c in cases
                   if emulate.merge_case_error_ratio(c, HERE, mutation=mutation) > 1.0]
        check(f"mutant {mutation}", len(failing) > 0,
              f"fails {len(failing)} case(s)" + (f", e.g. {', '.join(failing[:3])}" if failing
                                                  else ""))


def main() -> int:
    section_direct()
    section_fd()
    section_torch()
    section_headroom()
    section_mutants()
    section_merge()
    if FAILURES:
        print(f"selfcheck FAILED: {len(FAILURES)} check(s): {', '.join(FAILURES)}")
        return 1
    print("selfcheck passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
