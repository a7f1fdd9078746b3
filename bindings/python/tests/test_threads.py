"""Python threads: calls from many threads on one shared context and on per-thread contexts
return exactly the single-threaded results, and the GIL is released during a call (ctypes
releases it around foreign calls of a ``CDLL``), so other Python threads keep running and two
calls overlap in time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Tuple

import numpy as np
import pytest

import umfa

CALLS_PER_THREAD = 40
THREADS = 8


def _problems() -> List[Tuple[str, Dict[str, np.ndarray], Dict]]:
    rng = np.random.default_rng(7)
    out = []
    for i, (b, sq, sk, hq, hkv, d, dtype, opts) in enumerate([
        (2, 17, 23, 2, 2, 32, np.float32, {}),
        (1, 20, 33, 4, 2, 64, np.float16, {"mask_mode": "causal_bottom_right"}),
        (2, 31, 19, 2, 1, 16, np.float32, {"mask_mode": "causal_top_left", "softcap": 2.0}),
        (1, 40, 40, 3, 3, 32, np.float32, {"window_size": (5, 2)}),
        (1, 12, 30, 4, 1, 16, np.float16, {"softmax_scale": 0.3}),
        (1, 70, 130, 1, 1, 16, np.float32, {"mask_mode": "causal_bottom_right"}),
    ]):
        t = {
            "q": rng.standard_normal((b, sq, hq, d)).astype(dtype),
            "k": rng.standard_normal((b, sk, hkv, d)).astype(dtype),
            "v": rng.standard_normal((b, sk, hkv, d)).astype(dtype),
            "dout": rng.standard_normal((b, sq, hq, d)).astype(dtype),
        }
        out.append((f"problem{i}", t, dict(opts, deterministic=True)))
    return out


PROBLEMS = _problems()


def _run(ctx: umfa.Context, t: Dict[str, np.ndarray], opts: Dict) -> Tuple[np.ndarray, ...]:
    q, k, v, dout = t["q"], t["k"], t["v"], t["dout"]
    out = np.empty_like(q)
    lse = np.empty((q.shape[0], q.shape[2], q.shape[1]), np.float32)
    ctx.forward(q, k, v, out, lse, **opts)
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    ctx.backward(q, k, v, out, dout, lse, dq, dk, dv, **opts)
    return out, lse, dq, dk, dv


def _same(a: Tuple[np.ndarray, ...], b: Tuple[np.ndarray, ...]) -> bool:
    return all(x.tobytes() == y.tobytes() for x, y in zip(a, b))


@pytest.mark.parametrize("shared", [True, False], ids=["shared-context", "context-per-thread"])
def test_threads_match_single_threaded(shared: bool) -> None:
    with umfa.Context(backend="cpu", num_threads=2) as ref_ctx:
        expected = [_run(ref_ctx, t, o) for _, t, o in PROBLEMS]
    shared_ctx = umfa.Context(backend="cpu", num_threads=2)
    calls = [0] * THREADS
    mismatches: List[str] = []

    def worker(tid: int) -> None:
        ctx = shared_ctx if shared else umfa.Context(backend="cpu", num_threads=2)
        try:
            for i in range(CALLS_PER_THREAD):
                k = (tid * 5 + i) % len(PROBLEMS)
                name, t, o = PROBLEMS[k]
                got = _run(ctx, t, o)
                calls[tid] += 2
                if not _same(got, expected[k]):
                    mismatches.append(f"thread {tid} call {i}: {name}")
        finally:
            if not shared:
                ctx.close()

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, range(THREADS)))
    shared_ctx.close()
    print(f"\n{'shared context' if shared else 'context per thread'}: {sum(calls)} calls "
          f"from {THREADS} Python threads, {len(mismatches)} mismatches")
    assert sum(calls) == THREADS * CALLS_PER_THREAD * 2
    assert not mismatches, mismatches[:5]


def _long_call_inputs() -> Tuple[np.ndarray, ...]:
    rng = np.random.default_rng(3)
    q = rng.standard_normal((1, 2048, 4, 64)).astype(np.float32)
    return q, q.copy(), q.copy()


def test_gil_released_during_calls() -> None:
    """A pure-Python thread keeps counting while another thread is inside a long C call."""
    q, k, v = _long_call_inputs()
    ctx = umfa.Context(backend="cpu", num_threads=1)
    out = np.empty_like(q)
    t0 = time.perf_counter()
    ctx.forward(q, k, v, out)
    alone = time.perf_counter() - t0
    # Counting rate with nothing else running.
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.05:
        n += 1
    rate = n / (time.perf_counter() - t0)

    inside = threading.Event()
    done = threading.Event()
    span = [0.0, 0.0]

    def call() -> None:
        inside.set()
        span[0] = time.perf_counter()
        for _ in range(3):
            ctx.forward(q, k, v, out)
        span[1] = time.perf_counter()
        done.set()

    th = threading.Thread(target=call)
    th.start()
    inside.wait()
    counted = 0
    while not done.is_set():
        counted += 1
    th.join()
    ctx.close()
    duration = span[1] - span[0]
    ratio = counted / (rate * duration)
    print(f"\nGIL: one call alone {alone * 1e3:.0f} ms; during 3 calls ({duration * 1e3:.0f} ms) another "
          f"Python thread ran {counted} iterations = {ratio:.0%} of its rate alone")
    # With the GIL held through the call the counter would stall (about 0%).
    assert duration > 0.03, "the call is too short to tell"
    assert ratio > 0.05


def test_calls_overlap_in_time() -> None:
    """Two threads in C calls at the same time: their [start, end] spans intersect."""
    q, k, v = _long_call_inputs()
    ctxs = [umfa.Context(backend="cpu", num_threads=1) for _ in range(2)]
    spans: List[Tuple[float, float]] = [(0.0, 0.0)] * 2
    barrier = threading.Barrier(2)

    def call(i: int) -> None:
        out = np.empty_like(q)
        barrier.wait()
        t0 = time.perf_counter()
        ctxs[i].forward(q, k, v, out)
        spans[i] = (t0, time.perf_counter())

    ths = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    for c in ctxs:
        c.close()
    (a0, a1), (b0, b1) = spans
    overlap = min(a1, b1) - max(a0, b0)
    print(f"\ntwo concurrent calls: {a1 - a0:.3f} s and {b1 - b0:.3f} s, overlapping {max(overlap, 0):.3f} s")
    assert overlap > 0, "the second call only started after the first returned: GIL held?"
