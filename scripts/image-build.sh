#!/usr/bin/env bash
# Build the desktop image (image/Dockerfile) offline with buildah into the storage under .build/containers.
# The build arguments are the image contract's: microvm.contract.build_args(). --layers caches each step
# (a rebuild with nothing changed takes about a second); --format docker keeps the HEALTHCHECK.
# Usage: scripts/image-build.sh [TAG]   (default localhost/microvm-desktop:dev); prints the image id.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG="${1:-localhost/microvm-desktop:dev}"
ROOT="$PWD/.build/containers"
PY="${PYTHON:-$PWD/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
[ "$(id -u)" = 0 ] || { echo "image-build.sh: needs root (buildah with chroot isolation)" >&2; exit 1; }
command -v buildah >/dev/null || { echo "image-build.sh: buildah is not installed (scripts/system-packages.sh)" >&2; exit 1; }

scripts/image-base.sh

mapfile -t build_args < <("$PY" -c 'from microvm.contract import build_args
for k, v in build_args().items(): print(f"--build-arg={k}={v}")')
[ ${#build_args[@]} -gt 0 ] || { echo "image-build.sh: no build arguments from microvm.contract" >&2; exit 1; }

buildah --root "$ROOT/storage" --runroot "$ROOT/run" --storage-driver overlay \
  bud --layers --isolation chroot --pull=never --format docker --quiet \
  "${build_args[@]}" -t "$TAG" -f image/Dockerfile image >"$ROOT/build.log" 2>&1 \
  || { tail -n 40 "$ROOT/build.log" >&2; echo "image-build.sh: build failed (log: $ROOT/build.log)" >&2; exit 1; }
buildah --root "$ROOT/storage" --runroot "$ROOT/run" --storage-driver overlay \
  inspect --type image --format '{{.FromImageID}}' "$TAG"
