#!/usr/bin/env bash
# Every .metal source of the Metal backend (and of the simulator's tests) compiles here as C++
# through sim/metal_stdlib with warnings as errors — the flags of METAL_SIM_KERNEL_FLAGS in
# ../CMakeLists.txt. Usage: check_sources.sh [clang++]
set -euo pipefail
CXX=${1:-clang++}
here=$(cd "$(dirname "$0")/.." && pwd)
n=0
for f in "$here"/kernels/*.metal "$here"/tests/kernels/*.metal; do
  [ -e "$f" ] || continue
  "$CXX" -std=c++17 -x c++ -fsyntax-only -Wall -Wextra -Werror -fno-exceptions -fno-rtti -Xclang -fallow-half-arguments-and-returns \
    -I"$here/sim" -I"$here/kernels" "$f"
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "no .metal sources found under $here" >&2; exit 1; }
echo "$n .metal source(s) compile with -Wall -Wextra -Werror"
