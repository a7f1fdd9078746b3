"""Test setup: import umfa from this source tree (src/) unless UMFA_TEST_INSTALLED=1."""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PKG_ROOT = HERE.parent
REPO_ROOT = PKG_ROOT.parent.parent

if os.environ.get("UMFA_TEST_INSTALLED") != "1":
    sys.path.insert(0, str(PKG_ROOT / "src"))
