#!/usr/bin/env bash
# Builds and tests the Objective-C wrapper: the example runs, then build/test_umfa runs the bad-
# input cases and every conformance vector (minus conformance-skip.txt) and prints
# "N passed, N failed, N skipped"; the tests run again under ThreadSanitizer (one context,
# tensors and options shared by several threads), and clang's front end checks the sources the
# way Apple's compiler reads them. Linux needs gobjc and libgnustep-base-dev; macOS uses Apple
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
echo "--- objc: threads under ThreadSanitizer"
make -s tsan | tail -1
if command -v "${CLANG:-clang}" >/dev/null 2>&1; then
  echo "--- objc: clang front end (-fno-objc-arc, as on macOS), warnings as errors"
  make -s clang-check && echo "clang: ok"
else
  echo "--- objc: clang not installed; portability check skipped"
fi
