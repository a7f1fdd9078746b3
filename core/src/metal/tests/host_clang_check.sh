#!/usr/bin/env bash
# The Objective-C host and the stand-in Metal API through clang -fno-objc-arc (the front end a
# Mac builds the host with), against the GNUstep headers, warnings as errors. gcc builds and runs
# them in metal_host_conformance; this catches what Apple's front end would reject.
# Usage: host_clang_check.sh [clang]
set -euo pipefail
CLANG=${1:-clang}
here=$(cd "$(dirname "$0")/.." && pwd)
command -v gnustep-config >/dev/null || { echo "gnustep-config not found (scripts/setup.sh installs libgnustep-base-dev)"; exit 1; }
flags=(-fsyntax-only -x objective-c -fno-objc-arc -fobjc-exceptions -fobjc-runtime=gcc -DGNUSTEP
       -DGNUSTEP_BASE_LIBRARY=1 -DGNU_RUNTIME=1
       -isystem "$(gnustep-config --variable=GNUSTEP_SYSTEM_HEADERS)" -isystem /usr/include/GNUstep
       -idirafter "$(gcc -print-file-name=include)"
       -Wall -Wextra -Wno-unused-parameter -Werror
       -I"$here/host/standin" -I"$here/host" -I"$here/kernels" -I"$here/sim")
for f in "$here/host/UMFAMetalHost.m" "$here/host/standin/StandinMetal.m"; do
  "$CLANG" "${flags[@]}" "$f"
  echo "ok $(basename "$f")"
done
