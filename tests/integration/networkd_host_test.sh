#!/usr/bin/env bash
# A build host with systemd-networkd and nftables, and no NetworkManager or
# firewalld, booted for real: farmhand chooses the networkd backend and the
# nftables firewall by itself, systemd-resolved answers DNS on each gateway,
# and the same checks as on a NetworkManager host pass, also after a reboot.
TESTHOST_FLAVOR=networkd
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testhost.sh"
source "$(dirname "$0")/network_checks.sh"
source "$(dirname "$0")/network_host_cases.sh"

make_root WORK
HOSTDIR=$WORK/fhost
BOOT_ARGS=(--bind-ro="$(dirname "$FH")":/opt/farmhand --bind="$TEST_CACHE":/var/cache/farmhand)
testhost_init "$HOSTDIR"
NAMES=(nd-a nd-b nd-c)
AGENT_JSON=$HOSTDIR/etc/farmhand/agent.json

testcase_boot_a_test_host() {
  testhost_image
  # systemd-resolved serves the test host's /etc/hosts to the containers.
  grep -q "$UPSTREAM_NAME" "$HOSTDIR/etc/hosts" 2>/dev/null ||
    { [ -d "$HOSTDIR" ] || cp -a "$TESTHOST_IMAGE" "$HOSTDIR"; echo "$UPSTREAM_ADDR $UPSTREAM_NAME" >> "$HOSTDIR/etc/hosts"; }
  testhost_boot "${BOOT_ARGS[@]}"
  in_testhost systemctl is-active systemd-networkd systemd-resolved
  assert_eq $'active\nactive' "$OUT"
  in_testhost systemctl is-enabled NetworkManager firewalld
  [[ "$OUT" != *enabled* ]] || fail "NetworkManager or firewalld enabled: $OUT"
  upstream_start
}

testcase_enroll_with_containers_in_place() {
  # An admin may write the configuration first: enroll applies it.
  mkdir -p "$HOSTDIR/etc/farmhand"
  echo '{}' > "$AGENT_JSON"
  set_containers "$AGENT_JSON" "${NAMES[@]}"
  local t0=$SECONDS
  farmhand_in_testhost enroll
  assert_eq 0 "$RC" "enroll: $OUT"
  echo "    enroll with three containers took $((SECONDS - t0)) s"
  assert_contains "$OUT" "[host] host network (networkd, firewall nftables)"
  local n
  for n in "${NAMES[@]}"; do
    assert_contains "$OUT" "[$n] network healthy"
  done
  in_testhost systemctl is-active farmhand.service
  assert_eq active "$OUT"
}

testcase_networkd_and_nftables_are_configured() {
  local n gw
  for n in "${NAMES[@]}"; do
    gw=$(gateway_of "$n")
    in_testhost networkctl status "ve-$n"
    assert_contains "$OUT" "/etc/systemd/network/10-farmhand-ve-$n.network"
    assert_contains "$OUT" "$gw"
    in_testhost systemctl is-active "systemd-nspawn@$n"
    assert_eq active "$OUT"
  done
  in_testhost nft list table ip farmhand_nat
  assert_contains "$OUT" "masquerade"
  in_testhost nft list table inet farmhand
  assert_eq 0 "$RC" "$OUT"
}

testcase_traffic_from_inside_each_container() {
  network_case_traffic_from_inside
}

testcase_status_shows_healthy_networks() {
  network_case_status_shows_healthy "Host network: networkd, firewall nftables" healthy
}

testcase_everything_comes_back_after_reboot() {
  network_case_back_after_reboot
}

testcase_status_names_the_reason_of_an_unhealthy_network() {
  in_testhost systemctl stop systemd-resolved
  farmhand_in_testhost status
  assert_contains "$OUT" "nd-a: network unhealthy: no DNS server answers on the gateway"
  in_testhost systemctl start systemd-resolved
  farmhand_in_testhost status
  assert_contains "$(echo "$OUT" | grep '^nd-a ')" "healthy"
}

