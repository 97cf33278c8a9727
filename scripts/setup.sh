#!/usr/bin/env bash
# Installs what farmhand needs from Debian's archive (only what is missing)
# and builds it into build/. Usage: scripts/setup.sh [extra cmake options]
# FARMHAND_BUILD_DIR names another build directory, and FARMHAND_BUILD_TARGETS
# (space-separated) builds only those targets. With FARMHAND_CCACHE_DIR set,
# compiles go through ccache with its cache there (scripts/test.sh keeps it
# in the test cache, so a second run of the suite, even from another clone,
# compiles only what changed).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root (it installs packages; farmhand manages containers)" >&2
  exit 1
fi

PACKAGES=(
  # build
  cmake ninja-build g++ pkg-config ccache
  libwebsockets-dev libgit2-dev libsqlite3-dev nlohmann-json3-dev libudev-dev libsystemd-dev
  libssl-dev googletest libgtest-dev libgmock-dev
  # run (nftables: the containers' masquerade on a host without systemd)
  systemd-container debootstrap iproute2 btrfs-progs udev nftables
  # tests and benchmarks
  # (openssh-server: the private-repository test runs its own sshd on loopback)
  # (iputils-ping: pings a gateway from inside a container's network namespace)
  sqlite3 python3 time procps openssh-server iputils-ping
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  others=()
  sshd=0
  for p in "${missing[@]}"; do
    if [ "$p" = openssh-server ]; then sshd=1; else others+=("$p"); fi
  done
  [ ${#others[@]} -eq 0 ] || apt-get install -y -q --no-install-recommends "${others[@]}"
  if [ "$sshd" = 1 ]; then
    # A host that had no ssh server must not get one running because of the
    # tests: nothing is started while it is installed, and its freshly
    # enabled ssh.service is disabled again.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && own_policy=1
    fi
    rc=0
    apt-get install -y -q --no-install-recommends openssh-server || rc=$?
    [ "$own_policy" = 1 ] && rm -f "$policy"
    [ "$rc" = 0 ] || exit "$rc"
    if [ -d /run/systemd/system ]; then systemctl disable --quiet ssh.service 2>/dev/null || true; fi
  fi
fi

BUILD_DIR=${FARMHAND_BUILD_DIR:-build}
source scripts/ccache.sh
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${CCACHE_CMAKE_ARGS[@]}" "$@" >/dev/null
targets=()
# shellcheck disable=SC2206  # split on purpose
[ -z "${FARMHAND_BUILD_TARGETS:-}" ] || targets=(--target ${FARMHAND_BUILD_TARGETS})
cmake --build "$BUILD_DIR" "${targets[@]}"
