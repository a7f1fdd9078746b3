#!/usr/bin/env bash
# The conformance project's tests: the committed vectors are exactly what generate.py writes,
# and the reference passes its self-check. Uses $PYTHON, else the first python3 on PATH that
# has NumPy (package managers may put a system python3 without NumPy first on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-}
if [ -z "$py" ]; then
  for cand in $(type -a -p python3 2>/dev/null) python3; do
    if "$cand" -c 'import numpy' >/dev/null 2>&1; then py=$cand; break; fi
  done
fi
if [ -z "$py" ]; then
  echo "conformance: no python3 with NumPy found (set PYTHON)" >&2
  exit 1
fi
"$py" conformance/generate.py --check
"$py" conformance/selfcheck.py