testcase_start_stop_restart_and_shell() {
  farmhand_in_testhost stop nd-c
  assert_eq 0 "$RC" "$OUT"
  assert_contains "$OUT" 'Stopped "nd-c".'
  in_testhost systemctl is-active systemd-nspawn@nd-c
  assert_eq inactive "$OUT"
  farmhand_in_testhost status
  assert_contains "$(echo "$OUT" | grep '^nd-c ')" "stopped"
  farmhand_in_testhost start nd-c
  assert_eq 0 "$RC" "$OUT"
  in_testhost systemctl is-active systemd-nspawn@nd-c
  assert_eq active "$OUT"
  local before
  before=$(container_leader nd-c)
  farmhand_in_testhost restart nd-c
  assert_eq 0 "$RC" "$OUT"
  [ "$(container_leader nd-c)" != "$before" ] || fail "nd-c was not restarted"
  farmhand_in_testhost start no-such
  assert_eq 1 "$RC"
  assert_contains "$OUT" 'no container named "no-such" is managed by farmhand'
  wait_container_booted nd-a
  in_testhost /opt/farmhand/farmhand shell nd-a --user sai -- /usr/bin/id -un
  assert_eq 0 "$RC" "$OUT"
  assert_contains "$OUT" "sai"
}

testcase_macvlan_and_ipvlan_containers() {
  # ipvlan needs its own parent (the kernel allows either macvlan or ipvlan
  # links on one interface), and a kernel built with it.
  in_testhost ip link add fhlan0 type veth peer name fhlan1
  in_testhost ip link set fhlan0 up
  local modes=("nd-mac macvlan host0 mv-host0")
  in_testhost ip link add fhprobe link fhlan0 type ipvlan
  if [ "$RC" = 0 ]; then
    in_testhost ip link delete fhprobe
    modes+=("nd-ipv ipvlan fhlan0 iv-fhlan0")
  else
    echo "    SKIP the ipvlan container: this kernel cannot create ipvlan links ($OUT)"
  fi
  local m name mode link ifname
  for m in "${modes[@]}"; do
    read -r name mode link ifname <<<"$m"
    python3 - "$AGENT_JSON" "$name" "$mode" "$link" <<'PY'
import json, sys
path, name, mode, link = sys.argv[1:]
with open(path) as f:
    c = json.load(f)
c["containers"].append({"name": name, "distro": "debian", "release": "bookworm", "arch": "amd64",
                        "packages": ["cmake", "openssh-server"], "network": {"mode": mode, "link": link}})
with open(path, "w") as f:
    json.dump(c, f, indent=2)
PY
  done
  farmhand_in_testhost apply
  assert_eq 0 "$RC" "apply: $OUT"
  for m in "${modes[@]}"; do
    read -r name mode link ifname <<<"$m"
    assert_contains "$(cat "$HOSTDIR/etc/systemd/nspawn/$name.nspawn")" "[Network]"$'\n'"${mode^^}=$link"
    in_testhost systemctl is-active "systemd-nspawn@$name"
    assert_eq active "$OUT" "$name"
    wait_container_booted "$name"
    in_testhost systemd-run -M "$name" --wait --pipe --quiet ls /sys/class/net
    assert_contains "$OUT" "$ifname" "$name's interfaces"
    assert_missing "$HOSTDIR/etc/systemd/network/10-farmhand-ve-$name.network"
    farmhand_in_testhost status
    assert_contains "$(echo "$OUT" | grep "^$name ")" "$mode on $link"
  done
  # A parent the host does not have is refused before anything is done.
  python3 - "$AGENT_JSON" <<'PY'
import json, sys
path = sys.argv[1]
with open(path) as f:
    c = json.load(f)
c["containers"].append({"name": "nd-bad", "distro": "debian", "release": "bookworm", "arch": "amd64",
                        "packages": ["cmake", "openssh-server"], "network": {"mode": "macvlan", "link": "eth9"}})
with open(path, "w") as f:
    json.dump(c, f, indent=2)
PY
  farmhand_in_testhost apply
  assert_eq 1 "$RC" "$OUT"
  assert_contains "$OUT" 'container "nd-bad": this host has no network interface "eth9" for its macvlan link'
  assert_contains "$OUT" "nothing was changed"
}

run_testcases
