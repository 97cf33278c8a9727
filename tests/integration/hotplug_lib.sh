# Hotplug test and benchmark setup: two containers with device rules, a
# udevd, a rules file giving ttyS0, tty60 and tty61 the identity of USB
# serial adapters, device cgroups like systemd-nspawn@'s, the agent.
# Sourced after lib.sh.

CGROOT=/sys/fs/cgroup/devices
[ -d "$CGROOT" ] || { echo "SKIP: no cgroup v1 devices controller at $CGROOT"; exit 1; }

make_root ROOT
CONFIG=$ROOT/agent.json
RULES=/etc/udev/rules.d/99-farmhand-hotplug-test.rules
BYID=usb-FTDI_FT232R_FHTEST0-if00-port0
cat > "$CONFIG" <<JSON
{"containers": [
  {"name": "hp-a", "distro": "debian", "release": "bookworm", "arch": "amd64",
   "packages": ["cmake", "openssh-server"],
   "devices": [{"match": {"usb_ids": ["0403:6001", "1a86:7523"]}}]},
  {"name": "hp-b", "distro": "debian", "release": "bookworm", "arch": "amd64",
   "packages": ["cmake", "openssh-server"], "private_users": true,
   "devices": [{"match": {"usb_ids": ["10c4:ea60"], "serial": "FHTEST2"}, "group": "dialout", "mode": "0660"}]}
]}
JSON

udevd_start() {
  # A udevd answering on this host's control socket, not any process named
  # so: a booted test host's udevd (another test's) serves only its own
  # /run and would never see these rules.
  if udevadm control --ping -t 2 >/dev/null 2>&1; then
    echo "    (using the systemd-udevd already running)"
    return 0
  fi
  /lib/systemd/systemd-udevd >"$ROOT/udevd.log" 2>&1 &
  UDEVD_PID=$!
  echo "$UDEVD_PID" > "$ROOT/udevd.pid"
  wait_for 10 "udevd to answer" udevadm control --ping
}

rules_install() {
  cat > "$RULES" <<'RULES'
# farmhand hotplug test: tty devices posing as USB serial adapters.
KERNEL=="ttyS0", ENV{ID_BUS}="usb", ENV{ID_VENDOR_ID}="0403", ENV{ID_MODEL_ID}="6001", ENV{ID_SERIAL_SHORT}="FHTEST0", ENV{ID_PATH}="pci-0000:00:14.0-usb-0:1:1.0", ENV{ID_USB_INTERFACE_NUM}="00", SYMLINK+="serial/by-id/usb-FTDI_FT232R_FHTEST0-if00-port0", SYMLINK+="serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0"
KERNEL=="tty60", ENV{ID_BUS}="usb", ENV{ID_VENDOR_ID}="1A86", ENV{ID_MODEL_ID}="7523", ENV{ID_SERIAL_SHORT}="FHTEST1", ENV{ID_PATH}="pci-0000:00:14.0-usb-0:2:1.0", ENV{ID_USB_INTERFACE_NUM}="00", SYMLINK+="serial/by-id/usb-1a86_USB_Serial_FHTEST1-if00-port0"
KERNEL=="tty61", ENV{ID_BUS}="usb", ENV{ID_VENDOR_ID}="10c4", ENV{ID_MODEL_ID}="ea60", ENV{ID_SERIAL_SHORT}="FHTEST2", ENV{ID_PATH}="pci-0000:00:14.0-usb-0:3:1.0", ENV{ID_USB_INTERFACE_NUM}="00", SYMLINK+="serial/by-id/usb-Silicon_Labs_CP2102_FHTEST2-if00-port0"
RULES
  udevadm control --reload
}

cleanup_udev() {
  rm -f "$RULES"
  udevadm control --reload 2>/dev/null
  udevadm trigger --action=change --sysname-match=ttyS0 --sysname-match=tty60 --sysname-match=tty61 2>/dev/null
  udevadm settle -t 10 2>/dev/null
  if [ -f "$ROOT/udevd.pid" ]; then
    stop_pid "$(cat "$ROOT/udevd.pid")" 10
  fi
  return 0
}

# A device cgroup like the one systemd-nspawn@ gets: closed, plus the nodes
# nspawn and a booted container need.
cgroup_make() {  # NAME
  local cg=$CGROOT/farmhand-hp-$$-$1
  mkdir -p "$cg"
  echo a > "$cg/devices.deny"
  local d
  for d in 'c 1:3 rwm' 'c 1:5 rwm' 'c 1:7 rwm' 'c 1:8 rwm' 'c 1:9 rwm' 'c 5:0 rwm' 'c 5:1 rwm' 'c 5:2 rwm' \
           'c 136:* rwm' 'c 10:200 rwm'; do
    echo "$d" > "$cg/devices.allow"
  done
  echo "$cg"
}

