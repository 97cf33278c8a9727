#!/usr/bin/env bash
# A build host with NetworkManager and firewalld, booted for real (a booted
# test host): `farmhand enroll` makes it a farm member, three containers get
# working networks through NetworkManager shared connections in firewalld
# zone "vm", and everything comes back after a reboot with no command run.
# The checks use the real tools (nmcli, firewall-cmd) and real traffic from
# inside the containers. A real farmhand-server runs in the test host: enroll
# trades a one-time token for the host's credential, and the server sees the
# host's containers, before and after a reboot.
TESTHOST_FLAVOR=nm
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testhost.sh"
source "$(dirname "$0")/network_checks.sh"
source "$(dirname "$0")/network_host_cases.sh"

make_root WORK
HOSTDIR=$WORK/fhost
FH_SERVER=$(dirname "$FH")/../server/farmhand-server
BOOT_ARGS=(--bind-ro="$(dirname "$FH")":/opt/farmhand --bind-ro="$(dirname "$FH_SERVER")":/opt/farmhand-server
           --bind="$TEST_CACHE":/var/cache/farmhand)
testhost_init "$HOSTDIR"
NAMES=(nm-a nm-b nm-c)
SERVER=ws://127.0.0.1:8383
SERVER_DB=/var/lib/farmhand-server/server.db
AGENT_JSON=$HOSTDIR/etc/farmhand/agent.json

testcase_boot_a_test_host() {
  testhost_image
  testhost_boot "${BOOT_ARGS[@]}"
  in_testhost systemctl is-active NetworkManager firewalld
  assert_eq $'active\nactive' "$OUT" "NetworkManager and firewalld in the test host"
  upstream_start
  # NetworkManager's shared-mode dnsmasq answers for the upstream name.
  mkdir -p "$HOSTDIR/etc/NetworkManager/dnsmasq-shared.d"
  echo "address=/$UPSTREAM_NAME/$UPSTREAM_ADDR" > "$HOSTDIR/etc/NetworkManager/dnsmasq-shared.d/upstream.conf"
}

# The central server, as a transient unit of the test host (gone at reboot).
server_start() {
  in_testhost mkdir -p /var/lib/farmhand-server
  in_testhost systemd-run --unit=farmhand-server --collect /opt/farmhand-server/farmhand-server serve \
    --listen 127.0.0.1:8383 --database "$SERVER_DB"
  assert_eq 0 "$RC" "starting farmhand-server: $OUT"
  wait_for 30 "farmhand-server to listen on port 8383" nsenter -t "$(testhost_leader)" -a bash -c 'exec 3<>/dev/tcp/127.0.0.1/8383'
}

server_cli() {
  in_testhost /opt/farmhand-server/farmhand-server "$@" --database "$SERVER_DB"
}

# Whether the server's latest inventory of the test host shows every NAME
# running (read from the server's SQLite file, through the test host's tree).
server_sees_running() {  # NAME...
  sqlite3 "file:$HOSTDIR$SERVER_DB?mode=ro" "SELECT inventory FROM hosts WHERE name = 'nm-host'" |
    python3 -c '
import json, sys
inv = json.loads(sys.stdin.read() or "null")
states = {c["name"]: c["state"] for c in (inv or {}).get("containers", [])}
sys.exit(0 if all(states.get(n) == "running" for n in sys.argv[1:]) else 1)' "$@"
}

testcase_enroll() {
  server_start
  TOKEN=$(nsenter -t "$(testhost_leader)" -a /opt/farmhand-server/farmhand-server token create --name nm-host \
          --database "$SERVER_DB" 2>/dev/null) || fail "token create failed"
  [[ "$TOKEN" == fht_* ]] || fail "token create printed \"$TOKEN\""
  echo "$TOKEN" > "$WORK/token"  # each testcase runs in a subshell
  # From a root-only file, as an admin would: a --token argument would be in
  # the transient unit's description, which systemd logs.
  install -m 600 "$WORK/token" "$HOSTDIR/root/token"
  local t0=$EPOCHREALTIME
  farmhand_in_testhost enroll --server "$SERVER" --token-file /root/token
  assert_eq 0 "$RC" "enroll: $OUT"
  # B4's first figure (a base missing from the cache is built meanwhile).
  echo "    B4: farmhand enroll, fresh host, 3 containers: $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s$(
    [[ "$OUT" == *": building"* ]] && echo " (with a base built through the apt proxy)")"
  assert_contains "$OUT" "prerequisites: all present"
  assert_contains "$OUT" "server: enrolled with $SERVER as \"nm-host\""
  assert_eq 600 "$(stat -c %a "$AGENT_JSON")" "agent.json mode"
  assert_eq 600 "$(stat -c %a "$HOSTDIR/etc/farmhand/credential")" "credential mode"
  in_testhost systemctl is-enabled farmhand.service
  assert_eq enabled "$OUT"
  in_testhost systemctl is-active farmhand.service
  assert_eq active "$OUT"
  # Neither the token nor the credential reaches the journal or the output.
  [[ "$OUT" != *"$TOKEN"* ]] || fail "the token was printed"
  local credential
  credential=$(sed -n 's/.*"credential": *"\([^"]*\)".*/\1/p' "$HOSTDIR/etc/farmhand/credential")
  [ -n "$credential" ] || fail "no credential in /etc/farmhand/credential"
  ! grep -q "$TOKEN" "$AGENT_JSON" || fail "the one-time token was kept in agent.json"
  wait_for 30 "the agent to connect to the server" bash -c "nsenter -t $(testhost_leader) -a journalctl -u farmhand.service --no-pager | grep -q 'connected to $SERVER as nm-host'"
  in_testhost journalctl --no-pager
  [[ "$OUT" != *"$TOKEN"* ]] || fail "the token was logged"
  [[ "$OUT" != *"$credential"* ]] || fail "the credential was logged"
  # The token was used up.
  server_cli token list
  assert_contains "$OUT" "used"
  server_cli host list
  assert_contains "$OUT" "nm-host"
}

