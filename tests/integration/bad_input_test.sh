#!/usr/bin/env bash
# Bad input is refused with its exact error, and nothing changes on disk:
# every configuration in tests/fixtures/bad-configs is run through
# check-config, plan and apply against a host that already has a container,
# and the host's tree (state.db included) is compared before and after.
source "$(dirname "$0")/lib.sh"

make_root ROOT
CATALOGUE=$TESTS_DIR/fixtures/bad-configs
GOOD=$ROOT/good.json
cat > "$GOOD" <<JSON
{"containers": [{"name": "bad-in", "distro": "debian", "release": "bookworm", "arch": "amd64",
                 "packages": ["cmake", "openssh-server"]}]}
JSON

everything() { tree_listing "$ROOT" var/cache; sha256sum "$ROOT/var/lib/farmhand/state.db"; }

testcase_a_host_with_a_container() {
  fh --root "$ROOT" --config "$GOOD" apply
  assert_eq 0 "$RC" "apply of the good config: $OUT"
}

testcase_every_bad_config_gets_its_exact_error() {
  local f name expected count=0
  for f in "$CATALOGUE"/*.json; do
    name=$(basename "$f" .json)
    cp "$f" "$ROOT/$name.json"
    expected=$(sed "s|FILE|$ROOT/$name.json|" "$CATALOGUE/$name.expected")
    fh check-config "$ROOT/$name.json"
    assert_eq 2 "$RC" "$name: check-config exit code"
    assert_eq "$expected" "$OUT" "$name: check-config output"
    count=$((count + 1))
  done
  echo "    $count bad configurations, each with its exact error"
  [ "$count" -ge 15 ]
}

testcase_bad_configs_change_nothing() {
  local f name before
  before=$(everything)
  for f in "$CATALOGUE"/*.json; do
    name=$(basename "$f" .json)
    for cmd in plan apply status "destroy bad-in"; do
      # shellcheck disable=SC2086
      fh --root "$ROOT" --config "$f" $cmd
      assert_eq 2 "$RC" "$name: $cmd exit code"
      assert_contains "$OUT" "error: $f: " "$name: $cmd output"
    done
  done
  assert_eq "$before" "$(everything)" "the host after every bad configuration"
}

testcase_bad_command_lines() {
  fh --root "$ROOT" --config "$GOOD" frobnicate
  assert_eq 2 "$RC"
  assert_contains "$OUT" 'unknown command "frobnicate"'
  fh --root "$ROOT" --config "$GOOD" status --bogus
  assert_eq 2 "$RC"
  assert_contains "$OUT" 'unknown option "--bogus"'
  fh --root relative/dir --config "$GOOD" status
  assert_eq 2 "$RC"
  assert_contains "$OUT" "--root must be an absolute path"
  fh --root "$ROOT" --config "$ROOT/no-such.json" apply
  assert_eq 2 "$RC"
  assert_contains "$OUT" "$ROOT/no-such.json: cannot open: No such file or directory"
  local cmd
  for cmd in check-config plan apply status destroy run; do
    fh "$cmd" --help
    assert_eq 0 "$RC" "$cmd --help"
    assert_contains "$OUT" "Usage: farmhand" "$cmd --help"
  done
}

testcase_the_good_container_is_still_intact() {
  fh --root "$ROOT" --config "$GOOD" plan
  assert_contains "$OUT" "Plan: 0 to create, 0 to update, 0 to replace, 0 to destroy, 1 unchanged."
}

run_testcases
