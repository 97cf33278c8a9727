#!/usr/bin/env bash
# Provisioning with real debootstrap, real clones and real systemd-nspawn:
# three containers from one config, checked from inside; one booted with its
# private veth network; a second apply that does nothing; destroy.
source "$(dirname "$0")/lib.sh"

make_root ROOT
CONFIG=$ROOT/agent.json
HOSTPART=$(hostname | cut -d. -f1 | tr 'A-Z' 'a-z' | tr -c 'a-z0-9-\n' '-')
mkdir -p "$ROOT/srv/it-src" "$ROOT/srv/it-out"
echo hello > "$ROOT/srv/it-src/README"

cat > "$CONFIG" <<JSON
{
  "containers": [
    {"name": "it-bw-a", "distro": "debian", "release": "bookworm", "arch": "amd64",
     "packages": ["cmake", "openssh-server"]},
    {"name": "it-bw-b", "distro": "debian", "release": "bookworm", "arch": "amd64",
     "packages": ["cmake", "openssh-server"], "boot": false,
     "binds": [{"source": "/srv/it-src", "target": "/src", "read_only": true},
               {"source": "/srv/it-out"}]},
    {"name": "it-trixie", "distro": "debian", "release": "trixie", "arch": "amd64",
     "build_packages": false, "private_users": true}
  ]
}
JSON

# This machine's nft stands for the test host's own: with it, farmhand picks
# its nftables firewall for the root (it looks for the tool in the root).
if [ -x /usr/sbin/nft ]; then
  mkdir -p "$ROOT/usr/sbin"
  ln -s /usr/sbin/nft "$ROOT/usr/sbin/nft"
fi

# The state of the host that a no-op apply must leave untouched.
host_state() { tree_listing "$ROOT" var/cache var/lib/farmhand/state.db var/lib/farmhand/state.db-wal var/lib/farmhand/state.db-shm "$@"; }

testcase_apply_three_containers() {
  fhc plan
  assert_eq 0 "$RC" "plan exit code"
  assert_contains "$OUT" "Plan: 3 to create, 0 to update, 0 to replace, 0 to destroy, 0 unchanged."
  assert_missing "$ROOT/var/lib/machines"  # plan changes nothing
  "$FH" --root "$ROOT" --config "$CONFIG" apply | tee "$ROOT/apply1.log"
  assert_eq 0 "${PIPESTATUS[0]}" "apply exit code"
  assert_contains "$(cat "$ROOT/apply1.log")" "Apply complete: 3 created"
  # One line per step, each with its elapsed time.
  assert_contains "$(cat "$ROOT/apply1.log")" "[it-bw-b] clone ("
  fhc status --json
  assert_eq 0 "$RC"
  assert_eq "ready ready ready" "$(echo "$OUT" | python3 -c 'import json,sys; print(" ".join(c["state"] for c in json.load(sys.stdin)["containers"]))')"
}

testcase_build_user_in_each_container() {
  local name
  for name in it-bw-a it-bw-b it-trixie; do
    fhc run "$name" -- id sai
    assert_contains "$OUT" "uid=883(sai) gid=65534(nogroup) groups=65534(nogroup)" "id sai in $name"
    assert_file_eq "$ROOT/var/lib/machines/$name/etc/hostname" "$name-$HOSTPART"
    fhc run "$name" -- stat -c '%U %a' /home/sai
    assert_contains "$OUT" "sai 7" "home of sai in $name"
  done
  # The bookworm containers have the build packages and the extra one.
  fhc run it-bw-b -- dpkg-query -W -f '${Status}\n' cmake build-essential libgit2-dev
  assert_eq 3 "$(echo "$OUT" | grep -c 'install ok installed')" "packages in it-bw-b"
  # Each clone has its own machine-id, and its own SSH host keys where sshd
  # is installed (the bookworm pair), none of them from the base tree.
  local ids keys
  ids=$(cat "$ROOT"/var/lib/machines/it-*/etc/machine-id | sort -u | grep -c '^[0-9a-f]\{32\}$')
  assert_eq 3 "$ids" "distinct machine ids"
  keys=$(sha256sum "$ROOT"/var/lib/machines/it-bw-[ab]/etc/ssh/ssh_host_ed25519_key | cut -d' ' -f1 | sort -u | wc -l)
  assert_eq 2 "$keys" "distinct SSH host keys"
  local base
  base=$TEST_CACHE/images/$(sqlite3 "$ROOT/var/lib/farmhand/state.db" "SELECT base_key FROM containers WHERE name='it-bw-a'")
  test -x "$base/usr/sbin/sshd"
  assert_eq "" "$(ls "$base"/etc/ssh/ssh_host_* 2>/dev/null || true)" "host keys in the base tree"
}

