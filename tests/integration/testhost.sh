# A booted test host: a Debian bookworm tree with real systemd, booted with
# systemd-nspawn, standing in for a build host with systemd as PID 1.
# Sourced by tests after lib.sh.
#
# A test picks a flavor by setting TESTHOST_FLAVOR before sourcing:
#   minimal   systemd, systemd-container, systemd-resolved and udev, no
#             network manager: farmhand's plain backend (iproute2) configures
#             the links. udevd does not start by itself in a container; a
#             test starts it, and it then sees the kernel's uevents.
#   nm        NetworkManager and firewalld, as on a desktop-style build host
#   networkd  systemd-networkd, systemd-resolved and nftables, no NetworkManager
# Every flavor has the tools the tests use inside it (ping, dig, socat) and
# farmhand's prerequisites, since the test host has no route out.
#
# The image is cached in $TEST_CACHE/testhost-FLAVOR-KEY, where KEY covers
# this file, so any change to how it is built rebuilds it rather than
# reusing it.

TESTHOST_FLAVOR=${TESTHOST_FLAVOR:-minimal}
# The shared libraries farmhand links (libsqlite3, libwebsockets, libgit2).
TESTHOST_PACKAGES=(systemd-container libsqlite3-0 libwebsockets17 libgit2-1.5 iproute2)
case $TESTHOST_FLAVOR in
  minimal) TESTHOST_PACKAGES+=(systemd-resolved udev debootstrap) ;;
  # netbase: firewalld fails to start without /etc/protocols. dnsmasq-base:
  # only recommended by network-manager, and its shared mode needs it.
  nm) TESTHOST_PACKAGES+=(debootstrap iputils-ping dnsutils socat network-manager firewalld nftables
                          netbase dnsmasq-base) ;;
  networkd) TESTHOST_PACKAGES+=(debootstrap iputils-ping dnsutils socat systemd-resolved nftables) ;;
  *) echo "unknown TESTHOST_FLAVOR $TESTHOST_FLAVOR" >&2; exit 1 ;;
esac
TESTHOST_KEY=$(cat "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)
TESTHOST_IMAGE=$TEST_CACHE/testhost-$TESTHOST_FLAVOR-$TESTHOST_KEY

# Builds the image once, into a partial directory renamed when complete.
testhost_image() {
  [ -d "$TESTHOST_IMAGE" ] && return 0
  local partial=$TESTHOST_IMAGE.partial
  rm -rf --one-file-system "$partial"
  mkdir -p "$TEST_CACHE"
  echo "    building test host image $TESTHOST_IMAGE"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2 bookworm \
    "$partial" >"$partial.log" 2>&1 || { tail -20 "$partial.log"; return 1; }
  systemd-nspawn --register=no --keep-unit -q --resolv-conf=replace-host -D "$partial" \
    --setenv=DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${TESTHOST_PACKAGES[@]}" >>"$partial.log" 2>&1 ||
    { tail -20 "$partial.log"; return 1; }
  if [ "$TESTHOST_FLAVOR" = nm ]; then
    # The tests' own "upstream" link is not NetworkManager's to configure.
    mkdir -p "$partial/etc/NetworkManager/conf.d"
    printf '[main]\nno-auto-default+=interface-name:fhup*\n\n[device-fh-upstream]\nmatch-device=interface-name:fhup*\nmanaged=0\n' \
      > "$partial/etc/NetworkManager/conf.d/80-fh-upstream.conf"
  fi
  if [ "$TESTHOST_FLAVOR" = networkd ]; then
    systemd-nspawn --register=no --keep-unit -q -D "$partial" systemctl enable systemd-networkd \
      >>"$partial.log" 2>&1 || { tail -20 "$partial.log"; return 1; }
  fi
  rm -f "$partial.log"
  [ -L "$partial/etc/resolv.conf" ] || rm -f "$partial/etc/resolv.conf"
  echo fhost > "$partial/etc/hostname"
  mv "$partial" "$TESTHOST_IMAGE"
}

# The test host lives in TESTHOST_DIR, which the test sets at its top level.
# Its pid is kept in a file, because each testcase runs in a subshell and a
# reboot in one testcase must be seen by the next.
TESTHOST_DIR=
TESTHOST_PIDFILE=

testhost_init() {
  TESTHOST_DIR=$1
  TESTHOST_PIDFILE=$1.pid
  on_exit testhost_poweroff
}

# Boots the test host (a copy of the image, made on first boot) with the
# given extra nspawn arguments, and waits until its systemd reports the
# system running.
testhost_boot() {
  local dir=$TESTHOST_DIR
  [ -d "$dir" ] || cp -a "$TESTHOST_IMAGE" "$dir"
  # A name of its own per run, so a leftover from an earlier run can never
  # hold its ve- interface.
  systemd-nspawn --register=no --keep-unit -q -b -M "fh$$" --capability=all --network-veth \
    -D "$dir" "$@" >>"$dir.console" 2>&1 &
  local pid=$!
  echo "$pid" >"$TESTHOST_PIDFILE"
  wait_for 60 bash -c "pgrep -P $pid || ! kill -0 $pid"
  kill -0 "$pid" 2>/dev/null || fail "the test host did not boot: $(tail -5 "$dir.console")"
  wait_for 120 bash -c "nsenter -t $(testhost_leader) -a systemctl is-system-running 2>/dev/null | grep -qE '^(running|degraded)$'"
}

# The pid of the test host's systemd: the child of its systemd-nspawn.
testhost_leader() { pgrep -P "$(cat "$TESTHOST_PIDFILE")" | head -1; }

# Runs a command inside the test host; output in $OUT, status in $RC.
in_testhost() {
  RC=0
  OUT=$(nsenter -t "$(testhost_leader)" -a "$@" 2>&1) || RC=$?
}

# Runs farmhand inside the test host as a transient service, as
# farmhand.service would: systemd-nspawn --keep-unit needs its caller in a
# cgroup of the host's own hierarchy, which a bare nsenter is not.
farmhand_in_testhost() {
  in_testhost systemd-run --wait --pipe --quiet --collect /opt/farmhand/farmhand "$@"
}

# Powers the test host off (SIGTERM to nspawn is a clean shutdown). If it
# does not go down, its systemd is killed too: killing nspawn alone would
# leave the host's init and its network namespace behind.
testhost_poweroff() {
  local pid leader
  pid=$(cat "$TESTHOST_PIDFILE" 2>/dev/null) || return 0
  leader=$(pgrep -P "$pid" | head -1)
  kill -TERM "$pid" 2>/dev/null || return 0
  if ! timeout 120 tail --pid="$pid" -f /dev/null; then
    [ -n "$leader" ] && kill -KILL "$leader" 2>/dev/null
    kill -KILL "$pid" 2>/dev/null
  fi
  return 0
}
