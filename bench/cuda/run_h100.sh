#!/usr/bin/env bash
# Builds libumfa with its CUDA backend, checks it, and benchmarks it against PyTorch — on a
# machine with an NVIDIA GPU (written for an H100: nvcc, PyTorch with CUDA, compute-sanitizer).
#
#   bash bench/cuda/run_h100.sh                 # everything
#   STAGES="build check" bash bench/cuda/run_h100.sh
#
# Stages: build (core + libumfa_cuda, sm_90), conformance (C runner, --backend cuda),
# sanitize (bench/cuda/smoke.c under compute-sanitizer memcheck/racecheck/synccheck),
# check (bench/cuda/check_cuda.py: conformance vectors through Python with CUDA tensors, random
# shapes vs float64, determinism), tune (bench/cuda/tune.py; build with TUNING=ON),
# bench (bench/cuda_vs_torch.py -> bench/cuda/results/ and bench/results/sdpa-cuda.json).
# Logs go to $LOG_DIR (default bench/cuda/results/logs). BENCH_ARGS is passed to the benchmark.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
STAGES=${STAGES:-"build conformance sanitize check bench"}
LOG_DIR=${LOG_DIR:-$root/bench/cuda/results/logs}
RESULTS=${RESULTS:-$root/bench/cuda/results/h100.json}
DOCS_RESULTS=${DOCS_RESULTS:-$root/bench/results/sdpa-cuda.json}  # docs/performance.md's CUDA table
mkdir -p "$LOG_DIR" "$(dirname "$RESULTS")"
lib="$root/dist/native/linux-x64/lib"
export UMFA_LIB_DIR="$lib" PYTHONPATH="$root/bindings/python/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
status=0
t_start=$(date +%s)
BUDGET_S=${BUDGET_S:-100000}  # stop starting stages when the run would exceed this
has() {
  case " $STAGES " in *" $1 "*) ;; *) return 1 ;; esac
  if [ $(( $(date +%s) - t_start )) -ge "$BUDGET_S" ]; then
    echo "skipping $1: over the time budget" | tee -a "$LOG_DIR/steps.log"
    return 1
  fi
  return 0
}
left() {  # seconds left in the budget, capped at $1
  local l=$(( BUDGET_S - ($(date +%s) - t_start) ))
  [ "$l" -gt "$1" ] && l=$1
  [ "$l" -lt 5 ] && l=5
  echo "$l"
}
stage() { echo; echo "=== $1 ($(date +%T))"; }

{
  stage "machine"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv
  nvcc --version | tail -2
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
} 2>&1 | tee "$LOG_DIR/steps.log"

if has build; then
  stage "build" | tee -a "$LOG_DIR/steps.log"
  start=$(date +%s)
  UMFA_JOBS=${UMFA_JOBS:-16} \
  UMFA_CMAKE_ARGS="-DUMFA_CUDA_ARCHITECTURES=${UMFA_CUDA_ARCHS:-90-real} -DUMFA_CUDA_PTXAS_VERBOSE=ON -DUMFA_CUDA_TUNING=${TUNING:-OFF}" \
    bash core/scripts/build.sh > "$LOG_DIR/build.log" 2>&1 || {
    # Something outside the libraries failed (e.g. a test): build what the checks need and
    # install it by hand.
    echo "build.sh failed; building the libraries and the conformance runner only" \
      | tee -a "$LOG_DIR/steps.log"
    cmake --build core/build --parallel 16 --target umfa umfa_cuda umfa_conformance \
      >> "$LOG_DIR/build.log" 2>&1 || status=1
    mkdir -p "$lib" "$root/dist/native/linux-x64/include"
    cp -a core/build/lib/libumfa* "$lib/" && cp include/umfa.h "$root/dist/native/linux-x64/include/"
  }
  echo "build: $(( $(date +%s) - start )) s, status $status" | tee -a "$LOG_DIR/steps.log"
  grep -E "error|spill|registers" "$LOG_DIR/build.log" | grep -B1 -E "spill [1-9]|error" | head -40 \
    | tee -a "$LOG_DIR/steps.log"
  ls -la "$lib" | tee -a "$LOG_DIR/steps.log"
fi

