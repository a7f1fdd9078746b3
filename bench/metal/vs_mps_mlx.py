#!/usr/bin/env python3
"""umfa's Metal backend against PyTorch's MPS `scaled_dot_product_attention` and MLX's
`mx.fast.scaled_dot_product_attention`, forward, on an Apple GPU. Written for a Mac with Apple
silicon; it has NOT been run yet (no Apple hardware was available when it was written), so it
reports nothing measured so far. scripts/test-macos.sh runs it.

Method: one set of inputs per case, [B, N, H, D] float16/float32 (umfa reads BSHD; PyTorch and
MLX get the same values in their BHSD layout). umfa's inputs and output sit in page-aligned
memory (anonymous mmap), which the Metal backend wraps without a copy (unified memory); each umfa
call commits its command buffer and waits for it. PyTorch: SDPA under no_grad, then
torch.mps.synchronize(). MLX: the op, then mx.eval. Warm-up calls first (umfa compiles its
pipelines on first use), then the median of --reps timed calls. Each case also checks umfa's
output against PyTorch's (max abs difference). GFLOP/s use FlashAttention's count: 4*B*H*N*N*D,
halved when causal.

Usage: python3 bench/metal/vs_mps_mlx.py [--reps 20] [--json out.json]
(UMFA_LIB_DIR must name the folder holding libumfa and libumfa_metal.dylib.)
"""
import argparse
import json
import mmap
import statistics
import sys
import time

import numpy as np

import umfa

SHAPES = [  # (B, H, N, D, causal)
    (1, 8, 512, 64, False), (1, 8, 2048, 64, False), (1, 8, 2048, 64, True),
    (1, 8, 2048, 128, True), (1, 16, 4096, 64, True), (4, 16, 1024, 128, False),
]


def page_aligned(shape, dtype):
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buf = mmap.mmap(-1, max(n, 1))
    return np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape))).reshape(shape)


def timed(fn, reps, warmup=3):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--json")
    args = ap.parse_args()
    if "metal" not in umfa.backends():
        sys.exit("umfa's Metal backend is not available here: " + umfa.build_info())
    ctx = umfa.Context(backend="metal")
    try:
        import torch
        has_mps = torch.backends.mps.is_available()
    except ImportError:
        torch, has_mps = None, False
    try:
        import mlx.core as mx
    except ImportError:
        mx = None
    rows = []
    for dtype in (np.float16, np.float32):
        for (b, h, n, d, causal) in SHAPES:
            rng = np.random.default_rng(0)
            q, k, v = (page_aligned((b, n, h, d), dtype) for _ in range(3))
            for t in (q, k, v):
                t[...] = rng.standard_normal(t.shape).astype(dtype)
            out = page_aligned((b, n, h, d), dtype)
            mode = "causal_bottom_right" if causal else None
            row = {"dtype": np.dtype(dtype).name, "B": b, "H": h, "N": n, "D": d, "causal": causal}
            flops = 4 * b * h * n * n * d / (2 if causal else 1)
            row["umfa_ms"] = 1e3 * timed(lambda: ctx.forward(q, k, v, out, mask_mode=mode), args.reps)
            if has_mps:
                tdt = torch.float16 if dtype == np.float16 else torch.float32
                tq, tk, tv = (torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1, 3))).to("mps", tdt)
                              for x in (q, k, v))

                def run_torch():
                    with torch.no_grad():
                        r = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
                    torch.mps.synchronize()
                    return r
                row["mps_ms"] = 1e3 * timed(run_torch, args.reps)
                ref = run_torch().float().cpu().numpy().transpose(0, 2, 1, 3)
                row["max_abs_diff_vs_mps"] = float(np.abs(out.astype(np.float32) - ref).max())
            if mx is not None:
                mq, mk, mv = (mx.array(np.ascontiguousarray(x.transpose(0, 2, 1, 3))) for x in (q, k, v))
                scale = 1.0 / d ** 0.5
                mask = "causal" if causal else None

                def run_mlx():
                    mx.eval(mx.fast.scaled_dot_product_attention(mq, mk, mv, scale=scale, mask=mask))
                row["mlx_ms"] = 1e3 * timed(run_mlx, args.reps)
            for side in ("umfa", "mps", "mlx"):
                if f"{side}_ms" in row:
                    row[f"{side}_tflops"] = flops / (row[f"{side}_ms"] * 1e-3) / 1e12
            rows.append(row)
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"build_info": umfa.build_info(), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
