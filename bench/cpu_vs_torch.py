#!/usr/bin/env python3
"""umfa's CPU backend against PyTorch's CPU `scaled_dot_product_attention`, side by side.

Shapes (issue 7): B=1, H=8, N in {512, 2048}, D in {64, 128}, and B=1, H=4, N=8192, D=64;
causal and not; float32, bfloat16, float16; forward and backward. Plus decode: one query
(Nq=1) against Nk=32768 keys, 32 query heads over 8 KV heads (GQA), D=128, bfloat16 and float32,
forward.

Method
  * One process, one set of tensors per case: PyTorch's own BHSD layout (contiguous
    [B, H, N, D]); umfa reads the same memory through permuted strides (no copies, no
    conversions on either side).
  * Same thread count for both: torch.set_num_threads(T) and umfa.Context("cpu", num_threads=T)
    (T = 2 by default).
  * Forward: umfa_attention_forward without LSE vs F.scaled_dot_product_attention under
    torch.no_grad() (inference on both sides). Causal is top-left (PyTorch's is_causal); Nq = Nk,
    so it is also FlashAttention's. Decode: umfa's GQA vs SDPA(..., enable_gqa=True).
  * Backward: only the backward kernels are timed. umfa: umfa_attention_backward from the
    out/LSE of one untimed forward. PyTorch: the SDPA graph is built once, untimed, and each
    timed call is torch.autograd.grad(out, (q, k, v), dout, retain_graph=True), i.e. the
    backward of that one forward (PyTorch allocates its three gradients in that call; umfa
    writes into preallocated ones, as its API does).
  * Interleaving: the case list is traversed --passes times; in every pass each case runs at
    least --rounds rounds of umfa and PyTorch turns (order flipped each round, after a warm-up
    call of each; cheap cases run more rounds, up to --budget seconds or --max-rounds),
    so load from other processes on the machine hits both sides alike.
  * Each side's turn in a round is a short burst: for calls under 0.25 s, one untimed call and
    then two timed calls back to back (longer calls: one timed call). PyTorch's OpenMP workers
    spin for a few milliseconds after each call (umfa's pool for 0.2 ms), taking a core from
    whatever runs next, so the first call after the other side measures neither; this way each
    side is timed as in a loop of its own calls, while the bursts alternate. The
    reported time is the median of all samples; the ratio is umfa GFLOP/s / PyTorch GFLOP/s
    (= PyTorch time / umfa time, > 1 means umfa is faster).
  * GFLOP/s use FlashAttention's count: forward 4*B*Hq*Nq*Nk*D (halved when causal), backward
    2.5x forward.
  * Each case also checks umfa's result against PyTorch's (relative L2 error, reported).

The summary, printed last, is the geometric mean of the ratio per dtype and direction (decode
separately), with the issue's bars: f32 >= 1.0 (and no shape below 0.9), bf16 >= 1.5,
f16 >= 3, decode >= 1.5.

Usage (from the repository root, after `bash core/scripts/build.sh`):
    PYTHONPATH=bindings/python/src python3 bench/cpu_vs_torch.py \\
        [--out bench/results/cpu_vs_torch.json] [--threads 2] [--passes 2] [--rounds 3]
        [--quick] [--only TOKENS]

--quick: one pass of two rounds and no N=8192 case (a smoke run; results not written unless
--out is given). --only: comma-separated tokens; a case runs when, for every kind of token
given, it matches one of them: dtypes (f32, bf16, f16), directions (fwd, bwd, decode),
causal / full, N=<n>, D=<d>. Example: --only bf16,fwd,N=2048.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import umfa

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
BARS = {  # (direction group, dtype) -> geomean bar
    ("fwd", "f32"): 1.0, ("bwd", "f32"): 1.0,
    ("fwd", "bf16"): 1.5, ("bwd", "bf16"): 1.5,
    ("fwd", "f16"): 3.0, ("bwd", "f16"): 3.0,
    ("decode", "f32"): 1.5, ("decode", "bf16"): 1.5,
}
F32_SHAPE_FLOOR = 0.9  # no single f32 shape below this ratio
BURST = 2              # timed calls per side and round (after one untimed call) ...
BURST_BELOW_S = 0.25   # ... for calls shorter than this; longer calls: one timed call


def cases(quick: bool):
    shapes = [(1, 8, 512, 64), (1, 8, 512, 128), (1, 8, 2048, 64), (1, 8, 2048, 128),
              (1, 4, 8192, 64)]
    if quick:
        shapes = shapes[:4]
    out = []
    for dt in ("f32", "bf16", "f16"):
        for direction in ("fwd", "bwd"):
            for (B, H, N, D) in shapes:
                for causal in (False, True):
                    out.append(dict(dtype=dt, direction=direction, B=B, Hq=H, Hkv=H, Nq=N, Nk=N,
                                    D=D, causal=causal))
    for dt in ("bf16", "f32"):
        out.append(dict(dtype=dt, direction="decode", B=1, Hq=32, Hkv=8, Nq=1, Nk=32768, D=128,
                        causal=False))
    return out


def selected(case, only):
    if not only:
        return True
    toks = [t.strip() for t in only.split(",") if t.strip()]
    groups = {}
    for t in toks:
        if t in DTYPES:
            kind = "dtype"
        elif t in ("fwd", "bwd", "decode"):
            kind = "direction"
        elif t in ("causal", "full"):
            kind = "causal"
        elif t.startswith("N="):
            kind = "N"
        elif t.startswith("D="):
            kind = "D"
        else:
            raise SystemExit(f"--only: unknown token {t!r}")
        groups.setdefault(kind, []).append(t)
    value = {"dtype": case["dtype"], "direction": case["direction"],
             "causal": "causal" if case["causal"] else "full", "N": f"N={case['Nk']}",
             "D": f"D={case['D']}"}
    return all(value[k] in v for k, v in groups.items())


def flops(c):
    f = 4.0 * c["B"] * c["Hq"] * c["Nq"] * c["Nk"] * c["D"]
    if c["causal"]:
        f /= 2
    return f * (2.5 if c["direction"] == "bwd" else 1.0)


def shape_label(c):
    if c["direction"] == "decode":
        return f"{c['B']}×{c['Hq']}/{c['Hkv']}×{c['Nq']}/{c['Nk']}×{c['D']}"
    return f"{c['B']}×{c['Hq']}×{c['Nq']}×{c['D']}"


def rel_l2(a, b):
    a, b = a.float(), b.float()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


class Case:
    """Tensors and the two callables of one case."""

    def __init__(self, ctx, c, seed):
        self.c = c
        dt = DTYPES[c["dtype"]]
        g = torch.Generator().manual_seed(seed)
        B, Hq, Hkv, Nq, Nk, D = c["B"], c["Hq"], c["Hkv"], c["Nq"], c["Nk"], c["D"]
        # BHSD, PyTorch's layout; umfa gets the BSHD view of the same memory.
        q = torch.randn(B, Hq, Nq, D, generator=g).to(dt)
        k = torch.randn(B, Hkv, Nk, D, generator=g).to(dt)
        v = torch.randn(B, Hkv, Nk, D, generator=g).to(dt)
        bs = lambda t: t.transpose(1, 2)  # noqa: E731
        causal = c["causal"]
        opts = {"mask_mode": "causal_top_left"} if causal else {}
        gqa = Hq != Hkv
        self.check = None
        if c["direction"] in ("fwd", "decode"):
            out = torch.empty(B, Hq, Nq, D, dtype=dt)

            def u():
                ctx.forward(bs(q), bs(k), bs(v), bs(out), None, **opts)

            def t():
                with torch.no_grad():
                    return F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                          enable_gqa=gqa)

            def check():
                u()
                return {"rel_err_out": rel_l2(out, t())}
        else:
            out = torch.empty(B, Hq, Nq, D, dtype=dt)
            lse = torch.empty(B, Hq, Nq, dtype=torch.float32)
            dout = torch.randn(B, Hq, Nq, D, generator=g).to(dt)
            dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
            ctx.forward(bs(q), bs(k), bs(v), bs(out), lse, **opts)
            qr, kr, vr = (x.detach().clone().requires_grad_(True) for x in (q, k, v))
            ot = F.scaled_dot_product_attention(qr, kr, vr, is_causal=causal)

            def u():
                ctx.backward(bs(q), bs(k), bs(v), bs(out), bs(dout), lse, bs(dq), bs(dk),
                             bs(dv), **opts)

            def t():
                return torch.autograd.grad(ot, (qr, kr, vr), dout, retain_graph=True)

            def check():
                u()
                gq, gk, gv = t()
                return {"rel_err_out": rel_l2(out, ot.detach()), "rel_err_dq": rel_l2(dq, gq),
                        "rel_err_dk": rel_l2(dk, gk), "rel_err_dv": rel_l2(dv, gv)}
        self.u, self.t, self.check = u, t, check
        self.times = {"umfa": [], "torch": []}

    def run_rounds(self, rounds, budget, max_rounds):
        # Warm-up (also pulls this case's tensors back into the caches after other cases ran).
        self.u()
        self.t()
        t_start = time.perf_counter()
        r = 0
        # At least `rounds` rounds; cheap cases keep going until `budget` seconds (up to
        # max_rounds), so the noisiest (shortest) timings get the most samples.
        while r < rounds or (time.perf_counter() - t_start < budget and r < max_rounds):
            order = (("umfa", self.u), ("torch", self.t))
            if r % 2:
                order = order[::-1]
            for name, fn in order:
                # A burst per side: for calls shorter than BURST_BELOW_S, one untimed call and
                # then BURST timed calls back to back. The first call after the other side is
                # not representative of either: PyTorch's OpenMP workers spin for a few
                # milliseconds after each call (umfa's pool for 0.2 ms), taking a core from
                # whatever runs next. Longer calls: one timed call (the effect is < 2 %).
                prev = self.times[name][-1] if self.times[name] else 0.0
                n = BURST if prev < BURST_BELOW_S else 1
                if n > 1:
                    fn()
                for _ in range(n):
                    t0 = time.perf_counter()
                    fn()
                    self.times[name].append(time.perf_counter() - t0)
            r += 1


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def summarize(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["direction"], r["dtype"]), []).append(r)
    out = []
    for key in [("fwd", "f32"), ("bwd", "f32"), ("fwd", "bf16"), ("bwd", "bf16"), ("fwd", "f16"),
                ("bwd", "f16"), ("decode", "bf16"), ("decode", "f32")]:
        rs = groups.get(key)
        if not rs:
            continue
        gm = geomean([r["ratio"] for r in rs])
        lo = min(r["ratio"] for r in rs)
        bar = BARS[key]
        ok = gm is not None and gm >= bar
        if key[1] == "f32" and key[0] != "decode":
            ok = ok and lo >= F32_SHAPE_FLOOR
            bar_text = f">= {bar} (no shape < {F32_SHAPE_FLOOR})"
        else:
            bar_text = f">= {bar}"
        out.append({"dtype": key[1], "direction": key[0], "shapes": len(rs),
                    "geomean_ratio": round(gm, 3), "min_ratio": round(lo, 3), "bar": bar_text,
                    "met": ok})
    return out


def machine():
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": sys.platform,
            "arch": "x64" if platform.machine() in ("x86_64", "AMD64") else platform.machine()}


def fmt_row(r):
    return (f"{r['dtype']:>5} {r['direction']:>6} {r['shape']:>18} {'causal' if r['causal'] else 'full':>6}"
            f" {r['umfa_gflops']:9.1f} {r['torch_gflops']:9.1f} {r['ratio']:7.2f}"
            f"  err {r['rel_err']:.1e}")


def markdown(rows, summary, meta):
    L = ["# umfa CPU backend vs PyTorch SDPA (CPU)", "",
         f"{meta['machine']['cpu']}, {meta['machine']['cores']} cores, {meta['threads']} threads "
         f"for both; PyTorch {meta['torch']}; umfa {meta['umfa']['version']} (kernels "
         f"{meta['umfa']['kernels']}); {meta['date']}.", "",
         f"Command: `{meta['command']}`", "",
         meta["method"], "",
         "| dtype | direction | B×H×N×D | causal | umfa GFLOP/s | PyTorch GFLOP/s | ratio |",
         "|---|---|---|---|---|---|---|"]
    for r in rows:
        L.append(f"| {r['dtype']} | {r['direction']} | {r['shape']} | "
                 f"{'yes' if r['causal'] else 'no'} | {r['umfa_gflops']:.1f} | "
                 f"{r['torch_gflops']:.1f} | {r['ratio']:.2f} |")
    L += ["", "Geometric mean of the ratio (umfa / PyTorch) per dtype and direction:", "",
          "| dtype | direction | shapes | geomean | min | bar | met |", "|---|---|---|---|---|---|---|"]
    for s in summary:
        L.append(f"| {s['dtype']} | {s['direction']} | {s['shapes']} | {s['geomean_ratio']:.2f} | "
                 f"{s['min_ratio']:.2f} | {s['bar']} | {'yes' if s['met'] else 'no'} |")
    return "\n".join(L) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="results JSON (a .md table is written next to it); default "
                    "bench/results/cpu_vs_torch.json for full runs, none for --quick/--only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--passes", type=int, default=2, help="traversals of the case list")
    ap.add_argument("--rounds", type=int, default=3, help="minimum A/B rounds per case and pass")
    ap.add_argument("--budget", type=float, default=1.5,
                    help="seconds per case and pass: cheap cases run more rounds, up to --max-rounds")
    ap.add_argument("--max-rounds", type=int, default=40)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    if args.quick:
        args.passes, args.rounds, args.budget = 1, 2, 0.3
    out_path = args.out or (None if (args.quick or args.only) else "bench/results/cpu_vs_torch.json")

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    ctx = umfa.Context("cpu", num_threads=args.threads)
    argv = " ".join(a if " " not in a else repr(a) for a in sys.argv[1:])
    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine(),
        "command": "PYTHONPATH=bindings/python/src python3 bench/cpu_vs_torch.py" + (f" {argv}" if argv else ""),
        "torch": torch.__version__,
        # Only the CPU part of the build info (the rest names library paths on this machine).
        "umfa": {"version": umfa.version_string(),
                 "cpu_backend": next((p.strip() for p in umfa.build_info().split(";")
                                      if "cpu backend" in p), "?"),
                 "kernels": next((p.split("kernels ")[1].split(")")[0] for p in
                                  umfa.build_info().split(";") if "kernels " in p), "?")},
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "umfa_threads": ctx.num_threads,
        "passes": args.passes,
        "rounds_per_pass": args.rounds,
        "budget_s_per_case_and_pass": args.budget,
        "max_rounds_per_pass": args.max_rounds,
        "method": ("Same tensors (PyTorch BHSD; umfa through permuted strides), same thread count; "
                   "umfa and PyTorch take turns after a warm-up, over "
                   f"{args.passes} pass(es) of at least {args.rounds} round(s) each (cheap cases: "
                   f"more rounds, up to {args.budget} s or {args.max_rounds} rounds per pass); "
                   "each turn is a burst (calls under 0.25 s: one untimed call, then two timed, "
                   "back to back; PyTorch's OpenMP workers spin for milliseconds after a call, so "
                   "the first call after the other side measures neither); medians of all samples. "
                   "GFLOP/s by FlashAttention's count (fwd 4·B·H·Nq·Nk·D, halved when causal; "
                   "bwd 2.5×). ratio = umfa GFLOP/s / PyTorch GFLOP/s. Backward times only the "
                   "backward: umfa_attention_backward vs torch.autograd.grad of one SDPA graph "
                   "(retain_graph)."),
    }
    print(f"# {meta['machine']['cpu']}, threads: torch {meta['torch_threads']}, umfa "
          f"{meta['umfa_threads']} ({meta['umfa']['kernels']}); torch {meta['torch']}", flush=True)
    todo = [c for c in cases(args.quick) if selected(c, args.only)]
    if not todo:
        raise SystemExit("no case selected")

    objs = []
    for i, c in enumerate(todo):
        case = Case(ctx, c, seed=1000 + i)
        errs = case.check()
        objs.append((case, errs))
    print(f"# {len(todo)} cases, {args.passes} pass(es) x >= {args.rounds} round(s)", flush=True)
    for p in range(args.passes):
        t0 = time.perf_counter()
        for case, _ in objs:
            case.run_rounds(args.rounds, args.budget, args.max_rounds)
        print(f"# pass {p + 1}/{args.passes}: {time.perf_counter() - t0:.0f} s", flush=True)

    rows = []
    print(f"{'dtype':>5} {'dir':>6} {'shape':>18} {'mask':>6} {'umfa':>9} {'torch':>9} {'ratio':>7}"
          "  (GFLOP/s)", flush=True)
    for case, errs in objs:
        c = case.c
        tu = statistics.median(case.times["umfa"])
        tt = statistics.median(case.times["torch"])
        fl = flops(c)
        row = {"dtype": c["dtype"], "direction": c["direction"], "shape": shape_label(c),
               "causal": c["causal"], "umfa_gflops": round(fl / tu * 1e-9, 2),
               "torch_gflops": round(fl / tt * 1e-9, 2), "ratio": round(tt / tu, 3),
               "umfa_ms": round(tu * 1e3, 3), "torch_ms": round(tt * 1e3, 3),
               "samples": len(case.times["umfa"]),
               "rel_err": float(f"{max(errs.values()):.3g}")}
        row.update({k: float(f"{v:.3g}") for k, v in errs.items()})
        rows.append(row)
        print(fmt_row(row), flush=True)

    summary = summarize(rows)
    md = markdown(rows, summary, meta)
    if out_path:
        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        table_rows = [{"dtype": r["dtype"], "direction": r["direction"], "B×H×N×D": r["shape"],
                       "causal": r["causal"], "umfa GFLOP/s": r["umfa_gflops"],
                       "PyTorch GFLOP/s": r["torch_gflops"], "ratio": r["ratio"]} for r in rows]
        out.write_text(json.dumps({"meta": meta, "rows": table_rows, "detail": rows,
                                   "summary": summary}, indent=1, ensure_ascii=False) + "\n")
        # The per-dtype summary as its own results file (a second table on the docs page).
        summ = out.with_name(out.stem + ".summary.json")
        summ.write_text(json.dumps({"meta": meta, "rows": summary}, indent=1,
                                   ensure_ascii=False) + "\n")
        out.with_suffix(".md").write_text(md)
        print(f"# wrote {out}, {summ}, {out.with_suffix('.md')}", flush=True)

    print("\ngeometric mean of umfa/PyTorch ratio per dtype and direction:")
    for s in summary:
        print(f"  {s['dtype']:>5} {s['direction']:>6}: {s['geomean_ratio']:.2f}  (min {s['min_ratio']:.2f},"
              f" {s['shapes']} shapes; bar {s['bar']}: {'met' if s['met'] else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
