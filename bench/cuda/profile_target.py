#!/usr/bin/env python3
"""A small program for Nsight Compute: runs umfa's and PyTorch FLASH's forward and backward on
one benchmark shape, a few times each, so that `ncu --kernel-name ...` can compare the kernels.

  ncu --kernel-name regex:'bwd_kernel|flash_bwd' --launch-skip 2 --launch-count 2 \
      python3 bench/cuda/profile_target.py --D 128 --N 8192 [--causal]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import umfa


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--D", type=int, default=128)
    ap.add_argument("--N", type=int, default=8192)
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-torch", action="store_true", help="umfa's kernels only")
    args = ap.parse_args()
    D, N = args.D, args.N
    B, H = 16384 // N, 2048 // D
    dev, dt = torch.device("cuda"), torch.bfloat16
    q, k, v, dout = (torch.randn(B, N, H, D, device=dev, dtype=dt) for _ in range(4))
    out, lse = torch.empty_like(q), torch.empty(B, H, N, device=dev)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    ctx = umfa.Context("cuda", 0)
    opts = dict(mask_mode="causal_top_left" if args.causal else None,
                stream=torch.cuda.current_stream().cuda_stream)
    for _ in range(args.reps):
        ctx.forward(q, k, v, out, lse, **opts)
        ctx.backward(q, k, v, out, dout, lse, dq, dk, dv, **opts)
    if args.no_torch:
        torch.cuda.synchronize()
        return
    qt, kt, vt = (t.transpose(1, 2).detach().requires_grad_(True) for t in (q, k, v))
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        for _ in range(args.reps):
            o = F.scaled_dot_product_attention(qt, kt, vt, is_causal=args.causal)
            torch.autograd.grad(o, (qt, kt, vt), dout.transpose(1, 2))
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
