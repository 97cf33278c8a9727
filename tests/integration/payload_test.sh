#!/usr/bin/env bash
# The container payload, with real git repositories, a real sshd, real
# setup steps and a real boot: sources checked out as the build user, files
# from templates, setup steps run only when what they depend on changed, a
# service that comes up when the container boots; desired state from a
# config repository, a bad config commit refused; a failing step that stops
# only its own container; a private repository over ssh whose key never
# shows up anywhere.
#
# Two bookworm containers with the same packages as provision_test, so the
# cached base tree is shared and nothing new is debootstrapped:
#   pl-a  source "builder" (tests/fixtures/builder), configure + build steps,
#         /etc/builder/conf, sai-builder.service (runs the builder)
#   pl-b  sources "builder" (the same repository) and "tools"; one step that
#         depends on "tools" only, so a builder commit reruns nothing here
#
# Every setup step appends nothing to the apply output unless it runs, and
# its name is printed when it does: the step names are chosen to be
# distinctive ("configure-builder", "build-builder", "tools-step") so that
# their absence from the output means they did not run. The runs of
# tools-step are also counted in /home/sai/tools-step.log (one line a run).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/payload_lib.sh"

make_root ROOT
# A real / is 0755: the build user reaches its checkout through the
# mountpoint farmhand makes under ROOT/run/farmhand/git.
chmod 0755 "$ROOT"
make_repo_dir REPOS
CONFIG=$ROOT/agent.json
M=$ROOT/var/lib/machines
FIXTURE=$TESTS_DIR/fixtures/builder
EXAMPLE=$TESTS_DIR/../conf/examples/sai-builder-debian.json
make_builder_repo "$REPOS/builder"
make_plain_repo "$REPOS/tools"

UNIT_JSON=$(python3 -c 'import json, sys; print(json.dumps(open(sys.argv[1]).read()))' "$FIXTURE/sai-builder.service")
cat > "$CONFIG" <<JSON
{
  "containers": [
    {"name": "pl-a", "distro": "debian", "release": "bookworm", "arch": "amd64",
     "packages": ["cmake", "openssh-server"],
     "sources": [{"name": "builder", "url": "file://$REPOS/builder", "ref": "main",
                  "path": "/home/sai/src/builder"}],
     "files": [{"path": "/etc/builder/conf", "content": "container={{container}}\nhost={{host}}\n",
                "owner": "sai", "mode": "0640"}],
     "setup": [
       {"name": "configure-builder", "cwd": "/home/sai/src/builder",
        "run": ["cmake", "-S", ".", "-B", "build", "-DBUILDER_COMMIT={{source.builder.commit}}"]},
       {"name": "build-builder", "cwd": "/home/sai/src/builder", "run": ["cmake", "--build", "build"]}
     ],
     "services": [{"name": "sai-builder.service", "content": $UNIT_JSON}]},
    {"name": "pl-b", "distro": "debian", "release": "bookworm", "arch": "amd64",
     "packages": ["cmake", "openssh-server"],
     "sources": [{"name": "builder", "url": "file://$REPOS/builder", "ref": "main",
                  "path": "/home/sai/src/builder"},
                 {"name": "tools", "url": "file://$REPOS/tools", "ref": "main",
                  "path": "/home/sai/src/tools"}],
     "setup": [
       {"name": "tools-step", "cwd": "/home/sai/src/tools", "sources": ["tools"],
        "run": ["sh", "-c", "cat tool.txt >> /home/sai/tools-step.log"]}
     ]}
  ]
}
JSON

# Like `fhc apply`, with the output also kept in $ROOT/NAME.log, for the
# credential cases that grep it afterwards.
apply_logged() {  # NAME
  fhc apply
  printf '%s\n' "$OUT" > "$ROOT/$1.log"
}

