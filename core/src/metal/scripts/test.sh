#!/usr/bin/env bash
# The Metal backend's Linux suite: configures and builds the simulator with clang in
# build/metal-sim (outside core/, so the core's build cache never sees it), then runs its ctest
# suite: the simulator's own tests, the negative-compile test, every .metal source with -Werror,
# and the attention kernels against the conformance vectors. Extra arguments go to ctest.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../../.." && pwd)
src="$root/core/src/metal"
build=${METAL_SIM_BUILD_DIR:-"$root/build/metal-sim"}
CXX=${METAL_SIM_CXX:-clang++}
command -v "$CXX" >/dev/null || { echo "metal-sim: $CXX not found (scripts/setup.sh installs clang)" >&2; exit 1; }
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$src" -B "$build" "${gen[@]}" -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
nice -n 10 cmake --build "$build" -j 2
cd "$build"
exec ctest --output-on-failure --timeout 600 --parallel 2 "$@"
