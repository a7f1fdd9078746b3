#!/usr/bin/env bash
# Negative-compile test: each tests/negative/*.metal compiles cleanly as written (-Werror) and
# fails, with the error named on its `// expect-error:` line, once UMFA_NEGATIVE selects the
# construct Metal rejects. Compiling the clean variant first proves the failure comes from that
# construct and not from the test's setup. Usage: negative_compile.sh [clang++]
set -uo pipefail
CXX=${1:-clang++}
here=$(cd "$(dirname "$0")/.." && pwd)
flags=(-std=c++17 -x c++ -fsyntax-only -Wall -Wextra -Werror -fno-exceptions -fno-rtti -Xclang -fallow-half-arguments-and-returns
       -I"$here/sim" -I"$here/kernels")
fail=0; n=0
for f in "$here"/tests/negative/*.metal; do
  n=$((n + 1))
  name=$(basename "$f")
  want=$(sed -n 's|^// expect-error: ||p' "$f")
  if [ -z "$want" ]; then echo "FAIL $name: no expect-error line"; fail=1; continue; fi
  if ! out=$("$CXX" "${flags[@]}" "$f" 2>&1); then
    echo "FAIL $name: the clean variant does not compile:"; echo "$out"; fail=1; continue
  fi
  if out=$("$CXX" "${flags[@]}" -DUMFA_NEGATIVE "$f" 2>&1); then
    echo "FAIL $name: compiled, but Metal rejects it"; fail=1; continue
  fi
  if ! grep -qF -- "$want" <<<"$out"; then
    echo "FAIL $name: rejected, but not with '$want':"; echo "$out" | head -20; fail=1; continue
  fi
  echo "ok $name: rejected ($want)"
done
[ "$n" -gt 0 ] || { echo "no negative cases found"; exit 1; }
[ "$fail" = 0 ] && echo "$n negative-compile cases rejected as Metal rejects them"
exit $fail
