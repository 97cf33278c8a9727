# Network checks for the booted-test-host system tests, from inside the
# containers. Sourced after lib.sh and testhost.sh.
#
# "Upstream" stands in for the outside network: a network namespace inside
# the test host, joined to it by a veth pair (test host 10.99.0.1, upstream
# 10.99.0.2), with a TCP listener that answers every connection with the
# source address it sees. A container whose connection is masqueraded is
# seen as 10.99.0.1.

UPSTREAM_HOST_ADDR=10.99.0.1
UPSTREAM_ADDR=10.99.0.2
UPSTREAM_NAME=upstream.farm.test

# Creates the upstream namespace and its listener inside the test host. The
# listener is a transient unit of the test host, so it lasts until the test
# host powers off.
upstream_start() {
  in_testhost ip netns add up
  in_testhost ip link add fhup0 type veth peer name fhup1 netns up
  in_testhost ip address add "$UPSTREAM_HOST_ADDR/24" dev fhup0
  in_testhost ip link set fhup0 up
  in_testhost ip -n up address add "$UPSTREAM_ADDR/24" dev fhup1
  in_testhost ip -n up link set fhup1 up
  in_testhost ip -n up link set lo up
  # No route back from upstream: only masqueraded traffic can be answered.
  in_testhost systemd-run --unit=fh-upstream --quiet ip netns exec up \
    socat TCP-LISTEN:8080,fork,reuseaddr 'SYSTEM:echo $SOCAT_PEERADDR'
  wait_for 20 "the upstream server to listen" nsenter -t "$(testhost_leader)" -a ip netns exec up bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080'
}

# The test host's pid of a running container's init.
container_leader() {
  nsenter -t "$(testhost_leader)" -a machinectl show "$1" -p Leader --value
}

# In the container's network namespace: ping the gateway.
assert_gateway_answers() {  # NAME GATEWAY
  local leader
  leader=$(container_leader "$1")
  in_testhost nsenter -t "$leader" -n ping -c 1 -W 2 "$2"
  assert_eq 0 "$RC" "$1: ping $2 from inside: $OUT"
}

# In the container's network namespace: a DNS query to the gateway.
assert_gateway_dns_answers() {  # NAME GATEWAY
  local leader
  leader=$(container_leader "$1")
  in_testhost nsenter -t "$leader" -n dig +time=2 +tries=3 +short "@$2" "$UPSTREAM_NAME"
  assert_eq 0 "$RC" "$1: DNS query to $2 from inside: $OUT"
  assert_eq "$UPSTREAM_ADDR" "$OUT" "$1: the gateway's answer for $UPSTREAM_NAME"
}

# Waits until a container has booted far enough to run commands in it.
wait_container_booted() {  # NAME
  wait_for 90 "container $1 to boot" bash -c "nsenter -t $(testhost_leader) -a systemctl -M $1 is-system-running 2>/dev/null | grep -qE '^(running|degraded)$'"
}

# Inside the container, through its own resolver and routes: a TCP
# connection to upstream, which must see the test host's address.
assert_masqueraded_tcp() {  # NAME
  wait_container_booted "$1"
  in_testhost systemd-run -M "$1" --wait --pipe --quiet \
    bash -c "exec 3<>/dev/tcp/$UPSTREAM_NAME/8080 && cat <&3"
  assert_eq 0 "$RC" "$1: TCP connection to upstream: $OUT"
  assert_eq "$UPSTREAM_HOST_ADDR" "$OUT" "$1: the source address upstream sees"
}

# The gateway of a container, from `farmhand status --json`.
gateway_of() {
  farmhand_in_testhost status --json
  echo "$OUT" | python3 -c '
import json, sys
name = sys.argv[1]
for c in json.load(sys.stdin)["containers"]:
    if c["name"] == name:
        print(c["gateway"])' "$1"
}

# Sets the containers of the test host's agent.json, keeping the rest, with
# the apt proxy as the Debian mirror: a base not yet in the cache is built
# inside the test host, through the proxy.
set_containers() {  # AGENT_JSON NAME...
  python3 - "$(aptproxy_mirror)" "$@" <<'PY'
import json, sys
mirror, path, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(path) as f:
    c = json.load(f)
c.setdefault("mirrors", {})["debian"] = mirror
c["containers"] = [{"name": n, "distro": "debian", "release": "bookworm", "arch": "amd64",
                    "packages": ["cmake", "openssh-server"]} for n in names]
with open(path + ".new", "w") as f:
    json.dump(c, f, indent=2)
PY
  chmod 600 "$1.new"
  mv "$1.new" "$1"
}

# Every check from inside each named container: ping and DNS to its
# gateway, and a masqueraded TCP connection upstream.
assert_traffic_from_inside() {  # NAME...
  local n gw
  for n in "$@"; do
    gw=$(gateway_of "$n")
    assert_gateway_answers "$n" "$gw"
    assert_gateway_dns_answers "$n" "$gw"
    assert_masqueraded_tcp "$n"
  done
}

# Powers the test host off and boots it again, runs no farmhand command,
# and waits until every container runs with a healthy network and the
# agent has reconciled. Prints the time from boot to all healthy.
reboot_and_wait_healthy() {  # NAME...
  testhost_poweroff
  local t0=$EPOCHREALTIME n
  testhost_boot "${BOOT_ARGS[@]}"
  for n in "$@"; do
    wait_for 120 "systemd-nspawn@$n to be active" nsenter -t "$(testhost_leader)" -a systemctl is-active "systemd-nspawn@$n"
  done
  wait_for 120 "$# healthy networks in farmhand status" bash -c "nsenter -t $(testhost_leader) -a /opt/farmhand/farmhand status | grep -c ' healthy' | grep -qx $#"
  # B4's second figure.
  echo "    B4: test-host boot to all $# container networks healthy: $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s"
  wait_for 60 "the agent's reconcile to find $# healthy networks" bash -c "nsenter -t $(testhost_leader) -a journalctl -u farmhand.service -b --no-pager | grep -q 'reconcile: nothing to fix; $# of $# running container network(s) healthy'"
}
