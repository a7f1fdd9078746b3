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

# As Metal sees them: with __METAL_VERSION__ defined, the argument macros expand to MSL attributes
# and no trace of the simulator (metal_sim::, default arguments) remains in the kernels.
for f in "$here"/kernels/*.metal; do
  pre=$("$CXX" -E -P -x c++ -nostdinc -D__METAL_VERSION__=310 -I"$here/tests/metal_mode" -I"$here/kernels" "$f")
  if grep -q "metal_sim" <<<"$pre"; then echo "$(basename "$f"): simulator code left in the Metal preprocessing"; exit 1; fi
  for attr in '[[buffer(' '[[threadgroup(0)]]' '[[threadgroup_position_in_grid]]' '[[function_constant('; do
    grep -qF -- "$attr" <<<"$pre" || { echo "$(basename "$f"): no $attr after Metal preprocessing"; exit 1; }
  done
  if grep -qE 'UMFA_(BUFFER|THREADGROUP|THREAD_|SIMDGROUP|FUNCTION_CONSTANT)' <<<"$pre"; then
    echo "$(basename "$f"): an argument macro was not expanded"; exit 1
  fi
done
echo "kernels/*.metal preprocess for Metal to MSL attributes, with nothing of the simulator left"
