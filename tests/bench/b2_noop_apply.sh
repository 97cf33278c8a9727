#!/usr/bin/env bash
# B2: `farmhand apply` with nothing to do, on 20 declared containers.
#
#   tests/bench/b2_noop_apply.sh /path/to/farmhand
#
# Creates COUNT overlay containers from one cached bookworm base (no build
# package set), then times RUNS no-op applies, RUNS plans and RUNS status
# calls, and prints min/median/max wall time of each. Wall time is measured
# around the process (fork, exec, config load, state.db, observing every
# container); apply's own "(N s)" figure is printed beside it.
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

COUNT=${FARMHAND_BENCH_CONTAINERS:-20}
RUNS=${FARMHAND_BENCH_RUNS:-10}

bench_init b2

echo "== B2: no-op apply on $COUNT containers =="
print_machine
ensure_base

ROOT=$WORK/root
init_root "$ROOT"
names=()
for ((i = 1; i <= COUNT; i++)); do names+=("$(printf 'bench-%02d' "$i")"); done
write_config "$WORK/config.json" overlay "${names[@]}"

fh_timed "$WORK/create.out" "$CMD_TIMEOUT" "$ROOT" "$WORK/config.json" apply
CREATE_WALL=$LAST_WALL
grep -q "$COUNT created" "$WORK/create.out" || {
  echo "bench: the first apply did not create $COUNT containers:" >&2
  cat "$WORK/create.out" >&2
  exit 1
}
clones=()
for n in "${names[@]}"; do clones+=("$(step_seconds "$WORK/create.out" "$n" "clone (")"); done
echo "create: $COUNT overlay containers in one apply: $CREATE_WALL s wall;" \
  "clone step min/median/max $(stats "${clones[@]}")"
echo "  $(tail -1 "$WORK/create.out")"
echo "  mounted overlays: $(findmnt -rn -t overlay -o TARGET | grep -cF "$ROOT/")"

applies=() selfs=()
for ((i = 1; i <= RUNS; i++)); do
  fh_timed "$WORK/noop-$i.out" "$CMD_TIMEOUT" "$ROOT" "$WORK/config.json" apply
  applies+=("$LAST_WALL")
  grep -q '^No changes' "$WORK/noop-$i.out" || {
    echo "bench: apply $i was not a no-op:" >&2
    cat "$WORK/noop-$i.out" >&2
    exit 1
  }
  selfs+=("$(sed -n 's/^No changes: .*(\([0-9.]*\) s)\.$/\1/p' "$WORK/noop-$i.out")")
done
echo "no-op apply: $(cat "$WORK/noop-1.out")"

plans=()
for ((i = 1; i <= RUNS; i++)); do
  fh_timed "$WORK/plan-$i.out" "$CMD_TIMEOUT" "$ROOT" "$WORK/config.json" plan
  plans+=("$LAST_WALL")
done
echo "plan: $(tail -1 "$WORK/plan-1.out")"

statuses=()
for ((i = 1; i <= RUNS; i++)); do
  fh_timed "$WORK/status-$i.out" "$CMD_TIMEOUT" "$ROOT" "$WORK/config.json" status
  statuses+=("$LAST_WALL")
done
echo "status: $(grep -c ' ready ' "$WORK/status-1.out") of $COUNT ready"

# The floor: starting the binary at all.
versions=()
for ((i = 1; i <= RUNS; i++)); do
  run_timed "$WORK/version.out" "$CMD_TIMEOUT" "$FH" version
  versions+=("$LAST_WALL")
done

echo
echo "B2 results ($COUNT containers, $RUNS runs each; seconds min/median/max)"
printf '%-36s %s\n' "command" "min/median/max"
row() { read -r a b c <<<"$(stats "${@:2}")"; printf '%-36s %s/%s/%s\n' "$1" "$a" "$b" "$c"; }
row "apply, no-op (wall)" "${applies[@]}"
row "apply, no-op (as apply reports it)" "${selfs[@]}"
row "plan (wall)" "${plans[@]}"
row "status (wall)" "${statuses[@]}"
row "version (wall; process start floor)" "${versions[@]}"
med=$(median "${applies[@]}")
if [ "$(less_than "$med" 0.5)" = 1 ]; then v=meets; else v=misses; fi
echo "target (not asserted): no-op apply < 0.5 s: median $med s ($v)"
print_machine
