#!/usr/bin/env bash
# Builds libumfa for one platform, with its ctest programs and the conformance runner, in
# build/native/<platform>, and installs it into dist/native/<platform>/ (lib/, include/umfa.h,
# lib/pkgconfig/umfa.pc). This install is what the release packaging consumes.
#
#   bash scripts/build-native.sh <platform>     linux-x64 | linux-arm64 | win32-x64 |
#                                               darwin-arm64 | darwin-x64
#
# The toolchain file core/cmake/toolchains/<platform>.cmake is used when it exists; a platform
# other than the machine's own needs one (no silent fallback to the host compiler).
# Linux builds run inside the Debian 11 build root (scripts/native/buildroot.sh, created on
# first use), so the library needs at most GLIBC 2.31; libstdc++ and libgcc are linked
# statically and nothing but umfa_*/mfa_* is exported. Test with scripts/test-native.sh.
#
# Environment:
#   UMFA_TOOLCHAIN_FILE  toolchain file to use instead of core/cmake/toolchains/<platform>.cmake
#   UMFA_BUILDROOT       bullseye (default for linux-*) | none (the host's compilers: a
#                        development build, not bound to glibc 2.31)
#   UMFA_BUILD_TYPE      CMake build type (default Release)
#   UMFA_JOBS            parallel build jobs (default 2)
#   UMFA_CMAKE_ARGS      extra configure arguments
#   UMFA_RELEASE_CUDA    1: also build the CUDA backend (linux-x64, in the build root, with the
#                        CUDA toolkit of UMFA_CUDA_HOME, default /usr/local/cuda); default 0
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)

usage() { echo "usage: bash scripts/build-native.sh linux-x64|linux-arm64|win32-x64|darwin-arm64|darwin-x64" >&2; exit 2; }
[ $# -eq 1 ] || usage
platform=$1
case "$platform" in
  linux-x64 | linux-arm64 | win32-x64 | darwin-arm64 | darwin-x64) ;;
  *) usage ;;
esac
log() { printf '\033[1m[build-native %s]\033[0m %s\n' "$platform" "$*" >&2; }

# The machine's own platform, as Node spells it.
case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; MINGW* | MSYS* | CYGWIN*) os=win32 ;; *) os=unknown ;; esac
case "$(uname -m)" in x86_64 | amd64) arch=x64 ;; aarch64 | arm64) arch=arm64 ;; *) arch=unknown ;; esac
host_platform=$os-$arch

toolchain=${UMFA_TOOLCHAIN_FILE:-$repo/core/cmake/toolchains/$platform.cmake}
if [ -f "$toolchain" ]; then
  toolchain=$(cd "$(dirname "$toolchain")" && pwd -P)/$(basename "$toolchain")
elif [ -n "${UMFA_TOOLCHAIN_FILE:-}" ]; then
  log "UMFA_TOOLCHAIN_FILE=$UMFA_TOOLCHAIN_FILE does not exist"; exit 1
elif [ "$platform" != "$host_platform" ]; then
  log "no toolchain file core/cmake/toolchains/$platform.cmake: cannot cross-build $platform on $host_platform"
  exit 1
else
  toolchain=""
fi

buildroot=none
case "$platform" in linux-*) buildroot=${UMFA_BUILDROOT:-bullseye} ;; esac
case "$buildroot" in
  bullseye)
    if [ "$host_platform" != linux-x64 ]; then
      log "the Debian 11 build root is made for an x86_64 Linux machine; set UMFA_BUILDROOT=none to build with this machine's compilers"
      exit 1
    fi
    ;;
  none) ;;
  *) log "UMFA_BUILDROOT must be bullseye or none, not '$buildroot'"; exit 1 ;;
esac

build_dir=$repo/build/native/$platform
prefix=$repo/dist/native/$platform
build_type=${UMFA_BUILD_TYPE:-Release}
jobs=${UMFA_JOBS:-2}

args=(-S "$repo/core" -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type"
  -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib)