# Edits the JSON file FILE in place with the Python code on stdin, which sees
# the document as `c`, a container by name as ct(NAME), and the extra
# arguments as `args`.
edit_json() {
  local file=$1
  shift
  python3 -c '
import json, sys
path, args, code = sys.argv[1], sys.argv[2:], sys.stdin.read()
c = json.load(open(path))
def ct(name): return next(x for x in c["containers"] if x["name"] == name)
exec(code)
with open(path + ".new", "w") as f: json.dump(c, f, indent=1)
' "$file" "$@" && mv "$file.new" "$file"
}

# `farmhand status --json` of the config FILE, as JSON on stdout.
status_json() {
  "$FH" --root "$ROOT" --config "${1:-$CONFIG}" status --json
}

# The commit status reports for source SOURCE of CONTAINER ("" if none).
source_commit() {  # container source [config]
  status_json "${3:-}" | python3 -c '
import json, sys
doc = json.load(sys.stdin)
c = next(x for x in doc["containers"] if x["name"] == sys.argv[1])
print(next((s["commit"] for s in c.get("sources", []) if s["name"] == sys.argv[2]), ""))
' "$1" "$2"
}

config_commit() {  # config
  status_json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("config_commit") or "")'
}

head_of() { git -C "$1" rev-parse HEAD; }
mtime() { stat -c %y "$1"; }
tools_runs() { wc -l < "$M/pl-b/home/sai/tools-step.log"; }

# Asserts that none of the setup steps ran in the apply whose output is $OUT.
assert_no_steps_ran() {
  local step
  for step in configure-builder build-builder tools-step broken-step; do
    if [[ "$OUT" == *"$step"* ]]; then
      fail "step $step ran (or was mentioned); apply output: [$OUT]"
      return 1
    fi
  done
}

# --- The example configuration (needs the payload keys in the parser).

testcase_example_config_is_valid() {
  fh check-config "$EXAMPLE"
  assert_eq 0 "$RC" "check-config $EXAMPLE: $OUT"
  # A broken copy: an unknown key in a source, and a world-writable file.
  cp "$EXAMPLE" "$ROOT/broken.json"
  edit_json "$ROOT/broken.json" <<'PY'
c["containers"][0]["sources"][0]["bogus"] = True
c["containers"][0]["files"][0]["mode"] = "0666"
PY
  fh check-config "$ROOT/broken.json"
  assert_eq 2 "$RC" "check-config of a broken copy"
  assert_contains "$OUT" "/containers/0/sources/0/bogus"
  assert_contains "$OUT" "/containers/0/files/0/mode"
}

# --- a. First apply: sources, files, steps, services.

