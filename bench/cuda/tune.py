#!/usr/bin/env python3
"""Times umfa's alternative tile shapes (a libumfa_cuda built with -DUMFA_CUDA_TUNING=ON) on a
subset of the benchmark grid, to pick the production shapes in core/src/cuda/configs.cuh.

Usage: PYTHONPATH=bindings/python/src UMFA_LIB_DIR=dist/native/linux-x64/lib \
           python3 bench/cuda/tune.py [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cuda_vs_torch import flops, time_calls  # noqa: E402

import umfa  # noqa: E402

DEV = torch.device("cuda")


def run(variant_env: str, variant: int, D: int, N: int, causal: bool, dtype, bwd: bool) -> float:
    os.environ[variant_env] = str(variant)
    ctx = umfa.Context("cuda", 0)
    B, H = 16384 // N, 2048 // D
    q, k, v, dout = (torch.randn(B, N, H, D, device=DEV, dtype=dtype) for _ in range(4))
    out = torch.empty_like(q)
    lse = torch.empty(B, H, N, device=DEV)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    opts = dict(mask_mode="causal_top_left" if causal else None,
                stream=torch.cuda.current_stream().cuda_stream)
    ctx.forward(q, k, v, out, lse, **opts)
    if bwd:
        fn = lambda: ctx.backward(q, k, v, out, dout, lse, dq, dk, dv, **opts)  # noqa: E731
    else:
        fn = lambda: ctx.forward(q, k, v, out, lse, **opts)  # noqa: E731
    ms = time_calls(fn, 2, 10)
    ctx.close()
    os.environ[variant_env] = "0"
    return flops(B, H, N, D, causal, bwd) / (ms * 1e-3) / 1e12


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--fwd", default="0,1,2,3,4,5,6,7", help="forward variants")
    ap.add_argument("--bwd", default="0,1,2,3,4", help="backward variants ('' = none)")
    ap.add_argument("--dims", default="64,128,256")
    ap.add_argument("--dtypes", default="bfloat16", help="comma-separated torch dtypes")
    args = ap.parse_args()
    ints = lambda s: tuple(int(x) for x in s.split(",") if x)  # noqa: E731
    rows = []
    for bwd, env, variants in ((False, "UMFA_CUDA_FWD_VARIANT", ints(args.fwd)),
                               (True, "UMFA_CUDA_BWD_VARIANT", ints(args.bwd))):
        if not variants:
            continue
        for D in ints(args.dims):
            for N in (512, 2048, 8192):
                for causal in (False, True):
                    for dt in args.dtypes.split(","):
                        r = {"pass": "bwd" if bwd else "fwd", "dtype": dt, "D": D, "N": N,
                             "causal": causal}
                        for var in variants:
                            r[f"v{var}"] = round(run(env, var, D, N, causal, getattr(torch, dt),
                                                     bwd), 1)
                        rows.append(r)
                        print(json.dumps(r), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
