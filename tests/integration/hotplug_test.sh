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
  # The positive evidence first: the agent has read the remove and waits
  # for events again, and holds no lease on ttyS0. Only then does nothing
  # having been handed over mean anything.
  wait_for 10 "the agent to handle the remove of ttyS0" agent_done_with ttyS0
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
  wait_for 10 "/dev/ttyS0 in hp-a" test -c "/proc/$(leader hp-a)/root/dev/ttyS0"
  in_container hp-a "$cg" stat -c '%a %G %t:%T' /dev/ttyS0
  assert_eq "660 dialout 4:40" "$OUT" "the node inside"
  in_container hp-a "$cg" readlink "/dev/serial/by-id/$BYID"
  assert_eq "../../ttyS0" "$OUT" "the by-id link inside"
  in_container hp-a "$cg" runuser -u sai -- stty -F /dev/ttyS0
  assert_eq 0 "$RC" "sai runs stty on /dev/ttyS0: $OUT"
  grep -q 'c 4:64 rw' "$cg/devices.list" || fail "4:64 not in the cgroup: $(cat "$cg/devices.list")"
  fhc devices --json
  assert_eq 0 "$RC" "$OUT"
  assert_eq "hp-a attached" "$(echo "$OUT" | python3 -c 'import json,sys
for d in json.load(sys.stdin):
    if d["device"] == "/dev/ttyS0": print(d["container"], d["state"])')"
}

testcase_unplug_takes_it_back() {
  local cg
  cg=$(cat "$ROOT/hp-a.cg")
  trigger remove ttyS0
  wait_for 10 "/dev/ttyS0 to leave hp-a" bash -c "! test -e /proc/$(leader hp-a)/root/dev/ttyS0"
  assert_missing "/proc/$(leader hp-a)/root/dev/serial/by-id/$BYID"
  ! grep -q 'c 4:64 rw' "$cg/devices.list" || fail "4:64 still in the cgroup"
  in_container hp-a "$cg" bash -c 'mknod /tmp/probe c 4 64 && stty -F /tmp/probe; r=$?; rm -f /tmp/probe; exit $r'
  [ "$RC" != 0 ] || fail "root inside opened 4:64 after the unplug"
  assert_contains "$(sqlite3 "$ROOT/var/lib/farmhand/state.db" "SELECT action FROM device_events ORDER BY id DESC LIMIT 1")" "detach"
}

testcase_container_started_after_the_plug_gets_the_device() {
  trigger add tty61   # FHTEST2 belongs to hp-b, which is not running
  wait_for 10 "a pending lease on /dev/tty61" bash -c "sqlite3 '$ROOT/var/lib/farmhand/state.db' \"SELECT state FROM device_leases WHERE devnode='/dev/tty61'\" | grep -qx pending"
  # Not booted: systemd cannot run as PID 1 of a private-users container on
  # a host without systemd (it cannot create its cgroup); a long-running
  # process is enough to hold devices.
  container_start hp-b "$(cat "$ROOT/hp-b.cg")" -- /bin/sleep infinity
  wait_for 10 "/dev/tty61 in hp-b" test -c "/proc/$(leader hp-b)/root/dev/tty61"
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
  wait_for 10 "/dev/tty60 in hp-a" test -c "/proc/$(leader hp-a)/root/dev/tty60"
  wait_for 10 "/dev/tty61 to leave hp-b" bash -c "! test -e /proc/$(leader hp-b)/root/dev/tty61"
  ! grep -q 'c 4:61 rw' "$(cat "$ROOT/hp-b.cg")/devices.list" || fail "tty61 still allowed in hp-b"
  assert_eq "/dev/tty60 hp-a attached" \
    "$(sqlite3 "$ROOT/var/lib/farmhand/state.db" "SELECT devnode, container, state FROM device_leases" | tr '|' ' ')"
  trigger remove tty60
  wait_for 10 "/dev/tty60 to leave hp-a" bash -c "! test -e /proc/$(leader hp-a)/root/dev/tty60"
}

