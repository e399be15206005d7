#!/usr/bin/env bash
# Make sure podman has debian:bookworm and debian:bookworm-slim without a
# registry: a minbase bookworm made by debootstrap from the mirror apt uses,
# with the host's apt sources, imported with `podman import`. The root file
# system is cached as a tarball under ~/.cache/hookbridge, so only the first
# run on a machine pays for debootstrap (about a minute).
#   CONTAINERS_CONF=tests/container/containers.conf tests/container/base-image.sh
set -euo pipefail
cache="${HB_CACHE_DIR:-$HOME/.cache/hookbridge}"
tarball="$cache/debian-bookworm-minbase.tar"

if podman image exists debian:bookworm && podman image exists debian:bookworm-slim; then
  exit 0
fi
if [[ ! -s "$tarball" ]]; then
  mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)\/*$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  mirror=${mirror:-$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)}
  mirror=${mirror:-http://deb.debian.org/debian}
  mkdir -p "$cache"
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  echo "base-image: debootstrap --variant=minbase bookworm from $mirror" >&2
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  # the host's Debian sources (security updates too), not third-party ones
  rm -f "$root/etc/apt/sources.list"
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/"
  else
    cp /etc/apt/sources.list "$root/etc/apt/sources.list"
  fi
  if compgen -G "/etc/apt/apt.conf.d/*" >/dev/null; then
    cp -n /etc/apt/apt.conf.d/* "$root/etc/apt/apt.conf.d/" 2>/dev/null || true
  fi
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
fi
podman import -q "$tarball" debian:bookworm >/dev/null
podman tag debian:bookworm debian:bookworm-slim