testcase_first_apply_checks_out_builds_and_installs() {
  local head tools_head
  head=$(head_of "$REPOS/builder")
  tools_head=$(head_of "$REPOS/tools")
  "$FH" --root "$ROOT" --config "$CONFIG" apply 2>&1 | tee "$ROOT/apply1.log"
  assert_eq 0 "${PIPESTATUS[0]}" "apply exit code"
  OUT=$(cat "$ROOT/apply1.log")
  # The positive control for assert_no_steps_ran: the step names are printed.
  assert_contains "$OUT" "configure-builder"
  assert_contains "$OUT" "build-builder"
  assert_contains "$OUT" "tools-step"

  # The checkout belongs to the build user, all of it.
  local src=$M/pl-a/home/sai/src/builder
  assert_eq "883 883 883" "$(stat -c %u "$src" "$src/.git" "$src/main.c" | xargs)" "owner of the checkout"
  assert_eq "$head" "$(git -C "$src" -c safe.directory='*' rev-parse HEAD)" "checked out commit"
  # Built by the steps, as the build user, from this commit.
  test -x "$src/build/builder"
  assert_eq 883 "$(stat -c %u "$src/build/builder")" "owner of the built binary"
  grep -q -a -F "$head" "$src/build/builder" || fail "build/builder was not built with -DBUILDER_COMMIT=$head"

  # The file from its template, with its owner and mode.
  assert_file_eq "$M/pl-a/etc/builder/conf" "container=pl-a
host=$(hostname)"
  assert_eq "640 883" "$(stat -c '%a %u' "$M/pl-a/etc/builder/conf")" "mode and owner of /etc/builder/conf"

  # The unit, installed and enabled.
  assert_file_eq "$M/pl-a/etc/systemd/system/sai-builder.service" "$(cat "$FIXTURE/sai-builder.service")"
  test -L "$M/pl-a/etc/systemd/system/multi-user.target.wants/sai-builder.service" ||
    fail "sai-builder.service is not enabled (no multi-user.target.wants link)"
  [[ "$(readlink "$M/pl-a/etc/systemd/system/multi-user.target.wants/sai-builder.service")" == */sai-builder.service ]]

  # pl-b: both sources; its one step ran once, as the build user.
  assert_eq "883" "$(stat -c %u "$M/pl-b/home/sai/src/tools/tool.txt")" "owner of pl-b's tools checkout"
  assert_file_eq "$M/pl-b/home/sai/tools-step.log" "tool version 1"
  assert_eq 883 "$(stat -c %u "$M/pl-b/home/sai/tools-step.log")" "tools-step ran as"
  assert_missing "$M/pl-b/etc/builder/conf"
  assert_missing "$M/pl-b/home/sai/src/builder/build"

  # status reports the commits.
  assert_eq "$head" "$(source_commit pl-a builder)" "status: pl-a builder commit"
  assert_eq "$head" "$(source_commit pl-b builder)" "status: pl-b builder commit"
  assert_eq "$tools_head" "$(source_commit pl-b tools)" "status: pl-b tools commit"
  fhc status
  assert_contains "$OUT" "pl-a: source builder at ${head:0:12} (main)" "farmhand status"
}

# Steps run with the host's DNS, but the containers keep their own
# resolv.conf (the gateway's, as configure wrote it).
testcase_steps_leave_resolv_conf_alone() {
  local name gw
  for name in pl-a pl-b; do
    gw=$(sed -n 's/^Gateway=//p' "$M/$name/etc/systemd/network/50-host0.network")
    assert_file_eq "$M/$name/etc/resolv.conf" "# Managed by farmhand: \`farmhand apply\` rewrites this file.
nameserver $gw"
  done
}

# --- b. The service runs when the container boots.

# Boots pl-a with `farmhand run` in the background; sets RUN_PID (its nspawn)
# and LEADER (its init) once systemd in it is up.
boot_pl_a() {
  local log=$ROOT/boot.log gateway
  setsid "$FH" --root "$ROOT" --config "$CONFIG" run pl-a >"$log" 2>&1 &
  RUN_PID=$!
  track_pid "$RUN_PID"
  wait_for 60 "the interface ve-pl-a" ip link show ve-pl-a
  # Without systemd, `farmhand run` configures the host end of the link
  # itself (provision_test checks it in full).
  gateway=$(sed -n 's/^Gateway=//p' "$M/pl-a/etc/systemd/network/50-host0.network")
  wait_for 30 "the gateway address on ve-pl-a" bash -c "ip -br address show ve-pl-a | grep -q ' $gateway/24'" || { cat "$log"; ip -br address show ve-pl-a; false; }
  wait_for 30 "farmhand run to start nspawn" pgrep -P "$RUN_PID" || { cat "$log"; ps -ef --forest | grep -B2 -A5 "run pl-a" | head -30; false; }
  LEADER=$(pgrep -P "$RUN_PID" | head -1)
  wait_for 90 "pl-a to boot" bash -c "nsenter -t $LEADER -a systemctl is-system-running | grep -qE 'running|degraded'" ||
    { cat "$log"; false; }
  wait_for 30 "sai-builder to be active" bash -c "nsenter -t $LEADER -a systemctl is-active sai-builder | grep -qx active" ||
    { nsenter -t "$LEADER" -a systemctl status sai-builder || true; false; }
}

