#!/usr/bin/env bash
# Checks libumfa's dynamic symbol table: it defines only umfa_*/mfa_* symbols, it defines every
# function the header declares (and nothing the header does not), and its SONAME is right.
# For a Windows DLL (OBJDUMP given, e.g. x86_64-w64-mingw32-objdump): the PE export table, and
# the DLL name it records instead of the SONAME. For a macOS dylib (OBJDUMP given as "macho"):
# `nm -gU` and the install name (`otool -D`) instead (written for macOS; not run by our CI).
# Usage: check_exports.sh LIBRARY HEADER EXPECTED_SONAME [OBJDUMP|macho]
# NM and OBJDUMP (environment) name the ELF binutils for the library's target (a cross build
# passes the cross toolchain's; the default is the host's).
set -euo pipefail
lib=$1 header=$2 soname=$3 pe_objdump=${4:-}
nm=${NM:-nm} objdump=${OBJDUMP:-objdump}
fail=0

if [ "$pe_objdump" = macho ]; then
  # Mach-O C symbols carry a leading underscore.
  exported=$(nm -gU "$lib" | awk 'NF >= 3 { print $3 }' | sed 's/^_//' | sort -u)
elif [ -n "$pe_objdump" ]; then
  # The "[Ordinal/Name Pointer] Table" lists every exported name as "[ n] name".
  pe=$("$pe_objdump" -p "$lib")
  exported=$(awk '/^\[Ordinal\/Name Pointer\] Table/ { t = 1; next } t && /^\t\[/ { print $NF; next } t { t = 0 }' <<<"$pe" | sort -u)
else
  exported=$("$nm" -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }' | sed 's/@.*//' | sort -u)
fi
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
if [ "$pe_objdump" = macho ]; then
  actual=$(otool -D "$lib" | sed -n 2p)
  what="install name"
elif [ -n "$pe_objdump" ]; then
  # "Name <rva> umfa.dll" in the export directory; a here-string, since awk stops reading early.
  actual=$(awk '/^Name / { print $NF; exit }' <<<"$pe")
  what="DLL name"
else
  actual=$("$objdump" -p "$lib" | awk '$1 == "SONAME" { print $2 }')
  what="SONAME"
fi
if [ "$actual" != "$soname" ]; then
  echo "FAIL: $what is '$actual', expected '$soname'"; fail=1
else
  echo "$what $actual"
fi
[ "$fail" = 0 ] && echo "PASS: exports match the header"
exit "$fail"
