#!/usr/bin/env bash
# Configures and builds libumfa in core/build (Release) and installs it into
# dist/native/<os>-<arch>/ (lib/, include/umfa.h, lib/pkgconfig/umfa.pc).
# Idempotent: reconfigures only when needed, and an up-to-date build takes about a second.
#
# Environment: UMFA_BUILD_TYPE (default Release), UMFA_JOBS (default 2),
#              UMFA_CMAKE_ARGS (extra configure arguments, e.g. -DUMFA_ENABLE_CUDA=OFF).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  MINGW* | MSYS* | CYGWIN*) os=win32 ;;
  *) os=$(uname -s | tr '[:upper:]' '[:lower:]') ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  armv7l) arch=arm ;;
  i386 | i686) arch=ia32 ;;
  *) arch=$(uname -m) ;;
esac

build_dir="$root/core/build"
prefix="$root/dist/native/$os-$arch"
build_type=${UMFA_BUILD_TYPE:-Release}
jobs=${UMFA_JOBS:-2}

generator="Unix Makefiles"
if command -v ninja >/dev/null 2>&1; then generator=Ninja; fi

# Reuse an existing configuration unless its generator, build type or prefix differ.
cache="$build_dir/CMakeCache.txt"
configure=1
if [ -f "$cache" ] &&
  grep -qx "CMAKE_GENERATOR:INTERNAL=$generator" "$cache" &&
  grep -qx "CMAKE_BUILD_TYPE:STRING=$build_type" "$cache" &&
  grep -qx "CMAKE_INSTALL_PREFIX:PATH=$prefix" "$cache" &&
  [ -z "${UMFA_CMAKE_ARGS:-}" ]; then
  configure=0
fi
if [ "$configure" = 1 ]; then
  if [ -f "$cache" ] && ! grep -qx "CMAKE_GENERATOR:INTERNAL=$generator" "$cache"; then
    rm -rf "$build_dir"
  fi
  # shellcheck disable=SC2086
  cmake -S "$root/core" -B "$build_dir" -G "$generator" \
    -DCMAKE_BUILD_TYPE="$build_type" -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib \
    ${UMFA_CMAKE_ARGS:-}
fi
cmake --build "$build_dir" --parallel "$jobs"
cmake --install "$build_dir" >/dev/null
echo "umfa: installed into ${prefix#"$root"/}"
