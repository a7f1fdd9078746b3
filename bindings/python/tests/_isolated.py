"""Running a scenario in a child Python process with a deadline, for tests whose failure mode
is a hang or a crash (closing a context under a running call, fork): a regression then fails
its own test instead of freezing or killing the whole suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

#: Imported by every scenario: ``report(**fields)`` prints the result as the last line of
#: output and ends the process at once (a thread stuck in the library cannot hold up the exit).
PRELUDE = """
import json, os, sys, threading, time
import numpy as np
import umfa

def report(**fields):
    sys.stdout.write("\\nRESULT " + json.dumps(fields) + "\\n")
    sys.stdout.flush()
    os._exit(0)
"""


def run_scenario(code: str, timeout: float = 120.0) -> Dict[str, Any]:
    """Run ``PRELUDE + code`` in a child interpreter; return what it passed to ``report``.

    Fails (AssertionError) when the child does not report within ``timeout`` seconds (a hang),
    dies from a signal (a crash) or exits without reporting.
    """
    env = dict(os.environ)
    if os.environ.get("UMFA_TEST_INSTALLED") != "1":
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    script = PRELUDE + textwrap.dedent(code)
    try:
        proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the scenario hung (no result after {timeout:.0f} s); output so "
                             f"far:\n{exc.stdout or ''}{exc.stderr or ''}") from None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise AssertionError(f"the scenario exited with status {proc.returncode} without a result "
                         f"(a negative status is the signal that killed it):\n"
                         f"{proc.stdout}{proc.stderr}")
