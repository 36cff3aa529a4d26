#!/usr/bin/env bash
# Build the desktop image (image/Dockerfile) offline with buildah into the storage under .build/containers.
# The build arguments are the image contract's: build_args() of constructs/microvm/contract.py. --layers caches each step
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

# microvm/contract.py is loaded from its file: importing the microvm package would start jsii for nothing.
mapfile -t build_args < <("$PY" -c 'import importlib.util as u, sys
spec = u.spec_from_file_location("contract", "constructs/microvm/contract.py")
contract = sys.modules["contract"] = u.module_from_spec(spec); spec.loader.exec_module(contract)
for k, v in contract.build_args().items(): print(f"--build-arg={k}={v}")')
[ ${#build_args[@]} -gt 0 ] || { echo "image-build.sh: no build arguments from microvm.contract" >&2; exit 1; }

buildah --root "$ROOT/storage" --runroot "$ROOT/run" --storage-driver overlay \
  bud --layers --isolation chroot --pull=never --format docker --quiet \
  "${build_args[@]}" -t "$TAG" -f image/Dockerfile image >"$ROOT/build.log" 2>&1 \
  || { tail -n 40 "$ROOT/build.log" >&2; echo "image-build.sh: build failed (log: $ROOT/build.log)" >&2; exit 1; }
buildah --root "$ROOT/storage" --runroot "$ROOT/run" --storage-driver overlay \
  inspect --type image --format '{{.FromImageID}}' "$TAG"