cgroup_remove() {
  local cg
  for cg in "$CGROOT"/farmhand-hp-$$-*; do
    [ -d "$cg" ] || continue
    local p
    for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    sleep 0.2
    rmdir "$cg" 2>/dev/null
  done
  return 0
}

# Starts container NAME inside device cgroup CG with `farmhand run`, in the
# background: booted, or running COMMAND; its pid goes to $ROOT/NAME.pid.
container_start() {  # NAME CG [-- COMMAND...]
  local name=$1 cg=$2
  shift 2
  setsid bash -c 'cg=$1; shift; echo $$ > "$cg/cgroup.procs" && exec "$@"' _ \
    "$cg" "$FH" --root "$ROOT" --config "$CONFIG" run "$name" "$@" >"$ROOT/$name.log" 2>&1 &
  echo $! > "$ROOT/$name.pid"
  # Generous: the first start of a private-users container re-owns its
  # whole tree, which takes a while on a loaded machine.
  if ! wait_for 120 "the leader of $name" leader "$name"; then
    echo "    farmhand run $name said:" && sed 's/^/      /' "$ROOT/$name.log"
    return 1
  fi
  [ $# -gt 0 ] && return 0
  wait_for 90 "$name to boot" bash -c "nsenter -t $(leader "$name") -a systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded'"
}

container_stop() {  # NAME
  local pid
  pid=$(cat "$ROOT/$1.pid" 2>/dev/null) || return 0
  kill -TERM "$pid" 2>/dev/null && timeout 60 tail --pid="$pid" -f /dev/null
  return 0
}

# The container's init: the child of nspawn in a PID namespace of its own.
leader() {
  local p c
  p=$(cat "$ROOT/$1.pid")
  for c in $(pgrep -P "$p"); do
    [ "$(readlink "/proc/$c/ns/pid")" != "$(readlink "/proc/$p/ns/pid")" ] && { echo "$c"; return 0; }
  done
  return 1
}

# Runs a command inside container NAME, from a process in its device cgroup
# (device access is decided by the cgroup of the process that opens).
in_container() {  # NAME CG CMD...
  local name=$1 cg=$2
  shift 2
  RC=0
  OUT=$(bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec nsenter -t "$@"' _ "$cg" "$(leader "$name")" -a "$@" 2>&1) || RC=$?
}

# Starts the agent in the background and returns at once.
daemon_launch() {
  "$FH" --root "$ROOT" --config "$CONFIG" daemon >>"$ROOT/daemon.log" 2>&1 &
  echo $! > "$ROOT/daemon.pid"
}

# Starts the agent and waits until it has reconciled its devices (it logs
# "devices: reconciled ..."). Not for its reconcile of the host: that waits
# up to 90 s for the network of a container that runs no network stack
# (hp-b runs only a sleep).
daemon_start() {
  local before
  before=$(cat "$ROOT/daemon.log" 2>/dev/null | grep -c "devices: reconciled" || true)
  daemon_launch
  wait_for 60 "the agent to reconcile its devices" bash -c "[ \$(grep -c 'devices: reconciled' '$ROOT/daemon.log') -gt ${before:-0} ]"
}

# SIGKILLs the agent, wherever it is, and waits until it is gone. Its exit
# status goes to $DAEMON_STATUS if this shell started it (137: killed here;
# anything else: it had ended by itself), else 127.
daemon_kill() {
  local pid rc=0
  DAEMON_STATUS=127
  pid=$(cat "$ROOT/daemon.pid" 2>/dev/null) || return 0
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || rc=$?
  DAEMON_STATUS=$rc
  timeout 10 tail --pid="$pid" -f /dev/null
}

daemon_stop() {
  local pid
  pid=$(cat "$ROOT/daemon.pid" 2>/dev/null) || return 0
  stop_pid "$pid" 30
}

trigger() {  # ACTION SYSNAME
  udevadm trigger --action="$1" --sysname-match="$2"
}

# Fires a uevent on a tty: a write, not a process (udevadm trigger is one
# per event, too slow for thousands).
fire() {  # ACTION SYSNAME
  echo "$1" > "/sys/class/tty/$2/uevent"
}

# What the containers, their device cgroups and state.db hold of the
# serial devices, one sorted line each: the tty nodes (major 4) and the
# serial links in each container's /dev, the tty entries of its
# devices.list, and every lease.
device_state() {
  _device_state_lines 2>/dev/null | LC_ALL=C sort
}
_device_state_lines() {
  local name l cg
  for name in hp-a hp-b; do
    l=$(leader "$name") || { echo "$name not running"; continue; }
    cg=$(cat "$ROOT/$name.cg")
    (cd "/proc/$l/root/dev" && stat -c "$name node %n %t:%T" -- * | awk '$4 ~ /^4:/')
    (cd "/proc/$l/root/dev" && find serial -type l -printf "$name link %p %l\n")
    sed -n "s/^c 4:/$name cgroup c 4:/p" "$cg/devices.list"
  done
  sqlite3 -separator ' ' "$ROOT/var/lib/farmhand/state.db" "SELECT 'lease', devnode, container, state FROM device_leases"
}

# Whether the agent has read every uevent udevd sent it (its udev socket's
# receive queue is empty) and waits in its event loop: after `udevadm
# settle`, it has handled every event by then.
agent_idle() {
  local pid inodes
  pid=$(cat "$ROOT/daemon.pid") || return 1
  case $(cat "/proc/$pid/wchan" 2>/dev/null) in
    poll_schedule_timeout* | do_epoll_wait* | ep_poll*) ;;
    *) return 1 ;;
  esac
  inodes=$(find "/proc/$pid/fd" -lname 'socket:*' -printf '%l\n' 2>/dev/null | tr -dc '0-9\n')
  # NETLINK_KOBJECT_UEVENT is protocol 15; columns: Eth, Rmem, Inode.
  awk -v inodes="$inodes" 'BEGIN { n = split(inodes, a, "\n"); for (i = 1; i <= n; i++) mine[a[i]] = 1 }
    $2 == 15 && ($10 in mine) { found = 1; if ($5 != 0) busy = 1 }
    END { exit !(found && !busy) }' /proc/net/netlink
}

