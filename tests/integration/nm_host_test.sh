#!/usr/bin/env bash
# A build host with NetworkManager and firewalld, booted for real (a booted
# test host): `farmhand enroll` makes it a farm member, three containers get
# working networks through NetworkManager shared connections in firewalld
# zone "vm", and everything comes back after a reboot with no command run.
# The checks use the real tools (nmcli, firewall-cmd) and real traffic from
# inside the containers.
TESTHOST_FLAVOR=nm
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testhost.sh"
source "$(dirname "$0")/network_checks.sh"

make_root WORK
HOSTDIR=$WORK/fhost
BOOT_ARGS=(--bind-ro="$(dirname "$FH")":/opt/farmhand --bind="$TEST_CACHE":/var/cache/farmhand)
testhost_init "$HOSTDIR"
NAMES=(nm-a nm-b nm-c)
SERVER=wss://farm-server.invalid:8443
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

testcase_enroll() {
  local t0=$SECONDS
  farmhand_in_testhost enroll --server "$SERVER" --token t0ken-one
  assert_eq 0 "$RC" "enroll: $OUT"
  echo "    enroll took $((SECONDS - t0)) s"
  assert_contains "$OUT" "prerequisites: all present"
  assert_eq 600 "$(stat -c %a "$AGENT_JSON")" "agent.json mode"
  in_testhost systemctl is-enabled farmhand.service
  assert_eq enabled "$OUT"
  in_testhost systemctl is-active farmhand.service
  assert_eq active "$OUT"
  # The token never reaches the journal or the output.
  [[ "$OUT" != *t0ken-one* ]] || fail "the token was printed"
  in_testhost journalctl -u farmhand.service --no-pager
  [[ "$OUT" != *t0ken-one* ]] || fail "the token was logged"
}

testcase_enroll_again_is_a_no_op() {
  local before
  before=$(sha256sum "$AGENT_JSON")
  farmhand_in_testhost enroll --server "$SERVER" --token t0ken-one
  assert_eq 0 "$RC" "second enroll: $OUT"
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
  assert_traffic_from_inside "${NAMES[@]}"
}

testcase_status_shows_healthy_networks() {
  farmhand_in_testhost status
  assert_eq 0 "$RC" "$OUT"
  assert_contains "$OUT" "Host network: networkmanager, firewall firewalld, zone vm"
  local n
  for n in "${NAMES[@]}"; do
    assert_contains "$(echo "$OUT" | grep "^$n ")" "running"
    assert_contains "$(echo "$OUT" | grep "^$n ")" "healthy"
  done
}

testcase_second_apply_is_a_no_op() {
  farmhand_in_testhost apply
  assert_eq 0 "$RC" "$OUT"
  assert_contains "$OUT" "No changes: 3 container(s) up to date"
}

testcase_everything_comes_back_after_reboot() {
  reboot_and_wait_healthy "${NAMES[@]}"
  upstream_start
  assert_traffic_from_inside "${NAMES[@]}"
}

testcase_agent_restores_a_deleted_connection() {
  in_testhost nmcli connection delete nm-ve-nm-b
  assert_eq 0 "$RC" "$OUT"
  in_testhost systemctl restart farmhand.service
  wait_for 60 nsenter -t "$(testhost_leader)" -a nmcli -g connection.id connection show nm-ve-nm-b
  wait_for 60 bash -c "nsenter -t $(testhost_leader) -a journalctl -u farmhand.service --no-pager | grep -q 'reconcile: fixed host network: /etc/NetworkManager/system-connections/nm-ve-nm-b.nmconnection is missing'"
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
  farmhand_in_testhost enroll --server wss://other-server.invalid --token t0ken-two
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
  farmhand_in_testhost enroll --server "$SERVER" --token t0ken-one
  assert_eq 1 "$RC" "$OUT"
  assert_contains "$OUT" "missing prerequisite(s) that could not be installed: debootstrap (package debootstrap"
}

run_testcases