testcase_storm_leaves_exactly_what_is_present() {
  # 500 cycles over 3 devices, ending with two of them present.
  storm 500
  wait_for 30 "/dev/ttyS0 in hp-a" test -c "/proc/$(leader hp-a)/root/dev/ttyS0"
  wait_for 30 "/dev/tty61 in hp-b" test -c "/proc/$(leader hp-b)/root/dev/tty61"
  assert_missing "/proc/$(leader hp-a)/root/dev/tty60"
  assert_missing "/proc/$(leader hp-b)/root/dev/ttyS0"
  assert_eq "c 4:64 rw" "$(grep -E '^c 4:(64|60|61) ' "$(cat "$ROOT/hp-a.cg")/devices.list")" "hp-a's serial entries"
  assert_eq "c 4:61 rw" "$(grep -E '^c 4:(64|60|61) ' "$(cat "$ROOT/hp-b.cg")/devices.list")" "hp-b's serial entries"
  assert_eq "attached attached" "$(sqlite3 "$ROOT/var/lib/farmhand/state.db" 'SELECT state FROM device_leases' | tr '\n' ' ' | sed 's/ $//')"
  echo "    storm: $(sqlite3 "$ROOT/var/lib/farmhand/state.db" "SELECT COUNT(*) FROM device_events WHERE action IN ('attach','detach','pending')") events recorded"
}

testcase_a_stopped_container_waits_and_gets_its_devices_back() {
  container_stop hp-b
  wait_for 10 "a pending lease on /dev/tty61" bash -c "sqlite3 '$ROOT/var/lib/farmhand/state.db' \"SELECT state FROM device_leases WHERE devnode='/dev/tty61'\" | grep -qx pending"
  container_start hp-b "$(cat "$ROOT/hp-b.cg")" -- /bin/sleep infinity
  wait_for 30 "/dev/tty61 in hp-b" test -c "/proc/$(leader hp-b)/root/dev/tty61"
  assert_eq attached "$(sqlite3 "$ROOT/var/lib/farmhand/state.db" "SELECT state FROM device_leases WHERE devnode='/dev/tty61'")"
}

