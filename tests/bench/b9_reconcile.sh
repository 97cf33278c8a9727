#!/usr/bin/env bash
# B9: how long a starting agent takes to reconcile its device leases, on
# the direct device-cgroup path (cgroup v1, no systemd as PID 1), with a
# real udevd and real containers. Every tty this machine has that can pose
# as a USB serial adapter does (up to 100; tty62 is left to the booted test
# hosts' tests), half of them for each of two containers, all plugged in
# and leased. Then the agent is SIGKILLed and started again:
#   - ROUNDS times (default 5) with every device present and leased: each
#     lease is handed over again (idempotently), as at every agent start;
#   - once with every device unplugged while it was down: all taken back;
#   - once with every device plugged in again while it was down, no lease
#     left: all handed over.
# The figure is the agent's own: it logs "devices: reconciled N lease(s),
# ... in X ms", from enumerating the devices to the last lease settled.
# The wall time from starting the process to that line is printed beside
# it. After each round the leases, the nodes in the containers and the
# device cgroups are checked. Prints figures; fails only if something
# cannot run or the state is wrong.
#
#   tests/bench/b9_reconcile.sh /path/to/farmhand
set -uo pipefail
export LC_ALL=C
ROUNDS=${FARMHAND_BENCH_RECONCILE_ROUNDS:-5}
INTEGRATION=$(cd "$(dirname "$0")/../integration" && pwd)
source "$INTEGRATION/lib.sh"

# The devices: tty0..tty63 and ttyS* as this machine has them, but tty62.
DEVICES=()
for d in /sys/class/tty/tty[0-9]* /sys/class/tty/ttyS[0-9]*; do
  name=${d##*/}
  [ -e "$d/dev" ] && [ -c "/dev/$name" ] && [ "$name" != tty62 ] && DEVICES+=("$name")
done
DEVICES=("${DEVICES[@]:0:100}")
N=${#DEVICES[@]}
[ "$N" -gt 0 ] || { echo "bench: no tty device to use" >&2; exit 1; }

# Put back what udevd's default rules change on the host: the nodes' owner
# and mode (after udevd is gone: registered before hotplug_lib's cleanups,
# so it runs after them), and the udev database (below).
MODES=$(for d in "${DEVICES[@]}"; do stat -c '%a %u %g %n' "/dev/$d"; done)
on_exit 'while read -r mode uid gid node; do chown "$uid:$gid" "$node"; chmod "$mode" "$node"; done <<< "$MODES"'
HAD_DB=()
for d in "${DEVICES[@]}"; do
  [ -e "/run/udev/data/c$(cat "/sys/class/tty/$d/dev")" ] && HAD_DB+=("$d")
done

source "$INTEGRATION/hotplug_lib.sh"
set -e

DB=$ROOT/var/lib/farmhand/state.db
RULES=/etc/udev/rules.d/99-farmhand-bench-reconcile.rules
# The containers of the hotplug tests (same bases), with other rules.
cat > "$CONFIG" <<JSON
{"containers": [
  {"name": "hp-a", "distro": "debian", "release": "bookworm", "arch": "amd64",
   "packages": ["cmake", "openssh-server"],
   "devices": [{"match": {"usb_ids": ["0403:6001"]}}]},
  {"name": "hp-b", "distro": "debian", "release": "bookworm", "arch": "amd64",
   "packages": ["cmake", "openssh-server"], "private_users": true,
   "devices": [{"match": {"usb_ids": ["10c4:ea60"]}}]}
]}
JSON
# Devices whose number ends in an even digit go to hp-a, odd to hp-b.
rules_install() {
  cat > "$RULES" <<'RULES'
# farmhand B9: ttys posing as USB serial adapters (tty62 is other tests').
SUBSYSTEM=="tty", KERNEL=="tty[0-9]*|ttyS[0-9]*", KERNEL!="tty62", ENV{ID_BUS}="usb", ENV{ID_SERIAL_SHORT}="FHB9%k", ENV{ID_USB_INTERFACE_NUM}="00", SYMLINK+="serial/by-id/usb-farmhand_B9_%k-if00-port0"
SUBSYSTEM=="tty", KERNEL=="tty*[02468]", KERNEL!="tty62", ENV{ID_VENDOR_ID}="0403", ENV{ID_MODEL_ID}="6001"
SUBSYSTEM=="tty", KERNEL=="tty*[13579]", ENV{ID_VENDOR_ID}="10c4", ENV{ID_MODEL_ID}="ea60"
RULES
  udevadm control --reload
}
# Runs before hotplug_lib's cleanup_udev: without the rules, the devices
# are forgotten by udev (a remove) unless it knew them before (a change).
bench_udev_cleanup() {
  rm -f "$RULES"
  udevadm control --reload 2>/dev/null || return 0
  local d
  for d in "${DEVICES[@]}"; do
    if [[ " ${HAD_DB[*]} " == *" $d "* ]]; then fire change "$d"; else fire remove "$d"; fi
  done
  udevadm settle -t 30
  return 0
}
# After the agent is stopped: it would take every device back meanwhile.
on_exit "daemon_stop; bench_udev_cleanup"

A=() B=()
for d in "${DEVICES[@]}"; do
  case $d in
    *[02468]) A+=("$d") ;;
    *) B+=("$d") ;;
  esac
