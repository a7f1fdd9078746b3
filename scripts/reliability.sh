#!/usr/bin/env bash
# The reliability suite (docs/reliability.md), as CI runs it (Nx project @umfa/reliability,
# target test):
#   1. sanitizers: the core's ctest suite under ASan + UBSan + LeakSanitizer (clang), valgrind
#      memcheck over the C tests, the conformance runner, the bad cases and the fuzz corpus, and
#      the concurrency tests under ThreadSanitizer (gcc) (scripts/sanitize.sh);
#   2. a bounded libFuzzer run of the C ABI (scripts/fuzz.sh, UMFA_FUZZ_SECONDS, default 60);
#   3. the TypeScript bindings' fuzzer: its corpus and regressions replayed through koffi and
#      napi, then each binding fuzzed for UMFA_TS_FUZZ_SECONDS (default 30)
#      (packages/ts-tests/fuzz/run.sh, about 75 s);
#   4. concurrency stress: C threads (Release and ASan), Python threads, Node koffi + napi async
#      together, and the shared bad cases through Python and both TypeScript bindings
#      (scripts/stress.sh).
# Every step runs even when an earlier one fails; the summary lists the figures of each and the
# script fails if any step did. About 6-9 minutes on 2 cores (most of it the ASan build).
# Needs: clang-14, libclang-rt-14-dev, valgrind (and gcc's libtsan, installed with g++); the core built (core/scripts/build.sh) and the
# TypeScript packages built (pnpm nx run-many -t build), as scripts/test.sh does first.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=$(mktemp -d "${TMPDIR:-/tmp}/umfa-reliability.XXXXXX")
trap 'rm -rf "$logs"' EXIT
failed=(); summary=()
step() {
  local name=$1; shift
  printf '\n\033[1m=== reliability: %s\033[0m\n' "$name"
  local start=$SECONDS
  "$@" 2>&1 | tee "$logs/$name.log"
  local rc=${PIPESTATUS[0]}
  local dt=$((SECONDS - start))
  if [ "$rc" -eq 0 ]; then summary+=("ok    $name (${dt}s)"); else failed+=("$name"); summary+=("FAIL  $name (${dt}s, exit $rc)"); fi
}
step asan bash scripts/sanitize.sh asan
step valgrind bash scripts/sanitize.sh valgrind
step tsan bash scripts/sanitize.sh tsan
step fuzz bash scripts/fuzz.sh "${UMFA_FUZZ_SECONDS:-60}"
step fuzz-ts bash packages/ts-tests/fuzz/run.sh
step stress bash scripts/stress.sh all

printf '\n=== reliability: summary\n'
printf '%s\n' "${summary[@]}"
grep -h -E "^sanitize: (ASan|valgrind|ThreadSanitizer)|^fuzz: [0-9?]+ executions|^fuzz-ts: (replay )?(koffi|napi): [0-9]+ (executions|inputs)|^fuzz-ts: FINDING|^stress_threads: [0-9]+ calls|^  phase|calls from [0-9]+ Python threads|^GIL:|koffi \+ napi async:|bad cases|passed, .* skipped|Tests .*passed" "$logs"/*.log 2>/dev/null | sed 's/^/  /'
if [ ${#failed[@]} -gt 0 ]; then
  printf 'reliability: FAILED: %s\n' "${failed[*]}"
  exit 1
fi
echo "reliability: all steps passed"
