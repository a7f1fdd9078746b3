"""Each failed call reports its own message, also when calls on one shared context fail at the
same time on several threads (the context keeps only the latest message; the binding passes a
per-call buffer, umfa_attention_options.error_message, and reads that)."""

from __future__ import annotations

import threading

import numpy as np

import umfa
from umfa import Status, UmfaError


def _bad_calls():
    f = np.float32
    heads = (np.zeros((1, 4, 3, 8), f), np.zeros((1, 4, 2, 8), f), np.zeros((1, 4, 2, 8), f),
             np.zeros((1, 4, 3, 8), f))
    dim = (np.zeros((1, 4, 2, 300), f), np.zeros((1, 4, 2, 300), f),
           np.zeros((1, 4, 2, 300), f), np.zeros((1, 4, 2, 300), f))
    # (arguments, expected status, a word the core's message for it contains)
    return [(heads, Status.HEADS_NOT_DIVISIBLE, "multiple"),
            (dim, Status.HEAD_DIM_OUT_OF_RANGE, "head_dim")]


def test_concurrent_failures_keep_their_own_messages():
    ctx = umfa.Context("cpu", num_threads=1)
    calls = _bad_calls()
    mismatches = []
    start = threading.Barrier(len(calls))

    def work(args, status, word):
        start.wait()
        for _ in range(3000):
            try:
                ctx.forward(*args)
            except UmfaError as e:
                if e.status != status or word not in e.message:
                    mismatches.append(f"{e.name}: {e.message}")
            else:
                mismatches.append("the call succeeded")

    threads = [threading.Thread(target=work, args=c) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not mismatches, f"{len(mismatches)} errors carried another call's message, e.g. " \
        f"{mismatches[0]}"


def test_backward_failure_message_is_its_own():
    ctx = umfa.Context("cpu")
    q = np.zeros((1, 4, 2, 8), np.float32)
    out, lse = np.zeros_like(q), np.zeros((1, 2, 4), np.float32)
    ctx.forward(q, q, q, out, lse)
    try:
        ctx.backward(q, q, q, out, q, lse, np.zeros_like(q), np.zeros_like(q),
                     np.zeros((1, 4, 2, 9), np.float32))
    except UmfaError as e:
        assert e.status == Status.SHAPE_MISMATCH and "dv" in e.message, e.message
    else:  # pragma: no cover
        raise AssertionError("backward accepted a dv of the wrong shape")
