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
# farmhand's prerequisites, since the test host has no route out. Its one way
# to the package archive is the apt proxy of aptproxy.sh on its link "apt0":
# a test that lets farmhand bootstrap in the test host makes the proxy the
# Debian mirror of its agent.json (aptproxy_use_in).
#
# The image is cached in $TEST_CACHE/testhost-FLAVOR-KEY, where KEY covers
# this file, so any change to how it is built rebuilds it rather than
# reusing it.

source "$(dirname "${BASH_SOURCE[0]}")/aptproxy.sh"

TESTHOST_FLAVOR=${TESTHOST_FLAVOR:-minimal}
# The cgroup layout the test host boots with: "hybrid" (this machine's own)
# or "unified" (cgroup v2 only, what most real hosts run). A unified test
# host runs in cgroups of its own (below), with the bpf system call allowed
# so that its systemd can load device programs.
TESTHOST_CGROUP=${TESTHOST_CGROUP:-${FARMHAND_TESTHOST_CGROUP:-hybrid}}
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
    # The tests' own "upstream" and apt proxy links are not NetworkManager's
    # to configure.
    mkdir -p "$partial/etc/NetworkManager/conf.d"
    printf '[main]\nno-auto-default+=interface-name:fhup*,interface-name:apt0\n\n[device-fh-upstream]\nmatch-device=interface-name:fhup*;interface-name:apt0\nmanaged=0\n' \
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

# Call it at the script's top level: it also starts the apt proxy, which
# lasts until the script exits.
testhost_init() {
  TESTHOST_DIR=$1
  TESTHOST_PIDFILE=$1.pid
  aptproxy_start || exit 1
  if [ "$TESTHOST_CGROUP" = unified ]; then testhost_cgroups || exit 1; fi
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
  local nspawn=(systemd-nspawn --register=no --keep-unit -q -b -M "fh$$" --capability=all --network-veth
                -D "$dir" "$@")
  if [ "$TESTHOST_CGROUP" = unified ]; then
    (
      echo "$BASHPID" >"/sys/fs/cgroup/systemd/fhtest$$/cgroup.procs" &&
        echo "$BASHPID" >"/sys/fs/cgroup/unified/fhtest$$/cgroup.procs" &&
        SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 exec "${nspawn[@]}" --system-call-filter=bpf
    ) >>"$dir.console" 2>&1 &
  else
    "${nspawn[@]}" >>"$dir.console" 2>&1 &
  fi
  local pid=$!
  echo "$pid" >"$TESTHOST_PIDFILE"
  wait_for 60 "the test host's nspawn to start its child, or to end" bash -c "pgrep -P $pid || ! kill -0 $pid"
  kill -0 "$pid" 2>/dev/null || fail "the test host did not boot: $(tail -5 "$dir.console")"
  if ! wait_for 120 "the test host to boot" bash -c "nsenter -t $(testhost_leader) -a systemctl is-system-running 2>/dev/null | grep -qE '^(running|degraded)$'"; then
    # What it still waits for, so that a slow boot can be told from a hung unit.
    local leader
    leader=$(testhost_leader)
    echo "    the test host is $(nsenter -t "$leader" -a systemctl is-system-running 2>&1); its jobs:"
    nsenter -t "$leader" -a systemctl list-jobs --no-pager 2>&1 | sed 's/^/      /' | head -20
    nsenter -t "$leader" -a systemctl --failed --no-pager 2>&1 | sed 's/^/      /' | head -10
    echo "    the end of its console:"
    tail -15 "$dir.console" | sed 's/^/      /'
    return 1
  fi
  aptproxy_link_up
}

# A unified test host's own cgroups in this machine's named systemd and
# unified hierarchies, so that it never touches their roots; removed at exit
# (after the power-off registered later), deepest first.
testhost_cgroups() {
  local h
  for h in systemd unified; do
    [ -d "/sys/fs/cgroup/$h" ] || { fail "/sys/fs/cgroup/$h is missing: this machine is not on a hybrid cgroup layout"; return 1; }
    if [ ! -d "/sys/fs/cgroup/$h/fhtest$$" ]; then
      mkdir "/sys/fs/cgroup/$h/fhtest$$"
      on_exit "find /sys/fs/cgroup/$h/fhtest$$ -depth -type d -exec rmdir {} + 2>/dev/null"
    fi
  done
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
