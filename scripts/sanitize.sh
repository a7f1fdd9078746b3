#!/usr/bin/env bash
# Sanitizer runs of the native core (docs/reliability.md).
#
#   asan      clang -fsanitize=address,undefined -fno-sanitize-recover=all build of libumfa, its
#             ctest tests, the conformance runner, the fuzz replayer and the stress tests in
#             build/asan (the libFuzzer target too: the library carries fuzzer coverage
#             instrumentation, which costs the tests nothing), then ctest there with
#             LeakSanitizer on. Any AddressSanitizer, UndefinedBehaviorSanitizer or LeakSanitizer
#             report fails its test. The ASan and TSan builds set UMFA_TEST_REDUCED: long sweeps
#             (cpu_backend_test) run smaller shapes over the same code paths, so the suites pass
#             with a wide margin on a loaded 2-core machine.
#   valgrind  valgrind memcheck (--error-exitcode, definite and indirect leaks are errors) over
#             the normal build (core/build, built through core/scripts/build.sh): the C tests,
#             the conformance runner (every vector), the bad cases, the workspace-limit test,
#             the fuzz corpus and regressions plus 300 random inputs, and a short stress run.
#   tsan      gcc -fsanitize=thread build of libumfa and the concurrency tests in build/tsan
#             (gcc's shared TSan runtime; clang 14's does not start here), then the stress test,
#             test_threads and test_context_races (contexts created and destroyed while calls
#             run on others) under ThreadSanitizer: any data race report fails.
#   build     only configure and build build/asan (scripts/fuzz.sh uses it).
#
# Usage: scripts/sanitize.sh [asan|valgrind|tsan|build|all]   (default: all = asan + valgrind + tsan)
# Environment: UMFA_CLANG (default clang-14; clang++ is derived), UMFA_JOBS (2),
#   UMFA_ASAN_DIR (build/asan), UMFA_TSAN_DIR (build/tsan), UMFA_SANITIZE_ALL=1 (also run test_memory_32k under ASan, about
#   two minutes), UMFA_VALGRIND_TIMEOUT (seconds per valgrind program, default 600). Needs clang-14,
#   libclang-rt-14-dev and valgrind (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mode=${1:-all}
jobs=${UMFA_JOBS:-2}
cc=${UMFA_CLANG:-clang-14}
cxx=${cc/clang/clang++}
build=${UMFA_ASAN_DIR:-build/asan}
case "$build" in /*) ;; *) build="$root/$build" ;; esac

say() { printf '\n--- sanitize: %s\n' "$*"; }

asan_build() {
  command -v "$cxx" >/dev/null || { echo "sanitize: $cxx not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 1; }
  local rt
  rt=$("$cxx" -print-file-name=libclang_rt.asan-x86_64.so)
  [ -f "$rt" ] || { echo "sanitize: the ASan runtime is missing (apt-get install libclang-rt-14-dev)" >&2; exit 1; }
  local flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -fsanitize=fuzzer-no-link"
  # libumfa links with --no-undefined, so everything uses the shared sanitizer runtime.
  local link="-fsanitize=address,undefined -shared-libasan -Wl,-rpath,$(dirname "$rt")"
  local generator="Unix Makefiles" keep_going=(-k)
  if command -v ninja >/dev/null; then generator=Ninja; keep_going=(-k 0); fi
  if [ ! -f "$build/CMakeCache.txt" ] || ! grep -q "CMAKE_CXX_COMPILER:.*$cxx" "$build/CMakeCache.txt"; then
    rm -rf "$build"
    say "configure $build ($cxx, ASan + UBSan)"
    cmake -S core -B "$build" -G "$generator" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" -DUMFA_ENABLE_CUDA=OFF -DUMFA_FUZZ=ON \
      -DUMFA_TEST_REDUCED=ON \
      -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
      -DCMAKE_EXE_LINKER_FLAGS="$link" -DCMAKE_SHARED_LINKER_FLAGS="$link" -DCMAKE_MODULE_LINKER_FLAGS="$link" >/dev/null
  else
    cmake "$build" -DUMFA_TEST_REDUCED=ON >/dev/null  # pick up new test folders
  fi
  say "build $build"
  # Keep going past targets this compiler cannot build (tools, or tests needing a newer clang):
  # ctest below reports any test whose program is missing.
  if ! cmake --build "$build" --parallel "$jobs" -- "${keep_going[@]}" >"$build/build.log" 2>&1; then
    grep -E "FAILED:|error:" "$build/build.log" | head -20 >&2 || true
    echo "sanitize: some targets did not build with $cxx (see $build/build.log)" >&2
  fi
  local need
  for need in lib/libumfa.so bin/umfa_fuzz bin/umfa_fuzz_replay bin/umfa_stress_threads bin/umfa_bad_cases \
              bin/umfa_workspace_limit bin/umfa_conformance; do
    if [ ! -e "$build/$need" ]; then
      echo "sanitize: $need did not build" >&2
      tail -40 "$build/build.log" >&2
      exit 1
    fi
  done
}

export_sanitizer_options() {
  export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LSAN_OPTIONS="report_objects=1"
}

asan_tests() {
  asan_build
  export_sanitizer_options
  local exclude=() missing=()
  # Tests whose program did not build (e.g. _Float16 in test helpers needs clang >= 15).
  while IFS= read -r line; do
    local name=${line%%|*} prog=${line#*|}
    # ctest gives no command for a test whose target has no file.
    if [ -z "$prog" ] || { [[ "$prog" == "$build"/* ]] && [ ! -e "$prog" ]; }; then missing+=("$name"); fi
  done < <(ctest --test-dir "$build" --show-only=json-v1 2>/dev/null | python3 -c '
import json, sys
for t in json.load(sys.stdin)["tests"]:
    cmd = t.get("command") or [""]
    print(t["name"] + "|" + cmd[0])')
  for m in "${missing[@]}"; do
    echo "sanitize: NOTE: $m was not built by $cxx; it is not run under ASan (it runs in the normal build)"
    exclude+=("$m")
  done
  # test_install compiles an uninstrumented consumer against the installed library: it cannot
  # load a sanitized libumfa, and it checks packaging, not memory safety.
  if [ -n "$(ctest --test-dir "$build" -N -R '^test_install$' | grep 'test_install' || true)" ]; then
    echo "sanitize: test_install (packaging: links an uninstrumented program) runs in the normal build only"
    exclude+=(test_install)
  fi
  if [ "${UMFA_SANITIZE_ALL:-0}" != 1 ]; then
    echo "sanitize: test_memory_32k (a peak-memory measurement, ~2 min under ASan) is left to the normal build; UMFA_SANITIZE_ALL=1 runs it"
    exclude+=(test_memory_32k)
  fi
  local regex
  regex=$(IFS='|'; echo "^(${exclude[*]:-none})\$")
  say "ctest under ASan + UBSan + LSan (excluding: ${exclude[*]:-nothing})"
  local start=$SECONDS
  ctest --test-dir "$build" --output-on-failure --timeout 600 -j "$jobs" -E "$regex"
  echo "sanitize: ASan/UBSan/LSan ctest passed in $((SECONDS - start)) s: 0 reports"
}

valgrind_tests() {
  command -v valgrind >/dev/null || { echo "sanitize: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
  say "normal build (core/scripts/build.sh)"
  flock /tmp/umfa-build.lock bash core/scripts/build.sh | tail -1
  local bin="$root/core/build/bin"
  export UMFA_CUDA_LIB=/nonexistent/libumfa_cuda.so
  # A program that hangs fails its run (exit 124) instead of stalling CI.
  local vg=(timeout "${UMFA_VALGRIND_TIMEOUT:-600}" valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect
            --show-leak-kinds=definite,indirect --track-origins=yes)
  local runs=(
    "$bin/test_api"
    "$bin/test_validation"
    "$bin/test_buffers"
    "$bin/test_compat"
    "$bin/umfa_bad_cases"
    "$bin/umfa_workspace_limit"
    "$bin/umfa_conformance --manifest $root/conformance/manifest.json --skip $root/conformance/runner/skip.txt --backend cpu --threads 2"
    "$bin/umfa_fuzz_replay --random 300 $root/core/fuzz/corpus $root/core/fuzz/regressions"
    "$bin/umfa_stress_threads --threads 4 --calls 80"
  )
  say "valgrind memcheck (${#runs[@]} programs)"
  local start=$SECONDS failed=0
  for r in "${runs[@]}"; do
    local t0=$SECONDS log
    log=$(mktemp)
    # shellcheck disable=SC2086
    if "${vg[@]}" $r >"$log" 2>&1; then
      printf '  ok   %-28s %3ds  %s\n' "$(basename "${r%% *}")" $((SECONDS - t0)) "$(grep -v '^$' "$log" | tail -1 | cut -c1-110)"
    else
      failed=1
      printf '  FAIL %s (exit %s)\n' "$r" "$?"
      tail -40 "$log"
    fi
    rm -f "$log"
  done
  [ $failed = 0 ] || { echo "sanitize: valgrind reported errors" >&2; exit 1; }
  echo "sanitize: valgrind memcheck passed in $((SECONDS - start)) s: 0 errors, 0 leaks"
}

tsan_tests() {
  local tbuild=${UMFA_TSAN_DIR:-build/tsan}
  case "$tbuild" in /*) ;; *) tbuild="$root/$tbuild" ;; esac
  local flags="-fsanitize=thread -g -O1"
  local generator="Unix Makefiles"
  if command -v ninja >/dev/null; then generator=Ninja; fi
  if [ ! -f "$tbuild/CMakeCache.txt" ]; then
    say "configure $tbuild (gcc, ThreadSanitizer)"
    cmake -S core -B "$tbuild" -G "$generator" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ -DUMFA_ENABLE_CUDA=OFF -DUMFA_TEST_REDUCED=ON \
      -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
      -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread >/dev/null
  else
    cmake "$tbuild" -DUMFA_TEST_REDUCED=ON >/dev/null
  fi
  say "build $tbuild (libumfa, umfa_stress_threads, test_threads, test_context_races)"
  cmake --build "$tbuild" --parallel "$jobs" --target umfa_stress_threads test_threads test_context_races \
    >"$tbuild/build.log" 2>&1 ||
    { tail -30 "$tbuild/build.log" >&2; exit 1; }
  export UMFA_CUDA_LIB=/nonexistent/libumfa_cuda.so
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
  say "ThreadSanitizer: umfa_stress_threads, test_threads and test_context_races"
  local start=$SECONDS
  "$tbuild/bin/umfa_stress_threads" --threads 8 --calls "${UMFA_TSAN_CALLS:-1000}" | tail -1
  "$tbuild/bin/test_threads" | tail -1
  "$tbuild/bin/test_context_races" | tail -1
  echo "sanitize: ThreadSanitizer passed in $((SECONDS - start)) s: 0 data races reported"
}

case "$mode" in
  build) asan_build ;;
  asan) asan_tests ;;
  valgrind) valgrind_tests ;;
  tsan) tsan_tests ;;
  all) asan_tests; valgrind_tests; tsan_tests ;;
  *) echo "usage: $0 [asan|valgrind|tsan|build|all]" >&2; exit 2 ;;
esac
