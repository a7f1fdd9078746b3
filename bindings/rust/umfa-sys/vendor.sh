#!/usr/bin/env bash
# Copies the core's sources into umfa-sys/vendor/ for `cargo package` / `cargo publish`, so that
# the published crate can compile libumfa itself (the `bundled` feature; see build.rs).
#
#   vendor/include/umfa.h          the public header
#   vendor/src/*.h                 core/src's shared headers (backend.h)
#   vendor/src/{api,compat,cpu,platform}/   sources and headers of the API layer, classic API, CPU backend, OS seams
#   vendor/LICENSE                 the repository's license
#
# Never the CUDA backend, tests, build files or docs. The folder is ignored by git and rebuilt
# from scratch on every run; inside the repository the build reads core/ directly and never
# looks at vendor/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
dest="$here/vendor"

rm -rf "$dest"
mkdir -p "$dest/include" "$dest/src"
cp "$root/include/umfa.h" "$dest/include/"
cp "$root/LICENSE" "$dest/"
find "$root/core/src" -maxdepth 1 -type f -name '*.h' -exec cp {} "$dest/src/" \;
for dir in api compat cpu platform; do
  (cd "$root/core/src" &&
    find "$dir" -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.hpp' -o -name '*.inc' \) -print0 |
    while IFS= read -r -d '' f; do
      mkdir -p "$dest/src/$(dirname "$f")"
      cp "$f" "$dest/src/$f"
    done)
done
files=$(find "$dest" -type f | wc -l)
bytes=$(find "$dest" -type f -exec cat {} + | wc -c | tr -d ' ')
echo "umfa-sys: vendored $files files ($bytes bytes) into ${dest#"$root"/}"
