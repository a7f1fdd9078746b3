#!/usr/bin/env bash
# Tests the Rust bindings: the committed bindgen output is current, clippy is clean (when
# installed), unit + doc tests, the bad-input cases and every conformance vector, the example
# runs, and both crates package. Assumes the native core is installed in dist/native/<os>-<arch> (or
# UMFA_LIB_DIR / pkg-config point at it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$here"

export CARGO_TERM_COLOR=never
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
export UMFA_CONFORMANCE_DIR=${UMFA_CONFORMANCE_DIR:-$root/conformance}

step() { printf '\n--- rust: %s\n' "$*"; }

step "umfa-sys bindings are current with include/umfa.h"
if command -v "${BINDGEN:-bindgen}" >/dev/null 2>&1; then
  bash umfa-sys/regen.sh --check
else
  echo "bindgen is not installed (apt-get install bindgen libclang-dev); cannot check" >&2
  exit 1
fi

if cargo clippy --version >/dev/null 2>&1; then
  step "cargo clippy (warnings are errors)"
  cargo clippy --offline --workspace --all-targets -- -D warnings
else
  step "cargo clippy: not installed, skipped"
fi

step "cargo test (unit, bad input, conformance vectors, doc examples)"
cargo test --offline --workspace -- --nocapture --test-threads=1 2>&1 \
  | grep -vE '^(test .* \.\.\. ok|running [0-9]+ tests?|)$'

step "cargo run --example attention"
cargo run --offline -q --example attention

step "cargo package (both crates, verified)"
# Offline: the packed umfa is verified against the packed umfa-sys through Cargo's temporary
# local registry, so no crates.io access is needed. --allow-dirty only skips the VCS-clean check.
# The unpacked crates live outside this repository, so (like any crates.io user) they find the
# library through pkg-config here, unless UMFA_LIB_DIR is already set.
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) platform=linux-x64 ;;
  Linux-aarch64) platform=linux-arm64 ;;
  Darwin-arm64) platform=darwin-arm64 ;;
  Darwin-x86_64) platform=darwin-x64 ;;
  *) platform=unknown ;;
esac
# A throwaway CARGO_HOME: Cargo unpacks the packed umfa-sys into $CARGO_HOME/registry/src and
# never unpacks a name-version it has unpacked before, so with the shared one a umfa-sys 0.1.0
# packed by an earlier run (an older umfa.h) would be verified instead of this one.
pkg_home=$(mktemp -d)
trap 'rm -rf "$pkg_home"' EXIT
for f in config.toml config; do
  [ -f "${CARGO_HOME:-$HOME/.cargo}/$f" ] && cp "${CARGO_HOME:-$HOME/.cargo}/$f" "$pkg_home/"
done
PKG_CONFIG_PATH="$root/dist/native/$platform/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" \
  CARGO_HOME="$pkg_home" cargo package --offline --allow-dirty -p umfa-sys -p umfa
echo "rust: ok"
