"""fork() after use: a forked child (a PyTorch DataLoader worker, a multiprocessing "fork"
worker) uses the context it inherited, gets the parent's results, and closes it, while another
thread of the parent was inside a call on that context at the moment of the fork.

The child runs under a deadline: a child that hangs (a thread pool waiting for workers that do
not exist in the child) is killed and reported, so a regression fails here instead of hanging
the suite. The scenario runs in its own interpreter (``_isolated.run_scenario``).
"""

from __future__ import annotations

import pytest

from _isolated import run_scenario

FORK = """
import signal
use_torch = USE_TORCH
rng = np.random.default_rng(5)
q = rng.standard_normal((2, 300, 4, 32)).astype(np.float32)
ctx = umfa.Context("cpu", num_threads=2)
out = np.empty_like(q)
ctx.forward(q, q, q, out, mask_mode="causal_bottom_right")  # the worker pool is running
default_ref = umfa.flash_attn_func(q, q, q)
if use_torch:
    import torch, umfa.torch
    torch.set_num_threads(1)
    tq = torch.from_numpy(q).transpose(1, 2)
    torch_ref = umfa.torch.scaled_dot_product_attention(tq, tq, tq, is_causal=True).numpy()
# Another thread of the parent is inside a call on the same context when the fork happens.
busy = threading.Thread(target=lambda: ctx.forward(np.repeat(q, 8, axis=1), np.repeat(q, 8, axis=1),
                                                   np.repeat(q, 8, axis=1),
                                                   np.empty_like(np.repeat(q, 8, axis=1))),
                        daemon=True)
busy.start()
time.sleep(0.05)
pid = os.fork()
if pid == 0:
    code = 10
    try:
        again = np.empty_like(q)
        ctx.forward(q, q, q, again, mask_mode="causal_bottom_right")
        ok = np.array_equal(again, out)
        ok = ok and np.array_equal(umfa.flash_attn_func(q, q, q), default_ref)
        if use_torch:
            got = umfa.torch.scaled_dot_product_attention(tq, tq, tq, is_causal=True).numpy()
            ok = ok and np.allclose(got, torch_ref, atol=1e-6)
        ctx.close()
        umfa.default_context("cpu").close()
        code = 0 if ok else 11
    except BaseException:
        code = 12
    os._exit(code)
deadline = time.monotonic() + DEADLINE
status = None
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    time.sleep(0.02)
else:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    report(child="hung")
busy.join(60)
ctx.close()
report(child="exited" if os.WIFEXITED(status) else "signal",
       code=os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status))
"""


@pytest.mark.parametrize("use_torch", [False, True], ids=["numpy", "torch"])
def test_fork_child_uses_and_closes_inherited_context(use_torch: bool) -> None:
    # PyTorch DataLoader workers are forked children: they must be able to use (and free)
    # what the parent made. A child that hangs is killed after the deadline and reported.
    r = run_scenario(FORK.replace("USE_TORCH", str(use_torch)).replace("DEADLINE", "30"),
                     timeout=120)
    assert r.get("child") != "hung", ("the forked child hung using or closing the inherited "
                                      "context (libumfa without fork support?)")
    assert r == {"child": "exited", "code": 0}, (
        f"{r}: 11 = the child's results differ from the parent's, 12 = the child raised")
