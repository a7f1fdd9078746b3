#!/usr/bin/env python3
"""umfa's CUDA backend against PyTorch SDPA (FLASH and cuDNN backends), in one run.

Grid: B*N = 16384 tokens, H*D = 2048, N in {512, 2048, 8192}, D in {64, 128, 256}, causal and
not, bf16 and f16, forward and backward. Tensors are allocated once as BSHD (PyTorch gets the
BHSD view of the same memory, which both of its backends read in place). Each call is timed
with its own pair of CUDA events after warm-up; the median is reported. TFLOP/s use
FlashAttention's count: forward 4*B*H*N^2*D (halved when causal), backward 2.5x forward.
Each umfa result is also checked against PyTorch's output (relative L2 error).

Plus the latency of one small call: single head, N = 512, D = 64, f16, causal, measured
(a) back to back through the Python API (host overhead included) and (b) as CUDA-graph replays
(device time only), for umfa and PyTorch's default, FLASH and cuDNN backends.

Usage: PYTHONPATH=bindings/python/src UMFA_LIB_DIR=dist/native/linux-x64/lib \
           python3 bench/cuda_vs_torch.py [--out bench/cuda/results/h100.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import umfa

DEV = torch.device("cuda")
BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}


def time_calls(fn, warmup: int, reps: int) -> float:
    """Median milliseconds of one call, each bracketed by its own CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for s, e in zip(starts, ends):
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends))


def flops(B, H, N, D, causal, bwd):
    f = 4.0 * B * H * N * N * D
    if causal:
        f /= 2
    return f * (2.5 if bwd else 1.0)


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30)).item()


def bench_config(ctx, dtype, D, N, causal, warmup, reps):
    B, H = 16384 // N, 2048 // D
    g = torch.Generator(device=DEV)
    g.manual_seed(1234 + N + D)
    q, k, v, dout = (torch.randn(B, N, H, D, device=DEV, dtype=dtype, generator=g)
                     for _ in range(4))
    out = torch.empty_like(q)
    lse = torch.empty(B, H, N, device=DEV, dtype=torch.float32)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    stream = torch.cuda.current_stream().cuda_stream
    mode = "causal_top_left" if causal else None  # N_q == N_k: both alignments coincide
    opts = dict(mask_mode=mode, stream=stream)

    def u_fwd():
        ctx.forward(q, k, v, out, lse, **opts)

    def u_bwd():
        ctx.backward(q, k, v, out, dout, lse, dq, dk, dv, **opts)

    row = {"dtype": str(dtype).replace("torch.", ""), "D": D, "N": N, "B": B, "H": H,
           "causal": causal}
    u_fwd()
    u_bwd()
    torch.cuda.synchronize()
    row["umfa_fwd_ms"] = time_calls(u_fwd, warmup, reps)
    row["umfa_bwd_ms"] = time_calls(u_bwd, warmup, reps)

    # PyTorch: BHSD views of the same memory.
    qt, kt, vt = (t.transpose(1, 2).detach().requires_grad_(True) for t in (q, k, v))
    dot = dout.transpose(1, 2)
    for name, be in BACKENDS.items():
        try:
            with sdpa_kernel(be):
                def t_fwd():
                    with torch.no_grad():
                        return F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal)
                ref = t_fwd()
                row[f"{name}_fwd_ms"] = time_calls(t_fwd, warmup, reps)
                ot = F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal)

                def t_bwd():
                    return torch.autograd.grad(ot, (qt, kt, vt), dot, retain_graph=True)
                grads = t_bwd()
                row[f"{name}_bwd_ms"] = time_calls(t_bwd, warmup, reps)
                if name == "flash":
                    row["err_out_vs_flash"] = rel(out, ref.transpose(1, 2))
                    row["err_dq_vs_flash"] = rel(dq, grads[0].transpose(1, 2))
                    row["err_dk_vs_flash"] = rel(dk, grads[1].transpose(1, 2))
                    row["err_dv_vs_flash"] = rel(dv, grads[2].transpose(1, 2))
                del ot, grads, ref
        except Exception as exc:  # noqa: BLE001 - a backend may not support a shape
            row[f"{name}_error"] = repr(exc)[:200]
    for impl in ("umfa", "flash", "cudnn"):
        for p in ("fwd", "bwd"):
            ms = row.get(f"{impl}_{p}_ms")
            if ms:
                row[f"{impl}_{p}_tflops"] = flops(B, H, N, D, causal, p == "bwd") / (ms * 1e-3) / 1e12
    for base in ("flash", "cudnn"):
        for p in ("fwd", "bwd"):
            if row.get(f"{base}_{p}_ms") and row.get(f"umfa_{p}_ms"):
                row[f"speedup_vs_{base}_{p}"] = row[f"{base}_{p}_ms"] / row[f"umfa_{p}_ms"]
    del q, k, v, dout, out, dq, dk, dv, qt, kt, vt
    torch.cuda.empty_cache()
    return row