testcase_enroll_again_is_a_no_op() {
  local before
  before=$(sha256sum "$AGENT_JSON")
  farmhand_in_testhost enroll --server "$SERVER" --token-file /root/token
  assert_eq 0 "$RC" "second enroll: $OUT"
  assert_contains "$OUT" "already enrolled with $SERVER as \"nm-host\"; the token was not used"
  assert_contains "$OUT" "configuration: /etc/farmhand/agent.json unchanged"
  assert_contains "$OUT" "service: farmhand.service unchanged and enabled"
  assert_eq "$before" "$(sha256sum "$AGENT_JSON")"
}

testcase_apply_three_containers() {
  set_containers "$AGENT_JSON" "${NAMES[@]}"
  farmhand_in_testhost apply
  assert_eq 0 "$RC" "apply: $OUT"
  assert_contains "$OUT" "[host] host network (networkmanager, firewall firewalld)"
  local n
  for n in "${NAMES[@]}"; do
    assert_contains "$OUT" "[$n] network healthy"
  done
}

testcase_networkmanager_and_firewalld_are_configured() {
  local n gw
  for n in "${NAMES[@]}"; do
    gw=$(gateway_of "$n")
    in_testhost nmcli -g connection.id,connection.interface-name,ipv4.method,ipv4.addresses,connection.zone,connection.autoconnect \
      connection show "nm-ve-$n"
    assert_eq "nm-ve-$n"$'\n'"ve-$n"$'\n'shared$'\n'"$gw/24"$'\n'vm$'\n'yes "$OUT" "nmcli for nm-ve-$n"
    in_testhost nmcli -g GENERAL.CONNECTION device show "ve-$n"
    assert_eq "nm-ve-$n" "$OUT" "the connection active on ve-$n"
    in_testhost firewall-cmd --get-zone-of-interface="ve-$n"
    assert_eq vm "$OUT" "zone of ve-$n"
    in_testhost systemctl is-active "systemd-nspawn@$n"
    assert_eq active "$OUT"
  done
  in_testhost firewall-cmd --zone=vm --query-masquerade
  assert_eq yes "$OUT" "masquerade in zone vm"
  in_testhost firewall-cmd --zone=vm --list-ports
  assert_contains "$OUT" "53/udp"
  assert_contains "$OUT" "53/tcp"
  in_testhost firewall-cmd --zone=vm --list-services
  assert_contains "$OUT" "dhcp"
  assert_contains "$OUT" "dns"
  # Exactly one connection per container, however often apply ran.
  in_testhost nmcli -g NAME connection show
  assert_eq 3 "$(echo "$OUT" | grep -c '^nm-ve-')" "nm-ve- connections: $OUT"
}

testcase_traffic_from_inside_each_container() {
  network_case_traffic_from_inside
}

testcase_status_shows_healthy_networks() {
  network_case_status_shows_healthy "Host network: networkmanager, firewall firewalld, zone vm" running healthy
}

testcase_server_sees_the_containers() {
  wait_for 60 "the server to see ${NAMES[*]} running" server_sees_running "${NAMES[@]}"
  local kinds
  kinds=$(sqlite3 "file:$HOSTDIR$SERVER_DB?mode=ro" "SELECT DISTINCT kind FROM events WHERE host = 'nm-host'")
  assert_contains "$kinds" "agent_started"
}

