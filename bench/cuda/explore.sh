#!/usr/bin/env bash
# One device run for kernel exploration: a tuning build (alternative tile shapes and code
# variants), correctness of the candidate variants, their speed (tune.py), Nsight Compute
# sections of the backward kernels next to PyTorch FLASH's, and SASS opcode histograms.
# Everything lands in $OUT (default bench/cuda/results/explore): summary.txt and explore.tar.gz.
#
#   FWD_VARIANTS=0,8,9 BWD_VARIANTS=0,5,7 CHECK_PAIRS="8:5 9:7" bash bench/cuda/explore.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
OUT=${OUT:-$root/bench/cuda/results/explore}
work=/tmp/umfa_explore
rm -rf "$work" && mkdir -p "$work" "$OUT"
ln -sf "$OUT/summary.txt" "$work/summary.txt"  # the summary is written in place, as it grows
lib="$root/dist/native/linux-x64/lib"
export UMFA_LIB_DIR="$lib" PYTHONPATH="$root/bindings/python/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# Variant numbers: configs.cuh (0 = production; fwd 8 and bwd 5 = the shapes before the
# plain-score/split options; bwd 9 = plain steps in two column halves, not yet measured).
FWD_VARIANTS=${FWD_VARIANTS:-0,8,9,10,11}
BWD_VARIANTS=${BWD_VARIANTS:-0,5,6,7,9}
CHECK_PAIRS=${CHECK_PAIRS:-"8:5 9:9 10:7"}   # FWD:BWD variant pairs run through check_cuda
NCU_BWD=${NCU_BWD:-"0 9"}
log() { echo "$*" | tee -a "$work/summary.txt"; }
t0=$(date +%s)
stamp() { log "--- $1 (+$(( $(date +%s) - t0 )) s)"; }

stamp machine
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__)'; } 2>&1 | tee -a "$work/summary.txt"

stamp build
UMFA_JOBS=16 UMFA_CMAKE_ARGS="-DUMFA_CUDA_ARCHITECTURES=90-real -DUMFA_CUDA_PTXAS_VERBOSE=ON -DUMFA_CUDA_TUNING=ON" \
  bash core/scripts/build.sh > "$work/build.log" 2>&1 || {
  log "build.sh failed (tests or tools); building the libraries and runner"
  cmake --build core/build --parallel 16 --target umfa umfa_cuda umfa_conformance test_cuda >> "$work/build.log" 2>&1
  mkdir -p "$lib" && cp -a core/build/lib/libumfa* "$lib/"
}
grep -E "error" "$work/build.log" | head -20 | tee -a "$work/summary.txt"

stamp "conformance (C runner, cuda)"
core/build/bin/umfa_conformance --manifest conformance/manifest.json \
  --skip conformance/runner/skip.txt --backend cuda > "$work/conformance_c.log" 2>&1
tail -2 "$work/conformance_c.log" | tee -a "$work/summary.txt"
stamp "test_cuda"
core/build/bin/test_cuda > "$work/test_cuda.log" 2>&1; log "test_cuda exit $?"; tail -3 "$work/test_cuda.log" | tee -a "$work/summary.txt"

stamp "smoke + memcheck"
cc -O2 -std=c99 bench/cuda/smoke.c -I"$root/dist/native/linux-x64/include" -L"$lib" -lumfa -lm \
  -Wl,-rpath,"$lib" -o "$work/smoke" && {
  "$work/smoke" > "$work/smoke.log" 2>&1; log "smoke exit $?"; grep -E "FAIL|failed" "$work/smoke.log" | tee -a "$work/summary.txt"
  timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 "$work/smoke" > "$work/memcheck.log" 2>&1
  log "memcheck exit $?"; tail -2 "$work/memcheck.log" | tee -a "$work/summary.txt"
  UMFA_CUDA_BWD_VARIANT=9 UMFA_CUDA_FWD_VARIANT=9 timeout 240 compute-sanitizer --tool memcheck \
    --error-exitcode 9 "$work/smoke" > "$work/memcheck_v.log" 2>&1
  log "memcheck (fwd 9, bwd 9) exit $?"; tail -2 "$work/memcheck_v.log" | tee -a "$work/summary.txt"
}

