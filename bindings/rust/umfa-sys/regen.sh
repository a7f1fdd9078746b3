#!/usr/bin/env bash
# Regenerates src/bindings.rs from the public header include/umfa.h with the bindgen CLI.
#
#   bash regen.sh           rewrite src/bindings.rs
#   bash regen.sh --check   regenerate into a temporary file and fail (exit 1, with a diff) when
#                           the committed src/bindings.rs differs from it
#
# The committed file is produced by Debian 12's bindgen (0.60.x, `apt-get install bindgen
# libclang-dev`) with rustfmt on PATH; other bindgen or rustfmt versions may format differently.
# UMFA_HEADER overrides the header path (default: the repository's include/umfa.h).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
header=${UMFA_HEADER:-$here/../../../include/umfa.h}
target=$here/src/bindings.rs

if ! command -v "${BINDGEN:-bindgen}" >/dev/null 2>&1; then
  echo "regen.sh: bindgen not found (Debian: apt-get install bindgen libclang-dev)" >&2
  exit 2
fi
if [ ! -f "$header" ]; then
  echo "regen.sh: header not found: $header" >&2
  exit 2
fi

generate() {
  # Only the umfa_/mfa_ symbols; size_t is usize (all supported targets have size_t == uintptr_t).
  "${BINDGEN:-bindgen}" "$header" \
    --allowlist-function '(umfa|mfa)_.*' \
    --allowlist-type '(umfa|mfa)_.*' \
    --allowlist-var '(UMFA|MFA)_.*' \
    --size_t-is-usize \
    --no-prepend-enum-name \
    -- -std=c99
}

if [ "${1:-}" = "--check" ]; then
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  generate >"$tmp"
  if ! diff -u "$target" "$tmp"; then
    echo "regen.sh --check: src/bindings.rs is out of date with $header; run bindings/rust/umfa-sys/regen.sh" >&2
    exit 1
  fi
  echo "umfa-sys: src/bindings.rs is current with include/umfa.h"
else
  generate >"$target.tmp"
  mv "$target.tmp" "$target"
  echo "wrote $target"
fi
