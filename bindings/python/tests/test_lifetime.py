"""Context lifetime races that the binding takes off the caller (the C header leaves them to
the caller): closing a context while another thread runs a call on it, closing another context
meanwhile, closing from inside a call's own thread, and buffers outliving their context's
close (fork: ``test_fork.py``).

Every scenario runs in a child interpreter with a deadline (``_isolated.run_scenario``): the
failure these tests guard against is a call that never returns, or a crash.

The calls are timed by wrapping the binding's handles on ``umfa_attention_forward`` /
``umfa_attention_backward`` (``umfa._context._forward_fn`` / ``_backward_fn``), which the
binding calls with the context pinned, so "the native call had finished when close returned"
is measured exactly rather than guessed from sleeps.
"""

from __future__ import annotations

import textwrap
from typing import Dict

import pytest

from _isolated import run_scenario

# Calls of about half a second on the CPU backend (two worker threads), long enough for another
# thread to close the context in the middle of it on a loaded machine.
TIMING = """
import umfa._context as C
native_spans = []  # (start, end) of every native attention call

def _timed(real):
    def call(*args):
        start = time.monotonic()
        status = real(*args)
        native_spans.append((start, time.monotonic()))
        return status
    return call

C._forward_fn = _timed(C._forward_fn)
C._backward_fn = _timed(C._backward_fn)

def close_during(call, target, wait=0.1):
    # Runs call() on a thread, closes target from this one while it runs.
    outcome = {}
    started = threading.Event()

    def worker():
        started.set()
        try:
            outcome["value"] = call()
            outcome["status"] = "OK"
        except umfa.UmfaError as exc:
            outcome["status"] = exc.name
    th = threading.Thread(target=worker, daemon=True)
    th.start()
    started.wait()
    time.sleep(wait)
    close_start = time.monotonic()
    target.close()
    close_end = time.monotonic()
    th.join(90)
    # The native call that was running when close() was called, if any.
    running = [end for start, end in native_spans if start < close_start < end]
    return dict(alive=th.is_alive(), status=outcome.get("status"),
                close_start=close_start, close_end=close_end,
                native_end=running[0] if running else None), outcome.get("value")

def status_of(call):
    try:
        call()
        return "OK"
    except umfa.UmfaError as exc:
        return exc.name

rng = np.random.default_rng(0)
def rand(*shape):
    return rng.standard_normal(shape).astype(np.float32)
"""