stop_pl_a() {
  kill -TERM "$RUN_PID"
  timeout 60 tail --pid="$RUN_PID" -f /dev/null
  assert_missing /sys/class/net/ve-pl-a
}

heartbeat() { nsenter -t "$LEADER" -a cat /var/lib/builder/heartbeat; }

testcase_builder_service_runs_in_the_booted_container() {
  local head hb1
  head=$(head_of "$REPOS/builder")
  boot_pl_a
  assert_eq active "$(nsenter -t "$LEADER" -a systemctl is-active sai-builder)"
  assert_eq sai "$(nsenter -t "$LEADER" -a systemctl show -p User --value sai-builder)"
  # The heartbeat moves, and names the commit it was built from.
  wait_for 30 "the builder's first heartbeat" nsenter -t "$LEADER" -a test -s /var/lib/builder/heartbeat
  hb1=$(heartbeat)
  assert_contains "$hb1" "alive "
  assert_contains "$hb1" " $head"
  wait_for 30 "a new heartbeat" bash -c "[ \"\$(nsenter -t $LEADER -a cat /var/lib/builder/heartbeat)\" != '$hb1' ]"
  stop_pl_a
}

# --- c. An apply with nothing new reruns nothing.

# What an apply that has nothing to do must leave as it is (the checkouts'
# .git directories aside: a fetch rewrites FETCH_HEAD).
payload_state() {
  tree_listing "$M/pl-a/etc"
  tree_listing "$M/pl-a/home/sai" src/builder/.git
  tree_listing "$M/pl-b/etc"
  tree_listing "$M/pl-b/home/sai" src/builder/.git src/tools/.git
}

testcase_second_apply_reruns_nothing() {
  local bin=$M/pl-a/home/sai/src/builder/build/builder before state
  before=$(mtime "$bin")
  state=$(payload_state)
  fhc apply
  assert_eq 0 "$RC" "apply exit code: $OUT"
  assert_no_steps_ran
  assert_contains "$OUT" "2 container(s) up to date"
  assert_eq "$state" "$(payload_state)" "containers' /etc and /home/sai after a no-op apply"
  assert_eq "$before" "$(mtime "$bin")" "build/builder mtime"
  assert_eq 1 "$(tools_runs)" "runs of tools-step"
  assert_eq "$(head_of "$REPOS/builder")" "$(source_commit pl-a builder)"
}

# --- d. A new commit reruns the steps that depend on it, and only those.

testcase_new_commit_reruns_only_dependent_steps() {
  local bin=$M/pl-a/home/sai/src/builder/build/builder before head
  before=$(mtime "$bin")
  head=$(commit_change "$REPOS/builder" "builder: second version")
  fhc apply
  assert_eq 0 "$RC" "apply exit code: $OUT"
  assert_contains "$OUT" "configure-builder"
  assert_contains "$OUT" "build-builder"
  [ "$before" != "$(mtime "$bin")" ] || fail "build/builder was not rebuilt"
  grep -q -a -F "$head" "$bin" || fail "build/builder was not rebuilt with the new commit $head"
  assert_eq "$head" "$(source_commit pl-a builder)" "status: pl-a builder commit"
  # pl-b's checkout of builder follows the branch, but its step depends on
  # tools only: it did not run again.
  assert_eq "$head" "$(source_commit pl-b builder)" "status: pl-b builder commit"
  assert_file_eq "$M/pl-b/home/sai/src/builder/CHANGES" "builder: second version"
  [[ "$OUT" != *tools-step* ]] || fail "tools-step ran again: [$OUT]"
  assert_eq 1 "$(tools_runs)" "runs of tools-step"
  # And a commit in tools reruns tools-step, and nothing in pl-a.
  commit_change "$REPOS/tools" "tools: second version" >/dev/null
  before=$(mtime "$bin")
  fhc apply
  assert_eq 0 "$RC" "apply exit code: $OUT"
  assert_contains "$OUT" "tools-step"
  [[ "$OUT" != *configure-builder* ]] || fail "configure-builder ran again: [$OUT]"
  assert_eq 2 "$(tools_runs)" "runs of tools-step"
  assert_eq "$before" "$(mtime "$bin")" "build/builder mtime"
}

