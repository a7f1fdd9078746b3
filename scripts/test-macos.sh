#!/usr/bin/env bash
# What a maintainer with a Mac (Apple silicon) runs to check the Metal backend on real hardware.
#
# NOT YET RUN: this script was written without access to a Mac or Apple's SDK. Every step is what
# the Linux simulation cannot show (core/src/metal/README.md says what it does show); expect the
# first run to need fixes, and please report what it prints.
#
#   bash scripts/test-macos.sh            build, conformance, benchmarks
#   SKIP_BENCH=1 bash scripts/test-macos.sh   build and conformance only
#
# Steps:
#   1. libumfa (core/, CPU backend, tests) in build/macos/core, Release.
#   2. libumfa_metal.dylib (core/src/metal on Apple: the Objective-C host + backend table, linked
#      with Metal.framework) in build/macos/metal, copied next to libumfa so that libumfa finds it.
#   3. umfa_build_info (printed by the conformance runner) must report the Metal library and one device.
#   4. umfa_conformance --backend metal: every conformance vector on the Apple GPU (this is the
#      first time the MSL sources meet Apple's compiler: a rejection shows its log here).
#   5. umfa_conformance --backend auto must choose metal; --backend cpu as the baseline.
#   6. Unless SKIP_BENCH is set: `umfa bench --backend metal` (the CLI, needs Node and pnpm) and
#      bench/metal/vs_mps_mlx.py, which times umfa against PyTorch's MPS SDPA and MLX's
#      mx.fast.scaled_dot_product_attention when those are installed (pip install torch mlx).
#      Results go to build/macos/bench/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/macos"
jobs=${UMFA_JOBS:-$(sysctl -n hw.ncpu 2>/dev/null || echo 4)}
[ "$(uname -s)" = Darwin ] || { echo "test-macos.sh: this is for macOS (uname: $(uname -s))" >&2; exit 2; }
command -v cmake >/dev/null || { echo "test-macos.sh: cmake not found (brew install cmake ninja)" >&2; exit 2; }
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
step() { printf '\n=== %s\n' "$*"; }

step "1. libumfa (CPU backend, tests, conformance runner)"
cmake -S "$root/core" -B "$out/core" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DUMFA_ENABLE_CUDA=OFF
cmake --build "$out/core" -j "$jobs"
(cd "$out/core" && ctest --output-on-failure -j "$jobs")

step "2. libumfa_metal.dylib"
cmake -S "$root/core/src/metal" -B "$out/metal" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release
cmake --build "$out/metal" -j "$jobs"
cp "$out/metal/lib/libumfa_metal.dylib" "$out/core/lib/"
lib="$out/core/lib"
export UMFA_LIB_DIR="$lib"

step "3. build info"
conf="$out/core/bin/umfa_conformance"
info=$("$conf" --backend cpu --verbose --manifest "$root/conformance/manifest.json" \
  --filter no-case-has-this-name 2>&1 | sed -n 's/^build: //p' || true)
echo "$info"
case "$info" in
  *"metal: $lib/libumfa_metal.dylib, 1 device"*) ;;
  *) echo "test-macos.sh: libumfa did not load libumfa_metal.dylib or found no Metal device" >&2; exit 1 ;;
esac

step "4. conformance on the Apple GPU"
"$conf" --backend metal --manifest "$root/conformance/manifest.json"

step "5. AUTO picks Metal; the CPU baseline"
"$conf" --backend auto --manifest "$root/conformance/manifest.json" | head -1 | grep -q "backend metal" ||
  { echo "test-macos.sh: --backend auto did not choose metal" >&2; exit 1; }
"$conf" --backend cpu --manifest "$root/conformance/manifest.json" | tail -1

if [ -n "${SKIP_BENCH:-}" ]; then
  echo; echo "SKIP_BENCH set: benchmarks skipped"; exit 0
fi
mkdir -p "$out/bench"
step "6a. umfa bench --backend metal (CLI)"
if command -v pnpm >/dev/null; then
  (cd "$root" && pnpm install --frozen-lockfile && pnpm nx run-many -t build -p @umfa/api @umfa/koffi @umfa/cli --excludeTaskDependencies)
  node "$root/packages/cli/bin/umfa.js" info
  node "$root/packages/cli/bin/umfa.js" bench --backend metal --quick
  node "$root/packages/cli/bin/umfa.js" bench --backend metal --dtype f16,f32 --causal --direction both \
    --json > "$out/bench/umfa-bench-metal.json"
  echo "wrote $out/bench/umfa-bench-metal.json"
else
  echo "pnpm not found: CLI benchmark skipped"
fi
step "6b. umfa vs PyTorch MPS SDPA vs MLX"
PYTHONPATH="$root/bindings/python/src${PYTHONPATH:+:$PYTHONPATH}" \
  python3 "$root/bench/metal/vs_mps_mlx.py" --json "$out/bench/vs_mps_mlx.json"
echo "wrote $out/bench/vs_mps_mlx.json"
