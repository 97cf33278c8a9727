#!/usr/bin/env bash
# Installs what farmhand needs from Debian's archive (only what is missing)
# and builds it into build/. Usage: scripts/setup.sh [extra cmake options]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root (it installs packages; farmhand manages containers)" >&2
  exit 1
fi

PACKAGES=(
  # build
  cmake ninja-build g++ pkg-config
  libwebsockets-dev libgit2-dev libsqlite3-dev nlohmann-json3-dev libudev-dev libsystemd-dev
  libssl-dev googletest libgtest-dev libgmock-dev
  # run
  systemd-container debootstrap iproute2 btrfs-progs udev
  # tests and benchmarks
  sqlite3 python3 time procps
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

BUILD_DIR=${FARMHAND_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$BUILD_DIR"