# --- d2. A running container gets a new commit without a restart of the
# container: the steps run inside it (through its leader), and its enabled
# service is restarted on the new build.

testcase_apply_to_a_running_container() {
  local head pid_before pid_after
  boot_pl_a
  pid_before=$(nsenter -t "$LEADER" -a systemctl show -p MainPID --value sai-builder)
  head=$(commit_change "$REPOS/builder" "builder: while running")
  fhc apply
  assert_eq 0 "$RC" "apply to the running container: $OUT"
  assert_contains "$OUT" "build-builder"
  assert_contains "$OUT" "restart sai-builder.service"
  # The container kept running: the same init.
  assert_eq "$LEADER" "$(pgrep -P "$RUN_PID" | head -1)" "the container's init"
  wait_for 30 "a heartbeat naming the new head" bash -c "nsenter -t $LEADER -a cat /var/lib/builder/heartbeat | grep -q ' $head'" ||
    fail "the heartbeat never named $head: [$(heartbeat)]"
  pid_after=$(nsenter -t "$LEADER" -a systemctl show -p MainPID --value sai-builder)
  [ "$pid_after" != "$pid_before" ] || fail "sai-builder was not restarted (MainPID $pid_before)"
  assert_eq active "$(nsenter -t "$LEADER" -a systemctl is-active sai-builder)"
  # Built inside, as the build user.
  assert_eq 883 "$(stat -c %u "$M/pl-a/home/sai/src/builder/build/builder")" "owner of the rebuilt binary"
  # How steps get in: the working directory is the container's, even through
  # a symlink to a directory that exists only on the host.
  fh enter --target "$LEADER" --cwd /home/sai --uid 883 --gid 65534 -- sh -c 'echo "$(id -u) $(pwd)"'
  assert_eq "0 883 /home/sai" "$RC $OUT" "enter as the build user"
  ln -s "$REPOS" "$M/pl-a/home/sai/host-only"
  fh enter --target "$LEADER" --cwd /home/sai/host-only -- pwd
  assert_eq 125 "$RC" "enter through a symlink to a host-only directory: $OUT"
  assert_contains "$OUT" "cannot change to /home/sai/host-only"
  rm "$M/pl-a/home/sai/host-only"
  # Nothing more to do while it runs.
  fhc apply
  assert_eq 0 "$RC" "second apply to the running container: $OUT"
  assert_no_steps_ran
  [[ "$OUT" != *"restart sai-builder"* ]] || fail "sai-builder was restarted by a no-op apply: [$OUT]"
  stop_pl_a
}

# --- e. Desired state from a config repository.
# Depends on config_repo in the CLI's apply and config_commit in
# `status --json`. The running agent turns a rejected commit into a
# `config_rejected` event for the server; the CLI only prints the error,
# which is what is checked here.