ENTRIES: Dict[str, str] = {
    # Context.forward on numpy arrays (general path).
    "Context.forward": """
        q, k, v = rand(1, 4096, 8, 64), rand(1, 4096, 8, 64), rand(1, 4096, 8, 64)
        with umfa.Context("cpu", num_threads=2) as ref_ctx:
            ref = np.empty_like(q); ref_ctx.forward(q, k, v, ref)
        ctx = umfa.Context("cpu", num_threads=2)
        out = np.zeros_like(q)
        def call():
            ctx.forward(q, k, v, out)
            return out
        target = ctx
        after = lambda: ctx.forward(q, k, v, out)
    """,
    # Context.backward on numpy arrays.
    "Context.backward": """
        q, k, v, dout = (rand(1, 4096, 4, 64) for _ in range(4))
        lse = np.empty((1, 4, 4096), np.float32)
        out = np.empty_like(q)
        with umfa.Context("cpu", num_threads=2) as ref_ctx:
            ref_ctx.forward(q, k, v, out, lse)
            grads = [np.empty_like(q) for _ in range(3)]
            ref_ctx.backward(q, k, v, out, dout, lse, *grads)
        ref = np.concatenate(grads)
        ctx = umfa.Context("cpu", num_threads=2)
        got = [np.zeros_like(q) for _ in range(3)]
        def call():
            ctx.backward(q, k, v, out, dout, lse, *got)
            return np.concatenate(got)
        target = ctx
        after = lambda: ctx.backward(q, k, v, out, dout, lse, *got)
    """,
    # Context.forward on torch tensors: the per-call fast path.
    "Context.forward(torch)": """
        import torch
        torch.set_num_threads(1)
        q, k, v = (torch.from_numpy(rand(1, 4096, 8, 64)) for _ in range(3))
        with umfa.Context("cpu", num_threads=2) as ref_ctx:
            ref = torch.empty_like(q); ref_ctx.forward(q, k, v, ref); ref = ref.clone().numpy()
        ctx = umfa.Context("cpu", num_threads=2)
        out = torch.zeros_like(q)
        def call():
            ctx.forward(q, k, v, out)
            return out.clone().numpy()
        target = ctx
        after = lambda: ctx.forward(q, k, v, out)
    """,
    # Context.forward on torch tensors with a tensor option (general path).
    "Context.forward(torch, attn_mask)": """
        import torch
        torch.set_num_threads(1)
        q, k, v = (torch.from_numpy(rand(1, 4096, 8, 64)) for _ in range(3))
        mask = torch.zeros(4096, 4096)
        with umfa.Context("cpu", num_threads=2) as ref_ctx:
            ref = torch.empty_like(q); ref_ctx.forward(q, k, v, ref, attn_mask=mask)
            ref = ref.clone().numpy()
        ctx = umfa.Context("cpu", num_threads=2)
        out = torch.zeros_like(q)
        def call():
            ctx.forward(q, k, v, out, attn_mask=mask)
            return out.clone().numpy()
        target = ctx
        after = lambda: ctx.forward(q, k, v, out, attn_mask=mask)
    """,
    # A module-level function on the shared default context: closing the default context
    # lets the running call finish, and the next call gets a fresh default context.
    "flash_attn_func(default context)": """
        q, k, v = rand(1, 4096, 8, 64), rand(1, 4096, 8, 64), rand(1, 4096, 8, 64)
        ref = umfa.flash_attn_func(q, k, v, causal=True)
        target = umfa.default_context("cpu")
        call = lambda: umfa.flash_attn_func(q, k, v, causal=True)
        after = lambda: umfa.flash_attn_func(q[:, :8], k[:, :8], v[:, :8])
    """,
    "flash_attn_varlen_func(default context)": """
        q, k, v = rand(4096, 8, 64), rand(4096, 8, 64), rand(4096, 8, 64)
        cu = np.array([0, 100, 4096], np.int32)
        ref = umfa.flash_attn_varlen_func(q, k, v, cu, cu, 3996, 3996)
        target = umfa.default_context("cpu")
        call = lambda: umfa.flash_attn_varlen_func(q, k, v, cu, cu, 3996, 3996)
        cu8 = np.array([0, 8], np.int32)
        after = lambda: umfa.flash_attn_varlen_func(q[:8], k[:8], v[:8], cu8, cu8, 8, 8)
    """,
    # umfa.torch: the PyTorch entry points use the default context too.
    "umfa.torch.scaled_dot_product_attention": """
        import torch, umfa.torch
        torch.set_num_threads(1)
        q, k, v = (torch.from_numpy(rand(1, 8, 4096, 64)) for _ in range(3))
        f = umfa.torch.scaled_dot_product_attention
        ref = f(q, k, v).numpy()
        target = umfa.default_context("cpu")
        call = lambda: f(q, k, v).numpy()
        after = lambda: f(q[:, :, :8], k[:, :, :8], v[:, :, :8])
    """,
    "umfa.torch backward": """
        import torch, umfa.torch
        torch.set_num_threads(1)
        q, k, v = (torch.from_numpy(rand(1, 4, 4096, 64)).requires_grad_() for _ in range(3))
        def grads():
            out = umfa.torch.scaled_dot_product_attention(q, k, v)
            return torch.cat(torch.autograd.grad(out.sum(), (q, k, v))).numpy()
        ref = grads()
        target = umfa.default_context("cpu")
        call = grads
        after = lambda: umfa.torch.scaled_dot_product_attention(q[:, :, :8], k[:, :, :8],
                                                                v[:, :, :8]).sum().backward()
    """,
    # The classic API on an MFAContext.
    "flash_attention_forward(MFAContext)": """
        q, k, v = rand(1, 4096, 8, 64), rand(1, 4096, 8, 64), rand(1, 4096, 8, 64)
        with umfa.MFAContext() as ref_ctx:
            ref = umfa.flash_attention_forward(ref_ctx, q, k, v, causal=True)
        ctx = umfa.MFAContext()
        call = lambda: umfa.flash_attention_forward(ctx, q, k, v, causal=True)
        target = ctx
        after = lambda: umfa.flash_attention_forward(ctx, q[:, :8], k[:, :8], v[:, :8])
    """,
}

