#!/usr/bin/env bash
# Builds and tests the Objective-C wrapper: the example runs, then build/test_umfa runs the bad-
# input cases and every conformance vector (minus conformance-skip.txt) and prints
# "N passed, N failed, N skipped". Linux needs gobjc and libgnustep-base-dev; macOS uses Apple
# clang and Foundation. Assumes the native core is installed in dist/native/<os>-<arch> (or
# UMFA_PREFIX points at an install).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

if [ "$(uname -s)" != Darwin ] && ! command -v gnustep-config >/dev/null 2>&1; then
  echo "gnustep-config not found (Debian: apt-get install gobjc libgnustep-base-dev)" >&2
  exit 1
fi

make -s clean
make -s -j2 all
echo "--- objc: example"
./build/example
echo "--- objc: tests"
make -s test
