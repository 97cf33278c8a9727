#!/usr/bin/env bash
# Runs the farmhand benchmarks (B1-B3, B5, B7-B9) and prints all their figures.
#
#   tests/bench/run_all.sh /path/to/farmhand
#
# Benchmarks print figures and never fail on timing; this script exits
# non-zero only if a benchmark could not run. Each cleans up after itself.
set -euo pipefail
export LC_ALL=C

FH=${1:?usage: $0 /path/to/farmhand}
FH=$(readlink -f "$FH")
DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

failed=()
t_all=$EPOCHREALTIME
# B4 and B6 boot test hosts, as the system tests do: their figures are
# printed by nm_host_test.sh (enroll, boot to healthy networks) and
# systemd_host_test.sh (hotplug through systemd, on both cgroup layouts),
# so a whole run boots each kind of host once. Their scripts still run on
# their own, with more rounds.
for bench in b1_clone_methods b2_noop_apply b3_peak_rss b5_hotplug b7_server b8_payload b9_reconcile; do
  echo
  t0=$EPOCHREALTIME
  rc=0
  # Each benchmark bounds its own commands; this bounds the whole of one.
  timeout --kill-after=60 "${FARMHAND_BENCH_LIMIT:-1800}" "$DIR/$bench.sh" "$FH" || rc=$?
  secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
  if [ "$rc" = 0 ]; then
    echo "-- $bench: finished in $secs s"
  else
    echo "-- $bench: COULD NOT RUN (exit $rc) after $secs s"
    failed+=("$bench")
  fi
done
echo
echo "all benchmarks: $(awk -v a="$t_all" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "benchmarks that could not run: ${failed[*]}"
  exit 1
fi
