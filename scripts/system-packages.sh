#!/usr/bin/env bash
# Debian packages the image tests and the benchmarks need: buildah to build and run the image offline,
# debootstrap for the stand-in base image, Chromium as the real browser, socat to reach the container's
# network namespace. Installs what is missing when it can (root with apt-get); otherwise says what is
# missing and the tests that need it report themselves skipped with that reason.
set -euo pipefail
packages=(buildah debootstrap chromium socat)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "note: missing Debian packages (${missing[*]}); the image tests will be skipped. Install them as root to run them." >&2
fi
