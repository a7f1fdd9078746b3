# darwin-x64 hooks for scripts/build-native.sh and scripts/test-native.sh (sourced, not run).
# Builds on macOS; not built by our CI (no Apple SDK there): written to run on a Mac with Xcode's
# command line tools and CMake.
#
# The build: core/cmake/toolchains/darwin-x64.cmake (CMAKE_OSX_ARCHITECTURES=x86_64, deployment
# target 10.15). The install holds lib/libumfa.dylib -> libumfa.1.dylib (install name
# @rpath/libumfa.1.dylib), include/umfa.h and lib/pkgconfig/umfa.pc.
#
# platform_test BUILD_DIR runs that build's whole ctest suite natively (x86_64 on Apple silicon
# runs under Rosetta 2): every test program and the C conformance runner (conformance_c: every
# vector). test_parallel skips (77) without /proc; test_cuda and test_merge_cuda skip (no CUDA).
#   UMFA_TEST_JOBS   ctest -j (default: the number of CPUs)

platform_test() {
  local build_dir=${1:?usage: platform_test BUILD_DIR}
  if [ "$(uname -s)" != Darwin ]; then
    echo "darwin-x64: platform_test runs on macOS only" >&2
    return 1
  fi
  local jobs=${UMFA_TEST_JOBS:-$(sysctl -n hw.activecpu 2>/dev/null || echo 2)}
  ctest --test-dir "$build_dir" --output-on-failure -j "$jobs"
}
