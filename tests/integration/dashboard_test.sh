#!/usr/bin/env bash
# The dashboard's browser test (tests/dashboard/dashboard_test.mjs, Debian's
# chromium driven by playwright-core) against a real farmhand-server and the
# scripted agent (tests/tools/farmhand-scripted-agent: one pretend container
# "web1", events and devices on demand through a FIFO). The test acts on them
# through dashboard_hooks.sh, whose state is exported below. Everything
# listens on 127.0.0.1 with port 0 (the restarted server reuses its port).
# Screenshots go to $FARMHAND_TEST_ARTIFACTS, or a temp dir printed at the end.
source "$(dirname "$0")/lib.sh"

BUILD=$(cd "$(dirname "$FH")/.." && pwd)
SRV=$BUILD/server/farmhand-server
AGENT=$BUILD/tests/tools/farmhand-scripted-agent
HOOKS=$TESTS_DIR/integration/dashboard_hooks.sh
DASHBOARD_TEST=$TESTS_DIR/dashboard
for bin in "$SRV" "$AGENT"; do
  [ -x "$bin" ] || { echo "FAIL: $bin is not built" >&2; exit 1; }
done

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null </dev/null ||
    { echo "FAIL: cannot install $*" >&2; exit 1; }
}
[ -x /usr/bin/chromium ] || apt_install chromium
command -v curl >/dev/null || apt_install curl
command -v node >/dev/null || apt_install nodejs npm
if [ ! -d "$DASHBOARD_TEST/node_modules/playwright-core" ]; then
  npm ci --prefix "$DASHBOARD_TEST" --no-audit --no-fund </dev/null ||
    { echo "FAIL: npm ci --prefix $DASHBOARD_TEST failed" >&2; exit 1; }
fi

ARTIFACTS=${FARMHAND_TEST_ARTIFACTS:-$(mktemp -d /tmp/farmhand-dashboard-artifacts.XXXXXX)}
export FARMHAND_TEST_ARTIFACTS=$ARTIFACTS

testcase_dashboard() {
  local work
  work=$(mktemp -d /tmp/farmhand-dashboard-it.XXXXXX)
  on_exit "rm -rf '$work'"
  export DASH_WORK=$work DASH_SERVER=$SRV DASH_CONFIG=$work/server.json DASH_PID_FILE=$work/server.pid
  export DASH_FIFO=$work/control DASH_STATE_FILE=$work/web1.state
  cat > "$DASH_CONFIG" <<JSON
{"database": "$work/server.db", "listen": {"address": "127.0.0.1", "port": 0}, "heartbeat_s": 2}
JSON
  srv() { "$SRV" "$@" --config "$DASH_CONFIG"; }

  step "users admin and viewer; a token for host dash1"
  local admin_pw viewer_pw token
  admin_pw=$(head -c 18 /dev/urandom | base64)
  viewer_pw=$(head -c 18 /dev/urandom | base64)
  printf '%s\n' "$admin_pw" > "$work/admin.pw"
  printf '%s\n' "$viewer_pw" > "$work/viewer.pw"
  srv user add admin --role admin --password-file "$work/admin.pw" >> "$work/cli.log" 2>&1
  srv user add viewer --role viewer --password-file "$work/viewer.pw" >> "$work/cli.log" 2>&1
  token=$(srv token create --name dash1 2>> "$work/cli.log")

  step "farmhand-server on 127.0.0.1, port 0"
  # The server's pid lives in a file: the start-server hook replaces it.
  on_exit "stop_pid \$(cat '$DASH_PID_FILE' 2>/dev/null)"
  "$SRV" serve --config "$DASH_CONFIG" --port-file "$work/port" </dev/null >> "$work/server.log" 2>&1 &
  echo $! > "$DASH_PID_FILE"
  wait_for 20 "the server's port file" test -s "$work/port" || { tail -5 "$work/server.log" >&2; return 1; }
  export DASH_PORT
  DASH_PORT=$(cat "$work/port")
  local url=http://127.0.0.1:$DASH_PORT

  step "the scripted agent enrolls as dash1 and connects"
  "$AGENT" --enroll-token "$token" --url "ws://127.0.0.1:$DASH_PORT" --credential-file "$work/credential" \
    > "$work/enroll.log" 2>&1 || fail "enrollment failed: $(cat "$work/enroll.log")"
  assert_contains "$(cat "$work/enroll.log")" "enrolled as dash1"
  mkfifo -m 0600 "$DASH_FIFO"
  "$AGENT" --credential-file "$work/credential" --outbox "$work/outbox.db" --control "$DASH_FIFO" \
    --state-file "$DASH_STATE_FILE" </dev/null > "$work/agent.log" 2>&1 &
  local agent_pid=$!
  on_exit "stop_pid $agent_pid"
  wait_for 20 "the agent to connect" grep -q "connected to" "$work/agent.log" ||
    { tail -5 "$work/agent.log" >&2; return 1; }

  step "dashboard_test.mjs (artifacts in $ARTIFACTS)"
  local rc=0
  node "$DASHBOARD_TEST/dashboard_test.mjs" --url "$url/" --admin "admin:$admin_pw" --viewer "viewer:$viewer_pw" \
    --hooks "$HOOKS" --host dash1 --container web1 </dev/null 2>&1 | sed 's/^/      /' || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "      --- server.log (last 20 lines)"; tail -20 "$work/server.log" | sed 's/^/      /'
    echo "      --- agent.log (last 20 lines)"; tail -20 "$work/agent.log" | sed 's/^/      /'
    fail "dashboard_test.mjs exited $rc"
  fi
  kill -0 "$agent_pid" || fail "the scripted agent died: $(tail -3 "$work/agent.log")"
}

run_testcases
status=$?
echo "dashboard artifacts: $ARTIFACTS"
exit $status