testcase_network_files() {
  local i=0 name
  for name in it-bw-a it-bw-b it-trixie; do
    assert_file_eq "$ROOT/var/lib/machines/$name/etc/systemd/network/50-host0.network" \
"# Managed by farmhand: \`farmhand apply\` rewrites this file.

[Match]
Name=host0

[Network]
Address=192.168.8$i.9/24
Gateway=192.168.8$i.1
DNS=192.168.8$i.1
IPForward=1"
    assert_file_eq "$ROOT/var/lib/machines/$name/etc/resolv.conf" \
"# Managed by farmhand: \`farmhand apply\` rewrites this file.
nameserver 192.168.8$i.1"
    i=$((i + 1))
  done
}

testcase_host_files() {
  assert_file_eq "$ROOT/etc/systemd/nspawn/it-bw-b.nspawn" \
"# Managed by farmhand: \`farmhand apply\` rewrites this file.

[Exec]
Boot=yes
PrivateUsers=no

[Network]
VirtualEthernet=yes

[Files]
BindReadOnly=/srv/it-src:/src
Bind=/srv/it-out"
  assert_file_eq "$ROOT/etc/systemd/nspawn/it-trixie.nspawn" \
"# Managed by farmhand: \`farmhand apply\` rewrites this file.

[Exec]
Boot=yes
PrivateUsers=pick

[Network]
VirtualEthernet=yes

[Files]
PrivateUsersOwnership=auto"
  # Started at boot: it-bw-a and it-trixie, not it-bw-b (boot: false).
  assert_eq "/lib/systemd/system/systemd-nspawn@.service" \
    "$(readlink "$ROOT/etc/systemd/system/machines.target.wants/systemd-nspawn@it-bw-a.service")"
  assert_missing "$ROOT/etc/systemd/system/machines.target.wants/systemd-nspawn@it-bw-b.service"
  test -d "$ROOT/etc/systemd/system/systemd-nspawn@it-bw-b.service.d"
  # Binds work when run.
  fhc run it-bw-b -- cat /src/README
  assert_contains "$OUT" "hello"
}

# A DNS query for NAME to SERVER:53 over UDP from the network namespace of
# process PID; prints the answer's rcode (NOERROR, SERVFAIL, ...).
dns_rcode_from() {  # PID SERVER NAME
  nsenter -t "$1" -n python3 - "$2" "$3" <<'PY'
import socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(q, (server, 53))
a = s.recv(4096)
assert a[:2] == q[:2], "the answer has another id"
print({0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}.get(a[3] & 15, a[3] & 15))
PY
}

# The child of process PID in a PID namespace of its own (a container's init).
init_of() {  # PID
  local c
  for c in $(pgrep -P "$1"); do
    [ "$(readlink "/proc/$c/ns/pid")" != "$(readlink "/proc/$1/ns/pid")" ] && { echo "$c"; return 0; }
  done
  return 1
}