testcase_dashboard_admin_restarts_a_container() {
  # As the dashboard does it: an admin's command on the /ui feed, carried to
  # the agent, run, and answered. The client runs in the test host's network.
  echo "admin-password" > "$HOSTDIR/root/admin.pw"
  server_cli user add admin --role admin --password-file /root/admin.pw
  assert_eq 0 "$RC" "user add: $OUT"
  in_testhost machinectl show nm-b -p Leader --value
  local leader_before=$OUT
  RC=0
  OUT=$(nsenter -t "$(testhost_leader)" -n python3 "$(dirname "$0")/ui_command.py" --url http://127.0.0.1:8383 \
        --user admin --password-file "$HOSTDIR/root/admin.pw" --host nm-host --action restart --container nm-b 2>&1) ||
    RC=$?
  assert_eq 0 "$RC" "restart through the server: $OUT"
  assert_contains "$OUT" "nm-b restarted"
  in_testhost systemctl is-active systemd-nspawn@nm-b
  assert_eq active "$OUT"
  in_testhost machinectl show nm-b -p Leader --value
  [ "$OUT" != "$leader_before" ] || fail "nm-b was not restarted (same leader $OUT)"
  wait_for 30 "the restart command's event" bash -c "sqlite3 'file:$HOSTDIR$SERVER_DB?mode=ro' \"SELECT message FROM events WHERE host = 'nm-host' AND kind = 'command'\" | grep -q 'restart: nm-b restarted'"
  wait_for 60 "the server to see ${NAMES[*]} running" server_sees_running "${NAMES[@]}"
}

testcase_second_apply_is_a_no_op() {
  farmhand_in_testhost apply
  assert_eq 0 "$RC" "$OUT"
  assert_contains "$OUT" "No changes: 3 container(s) up to date"
}

testcase_everything_comes_back_after_reboot() {
  network_case_back_after_reboot
  # The server (started again: it was a transient unit) sees the host come
  # back with every container running, and the events of the boot arrive.
  local before
  before=$(sqlite3 "file:$HOSTDIR$SERVER_DB?mode=ro" "SELECT count(*) FROM events WHERE host = 'nm-host'")
  server_start
  wait_for 60 "the server to see ${NAMES[*]} running" server_sees_running "${NAMES[@]}"
  wait_for 60 "new events from nm-host" bash -c "[ \$(sqlite3 'file:$HOSTDIR$SERVER_DB?mode=ro' \"SELECT count(*) FROM events WHERE host = 'nm-host'\") -gt $before ]"
}

testcase_agent_restores_a_deleted_connection() {
  in_testhost nmcli connection delete nm-ve-nm-b
  assert_eq 0 "$RC" "$OUT"
  in_testhost systemctl restart farmhand.service
  wait_for 60 "the connection nm-ve-nm-b again" nsenter -t "$(testhost_leader)" -a nmcli -g connection.id connection show nm-ve-nm-b
  wait_for 60 "the agent to log the fixed connection" bash -c "nsenter -t $(testhost_leader) -a journalctl -u farmhand.service --no-pager | grep -q 'reconcile: fixed host network: /etc/NetworkManager/system-connections/nm-ve-nm-b.nmconnection is missing'"
  in_testhost nmcli -g GENERAL.CONNECTION device show ve-nm-b
  assert_eq nm-ve-nm-b "$OUT" "the connection active on ve-nm-b again"
  assert_gateway_answers nm-b "$(gateway_of nm-b)"
}

testcase_refuses_networkmanager_and_networkd_both_claiming_veth() {
  in_testhost systemctl enable systemd-networkd
  farmhand_in_testhost plan
  assert_eq 1 "$RC" "$OUT"
  assert_contains "$OUT" "NetworkManager and systemd-networkd would both manage the containers' ve-* interfaces"
  assert_contains "$OUT" "80-container-ve.network"
  farmhand_in_testhost apply
  assert_eq 1 "$RC" "$OUT"
  assert_contains "$OUT" "nothing was changed"
  in_testhost systemctl disable systemd-networkd
  farmhand_in_testhost plan
  assert_eq 0 "$RC" "$OUT"
}

testcase_refuses_another_server_without_force() {
  local before
  before=$(sha256sum "$AGENT_JSON")
  farmhand_in_testhost enroll --server wss://other-server.invalid --token fht_not-used
  assert_eq 1 "$RC" "$OUT"
  assert_contains "$OUT" "already enrolled with the server $SERVER"
  assert_contains "$OUT" "pass --force"
  assert_contains "$OUT" "nothing was changed"
  assert_eq "$before" "$(sha256sum "$AGENT_JSON")" "agent.json after a refused enroll"
}

testcase_missing_prerequisite_that_cannot_be_installed() {
  # The test host has no route out, so apt cannot fetch what is removed.
  in_testhost apt-get remove -y -q debootstrap
  assert_eq 0 "$RC" "$OUT"
  rm -f "$HOSTDIR"/var/cache/apt/archives/debootstrap_*.deb
  farmhand_in_testhost enroll --server "$SERVER" --token-file /root/token
  assert_eq 1 "$RC" "$OUT"
  assert_contains "$OUT" "missing prerequisite(s) that could not be installed: debootstrap (package debootstrap"
}

run_testcases
