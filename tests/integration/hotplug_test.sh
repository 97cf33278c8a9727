#!/usr/bin/env bash
# USB serial hotplug with real udev events, real containers and real device
# cgroups (cgroup v1, as on this machine): `farmhand daemon` hands matching
# devices to running containers, owned and 0660, and takes them back on
# unplug. udevd is started here; a rules file gives ttyS0, tty60 and tty61
# the identity of USB serial adapters.
source "$(dirname "$0")/lib.sh"

source "$(dirname "$0")/hotplug_lib.sh"

testcase_setup() {
  hotplug_setup
  # The build user joined the group its devices are given to.
  assert_contains "$(grep '^dialout:' "$ROOT/var/lib/machines/hp-a/etc/group")" "sai"
}

testcase_sai_cannot_open_before_the_plug() {
  trigger remove ttyS0
  udevadm settle
  sleep 0.3
  local cg
  cg=$(cat "$ROOT/hp-a.cg")
  in_container hp-a "$cg" runuser -u sai -- stty -F /dev/ttyS0
  [ "$RC" != 0 ] || fail "sai opened /dev/ttyS0 before the plug"
  # Not even root with its own node: the device cgroup denies it.
  in_container hp-a "$cg" bash -c 'mknod /tmp/probe c 4 64 && stty -F /tmp/probe; r=$?; rm -f /tmp/probe; exit $r'
  [ "$RC" != 0 ] || fail "the device cgroup allowed 4:64 before the plug: $OUT"
}

testcase_plug_hands_the_device_over() {
  local cg
  cg=$(cat "$ROOT/hp-a.cg")
  trigger add ttyS0
  wait_for 10 test -c "/proc/$(leader hp-a)/root/dev/ttyS0"
  in_container hp-a "$cg" stat -c '%a %G %t:%T' /dev/ttyS0
  assert_eq "660 dialout 4:40" "$OUT" "the node inside"
  in_container hp-a "$cg" readlink "/dev/serial/by-id/$BYID"
  assert_eq "../../ttyS0" "$OUT" "the by-id link inside"
  in_container hp-a "$cg" runuser -u sai -- stty -F /dev/ttyS0
  assert_eq 0 "$RC" "sai runs stty on /dev/ttyS0: $OUT"
  grep -q 'c 4:64 rw' "$cg/devices.list" || fail "4:64 not in the cgroup: $(cat "$cg/devices.list")"
  fh --root "$ROOT" --config "$CONFIG" devices --json
  assert_eq 0 "$RC" "$OUT"
  assert_eq "hp-a attached" "$(echo "$OUT" | python3 -c 'import json,sys
for d in json.load(sys.stdin):
    if d["device"] == "/dev/ttyS0": print(d["container"], d["state"])')"
}

testcase_unplug_takes_it_back() {
  local cg
  cg=$(cat "$ROOT/hp-a.cg")
  trigger remove ttyS0
  wait_for 10 bash -c "! test -e /proc/$(leader hp-a)/root/dev/ttyS0"
  assert_missing "/proc/$(leader hp-a)/root/dev/serial/by-id/$BYID"
  ! grep -q 'c 4:64 rw' "$cg/devices.list" || fail "4:64 still in the cgroup"
  in_container hp-a "$cg" bash -c 'mknod /tmp/probe c 4 64 && stty -F /tmp/probe; r=$?; rm -f /tmp/probe; exit $r'
  [ "$RC" != 0 ] || fail "root inside opened 4:64 after the unplug"
  assert_contains "$(sqlite3 "$ROOT/var/lib/farmhand/state.db" "SELECT action FROM device_events ORDER BY id DESC LIMIT 1")" "detach"
}

testcase_container_started_after_the_plug_gets_the_device() {
  trigger add tty61   # FHTEST2 belongs to hp-b, which is not running
  wait_for 10 bash -c "sqlite3 '$ROOT/var/lib/farmhand/state.db' \"SELECT state FROM device_leases WHERE devnode='/dev/tty61'\" | grep -qx pending"
  # Not booted: systemd cannot run as PID 1 of a private-users container on
  # a host without systemd (it cannot create its cgroup); a long-running
  # process is enough to hold devices.
  container_start hp-b "$(cat "$ROOT/hp-b.cg")" -- /bin/sleep infinity
  wait_for 10 test -c "/proc/$(leader hp-b)/root/dev/tty61"
  # Private users: owner and group are the container's root and dialout.
  local cg
  cg=$(cat "$ROOT/hp-b.cg")
  in_container hp-b "$cg" stat -c '%a %U %G' /dev/tty61
  assert_eq "660 root dialout" "$OUT" "the node inside a private-users container"
  in_container hp-b "$cg" runuser -u sai -- stty -F /dev/tty61
  assert_eq 0 "$RC" "sai in hp-b runs stty: $OUT"
}

testcase_killed_agent_reconciles_when_restarted() {
  daemon_kill
  # While no agent runs: one device unplugged, another plugged.
  trigger remove tty61
  trigger add tty60
  udevadm settle
  daemon_start
  wait_for 10 test -c "/proc/$(leader hp-a)/root/dev/tty60"
  wait_for 10 bash -c "! test -e /proc/$(leader hp-b)/root/dev/tty61"
  ! grep -q 'c 4:61 rw' "$(cat "$ROOT/hp-b.cg")/devices.list" || fail "tty61 still allowed in hp-b"
  assert_eq "/dev/tty60 hp-a attached" \
    "$(sqlite3 "$ROOT/var/lib/farmhand/state.db" "SELECT devnode, container, state FROM device_leases" | tr '|' ' ')"
  trigger remove tty60
  wait_for 10 bash -c "! test -e /proc/$(leader hp-a)/root/dev/tty60"
}

testcase_storm_leaves_exactly_what_is_present() {
  # 500 cycles over 3 devices, ending with two of them present.
  storm 500
  wait_for 30 test -c "/proc/$(leader hp-a)/root/dev/ttyS0"
  wait_for 30 test -c "/proc/$(leader hp-b)/root/dev/tty61"
  assert_missing "/proc/$(leader hp-a)/root/dev/tty60"
  assert_missing "/proc/$(leader hp-b)/root/dev/ttyS0"
  assert_eq "c 4:64 rw" "$(grep -E '^c 4:(64|60|61) ' "$(cat "$ROOT/hp-a.cg")/devices.list")" "hp-a's serial entries"
  assert_eq "c 4:61 rw" "$(grep -E '^c 4:(64|60|61) ' "$(cat "$ROOT/hp-b.cg")/devices.list")" "hp-b's serial entries"
  assert_eq "attached attached" "$(sqlite3 "$ROOT/var/lib/farmhand/state.db" 'SELECT state FROM device_leases' | tr '\n' ' ' | sed 's/ $//')"
  echo "    storm: $(sqlite3 "$ROOT/var/lib/farmhand/state.db" "SELECT COUNT(*) FROM device_events WHERE action IN ('attach','detach','pending')") events recorded"
}

testcase_a_stopped_container_waits_and_gets_its_devices_back() {
  container_stop hp-b
  wait_for 10 bash -c "sqlite3 '$ROOT/var/lib/farmhand/state.db' \"SELECT state FROM device_leases WHERE devnode='/dev/tty61'\" | grep -qx pending"
  container_start hp-b "$(cat "$ROOT/hp-b.cg")" -- /bin/sleep infinity
  wait_for 30 test -c "/proc/$(leader hp-b)/root/dev/tty61"
  assert_eq attached "$(sqlite3 "$ROOT/var/lib/farmhand/state.db" "SELECT state FROM device_leases WHERE devnode='/dev/tty61'")"
}

run_testcases
