#!/usr/bin/env bash
# farmhand-server with the real agent link (tests/tools/farmhand-test-agent):
# enrollment, no event lost or duplicated when the server or the agent is
# SIGKILLed mid-stream or the server stops answering for 35 s, hostile
# clients that change nothing, and host removal cutting the agent off.
# Everything listens on 127.0.0.1 with port 0 (a restarted server reuses its
# port); every wait polls a condition under a deadline.
source "$(dirname "$0")/lib.sh"
# Local git repositories (the config repository testcase).
source "$(dirname "$0")/payload_lib.sh"

BUILD=$(cd "$(dirname "$FH")/.." && pwd)
SRV=$BUILD/server/farmhand-server
AGENT=$BUILD/tests/tools/farmhand-test-agent
HOSTILE=$TESTS_DIR/integration/hostile_client.py
for bin in "$SRV" "$AGENT"; do
  [ -x "$bin" ] || { echo "FAIL: $bin is not built" >&2; exit 1; }
done
for tool in sqlite3 curl python3; do
  if ! command -v "$tool" >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$tool" >/dev/null </dev/null ||
      { echo "FAIL: cannot install $tool" >&2; exit 1; }
  fi
done

# The whole script gives up at this point, whatever the single waits say
# (common.sh's wait_for reads it).
# shellcheck disable=SC2034
WAIT_DEADLINE=$((EPOCHSECONDS + ${FARMHAND_SERVER_TEST_TIMEOUT:-300}))

WORK=$(mktemp -d /tmp/farmhand-server-it.XXXXXX)
DB=$WORK/server.db
CONF=$WORK/server.json
CRED=$WORK/credential
OUTBOX=$WORK/outbox.db
PASSWORD=$WORK/admin.password
# A short hello timeout keeps the hostile catalogue's "no hello" case short.
cat > "$CONF" <<JSON
{"database": "$DB", "listen": {"address": "127.0.0.1", "port": 0}, "limits": {"hello_timeout_s": 3}}
JSON
head -c 18 /dev/urandom | base64 > "$PASSWORD"

srv() { "$SRV" "$@" --config "$CONF"; }

# SQL against the server's database (WAL: readable while the server writes).
q() { sqlite3 -cmd ".timeout 5000" "$DB" "$1"; }
h1_count() { q "SELECT count(*) FROM events WHERE host = 'h1'"; }

at_least() { [ "$($1)" -ge "$2" ]; }
log_has() { grep -q -- "$2" "$1"; }
exited() { ! kill -0 "$1" 2>/dev/null; }

# Starts the server (extra args: e.g. --listen 127.0.0.1:PORT), waits for its
# port file; sets SERVER_PID, PORT, URL and HTTP.
SERVER_RUNS=0
start_server() {
  SERVER_RUNS=$((SERVER_RUNS + 1))
  local portfile=$WORK/port.$BASHPID.$SERVER_RUNS
  rm -f "$portfile"
  SERVER_LOG=$WORK/server.log
  echo "=== serve $* (run $SERVER_RUNS of ${FUNCNAME[1]})" >> "$SERVER_LOG"
  "$SRV" serve --config "$CONF" --port-file "$portfile" "$@" >> "$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  on_exit "stop_pid $SERVER_PID"
  wait_for 20 "the server's port file" test -s "$portfile" ||
    { tail -5 "$SERVER_LOG" >&2; return 1; }
  PORT=$(cat "$portfile")
  URL=ws://127.0.0.1:$PORT
  HTTP=http://127.0.0.1:$PORT
}

# Starts the test agent with its output in LOG; sets AGENT_PID.
start_agent() {
  local log=$1
  shift
  : > "$log"
  "$AGENT" --credential-file "$CRED" --outbox "$OUTBOX" --url "$URL" "$@" > "$log" 2>&1 &
  AGENT_PID=$!
  on_exit "stop_pid $AGENT_PID"
}

