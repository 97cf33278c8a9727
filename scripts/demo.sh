#!/usr/bin/env bash
# Sets up farmhand on this host, end to end, on its embedded defaults:
# installs dependencies, builds and installs farmhand and farmhand-server,
# starts a local farmhand-server (SQLite in /var/lib/farmhand-server),
# enrolls this host with it (a one-time token traded for the host's
# credential), provisions conf/examples/demo.json (a Debian bookworm
# container with the CI build packages and a `sai` build user), and prints
# the status and the dashboard's address and login.
# With systemd as PID 1 both daemons are systemd services and the container
# runs as systemd-nspawn@demo; without it they run in the background (pid
# files in /run) and commands run in the container directly.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cmake --install build >/dev/null
FH=/usr/local/bin/farmhand
FHS=/usr/local/bin/farmhand-server
CONFIG=$PWD/conf/examples/demo.json
SERVER_CONFIG=/etc/farmhand/server.json
PORT=8383
URL=ws://127.0.0.1:$PORT
SYSTEMD=no
[ -d /run/systemd/system ] && SYSTEMD=yes

echo "== farmhand check-config"
$FH check-config "$CONFIG"

wait_listening() {
  local i
  for i in $(seq 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "demo: farmhand-server does not listen on 127.0.0.1:$PORT" >&2
  exit 1
}

echo "== farmhand-server on 127.0.0.1:$PORT"
[ -e "$SERVER_CONFIG" ] || install -D -m 600 conf/server.json "$SERVER_CONFIG"
$FHS check-config --config "$SERVER_CONFIG"
if [ $SYSTEMD = yes ]; then
  install -m 644 conf/farmhand-server.service /etc/systemd/system/farmhand-server.service
  systemctl daemon-reload
  systemctl enable --now farmhand-server.service
elif ! { [ -e /run/farmhand-server.pid ] && kill -0 "$(cat /run/farmhand-server.pid)" 2>/dev/null; }; then
  install -d -m 700 /var/lib/farmhand-server
  setsid $FHS serve --config "$SERVER_CONFIG" </dev/null >>/var/log/farmhand-server.log 2>&1 &
  echo $! > /run/farmhand-server.pid
fi
wait_listening

# A dashboard login, made once; its password is kept for root only.
PASSWORD_FILE=/etc/farmhand/dashboard-admin.password
if [ ! -e "$PASSWORD_FILE" ]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$PASSWORD_FILE")
  $FHS user add admin --role admin --password-file "$PASSWORD_FILE" --config "$SERVER_CONFIG"
fi

if [ ! -e /etc/farmhand/agent.json ]; then
  install -D -m 600 "$CONFIG" /etc/farmhand/agent.json
else
  echo "== keeping the existing /etc/farmhand/agent.json"
fi
echo "== farmhand enroll"
# The one-time token goes through a root-only file, not the process list.
TOKEN_FILE=$(mktemp)
trap 'rm -f "$TOKEN_FILE"' EXIT
$FHS token create --name "$(hostname)" --expires 30m --config "$SERVER_CONFIG" > "$TOKEN_FILE"
$FH enroll --server "$URL" --token-file "$TOKEN_FILE"

if [ $SYSTEMD = yes ]; then
  NEXT="farmhand shell demo --user sai"
else
  # No service manager: the agent runs in the background, reporting.
  if ! { [ -e /run/farmhand-agent.pid ] && kill -0 "$(cat /run/farmhand-agent.pid)" 2>/dev/null; }; then
    setsid $FH daemon </dev/null >>/var/log/farmhand-agent.log 2>&1 &
    echo $! > /run/farmhand-agent.pid
  fi
  echo "== no systemd as PID 1 here: running commands in the container directly"
  $FH run demo -- id sai
  $FH run demo -- cmake --version | head -1
  NEXT="$FH run demo   (boots it in the foreground)"
fi
echo "== farmhand status"
$FH status

cat <<TEXT

The demo container "demo" is ready in /var/lib/machines/demo, with the build
user sai (uid 883) and its static address on a private veth network.
This host reports to the farmhand-server on 127.0.0.1:$PORT.

Dashboard: http://127.0.0.1:$PORT/
  user admin, password in $PASSWORD_FILE
Next: $NEXT
TEXT
