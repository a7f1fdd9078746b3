#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test every part of umfa:
# the native toolchain pieces, pnpm and the JS dependencies, and the Python test dependencies.
# Idempotent: each step checks first, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

# --- Debian packages -------------------------------------------------------------------------
APT_PACKAGES=(
  cmake ninja-build pkg-config g++        # the core
  clang libclang-dev libclang-rt-14-dev   # sanitizers, libFuzzer, bindgen's libclang
  bindgen                                 # umfa-sys bindings check
  gobjc libgnustep-base-dev               # Objective-C binding (GNUstep Foundation)
  valgrind                                # reliability suite (memcheck)
  chromium                                # docs site screenshots (docs/scripts/check-site.mjs)
  debootstrap qemu-user wine64            # release builds: Debian 11 build root, tests under
  g++-aarch64-linux-gnu g++-mingw-w64-x86-64  #   qemu-aarch64 and wine (scripts/native/ci.sh)
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  log "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- pnpm + JS dependencies ------------------------------------------------------------------
PNPM_VERSION=$(node -p "require('./package.json').packageManager.split('@')[1]")
if ! have pnpm || [ "$(pnpm --version)" != "$PNPM_VERSION" ]; then
  log "npm install -g pnpm@$PNPM_VERSION"
  npm install -g --silent "pnpm@$PNPM_VERSION" >/dev/null
fi
log "pnpm install"
pnpm install --frozen-lockfile --reporter=silent

# --- Python test dependencies ----------------------------------------------------------------
PY=${PYTHON:-python3}
need_py=()
"$PY" -c 'import numpy' 2>/dev/null || need_py+=(numpy)
"$PY" -c 'import pytest' 2>/dev/null || need_py+=(pytest)
"$PY" -c 'import build, wheel, hatchling' 2>/dev/null || need_py+=(build wheel hatchling)
"$PY" -c 'import torch' 2>/dev/null || need_py+=('torch==2.13.0+cpu')
if [ ${#need_py[@]} -gt 0 ]; then
  log "pip install ${need_py[*]}"
  "$PY" -m pip install -q "${need_py[@]}"
fi
log "done"