CLOSE_DURING_CALL = TIMING + """
SETUP
explicit = EXPLICIT
result, value = close_during(call, target)
result["matches"] = value is not None and bool(np.allclose(value, ref, atol=1e-5, rtol=1e-4))
result["target_closed"] = bool(target.closed)
result["after_close"] = status_of(after)
if not explicit:
    result["fresh_default"] = umfa.default_context("cpu") is not target
report(**result)
"""


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_close_waits_for_a_running_call(entry: str) -> None:
    explicit = "default" not in entry and "umfa.torch" not in entry
    r = run_scenario(CLOSE_DURING_CALL.replace("SETUP", textwrap.dedent(ENTRIES[entry]))
                     .replace("EXPLICIT", str(explicit)))
    assert not r["alive"], f"the call never returned after close: {r}"
    assert r["status"] == "OK", r
    assert r["matches"], f"the call's result is wrong: {r}"
    assert r["target_closed"]
    # close() was issued while a native call ran, and returned only after it finished.
    assert r["native_end"] is not None, f"no native call was running at close(): {r}"
    assert r["native_end"] <= r["close_end"], r
    if explicit:
        assert r["after_close"] == "UMFA_STATUS_INVALID_HANDLE", r
    else:  # module-level functions go on with a new default context
        assert r["after_close"] == "OK" and r["fresh_default"], r


def test_close_another_context_meanwhile() -> None:
    r = run_scenario(TIMING + """
q, k, v = rand(1, 4096, 8, 64), rand(1, 4096, 8, 64), rand(1, 4096, 8, 64)
with umfa.Context("cpu", num_threads=2) as ref_ctx:
    ref = np.empty_like(q); ref_ctx.forward(q, k, v, ref)
ctx = umfa.Context("cpu", num_threads=2)
out = np.zeros_like(q)
done = []
th = threading.Thread(target=lambda: done.append(ctx.forward(q, k, v, out)), daemon=True)
th.start()
time.sleep(0.2)
# Create, use and close other contexts (and the default one) while the call runs.
small = rand(1, 16, 2, 8)
for _ in range(5):
    other = umfa.Context("cpu", num_threads=2)
    other.forward(small, small, small, np.empty_like(small))
    other.close()
umfa.default_context("cpu").close()
th.join(90)
report(alive=th.is_alive(), matches=bool(np.allclose(out, ref, atol=1e-5, rtol=1e-4)), done=len(done))
""")
    assert not r["alive"] and r["done"] == 1 and r["matches"], r


def test_close_from_the_calling_thread_inside_a_call() -> None:
    # A close that runs on the calling thread while its own call is in flight (a destructor
    # the garbage collector runs at an unlucky moment): it cannot wait for that call, so it
    # returns at once and the call destroys the context when it ends.
    r = run_scenario(TIMING + """
ctx = umfa.Context("cpu", num_threads=2)
real = C._forward_fn
def closing_call(*args):
    ctx.close()
    return real(*args)
C._forward_fn = closing_call
q = rand(1, 64, 2, 16)
out = np.zeros_like(q)
ctx.forward(q, q, q, out)
C._forward_fn = real
report(closed=ctx.closed, destroyed=ctx._native.handle == 0,
       nonzero=bool(np.abs(out).sum() > 0),
       after_close=status_of(lambda: ctx.forward(q, q, q, out)))
""", timeout=60)
    assert r == {"closed": True, "destroyed": True, "nonzero": True,
                 "after_close": "UMFA_STATUS_INVALID_HANDLE"}


def test_close_from_an_option_conversion() -> None:
    r = run_scenario("""
ctx = umfa.Context("cpu", num_threads=2)
class Closer:
    def __index__(self):
        ctx.close()
        return 3
q = np.random.default_rng(1).standard_normal((1, 64, 2, 16)).astype(np.float32)
out = np.zeros_like(q)
try:
    ctx.forward(q, q, q, out, window_size=(Closer(), 0))
    status = "OK"
except umfa.UmfaError as exc:
    status = exc.name
report(status=status, untouched=bool((out == 0).all()))
""", timeout=60)
    assert r == {"status": "UMFA_STATUS_INVALID_HANDLE", "untouched": True}


def test_buffers_keep_a_closed_context_alive() -> None:
    r = run_scenario("""
ctx = umfa.MFAContext()
data = np.arange(16, dtype=np.float32)
wrapped = umfa.MFABuffer(ctx, data)
owned = umfa.MFABuffer(ctx, size=256)
ctx.close()
alive_after_close = ctx._native.handle != 0
ptr = owned.contents_ptr()
wrapped.close()
still_alive = ctx._native.handle != 0
owned.close()
try:
    umfa.MFABuffer(ctx, size=16)
    status = "OK"
except umfa.UmfaError as exc:
    status = exc.name
report(alive_after_close=alive_after_close, ptr=ptr != 0, still_alive=still_alive,
       destroyed=ctx._native.handle == 0, new_buffer=status)
""", timeout=60)
    assert r == {"alive_after_close": True, "ptr": True, "still_alive": True,
                 "destroyed": True, "new_buffer": "UMFA_STATUS_INVALID_HANDLE"}
