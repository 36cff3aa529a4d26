#!/usr/bin/env bash
# A local stand-in for docker.io/library/debian:bookworm-slim, imported into the buildah storage under
# .build/containers. No container registry is reachable here, only the Debian mirror: debootstrap a minbase
# bookworm, make it slim (dpkg excludes for doc, man, info, locales; empty apt lists) and commit it under the
# official name so the Dockerfile's FROM resolves with --pull=never. Idempotent: does nothing when the image
# is already in the storage.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD/.build/containers"
BASE_IMAGE="docker.io/library/debian:bookworm-slim"
bh=(buildah --root "$ROOT/storage" --runroot "$ROOT/run" --storage-driver overlay)

if "${bh[@]}" inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "image-base.sh: needs root (debootstrap, buildah)" >&2; exit 1; }

# The mirror the host already uses (deb822 or one-line sources).
mirror=$( (grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true) \
  | head -n1 | awk '{print $2}')
mirror=${mirror:-http://deb.debian.org/debian}

work="$PWD/.build/base-rootfs"
rm -rf "$work"
mkdir -p "$work" "$ROOT"
echo "image-base.sh: debootstrap bookworm minbase from $mirror (about 1.5 min)"
debootstrap --variant=minbase bookworm "$work" "$mirror" >"$PWD/.build/debootstrap.log" 2>&1 \
  || { tail -n 20 "$PWD/.build/debootstrap.log" >&2; exit 1; }

# Same sources as the host's Debian entries, deb822 like the official image.
rm -f "$work/etc/apt/sources.list"
cat >"$work/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian*}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# What debian:bookworm-slim excludes.
cat >"$work/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat >"$work/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
cat >"$work/etc/apt/apt.conf.d/docker-no-languages" <<'EOF'
Acquire::Languages "none";
EOF
cp /etc/resolv.conf "$work/etc/resolv.conf"
chroot "$work" /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get upgrade -y -qq && apt-get clean' >/dev/null
rm -rf "$work"/usr/share/doc/* "$work"/usr/share/man/* "$work"/usr/share/info/* "$work"/var/lib/apt/lists/* \
  "$work"/var/cache/apt/* "$work"/var/log/*.log "$work"/var/log/apt/*
find "$work/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
: >"$work/etc/resolv.conf"

c=$("${bh[@]}" from scratch)
m=$("${bh[@]}" mount "$c")
tar -C "$work" --numeric-owner -cf - . | tar -C "$m" --numeric-owner -xpf -
"${bh[@]}" umount "$c" >/dev/null
"${bh[@]}" config --cmd '["bash"]' --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$c"
"${bh[@]}" commit --quiet --rm "$c" "$BASE_IMAGE" >/dev/null
rm -rf "$work"
echo "image-base.sh: $BASE_IMAGE ready in $ROOT"
