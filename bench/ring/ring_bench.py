#!/usr/bin/env python3
"""Ring attention scaling: umfa.torch.ring_attention over NCCL, one process per GPU, against
PyTorch's own context parallelism (torch.distributed.tensor.experimental.context_parallel) when
it runs.

The sequence length per GPU is fixed (--seq-per-gpu), so W GPUs hold W times the tokens; every
rank times forward + backward of its shard (CUDA events, median of --reps after --warmup), and
the slowest rank's median is the step time. Reported per world size:

  tokens/s       global tokens (batch x W x seq-per-gpu) per second of forward + backward
  TFLOP/s/GPU    FlashAttention's count (forward 4*B*H*N^2*D, halved when causal; backward
                 2.5x forward) over the global length N, divided by W and the step time
  kept           TFLOP/s/GPU relative to W = 1: the fraction of single-GPU throughput kept
                 (attention work per GPU grows with W at a fixed length per GPU, so tokens/s
                 per GPU necessarily falls; the work rate is what ring attention can keep)

Run one world size with torchrun (it writes --out on rank 0):

    torchrun --standalone --nproc-per-node 4 bench/ring/ring_bench.py --out results/w4.json

and build the table from several runs:

    python3 bench/ring/ring_bench.py --table results/w*.json > results/scaling.md

bench/ring/run_gpus.sh does both for 1, 2, 4 and 8 GPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import traceback
from typing import Callable, Dict, List

import torch
import torch.distributed as dist
import torch.nn.functional as F


def flops(b: int, h: int, n: int, d: int, causal: bool) -> float:
    fwd = 4.0 * b * h * n * n * d / (2 if causal else 1)
    return fwd * 3.5  # forward + backward (2.5x forward)


def median_ms(step: Callable[[], None], warmup: int, reps: int) -> float:
    """The slowest rank's median milliseconds of one step."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        dist.barrier()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    slowest = torch.tensor([statistics.median(times)], device="cuda")
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    return float(slowest.item())


def umfa_step(args, world: int, rank: int) -> Callable[[], None]:
    import umfa.torch as ut

    s, dt = args.seq_per_gpu, getattr(torch, args.dtype)
    g = torch.Generator(device="cuda").manual_seed(rank)
    def mk(h: int) -> torch.Tensor:
        return torch.randn(args.batch, h, s, args.head_dim, device="cuda", dtype=dt,
                           generator=g).requires_grad_()

    q, k, v = mk(args.heads), mk(args.kv_heads), mk(args.kv_heads)
    dout = torch.randn_like(q)

    def step() -> None:
        out = ut.ring_attention(q, k, v, is_causal=args.causal)
        out.backward(dout)

    return step


def torch_cp_step(args, world: int, rank: int) -> Callable[[], None]:
    """PyTorch's experimental context parallelism: SDPA inside context_parallel(), which shards
    the full-length buffers in place and runs its own ring."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.experimental import context_parallel

    n, dt = args.seq_per_gpu * world, getattr(torch, args.dtype)
    mesh = init_device_mesh("cuda", (world,), mesh_dim_names=("cp",))
    g = torch.Generator(device="cuda").manual_seed(0)  # the same full tensors on every rank
    def mk(h: int) -> torch.Tensor:
        return torch.randn(args.batch, h, n, args.head_dim, device="cuda", dtype=dt,
                           generator=g)

    q, k, v = mk(args.heads), mk(args.kv_heads), mk(args.kv_heads)
    cp = context_parallel(mesh, buffers=[q, k, v], buffer_seq_dims=[2, 2, 2])
    cp.__enter__()  # stays entered for the timing loop; the process ends afterwards
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    dout = torch.randn_like(leaves[0])

    def step() -> None:
        out = F.scaled_dot_product_attention(*leaves, is_causal=args.causal,
                                             enable_gqa=args.heads != args.kv_heads)
        out.backward(dout)

    return step


def run(args) -> None:
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    n = args.seq_per_gpu * world
    work = flops(args.batch, args.heads, n, args.head_dim, args.causal)
    result: Dict[str, object] = {
        "world": world, "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
        "batch": args.batch, "heads": args.heads, "kv_heads": args.kv_heads,
        "head_dim": args.head_dim, "seq_per_gpu": args.seq_per_gpu, "seq_len": n,
        "dtype": args.dtype, "causal": args.causal, "warmup": args.warmup, "reps": args.reps,
    }
    impls = {"umfa": umfa_step, "torch_cp": torch_cp_step}
    for name in args.impl:
        try:
            ms = median_ms(impls[name](args, world, rank), args.warmup, args.reps)
            result[name] = {"ms": ms, "tokens_per_s": args.batch * n / (ms / 1e3),
                            "tflops_per_gpu": work / world / (ms / 1e3) / 1e12}
        except Exception as exc:  # PyTorch's experimental API may not run on this build
            result[name] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
            if rank == 0:
                traceback.print_exc()
        torch.cuda.empty_cache()
    if rank == 0:
        print(json.dumps(result))
        if args.out:
            with open(args.out, "w") as f:
                json.dump(result, f, indent=1)
    dist.barrier()
    dist.destroy_process_group()


def table(paths: List[str]) -> str:
    runs = sorted((json.load(open(p)) for p in paths), key=lambda r: r["world"])
    base = {name: runs[0].get(name, {}).get("tflops_per_gpu") for name in ("umfa", "torch_cp")}
    r0 = runs[0]
    lines = [f"{r0['gpu']}, {r0['dtype']}, {'causal' if r0['causal'] else 'full'}, batch "
             f"{r0['batch']}, heads {r0['heads']} (kv {r0['kv_heads']}), head_dim "
             f"{r0['head_dim']}, {r0['seq_per_gpu']} tokens per GPU; forward + backward, "
             f"median of {r0['reps']}, slowest rank; torch {r0['torch']}.", "",
             "| GPUs | sequence | umfa tokens/s | umfa TFLOP/s/GPU | umfa kept | "
             "torch CP tokens/s | torch CP TFLOP/s/GPU | torch CP kept |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        cells = [str(r["world"]), str(r["seq_len"])]
        for name in ("umfa", "torch_cp"):
            m = r.get(name, {})
            if "tflops_per_gpu" in m:
                kept = m["tflops_per_gpu"] / base[name] if base[name] else float("nan")
                cells += [f"{m['tokens_per_s']:,.0f}", f"{m['tflops_per_gpu']:.1f}",
                          f"{kept:.2f}"]
            else:
                cells += [m.get("error", "not run"), "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seq-per-gpu", type=int, default=16384)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=16)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--dtype", choices=["bfloat16", "float16"], default="bfloat16")
    ap.add_argument("--causal", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--impl", nargs="+", choices=["umfa", "torch_cp"],
                    default=["umfa", "torch_cp"])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--out", help="JSON file for this world size's results (rank 0)")
    ap.add_argument("--table", nargs="+", metavar="JSON",
                    help="print the scaling table of earlier runs and exit")
    args = ap.parse_args()
    if args.table:
        sys.stdout.write(table(args.table))
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
