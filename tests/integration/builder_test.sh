#!/usr/bin/env bash
# The seed's real builder, end to end: farmhand provisions the container of
# conf/examples/sai-builder-debian.json from the real libwebsockets and Sai
# sources (git bundles of the upstream code, see ../shared/sources/README.md),
# builds both as sai, installs them, templates the builder's config and
# enables sai-builder.service; the container boots, sai-builder runs under
# its systemd and dropped to sai, and connects to a real sai-server (built
# from the same tree) on the container's gateway, which lists it in its
# database. A new Sai commit then rebuilds only Sai's steps in the running
# container, and the builder comes back with the new version. A broken
# builder config fails the apply with the unit's journal, and the next
# apply with the config fixed starts it again.
#
# The config is the shipped example, read here, with only what a test needs
# changed: the sources' URLs and refs point at local repositories made from
# the bundles (their commits are squashed, so the upstream commit ids the
# example pins are not in them), the builder's server is the test's own
# sai-server on the gateway, and compiles go through ccache, whose cache
# lives in the test cache and is bound into the container, so a warm run
# compiles (almost) nothing.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/payload_lib.sh"

EXAMPLE=$TESTS_DIR/../conf/examples/sai-builder-debian.json
SOURCES=
for d in "${FARMHAND_SOURCES:-}" "$TESTS_DIR/../../shared/sources" /work/shared/sources; do
  if [ -n "$d" ] && [ -f "$d/libwebsockets.bundle" ] && [ -f "$d/sai.bundle" ]; then
    SOURCES=$d
    break
  fi
done
if [ -z "$SOURCES" ]; then
  echo "SKIP: no libwebsockets.bundle and sai.bundle found (set FARMHAND_SOURCES to their directory;" \
    "they are in ../shared/sources next to the project)"
  exit 1  # not a silent pass: CI has them and must run this
fi

make_root ROOT
chmod 0755 "$ROOT"
make_repo_dir REPOS
CONFIG=$ROOT/agent.json
NAME=sai-deb12
M=$ROOT/var/lib/machines
T=$M/$NAME
# Under the test root, where the container's bind source is looked up:
# ROOT/var/cache/farmhand is the test cache.
CCACHE=/var/cache/farmhand/ccache-builder
mkdir -p "$TEST_CACHE/ccache-builder"
chown 883:65534 "$TEST_CACHE/ccache-builder"
echo "sources: $SOURCES"

# Bare repositories the build user can read, made from the bundles, and a
# work clone of Sai to commit to.
(
  umask 022
  _git clone -q --bare -b sai-compat "$SOURCES/libwebsockets.bundle" "$REPOS/libwebsockets.git" &&
    _git clone -q --bare -b main "$SOURCES/sai.bundle" "$REPOS/sai.git" &&
    _git clone -q "$REPOS/sai.git" "$REPOS/sai-work"
) || { echo "cannot make the local repositories from $SOURCES"; exit 1; }
_world_readable "$REPOS"

python3 - "$EXAMPLE" "$CONFIG" "$REPOS" "$CCACHE" <<'PY' || exit 1
import json, sys
example, out, repos, ccache = sys.argv[1:]
c = json.load(open(example))
ct = c["containers"][0]
refs = {"libwebsockets": "sai-compat", "sai": "main"}
for s in ct["sources"]:
    s["url"] = "file://%s/%s.git" % (repos, s["name"])
    s["ref"] = refs[s["name"]]
conf = next(f for f in ct["files"] if f["path"] == "/etc/sai/builder/conf")
lines = conf["content"] if isinstance(conf["content"], list) else conf["content"].split("\n")
new = [l.replace("wss://sai.example.org/sai/builder", "ws://{{gateway}}:4444/sai/builder") for l in lines]
assert new != lines, "the example's builder config no longer names wss://sai.example.org/sai/builder"
conf["content"] = new
ct["packages"].append("ccache")
ct["binds"] = [{"source": ccache, "target": "/var/cache/ccache"}]
for step in ct["setup"]:
    if step.get("user", "sai") == "sai":
        step["env"] = step.get("env", []) + ["CCACHE_DIR=/var/cache/ccache", "CMAKE_C_COMPILER_LAUNCHER=ccache",
                                             "CMAKE_CXX_COMPILER_LAUNCHER=ccache"]
