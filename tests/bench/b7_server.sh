#!/usr/bin/env bash
# B7: farmhand-server under load, driven over loopback by farmhand-load (many
# simulated agents per process on the agent's own client code):
#   - concurrent connected agents sending heartbeats every 10 s, held long
#     enough for each to send at least two;
#   - sustained event ingest, acknowledged only after the server's batched
#     SQLite transaction is committed: all events at once (throughput), then
#     paced at FARMHAND_BENCH_EVENT_RATE (latency under that load);
#   - event-ingest to dashboard-feed latency, p50/p99/max, measured by a
#     logged-in /ui client in the load tool;
#   - the server's memory per agent connection (VmRSS before and with all
#     agents connected), and the load tool's own per link.
# Prints figures; fails only if something cannot run: the server died, the
# agents never all connected, or an event was lost or stored twice.
#
#   tests/bench/b7_server.sh /path/to/farmhand   # finds farmhand-server and farmhand-load in the build dir
set -euo pipefail
export LC_ALL=C

FH=${1:?usage: $0 /path/to/farmhand}
BUILD=$(cd "$(dirname "$(readlink -f "$FH")")/.." && pwd)
SERVER=${FARMHAND_SERVER:-$BUILD/server/farmhand-server}
LOAD=${FARMHAND_LOAD:-$BUILD/tests/bench/farmhand-load}
AGENTS=${FARMHAND_BENCH_AGENTS:-5000}
HOLD=${FARMHAND_BENCH_HOLD_S:-25}
EV_AGENTS=${FARMHAND_BENCH_EVENT_AGENTS:-100}
EV_PER_AGENT=${FARMHAND_BENCH_EVENTS_PER_AGENT:-400}
RATE=${FARMHAND_BENCH_EVENT_RATE:-20000}
RATE_S=${FARMHAND_BENCH_EVENT_RATE_S:-5}
LIMIT=${FARMHAND_BENCH_CMD_TIMEOUT:-300}

for tool in "$SERVER" "$LOAD"; do
  [ -x "$tool" ] || { echo "bench: $tool is missing (build farmhand-server and farmhand-load)" >&2; exit 1; }
done
for tool in sqlite3 curl timeout xargs awk; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
[ "$EV_AGENTS" -le "$AGENTS" ] || { echo "bench: FARMHAND_BENCH_EVENT_AGENTS > FARMHAND_BENCH_AGENTS" >&2; exit 1; }

# The measured phases keep the database on disk. The setup (a token per
# agent, made by the CLI, and their enrollment) runs on tmpfs: it is two
# fsyncs per agent that nothing here measures, minutes for 5000 agents.
WORK=$(mktemp -d /var/tmp/farmhand-bench-b7.XXXXXX)
SETUP=$(mktemp -d /dev/shm/farmhand-bench-b7.XXXXXX)
SERVER_PID=
LOAD_PID=
# The cleanup stack, stop_pid and elapsed.
# shellcheck source=tests/integration/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../integration/common.sh"
# The load tool and the server of the moment, first at exit.
cleanup_first() {
  for pid in $LOAD_PID $SERVER_PID; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $LOAD_PID $SERVER_PID; do stop_pid "$pid" 20; done
}
# shellcheck disable=SC2016  # expanded at exit
on_exit 'if [ -n "${FARMHAND_BENCH_KEEP:-}" ]; then echo "bench: kept $WORK and $SETUP" >&2; else rm -rf "$WORK" "$SETUP"; fi'
trap _cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The server and the load tool each hold a socket per agent.
ulimit -n $((AGENTS * 2 + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((AGENTS + 256)) ] || { echo "bench: open-file limit $(ulimit -n) is too low for $AGENTS agents" >&2; exit 1; }

cat >"$WORK/server.json" <<EOF
{"listen": {"address": "127.0.0.1", "port": 0},
 "database": "$WORK/server.db",
 "limits": {"frames_per_second": 100000, "burst": 200000, "hello_timeout_s": 60},
 "heartbeat_s": 10}
EOF

start_server() {  # DATABASE LOG
  rm -f "$WORK/port"
  "$SERVER" serve --config "$WORK/server.json" --database "$1" --port-file "$WORK/port" 2>"$2" &
  SERVER_PID=$!
  local i
  for ((i = 0; i < 300; i++)); do
    [ -s "$WORK/port" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "bench: farmhand-server exited:" >&2; sed 's/^/    | /' "$2" >&2; exit 1; }
    sleep 0.1
  done
  [ -s "$WORK/port" ] || { echo "bench: farmhand-server wrote no port file in 30 s" >&2; exit 1; }
  URL=http://127.0.0.1:$(cat "$WORK/port")
}

stop_server() {
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "bench: farmhand-server died:" >&2; tail -20 "$WORK"/server*.log >&2; exit 1; }
  kill -TERM "$SERVER_PID"
  local rc=0
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=
  [ "$rc" = 0 ] || { echo "bench: farmhand-server exited with $rc on SIGTERM" >&2; exit 1; }
}

