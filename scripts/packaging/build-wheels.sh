#!/usr/bin/env bash
# Builds the release Python distributions into dist/python/: the sdist (Python sources plus the
# core's sources, builds libumfa with CMake on install) and one wheel per platform whose
# dist/native/<platform>/ exists (bash scripts/build-native.sh <platform> produces it).
#
#   bash scripts/packaging/build-wheels.sh [platform ...]   (default: every platform built here)
#
# Release wheels must earn their manylinux tag (UMFA_WHEEL_REQUIRE_MANYLINUX=1): a Linux library
# that needs libstdc++ or a GLIBC above what the build root provides fails here instead of being
# shipped as linux_<arch>. Set UMFA_WHEEL_REQUIRE_MANYLINUX=0 for development wheels.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
out=dist/python
mkdir -p "$out"
isolation=()
if "$PY" -c 'import hatchling' 2>/dev/null; then isolation=(--no-isolation); fi

platforms=("$@")
if [ ${#platforms[@]} -eq 0 ]; then
  for p in linux-x64 linux-arm64 win32-x64 darwin-arm64 darwin-x64; do
    [ -d "dist/native/$p" ] && platforms+=("$p")
  done
fi

"$PY" -m build --sdist "${isolation[@]}" -o "$out" bindings/python
for p in "${platforms[@]}"; do
  UMFA_WHEEL_PLATFORM=$p UMFA_WHEEL_REQUIRE_MANYLINUX=${UMFA_WHEEL_REQUIRE_MANYLINUX:-1} \
    "$PY" -m build --wheel "${isolation[@]}" -o "$out" bindings/python
done
ls -l "$out"
