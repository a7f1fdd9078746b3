#!/usr/bin/env bash
# The glibc bound of the shipped Linux libraries. For every shared library under
# dist/native/linux-*/lib (or the folders/files given as arguments) it prints the libraries it
# needs (DT_NEEDED) and the highest symbol version it needs per namespace (GLIBC_, GLIBCXX_,
# CXXABI_, GCC_, ...), read with `readelf` (any ELF architecture), and the oldest manylinux tag
# (PEP 600) those versions allow, by the symbol-version rule auditwheel applies. It fails when
# a library
#   - needs a GLIBC_ version above UMFA_GLIBC_MAX (default 2.31: Debian 11, Ubuntu 20.04),
#   - needs any GLIBCXX_ or CXXABI_ version, or links libstdc++ at all (it must carry its C++
#     runtime statically),
#   - needs a library other than glibc's own (libc, libm, libdl, libpthread, librt, the dynamic
#     loader) and libgcc_s,
#   - exports a C++ runtime symbol (std::, __cxa_*, __gxx_*: a static libstdc++ leaking out),
# or when there is no library to check at all.
#
#   bash scripts/native/check-glibc.sh [DIR_OR_LIB...]
set -euo pipefail
max=${UMFA_GLIBC_MAX:-2.31}

targets=("$@")
cd "$(dirname "$0")/../.."
if [ ${#targets[@]} -eq 0 ]; then
  for d in dist/native/linux-*/lib; do [ -d "$d" ] && targets+=("$d"); done
fi
libs=()
for t in "${targets[@]}"; do
  case "$t" in /*) ;; *) t=$OLDPWD/$t ;; esac
  if [ -d "$t" ]; then
    while IFS= read -r f; do libs+=("$f"); done < <(find "$t" -maxdepth 1 -type f -name '*.so*' | sort)
  elif [ -f "$t" ]; then
    libs+=("$t")
  else
    echo "FAIL: $t does not exist"; exit 1
  fi
done
if [ ${#libs[@]} -eq 0 ]; then
  echo "FAIL: no shared library to check (looked in: ${targets[*]:-dist/native/linux-*/lib})"
  exit 1
fi

# Highest of a list of dotted versions.
highest() { sort -V | tail -1; }
# Does version $1 exceed $2?
above() { [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -1)" = "$1" ]; }

fail=0
for lib in "${libs[@]}"; do
  if ! readelf -h "$lib" >/dev/null 2>&1; then
    echo "FAIL: $lib is not an ELF file"; fail=1; continue
  fi
  machine=$(readelf -h "$lib" | sed -n 's/^ *Machine: *//p')
  echo "$lib  ($machine)"
  needed=$(readelf -dW "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  echo "  needs: $(echo $needed)"
  for n in $needed; do
    case "$n" in
      libc.so.6 | libm.so.6 | libdl.so.2 | libpthread.so.0 | librt.so.1 | libgcc_s.so.1 | ld-linux*.so.* | ld64.so.*) ;;
      *) echo "  FAIL: needs $n (only glibc's libraries and libgcc_s may be needed)"; fail=1 ;;
    esac
  done

  # Version requirements (.gnu.version_r): "Name: GLIBC_2.14  Flags: ...".
  versions=$(readelf -VW "$lib" | awk '/^Version (needs|definition|symbols) section/ { r = ($0 ~ /needs/) }
    r && match($0, /Name: [A-Za-z_]+_[0-9][0-9.]*/) { print substr($0, RSTART + 6, RLENGTH - 6) }' | sort -u)
  glibc_top=""
  for ns in $(echo "$versions" | sed 's/_[0-9][0-9.]*$//' | sort -u); do
    top=$(echo "$versions" | sed -n "s/^${ns}_\([0-9][0-9.]*\)$/\1/p" | highest)
    printf '  highest %-8s %s\n' "$ns" "$top"
    case "$ns" in
      GLIBC)
        glibc_top=$top
        if above "$top" "$max"; then
          echo "  FAIL: needs GLIBC_$top > GLIBC_$max, through:"
          readelf --dyn-syms -W "$lib" | awk '$7 == "UND" { print $8 }' | grep '@GLIBC_' |
            while IFS= read -r s; do
              v=${s##*@GLIBC_}; v=${v#@}
              if above "$v" "$max"; then echo "    $s"; fi
            done
          fail=1
        fi
        ;;
      GLIBCXX | CXXABI)
        echo "  FAIL: needs ${ns}_$top (libstdc++ must be linked statically)"
        fail=1
        ;;
    esac
  done
  [ -n "$versions" ] || echo "  (no versioned symbol needed)"
  if [ -n "$glibc_top" ]; then
    tag_version=$glibc_top
    above 2.17 "$glibc_top" && tag_version=2.17   # manylinux starts at 2.17 (manylinux2014)
    echo "  oldest manylinux tag its symbol versions allow: manylinux_${tag_version//./_}"
  fi

  # Exported C++ runtime symbols (a static libstdc++ must stay hidden).
  leaked=$(readelf --dyn-syms -W "$lib" | awk '$7 != "UND" && NF >= 8 { print $8 }' |
    grep -E '^(_ZN?St|_ZNKSt|_ZTVSt|_ZTISt|_ZTSSt|_ZNSt|_ZSt|__cxa_|__gxx_|_ZN9__gnu_cxx|_ZN10__cxxabi)' || true)
  if [ -n "$leaked" ]; then
    echo "  FAIL: exports $(echo "$leaked" | wc -l) C++ runtime symbols, e.g.:"
    echo "$leaked" | sed -n "1,5s/^/    /p"
    fail=1
  fi
done

if [ "$fail" = 0 ]; then
  echo "PASS: ${#libs[@]} libraries need at most GLIBC_$max, no GLIBCXX/CXXABI, no libstdc++"
else
  echo "FAIL: the glibc bound (GLIBC_$max, no libstdc++) is not met"
fi
exit "$fail"
