#!/usr/bin/env bash
# B5: USB serial hotplug on the direct device-cgroup path (cgroup v1, no
# systemd as PID 1), with a real udevd and real containers:
#   - latency from the agent receiving udev's event to the node usable in
#     the container (device cgroup widened, node and symlinks created),
#     over ROUNDS plug events (default 200), one at a time: p50, p99, max;
#   - storm: plug/unplug cycles over 3 devices fired back to back, the
#     events per second the agent handled, and whether the final state
#     matched the devices present.
# Latencies are the agent's own measurement, recorded with every attach in
# state.db (device_events.latency_us). Prints figures; fails only if
# something cannot run.
#
#   tests/bench/b5_hotplug.sh /path/to/farmhand
set -uo pipefail
export LC_ALL=C
ROUNDS=${FARMHAND_BENCH_HOTPLUG_EVENTS:-200}
STORM=${FARMHAND_BENCH_STORM_CYCLES:-200}
INTEGRATION=$(cd "$(dirname "$0")/../integration" && pwd)
source "$INTEGRATION/lib.sh"
source "$INTEGRATION/hotplug_lib.sh"
set -e

DB=$ROOT/var/lib/farmhand/state.db
# shellcheck disable=SC2034  # read by common.sh's percentiles
PERCENTILES_WIDTH=44

hotplug_setup >/dev/null
container_start hp-b "$(cat "$ROOT/hp-b.cg")" -- /bin/sleep infinity
LA=$(leader hp-a)
first=$(sqlite3 "$DB" 'SELECT COALESCE(MAX(id), 0) FROM device_events')
for ((i = 0; i < ROUNDS; i++)); do
  trigger add ttyS0
  while [ ! -c "/proc/$LA/root/dev/ttyS0" ]; do :; done
  trigger remove ttyS0
  while [ -e "/proc/$LA/root/dev/ttyS0" ]; do :; done
done
sqlite3 "$DB" "SELECT latency_us FROM device_events WHERE id > $first AND action = 'attach'" |
  percentiles "plug to usable in hp-a (cgroup v1 path)"
sqlite3 "$DB" "SELECT latency_us FROM device_events WHERE id > $first AND action = 'detach'" |
  percentiles "unplug to revoked and removed"

first=$(sqlite3 "$DB" 'SELECT COALESCE(MAX(id), 0) FROM device_events')
t0=$EPOCHREALTIME
storm "$STORM"
wait_for 60 "/dev/ttyS0 in hp-a" test -c "/proc/$LA/root/dev/ttyS0"
wait_for 60 "/dev/tty61 in hp-b" test -c "/proc/$(leader hp-b)/root/dev/tty61"
wall=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
events=$(sqlite3 "$DB" "SELECT COUNT(*) FROM device_events WHERE id > $first AND action IN ('attach', 'detach', 'pending')")
busy_us=$(sqlite3 "$DB" "SELECT SUM(latency_us) FROM device_events WHERE id > $first AND action IN ('attach', 'detach')")
correct=no
if [ ! -e "/proc/$LA/root/dev/tty60" ] && [ ! -e "/proc/$(leader hp-b)/root/dev/ttyS0" ] &&
   [ "$(grep -cE '^c 4:(64|60|61) ' "$(cat "$ROOT/hp-a.cg")/devices.list")" = 1 ] &&
   [ "$(grep -cE '^c 4:(64|60|61) ' "$(cat "$ROOT/hp-b.cg")/devices.list")" = 1 ]; then
  correct=yes
fi
echo
echo "B5 hotplug (cgroup v1 path; containers hp-a booted, hp-b private users)"
echo "storm: $((STORM * 6 + 2)) udev events fired, $events attach/detach/pending handled in $wall s wall"
awk -v e="$events" -v w="$wall" -v b="$busy_us" 'BEGIN {
  printf "storm rate: %.0f events/s wall (bounded by udevadm and udevd), %.0f events/s of agent handling time\n", e / w, e / (b / 1e6) }'
echo "storm final state correct (nodes, cgroup entries, leases): $correct"
echo "($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
[ "$correct" = yes ]