testcase_config_repo_good_then_bad() {
  local rconfig=$ROOT/agent-repo.json good bad before
  python3 -c 'import json, sys; print(json.dumps({"containers": json.load(open(sys.argv[1]))["containers"]}, indent=1))' \
    "$CONFIG" | make_config_repo "$REPOS/config" test >/dev/null
  cat > "$rconfig" <<JSON
{"config_repo": {"url": "file://$REPOS/config", "ref": "main", "path": "hosts/test.json"}}
JSON
  # The same containers, now from the repository: nothing to redo.
  fh --root "$ROOT" --config "$rconfig" apply
  assert_eq 0 "$RC" "apply from the config repo: $OUT"
  assert_no_steps_ran
  assert_eq "$(head_of "$REPOS/config")" "$(config_commit "$rconfig")" "status: config_commit"
  assert_eq "$(head_of "$REPOS/builder")" "$(source_commit pl-a builder "$rconfig")"

  # A change in the repository is applied.
  cp "$REPOS/config/hosts/test.json" "$ROOT/host.json"
  edit_json "$ROOT/host.json" <<'PY'
ct("pl-a")["files"].append({"path": "/etc/builder/extra", "content": ["from the config repo", "name={{container}}"]})
PY
  good=$(commit_file "$REPOS/config" hosts/test.json "pl-a: /etc/builder/extra" < "$ROOT/host.json")
  fh --root "$ROOT" --config "$rconfig" apply
  assert_eq 0 "$RC" "apply of the second config commit: $OUT"
  assert_file_eq "$M/pl-a/etc/builder/extra" "from the config repo
name=pl-a"
  assert_eq "$good" "$(config_commit "$rconfig")" "status: config_commit after a change"

  # A bad commit is refused, naming the file and commit; the last good
  # config stays in force.
  before=$(tree_listing "$M/pl-a/etc/builder"; cat "$M/pl-b/home/sai/tools-step.log")
  edit_json "$ROOT/host.json" <<'PY'
ct("pl-a")["bogus"] = True
ct("pl-a")["files"][-1]["content"] = "should never be written"
PY
  bad=$(commit_file "$REPOS/config" hosts/test.json "a bad config" < "$ROOT/host.json")
  fh --root "$ROOT" --config "$rconfig" apply
  [ "$RC" -ne 0 ] || fail "apply of a bad config commit succeeded: $OUT"
  assert_contains "$OUT" "hosts/test.json@${bad:0:12}"
  assert_contains "$OUT" "/containers/0/bogus"
  assert_eq "$before" "$(tree_listing "$M/pl-a/etc/builder"; cat "$M/pl-b/home/sai/tools-step.log")" \
    "containers after a rejected config"
  assert_file_eq "$M/pl-a/etc/builder/extra" "from the config repo
name=pl-a"
  assert_eq "$good" "$(config_commit "$rconfig")" "status: config_commit after a rejected commit"

  # Back to the local file, with the last good containers: nothing to redo.
  git -C "$REPOS/config" show "$good:hosts/test.json" > "$ROOT/good-host.json"
  edit_json "$CONFIG" "$ROOT/good-host.json" <<'PY'
c["containers"] = json.load(open(args[0]))["containers"]
PY
  fhc apply
  assert_eq 0 "$RC" "apply of the local config: $OUT"
  assert_no_steps_ran
}

# --- f. A failing step fails the apply and stops only its own container.

testcase_failing_step_stops_only_its_container() {
  local head
  edit_json "$CONFIG" <<'PY'
ct("pl-b")["setup"].append({"name": "broken-step", "run": ["sh", "-c", "echo broken-step-output >&2; exit 3"]})
ct("pl-a")["files"].append({"path": "/etc/builder/more", "content": "more\n"})
PY
  head=$(commit_change "$REPOS/builder" "builder: third version")
  fhc apply
  [ "$RC" -ne 0 ] || fail "apply with a failing step succeeded: $OUT"
  assert_contains "$OUT" "broken-step-output"
  assert_contains "$OUT" "broken-step"
  # pl-a is fully applied in the same run.
  assert_file_eq "$M/pl-a/etc/builder/more" "more"
  assert_eq "$head" "$(source_commit pl-a builder)" "status: pl-a builder commit"
  grep -q -a -F "$head" "$M/pl-a/home/sai/src/builder/build/builder" ||
    fail "pl-a's builder was not rebuilt with $head"
  # A failed step is not recorded as done: it runs again, and fails again.
  fhc apply
  [ "$RC" -ne 0 ] || fail "second apply with a failing step succeeded: $OUT"
  assert_contains "$OUT" "broken-step-output"
  [[ "$OUT" != *build-builder* ]] || fail "build-builder ran again: [$OUT]"
  # Without it, all is well again, and nothing else reruns.
  edit_json "$CONFIG" <<'PY'
ct("pl-b")["setup"] = [s for s in ct("pl-b")["setup"] if s["name"] != "broken-step"]
PY
  fhc apply
  assert_eq 0 "$RC" "apply after the failing step was removed: $OUT"
  assert_no_steps_ran
  assert_eq 2 "$(tools_runs)" "runs of tools-step"
}

