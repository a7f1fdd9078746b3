#!/usr/bin/env bash
# Runs one platform's core tests and every conformance vector against its build in
# build/native/<platform> (made by scripts/build-native.sh): natively, under qemu or under wine,
# as that platform's hook decides.
#
#   bash scripts/test-native.sh <platform> [CTEST_ARG...]
#
# The hook is scripts/native/<platform>.sh, which defines `platform_test <build_dir> [ARG...]`.
# A missing hook or build is an error, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)

[ $# -ge 1 ] || { echo "usage: bash scripts/test-native.sh <platform> [CTEST_ARG...]" >&2; exit 2; }
platform=$1; shift
case "$platform" in
  linux-x64 | linux-arm64 | win32-x64 | darwin-arm64 | darwin-x64) ;;
  *) echo "test-native: unknown platform '$platform'" >&2; exit 2 ;;
esac
hook=$repo/scripts/native/$platform.sh
build_dir=$repo/build/native/$platform
if [ ! -f "$hook" ]; then
  echo "test-native: no hook scripts/native/$platform.sh (it defines platform_test)" >&2; exit 1
fi
if [ ! -f "$build_dir/CTestTestfile.cmake" ]; then
  echo "test-native: no build in ${build_dir#"$repo"/}: run bash scripts/build-native.sh $platform" >&2; exit 1
fi
# shellcheck source=/dev/null
source "$hook"
if ! declare -F platform_test >/dev/null; then
  echo "test-native: scripts/native/$platform.sh defines no platform_test function" >&2; exit 1
fi
platform_test "$build_dir" "$@"