def small_latency(ctxs, reps=200):
    """Single head, N = 512, D = 64, f16, causal: microseconds per call. ``ctxs`` maps a name to
    a umfa Context (several when comparing run-time settings)."""
    B, H, N, D = 1, 1, 512, 64
    q, k, v = (torch.randn(B, N, H, D, device=DEV, dtype=torch.float16) for _ in range(3))
    out = torch.empty_like(q)
    lse = torch.empty(B, H, N, device=DEV)
    qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
    res = {}
    cands = dict(ctxs)
    # umfa's PyTorch-level entries (allocate their output, like F.scaled_dot_product_attention).
    cands.update({"umfa_flash_attn_func": "flash_attn_func", "umfa_torch_sdpa": "sdpa"})
    cands.update({"torch_default": None, "flash": SDPBackend.FLASH_ATTENTION,
                  "cudnn": SDPBackend.CUDNN_ATTENTION})
    for name, be in cands.items():
        try:
            if be == "flash_attn_func":
                def fn():
                    return umfa.flash_attn_func(q, k, v, causal=True)
            elif be == "sdpa":
                import umfa.torch as ut

                def fn():
                    return ut.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
            elif name.startswith("umfa"):
                def fn(ctx=be):
                    ctx.forward(q, k, v, out, lse, mask_mode="causal_bottom_right",
                                stream=torch.cuda.current_stream().cuda_stream)
            else:
                def fn(be=be):
                    if be is None:
                        return F.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
                    with sdpa_kernel(be):
                        return F.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
            # (a) back to back through Python: events around `reps` calls.
            for _ in range(20):
                fn()
            torch.cuda.synchronize()
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            for _ in range(reps):
                fn()
            e.record()
            torch.cuda.synchronize()
            res[f"{name}_call_us"] = s.elapsed_time(e) * 1e3 / reps
            # (b) CUDA graph of 20 calls, replayed: device time per call.
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    fn()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                for _ in range(20):
                    fn()
            times = []
            for _ in range(10):
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                graph.replay()
                e.record()
                torch.cuda.synchronize()
                times.append(s.elapsed_time(e) * 1e3 / 20)
            res[f"{name}_graph_us"] = statistics.median(times)
        except Exception as exc:  # noqa: BLE001
            res[f"{name}_error"] = repr(exc)[:300]
    return res


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def summarize(rows):
    s = {}
    for base in ("flash", "cudnn"):
        for p in ("fwd", "bwd"):
            for label, dset in (("d64_128", (64, 128)), ("all", (64, 128, 256))):
                s[f"geomean_speedup_vs_{base}_{p}_{label}"] = geomean(
                    [r.get(f"speedup_vs_{base}_{p}") for r in rows if r["D"] in dset])
    return s