if has conformance; then
  stage "conformance (C runner, cuda)" | tee -a "$LOG_DIR/steps.log"
  core/build/bin/umfa_conformance --manifest conformance/manifest.json \
    --skip conformance/runner/skip.txt --backend cuda > "$LOG_DIR/conformance_c.log" 2>&1 || status=1
  grep -vE "^PASS" "$LOG_DIR/conformance_c.log" | tail -25 | tee -a "$LOG_DIR/steps.log"
  # Again with the main forward kernel unsplit (the sm_90a forward on Hopper), and the layout test.
  UMFA_CUDA_SMALL=0 UMFA_CUDA_SPLITS=1 core/build/bin/umfa_conformance \
    --manifest conformance/manifest.json --skip conformance/runner/skip.txt --backend cuda \
    > "$LOG_DIR/conformance_c_unsplit.log" 2>&1 || status=1
  tail -1 "$LOG_DIR/conformance_c_unsplit.log" | sed 's/^/(main forward, unsplit) /' | tee -a "$LOG_DIR/steps.log"
  if [ -x core/build/bin/test_wgmma_layouts ]; then
    core/build/bin/test_wgmma_layouts 2>&1 | tail -1 | tee -a "$LOG_DIR/steps.log"
    rc=${PIPESTATUS[0]}; [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || status=1
  fi
fi

if has sanitize; then
  stage "sanitize" | tee -a "$LOG_DIR/steps.log"
  cc -O2 -std=c99 bench/cuda/smoke.c -I"$root/dist/native/linux-x64/include" -L"$lib" -lumfa \
    -lm -Wl,-rpath,"$lib" -o /tmp/umfa_smoke 2>&1 | tee -a "$LOG_DIR/steps.log"
  /tmp/umfa_smoke 2>&1 | tail -20 | tee -a "$LOG_DIR/steps.log" || status=1
  cc -O2 -std=c99 bench/cuda/latency.c -I"$root/dist/native/linux-x64/include" -L"$lib" -lumfa \
    -Wl,-rpath,"$lib" -o /tmp/umfa_latency 2>&1 | tee -a "$LOG_DIR/steps.log"
  /tmp/umfa_latency 2>&1 | tee -a "$LOG_DIR/steps.log"
  UMFA_CUDA_SPLITS=1 /tmp/umfa_latency 2>&1 | sed 's/^/(no split) /' | tee -a "$LOG_DIR/steps.log"
  for tool in ${SANITIZERS:-memcheck racecheck synccheck}; do
    # Three times: as dispatched, with the main forward kernel and split-KV forced, and with the
    # main forward kernel unsplit (the sm_90a forward on Hopper).
    for mode in default main unsplit; do
      echo "--- compute-sanitizer --tool $tool ($mode)" | tee -a "$LOG_DIR/steps.log"
      case $mode in
        main) envs="UMFA_CUDA_SMALL=0 UMFA_CUDA_FORCE_SPLITS=2" ;;
        unsplit) envs="UMFA_CUDA_SMALL=0 UMFA_CUDA_SPLITS=1" ;;
        *) envs="" ;;
      esac
      timeout "$(left 240)" env $envs compute-sanitizer --tool $tool --error-exitcode 9 \
        /tmp/umfa_smoke > "$LOG_DIR/sanitize_${tool}_$mode.txt" 2>&1
      rc=$?
      tail -3 "$LOG_DIR/sanitize_${tool}_$mode.txt" | tee -a "$LOG_DIR/steps.log"
      echo "$tool ($mode) exit $rc" | tee -a "$LOG_DIR/steps.log"
      [ $rc -eq 0 ] || status=1
    done
  done
fi

if has check; then
  stage "check" | tee -a "$LOG_DIR/steps.log"
  timeout "$(left 400)" python3 bench/cuda/check_cuda.py --json "$LOG_DIR/check.json" ${CHECK_ARGS:-} \
    > "$LOG_DIR/check.log" 2>&1 || status=1
  grep -E "^FAIL|SUMMARY|Error|error" "$LOG_DIR/check.log" | head -60 | tee -a "$LOG_DIR/steps.log"
  UMFA_CUDA_SMALL=0 UMFA_CUDA_SPLITS=1 timeout "$(left 300)" python3 bench/cuda/check_cuda.py \
    --json "$LOG_DIR/check_unsplit.json" > "$LOG_DIR/check_unsplit.log" 2>&1 || status=1
  grep -E "^FAIL|SUMMARY|Error|error" "$LOG_DIR/check_unsplit.log" | head -30 \
    | sed 's/^/(main forward, unsplit) /' | tee -a "$LOG_DIR/steps.log"
fi

if has tune; then
  stage "tune (alternative tile shapes; needs TUNING=ON)" | tee -a "$LOG_DIR/steps.log"
  timeout "$(left 200)" python3 bench/cuda/tune.py --json "$LOG_DIR/tune.json" ${TUNE_ARGS:-} \
    > "$LOG_DIR/tune.log" 2>&1 || status=1
  cat "$LOG_DIR/tune.log" | tee -a "$LOG_DIR/steps.log"
fi

if has bench; then
  stage "bench" | tee -a "$LOG_DIR/steps.log"
  timeout "$(left 900)" python3 bench/cuda_vs_torch.py --out "$RESULTS" --docs-out "$DOCS_RESULTS" ${BENCH_ARGS:-} > "$LOG_DIR/bench.log" 2>&1 || status=1
  tail -45 "$LOG_DIR/bench.log" | tee -a "$LOG_DIR/steps.log"
fi

echo "run_h100.sh: status $status" | tee -a "$LOG_DIR/steps.log"
exit $status
