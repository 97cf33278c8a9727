# A real local apt proxy for booted test hosts, which have no route out:
# Debian's apt-cacher-ng, started by the test (tracked by pid, stopped at
# exit), listening only on the machine's end of a veth link whose other end
# is "apt0" in the test host. A test host that must bootstrap a base tree
# gets the proxy as its Debian mirror (aptproxy_use_in), so a cold system
# test works without a route out; the downloads are kept in
# $TEST_CACHE/apt-cacher-ng for later runs.
#
# The proxy's upstream is the archive this machine's own apt uses (read from
# its sources), never a host name written here.
#
# Sourced by testhost.sh: testhost_init (at a script's top level, so that the
# proxy outlives testcases and reboots) calls aptproxy_start, and
# testhost_boot calls aptproxy_link_up.

# One /30 per test script: the machine's end .1, the test host's end .2.
APTPROXY_NET=10.97.$(($$ % 250)).
APTPROXY_ADDR=${APTPROXY_NET}1
APTPROXY_PORT=3142
APTPROXY_HOSTIF=fhapt$$
APTPROXY_PEERIF=fhaptp$$
APTPROXY_DIR=

# The first Debian archive URI of this machine's apt sources (deb822 or
# one-line format), without a trailing slash.
aptproxy_upstream() {
  local f uri=
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
    [ -z "$uri" ] || break
  done
  if [ -z "$uri" ]; then
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(http|https|ftp):/ && $i !~ /security/) { print $i; exit } }')
  fi
  [ -n "$uri" ] || { echo "aptproxy: no Debian archive in this machine's apt sources" >&2; return 1; }
  echo "${uri%/}"
}

# Installs apt-cacher-ng if missing, without starting the system's own
# instance (a machine that had no apt proxy must not get one running).
aptproxy_install() {
  command -v apt-cacher-ng >/dev/null && return 0
  local policy=/usr/sbin/policy-rc.d own=0 rc=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && own=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends apt-cacher-ng >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends apt-cacher-ng >/dev/null; } ||
    rc=$?
  [ "$own" = 1 ] && rm -f "$policy"
  [ "$rc" = 0 ] || { echo "aptproxy: cannot install apt-cacher-ng" >&2; return "$rc"; }
  if [ -d /run/systemd/system ]; then systemctl disable --now --quiet apt-cacher-ng.service 2>/dev/null || true; fi
}

# The machine's end of the link, with its address: made at start so that
# the proxy can bind to it, its peer left here until the first boot.
aptproxy_pair() {
  if ! ip link show "$APTPROXY_HOSTIF" >/dev/null 2>&1; then
    ip link add "$APTPROXY_HOSTIF" type veth peer name "$APTPROXY_PEERIF" || return 1
  fi
  ip address replace "$APTPROXY_ADDR/30" dev "$APTPROXY_HOSTIF" && ip link set "$APTPROXY_HOSTIF" up
}

# Starts the proxy once per script; call it at the script's top level.
aptproxy_start() {
  [ -z "$APTPROXY_DIR" ] || return 0
  aptproxy_install || return 1
  aptproxy_pair || return 1
  local upstream
  upstream=$(aptproxy_upstream) || return 1
  APTPROXY_DIR=$(mktemp -d /var/tmp/farmhand-aptproxy.XXXXXX)
  mkdir -p "$APTPROXY_DIR/conf" "$APTPROXY_DIR/log" "$TEST_CACHE/apt-cacher-ng"
  cat >"$APTPROXY_DIR/conf/acng.conf" <<EOF
CacheDir: $TEST_CACHE/apt-cacher-ng
LogDir: $APTPROXY_DIR/log
SupportDir: /usr/lib/apt-cacher-ng
Port: $APTPROXY_PORT
BindAddress: $APTPROXY_ADDR
Remap-debrep: /debian ; file:backends_debian
ForeGround: 1
ExThreshold: 4
EOF
  echo "$upstream/" >"$APTPROXY_DIR/conf/backends_debian"
  apt-cacher-ng -c "$APTPROXY_DIR/conf" >"$APTPROXY_DIR/log/stdout" 2>&1 &
  echo $! >"$APTPROXY_DIR/pid"
  on_exit aptproxy_stop
  wait_for 20 "apt-cacher-ng on $APTPROXY_ADDR:$APTPROXY_PORT" \
    bash -c "exec 3<>/dev/tcp/$APTPROXY_ADDR/$APTPROXY_PORT" ||
    { echo "aptproxy: apt-cacher-ng did not start:" >&2; cat "$APTPROXY_DIR/log/"* >&2; return 1; }
  echo "apt proxy: apt-cacher-ng (pid $(cat "$APTPROXY_DIR/pid")) on $APTPROXY_ADDR:$APTPROXY_PORT for $upstream"
}

aptproxy_stop() {
  local pid
  pid=$(cat "$APTPROXY_DIR/pid" 2>/dev/null) || return 0
  stop_pid "$pid" 20
  ip link delete "$APTPROXY_HOSTIF" 2>/dev/null
  rm -rf "$APTPROXY_DIR"
  return 0
}

# The mirror URL a test host gives farmhand for Debian.
aptproxy_mirror() { echo "http://$APTPROXY_ADDR:$APTPROXY_PORT/debian"; }

# After a boot: a new pair whose other end is born as "apt0" inside the
# test host. Born there under that name, not moved and renamed: a network
# manager in the test host would take a link it first saw under another
# name, run DHCP on it and drop its address when that times out. The proxy's
# listening socket stays bound to its address while the link is remade, and
# the pair goes away with the test host's network namespace at power-off.
aptproxy_link_up() {
  [ -n "$APTPROXY_DIR" ] || return 0
  local leader
  leader=$(testhost_leader)
  ip link delete "$APTPROXY_HOSTIF" 2>/dev/null || true  # gone with the last boot
  ip link add "$APTPROXY_HOSTIF" type veth peer name apt0 netns "$leader" &&
    ip address replace "$APTPROXY_ADDR/30" dev "$APTPROXY_HOSTIF" &&
    ip link set "$APTPROXY_HOSTIF" up &&
    nsenter -t "$leader" -n ip address replace "${APTPROXY_NET}2/30" dev apt0 &&
    nsenter -t "$leader" -n ip link set apt0 up
}

# Makes the proxy the Debian mirror of an agent.json (kept 0600).
aptproxy_use_in() {  # AGENT_JSON
  python3 - "$1" "$(aptproxy_mirror)" <<'PY'
import json, os, sys
path, mirror = sys.argv[1:]
with open(path) as f:
    c = json.load(f)
c.setdefault("mirrors", {})["debian"] = mirror
with open(path + ".new", "w") as f:
    json.dump(c, f, indent=2)
os.chmod(path + ".new", 0o600)
os.replace(path + ".new", path)
PY
}