# Whether the agent is idle (above) and holds no lease on /dev/SYSNAME: it
# has handled everything udev sent it about that device, which it would
# have taken back had it been handed over.
agent_done_with() {  # SYSNAME
  agent_idle &&
    [ "$(sqlite3 "$ROOT/var/lib/farmhand/state.db" "SELECT COUNT(*) FROM device_leases WHERE devnode = '/dev/$1'")" = 0 ]
}

# What device_state must be with the given devices (of ttyS0, tty60 and
# tty61) plugged in and handed over, and nothing else.
expected_state() {  # SYSNAME...
  local d
  for d in "$@"; do
    case $d in
      ttyS0) printf '%s\n' "hp-a node ttyS0 4:40" "hp-a link serial/by-id/$BYID ../../ttyS0" \
               "hp-a link serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0 ../../ttyS0" \
               "hp-a cgroup c 4:64 rw" "lease /dev/ttyS0 hp-a attached" ;;
      tty60) printf '%s\n' "hp-a node tty60 4:3c" "hp-a link serial/by-id/usb-1a86_USB_Serial_FHTEST1-if00-port0 ../../tty60" \
               "hp-a cgroup c 4:60 rw" "lease /dev/tty60 hp-a attached" ;;
      tty61) printf '%s\n' "hp-b node tty61 4:3d" "hp-b link serial/by-id/usb-Silicon_Labs_CP2102_FHTEST2-if00-port0 ../../tty61" \
               "hp-b cgroup c 4:61 rw" "lease /dev/tty61 hp-b attached" ;;
    esac
  done | LC_ALL=C sort
}

on_exit cleanup_udev
on_exit cgroup_remove
on_exit "container_stop hp-a; container_stop hp-b"
on_exit daemon_stop

# Creates the containers, starts udevd with the test rules, boots hp-a in
# its device cgroup and starts the agent.
hotplug_setup() {
  fhc apply
  assert_eq 0 "$RC" "apply: $OUT"
  udevd_start
  rules_install
  cgroup_make hp-a > "$ROOT/hp-a.cg"
  cgroup_make hp-b > "$ROOT/hp-b.cg"
  container_start hp-a "$(cat "$ROOT/hp-a.cg")"
  daemon_start
  # Its first reconcile of the host too: only hp-a runs, booted, and its
  # network is checked from inside, which waits for its boot to bring
  # host0 up (up to the agent's boot health limit on a loaded machine).
  wait_for 150 "the agent's first reconcile of the host" grep -q 'reconcile:' "$ROOT/daemon.log" || { sed 's/^/      /' "$ROOT/daemon.log" | tail -20; false; }
}

# Fires CYCLES plug/unplug cycles over the three devices back to back, ends
# with ttyS0 (hp-a's) and tty61 (hp-b's) plugged in, and waits until the
# agent's leases name exactly those two.
storm() {  # CYCLES
  local i dev
  for ((i = 0; i < $1; i++)); do
    for dev in ttyS0 tty60 tty61; do
      udevadm trigger --action=add --sysname-match=$dev
      udevadm trigger --action=remove --sysname-match=$dev
    done
  done
  trigger add ttyS0
  trigger add tty61
  udevadm settle -t 120
  wait_for 120 "leases on exactly /dev/tty61 and /dev/ttyS0" bash -c "sqlite3 '$ROOT/var/lib/farmhand/state.db' 'SELECT devnode FROM device_leases ORDER BY devnode' | tr '\n' ' ' | grep -qx '/dev/tty61 /dev/ttyS0 '"
}
