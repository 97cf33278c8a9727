#!/usr/bin/env bash
# Crash safety: `farmhand apply` killed with SIGKILL at any step converges on
# the next run, with nothing half-made left behind.
source "$(dirname "$0")/lib.sh"

make_root ROOT
CONFIG=$ROOT/agent.json
# The same base as the provisioning test, so a warm cache is reused; copies,
# because a copy takes long enough to be killed in the middle of.
cat > "$CONFIG" <<JSON
{"clone_method": "copy",
 "containers": [{"name": "crash-a", "distro": "debian", "release": "bookworm", "arch": "amd64",
                 "packages": ["cmake", "openssh-server"]}]}
JSON
PARTIAL=$ROOT/var/lib/machines/.crash-a.farmhand-partial

# Starts apply in the background and SIGKILLs it as soon as CONDITION holds.
apply_killed_when() {
  "$FH" --root "$ROOT" --config "$CONFIG" apply >"$ROOT/killed.log" 2>&1 &
  local pid=$!
  local deadline=$((SECONDS + 600))
  while kill -0 "$pid" 2>/dev/null && ! "$@" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      fail "condition never held: $*"
      return 1
    fi
    sleep 0.01
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

interrupted_step() {
  sqlite3 "$ROOT/var/lib/farmhand/state.db" \
    "SELECT step FROM journal WHERE status='begun' ORDER BY id DESC LIMIT 1"
}

assert_converged() {
  fhc apply
  assert_eq 0 "$RC" "apply after the kill: $OUT"
  assert_missing "$PARTIAL"
  fhc status --json
  assert_contains "$OUT" '"state": "ready"'
  fhc plan
  assert_contains "$OUT" "Plan: 0 to create, 0 to update, 0 to replace, 0 to destroy, 1 unchanged."
  fhc run crash-a -- id sai
  assert_contains "$OUT" "uid=883(sai)"
}

testcase_warm_the_base() {
  # Builds (or finds) the base, then removes the container again.
  fhc apply
  assert_eq 0 "$RC" "$OUT"
  fhc destroy crash-a
  assert_eq 0 "$RC" "$OUT"
}

testcase_killed_during_clone() {
  apply_killed_when test -d "$PARTIAL/usr"
  test -d "$PARTIAL" || fail "the kill came too late: no partial clone left"
  assert_missing "$ROOT/var/lib/machines/crash-a"
  assert_eq "clone (copy)" "$(interrupted_step)" "interrupted step"
  fhc status --json
  assert_contains "$OUT" '"state": "creating"'
  assert_converged
}

testcase_killed_at_every_step() {
  # With an overlay clone, a whole create takes tens of milliseconds; killing
  # after a growing delay lands the kill in each step in turn (record,
  # clone, configure, host files) until an apply gets through.
  sed -i 's/"clone_method": "copy"/"clone_method": "overlay"/' "$CONFIG"
  fhc destroy crash-a >/dev/null 2>&1 || true
  local delay steps="" pid
  for delay in 0.002 0.004 0.006 0.008 0.009 0.01 0.011 0.012 0.013 0.014 0.015 0.02 0.025 0.03 0.04 0.05 0.07 0.1 0.15 0.2 0.3 0.5 1 2; do
    "$FH" --root "$ROOT" --config "$CONFIG" apply >"$ROOT/killed.log" 2>&1 &
    pid=$!
    sleep "$delay"
    if ! kill -KILL "$pid" 2>/dev/null; then
      wait "$pid" || fail "an uninterrupted apply failed: $(cat "$ROOT/killed.log")"
      break
    fi
    wait "$pid" 2>/dev/null || true
    local step
    step=$(interrupted_step || true)
    steps+="${step:-planning or recording}; "
    assert_converged
    fhc destroy crash-a
    assert_eq 0 "$RC" "destroy after convergence: $OUT"
  done
  echo "    interrupted steps: ${steps:-none}"
  [ -n "$steps" ] || fail "no apply was interrupted"
  sed -i 's/"clone_method": "overlay"/"clone_method": "copy"/' "$CONFIG"
}

testcase_killed_during_base_build() {
  # A base of its own in a private cache, so this always really builds one.
  local cache=$ROOT/private-cache
  mkdir -p "$cache"
  rm "$ROOT/var/cache/farmhand"
  ln -s "$cache" "$ROOT/var/cache/farmhand"
  cat > "$CONFIG" <<JSON
{"containers": [{"name": "crash-b", "distro": "debian", "release": "bookworm", "arch": "amd64",
                 "build_packages": false}]}
JSON
  PARTIAL=$ROOT/var/lib/machines/.crash-b.farmhand-partial
  apply_killed_when bash -c "ls -d '$cache'/images/.*.partial/var/lib/dpkg"
  assert_contains "$(interrupted_step)" "base debian/bookworm/amd64"
  ls -d "$cache"/images/.*.partial >/dev/null || fail "no partial base left behind"
  fhc apply
  assert_eq 0 "$RC" "apply after the kill: $OUT"
  assert_eq "" "$(ls -d "$cache"/images/.*.partial 2>/dev/null || true)" "partial bases left"
  fhc run crash-b -- id sai
  assert_contains "$OUT" "uid=883(sai)"
}

run_testcases