# Waits for the agent to exit; fails unless it exits 0.
agent_succeeds() {
  local seconds=$1 log=$2 rc=0
  wait_for "$seconds" "the test agent to get everything acked" exited "$AGENT_PID" ||
    { tail -5 "$log" >&2; return 1; }
  wait "$AGENT_PID" || rc=$?
  [ "$rc" -eq 0 ] || { tail -5 "$log" >&2; fail "the test agent exited $rc"; }
}

# Every event of h1 stored exactly once, seq 1..N in insertion order, each
# "event K" for seq K; N must be EXPECTED.
assert_h1_events() {
  local expected=$1
  assert_eq "$expected|$expected|1|$expected" \
    "$(q "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM events WHERE host = 'h1'")" \
    "h1 events: count|distinct seq|min|max"
  assert_eq 0 "$(q "SELECT count(*) FROM (SELECT seq, lag(seq) OVER (ORDER BY id) AS prev
                    FROM events WHERE host = 'h1') WHERE prev IS NOT NULL AND seq != prev + 1")" \
    "h1 events whose seq does not follow the previous one in insertion order"
  assert_eq 0 "$(q "SELECT count(*) FROM events WHERE host = 'h1' AND message != 'event ' || seq")" \
    "h1 events whose message is not \"event SEQ\""
}

testcase_enrollment() {
  step "token create --name h1; the test agent enrolls with it"
  local token
  token=$(srv token create --name h1 2>/dev/null)
  start_server
  "$AGENT" --enroll-token "$token" --url "$URL" --credential-file "$CRED" > "$WORK/enroll.log" 2>&1 ||
    fail "enrollment failed: $(cat "$WORK/enroll.log")"
  assert_contains "$(cat "$WORK/enroll.log")" "enrolled as h1"
  assert_eq 600 "$(stat -c %a "$CRED")" "credential file mode"
  step "10 events flow and are acked"
  start_agent "$WORK/agent1.log" --events 10 --wait-acked
  agent_succeeds 30 "$WORK/agent1.log"
  assert_h1_events 10
  step "GET /api/hosts as an admin shows h1"
  srv user add admin --role admin --password-file "$PASSWORD" 2>/dev/null
  local body
  body=$(python3 -c 'import json,sys; print(json.dumps({"user": "admin", "password": open(sys.argv[1]).read().strip()}))' \
    "$PASSWORD")
  curl -sSf -c "$WORK/cookies" -H 'Content-Type: application/json' -d "$body" "$HTTP/api/login" > "$WORK/login.json"
  assert_contains "$(cat "$WORK/login.json")" '"role":'
  curl -sSf -b "$WORK/cookies" "$HTTP/api/hosts" > "$WORK/hosts.json"
  assert_eq "h1 10" "$(python3 -c 'import json, sys
print(" ".join(h["name"] + " " + str(h["acked_seq"]) for h in json.load(open(sys.argv[1]))["hosts"]))' \
    "$WORK/hosts.json")" "hosts and acked_seq in /api/hosts"
}

testcase_server_killed_mid_stream() {
  start_server
  local base first_port
  base=$(h1_count)
  first_port=$PORT
  step "the test agent emits 10000 events at 2000/s; the server is SIGKILLed twice"
  start_agent "$WORK/agent2.log" --events 10000 --rate 2000 --wait-acked
  local at kill
  for at in 2000 5000; do
    wait_for 30 "$at events stored" at_least h1_count $((base + at))
    kill -KILL "$SERVER_PID"
    { wait "$SERVER_PID"; } 2>/dev/null || true
    kill=$(h1_count)
    step "killed the server with $((kill - base)) of 10000 stored"
    [ "$kill" -lt $((base + 10000)) ] || fail "the kill came too late: everything was stored"
    start_server --listen "127.0.0.1:$first_port"
    assert_eq "$first_port" "$PORT" "port of the restarted server"
  done
  agent_succeeds 90 "$WORK/agent2.log"
  step "$(tail -1 "$WORK/agent2.log"); reconnects: $(grep -c 'connected to' "$WORK/agent2.log")"
  assert_h1_events $((base + 10000))
}

