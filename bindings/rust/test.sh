#!/usr/bin/env bash
# Tests the Rust bindings:
#   - the committed bindgen output is current; clippy is clean (when installed);
#   - the default (`bundled`) build, which compiles the repository's core into the binaries:
#     unit + doc tests, the bad-input cases, every conformance vector, the example; its static
#     library defines exactly the C symbols the CMake-built libumfa exports; no binary needs
#     libumfa at run time;
#   - the `system` build against dist/native/<os>-<arch> (conformance vectors and the example,
#     linked to that libumfa);
#   - `cargo package` of both crates, verified, with no prebuilt library visible;
#   - the packed-artifact install test: a new binary crate in a temporary folder outside the
#     repository depends on the packed crates as a crates.io user would, builds, and checks an
#     attention result against a float64 reference, with no LD_LIBRARY_PATH and no libumfa in
#     its `ldd`.
# Needs the native core installed in dist/native/<os>-<arch> (bash core/scripts/build.sh) for
# the clippy, symbol and system-mode steps.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$here"

export CARGO_TERM_COLOR=never
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
export UMFA_CONFORMANCE_DIR=${UMFA_CONFORMANCE_DIR:-$root/conformance}
# The default build must not depend on anything installed: these would switch it to `system`.
unset UMFA_SYSTEM UMFA_LIB_DIR

step_start=$SECONDS
step() {
  if [ -n "${step_name:-}" ]; then
    printf -- '--- rust: %s took %ss\n' "$step_name" $((SECONDS - step_start))
  fi
  step_name=$*
  step_start=$SECONDS
  printf '\n--- rust: %s\n' "$*"
}
fail() {
  echo "rust: FAIL: $*" >&2
  exit 1
}

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) platform=linux-x64 ;;
  Linux-aarch64) platform=linux-arm64 ;;
  Darwin-arm64) platform=darwin-arm64 ;;
  Darwin-x86_64) platform=darwin-x64 ;;
  *) platform=unknown ;;
esac
dist_lib="$root/dist/native/$platform/lib"
[ -e "$dist_lib/libumfa.so" ] || [ -e "$dist_lib/libumfa.dylib" ] ||
  fail "no libumfa in ${dist_lib#"$root"/}; run bash core/scripts/build.sh first"

step "umfa-sys bindings are current with include/umfa.h"
if command -v "${BINDGEN:-bindgen}" >/dev/null 2>&1; then
  bash umfa-sys/regen.sh --check
else
  echo "bindgen is not installed (apt-get install bindgen libclang-dev); cannot check" >&2
  exit 1
fi

if cargo clippy --version >/dev/null 2>&1; then
  # Linked against dist/native (system mode): clippy runs the build script in a build of its
  # own, and with the default features that would compile the core once more just to lint.
  step "cargo clippy (warnings are errors; build script and all targets)"
  UMFA_LIB_DIR="$dist_lib" cargo clippy --offline --workspace --all-targets -- -D warnings
else
  step "cargo clippy: not installed, skipped"
fi

step "bundled: cargo test (compiles the core; unit, bad input, conformance vectors, doc examples)"
cargo test --offline --workspace -- --nocapture --test-threads=1 2>&1 |
  grep -vE '^(test .* \.\.\. ok|running [0-9]+ tests?|)$'

step "bundled: the example runs, and no binary needs libumfa"
cargo run --offline -q --example attention
example="$here/target/debug/examples/attention"
if command -v ldd >/dev/null 2>&1; then
  if ldd "$example" | grep -q libumfa; then
    ldd "$example"
    fail "the bundled example links libumfa dynamically"
  fi
  echo "ldd target/debug/examples/attention: no libumfa"
fi