stamp "check (production)"
timeout 300 python3 bench/cuda/check_cuda.py --json "$work/check.json" > "$work/check.log" 2>&1
grep -E "^FAIL|SUMMARY" "$work/check.log" | head -20 | tee -a "$work/summary.txt"
for pair in $CHECK_PAIRS; do
  f=${pair%%:*}; b=${pair##*:}
  stamp "check fwd variant $f, bwd variant $b"
  UMFA_CUDA_FWD_VARIANT=$f UMFA_CUDA_BWD_VARIANT=$b timeout 200 python3 bench/cuda/check_cuda.py \
    --skip-conformance --quick > "$work/check_f${f}_b${b}.log" 2>&1
  grep -E "^FAIL|SUMMARY" "$work/check_f${f}_b${b}.log" | head -10 | tee -a "$work/summary.txt"
done

stamp "tune"
timeout 240 python3 bench/cuda/tune.py --json "$work/tune.json" --fwd "$FWD_VARIANTS" \
  --bwd "$BWD_VARIANTS" --dims 64,128 > "$work/tune.log" 2>&1
cat "$work/tune.log" >> "$work/summary.txt"
python3 - "$work/tune.json" <<'PY' | tee -a "$work/summary.txt"
import json, math, sys
rows = json.load(open(sys.argv[1]))
for p in ("fwd", "bwd"):
    rs = [r for r in rows if r["pass"] == p]
    if not rs: continue
    keys = [k for k in rs[0] if k.startswith("v")]
    for D in (64, 128):
        sub = [r for r in rs if r["D"] == D]
        g = {k: math.exp(sum(math.log(r[k] / r["v0"]) for r in sub) / len(sub)) for k in keys}
        print(p, "D", D, "geomean TFLOP/s ratio vs v0:", {k: round(v, 3) for k, v in g.items()})
PY

stamp "ncu"
if command -v ncu >/dev/null; then
  sections="--section SpeedOfLight --section Occupancy --section SchedulerStats --section WarpStateStats --section InstructionStats --section MemoryWorkloadAnalysis"
  timeout 150 ncu --kernel-name regex:'bwd_kernel|bwd_opt_kernel|flash_bwd_dq_dk_dv' --launch-count 2 \
    $sections --csv --page details python3 bench/cuda/profile_target.py --D 128 --N 2048 --reps 1 \
    > "$work/ncu_bwd_v0_flash.csv" 2> "$work/ncu_err.log"; log "ncu v0+flash exit $?"
  for v in $NCU_BWD; do
    [ "$v" = 0 ] && continue
    UMFA_CUDA_BWD_VARIANT=$v timeout 100 ncu --kernel-name regex:'bwd_kernel|bwd_opt_kernel' \
      --launch-count 1 $sections --csv --page details python3 bench/cuda/profile_target.py --D 128 \
      --N 2048 --reps 1 --no-torch > "$work/ncu_bwd_v$v.csv" 2>> "$work/ncu_err.log"; log "ncu v$v exit $?"
  done
fi

stamp "sass"
if command -v cuobjdump >/dev/null; then
  cuobjdump -sass "$lib/libumfa_cuda.so" > "$work/all.sass" 2>/dev/null
  python3 - "$work/all.sass" "$work" <<'PY' | tee -a "$work/summary.txt"
import collections, re, sys
text = open(sys.argv[1]).read()
parts = re.split(r"\n\s*Function : (\S+)\n", text)
want = ("bwd_kernel", "bwd_opt_kernel", "fwd_kernel")
for i in range(1, len(parts), 2):
    name, body = parts[i], parts[i + 1]
    if not any(w in name for w in want) or "bf16" in name.lower() or "nv_bfloat16" in name:
        continue
    ops = collections.Counter()
    for m in re.finditer(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", body):
        ops[m.group(1).split(".")[0]] += 1
    total = sum(ops.values())
    top = ", ".join(f"{k} {v}" for k, v in ops.most_common(14))
    print(f"{name[:110]}: {total} instr; {top}; LDL {ops['LDL']} STL {ops['STL']}")
    if ("bwd" in name and ("ILi128ELi64ELi128E" in name)) or ("fwd_kernel" in name and "ILi128ELi128ELi64E" in name):
        open(f"{sys.argv[2]}/{name[:60]}.sass", "w").write(body)
PY
  rm -f "$work/all.sass"
fi

stamp done
cp "$work/tune.json" "$OUT/tune.json" 2>/dev/null
tar -C "$work" -czf "$OUT/explore.tar.gz" --exclude smoke --exclude summary.txt . 2>/dev/null
ls -la "$OUT"