testcase_agent_killed_mid_stream() {
  start_server
  local base
  base=$(h1_count)
  step "the test agent emits 5000 events at 2000/s and is SIGKILLed after 1500"
  start_agent "$WORK/agent3.log" --events 5000 --rate 2000
  wait_for 30 "1500 events stored" at_least h1_count $((base + 1500))
  kill -KILL "$AGENT_PID"
  { wait "$AGENT_PID"; } 2>/dev/null || true
  local last waiting
  last=$(sqlite3 "$OUTBOX" "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'")
  waiting=$(sqlite3 "$OUTBOX" "SELECT count(*) FROM outbox")
  step "killed with $(($(h1_count) - base)) stored, $((last - base)) of 5000 appended, $waiting in the outbox"
  [ "$last" -lt $((base + 5000)) ] || fail "the kill came too late: every event was appended"
  step "restarted with the same outbox, no new events"
  start_agent "$WORK/agent3b.log" --events 0 --wait-acked
  agent_succeeds 60 "$WORK/agent3b.log"
  assert_eq "acked $last/$last" "$(tail -1 "$WORK/agent3b.log")" "the restarted agent's last line"
  assert_h1_events "$last"
}

testcase_server_stopped_for_35_s() {
  start_server
  local base
  base=$(h1_count)
  step "the test agent emits 3000 events at 100/s; the server is SIGSTOPped for 35 s"
  start_agent "$WORK/agent4.log" --events 3000 --rate 100 --wait-acked
  wait_for 30 "100 events stored" at_least h1_count $((base + 100))
  local stopped=$EPOCHREALTIME noticed=""
  kill -STOP "$SERVER_PID"
  on_exit "kill -CONT $SERVER_PID 2>/dev/null"
  local stored_at_stop
  stored_at_stop=$(($(h1_count) - base))
  # The stop lasts 35 s whatever happens: that is the test. Meanwhile, note
  # when the agent gives up on the silent connection.
  while [ "$(elapsed_ds "$stopped")" -lt 350 ]; do
    if [ -z "$noticed" ] && grep -q "disconnected from\|cannot connect to" "$WORK/agent4.log"; then
      noticed=$(seconds_since "$stopped")
    fi
    sleep 0.2
  done
  kill -CONT "$SERVER_PID"
  local resumed=$EPOCHREALTIME
  step "stopped with $stored_at_stop stored; the agent noticed the dead connection after ${noticed:-(never)} s"
  [ -n "$noticed" ] || fail "the agent did not notice in 35 s that the server stopped answering: $(tail -3 "$WORK/agent4.log")"
  agent_succeeds 90 "$WORK/agent4.log"
  step "the backlog drained $(seconds_since "$resumed") s after SIGCONT ($(tail -1 "$WORK/agent4.log"))"
  assert_h1_events $((base + 3000))
}