testcase_storm_with_the_agent_killed_at_random_points() {
  # 10,000 plug and unplug events in a random order over the three devices,
  # fired as fast as udevd takes them (a settle every 50), with the agent
  # SIGKILLed before 20 random ones and started again after a random number
  # of further events (0-99) fired while it is down. The seed decides the
  # events, the kill points and the downtimes (not the exact timing).
  local events=${FARMHAND_TEST_STORM_EVENTS:-10000} kills=${FARMHAND_TEST_STORM_KILLS:-20} batch=50
  local seed=${FARMHAND_TEST_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
  echo "    seed $seed (FARMHAND_TEST_SEED=$seed repeats these events and kill points)"
  RANDOM=$seed
  local devs=(ttyS0 tty60 tty61) actions=(remove add)
  local -a ev_dev=() ev_act=()
  local -A kill_at=()  # event index -> events fired before the restart
  local i
  for ((i = 0; i < events; i++)); do
    ev_dev[i]=$((RANDOM % 3))
    ev_act[i]=$((RANDOM % 2))
  done
  while [ "${#kill_at[@]}" -lt "$kills" ]; do
    i=$(((RANDOM * 32768 + RANDOM) % (events - 1) + 1))
    [ -n "${kill_at[$i]:-}" ] || kill_at[$i]=$((RANDOM % 100))
  done
  echo "    kills before events: $(printf '%s\n' "${!kill_at[@]}" | sort -n | tr '\n' ' ')"

  local db=$ROOT/var/lib/farmhand/state.db cg_a cg_b other_a other_b first
  cg_a=$(cat "$ROOT/hp-a.cg")
  cg_b=$(cat "$ROOT/hp-b.cg")
  other_a=$(grep -v '^c 4:' "$cg_a/devices.list")
  other_b=$(grep -v '^c 4:' "$cg_b/devices.list")
  first=$(sqlite3 "$db" 'SELECT COALESCE(MAX(id), 0) FROM device_events')
  local starts_before reconciles_before
  starts_before=$(grep -c 'farmhand agent started' "$ROOT/daemon.log" || true)
  reconciles_before=$(grep -c 'devices: reconciled' "$ROOT/daemon.log" || true)
  local restart_at=-1 killed=0 midway=0 t0=$EPOCHREALTIME
  local -a last=(remove remove remove)
  for ((i = 0; i < events; i++)); do
    if [ -n "${kill_at[$i]:-}" ]; then
      # Down still, with another kill due: started, to be killed at once.
      [ "$restart_at" -lt 0 ] || daemon_launch
      kill -0 "$(cat "$ROOT/daemon.pid")" || fail "the agent had ended by itself before kill $((killed + 1))"
      daemon_kill
      # 127: not this shell's child (the first), alive until killed.
      [[ "$DAEMON_STATUS" =~ ^(137|127)$ ]] ||
        fail "the agent had ended by itself (status $DAEMON_STATUS) before kill $((killed + 1))"
      killed=$((killed + 1))
      [ "$(sqlite3 "$db" "SELECT COUNT(*) FROM device_leases WHERE state IN ('attaching', 'revoking')")" = 0 ] ||
        midway=$((midway + 1))
      restart_at=$((i + kill_at[$i]))
    fi
    if [ "$restart_at" -ge 0 ] && [ "$i" -ge "$restart_at" ]; then
      daemon_launch
      restart_at=-1
    fi
    fire "${actions[ev_act[i]]}" "${devs[ev_dev[i]]}"
    last[ev_dev[i]]=${actions[ev_act[i]]}
    if (((i + 1) % batch == 0)); then udevadm settle -t 60; fi
  done
  [ "$restart_at" -lt 0 ] || daemon_launch
  udevadm settle -t 60
  local fired present=()
  fired=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  for i in 0 1 2; do
    [ "${last[i]}" = add ] && present+=("${devs[i]}")
  done
  echo "    $events events fired in $fired s, $killed kills ($midway left a lease attaching or revoking);" \
    "plugged in at the end: ${present[*]:-none}"

  # Exactly the devices present, with the right container, and nothing
  # else, once the agent has worked through what it was sent: the state
  # may match on the way, while it still catches up with a backlog.
  local expected deadline=$((SECONDS + 60)) recorded seen=-1
  expected=$(expected_state "${present[@]}")
  while [ $SECONDS -lt $deadline ]; do
    recorded=$(sqlite3 "$db" 'SELECT COALESCE(MAX(id), 0) FROM device_events')
    agent_idle && [ "$recorded" = "$seen" ] && [ "$(device_state)" = "$expected" ] && break
    seen=$recorded
    sleep 0.3
  done
  echo "    settled $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s after the first event"
  agent_idle || fail "the agent is still busy"
  assert_eq "$expected" "$(device_state)" "nodes, links, cgroup entries and leases"
  assert_eq "$other_a" "$(grep -v '^c 4:' "$cg_a/devices.list")" "hp-a's other cgroup entries"
  assert_eq "$other_b" "$(grep -v '^c 4:' "$cg_b/devices.list")" "hp-b's other cgroup entries"
  local pid
  pid=$(cat "$ROOT/daemon.pid")
  kill -0 "$pid" || fail "the agent is not running at the end"
  # An agent killed before its device reconcile was done did none or part
  # of it: both kinds of kill are wanted.
  echo "    of $killed agents started again, $(($(grep -c 'farmhand agent started' "$ROOT/daemon.log") - starts_before))" \
    "logged their start and $(($(grep -c 'devices: reconciled' "$ROOT/daemon.log") - reconciles_before)) reconciled their devices;" \
    "$(sqlite3 "$db" "SELECT group_concat(n || ' ' || action, ', ') FROM (SELECT action, COUNT(*) AS n FROM device_events WHERE id > $first GROUP BY action)") recorded"
}

run_testcases
