#!/usr/bin/env bash
# On a host booted with systemd, apply enables and starts each container as
# systemd-nspawn@NAME through D-Bus, and the containers come back by
# themselves after a reboot. The host is a booted test host (testhost.sh)
# with the farmhand binary and the base-tree cache bind-mounted in.
#
# With FARMHAND_TESTHOST_CGROUP=unified the test host boots on the unified
# cgroup v2 hierarchy, and its first apply starts from nothing: an empty
# base-tree cache, so the base is built inside it through the apt proxy
# (minutes, with no call to systemd), and then the containers are started
# through D-Bus, first time, no retry.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testhost.sh"

make_root WORK
HOSTDIR=$WORK/fhost
if [ "$TESTHOST_CGROUP" = unified ]; then
  mkdir -p "$WORK/empty-cache"
  HOST_CACHE=$WORK/empty-cache
else
  HOST_CACHE=$TEST_CACHE
fi
BOOT_ARGS=(--bind-ro="$(dirname "$FH")":/opt/farmhand --bind="$HOST_CACHE":/var/cache/farmhand)
testhost_init "$HOSTDIR"

testcase_boot_a_test_host() {
  testhost_image
  testhost_boot "${BOOT_ARGS[@]}"
  in_testhost stat -fc %T /sys/fs/cgroup
  if [ "$TESTHOST_CGROUP" = unified ]; then
    assert_eq cgroup2fs "$OUT" "the unified test host's /sys/fs/cgroup"
  else
    [ "$OUT" != cgroup2fs ] || fail "the hybrid test host booted on the unified hierarchy"
  fi
  mkdir -p "$HOSTDIR/etc/farmhand"
  # The cold apply builds a base of its own every run: the smallest one
  # (still over a minute of work between connecting to the bus and using it).
  local packages='"packages": ["cmake", "openssh-server"]'
  [ "$TESTHOST_CGROUP" != unified ] || packages='"packages": [], "build_packages": false'
  cat > "$HOSTDIR/etc/farmhand/agent.json" <<JSON
{"containers": [{"name": "sd-a", "distro": "debian", "release": "bookworm", "arch": "amd64",
                 $packages},
                {"name": "sd-b", "distro": "debian", "release": "bookworm", "arch": "amd64",
                 $packages, "boot": false}]}
JSON
  aptproxy_use_in "$HOSTDIR/etc/farmhand/agent.json"
}

testcase_apply_starts_containers_through_systemd() {
  local t0=$SECONDS
  farmhand_in_testhost apply
  assert_eq 0 "$RC" "apply in the test host: $OUT"
  echo "    first apply: $((SECONDS - t0)) s"
  if [ "$TESTHOST_CGROUP" = unified ]; then
    # From nothing: the base was built here, through the apt proxy.
    assert_contains "$OUT" ": building"
    [ -d "$HOST_CACHE/images" ] || fail "no base tree in the test host's empty cache"
    # The bus connection made before the build may have been dropped by
    # dbus-daemon meanwhile; farmhand connects again rather than failing.
    if [[ "$OUT" == *"connected again"* ]]; then
      echo "    the system bus connection closed during the base build and was opened again"
    fi
  fi
  assert_contains "$OUT" "[sd-a] start systemd-nspawn@sd-a.service  done"
  # No network manager here: the plain backend (ip, from the unit's drop-in)
  # and systemd-resolved give sd-a its gateway and DNS.
  assert_contains "$OUT" "[host] host network (plain, firewall none)"
  assert_contains "$OUT" "[sd-a] network healthy"
  in_testhost systemctl is-enabled systemd-nspawn@sd-a
  assert_eq enabled "$OUT"
  wait_for 60 "systemd-nspawn@sd-a to be active" nsenter -t "$(testhost_leader)" -a systemctl is-active systemd-nspawn@sd-a
  in_testhost systemctl is-active systemd-nspawn@sd-b
  assert_eq inactive "$OUT" "sd-b has boot: false"
  wait_for 60 "sd-a in machinectl list" bash -c "nsenter -t $(testhost_leader) -a machinectl list | grep -q sd-a"
  farmhand_in_testhost status
  assert_contains "$OUT" "sd-a"
  assert_contains "$(echo "$OUT" | grep sd-a)" "running"
  assert_contains "$(echo "$OUT" | grep sd-b)" "stopped"
  # Inside the running container: the build user and its own hostname.
  wait_for 60 "user sai in sd-a" bash -c "nsenter -t $(testhost_leader) -a systemd-run -M sd-a --wait -q -P id sai | grep -q 'uid=883(sai)'"
}

