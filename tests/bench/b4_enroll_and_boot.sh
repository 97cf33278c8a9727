#!/usr/bin/env bash
# B4: on a booted test host with NetworkManager and firewalld (the system
# tests' nm test host), with base trees supplied by bind mount:
#   - wall time of `farmhand enroll` on a fresh test host whose agent.json
#     already declares three containers (prerequisites present, first apply,
#     network checks, service started);
#   - time from starting the test host's boot to all three containers'
#     networks healthy, with no command run (systemd and farmhand.service
#     bring everything back).
# Each is measured ROUNDS times (default 3), each round on a fresh copy of
# the test-host image. Prints figures; fails only if something cannot run.
#
#   tests/bench/b4_enroll_and_boot.sh /path/to/farmhand
set -uo pipefail
export LC_ALL=C
ROUNDS=${FARMHAND_BENCH_ROUNDS:-3}
INTEGRATION=$(cd "$(dirname "$0")/../integration" && pwd)
TESTHOST_FLAVOR=nm
source "$INTEGRATION/lib.sh"
source "$INTEGRATION/testhost.sh"
source "$INTEGRATION/network_checks.sh"
set -e

# shellcheck disable=SC2034  # read by common.sh's elapsed
ELAPSED_DECIMALS=2
summary() {  # label values...
  local label=$1
  shift
  printf '%s\n' "$@" | sort -g | awk -v l="$label" '{ v[NR] = $1 } END {
    printf "%-46s min %6.2f s  median %6.2f s  max %6.2f s  (%d rounds)\n", l, v[1], v[int((NR + 1) / 2)], v[NR], NR }'
}

testhost_image >/dev/null
make_root WORK
BOOT_ARGS=(--bind-ro="$(dirname "$FH")":/opt/farmhand --bind="$TEST_CACHE":/var/cache/farmhand)
NAMES=(b4-a b4-b b4-c)
enrolls=()
boots=()
for round in $(seq "$ROUNDS"); do
  HOSTDIR=$WORK/host$round
  testhost_init "$HOSTDIR"
  cp -a "$TESTHOST_IMAGE" "$HOSTDIR"
  mkdir -p "$HOSTDIR/etc/farmhand"
  echo '{}' > "$HOSTDIR/etc/farmhand/agent.json"
  set_containers "$HOSTDIR/etc/farmhand/agent.json" "${NAMES[@]}"
  testhost_boot "${BOOT_ARGS[@]}"

  t0=$EPOCHREALTIME
  farmhand_in_testhost enroll
  [ "$RC" = 0 ] || { echo "enroll failed: $OUT" >&2; exit 1; }
  enrolls+=("$(elapsed "$t0")")

  testhost_poweroff
  t0=$EPOCHREALTIME
  testhost_boot "${BOOT_ARGS[@]}"
  while ! nsenter -t "$(testhost_leader)" -a /opt/farmhand/farmhand status 2>/dev/null |
      grep -c ' healthy' | grep -qx 3; do
    [ "$(elapsed "$t0" | cut -d. -f1)" -lt 180 ] || { echo "not healthy after 180 s" >&2; exit 1; }
    sleep 0.1
  done
  boots+=("$(elapsed "$t0")")
  testhost_poweroff
  rm -rf --one-file-system "$HOSTDIR"
  echo "round $round: enroll ${enrolls[-1]} s, boot to 3 healthy networks ${boots[-1]} s"
done
echo
echo "B4 enroll and boot (nm test host: NetworkManager + firewalld, 3 containers, overlay clones)"
summary "farmhand enroll, fresh host, base trees supplied" "${enrolls[@]}"
summary "test-host boot to 3 container networks healthy" "${boots[@]}"
echo "(boot includes the test host's own systemd start, about 1-2 s of it; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
