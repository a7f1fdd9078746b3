# win32-x64 hooks for scripts/build-native.sh and scripts/test-native.sh (sourced, not run).
#
# The build: core/cmake/toolchains/win32-x64.cmake (mingw-w64 *-posix compilers; Debian packages
# g++-mingw-w64-x86-64 and wine64). The install holds bin/umfa.dll, the same file in lib/umfa.dll,
# the import library lib/libumfa.dll.a, include/umfa.h and lib/pkgconfig/umfa.pc.
#
# platform_test BUILD_DIR runs that build's whole ctest suite under wine: every test program and
# the C conformance runner (conformance_c: every vector of conformance/manifest.json). The
# toolchain file sets CMAKE_CROSSCOMPILING_EMULATOR to wine, so ctest starts each .exe through it.
# test_fork is listed but disabled (Windows has no fork()); test_cuda and test_merge_cuda skip
# (no CUDA backend in this build). Environment:
#   WINEPREFIX       the wine prefix to use (default: a fresh temporary one, removed afterwards)
#   UMFA_TEST_JOBS   ctest -j (default 2)

# The wine loader and server: Debian's wine64 package installs them under /usr/lib/wine (the
# `wine` package adds /usr/bin/wine).
win32_x64_find_wine() {
  local w
  for w in "${UMFA_WINE:-}" "$(command -v wine64 || true)" /usr/lib/wine/wine64 "$(command -v wine || true)"; do
    if [ -n "$w" ] && [ -x "$w" ]; then echo "$w"; return 0; fi
  done
  return 1
}

win32_x64_seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

platform_test() {
  local build_dir=${1:?usage: platform_test BUILD_DIR}
  local wine server own_prefix="" rc=0 t0 t1
  if ! wine=$(win32_x64_find_wine); then
    echo "win32-x64: wine not found (apt-get install wine64)" >&2
    return 1
  fi
  server="$(dirname "$wine")/wineserver"
  [ -x "$server" ] || server="$(dirname "$wine")/wineserver64"
  [ -x "$server" ] || server=$(command -v wineserver || true)
  if [ -z "${WINEPREFIX:-}" ]; then
    own_prefix=$(mktemp -d "${TMPDIR:-/tmp}/umfa-wine.XXXXXX")
    export WINEPREFIX=$own_prefix
  fi
  export WINEDEBUG=${WINEDEBUG:--all}
  echo "win32-x64: wine $("$wine" --version 2>/dev/null || echo '?') ($wine), WINEPREFIX=$WINEPREFIX"

  # The first start creates the prefix (slow); a persistent server then saves every test the
  # server's start-up.
  t0=$(date +%s.%N)
  "$wine" wineboot --init >/dev/null 2>&1 || true
  [ -n "$server" ] && "$server" -p >/dev/null 2>&1 || true
  t1=$(date +%s.%N)
  echo "win32-x64: wine prefix ready in $(win32_x64_seconds "$t0" "$t1") s"

  t0=$(date +%s.%N)
  ctest --test-dir "$build_dir" --output-on-failure -j "${UMFA_TEST_JOBS:-2}" || rc=$?
  t1=$(date +%s.%N)
  echo "win32-x64: ctest under wine took $(win32_x64_seconds "$t0" "$t1") s (exit $rc)"

  [ -n "$server" ] && "$server" -k >/dev/null 2>&1 || true
  if [ -n "$own_prefix" ]; then
    # The server may still be writing the registry for a moment after -k.
    sleep 1
    rm -rf "$own_prefix"
    unset WINEPREFIX
  fi
  return "$rc"
}
