#!/usr/bin/env bash
# The --hooks program of tests/dashboard/dashboard_test.mjs for
# dashboard_test.sh: acts on the real farmhand-server and the scripted agent.
# Its state comes from the harness's environment:
#   DASH_SERVER      farmhand-server binary      DASH_CONFIG  its config file
#   DASH_PID_FILE    the running server's pid     DASH_PORT    its port
#   DASH_FIFO        the scripted agent's control FIFO
#   DASH_STATE_FILE  the agent's container state  DASH_WORK    logs go here
# The last line printed is the answer (dashboard_test.mjs reads it).
set -euo pipefail
: "${DASH_SERVER:?}" "${DASH_CONFIG:?}" "${DASH_PID_FILE:?}" "${DASH_PORT:?}" "${DASH_FIFO:?}"
: "${DASH_STATE_FILE:?}" "${DASH_WORK:?}"
# wait_for (common.sh is the test scripts' shared library)
# shellcheck source=tests/integration/common.sh
source "$(dirname "$0")/common.sh"

nonce() { od -An -N6 -tx1 /dev/urandom | tr -d ' \n'; }
listening() { curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$DASH_PORT/api/health"; }

case "${1:-}" in
  emit-event)
    message="dashboard-event-$(nonce)"
    echo "event $message" > "$DASH_FIFO"
    echo "$message"
    ;;
  attach-device)
    id="usb-FTDI_TEST_$(nonce | tr a-f A-F)-if00-port0"
    echo "attach $id" > "$DASH_FIFO"
    echo "$id"
    ;;
  stop-server)
    pid=$(cat "$DASH_PID_FILE")
    kill -TERM "$pid" 2>/dev/null || true
    gone() { ! kill -0 "$pid" 2>/dev/null; }
    wait_for 20 "farmhand-server (pid $pid) to exit" gone
    echo "stopped"
    ;;
  start-server)
    port_file=$DASH_WORK/port.restart
    rm -f "$port_file"
    # Detached from the hook's pipes, or the test would wait for the server
    # to close them.
    setsid "$DASH_SERVER" serve --listen "127.0.0.1:$DASH_PORT" --config "$DASH_CONFIG" \
      --port-file "$port_file" </dev/null >> "$DASH_WORK/server.log" 2>&1 &
    echo $! > "$DASH_PID_FILE"
    wait_for 20 "farmhand-server to listen on port $DASH_PORT" listening
    echo "listening on $DASH_PORT"
    ;;
  container-state)
    [ "${2:-}" = web1 ] || { echo "dashboard_hooks: no container ${2:-(none)}" >&2; exit 1; }
    tr -d '\n' < "$DASH_STATE_FILE"
    echo
    ;;
  *)
    echo "dashboard_hooks: unknown command '${1:-}'" >&2
    exit 2
    ;;
esac