testcase_second_apply_is_a_no_op() {
  farmhand_in_testhost apply
  assert_eq 0 "$RC"
  assert_contains "$OUT" "No changes: 2 container(s) up to date"
}

testcase_containers_come_back_after_reboot() {
  testhost_poweroff
  testhost_boot "${BOOT_ARGS[@]}"
  # No farmhand command: systemd brings sd-a back by itself (machines.target,
  # and for an overlay root, its .mount unit).
  in_testhost systemctl is-active 'var-lib-machines-sd\x2da.mount'
  assert_eq active "$OUT" "the overlay root's mount unit"
  wait_for 90 "systemd-nspawn@sd-a to be active" nsenter -t "$(testhost_leader)" -a systemctl is-active systemd-nspawn@sd-a
  in_testhost systemctl is-active systemd-nspawn@sd-b
  assert_eq inactive "$OUT"
  farmhand_in_testhost plan
  assert_contains "$OUT" "Plan: 0 to create, 0 to update, 0 to replace, 0 to destroy, 2 unchanged."
}

# The device cgroup through systemd: the agent (farmhand.service) sets
# DeviceAllow= on systemd-nspawn@sd-a at runtime when a matching device
# appears, and takes it back when it goes. udevd runs in the test host and
# sees the kernel's uevents, which this test fires from outside.
testcase_devices_through_systemd() {
  python3 - "$HOSTDIR/etc/farmhand/agent.json" <<'PY'
import json, sys
path = sys.argv[1]
with open(path) as f:
    c = json.load(f)
c["containers"][0]["devices"] = [{"match": {"usb_ids": ["0403:6001"], "serial": "SDTEST"}}]
with open(path, "w") as f:
    json.dump(c, f, indent=2)
PY
  cat > "$HOSTDIR/etc/udev/rules.d/99-farmhand-test.rules" <<'RULES'
KERNEL=="tty62", ENV{ID_BUS}="usb", ENV{ID_VENDOR_ID}="0403", ENV{ID_MODEL_ID}="6001", ENV{ID_SERIAL_SHORT}="SDTEST", SYMLINK+="serial/by-id/usb-FTDI_SDTEST-if00-port0"
RULES
  in_testhost /lib/systemd/systemd-udevd --daemon
  assert_eq 0 "$RC" "udevd in the test host: $OUT"
  farmhand_in_testhost enroll
  assert_eq 0 "$RC" "enroll: $OUT"
  in_testhost systemctl show -p DeviceAllow --value systemd-nspawn@sd-a
  [[ "$OUT" != *"/dev/char/4:62"* ]] || fail "4:62 allowed before the plug: $OUT"
  local leader
  leader=$(nsenter -t "$(testhost_leader)" -a machinectl show sd-a -p Leader --value)
  echo add > /sys/class/tty/tty62/uevent
  wait_for 10 "DeviceAllow= to grant 4:62" bash -c "nsenter -t $(testhost_leader) -a systemctl show -p DeviceAllow --value systemd-nspawn@sd-a | grep -q '/dev/char/4:62 rw'"
  wait_for 10 "/dev/tty62 in sd-a" nsenter -t "$(testhost_leader)" -a test -c "/proc/$leader/root/dev/tty62"
  # sd-a's root is an overlay mounted inside the test host: read it there.
  in_testhost grep '^dialout:' /var/lib/machines/sd-a/etc/group
  local gid
  gid=$(echo "$OUT" | cut -d: -f3)
  assert_contains "$OUT" "sai" "sd-a's build user in dialout"
  in_testhost stat -c '%a %g' "/proc/$leader/root/dev/tty62"
  assert_eq "660 $gid" "$OUT" "the node in sd-a"
  # Opened by sai from inside sd-a's own cgroup, where the device policy
  # holds (a process entered with nsenter would escape it).
  in_testhost systemd-run -M sd-a --uid=sai --wait --pipe --quiet sh -c 'exec 3<>/dev/tty62 && echo opened'
  assert_eq opened "$OUT" "sai opening /dev/tty62 in sd-a (status $RC)"
  # The baseline of systemd-nspawn@.service stays.
  in_testhost systemctl show -p DeviceAllow --value systemd-nspawn@sd-a
  assert_contains "$OUT" "/dev/net/tun rwm"
  echo remove > /sys/class/tty/tty62/uevent
  wait_for 10 "DeviceAllow= to drop 4:62" bash -c "! nsenter -t $(testhost_leader) -a systemctl show -p DeviceAllow --value systemd-nspawn@sd-a | grep -q '/dev/char/4:62'"
  wait_for 10 "/dev/tty62 to leave sd-a" bash -c "! nsenter -t $(testhost_leader) -a test -e /proc/$leader/root/dev/tty62"
  in_testhost systemctl show -p DeviceAllow --value systemd-nspawn@sd-a
  assert_contains "$OUT" "/dev/net/tun rwm"
}