def markdown(rows, summary, small, meta):
    L = [f"# umfa CUDA backend vs PyTorch SDPA — {meta['device']}", "",
         f"PyTorch {meta['torch']}; umfa {meta['umfa']}; command: `{meta['command']}`", "",
         "B·N = 16384, H·D = 2048; TFLOP/s by FlashAttention's count (fwd 4·B·H·N²·D, halved "
         "when causal; bwd 2.5×); median of per-call CUDA-event timings.", "",
         "| dtype | D | N | causal | umfa fwd | FLASH fwd | cuDNN fwd | ×FLASH | ×cuDNN "
         "| umfa bwd | FLASH bwd | cuDNN bwd | ×FLASH | ×cuDNN |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def f(x, fmt="{:.0f}"):
        return fmt.format(x) if isinstance(x, (int, float)) else "—"
    for r in rows:
        L.append("| " + " | ".join([
            r["dtype"], str(r["D"]), str(r["N"]), "yes" if r["causal"] else "no",
            f(r.get("umfa_fwd_tflops")), f(r.get("flash_fwd_tflops")), f(r.get("cudnn_fwd_tflops")),
            f(r.get("speedup_vs_flash_fwd"), "{:.2f}"), f(r.get("speedup_vs_cudnn_fwd"), "{:.2f}"),
            f(r.get("umfa_bwd_tflops")), f(r.get("flash_bwd_tflops")), f(r.get("cudnn_bwd_tflops")),
            f(r.get("speedup_vs_flash_bwd"), "{:.2f}"), f(r.get("speedup_vs_cudnn_bwd"), "{:.2f}"),
        ]) + " |")
    L += ["", "Geometric means of umfa's speedup (time ratio, > 1 = umfa faster):", "",
          "| vs | pass | D ∈ {64, 128} | all D |", "|---|---|---|---|"]
    for base in ("flash", "cudnn"):
        for p in ("fwd", "bwd"):
            L.append(f"| {base} | {p} | {f(summary[f'geomean_speedup_vs_{base}_{p}_d64_128'], '{:.3f}')}"
                     f" | {f(summary[f'geomean_speedup_vs_{base}_{p}_all'], '{:.3f}')} |")
    L += ["", "Single head, N = 512, D = 64, f16, causal (µs per call; umfa: `Context.forward` "
          "into a given output, `umfa.flash_attn_func` and `umfa.torch."
          "scaled_dot_product_attention`, which allocate theirs like PyTorch):", "",
          "| | umfa Context.forward | umfa.flash_attn_func | umfa.torch SDPA | PyTorch default "
          "| FLASH | cuDNN |", "|---|---|---|---|---|---|---|"]
    for kind, label in (("call", "back to back through Python"), ("graph", "CUDA graph replay")):
        L.append(f"| {label} | " + " | ".join(
            f(small.get(f"{n}_{kind}_us"), "{:.1f}") for n in (
                "umfa", "umfa_flash_attn_func", "umfa_torch_sdpa", "torch_default", "flash",
                "cudnn")) + " |")
    return "\n".join(L) + "\n"


def docs_results(res: dict) -> dict:
    """The results file of docs/performance.md's CUDA slot (bench/results/sdpa-cuda.json): flat
    rows (TFLOP/s and time ratios vs PyTorch's FLASH and cuDNN backends), then the geometric
    means and the single-head latencies, with where the numbers come from."""
    meta = res["meta"]
    rows = []
    for r in res["rows"]:
        row = {"dtype": r["dtype"], "D": r["D"], "N": r["N"], "causal": r["causal"]}
        for p in ("fwd", "bwd"):
            for impl in ("umfa", "flash", "cudnn"):
                v = r.get(f"{impl}_{p}_tflops")
                row[f"{impl} {p} TFLOP/s"] = round(v) if v else None
            for base in ("flash", "cudnn"):
                v = r.get(f"speedup_vs_{base}_{p}")
                row[f"{p} ×{base}"] = round(v, 2) if v else None
        rows.append(row)
    s = res["summary"]
    for base in ("flash", "cudnn"):
        for p in ("fwd", "bwd"):
            rows.append({"dtype": "geomean", "D": "64, 128", "N": "all", "causal": "both",
                         f"{p} ×{base}": round(s[f"geomean_speedup_vs_{base}_{p}_d64_128"], 3)})
    small = res.get("single_head_512x64_f16_causal", {})
    return {"meta": {"date": meta["date"].split(" ")[0],
                     "machine": {"gpu": meta["device"], "platform": "linux", "arch": "x64"},
                     "command": "bash bench/cuda/run_h100.sh (python3 bench/cuda_vs_torch.py "
                                "--docs-out bench/results/sdpa-cuda.json)",
                     "torch": meta["torch"], "cudnn": meta.get("cudnn"),
                     "grid": "B*N = 16384 tokens, H*D = 2048; TFLOP/s by FlashAttention's count; "
                             "ratios are time ratios (> 1 = umfa faster)",
                     "single_head_512x64_f16_causal_us": {k: round(v, 1) for k, v in small.items()
                                                          if isinstance(v, float)}},
            "rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/cuda/results/h100.json")
    ap.add_argument("--quick", action="store_true", help="fewer configs and repetitions")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--latency-variants", action="store_true",
                    help="also time the small call with other run-time settings (env)")
    ap.add_argument("--latency-only", action="store_true")
    ap.add_argument("--dims", default="64,128,256", help="head dims of the grid")
    ap.add_argument("--dtypes", default="bfloat16,float16", help="dtypes of the grid")
    ap.add_argument("--docs-out", default=None,
                    help="also write the docs/performance.md results file (sdpa-cuda.json)")
    ap.add_argument("--docs-from", default=None,
                    help="only convert an earlier --out JSON into --docs-out (no GPU needed)")
    args = ap.parse_args()
    if args.docs_from:
        res = json.loads(Path(args.docs_from).read_text())
        Path(args.docs_out).write_text(json.dumps(docs_results(res), indent=1) + "\n")
        return 0

    ctx = umfa.Context("cuda", 0)
    root = str(Path(__file__).resolve().parents[1]) + "/"
    meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "cudnn": torch.backends.cudnn.version(), "umfa": umfa.version_string(),
            "umfa_build": umfa.build_info().replace(root, ""), "python": platform.python_version(),
            "command": "bash bench/cuda/run_h100.sh (python3 bench/cuda_vs_torch.py)",
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(meta, flush=True)
    ctxs = {"umfa": ctx}
    if args.latency_variants:
        import os
        for name, env in (("umfa_nosplit", {"UMFA_CUDA_SPLITS": "1"}),
                          ("umfa_small8", {"UMFA_CUDA_SMALL_VARIANT": "1"}),
                          ("umfa_main", {"UMFA_CUDA_SMALL": "0"})):
            old = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            ctxs[name] = umfa.Context("cuda", 0)
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    if args.latency_only:
        print(json.dumps(small_latency(ctxs), indent=1), flush=True)
        return 0
    rows = []
    dtypes = tuple(getattr(torch, name) for name in args.dtypes.split(",") if name)
    Ds = tuple(int(d) for d in args.dims.split(",") if d)
    Ns = (512, 2048, 8192)
    if args.quick:
        dtypes, Ns = (torch.bfloat16,), (512, 8192)
    for dtype in dtypes:
        for D in Ds:
            for N in Ns:
                for causal in (False, True):
                    r = bench_config(ctx, dtype, D, N, causal, args.warmup, args.reps)
                    rows.append(r)
                    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                                      for k, v in r.items()}), flush=True)
    summary = summarize(rows)
    small = small_latency(ctxs)
    print(json.dumps(summary, indent=1), flush=True)
    print(json.dumps(small, indent=1), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    res = {"meta": meta, "rows": rows, "summary": summary, "single_head_512x64_f16_causal": small}
    out.write_text(json.dumps(res, indent=1))
    if args.docs_out:
        Path(args.docs_out).write_text(json.dumps(docs_results(res), indent=1) + "\n")
    md = markdown(rows, summary, small, meta)
    out.with_suffix(".md").write_text(md)
    print(md, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
