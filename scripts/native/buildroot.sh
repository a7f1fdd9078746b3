#!/usr/bin/env bash
# The Debian 11 ("bullseye", glibc 2.31) build root in which the released Linux libraries are
# built, so that they need at most GLIBC 2.31 (see docs/building.md).
#
#   bash scripts/native/buildroot.sh create          make the root once (cached; later calls
#                                                     only check its stamp, well under a second)
#   bash scripts/native/buildroot.sh run CMD [ARG..]  run CMD inside it, in the current
#                                                     directory, with the repository
#                                                     bind-mounted at its own absolute path
#   bash scripts/native/buildroot.sh path            print where the root lives
#   bash scripts/native/buildroot.sh delete          remove it
#
# The root is made with `debootstrap --variant=minbase`, then the packages below are installed
# without recommends. Needs root (debootstrap, chroot, mount; it uses `sudo` otherwise). `run`
# mounts in a private mount namespace (`unshare --mount`), so nothing stays mounted when the
# command ends, whatever way it ends.
#
# Environment:
#   UMFA_BUILDROOT_DIR     where the root lives (default /var/cache/umfa/buildroot-bullseye-amd64:
#                          one per machine, shared by every checkout of the repository)
#   UMFA_DEBIAN_MIRROR     Debian mirror (default http://deb.debian.org/debian)
#   UMFA_BUILDROOT_BIND    extra host paths, colon-separated, bind-mounted read-only at the same
#                          path inside the root (e.g. /usr/local/cuda-13.0)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd -P)
suite=bullseye
root=${UMFA_BUILDROOT_DIR:-/var/cache/umfa/buildroot-$suite-amd64}
mirror=${UMFA_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# What the core's release builds need: the native compiler (GCC 10), the aarch64 cross compiler
# (GCC 10, glibc 2.31 for arm64), CMake 3.18, Ninja, pkg-config, Python 3 for the CUDA
# backend's generated wgmma wrappers, and qemu-user, so that a toolchain file that looks for
# qemu-aarch64 finds it at /usr/bin/qemu-aarch64, the same path as on the host where the tests
# run. Change this list and the root is brought up to date on the next `create` (the stamp
# records it).
PACKAGES=(g++ g++-aarch64-linux-gnu cmake ninja-build pkg-config make python3 qemu-user)
stamp_text="umfa build root: $suite from $mirror; packages: ${PACKAGES[*]}"

log() { printf '\033[1m[buildroot]\033[0m %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  exec sudo --preserve-env=UMFA_BUILDROOT_DIR,UMFA_DEBIAN_MIRROR,UMFA_BUILDROOT_BIND bash "$0" "$@"
fi

# Runs "$@" inside the root. Mounts: the repository (read-write), /proc, /dev, a fresh /tmp,
# the extra binds; the host's resolv.conf for apt.
in_root() {
  local binds=("$repo") extra
  if [ -n "${UMFA_BUILDROOT_BIND:-}" ]; then
    IFS=: read -r -a extra <<<"$UMFA_BUILDROOT_BIND"
    binds+=("${extra[@]}")
  fi
  unshare --mount --propagation private -- bash "$0" __enter "$root" "$PWD" "$repo" "${binds[@]}" -- "$@"
}

# Inside the private mount namespace: ROOT CWD REPO BIND... -- CMD...
enter() {
  local root=$1 cwd=$2 repo=$3 b binds=()
  shift 3
  while [ "$1" != -- ]; do binds+=("$1"); shift; done
  shift
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount -t tmpfs tmpfs "$root/tmp"
  for b in "${binds[@]}"; do
    b=$(readlink -f "$b")
    if [ -d "$b" ]; then mkdir -p "$root$b"; else mkdir -p "$(dirname "$root$b")"; touch "$root$b"; fi
    mount --bind "$b" "$root$b"
    [ "$b" = "$repo" ] || mount -o remount,bind,ro "$root$b"
  done
  cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  # shellcheck disable=SC2016
  exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c 'cd "$1" && shift && exec "$@"' bash "$cwd" "$@"
}

create() {
  mkdir -p "$(dirname "$root")"
  exec 9>"$root.lock"
  flock 9   # two checkouts creating the root at the same time: the second waits
  if [ -f "$root/.umfa-stamp" ] && [ "$(cat "$root/.umfa-stamp")" = "$stamp_text" ]; then
    log "up to date: $root"
    return
  fi
  local start=$SECONDS
  if [ ! -x "$root/usr/bin/apt-get" ]; then
    command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }
    rm -rf "$root"
    log "debootstrap --variant=minbase $suite $root $mirror"
    debootstrap --variant=minbase --arch=amd64 "$suite" "$root.partial" "$mirror" >"$root.debootstrap.log" 2>&1 ||
      { tail -20 "$root.debootstrap.log" >&2; log "debootstrap failed (full log: $root.debootstrap.log)"; exit 1; }
    mv "$root.partial" "$root"
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/90umfa"
  fi
  log "apt-get install ${PACKAGES[*]}"
  in_root sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null && apt-get clean' sh "${PACKAGES[@]}"
  printf '%s' "$stamp_text" >"$root/.umfa-stamp"
  log "ready in $((SECONDS - start))s: $root ($(du -sh --one-file-system "$root" | cut -f1)); $(in_root sh -c 'echo "$(ldd --version | head -1); $(g++ --version | head -1); $(cmake --version | head -1)"')"
}

case "${1:-}" in
  create) create ;;
  run)
    shift
    [ $# -gt 0 ] || { echo "usage: $0 run CMD [ARG...]" >&2; exit 2; }
    [ -f "$root/.umfa-stamp" ] || { log "no build root at $root: run '$0 create' first"; exit 1; }
    case "$PWD/" in
      "$repo"/*) ;;
      *) log "run from inside the repository ($repo), which is what the root sees"; exit 1 ;;
    esac
    in_root "$@"
    ;;
  path) echo "$root" ;;
  __enter) shift; enter "$@" ;;
  delete) rm -rf "$root" "$root.partial" "$root.lock" "$root.debootstrap.log" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