step "bundled: the static core defines the C symbols that the CMake-built libumfa exports"
out_dir=$(cargo build --offline -q -p umfa-sys --message-format=json |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "build-script-executed" and m["package_id"].find("umfa-sys") >= 0:
        print(m["out_dir"])')
archive="$out_dir/lib/libumfa_bundled.a"
[ -f "$archive" ] || fail "no $archive"
# Only on ELF platforms (nm -D reads the shared library's dynamic symbol table).
if [ -e "$dist_lib/libumfa.so" ]; then
  # Defined global functions of default visibility (hidden ones would not be exported).
  readelf -sW "$archive" |
    awk '$4 == "FUNC" && $5 == "GLOBAL" && $6 == "DEFAULT" && $7 != "UND" { print $8 }' |
    grep -E '^(umfa|mfa)_' | sort -u >"$out_dir/bundled.syms"
  nm -D --defined-only "$dist_lib/libumfa.so" | awk '$2 == "T" { print $3 }' |
    grep -E '^(umfa|mfa)_' | sort -u >"$out_dir/system.syms"
  if ! diff -u "$out_dir/system.syms" "$out_dir/bundled.syms"; then
    fail "the bundled core's C symbols differ from dist/native's libumfa (rebuild the core, or \
the bundled build misses or adds sources)"
  fi
  echo "$(wc -l <"$out_dir/bundled.syms") umfa_*/mfa_* functions in both"
fi

step "system: conformance vectors and the example against ${dist_lib#"$root"/}"
cargo test --offline -p umfa --features system --test conformance -- --nocapture 2>&1 |
  grep -vE '^(test .* \.\.\. ok|running [0-9]+ tests?|)$'
cargo run --offline -q -p umfa --features system --example attention
if command -v ldd >/dev/null 2>&1; then
  ldd "$example" | grep libumfa || fail "the system-mode example does not link libumfa"
fi

step "cargo package (both crates, verified, no prebuilt library visible)"
bash umfa-sys/vendor.sh
# Everything happens in a temporary folder outside the repository (no dist/native above the
# unpacked crates), with a throwaway CARGO_HOME (Cargo never unpacks a name-version it has
# unpacked before, so with the shared one a stale umfa-sys 0.1.0 could be verified), no
# UMFA_LIB_DIR and a pkg-config that finds no umfa. The packed umfa is verified against the
# packed umfa-sys through Cargo's temporary local registry, so no crates.io access is needed;
# --allow-dirty only skips the VCS-clean check.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for dir in "$work" $(cd "$work" && pwd -P); do
  d=$dir
  while :; do
    [ -e "$d/dist/native" ] && fail "$d/dist/native is visible from $work"
    [ "$d" = / ] && break
    d=$(dirname "$d")
  done
done
mkdir -p "$work/cargo-home" "$work/no-pkgconfig"
for f in config.toml config; do
  [ -f "${CARGO_HOME:-$HOME/.cargo}/$f" ] && cp "${CARGO_HOME:-$HOME/.cargo}/$f" "$work/cargo-home/"
done
clean_env=(env -u LD_LIBRARY_PATH -u PKG_CONFIG_PATH PKG_CONFIG_LIBDIR="$work/no-pkgconfig"
  CARGO_HOME="$work/cargo-home" CARGO_TARGET_DIR="$work/target")
"${clean_env[@]}" cargo package --offline --allow-dirty -p umfa-sys -p umfa
for c in "$work"/target/package/*.crate; do
  printf '%s: %s bytes\n' "$(basename "$c")" "$(wc -c <"$c")"
done

step "packed-artifact install test (a new crate outside the repository)"
app="$work/app"
mkdir -p "$app/src"
cp "$here/packed-install/main.rs" "$app/src/main.rs"
# The docs' getting-started code (docs/home.md shows this file), verbatim, as a second binary.
mkdir -p "$app/src/bin"
cp "$root/docs/examples/rust/forward.rs" "$app/src/bin/forward.rs"
cat >"$app/Cargo.toml" <<'EOF'
[package]
name = "umfa-packed-install"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
umfa = "0.1.0"
EOF
# crates.io is replaced by a registry holding exactly the packed .crate files. Cargo's own
# temporary registry from `cargo package` is used when it holds those same files: the build then
# reuses the umfa-sys that the verification of umfa compiled (same source, same unpack folder)
# instead of compiling the core again. Otherwise a directory registry is made from the files.
registry="$work/target/package/tmp-registry"
same=1
for c in "$work"/target/package/*.crate; do
  cmp -s "$c" "$registry/$(basename "$c")" || same=0
done
config="$work/cargo-home/config.toml"
if [ "$same" = 1 ]; then
  printf '[source.crates-io]\nreplace-with = "packed"\n[source.packed]\nlocal-registry = "%s"\n' \
    "$registry" >>"$config"
else
  mkdir -p "$work/registry"
  for c in "$work"/target/package/*.crate; do
    tar -xzf "$c" -C "$work/registry"
    sum=$(sha256sum "$c" | cut -d' ' -f1)
    printf '{"files":{},"package":"%s"}' "$sum" >"$work/registry/$(basename "$c" .crate)/.cargo-checksum.json"
  done
  printf '[source.crates-io]\nreplace-with = "packed"\n[source.packed]\ndirectory = "%s"\n' \
    "$work/registry" >>"$config"
fi
(cd "$app" && "${clean_env[@]}" cargo run --offline --bin umfa-packed-install)
out=$(cd "$app" && "${clean_env[@]}" cargo run --offline -q --bin forward)
echo "$out"
grep -q '^sum(dv) = ' <<<"$out" || fail "the docs' getting-started example did not run to its end"
bin="$work/target/debug/umfa-packed-install"
if command -v ldd >/dev/null 2>&1; then
  if ldd "$bin" | grep -q libumfa; then
    ldd "$bin"
    fail "the packed-install binary links libumfa dynamically"
  fi
  echo "ldd umfa-packed-install: no libumfa"
fi
printf -- '--- rust: %s took %ss\n' "$step_name" $((SECONDS - step_start))
echo "rust: ok (${SECONDS}s)"