# Runs the load tool with a time limit; its key=value output goes to OUT.
load() {  # OUT ARGS...
  local out=$1 rc=0
  shift
  timeout "$LIMIT" "$LOAD" "$@" >"$out" 2>"$out.err" || rc=$?
  if [ "$rc" != 0 ]; then
    echo "bench: farmhand-load $1 failed (exit $rc):" >&2
    sed 's/^/    | /' "$out" "$out.err" >&2
    exit 1
  fi
}
val() { awk -F= -v k="$2" '$1 == k { print substr($0, length(k) + 2) }' "$1"; }  # FILE KEY
server_rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"; }

echo "B7 farmhand-server under load ($AGENTS agents, $EV_AGENTS event agents)"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r)"

# --- setup: tokens, a dashboard user, enrollment (tmpfs) ---------------------
t0=$EPOCHREALTIME
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SETUP/password"
# This creates the database, before the token creates run side by side.
"$SERVER" user add bench --role viewer --password-file "$SETUP/password" --config "$WORK/server.json" \
  --database "$SETUP/server.db" 2>"$SETUP/user.err" || { cat "$SETUP/user.err" >&2; exit 1; }
rc=0
seq 1 "$AGENTS" | xargs -P 4 -I{} "$SERVER" token create --name b7-{} --config "$WORK/server.json" \
  --database "$SETUP/server.db" >"$SETUP/tokens" 2>"$SETUP/tokens.err" || rc=$?
if [ "$rc" != 0 ] || [ "$(wc -l <"$SETUP/tokens")" != "$AGENTS" ]; then
  echo "bench: token create failed (xargs exit $rc, $(wc -l <"$SETUP/tokens") tokens):" >&2
  grep -v 'can be used once' "$SETUP/tokens.err" | head -5 >&2
  exit 1
fi
echo "setup: $AGENTS tokens (one farmhand-server token create each, 4 at a time) in $(elapsed "$t0") s"
start_server "$SETUP/server.db" "$WORK/server-setup.log"
load "$WORK/enroll.out" enroll --url "$URL" --tokens "$SETUP/tokens" --out "$SETUP/credentials"
stop_server
echo "setup: $AGENTS enrolled in $(val "$WORK/enroll.out" seconds) s (32 at a time over one connection loop)"
cp "$SETUP/server.db" "$WORK/server.db"

# --- connected agents with heartbeats ----------------------------------------
start_server "$WORK/server.db" "$WORK/server.log"
sleep 1
rss0=$(server_rss)
rm -f "$WORK/ready"
"$LOAD" agents --url "$URL" --credentials "$SETUP/credentials" --count "$AGENTS" --hold "$HOLD" --connect-timeout 150 \
  --ready-file "$WORK/ready" >"$WORK/agents.out" 2>"$WORK/agents.err" &
LOAD_PID=$!
while [ ! -e "$WORK/ready" ] && kill -0 "$LOAD_PID" 2>/dev/null; do sleep 0.2; done
rss1=
health=
if [ -e "$WORK/ready" ]; then
  sleep 2  # let the last inventories land
  rss1=$(server_rss)
  health=$(curl -sf "$URL/api/health" || true)
