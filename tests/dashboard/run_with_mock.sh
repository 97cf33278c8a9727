#!/bin/bash
# Runs dashboard_test.mjs against mock_server.mjs (a development aid; the real
# test is tests/integration/dashboard_test.sh against farmhand-server).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export MOCK_STATE=$(mktemp -d /tmp/farmhand-mock-XXXXXX)
cleanup() {
  [[ -f $MOCK_STATE/pid ]] && kill "$(cat "$MOCK_STATE/pid")" 2>/dev/null || true
  rm -rf "$MOCK_STATE"
}
trap cleanup EXIT
node "$here/mock_server.mjs" --state "$MOCK_STATE" >"$MOCK_STATE/mock.log" 2>&1 &
for _ in $(seq 100); do [[ -s $MOCK_STATE/port ]] && break; sleep 0.05; done
node "$here/dashboard_test.mjs" --url "http://127.0.0.1:$(cat "$MOCK_STATE/port")/" \
  --admin ada:pw --viewer val:pw --hooks "$here/mock_hooks.mjs" "$@"
