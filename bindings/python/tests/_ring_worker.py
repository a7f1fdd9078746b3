"""One rank of test_ring.py's gloo process group (started by torch.multiprocessing).

Every rank builds the same full q, k, v and output gradient (fixed seeds), takes its shard with
umfa.torch.shard_sequence, runs umfa.torch.ring_attention forward and backward, and compares
its shard of the output and of the gradients with single-process attention over the full
sequence (umfa.torch.scaled_dot_product_attention). A mismatch raises in the worker, which
torch.multiprocessing reports in the parent with the traceback.

The same checks on GPUs with NCCL, one process per GPU (bench/ring/run_gpus.sh):

    python3 bindings/python/tests/_ring_worker.py --world 4 --backend nccl
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist

#: (name, dtype, layout, causal, load_balanced, seq_len as a function of the world size W,
#:  heads_q, heads_kv, head_dim, scale, module)
CONFIGS = [
    ("f32 bhsd full, uneven chunks, GQA", torch.float32, "bhsd", False, True,
     lambda w: 5 * w + 3, 4, 2, 16, None, False),
    ("f32 bhsd causal, uneven chunks, GQA", torch.float32, "bhsd", True, True,
     lambda w: 6 * w + 1, 4, 2, 16, None, False),
    ("f32 bshd causal, even chunks, scale 0.3, module", torch.float32, "bshd", True, True,
     lambda w: 6 * w, 2, 2, 8, 0.3, True),
    ("f32 causal, fewer rows than chunks (empty chunks and shards)", torch.float32, "bhsd",
     True, True, lambda w: 2 * w - 1, 2, 1, 8, None, False),
    ("f32 causal, fewer rows than ranks (a rank with an empty shard)", torch.float32, "bhsd",
     True, True, lambda w: w - 1, 2, 2, 8, None, False),
    ("f32 causal, contiguous shards", torch.float32, "bhsd", True, False,
     lambda w: 4 * w + 1, 2, 1, 8, None, False),
    ("bf16 bhsd causal, GQA", torch.bfloat16, "bhsd", True, True,
     lambda w: 4 * w + 2, 4, 1, 16, None, False),
    ("f16 bshd full", torch.float16, "bshd", False, True, lambda w: 3 * w, 2, 2, 16, None, False),
]

# Relative tolerances (of the largest reference magnitude) against single-process attention.
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}


def _close(name: str, got: torch.Tensor, want: torch.Tensor, rtol: float) -> None:
    got, want = got.detach().double(), want.detach().double()
    scale = max(float(want.abs().max()), 1e-30) if want.numel() else 1.0
    err = float((got - want).abs().max()) if want.numel() else 0.0
    assert err <= rtol * scale, f"{name}: max error {err:.3g} > {rtol} x {scale:.3g}"


def _run_config(cfg, world: int, rank: int, group: Optional[object], device: str) -> None:
    import umfa.torch as ut

    name, dtype, layout, causal, balanced, n_of, hq, hkv, d, scale, module = cfg
    n = n_of(world)
    g = torch.Generator().manual_seed(1234)
    shape_q, shape_kv = (2, hq, n, d), (2, hkv, n, d)  # BHSD
    q, k, v, dout = (torch.randn(shape, generator=g).to(device, dtype)
                     for shape in (shape_q, shape_kv, shape_kv, shape_q))

    # Single-process reference over the whole sequence.
    rq, rk, rv = (t.clone().requires_grad_() for t in (q, k, v))
    ref = ut.scaled_dot_product_attention(rq, rk, rv, is_causal=causal, scale=scale,
                                          enable_gqa=hq != hkv)
    ref.backward(dout)

    # This rank's shards, in the layout under test (sequence dim 2 in BHSD, 1 in BSHD).
    def local(t: torch.Tensor) -> torch.Tensor:
        s = ut.shard_sequence(t, world, rank, dim=2, load_balanced=balanced)
        return s.transpose(1, 2).contiguous() if layout == "bshd" else s

    lq, lk, lv = (local(t).requires_grad_() for t in (q, k, v))
    if module:
        attn = ut.RingAttention(group, is_causal=causal, scale=scale, layout=layout,
                                load_balanced=balanced)
        out = attn(lq, lk, lv, seq_len=n)
    else:
        out = ut.ring_attention(lq, lk, lv, group=group, is_causal=causal, scale=scale,
                                layout=layout, seq_len=n, load_balanced=balanced)
    out.backward(local(dout))
    rtol = TOLERANCE[dtype]
    for what, got, want in (("out", out, ref), ("dq", lq.grad, rq.grad),
                            ("dk", lk.grad, rk.grad), ("dv", lv.grad, rv.grad)):
        assert got.dtype == dtype, f"{name}: {what} is {got.dtype}"
        _close(f"{name}, W={world}, rank {rank}: {what}", got, local(want), rtol)

    # The shards of every rank reassemble into the full output.
    shards = [None] * world
    dist.all_gather_object(shards, out.detach().transpose(1, 2) if layout == "bshd" else
                           out.detach(), group=group)
    full = ut.unshard_sequence(shards, dim=2, load_balanced=balanced)
    _close(f"{name}, W={world}: unsharded out", full, ref.detach(), rtol)


def main(rank: int, world: int, port: int, backend: str = "gloo") -> None:
    """torch.multiprocessing entry: joins the group on 127.0.0.1:port and runs CONFIGS (gloo:
    CPU tensors; nccl: CUDA tensors, one GPU per rank)."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    os.environ["UMFA_NUM_THREADS"] = "1"  # each rank's umfa context: one thread (busy CI cores)
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    device = "cpu"
    if backend == "nccl":
        torch.cuda.set_device(rank)
        device = f"cuda:{rank}"
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        for cfg in CONFIGS:
            _run_config(cfg, world, rank, None, device)
        # A subgroup without rank 0: its ring's peers are global ranks, not group ranks.
        if world > 2:
            sub = dist.new_group(list(range(1, world)))
            if rank > 0:
                _run_config(CONFIGS[1], world - 1, dist.get_rank(sub), sub, device)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    import torch.multiprocessing as mp

    ap = argparse.ArgumentParser(description="ring attention checks, one process per rank")
    ap.add_argument("--world", type=int, required=True)
    ap.add_argument("--backend", choices=["gloo", "nccl"], default="gloo")
    args = ap.parse_args()
    mp.start_processes(main, args=(args.world, free_port(), args.backend), nprocs=args.world,
                       join=True, start_method="spawn")
    print(f"ring attention checks passed: {args.world} ranks, {args.backend}")