# Without systemd, `farmhand run` configures the host end of the link
# itself: the gateway address on ve-NAME, forwarding, farmhand's nftables
# tables with masquerade, and DNS on the gateway; all gone when it stops.
# "Upstream" is a network namespace of the test's own (10.98.0.2), with a
# listener that answers each connection with the address it sees, and no
# route back to the containers: only masqueraded traffic is answered.
testcase_boot_with_private_network() {
  local log=$ROOT/boot.log pid leader up=fhup$$
  command -v nft >/dev/null || fail "nft is not installed (scripts/setup.sh installs nftables)"
  ip netns add "$up"
  on_exit "ip netns delete $up"
  ip link add "$up" type veth peer name "${up}p" netns "$up"
  on_exit "ip link delete $up 2>/dev/null"
  ip address add 10.98.0.1/24 dev "$up"
  ip link set "$up" up
  ip -n "$up" address add 10.98.0.2/24 dev "${up}p"
  ip -n "$up" link set "${up}p" up
  ip -n "$up" link set lo up
  ip netns exec "$up" python3 -c '
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.98.0.2", 8080))
s.listen(8)
while True:
    c, peer = s.accept()
    c.sendall(peer[0].encode() + b"\n")
    c.close()
' &
  track_pid $!
  local forward_before
  forward_before=$(cat /proc/sys/net/ipv4/ip_forward)

  setsid "$FH" --root "$ROOT" --config "$CONFIG" run it-bw-a >"$log" 2>&1 &
  pid=$!
  track_pid "$pid"
  wait_for 60 "the interface ve-it-bw-a" ip link show ve-it-bw-a
  # The container's init: nspawn's child (nspawn is our pid after exec) in
  # a PID namespace of its own.
  wait_for 30 "the container's init" init_of "$pid"
  leader=$(init_of "$pid")
  wait_for 60 "it-bw-a to boot" bash -c "nsenter -t $leader -a systemctl is-system-running | grep -qE 'running|degraded'"
  wait_for 30 "the gateway address on ve-it-bw-a" bash -c "ip -br address show ve-it-bw-a | grep -q 'UP.*192.168.80.1/24'"
  wait_for 30 "the container's address on host0" bash -c "nsenter -t $leader -a ip -br addr show host0 | grep -q '192.168.80.9/24'"
  assert_contains "$(nsenter -t "$leader" -a ip route)" "default via 192.168.80.1 dev host0"
  assert_eq "it-bw-a-$HOSTPART" "$(nsenter -t "$leader" -a hostname)" "booted hostname"
  assert_eq active "$(nsenter -t "$leader" -a systemctl is-active systemd-networkd)"
  # From inside: the gateway answers ping and DNS, and a connection out is
  # masqueraded.
  nsenter -t "$leader" -n ping -c 1 -W 2 192.168.80.1 >/dev/null || fail "the gateway does not answer ping"
  local rcode
  rcode=$(dns_rcode_from "$leader" 192.168.80.1 localhost) || fail "no DNS answer on the gateway"
  echo "    DNS on the gateway answered $rcode"
  assert_eq 1 "$(cat /proc/sys/net/ipv4/ip_forward)" "IPv4 forwarding while it runs"
  nft list table ip farmhand_nat >/dev/null || fail "farmhand's nat table is not loaded"
  local seen
  seen=$(nsenter -t "$leader" -n python3 -c '
import socket
s = socket.create_connection(("10.98.0.2", 8080), timeout=5)
print(s.makefile().readline().strip())')
  assert_eq 10.98.0.1 "$seen" "the source address upstream sees (masquerade)"
  # status: running, with the network checked from inside.
  fhc status --json
  assert_eq 0 "$RC" "$OUT"
  assert_eq "running True" "$(echo "$OUT" | python3 -c '
import json, sys
c = [c for c in json.load(sys.stdin)["containers"] if c["name"] == "it-bw-a"][0]
print(c["state"], c.get("network", {}).get("healthy"))')" "it-bw-a in status --json"
  # A shell in it, without machined: through its init.
  fhc shell it-bw-a --user sai -- id -un
  assert_eq "0 sai" "$RC $OUT" "farmhand shell it-bw-a --user sai -- id -un"

  kill -TERM "$pid"
  timeout 60 tail --pid="$pid" -f /dev/null
  assert_missing /sys/class/net/ve-it-bw-a
  # The helper tears down right after nspawn exits.
  wait_for 10 "the nat table to go" bash -c "! nft list table ip farmhand_nat >/dev/null 2>&1"
  nft list table inet farmhand >/dev/null 2>&1 && fail "farmhand's filter table is still loaded"
  assert_eq "$forward_before" "$(cat /proc/sys/net/ipv4/ip_forward)" "IPv4 forwarding after the stop"
  fhc status --json
  assert_eq ready "$(echo "$OUT" | python3 -c '
import json, sys
print([c for c in json.load(sys.stdin)["containers"] if c["name"] == "it-bw-a"][0]["state"])')"
  fhc shell it-bw-a
  assert_eq 1 "$RC" "$OUT"
  assert_contains "$OUT" "boot it with \`farmhand run it-bw-a\`"
}

testcase_second_apply_does_nothing() {
  local before after last_apply
  before=$(host_state)
  last_apply=$(sqlite3 "$ROOT/var/lib/farmhand/state.db" 'SELECT MAX(id) FROM applies')
  fhc apply
  assert_eq 0 "$RC"
  assert_contains "$OUT" "No changes: 3 container(s) up to date"
  after=$(host_state)
  assert_eq "$before" "$after" "host files after a no-op apply"
  assert_eq "$last_apply" "$(sqlite3 "$ROOT/var/lib/farmhand/state.db" 'SELECT MAX(id) FROM applies')" \
    "no apply was journaled"
  # Reading commands never write the state database.
  local db
  db=$(sha256sum "$ROOT"/var/lib/farmhand/state.db*)
  fhc plan
  fhc status
  fhc apply
  assert_eq "$db" "$(sha256sum "$ROOT"/var/lib/farmhand/state.db*)" "state.db after plan, status, no-op apply"
}

testcase_drift_is_repaired() {
  rm "$ROOT/etc/systemd/nspawn/it-bw-a.nspawn"
  echo "Address=10.0.0.1/8" >> "$ROOT/var/lib/machines/it-bw-b/etc/systemd/network/50-host0.network"
  fhc plan
  assert_contains "$OUT" "/etc/systemd/nspawn/it-bw-a.nspawn is missing"
  assert_contains "$OUT" "container /etc/systemd/network/50-host0.network differs"
  fhc apply
  assert_eq 0 "$RC"
  assert_contains "$OUT" "2 updated"
  fhc plan
  assert_contains "$OUT" "Plan: 0 to create, 0 to update, 0 to replace, 0 to destroy, 3 unchanged."
}

testcase_destroy_leaves_nothing() {
  local before resolved=etc/systemd/resolved.conf.d/90-farmhand.conf before_resolved
  # The host-wide DNS file lists every gateway: it is rewritten for the
  # fourth container and back, so its content is compared, not its mtime.
  before=$(host_state "$resolved")
  before_resolved=$(cat "$ROOT/$resolved")
  # A fourth container, created and destroyed again.
  python3 - "$CONFIG" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["containers"].append({"name": "it-extra", "distro": "debian", "release": "bookworm",
                        "arch": "amd64", "packages": ["cmake", "openssh-server"]})
json.dump(c, open(sys.argv[1] + ".extra", "w"))
PY
  fh --root "$ROOT" --config "$CONFIG.extra" apply
  assert_eq 0 "$RC"
  test -d "$ROOT/var/lib/machines/it-extra"
  fh --root "$ROOT" --config "$CONFIG.extra" destroy it-extra
  assert_eq 0 "$RC"
  rm "$CONFIG.extra"
  assert_eq "$before" "$(host_state "$resolved")" "host after create + destroy"
  assert_eq "$before_resolved" "$(cat "$ROOT/$resolved")" "$resolved after create + destroy"
  assert_eq "" "$(sqlite3 "$ROOT/var/lib/farmhand/state.db" "SELECT name FROM containers WHERE name='it-extra' UNION SELECT name FROM subnets WHERE name='it-extra'")"
  fhc destroy no-such-container
  assert_eq 1 "$RC"
  assert_contains "$OUT" 'no container named "no-such-container" is managed by farmhand'
}

testcase_removed_from_config_is_destroyed() {
  python3 - "$CONFIG" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["containers"] = [x for x in c["containers"] if x["name"] != "it-trixie"]
json.dump(c, open(sys.argv[1], "w"))
PY
  fhc plan
  assert_contains "$OUT" "destroy   it-trixie"
  fhc apply
  assert_eq 0 "$RC"
  assert_missing "$ROOT/var/lib/machines/it-trixie"
  assert_missing "$ROOT/etc/systemd/nspawn/it-trixie.nspawn"
  assert_missing "$ROOT/etc/systemd/system/systemd-nspawn@it-trixie.service.d"
}

run_testcases