done

# Nodes (major 4) in the container, tty entries in its device cgroup.
nodes_in() { (cd "/proc/$(leader "$1")/root/dev" && stat -c '%t' -- *) | grep -cx 4 || true; }
grants_in() { grep -c '^c 4:' "$(cat "$ROOT/$1.cg")/devices.list" || true; }
leases() { sqlite3 "$DB" "SELECT COUNT(*) FROM device_leases WHERE state = '$1'"; }
# "attached-leases nodes-in-hp-a nodes-in-hp-b grants-in-hp-a grants-in-hp-b leases"
state() { echo "$(leases attached) $(nodes_in hp-a) $(nodes_in hp-b) $(grants_in hp-a) $(grants_in hp-b) $(sqlite3 "$DB" 'SELECT COUNT(*) FROM device_leases')"; }
check() {  # EXPECTED-STATE WHAT
  local got
  got=$(state)
  [ "$got" = "$1" ] || { echo "bench: after $2, expected [$1] (attached leases, nodes in hp-a, hp-b, grants in hp-a, hp-b, leases), got [$got]" >&2; exit 1; }
}

# Kills the agent, runs WHILE_DOWN, starts it again; sets AGENT_MS (the
# agent's own figure), WALL_MS (from its start to that line) and
# RECONCILE_LINE.
restart() {  # [WHILE_DOWN...]
  daemon_kill
  "$@"
  local before t0 deadline=$((SECONDS + 60))
  before=$(grep -c 'devices: reconciled' "$ROOT/daemon.log" || true)
  t0=$EPOCHREALTIME
  daemon_launch
  until [ "$(grep -c 'devices: reconciled' "$ROOT/daemon.log")" -gt "$before" ]; do
    [ $SECONDS -lt $deadline ] || { echo "bench: the agent did not reconcile its devices in 60 s" >&2; exit 1; }
    sleep 0.005
  done
  WALL_MS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
  RECONCILE_LINE=$(grep 'devices: reconciled' "$ROOT/daemon.log" | tail -1)
  AGENT_MS=$(awk '{ print $(NF - 1) }' <<< "$RECONCILE_LINE")
}
fire_all() {  # ACTION
  local d
  for d in "${DEVICES[@]}"; do fire "$1" "$d"; done
  udevadm settle -t 60
}

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r)"
fhc apply
[ "$RC" = 0 ] || { echo "bench: apply failed: $OUT" >&2; exit 1; }
udevd_start >/dev/null
rules_install
cgroup_make hp-a > "$ROOT/hp-a.cg"
cgroup_make hp-b > "$ROOT/hp-b.cg"
container_start hp-a "$(cat "$ROOT/hp-a.cg")" -- /bin/sleep infinity
container_start hp-b "$(cat "$ROOT/hp-b.cg")" -- /bin/sleep infinity
daemon_start

FULL="$N ${#A[@]} ${#B[@]} ${#A[@]} ${#B[@]} $N"
t0=$EPOCHREALTIME
fire_all add
wait_for 120 "$N attached leases" bash -c "[ \$(sqlite3 '$DB' \"SELECT COUNT(*) FROM device_leases WHERE state = 'attached'\") = $N ]"
plug_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
check "$FULL" "plugging every device in"

leased=() walls=()
for ((r = 0; r < ROUNDS; r++)); do
  restart
  check "$FULL" "restart $((r + 1))"
  leased+=("$AGENT_MS")
  walls+=("$WALL_MS")
done
restart fire_all remove
gone_ms=$AGENT_MS gone_wall=$WALL_MS
check "0 0 0 0 0 0" "a restart with every device unplugged"
restart fire_all add
back_ms=$AGENT_MS back_wall=$WALL_MS
check "$FULL" "a restart with every device plugged in again"

stats() {  # "min median max" of the arguments
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "min %7.1f  median %7.1f  max %7.1f ms", v[1], m, v[NR] }'
}
echo
echo "B9 device reconcile at agent start (cgroup v1 path; containers hp-a, and hp-b with private users, each running a sleep)"
consoles=0 serial=()
for d in "${DEVICES[@]}"; do
  case $d in ttyS*) serial+=("$d") ;; *) consoles=$((consoles + 1)) ;; esac
done
echo "devices: $N ($consoles of tty0-tty63, tty62 left out, and ${serial[*]:-no ttyS}: every tty here that can pose as an adapter$([ "$N" -lt 100 ] && echo "; fewer than the 100 wanted")), ${#A[@]} for hp-a, ${#B[@]} for hp-b"
echo "first hand-over: $N plug events fired at once, all attached in $plug_s s"
echo "restart, $N leased and present, all handed over again ($ROUNDS rounds):"
echo "  agent's figure  $(stats "${leased[@]}")"
echo "  start to logged $(stats "${walls[@]}")  (process start included)"
echo "restart, $N leased, all unplugged meanwhile: $gone_ms ms (agent), $gone_wall ms (wall)"
echo "restart, $N plugged in meanwhile, no lease:  $back_ms ms (agent), $back_wall ms (wall)"
echo "last agent line: $RECONCILE_LINE"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r)"