[ -n "$toolchain" ] && args+=(-DCMAKE_TOOLCHAIN_FILE="$toolchain")
case "$platform" in
  linux-*)
    # The C++ runtime inside the library, hidden: libumfa needs only glibc (and exports only
    # what core/cmake/umfa.map lists; --exclude-libs keeps the archives' symbols local even
    # where a version script would not). Test programs link the same way, so that they run
    # wherever the library does.
    static="-static-libstdc++ -static-libgcc"
    args+=(-DCMAKE_SHARED_LINKER_FLAGS="$static -Wl,--exclude-libs,ALL"
      -DCMAKE_MODULE_LINKER_FLAGS="$static -Wl,--exclude-libs,ALL"
      -DCMAKE_EXE_LINKER_FLAGS="$static")
    ;;
esac
if [ "$buildroot" = bullseye ]; then
  # The CUDA backend (libumfa_cuda) only with UMFA_RELEASE_CUDA=1, for linux-x64: this machine's
  # CUDA toolkit (its compilers need only glibc 2.7) is bind-mounted read-only into the root and
  # drives the root's GCC 10; the CUDA runtime is linked statically. It adds the time of a CUDA
  # build (see docs/building.md), so it is off by default.
  if [ "${UMFA_RELEASE_CUDA:-0}" = 1 ]; then
    [ "$platform" = linux-x64 ] || { log "UMFA_RELEASE_CUDA=1: the CUDA backend is built for linux-x64 only"; exit 1; }
    cuda_home=$(readlink -f "${UMFA_CUDA_HOME:-/usr/local/cuda}")
    [ -x "$cuda_home/bin/nvcc" ] || { log "UMFA_RELEASE_CUDA=1: no nvcc in $cuda_home/bin (set UMFA_CUDA_HOME)"; exit 1; }
    export UMFA_BUILDROOT_BIND="${UMFA_BUILDROOT_BIND:+$UMFA_BUILDROOT_BIND:}$cuda_home"
    args+=(-DUMFA_ENABLE_CUDA=ON -DCMAKE_CUDA_COMPILER="$cuda_home/bin/nvcc")
  else
    args+=(-DUMFA_ENABLE_CUDA=OFF)
  fi
fi
# shellcheck disable=SC2206
args+=(${UMFA_CMAKE_ARGS:-})

# A toolchain file outside the repository is made visible inside the build root.
if [ "$buildroot" = bullseye ] && [ -n "$toolchain" ]; then
  case "$toolchain" in
    "$repo"/*) ;;
    *) export UMFA_BUILDROOT_BIND="${UMFA_BUILDROOT_BIND:+$UMFA_BUILDROOT_BIND:}$(dirname "$toolchain")" ;;
  esac
fi

run() {
  if [ "$buildroot" = bullseye ]; then
    bash "$repo/scripts/native/buildroot.sh" run "$@"
  else
    "$@"
  fi
}

# A build directory configured another way (other toolchain, build root or arguments) is
# started afresh: CMake cannot switch compilers in place.
if [ "$buildroot" = bullseye ]; then
  bash "$repo/scripts/native/buildroot.sh" create
  generator=Ninja
elif command -v ninja >/dev/null 2>&1; then
  generator=Ninja
else
  generator="Unix Makefiles"
fi
args+=(-G "$generator")
config="buildroot=$buildroot toolchain=$toolchain args=${args[*]}"
if [ ! -f "$build_dir/CMakeCache.txt" ] || [ "$(cat "$build_dir/.umfa-config" 2>/dev/null)" != "$config" ]; then
  rm -rf "$build_dir"
  mkdir -p "$build_dir"
  log "configure (build root: $buildroot; toolchain: ${toolchain:-none})"
  run cmake "${args[@]}"
  printf '%s' "$config" >"$build_dir/.umfa-config"
fi
log "build"
run cmake --build "$build_dir" --parallel "$jobs"
rm -rf "$prefix"
run cmake --install "$build_dir" >/dev/null
if [ -f "$prefix/bin/umfa.dll" ] && [ ! -f "$prefix/lib/umfa.dll" ]; then
  cp "$prefix/bin/umfa.dll" "$prefix/lib/umfa.dll"
fi
log "installed into ${prefix#"$repo"/}: $(cd "$prefix" && find . -type f -o -type l | sed 's|^\./||' | sort | tr '\n' ' ')"
