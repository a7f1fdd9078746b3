"""umfa.torch.ring_attention: context parallelism over torch.distributed, on the CPU with gloo.

2, 3 and 4 processes (torch.multiprocessing, 127.0.0.1 and a free port) each run every
configuration of _ring_worker.CONFIGS: outputs and gradients of every rank's shard against
single-process attention (float32 within 1e-5 of the largest magnitude), causal and not,
sequence lengths that do not split evenly, empty chunks, GQA, BHSD and BSHD, float16 and
bfloat16, the nn.Module wrapper, a subgroup. Each world size is one test with a deadline: a
hang fails the test and its processes are killed. Without a process group (one process) the
ring is plain attention, tested in this process, as are the sharding helpers and the errors.
"""

from __future__ import annotations

import time

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

import torch.multiprocessing as mp  # noqa: E402

import umfa  # noqa: E402
import umfa.torch as ut  # noqa: E402
from umfa.torch_ring import _Plan  # noqa: E402

import _ring_worker  # noqa: E402

DEADLINE_S = 240.0


@pytest.mark.parametrize("world", [2, 3, 4])
def test_ring_gloo(world: int) -> None:
    ctx = mp.start_processes(_ring_worker.main, args=(world, _ring_worker.free_port()),
                             nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + DEADLINE_S
    try:
        while not ctx.join(timeout=1.0):  # raises when a worker failed
            if time.monotonic() > deadline:
                pytest.fail(f"ring attention with {world} processes did not finish within "
                            f"{DEADLINE_S:.0f} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()


# ---- one process -----------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
def test_single_process_is_plain_attention(device: str, causal: bool, layout: str) -> None:
    if device == "cuda" and not ut.cuda_available():
        pytest.skip("no CUDA device, or libumfa without its CUDA backend")
    assert not dist.is_initialized()
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(shape, generator=g).to(device)
               for shape in ((2, 4, 11, 16), (2, 2, 11, 16), (2, 2, 11, 16)))
    rq, rk, rv = (t.clone().requires_grad_() for t in (q, k, v))
    ref = ut.scaled_dot_product_attention(rq, rk, rv, is_causal=causal, enable_gqa=True)
    ref.sum().backward()
    to = (lambda t: t.transpose(1, 2)) if layout == "bshd" else (lambda t: t)
    lq, lk, lv = (to(t).clone().requires_grad_() for t in (q, k, v))
    out = ut.ring_attention(lq, lk, lv, is_causal=causal, layout=layout)
    out.sum().backward()
    torch.testing.assert_close(to(out), ref, rtol=1e-5, atol=1e-5)
    for got, want in ((lq.grad, rq.grad), (lk.grad, rk.grad), (lv.grad, rv.grad)):
        torch.testing.assert_close(to(got), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [1, 7, 8, 13])
@pytest.mark.parametrize("balanced", [True, False])
def test_shard_unshard_round_trip(world: int, n: int, balanced: bool) -> None:
    x = torch.arange(2 * 3 * n * 2).reshape(2, 3, n, 2)
    shards = [ut.shard_sequence(x, world, r, dim=2, load_balanced=balanced)
              for r in range(world)]
    assert sum(s.shape[2] for s in shards) == n
    assert torch.equal(ut.unshard_sequence(shards, dim=2, load_balanced=balanced), x)
    if balanced and world > 1:  # rank 0 holds the first and the last chunk
        assert shards[0][0, 0, 0, 0] == x[0, 0, 0, 0]
        assert shards[0][0, 0, -1, 0] == x[0, 0, -1, 0] or n < 2 * world


@pytest.mark.parametrize("world", [2, 3, 4, 8])
@pytest.mark.parametrize("extra", [0, 3])
def test_load_balanced_causal_work(world: int, extra: int) -> None:
    # The tiles of the ring cover every visible (query, key) pair of the causal problem exactly
    # once, and with load-balanced chunks every rank gets the same work; chunks that differ by
    # one row (extra rows) shift at most one row of keys per chunk, n pairs each.
    n = 2 * world * 8 + extra
    sizes = umfa.torch_ring._chunk_sizes(n, 2 * world)

    def pairs(rank: int) -> int:
        local = sizes[rank] + sizes[2 * world - 1 - rank]
        plan = _Plan(world, rank, None, seq_len=n, local_len=local, causal=True,
                     load_balanced=True, scale=None)
        total = 0
        for tiles in plan.tiles:
            for t in tiles:
                rows, cols = t.q1 - t.q0, t.k1 - t.k0
                total += rows * (rows + 1) // 2 if t.causal else rows * cols
        return total

    work = [pairs(r) for r in range(world)]
    assert sum(work) == n * (n + 1) // 2
    assert max(work) - min(work) <= (2 * n if extra else 0), work


def test_errors() -> None:
    q = torch.randn(1, 2, 4, 8)
    with pytest.raises(umfa.UmfaError) as e:
        ut.ring_attention(q, q, q, layout="sbhd")
    assert e.value.status == umfa.Status.INVALID_ARGUMENT
    with pytest.raises(umfa.UmfaError) as e:
        ut.ring_attention(q[0], q[0], q[0])
    assert e.value.status == umfa.Status.INVALID_RANK
    with pytest.raises(umfa.UmfaError) as e:
        ut.ring_attention(q, q[:, :, :3], q[:, :, :3])
    assert e.value.status == umfa.Status.SHAPE_MISMATCH
    with pytest.raises(umfa.UmfaError) as e:  # 4 rows cannot be this rank's share of 9
        ut.ring_attention(q, q, q, seq_len=9)
    assert e.value.status == umfa.Status.SHAPE_MISMATCH
