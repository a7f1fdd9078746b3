#!/usr/bin/env bash
# The TypeScript bindings' fuzzer as CI runs it (scripts/reliability.sh, step fuzz-ts): replays the
# committed corpus and regression inputs through both bindings, then fuzzes each binding for
# UMFA_TS_FUZZ_SECONDS seconds (default 30). Findings are written to fuzz/findings/ (or
# UMFA_TS_FUZZ_FINDINGS) with the command that replays them; any finding fails the run.
# Needs the TypeScript packages built (pnpm nx run-many -t build) and the core in dist/native.
set -uo pipefail
cd "$(dirname "$0")"
seconds=${UMFA_TS_FUZZ_SECONDS:-30}
status=0
node fuzz.mjs replay --binding both || status=1
for binding in koffi napi; do
  node fuzz.mjs fuzz --binding "$binding" --seconds "$seconds" || status=1
done
exit $status
