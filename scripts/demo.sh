#!/usr/bin/env bash
# Sets up farmhand on this host and provisions a demo build container:
# installs dependencies, builds and installs farmhand, applies
# conf/examples/demo.json (a Debian bookworm container with the CI build
# packages and a `sai` build user), and shows it working.
# With systemd as PID 1 the host is enrolled (`farmhand enroll`: agent
# service, first apply, container started as systemd-nspawn@demo); without
# it the container is applied and run directly.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cmake --install build >/dev/null
FH=/usr/local/bin/farmhand
CONFIG=$PWD/conf/examples/demo.json

echo "== farmhand check-config"
$FH check-config "$CONFIG"

if [ -d /run/systemd/system ]; then
  # A host booted with systemd becomes a farm member: enroll installs the
  # agent service and applies the configuration, now and at every boot.
  if [ ! -e /etc/farmhand/agent.json ]; then
    install -D -m 600 "$CONFIG" /etc/farmhand/agent.json
  else
    echo "== keeping the existing /etc/farmhand/agent.json"
  fi
  echo "== farmhand enroll"
  $FH enroll
  echo "== farmhand status"
  $FH status
  systemctl --no-pager status farmhand.service | head -5 || true
  NEXT="farmhand shell demo --user sai"
  REMOVE="$FH destroy demo (and remove it from /etc/farmhand/agent.json)"
else
  echo "== farmhand plan"
  $FH --config "$CONFIG" plan
  echo "== farmhand apply"
  $FH --config "$CONFIG" apply
  echo "== farmhand apply (again: nothing to do)"
  $FH --config "$CONFIG" apply
  echo "== no systemd as PID 1 here: running commands in the container directly"
  $FH --config "$CONFIG" run demo -- id sai
  $FH --config "$CONFIG" run demo -- cmake --version | head -1
  echo "== farmhand status"
  $FH --config "$CONFIG" status
  NEXT="$FH --config $CONFIG run demo   (boots it in the foreground)"
  REMOVE="$FH --config $CONFIG destroy demo"
fi

cat <<TEXT

The demo container "demo" is ready in /var/lib/machines/demo, with the build
user sai (uid 883) and its static address on a private veth network.
Next: $NEXT
Remove it with: $REMOVE
TEXT
