# shellcheck shell=bash
# The testcase bodies that the booted network hosts share, written once:
# nm_host_test.sh (NetworkManager and firewalld) and networkd_host_test.sh
# (systemd-networkd and nftables). Each script keeps its own testcase_*
# functions, in its own order (run_testcases reads them from the script),
# and calls these with what differs between the backends. They act on the
# containers named in NAMES. Sourced after lib.sh, testhost.sh and
# network_checks.sh.

# Real traffic from inside each container: the gateway, its DNS, upstream.
network_case_traffic_from_inside() {
  assert_traffic_from_inside "${NAMES[@]}"
}

# `farmhand status` exits 0 and names the host network as HOST_NETWORK, and
# each container's row contains every WORD (its state, "healthy").
network_case_status_shows_healthy() {  # HOST_NETWORK WORD...
  farmhand_in_testhost status
  assert_eq 0 "$RC" "$OUT"
  assert_contains "$OUT" "$1"
  shift
  local n word
  for n in "${NAMES[@]}"; do
    for word in "$@"; do
      assert_contains "$(echo "$OUT" | grep "^$n ")" "$word"
    done
  done
}

# A reboot of the test host with no command run: every container's network
# is healthy again, and traffic from inside works as before.
network_case_back_after_reboot() {
  reboot_and_wait_healthy "${NAMES[@]}"
  upstream_start
  assert_traffic_from_inside "${NAMES[@]}"
}
