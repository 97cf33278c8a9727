#!/usr/bin/env bash
# USB serial hotplug with real udev events, real containers and real device
# cgroups (cgroup v1, as on this machine): `farmhand daemon` hands matching
# devices to running containers, owned and 0660, and takes them back on
# unplug. udevd is started here; a rules file gives ttyS0, tty60 and tty61
# the identity of USB serial adapters.
source "$(dirname "$0")/lib.sh"

CGROOT=/sys/fs/cgroup/devices
[ -d "$CGROOT" ] || { echo "SKIP: no cgroup v1 devices controller at $CGROOT"; exit 1; }

make_root ROOT
CONFIG=$ROOT/agent.json
RULES=/etc/udev/rules.d/99-farmhand-hotplug-test.rules
BYID=usb-FTDI_FT232R_FHTEST0-if00-port0
cat > "$CONFIG" <<JSON
{"containers": [
  {"name": "hp-a", "distro": "debian", "release": "bookworm", "arch": "amd64",
   "packages": ["cmake", "openssh-server"],
   "devices": [{"match": {"usb_ids": ["0403:6001", "1a86:7523"]}}]},
  {"name": "hp-b", "distro": "debian", "release": "bookworm", "arch": "amd64",
   "packages": ["cmake", "openssh-server"], "private_users": true,
   "devices": [{"match": {"usb_ids": ["10c4:ea60"], "serial": "FHTEST2"}, "group": "dialout", "mode": "0660"}]}
]}
JSON

udevd_start() {
  if pgrep -x systemd-udevd >/dev/null; then
    echo "    (using the systemd-udevd already running)"
    return 0
  fi
  /lib/systemd/systemd-udevd >"$ROOT/udevd.log" 2>&1 &
  UDEVD_PID=$!
  echo "$UDEVD_PID" > "$ROOT/udevd.pid"
  wait_for 10 udevadm control --ping
}

rules_install() {
  cat > "$RULES" <<'RULES'
# farmhand hotplug test: tty devices posing as USB serial adapters.
KERNEL=="ttyS0", ENV{ID_BUS}="usb", ENV{ID_VENDOR_ID}="0403", ENV{ID_MODEL_ID}="6001", ENV{ID_SERIAL_SHORT}="FHTEST0", ENV{ID_PATH}="pci-0000:00:14.0-usb-0:1:1.0", ENV{ID_USB_INTERFACE_NUM}="00", SYMLINK+="serial/by-id/usb-FTDI_FT232R_FHTEST0-if00-port0", SYMLINK+="serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0"
KERNEL=="tty60", ENV{ID_BUS}="usb", ENV{ID_VENDOR_ID}="1A86", ENV{ID_MODEL_ID}="7523", ENV{ID_SERIAL_SHORT}="FHTEST1", ENV{ID_PATH}="pci-0000:00:14.0-usb-0:2:1.0", ENV{ID_USB_INTERFACE_NUM}="00", SYMLINK+="serial/by-id/usb-1a86_USB_Serial_FHTEST1-if00-port0"
KERNEL=="tty61", ENV{ID_BUS}="usb", ENV{ID_VENDOR_ID}="10c4", ENV{ID_MODEL_ID}="ea60", ENV{ID_SERIAL_SHORT}="FHTEST2", ENV{ID_PATH}="pci-0000:00:14.0-usb-0:3:1.0", ENV{ID_USB_INTERFACE_NUM}="00", SYMLINK+="serial/by-id/usb-Silicon_Labs_CP2102_FHTEST2-if00-port0"
RULES
  udevadm control --reload
}

cleanup_udev() {
  rm -f "$RULES"
  udevadm control --reload 2>/dev/null
  udevadm trigger --action=change --sysname-match=ttyS0 --sysname-match=tty60 --sysname-match=tty61 2>/dev/null
  udevadm settle -t 10 2>/dev/null
  if [ -f "$ROOT/udevd.pid" ]; then
    local pid
    pid=$(cat "$ROOT/udevd.pid")
    kill -TERM "$pid" 2>/dev/null && timeout 10 tail --pid="$pid" -f /dev/null
  fi
  return 0
}

# A device cgroup like the one systemd-nspawn@ gets: closed, plus the nodes
# nspawn and a booted container need.
cgroup_make() {  # NAME
  local cg=$CGROOT/farmhand-hp-$$-$1
  mkdir -p "$cg"
  echo a > "$cg/devices.deny"
  local d
  for d in 'c 1:3 rwm' 'c 1:5 rwm' 'c 1:7 rwm' 'c 1:8 rwm' 'c 1:9 rwm' 'c 5:0 rwm' 'c 5:1 rwm' 'c 5:2 rwm' \
           'c 136:* rwm' 'c 10:200 rwm'; do
    echo "$d" > "$cg/devices.allow"
  done
  echo "$cg"
}

cgroup_remove() {
  local cg
  for cg in "$CGROOT"/farmhand-hp-$$-*; do
    [ -d "$cg" ] || continue
    local p
    for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    sleep 0.2
    rmdir "$cg" 2>/dev/null
  done
  return 0
}

