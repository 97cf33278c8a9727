#!/usr/bin/env bash
# B6: USB serial hotplug on the systemd path: a booted test host (systemd as
# PID 1, the system tests' minimal flavor) runs farmhand.service and a
# container as systemd-nspawn@; the device cgroup is widened and narrowed
# through DeviceAllow= over D-Bus. udevd runs in the test host; the plug and
# unplug events are the kernel's, fired from outside (synthetic uevents on
# tty62). Prints the agent's latency, from udev's event reaching it to the
# node usable in the container, over ROUNDS plugs (default 200): p50, p99, max;
# once on a test host with this machine's hybrid cgroup layout and once on
# one booted on the unified cgroup v2 hierarchy (where systemd enforces
# DeviceAllow= with a BPF program), side by side.
#
#   tests/bench/b6_hotplug_systemd.sh /path/to/farmhand
set -uo pipefail
export LC_ALL=C
ROUNDS=${FARMHAND_BENCH_HOTPLUG_EVENTS:-200}
INTEGRATION=$(cd "$(dirname "$0")/../integration" && pwd)
TESTHOST_FLAVOR=minimal
source "$INTEGRATION/lib.sh"
source "$INTEGRATION/testhost.sh"
set -e

testhost_image >/dev/null
make_root WORK
# shellcheck disable=SC2034  # read by common.sh's percentiles
PERCENTILES_WIDTH=52

# One test host on cgroup layout LAYOUT: boot, enroll, ROUNDS plugs and
# unplugs; the figures go to $WORK/LAYOUT.txt.
measure() {  # LAYOUT
  local layout=$1
  TESTHOST_CGROUP=$layout
  HOSTDIR=$WORK/fhost-$layout
  testhost_init "$HOSTDIR"
  cp -a "$TESTHOST_IMAGE" "$HOSTDIR"
  mkdir -p "$HOSTDIR/etc/farmhand"
  cat > "$HOSTDIR/etc/farmhand/agent.json" <<'JSON'
{"containers": [{"name": "b6-a", "distro": "debian", "release": "bookworm", "arch": "amd64",
                 "packages": ["cmake", "openssh-server"],
                 "devices": [{"match": {"usb_ids": ["0403:6001"], "serial": "B6TEST"}}]}]}
JSON
  chmod 600 "$HOSTDIR/etc/farmhand/agent.json"
  aptproxy_use_in "$HOSTDIR/etc/farmhand/agent.json"
  cat > "$HOSTDIR/etc/udev/rules.d/99-farmhand-bench.rules" <<'RULES'
KERNEL=="tty62", ENV{ID_BUS}="usb", ENV{ID_VENDOR_ID}="0403", ENV{ID_MODEL_ID}="6001", ENV{ID_SERIAL_SHORT}="B6TEST", SYMLINK+="serial/by-id/usb-FTDI_B6TEST-if00-port0"
RULES
  testhost_boot --bind-ro="$(dirname "$FH")":/opt/farmhand --bind="$TEST_CACHE":/var/cache/farmhand
  in_testhost stat -fc %T /sys/fs/cgroup
  local fs=$OUT
  in_testhost /lib/systemd/systemd-udevd --daemon
  [ "$RC" = 0 ] || { echo "udevd: $OUT" >&2; exit 1; }
  farmhand_in_testhost enroll
  [ "$RC" = 0 ] || { echo "enroll: $OUT" >&2; exit 1; }
  local tl l node db first i
  tl=$(testhost_leader)
  l=$(nsenter -t "$tl" -a machinectl show b6-a -p Leader --value)
  node=/proc/$tl/root/proc/$l/root/dev/tty62
  db=$HOSTDIR/var/lib/farmhand/state.db
  first=$(sqlite3 "$db" 'SELECT COALESCE(MAX(id), 0) FROM device_events')
  for ((i = 0; i < ROUNDS; i++)); do
    echo add > /sys/class/tty/tty62/uevent
    while [ ! -c "$node" ]; do :; done
    echo remove > /sys/class/tty/tty62/uevent
    while [ -e "$node" ]; do :; done
  done
  {
    echo "$layout test host (/sys/fs/cgroup: $fs):"
    sqlite3 "$db" "SELECT latency_us FROM device_events WHERE id > $first AND action = 'attach'" |
      percentiles "  plug to usable in b6-a (systemd path)"
    sqlite3 "$db" "SELECT latency_us FROM device_events WHERE id > $first AND action = 'detach'" |
      percentiles "  unplug to revoked and removed"
  } >"$WORK/$layout.txt"
  testhost_poweroff
}

measure hybrid
measure unified
echo
echo "B6 hotplug through systemd (booted test host, DeviceAllow= over D-Bus, booted container)"
cat "$WORK/hybrid.txt" "$WORK/unified.txt"
echo "($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