# --- g. A private repository over ssh; the key never shows up anywhere.
# Credential files (like URLs) name the real host's files: farmhand reads
# them as given, not under --root.

testcase_private_repo_over_ssh() {
  local port keys=$ROOT/keys head body line where
  port=$(free_port)
  start_git_sshd "$ROOT/sshd" "$port"
  mkdir -p "$keys"
  chmod 0700 "$keys"
  cp "$ROOT/sshd/client_key" "$keys/deploy"
  cp "$ROOT/sshd/known_hosts" "$keys/known_hosts"
  make_bare_copy "$REPOS/tools" "$REPOS/private.git"
  head=$(head_of "$REPOS/private.git")
  # The harness itself works (plain git over the same sshd).
  assert_eq "$head" "$(GIT_SSH_COMMAND="$(git_ssh_command "$ROOT/sshd" "$port")" \
    git ls-remote "ssh://root@127.0.0.1:$port$REPOS/private.git" refs/heads/main | cut -f1)" \
    "git ls-remote through the test sshd"

  edit_json "$CONFIG" "ssh://root@127.0.0.1:$port$REPOS/private.git" "$keys" <<'PY'
ct("pl-b")["sources"].append({"name": "private", "url": args[0], "ref": "main",
                              "path": "/home/sai/src/private",
                              "credentials": {"ssh_key": args[1] + "/deploy",
                                              "known_hosts": args[1] + "/known_hosts"}})
PY
  apply_logged apply-ssh
  assert_eq 0 "$RC" "apply with a private source: $OUT"
  assert_eq "883" "$(stat -c %u "$M/pl-b/home/sai/src/private/tool.txt")" "owner of the private checkout"
  assert_eq "$head" "$(source_commit pl-b private)" "status: pl-b private commit"
  grep -q "Accepted publickey for root" "$ROOT/sshd/sshd.log"

  # A known_hosts without the server's key (another key for the same host
  # and port) is refused, naming the file.
  ssh-keygen -q -t ed25519 -N '' -f "$ROOT/other_host_key"
  echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$ROOT/other_host_key.pub")" > "$keys/known_hosts"
  commit_change "$REPOS/tools" "tools: third version" >/dev/null
  git -C "$REPOS/tools" push -q "$REPOS/private.git" main
  apply_logged apply-ssh-bad
  [ "$RC" -ne 0 ] || fail "apply with a wrong known_hosts succeeded: $OUT"
  assert_contains "$OUT" "not in"
  assert_contains "$OUT" "$keys/known_hosts"
  assert_eq "$head" "$(source_commit pl-b private)" "status: pl-b private commit after a refused fetch"

  # The private key's body, line by line, is nowhere: not in the output,
  # state.db, logs, or the container. (Line 2 of an OpenSSH ed25519 key is
  # the same for every key, so it is skipped.)
  body=$(sed '1,2d;$d' "$keys/deploy")
  [ -n "$body" ]
  where=("$ROOT/apply-ssh.log" "$ROOT/apply-ssh-bad.log" "$ROOT/var/lib/farmhand"
         "$M/pl-b/home" "$M/pl-b/etc" "$M/pl-b/root" "$M/pl-b/tmp" "$M/pl-b/var/tmp")
  [ -d "$ROOT/var/log" ] && where+=("$ROOT/var/log")
  while IFS= read -r line; do
    [ ${#line} -ge 16 ] || continue
    if grep -a -r -l -F -- "$line" "${where[@]}"; then
      fail "a line of the private key is in the files listed above"
    fi
  done <<< "$body"
}

# --- h. A private repository over http with a token file (the https code
# path without TLS): the token is sent only when the server asks, and never
# shows up anywhere.

testcase_private_repo_over_http_with_a_token() {
  local port keys=$ROOT/keys token head srv_log=$ROOT/git-http.log where
  port=$(free_port)
  mkdir -p "$keys" "$REPOS/http"
  chmod 0700 "$keys"
  token="fh-test-token-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  (umask 077 && echo "$token" > "$keys/git-token")
  make_bare_copy "$REPOS/tools" "$REPOS/http/private-http.git"
  head=$(head_of "$REPOS/http/private-http.git")
  python3 "$TESTS_DIR/integration/git_http_server.py" "$REPOS/http" "$port" ci "$keys/git-token" "$srv_log" \
    >"$ROOT/git-http.out" 2>&1 &
  track_pid $!
  wait_for 10 "the proxy to listen on port $port" python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)"
  # The harness itself works: plain git with the token in the URL.
  assert_eq "$head" "$(git -c credential.helper= ls-remote "http://ci:$token@127.0.0.1:$port/private-http.git" \
    refs/heads/main | cut -f1)" "git ls-remote through the test server"
  : > "$srv_log"

  # (Without the ssh source, whose known_hosts the case above broke.)
  edit_json "$CONFIG" "http://127.0.0.1:$port/private-http.git" "$keys/git-token" <<'PY'
ct("pl-b")["sources"] = [s for s in ct("pl-b")["sources"] if s["name"] != "private"]
ct("pl-b")["sources"].append({"name": "private-http", "url": args[0], "ref": "main",
                              "path": "/home/sai/src/private-http",
                              "credentials": {"token_file": args[1], "username": "ci"}})
PY
  apply_logged apply-http
  assert_eq 0 "$RC" "apply with a token source: $OUT"
  assert_eq 883 "$(stat -c %u "$M/pl-b/home/sai/src/private-http/tool.txt")" "owner of the checkout"
  assert_eq "$head" "$(source_commit pl-b private-http)" "status: pl-b private-http commit"
  # First without credentials (401), then with them.
  grep -q ' 401 auth=no$' "$srv_log" || fail "the server never challenged: $(cat "$srv_log")"
  grep -q ' 200 auth=yes$' "$srv_log" || fail "no authenticated request: $(cat "$srv_log")"
  # The checkout's remote is the URL alone.
  assert_eq "http://127.0.0.1:$port/private-http.git" \
    "$(git -C "$M/pl-b/home/sai/src/private-http" -c safe.directory='*' config remote.origin.url)"

  # A wrong token is refused, and the last commit stays.
  echo "not-the-token" > "$keys/git-token"
  commit_change "$REPOS/tools" "tools: fourth version" >/dev/null
  git -C "$REPOS/tools" push -q "$REPOS/http/private-http.git" main
  apply_logged apply-http-bad
  [ "$RC" -ne 0 ] || fail "apply with a wrong token succeeded: $OUT"
  assert_contains "$OUT" 'source "private-http"'
  assert_eq "$head" "$(source_commit pl-b private-http)" "status after a refused fetch"

  where=("$ROOT/apply-http.log" "$ROOT/apply-http-bad.log" "$ROOT/var/lib/farmhand" "$srv_log"
         "$M/pl-b/home" "$M/pl-b/etc" "$M/pl-b/root" "$M/pl-b/tmp" "$M/pl-b/var/tmp")
  if grep -a -r -l -F -- "$token" "${where[@]}"; then
    fail "the token is in the files listed above"
  fi
  # Put the right token back for any later case.
  echo "$token" > "$keys/git-token"
}

run_testcases