json.dump(c, open(out, "w"), indent=1)
PY

# The builders sai-server lists: "name sai_hash" lines.
builders() {
  python3 - "$T/var/lib/sai-test/sai-master-events.sqlite3" <<'PY'
import sqlite3, sys
try:
    db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=5)
    for name, sai_hash in db.execute("SELECT name, sai_hash FROM builders ORDER BY name"):
        print(name, sai_hash)
except sqlite3.Error as e:
    print("no database yet:", e, file=sys.stderr)
PY
}

testcase_example_is_valid() {
  fh check-config "$EXAMPLE"
  assert_eq 0 "$RC" "$OUT"
  fhc check-config "$CONFIG"
  assert_eq 0 "$RC" "$OUT"
}

testcase_plan_lists_the_whole_payload_of_a_new_container() {
  fhc plan
  assert_eq 0 "$RC" "$OUT"
  assert_contains "$OUT" "payload   $NAME"
  assert_contains "$OUT" "all of it (a new container)"
}

testcase_first_apply_builds_libwebsockets_and_sai_as_sai() {
  local t0=$SECONDS rc=0
  "$FH" --root "$ROOT" --config "$CONFIG" apply >"$ROOT/apply1.log" 2>&1 || rc=$?
  OUT=$(cat "$ROOT/apply1.log")
  assert_eq 0 "$rc" "first apply: $(tail -40 "$ROOT/apply1.log")"
  echo "    first apply (base tree, libwebsockets and Sai built): $((SECONDS - t0)) s"
  grep -E '^\[sai-deb12\] (setup|source|clean)' "$ROOT/apply1.log" | sed 's/^/      /'
  # Every step ran, in order, and the long ones said where they were.
  for step in lws-configure lws-build lws-install lws-ldconfig sai-configure sai-build sai-install; do
    assert_contains "$OUT" "[$NAME] setup $step  done in"
  done
  test -x "$T/usr/local/bin/sai-builder" || fail "sai-builder is not installed"
  test -x "$T/usr/local/bin/sai-server" || fail "sai-server is not installed"
  # Built as sai; installing as root left nothing of root's in sai's trees
  # (the directory above the checkouts is root's, as farmhand makes it).
  assert_eq 883 "$(stat -c %u "$T/home/sai/src/sai/build")" "owner of Sai's build directory"
  local owned
  owned=$(find "$T/home/sai" -xdev -user 0 ! -path "$T/home/sai/src" ! -name 'install_manifest*.txt' | head -5)
  assert_eq "" "$owned" "files owned by root under /home/sai"
  [[ "$OUT" != *"warning:"* ]] || fail "apply warned: $(grep warning: "$ROOT/apply1.log")"
  # The builder's config names the test's server on the gateway.
  local gateway
  gateway=$(sed -n 's/^Gateway=//p' "$T/etc/systemd/network/50-host0.network")
  grep -q "\"ws://$gateway:4444/sai/builder\"" "$T/etc/sai/builder/conf" ||
    fail "the builder config does not name ws://$gateway:4444/sai/builder: $(cat "$T/etc/sai/builder/conf")"
  fhc status
  assert_contains "$OUT" "$NAME: payload ok"
}

testcase_second_apply_rebuilds_nothing() {
  fhc apply
  assert_eq 0 "$RC" "$OUT"
  assert_contains "$OUT" "No changes"
  fhc plan
  assert_contains "$OUT" "=   payload   $NAME"
}

