#!/usr/bin/env bash
# The whole umfa test suite: builds the core once, then runs every project's tests through Nx
# (core + conformance runner, TypeScript bindings, CLI, Python, Rust, Objective-C) plus the
# repository checks. Runs every suite even when one fails, then prints a summary and exits
# non-zero if any failed. Assumes `bash scripts/setup.sh` has run (the README's first command
# and .ci/run do that).
set -uo pipefail
cd "$(dirname "$0")/.."
export NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false FORCE_COLOR=0
# Pin the Python interpreter that setup.sh provisioned (version managers' shims can resolve
# differently inside task runners): every suite sees it first on PATH and as $PYTHON.
PYTHON=$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')
export PYTHON PATH="$(dirname "$PYTHON"):$PATH"

passed=0; failed=0; failed_names=()
run_suite() {
  local name=$1; shift
  printf '\n\033[1m=== %s\033[0m  (%s)\n' "$name" "$*"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1)); printf -- '--- %s: ok (%ds)\n' "$name" $((SECONDS - start))
  else
    failed=$((failed + 1)); failed_names+=("$name"); printf -- '--- %s: FAILED (%ds)\n' "$name" $((SECONDS - start))
  fi
}

run_suite "build (core + packages)" pnpm nx run-many -t build --outputStyle=stream
for project in $(node scripts/test-projects.mjs); do
  run_suite "test $project" pnpm nx run "$project:test" --outputStyle=stream --excludeTaskDependencies
done

printf '\n=== summary\n'
[ $failed -gt 0 ] && printf 'failed suites: %s\n' "${failed_names[*]}"
printf 'suites: %d passed, %d failed\n' "$passed" "$failed"
[ $failed -eq 0 ]
