#!/usr/bin/env bash
# Runs the core's ctest suite (tests of core/tests and, when present, the conformance runner)
# in core/build. Build first with core/scripts/build.sh. Extra arguments go to ctest
# (e.g. -R validation).
set -euo pipefail
cd "$(dirname "$0")/../build"
exec ctest --output-on-failure --timeout 300 "$@"