# sai-server from the container's own tree, in the host's network namespace,
# listening on port 4444 (so on the container's gateway). Sets SERVER_PID.
start_sai_server() {
  mkdir -p "$T/etc/sai/server/conf.d" "$T/var/lib/sai-test"
  cat >"$T/etc/sai/server/conf" <<'JSON'
{
  "global": {
    "server-string": "sai",
    "init-ssl": "yes"
  }
}
JSON
  cat >"$T/etc/sai/server/conf.d/test" <<'JSON'
{
  "vhosts": [{
    "name": "sai-test",
    "port": "4444",
    "allow-non-tls": "1",
    "mounts": [{"mountpoint": "/sai", "origin": "callback://com-warmcat-sai"}],
    "ws-protocols": [{"com-warmcat-sai": {
      "database": "/var/lib/sai-test/sai-master",
      "notification-key": "51b3ee2f06ef2a893cfe901972bd13065d7dbae4cf087b396ee38e7bf78f79a6"
    }}]
  }]
}
JSON
  setsid unshare --mount --fork --kill-child -- bash -c '
    mount --make-rprivate / && mount --rbind /dev "$1/dev" && mount -t proc proc "$1/proc" &&
      mkdir -p "$1/run/sai" && exec chroot "$1" /usr/local/bin/sai-server' sai-server "$T" \
    >"$ROOT/sai-server.log" 2>&1 &
  local unshare_pid=$!
  # unshare ignores TERM: the server itself is stopped first, then unshare.
  wait_for 10 "the unshare to start its child" pgrep -P "$unshare_pid"
  SERVER_PID=$(pgrep -P "$unshare_pid" | head -1)
  track_pid "$SERVER_PID"
  track_pid "$unshare_pid"
  wait_for 30 "sai-server to listen on port 4444" bash -c "ss -ltn | grep -q ':4444 '" || { cat "$ROOT/sai-server.log"; return 1; }
}

# Boots the container with `farmhand run`; sets RUN_PID and LEADER.
boot() {
  setsid "$FH" --root "$ROOT" --config "$CONFIG" run "$NAME" >"$ROOT/boot.log" 2>&1 &
  RUN_PID=$!
  track_pid "$RUN_PID"
  wait_for 60 "farmhand run to start nspawn" pgrep -P "$RUN_PID" || { cat "$ROOT/boot.log"; return 1; }
  LEADER=$(pgrep -P "$RUN_PID" | head -1)
  wait_for 120 "the container to boot" bash -c "nsenter -t $LEADER -a systemctl is-system-running | grep -qE 'running|degraded'" ||
    { cat "$ROOT/boot.log"; nsenter -t "$LEADER" -a systemctl --failed --no-pager; return 1; }
}

sai_head() { _git -C "$REPOS/sai-work" rev-parse HEAD; }

