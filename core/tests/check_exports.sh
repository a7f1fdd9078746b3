#!/usr/bin/env bash
# Checks libumfa's dynamic symbol table: it defines only umfa_*/mfa_* symbols, it defines every
# function the header declares (and nothing the header does not), and its SONAME is right.
# Usage: check_exports.sh LIBRARY HEADER EXPECTED_SONAME
# NM and OBJDUMP (environment) name the binutils for the library's target (a cross build passes
# the cross toolchain's; the default is the host's).
set -euo pipefail
lib=$1 header=$2 soname=$3
nm=${NM:-nm} objdump=${OBJDUMP:-objdump}
fail=0

exported=$("$nm" -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }' | sed 's/@.*//' | sort -u)
declared=$(grep -E '^UMFA_API ' "$header" | grep -oE '^[^(]*\(' | sed -E 's/\($//; s/.*[ *]//' | sort -u)

echo "exported: $(echo "$exported" | wc -l) symbols; declared by the header: $(echo "$declared" | wc -l) functions"
stray=$(echo "$exported" | grep -vE '^(umfa_|mfa_)' || true)
if [ -n "$stray" ]; then
  echo "FAIL: symbols exported beyond umfa_*/mfa_*:"; echo "$stray" | sed 's/^/  /'; fail=1
fi
missing=$(comm -13 <(echo "$exported") <(echo "$declared"))
if [ -n "$missing" ]; then
  echo "FAIL: declared in the header but not exported:"; echo "$missing" | sed 's/^/  /'; fail=1
fi
extra=$(comm -23 <(echo "$exported") <(echo "$declared"))
if [ -n "$extra" ]; then
  echo "FAIL: exported but not declared in the header:"; echo "$extra" | sed 's/^/  /'; fail=1
fi
actual=$("$objdump" -p "$lib" | awk '$1 == "SONAME" { print $2 }')
if [ "$actual" != "$soname" ]; then
  echo "FAIL: SONAME is '$actual', expected '$soname'"; fail=1
else
  echo "SONAME $actual"
fi
[ "$fail" = 0 ] && echo "PASS: exports match the header"
exit "$fail"
