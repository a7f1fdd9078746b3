#!/usr/bin/env bash
# Concurrency stress (docs/reliability.md):
#   1. core/stress: forward+backward calls from 8 threads on a shared context, on per-thread
#      contexts and on churning contexts with interleaved bad calls, every result compared with a
#      single-threaded run (bit for bit where deterministic); under ASan + UBSan (build/asan, when
#      built by scripts/sanitize.sh) and in the normal Release build (core/build);
#   2. Python: bindings/python/tests/test_threads.py (threads overlap inside the C calls: ctypes
#      releases the GIL) and test_bad_cases.py;
#   3. Node: packages/ts-tests reliability suite (koffi and N-API async calls in flight together,
#      and the shared bad cases through both bindings).
#
# Usage: scripts/stress.sh [c|python|node|all]   (default all)
# Environment: UMFA_STRESS_CALLS (forward+backward pairs per phase in the Release run, 20000;
#   UMFA_STRESS_ASAN_CALLS (the same under ASan, 3000), UMFA_ASAN_DIR (build/asan).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
what=${1:-all}
calls=${UMFA_STRESS_CALLS:-20000}
build=${UMFA_ASAN_DIR:-build/asan}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
export UMFA_CUDA_LIB=/nonexistent/libumfa_cuda.so
PYTHON=${PYTHON:-python3}

c_stress() {
  flock /tmp/umfa-build.lock bash core/scripts/build.sh | tail -1
  echo "--- stress: C, Release build"
  "$root/core/build/bin/umfa_stress_threads" --threads 8 --calls "$calls"
  if [ -x "$build/bin/umfa_stress_threads" ]; then
    echo "--- stress: C, ASan + UBSan build"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 \
      "$build/bin/umfa_stress_threads" --threads 8 --calls "${UMFA_STRESS_ASAN_CALLS:-3000}"
  else
    echo "stress: $build not built (scripts/sanitize.sh build): ASan stress skipped"
  fi
}

python_stress() {
  echo "--- stress: Python threads, and the shared bad cases through the Python binding"
  "$PYTHON" -m pytest -q bindings/python/tests/test_threads.py bindings/python/tests/test_bad_cases.py \
    -p no:cacheprovider -s
}

node_stress() {
  echo "--- stress: Node (koffi + napi async together; bad cases through both bindings)"
  (cd packages/ts-tests && pnpm exec vitest run --config vitest.reliability.config.ts)
}

case "$what" in
  c) c_stress ;;
  python) python_stress ;;
  node) node_stress ;;
  all) c_stress; python_stress; node_stress ;;
  *) echo "usage: $0 [c|python|node|all]" >&2; exit 2 ;;
esac