testcase_the_builder_connects_then_a_new_sai_commit_rebuilds_only_sai() {
  start_sai_server
  boot
  wait_for 60 "sai-builder to be active" bash -c "nsenter -t $LEADER -a systemctl is-active sai-builder | grep -qx active" ||
    { nsenter -t "$LEADER" -a systemctl status sai-builder --no-pager; return 1; }
  # Started by the container's systemd, running as sai.
  wait_for 30 "the sai-builder process, as user sai" nsenter -t "$LEADER" -a pgrep -u sai -x sai-builder ||
    { nsenter -t "$LEADER" -a ps -eo user,pid,args; return 1; }
  # sai-server lists it.
  local first
  first=$(sai_head)
  wait_for 90 "sai-server to list the builder at the first commit" bash -c "$(declare -f builders); T='$T'; builders | grep -q '${first:0:7}'" ||
    { echo "builders: $(builders)"; tail -20 "$ROOT/sai-server.log";
      nsenter -t "$LEADER" -a journalctl -u sai-builder --no-pager -n 20; return 1; }
  echo "    sai-server lists: $(builders)"

  # A new Sai commit: plan --fetch names Sai's steps and fetches nothing;
  # apply reruns only them, in the running container.
  fhc plan --fetch
  assert_eq 0 "$RC" "$OUT"
  local next t0=$SECONDS objects
  next=$(commit_change "$REPOS/sai-work" "a new Sai commit")
  _git -C "$REPOS/sai-work" push -q origin HEAD:main
  _world_readable "$REPOS/sai.git"
  objects=$(_git -c safe.directory='*' -C "$T/home/sai/src/sai" count-objects -v)
  fhc plan --fetch
  assert_contains "$OUT" "source sai: ${first:0:12} -> ${next:0:12} (the remote moved)"
  assert_contains "$OUT" "setup sai-build: source sai moved"
  [[ "$OUT" != *"setup lws-build"* ]] || fail "plan --fetch would rerun lws-build: $OUT"
  assert_eq "$objects" "$(_git -c safe.directory='*' -C "$T/home/sai/src/sai" count-objects -v)" \
    "objects in the checkout after plan --fetch"
  fhc apply
  assert_eq 0 "$RC" "$OUT"
  echo "    a new Sai commit, fetched, rebuilt and restarted: $((SECONDS - t0)) s"
  assert_contains "$OUT" "setup sai-build  done in"
  assert_contains "$OUT" "restart sai-builder.service  done in"
  [[ "$OUT" != *"setup lws-"* ]] || fail "a libwebsockets step reran: $OUT"
  wait_for 90 "sai-server to list the builder at the next commit" bash -c "$(declare -f builders); T='$T'; builders | grep -q '${next:0:7}'" ||
    { echo "builders: $(builders)"; return 1; }
  echo "    after the new commit, sai-server lists: $(builders)"

  # A builder config it cannot use: the restart fails the apply, with the
  # unit's journal; the fixed config starts it again.
  cp "$CONFIG" "$ROOT/good.json"
  python3 - "$CONFIG" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
conf = next(f for f in c["containers"][0]["files"] if f["path"] == "/etc/sai/builder/conf")
conf["content"] = ["{ this is not JSON"]
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
  fhc apply
  assert_eq 1 "$RC" "apply with a broken builder config: $OUT"
  assert_contains "$OUT" "service sai-builder.service did not stay up after restart"
  assert_contains "$OUT" "Its journal:"
  fhc status
  assert_contains "$OUT" "$NAME: payload restart sai-builder.service failed at"
  cp "$ROOT/good.json" "$CONFIG"
  fhc apply
  assert_eq 0 "$RC" "apply with the config fixed: $OUT"
  assert_contains "$OUT" "restart sai-builder.service  done in"
  assert_eq active "$(nsenter -t "$LEADER" -a systemctl is-active sai-builder)"
}

# Edits the test config with the Python code on stdin (`ct` is the container).
edit_config() {
  python3 -c '
import json, sys
path = sys.argv[1]
c = json.load(open(path))
ct = c["containers"][0]
def step(name): return next(s for s in ct["setup"] if s["name"] == name)
def source(name): return next(s for s in ct["sources"] if s["name"] == name)
exec(sys.stdin.read())
json.dump(c, open(path, "w"), indent=1)
' "$CONFIG"
}

