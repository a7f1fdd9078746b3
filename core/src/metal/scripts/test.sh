#!/usr/bin/env bash
# The Metal backend's Linux suite: configures and builds the simulator with clang in
# build/metal-sim (outside core/, so the core's build cache never sees it), then runs its ctest
# suite: the simulator's own tests, the negative-compile test, every .metal source with -Werror,
# the attention kernels against the conformance vectors (directly and through the Objective-C
# host), and through libumfa and the simulated backend library (libumfa_metal_sim.so, opted into
# with UMFA_METAL_LIB): `umfa_conformance --backend metal` (every vector), the core's head-dim
# sweep (test_head_dims) and a check of selection and buffers. Those need a libumfa build holding
# bin/umfa_conformance and bin/test_head_dims: $UMFA_CORE_BUILD, else core/build (the core's own
# build, made by `pnpm nx run @umfa/core:build`), else one made here in build/metal-core (only
# libumfa, the runner and that test). Extra arguments go to ctest.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../../.." && pwd)
src="$root/core/src/metal"
build=${METAL_SIM_BUILD_DIR:-"$root/build/metal-sim"}
CXX=${METAL_SIM_CXX:-clang++}
command -v "$CXX" >/dev/null || { echo "metal-sim: $CXX not found (scripts/setup.sh installs clang)" >&2; exit 1; }
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)

core=${UMFA_CORE_BUILD:-}
if [ -z "$core" ]; then
  if [ -x "$root/core/build/bin/umfa_conformance" ]; then
    core="$root/core/build"
  else
    core="$root/build/metal-core"
    if [ ! -f "$core/CMakeCache.txt" ]; then
      cmake -S "$root/core" -B "$core" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DUMFA_ENABLE_CUDA=OFF >/dev/null
    fi
  fi
fi
# Incremental: a no-op when that build is current.
nice -n 10 cmake --build "$core" -j 2 --target umfa_conformance test_head_dims

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$src" -B "$build" "${gen[@]}" -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake -S "$src" -B "$build" -DUMFA_CORE_BUILD="$core" >/dev/null
nice -n 10 cmake --build "$build" -j 2
cd "$build"
exec ctest --output-on-failure --timeout 600 --parallel 2 "$@"
