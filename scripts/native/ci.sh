#!/usr/bin/env bash
# The per-platform release suite (Nx project @umfa/platforms, target `test`): creates the
# Debian 11 build root, builds linux-x64, linux-arm64 and win32-x64 with scripts/build-native.sh,
# checks the glibc bound of the Linux libraries, then runs each platform's tests with
# scripts/test-native.sh (natively, under qemu-aarch64, under wine). Prints every step's time.
#
# Every step runs even when an earlier one failed (a platform whose build failed has its test
# step reported as failed, never skipped); the script exits non-zero if any step failed. A
# missing toolchain file (core/cmake/toolchains/<platform>.cmake, for the cross builds) or hook
# (scripts/native/<platform>.sh) fails that platform's steps.
#
#   bash scripts/native/ci.sh
#   UMFA_PLATFORMS="linux-x64 linux-arm64" bash scripts/native/ci.sh   (a subset, e.g. locally)
set -uo pipefail
cd "$(dirname "$0")/../.."

platforms=(${UMFA_PLATFORMS:-linux-x64 linux-arm64 win32-x64})
steps=(); results=(); times=(); failed=0
step() {
  local name=$1; shift
  printf '\n\033[1m=== platforms: %s\033[0m  (%s)\n' "$name" "$*"
  local start=$SECONDS rc=0
  "$@" || rc=$?
  local t=$((SECONDS - start))
  steps+=("$name"); times+=("$t")
  if [ "$rc" = 0 ]; then results+=(ok); else results+=("FAILED (exit $rc)"); failed=$((failed + 1)); fi
  printf -- '--- %s: %s (%ds)\n' "$name" "${results[-1]}" "$t"
  return "$rc"
}
not_built() { echo "the build of $1 failed: its tests cannot run"; return 1; }

total=$SECONDS
step "build root (Debian 11)" bash scripts/native/buildroot.sh create
declare -A built=()
for p in "${platforms[@]}"; do
  step "build $p" bash scripts/build-native.sh "$p" && built[$p]=1
done
linux=()
for p in "${platforms[@]}"; do case "$p" in linux-*) linux+=("dist/native/$p/lib") ;; esac; done
if [ ${#linux[@]} -gt 0 ]; then
  step "glibc bound" bash scripts/native/check-glibc.sh "${linux[@]}"
fi
for p in "${platforms[@]}"; do
  if [ -n "${built[$p]:-}" ]; then
    step "test $p" bash scripts/test-native.sh "$p"
  else
    step "test $p" not_built "$p"
  fi
done

printf '\n=== platforms: summary (%ds in all)\n' $((SECONDS - total))
for i in "${!steps[@]}"; do printf '  %-24s %5ds  %s\n' "${steps[$i]}" "${times[$i]}" "${results[$i]}"; done
[ "$failed" = 0 ]