# B6's figure, measured here rather than on a test host of its own: the
# agent's latency from udev's event to the node usable in sd-a (DeviceAllow=
# widened, node made), and back, over FARMHAND_BENCH_HOTPLUG_EVENTS plugs
# (default 200). Printed, never asserted.
testcase_hotplug_latency_through_systemd() {
  local rounds=${FARMHAND_BENCH_HOTPLUG_EVENTS:-200} tl l node db first i deadline
  tl=$(testhost_leader)
  l=$(nsenter -t "$tl" -a machinectl show sd-a -p Leader --value)
  node=/proc/$tl/root/proc/$l/root/dev/tty62
  db=$HOSTDIR/var/lib/farmhand/state.db
  first=$(sqlite3 "$db" 'SELECT COALESCE(MAX(id), 0) FROM device_events')
  deadline=$((SECONDS + 300))
  for ((i = 0; i < rounds; i++)); do
    echo add > /sys/class/tty/tty62/uevent
    while [ ! -c "$node" ]; do [ $SECONDS -lt $deadline ] || fail "tty62 did not come (round $i)"; done
    echo remove > /sys/class/tty/tty62/uevent
    while [ -e "$node" ]; do [ $SECONDS -lt $deadline ] || fail "tty62 did not go (round $i)"; done
  done
  local action label
  for action in attach detach; do
    label="plug to usable in sd-a"
    [ $action = attach ] || label="unplug to revoked and removed"
    sqlite3 "$db" "SELECT latency_us FROM device_events WHERE id > $first AND action = '$action'" | sort -n |
      awk -v l="B6 ($TESTHOST_CGROUP cgroups): $label" '{ v[NR] = $1 } END {
        if (NR == 0) { print l ": no events"; exit 1 }
        printf "    %s: p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%d events)\n", l,
          v[int((NR - 1) * 0.50) + 1] / 1000, v[int((NR - 1) * 0.99) + 1] / 1000, v[NR] / 1000, NR }'
  done
  echo "    ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
}

# machined tells the agent when the container stops and starts again: the
# lease waits, pending, and the restarted container gets its device back.
testcase_device_follows_a_container_restart() {
  local db=$HOSTDIR/var/lib/farmhand/state.db leader
  echo add > /sys/class/tty/tty62/uevent
  wait_for 10 "an attached lease on /dev/tty62" bash -c "sqlite3 '$db' \"SELECT state FROM device_leases WHERE devnode='/dev/tty62'\" | grep -qx attached"
  in_testhost systemctl stop systemd-nspawn@sd-a
  wait_for 10 "a pending lease on /dev/tty62" bash -c "sqlite3 '$db' \"SELECT state FROM device_leases WHERE devnode='/dev/tty62'\" | grep -qx pending"
  in_testhost systemctl start systemd-nspawn@sd-a
  wait_for 30 "an attached lease on /dev/tty62" bash -c "sqlite3 '$db' \"SELECT state FROM device_leases WHERE devnode='/dev/tty62'\" | grep -qx attached"
  leader=$(nsenter -t "$(testhost_leader)" -a machinectl show sd-a -p Leader --value)
  wait_for 10 "/dev/tty62 in sd-a" nsenter -t "$(testhost_leader)" -a test -c "/proc/$leader/root/dev/tty62"
  echo remove > /sys/class/tty/tty62/uevent
  wait_for 10 "DeviceAllow= to drop 4:62" bash -c "! nsenter -t $(testhost_leader) -a systemctl show -p DeviceAllow --value systemd-nspawn@sd-a | grep -q '/dev/char/4:62'"
}

testcase_destroy_stops_and_removes() {
  farmhand_in_testhost destroy sd-a
  assert_eq 0 "$RC" "$OUT"
  in_testhost systemctl is-active systemd-nspawn@sd-a
  assert_eq inactive "$OUT"
  assert_missing "$HOSTDIR/var/lib/machines/sd-a/etc"
  assert_missing "$HOSTDIR/etc/systemd/nspawn/sd-a.nspawn"
  assert_missing "$HOSTDIR/etc/systemd/system/machines.target.wants/systemd-nspawn@sd-a.service"
}

run_testcases