fi
rc=0
wait "$LOAD_PID" || rc=$?
LOAD_PID=
if [ "$rc" != 0 ] || [ -z "$rss1" ]; then
  echo "bench: the agents did not all connect (exit $rc):" >&2
  sed 's/^/    | /' "$WORK/agents.out" >&2
  tail -5 "$WORK/agents.err" | sed 's/^/    | /' >&2
  exit 1
fi
A=$WORK/agents.out
hb_hosts=$(sqlite3 "$WORK/server.db" "SELECT COUNT(*) FROM (SELECT host FROM heartbeats GROUP BY host HAVING COUNT(*) >= 2)")
hb_rows=$(sqlite3 "$WORK/server.db" "SELECT COUNT(*) FROM heartbeats")

# --- event ingest: all at once, then paced; a dashboard watches --------------
load "$WORK/burst.out" events --url "$URL" --credentials "$SETUP/credentials" --count "$EV_AGENTS" \
  --events-per-agent "$EV_PER_AGENT" --probe-user bench --probe-password-file "$SETUP/password"
paced_per_agent=$(( (RATE * RATE_S + EV_AGENTS - 1) / EV_AGENTS ))
load "$WORK/paced.out" events --url "$URL" --credentials "$SETUP/credentials" --count "$EV_AGENTS" \
  --events-per-agent "$paced_per_agent" --rate "$RATE" --probe-user bench --probe-password-file "$SETUP/password"
stop_server

# Every event stored exactly once: the count matches, and each host's seqs
# are exactly 1..n (UNIQUE(host, seq) rules out a duplicate row).
sent=$(( $(val "$WORK/burst.out" events) + $(val "$WORK/paced.out" events) ))
read -r stored hosts_bad < <(sqlite3 -separator ' ' "$WORK/server.db" "SELECT (SELECT COUNT(*) FROM events),
  (SELECT COUNT(*) FROM (SELECT host FROM events GROUP BY host HAVING MIN(seq) != 1 OR MAX(seq) != COUNT(*)))")

# --- figures -------------------------------------------------------------------
echo
echo "B7 connected agents (heartbeat 10 s): $(val "$A" connected_at_end)/$AGENTS at the end; all $AGENTS after $(val "$A" all_connected_after_s) s (ramp 2000/s), held $HOLD s"
echo "    server /api/health with all connected: $health"
echo "    hosts with >= 2 heartbeats stored: $hb_hosts/$AGENTS ($hb_rows heartbeat rows); reconnects: $(( $(val "$A" welcomes) - AGENTS )), server errors: $(val "$A" server_errors)"
awk -v a="$rss0" -v b="$rss1" -v n="$AGENTS" 'BEGIN {
  printf "B7 server memory per agent connection: %.1f KiB (VmRSS %d -> %d KiB with %d agents)\n", (b - a) / n, a, b, n }'
echo "    load tool per simulated agent (AgentLink, MemoryOutbox, lws client): $(val "$A" load_kib_per_link) KiB"
for run in burst paced; do
  f=$WORK/$run.out
  if [ "$run" = burst ]; then
    what="all queued at once"
  else
    what="paced at $RATE/s"
  fi
  echo "B7 ingest ($what): $(val "$f" events) events from $(val "$f" agents) agents in $(val "$f" seconds) s = $(val "$f" events_per_s) events/s (acked, SQLite WAL, batched)"
  ended=$(val "$f" feed_error)
  echo "B7 ingest-to-feed latency ($what): p50 $(val "$f" feed_p50_ms) ms, p99 $(val "$f" feed_p99_ms) ms, max $(val "$f" feed_max_ms) ms ($(val "$f" feed_stamped) of $(val "$f" events) events reached the feed${ended:+; the feed ended early: $ended})"
done
echo "B7 events stored: $stored of $sent sent, hosts with a gap or duplicate: $hosts_bad"
echo "machine at the end: load average $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$stored" = "$sent" ] && [ "$hosts_bad" = 0 ] || { echo "bench: events were lost or stored twice" >&2; exit 1; }
