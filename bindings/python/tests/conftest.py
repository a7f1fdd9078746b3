"""Test setup: import umfa from this source tree (src/) unless UMFA_TEST_INSTALLED=1."""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PKG_ROOT = HERE.parent
REPO_ROOT = PKG_ROOT.parent.parent

if os.environ.get("UMFA_TEST_INSTALLED") != "1":
    sys.path.insert(0, str(PKG_ROOT / "src"))


# Largest errors seen against PyTorch, by (dtype, quantity); printed at the end of the run.
MAX_ERRORS = {}


def record_error(dtype: str, what: str, err: float) -> None:
    key = (dtype, what)
    MAX_ERRORS[key] = max(MAX_ERRORS.get(key, 0.0), float(err))


def pytest_terminal_summary(terminalreporter):
    if not MAX_ERRORS:
        return
    tr = terminalreporter
    tr.section("umfa vs torch.nn.functional.scaled_dot_product_attention: largest abs errors")
    order = ["float32", "bfloat16", "float16"]
    dtypes = sorted({d for d, _ in MAX_ERRORS},
                    key=lambda d: (d.startswith("cuda-"), order.index(d.split("-")[-1])))
    for dtype in dtypes:
        row = [f"{w}={MAX_ERRORS[(dtype, w)]:.3g}" for w in ("out", "dq", "dk", "dv")
               if (dtype, w) in MAX_ERRORS]
        tr.write_line(f"{dtype:14s} " + "  ".join(row))
