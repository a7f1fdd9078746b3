# Test hook of linux-x64, sourced by scripts/test-native.sh.
#
# platform_test BUILD_DIR [CTEST_ARG...]
#   1. the whole ctest suite of the release build (core tests, reliability tests and the
#      conformance runner over every vector: ctest `conformance_c`), natively on this machine;
#   2. when the build was made in the Debian 11 build root: the library's own checks, a C
#      consumer of the install and every conformance vector again, inside that root, i.e. on
#      glibc 2.31 itself (the oldest system the release promises).
platform_test() {
  local build_dir=$1; shift
  local repo; repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
  if ! grep -q 'add_test(conformance_c ' "$build_dir/conformance/CTestTestfile.cmake" 2>/dev/null; then
    echo "linux-x64: the build has no conformance_c test" >&2; return 1
  fi
  echo "== linux-x64: ctest (natively)"
  (cd "$build_dir" && ctest --output-on-failure --timeout 300 "$@") || return 1
  if grep -q '^buildroot=bullseye ' "$build_dir/.umfa-config" 2>/dev/null; then
    echo "== linux-x64: the install and every conformance vector on Debian 11 (glibc 2.31)"
    (cd "$build_dir" && bash "$repo/scripts/native/buildroot.sh" run bash -c '
      set -o pipefail; ldd --version | head -1
      ctest -V --timeout 300 -R "^(test_api|test_exports|test_install|conformance_c)\$" |
        grep -E "^ *[0-9]+/[0-9]+ Test|: [0-9]+ passed, [0-9]+ failed|FAIL|tests passed|tests failed"') || return 1
  fi
}