elapsed_ds() {  # tenths of a second since an $EPOCHREALTIME
  local now=$EPOCHREALTIME
  echo $(((10#${now/./} - 10#${1/./}) / 100000))
}
seconds_since() {  # "12.3"
  local ds
  ds=$(elapsed_ds "$1")
  echo "$((ds / 10)).$((ds % 10))"
}

testcase_hostile_clients_change_nothing() {
  step "tokens for h2: valid, used, expired (1 s), revoked"
  local first valid used expired revoked revoked_id
  first=$(srv token create --name h2 2>/dev/null)
  valid=$(srv token create --name h2 2>/dev/null)
  used=$(srv token create --name h2 2>/dev/null)
  expired=$(srv token create --name h2 --expires 1s 2>/dev/null)
  revoked=$(srv token create --name h2 2>"$WORK/token.err")
  revoked_id=$(sed -n 's/^token \([0-9]*\) .*/\1/p' "$WORK/token.err")
  srv token revoke "$revoked_id" 2>/dev/null
  start_server
  local cred2
  cred2=$(python3 "$HOSTILE" --url "$URL" --enroll "$first")
  python3 "$HOSTILE" --url "$URL" --enroll "$used" > /dev/null
  wait_for 10 "the 1 s token to expire" expired_token_listed
  local before
  before=$(q "SELECT count(*), max(id) FROM events")
  step "hostile_client.py catalogue as h2"
  python3 "$HOSTILE" --url "$URL" --host h2 --credential "$cred2" --token-valid "$valid" --token-used "$used" \
    --token-expired "$expired" --token-revoked "$revoked" --hello-timeout 3 > "$WORK/hostile.log" 2>&1 ||
    fail "hostile_client.py failed:"$'\n'"$(grep -v '^ok ' "$WORK/hostile.log")"
  step "$(grep -c '^ok ' "$WORK/hostile.log") hostile cases refused as documented"
  exited "$SERVER_PID" && fail "the server died"
  assert_contains "$(curl -sS "$HTTP/api/health")" '"ok":true'
  assert_eq "$before" "$(q "SELECT count(*), max(id) FROM events")" "events (count|max id) before and after"
  assert_eq 0 "$(q "SELECT count(*) FROM events WHERE host != 'h1'")" "events of other hosts"
}

expired_token_listed() { srv token list 2>/dev/null | grep -q "^[0-9]* *h2 .*expired"; }

testcase_host_removal_disconnects_the_agent() {
  start_server
  start_agent "$WORK/agent6.log" --events 0 --heartbeat
  wait_for 20 "the agent to connect" log_has "$WORK/agent6.log" "connected to"
  step "host remove h1 while the agent is connected"
  srv host remove h1 2>/dev/null
  wait_for 20 "the agent to be refused" log_has "$WORK/agent6.log" "server refused the credential"
  step "agent: $(grep -o 'server refused the credential.*' "$WORK/agent6.log" | head -1)"
  assert_contains "$(cat "$SERVER_LOG")" "the host h1 was removed" "server log"
  step "a new hello with the old credential is refused"
  python3 - "$URL" "$CRED" "$(dirname "$HOSTILE")" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[3])
from hostile_client import WebSocket, expect_refusal
cred = json.load(open(sys.argv[2]))
ws = WebSocket(sys.argv[1])
ws.send_json({"type": "hello", "host": cred["host"], "credential": cred["credential"], "version": "0.1.0",
              "capabilities": ["events", "heartbeat", "commands"]})
expect_refusal(ws, "unauthorized")
PY
}

testcase_tls_with_a_pinned_ca() {
  step "a server with a certificate for 127.0.0.1; agents pin its CA"
  local cert key
  for name in server other; do
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
      -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/$name.key" -out "$WORK/$name.pem" 2>/dev/null ||
      fail "openssl could not make a test certificate"
  done
  local tls_conf=$WORK/server-tls.json
  cat > "$tls_conf" <<JSON
{"database": "$WORK/tls.db", "listen": {"address": "127.0.0.1", "port": 0},
 "tls": {"cert": "$WORK/server.pem", "key": "$WORK/server.key"}}
JSON
  "$SRV" serve --config "$tls_conf" --port-file "$WORK/tls.port" >> "$WORK/tls-server.log" 2>&1 &
  local pid=$!
  on_exit "stop_pid $pid"
  wait_for 20 "the TLS server's port file" test -s "$WORK/tls.port"
  local url=wss://127.0.0.1:$(cat "$WORK/tls.port")
  step "an agent pinning another CA is refused before anything is sent"
  local token
  token=$("$SRV" token create --name h3 --config "$tls_conf" 2>/dev/null)
  ! "$AGENT" --enroll-token "$token" --url "$url" --credential-file "$WORK/cred3" --ca-file "$WORK/other.pem" \
    > "$WORK/tls-enroll-bad.log" 2>&1 || fail "enrolled with a server whose CA was not pinned"
  [ ! -e "$WORK/cred3" ] || fail "a credential was written after a refused TLS handshake"
  step "the agent pinning the server's CA enrolls over wss:// (the same token: it was never used)"
  "$AGENT" --enroll-token "$token" --url "$url" --credential-file "$WORK/cred3" --ca-file "$WORK/server.pem" \
    > "$WORK/tls-enroll.log" 2>&1 || fail "enrollment over wss:// failed: $(cat "$WORK/tls-enroll.log")"
  step "events flow over wss://"
  "$AGENT" --credential-file "$WORK/cred3" --outbox "$WORK/outbox3.db" --url "$url" --ca-file "$WORK/server.pem" \
    --events 20 --wait-acked > "$WORK/tls-agent.log" 2>&1 || fail "events over wss:// failed: $(tail -3 "$WORK/tls-agent.log")"
  assert_eq 20 "$(sqlite3 -cmd ".timeout 5000" "$WORK/tls.db" "SELECT count(DISTINCT seq) FROM events WHERE host = 'h3'")"
  step "plain http to the TLS port gets no answer"
  ! curl -sS --max-time 5 "http://127.0.0.1:$(cat "$WORK/tls.port")/api/health" >/dev/null 2>&1 ||
    fail "the TLS server answered plain http"
  assert_contains "$(curl -sS --max-time 5 --cacert "$WORK/server.pem" "https://127.0.0.1:$(cat "$WORK/tls.port")/api/health")" '"ok":true'
}

# ev1's events of KIND: their count, and the message of the newest.
ev_count() { q "SELECT count(*) FROM events WHERE host = 'ev1' AND kind = '$1'"; }
ev_last() { q "SELECT message FROM events WHERE host = 'ev1' AND kind = '$1' ORDER BY id DESC LIMIT 1"; }
# host.config_commit of ev1's stored inventory ("" without one).
ev_config_commit() {
  q "SELECT ifnull(json_extract(inventory, '\$.host.config_commit'), '') FROM hosts WHERE name = 'ev1'"
}
# Succeeds once ev1's stored inventory was made at or after MS (the agent's
# clock in milliseconds, as events.time).
ev_inventory_since() {
  [ "$(q "SELECT ifnull(json_extract(inventory, '\$.time'), 0) >= $1 FROM hosts WHERE name = 'ev1'")" == 1 ]
}
# Waits for ev1's Nth "apply" event (the end of a reconcile), then for an
# inventory the agent made after it: it shows what that reconcile left in force.
ev_wait_reconcile() {
  local n=$1 at
  wait_for 60 "reconcile $n of the agent" at_least "ev_count apply" "$n"
  at=$(q "SELECT time FROM events WHERE host = 'ev1' AND kind = 'apply' ORDER BY id LIMIT 1 OFFSET $((n - 1))")
  wait_for 30 "an inventory made after reconcile $n" ev_inventory_since "$at"
}

# The real agent, `farmhand daemon` under --root (no containers, so no
# nspawn), with its desired state in a config repository: each commit it
# accepts or refuses reaches the server as an event, and the stored
# inventory names the commit in force. enroll works on the real host only,
# so the test agent enrolls ev1 and agent.json gets what enroll writes
# ("server") plus config_repo.
testcase_config_repo_events_reach_the_server() {
  local token root repos conf daemon_log good bad good2 msg pid
  token=$(srv token create --name ev1 2>/dev/null)
  start_server
  make_root root
  make_repo_dir repos
  step "a config repository whose hosts/ev1.json has no containers"
  good=$(echo '{"containers": []}' | make_config_repo "$repos/config" ev1)
  # What enroll makes besides the credential: the state and machines dirs.
  mkdir -p "$root/etc/farmhand"
  mkdir -p -m 0700 "$root/var/lib/farmhand" "$root/var/lib/machines"
  "$AGENT" --enroll-token "$token" --url "$URL" --credential-file "$root/etc/farmhand/credential" \
    > "$WORK/ev-enroll.log" 2>&1 || fail "enrollment failed: $(cat "$WORK/ev-enroll.log")"
  conf=$root/etc/farmhand/agent.json
  echo "{\"server\": {\"url\": \"$URL\", \"credential_file\": \"/etc/farmhand/credential\"}}" > "$conf"
  python3 -c '
import json, sys
path, url = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["config_repo"] = {"url": url, "ref": "main", "path": "hosts/ev1.json"}
open(path, "w").write(json.dumps(c, indent=2) + "\n")' "$conf" "file://$repos/config"
  fh check-config "$conf"
  assert_eq 0 "$RC" "check-config of agent.json: $OUT"

  step "farmhand daemon starts: config_applied for the first commit, the inventory names it"
  daemon_log=$WORK/ev-daemon.log
  "$FH" --root "$root" --config "$conf" daemon > "$daemon_log" 2>&1 &
  pid=$!
  on_exit "stop_pid $pid"
  wait_for 60 "a config_applied event" at_least "ev_count config_applied" 1
  assert_eq "config hosts/ev1.json@${good:0:12} accepted" "$(ev_last config_applied)" "config_applied message"
  ev_wait_reconcile 1
  assert_eq "$good" "$(ev_config_commit)" "inventory host.config_commit after the start"

  step "a commit with an unknown key, SIGHUP: config_rejected, the first commit stays in force"
  bad=$(echo '{"containers": [], "bogus": 1}' | commit_file "$repos/config" hosts/ev1.json "an unknown key")
  kill -HUP "$pid"
  wait_for 60 "a config_rejected event" at_least "ev_count config_rejected" 1
  msg=$(ev_last config_rejected)
  step "config_rejected: ${msg//$'\n'/ | }"
  assert_contains "$msg" "config refused, hosts/ev1.json@${good:0:12} stays in force:" "config_rejected message"
  assert_contains "$msg" "hosts/ev1.json@${bad:0:12}" "config_rejected message"
  assert_contains "$msg" "/bogus" "config_rejected message"
  ev_wait_reconcile 2
  assert_eq "$good" "$(ev_config_commit)" "inventory host.config_commit after the refused commit"
  assert_eq 1 "$(ev_count config_applied)" "config_applied events after the refused commit"

  step "a good commit again, SIGHUP: config_applied, the inventory moves to it"
  good2=$(printf '{\n  "containers": []\n}\n' | commit_file "$repos/config" hosts/ev1.json "no containers, again")
  kill -HUP "$pid"
  wait_for 60 "a second config_applied event" at_least "ev_count config_applied" 2
  assert_eq "config hosts/ev1.json@${good2:0:12} accepted (was ${good:0:12})" "$(ev_last config_applied)" \
    "the second config_applied message"
  ev_wait_reconcile 3
  assert_eq "$good2" "$(ev_config_commit)" "inventory host.config_commit after the good commit"
  assert_eq "2 1" "$(ev_count config_applied) $(ev_count config_rejected)" "config_applied and config_rejected events"

  step "the agent still runs and logged nothing unexpected"
  ! exited "$pid" || fail "farmhand daemon exited: $(tail -5 "$daemon_log")"
  local unexpected="terminate called|Assertion|Sanitizer|runtime error|Segmentation fault|not reporting to the"
  ! grep -nE "$unexpected" "$daemon_log" || fail "farmhand daemon logged the lines above"
}

if run_testcases; then
  rm -rf "$WORK"
else
  for f in "$WORK"/*.log; do
    echo "--- tail of $f" >&2
    tail -15 "$f" >&2
  done
  exit 1
fi