# Starts container NAME inside device cgroup CG with `farmhand run`, in the
# background: booted, or running COMMAND; its pid goes to $ROOT/NAME.pid.
container_start() {  # NAME CG [-- COMMAND...]
  local name=$1 cg=$2
  shift 2
  setsid bash -c 'cg=$1; shift; echo $$ > "$cg/cgroup.procs" && exec "$@"' _ \
    "$cg" "$FH" --root "$ROOT" --config "$CONFIG" run "$name" "$@" >"$ROOT/$name.log" 2>&1 &
  echo $! > "$ROOT/$name.pid"
  wait_for 30 leader "$name"
  [ $# -gt 0 ] && return 0
  wait_for 90 bash -c "nsenter -t $(leader "$name") -a systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded'"
}

container_stop() {  # NAME
  local pid
  pid=$(cat "$ROOT/$1.pid" 2>/dev/null) || return 0
  kill -TERM "$pid" 2>/dev/null && timeout 60 tail --pid="$pid" -f /dev/null
  return 0
}

# The container's init: the child of nspawn in a PID namespace of its own.
leader() {
  local p c
  p=$(cat "$ROOT/$1.pid")
  for c in $(pgrep -P "$p"); do
    [ "$(readlink "/proc/$c/ns/pid")" != "$(readlink "/proc/$p/ns/pid")" ] && { echo "$c"; return 0; }
  done
  return 1
}

# Runs a command inside container NAME, from a process in its device cgroup
# (device access is decided by the cgroup of the process that opens).
in_container() {  # NAME CG CMD...
  local name=$1 cg=$2
  shift 2
  RC=0
  OUT=$(bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec nsenter -t "$@"' _ "$cg" "$(leader "$name")" -a "$@" 2>&1) || RC=$?
}

daemon_start() {
  "$FH" --root "$ROOT" --config "$CONFIG" daemon >>"$ROOT/daemon.log" 2>&1 &
  echo $! > "$ROOT/daemon.pid"
  wait_for 60 grep -q "reconcile:" "$ROOT/daemon.log"
}

daemon_stop() {
  local pid
  pid=$(cat "$ROOT/daemon.pid" 2>/dev/null) || return 0
  kill -TERM "$pid" 2>/dev/null && timeout 30 tail --pid="$pid" -f /dev/null
  return 0
}

trigger() {  # ACTION SYSNAME
  udevadm trigger --action="$1" --sysname-match="$2"
}

on_exit cleanup_udev
on_exit cgroup_remove
on_exit "container_stop hp-a; container_stop hp-b"
on_exit daemon_stop

testcase_setup() {
  fh --root "$ROOT" --config "$CONFIG" apply
  assert_eq 0 "$RC" "apply: $OUT"
  # The build user joined the group its devices are given to.
  assert_contains "$(grep '^dialout:' "$ROOT/var/lib/machines/hp-a/etc/group")" "sai"
  udevd_start
  rules_install
  cgroup_make hp-a > "$ROOT/hp-a.cg"
  cgroup_make hp-b > "$ROOT/hp-b.cg"
  container_start hp-a "$(cat "$ROOT/hp-a.cg")"
  daemon_start
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

testcase_restarted_agent_reconciles() {
  daemon_stop
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
  local i dev
  for ((i = 0; i < 500; i++)); do
    for dev in ttyS0 tty60 tty61; do
      udevadm trigger --action=add --sysname-match=$dev
      udevadm trigger --action=remove --sysname-match=$dev
    done
  done
  # End with two of the three devices present.
  trigger add ttyS0
  trigger add tty61
  udevadm settle -t 120
  wait_for 60 bash -c "sqlite3 '$ROOT/var/lib/farmhand/state.db' 'SELECT devnode FROM device_leases ORDER BY devnode' | tr '\n' ' ' | grep -qx '/dev/tty61 /dev/ttyS0 '"
  wait_for 30 test -c "/proc/$(leader hp-a)/root/dev/ttyS0"
  wait_for 30 test -c "/proc/$(leader hp-b)/root/dev/tty61"
  assert_missing "/proc/$(leader hp-a)/root/dev/tty60"
  assert_missing "/proc/$(leader hp-b)/root/dev/ttyS0"
  assert_eq "c 4:64 rw" "$(grep -E '^c 4:(64|60|61) ' "$(cat "$ROOT/hp-a.cg")/devices.list")" "hp-a's serial entries"
  assert_eq "c 4:61 rw" "$(grep -E '^c 4:(64|60|61) ' "$(cat "$ROOT/hp-b.cg")/devices.list")" "hp-b's serial entries"
  assert_eq "attached attached" "$(sqlite3 "$ROOT/var/lib/farmhand/state.db" 'SELECT state FROM device_leases' | tr '\n' ' ' | sed 's/ $//')"
  echo "    storm: $(sqlite3 "$ROOT/var/lib/farmhand/state.db" "SELECT COUNT(*) FROM device_events WHERE action IN ('attach','detach','pending')") events recorded"
}

run_testcases