# A bad option given to a configure stays in the CMake cache: the builds
# after it fail, even once the configure's definition is fixed. Without
# clean the checkout stays poisoned; with clean (as the example has it) the
# next apply cures it.
testcase_a_poisoned_cmake_cache_needs_clean() {
  cp "$CONFIG" "$ROOT/before-poison.json"
  edit_config <<'PY'
source("sai")["clean"] = False
step("sai-configure")["run"].append("-DCMAKE_C_FLAGS=-fno-such-flag")
PY
  fhc apply
  assert_eq 1 "$RC" "apply with a poisoned configure: $OUT"
  assert_contains "$OUT" "[$NAME] setup sai-build  FAILED"
  fhc status
  assert_contains "$OUT" "$NAME: payload step sai-build failed at"
  fhc plan
  assert_contains "$OUT" "setup sai-build: it failed at the last apply"
  assert_contains "$OUT" "setup sai-install: an earlier step of source sai reruns (sai-build)"
  # Fixed, but without clean: the flag is still in the cache.
  edit_config <<'PY'
step("sai-configure")["run"].remove("-DCMAKE_C_FLAGS=-fno-such-flag")
PY
  fhc plan
  assert_contains "$OUT" "setup sai-configure: its definition changed"
  fhc apply
  assert_eq 1 "$RC" "apply with the fixed definition, without clean: $OUT"
  assert_contains "$OUT" "[$NAME] setup sai-build  FAILED"
  grep -q -- '-fno-such-flag' "$T/home/sai/src/sai/build/CMakeCache.txt" ||
    fail "the cache does not hold the flag: the poison is not what this case says"
  # With clean: the checkout is cleaned, and Sai's steps rerun and pass.
  cp "$ROOT/before-poison.json" "$CONFIG"
  fhc apply
  assert_eq 0 "$RC" "apply with clean: $OUT"
  assert_contains "$OUT" "clean source sai (untracked and ignored files removed)"
  assert_contains "$OUT" "[$NAME] setup sai-build  done in"
  [[ "$OUT" != *"setup lws-"* ]] || fail "a libwebsockets step reran: $OUT"
  fhc status
  assert_contains "$OUT" "$NAME: payload ok"
}

# The agent watches the payload's services: sai-builder killed in the
# running container (and brought back by its Restart= policy) is a
# service_failed event on a real farmhand-server.
testcase_a_service_killed_later_is_an_event_on_the_server() {
  local build srv conf db token port daemon_pid
  build=$(cd "$(dirname "$FH")/.." && pwd)
  srv=$build/server/farmhand-server
  conf=$ROOT/server.json
  db=$ROOT/server.db
  cat >"$conf" <<JSON
{"database": "$db", "listen": {"address": "127.0.0.1", "port": 0}}
JSON
  token=$("$srv" token create --name saihost --config "$conf" 2>/dev/null)
  "$srv" serve --config "$conf" --port-file "$ROOT/server.port" >"$ROOT/server.log" 2>&1 &
  track_pid $!
  wait_for 20 "the server's port file" test -s "$ROOT/server.port"
  port=$(cat "$ROOT/server.port")
  "$build/tests/tools/farmhand-test-agent" --enroll-token "$token" --url "ws://127.0.0.1:$port" \
    --credential-file "$ROOT/etc/farmhand/credential" >"$ROOT/enroll.log" 2>&1 ||
    { cat "$ROOT/enroll.log"; return 1; }
  edit_config <<PY
c["server"] = {"url": "ws://127.0.0.1:$port"}
PY
  boot
  wait_for 60 "sai-builder to be active" bash -c "nsenter -t $LEADER -a systemctl is-active sai-builder | grep -qx active"
  "$FH" --root "$ROOT" --config "$CONFIG" daemon >"$ROOT/daemon.log" 2>&1 &
  daemon_pid=$!
  track_pid "$daemon_pid"
  events() { python3 -c '
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=5)
for kind, container, message in db.execute("SELECT kind, container, message FROM events WHERE kind = ?", (sys.argv[2],)):
    print(kind, container, message.replace("\n", " | "))
' "$db" "$1" 2>/dev/null; }
  wait_for 120 "an agent_started event" bash -c "$(declare -f events); db='$db'; events agent_started | grep -q ." ||
    { tail -20 "$ROOT/daemon.log"; return 1; }
  # Once the agent watches the builder, kill it.
  wait_for 60 "the service watch to see sai-builder running" grep -q "service watch: 1 payload service(s) running" "$ROOT/daemon.log" ||
    { tail -20 "$ROOT/daemon.log"; return 1; }
  nsenter -t "$LEADER" -a systemctl kill -s KILL sai-builder
  wait_for 90 "a service_failed event for sai-builder" bash -c "$(declare -f events); db='$db'; events service_failed | grep -q 'sai-builder.service died'" ||
    { tail -20 "$ROOT/daemon.log"; events service_failed; return 1; }
  echo "    the server got: $(events service_failed | head -1 | cut -c1-200)"
  assert_contains "$(events service_failed)" "service_failed $NAME"
}

run_testcases
