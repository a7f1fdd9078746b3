#!/usr/bin/env bash
# A bounded libFuzzer run of the C ABI harness (core/fuzz, docs/reliability.md), built with
# ASan + UBSan in build/asan (scripts/sanitize.sh build).
#
# The run starts from the committed seed corpus and the regression inputs, copied to a scratch
# folder, so the repository is not modified. It prints the executions and the corpus growth; on a
# crash (a sanitizer report, a wrong status, a write outside an output, a result off the float64
# reference, a timeout) it copies the input to core/fuzz/regressions/crash-<sha1>, prints how to
# replay it, and fails. UMFA_FUZZ_MERGE=1 merges the inputs that found new coverage back into
# core/fuzz/corpus (minimized with -merge=1) to be committed.
#
# Usage: scripts/fuzz.sh [SECONDS]     (default 60, or UMFA_FUZZ_SECONDS)
# Environment: UMFA_ASAN_DIR (build/asan), UMFA_FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${1:-${UMFA_FUZZ_SECONDS:-60}}
build=${UMFA_ASAN_DIR:-build/asan}
case "$build" in /*) ;; *) build="$root/$build" ;; esac

bash scripts/sanitize.sh build
fuzzer="$build/bin/umfa_fuzz"
work=$(mktemp -d "${TMPDIR:-/tmp}/umfa-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
cp core/fuzz/corpus/* "$work/corpus/"
find core/fuzz/regressions -type f ! -name '*.md' -exec cp {} "$work/corpus/" \;
before=$(ls "$work/corpus" | wc -l)

cxx=${UMFA_CLANG:-clang-14}
cxx=${cxx/clang/clang++}
export LD_PRELOAD=$("$cxx" -print-file-name=libclang_rt.asan-x86_64.so)  # the runtime first
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export UMFA_FUZZ_FAILURE_FILE="$work/artifacts/failure-input"

echo "--- fuzz: $seconds s of libFuzzer on $before seed inputs"
set +e
# shellcheck disable=SC2086
"$fuzzer" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -max_len=512 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" ${UMFA_FUZZ_ARGS:-} "$work/corpus" >"$work/log" 2>&1
rc=$?
set -e
unset LD_PRELOAD
grep -v "AddressSanitizer failed to allocate" "$work/log" | grep -E "^#[0-9]+ +(INITED|DONE)|stat::|CHECK FAILED|==umfa-fuzz==|ERROR|runtime error" | head -40 || true
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
after=$(ls "$work/corpus" | wc -l)

crashes=$(find "$work/artifacts" -type f -name 'crash-*' -o -type f -name 'timeout-*' -o -type f -name 'oom-*' -o -type f -name 'leak-*' | sort)
if [ $rc -ne 0 ] || [ -n "$crashes" ]; then
  echo "--- fuzz: FAILED (libFuzzer exit $rc)"
  tail -60 "$work/log"
  for c in $crashes; do
    dest="core/fuzz/regressions/$(basename "$c")"
    cp "$c" "$dest"
    echo "fuzz: kept $dest; replay: $build/bin/umfa_fuzz_replay $dest"
  done
  exit 1
fi
if [ "${UMFA_FUZZ_MERGE:-0}" = 1 ]; then
  tmp="$work/merged"
  mkdir -p "$tmp"
  LD_PRELOAD=$("$cxx" -print-file-name=libclang_rt.asan-x86_64.so) "$fuzzer" -merge=1 "$tmp" core/fuzz/corpus "$work/corpus" >/dev/null 2>&1
  for f in "$tmp"/*; do
    [ -e "core/fuzz/corpus/$(basename "$f")" ] || cp "$f" core/fuzz/corpus/
  done
  echo "fuzz: core/fuzz/corpus now holds $(ls core/fuzz/corpus | wc -l) inputs"
fi
echo "fuzz: ${execs:-?} executions in $seconds s (${rate:-?}/s), corpus $before -> $after inputs, 0 crashes"
