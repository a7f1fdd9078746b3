"""The Python binding's fuzzer (``fuzz_binding.py``), bounded, as part of the suite: it replays
the corpus of past findings (``fuzz_corpus/``), then searches for ``UMFA_PY_FUZZ_SECONDS``
seconds (default 20) from ``UMFA_PY_FUZZ_SEED`` (default: the clock; printed either way).

It runs in a child process so that a crash or a hang is a failing test (with the case that
caused it, ready to be added to the corpus) rather than a dead or stuck suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_fuzz_binding(tmp_path: Path) -> None:
    seconds = float(os.environ.get("UMFA_PY_FUZZ_SECONDS", "20"))
    seed = int(os.environ.get("UMFA_PY_FUZZ_SEED", str(int(time.time()) % 2 ** 31)))
    in_flight = tmp_path / "in_flight.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(HERE / "fuzz_binding.py"), "--seconds", str(seconds), "--seed",
           str(seed), "--in-flight", str(in_flight), "--case-timeout", "30"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=seconds + 240)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the fuzzer (seed {seed}) did not finish; the case running:\n"
                             f"{in_flight.read_text() if in_flight.exists() else '?'}") from None
    if proc.returncode not in (0, 1):
        case = in_flight.read_text() if in_flight.exists() else "?"
        raise AssertionError(f"the fuzzer (seed {seed}) died with status {proc.returncode} "
                             f"(a crash, or the per-case watchdog) on:\n{case}\n"
                             f"{proc.stderr[-4000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\nfuzz_binding: seed {seed}, {summary['executions']} executions "
          f"({summary['replayed']} replayed) in {summary['seconds']} s, outcomes "
          f"{summary['outcomes']}, findings {len(summary['findings'])}")
    assert summary["replayed"] > 0, "the corpus was not replayed"
    assert not summary["findings"], (
        f"findings (rerun: python {HERE / 'fuzz_binding.py'} --seed {seed} "
        f"--seconds {seconds}):\n{proc.stderr[-6000:]}")
