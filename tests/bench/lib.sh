# shellcheck shell=bash
# Shared helpers for farmhand's benchmarks (bash, root, real tools).
#
# A benchmark PRINTS figures; it never fails because something was slow.
# It fails only when it cannot run (a farmhand command failed, a tool is
# missing). Everything a benchmark creates lives under one work directory
# below /var/tmp (not tmpfs: overlay upper dirs need a real filesystem) and
# is removed in the EXIT trap: processes it started are stopped by pid,
# mounts below the work directory are unmounted deepest first, loop devices
# it attached are detached. The cleanup stack, wait_for, unmount_under and
# the host roots come from the integration tests' tests/integration/common.sh.
#
# Usage from a benchmark script:
#   source "$(dirname "$0")/lib.sh"   # with "$@" = /path/to/farmhand
#   bench_init b1                      # sets WORK

set -euo pipefail
export LC_ALL=C  # '.' as the decimal point in every printf and awk

FH=${1:?usage: $0 /path/to/farmhand}
FH=$(readlink -f "$FH")
# Base trees persist across runs in the test cache that the integration
# tests use too (FARMHAND_TEST_CACHE), so a base is built once for both
# tiers; farmhand keys them by distro, release, arch, package set and
# recipe, so a stale base is never reused.
BENCH_CACHE=${FARMHAND_BENCH_CACHE:-${FARMHAND_TEST_CACHE:-/var/cache/farmhand-tests}}
# shellcheck source=tests/integration/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../integration/common.sh"
# init_root's shared cache, and the prefix of unmount_under's complaints.
# shellcheck disable=SC2034
TEST_CACHE=$BENCH_CACHE
# shellcheck disable=SC2034
UNMOUNT_WHO=bench
# Per-command time limits (seconds): a cold base build, everything else.
COLD_TIMEOUT=${FARMHAND_BENCH_COLD_TIMEOUT:-900}
CMD_TIMEOUT=${FARMHAND_BENCH_CMD_TIMEOUT:-300}

WORK=
_current_pid=

# The pids of PID's descendants, children first.
_descendants() {
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$child"
    _descendants "$child"
  done
}

# Processes whose root or working directory is below DIR: tools farmhand ran
# in a tree there (dpkg in a debootstrap chroot) that outlived their parent.
_processes_in() {
  local p link
  for p in /proc/[0-9]*; do
    for link in "$p/root" "$p/cwd"; do
      case $(readlink "$link" 2>/dev/null) in
        "$1"/*) echo "${p#/proc/}"; break ;;
      esac
    done
  done
}

# Stops the command run_timed is running, and every process it started,
# first thing at exit (common.sh's _cleanup calls it before the cleanups).
# farmhand puts each tool in a process group of its own and kills only its
# direct children when it dies, so the tree is collected first and each
# process is stopped by pid.
cleanup_first() {
  [ -n "$_current_pid" ] && kill -0 "$_current_pid" 2>/dev/null || return 0
  local tree pid
  tree=$(_descendants "$_current_pid")
  kill -TERM "$_current_pid" 2>/dev/null || true  # timeout passes it on to farmhand
  for pid in $tree; do kill -TERM "$pid" 2>/dev/null || true; done
  timeout 20 tail --pid="$_current_pid" -f /dev/null 2>/dev/null || true
  for pid in $tree; do timeout 5 tail --pid="$pid" -f /dev/null 2>/dev/null || true; done
  local stray=""
  [ -z "$WORK" ] || stray=$(_processes_in "$WORK")
  for pid in "$_current_pid" $tree $stray; do kill -KILL "$pid" 2>/dev/null || true; done
  _current_pid=
}

bench_init() {  # NAME
  if [ "$(id -u)" != 0 ]; then
    echo "bench: needs root (real mounts, loop devices, nspawn)" >&2
    exit 1
  fi
  [ -x "$FH" ] || { echo "bench: $FH is not executable" >&2; exit 1; }
  local tool
  for tool in debootstrap systemd-nspawn findmnt timeout awk; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
  done
  mkdir -p "$BENCH_CACHE"
  WORK=$(mktemp -d "/var/tmp/farmhand-bench-$1.XXXXXX")
  trap _cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  on_exit "unmount_under '$WORK'; rm -rf --one-file-system '$WORK'"
}

# Writes a configuration with the given clone method and bookworm containers
# (no extra packages, no build package set). The pool is big enough for 256
# containers.
write_config() {  # FILE METHOD NAME...
  local file=$1 method=$2
  shift 2
  local sep="" name
  {
    printf '{"clone_method": "%s",\n "network": {"pool": "10.231.0.0/16", "subnet_prefix": 24},\n "containers": [' "$method"
    for name in "$@"; do
      printf '%s\n  {"name": "%s", "distro": "debian", "release": "bookworm", "arch": "amd64", "packages": [], "build_packages": false}' "$sep" "$name"
      sep=","
    done
    printf '\n]}\n'
  } >"$file"
}

# Runs a command with a time limit, output (stdout and stderr) to OUTFILE,
# and sets LAST_WALL to its wall time in seconds. On failure prints the
# output and returns the command's status.
LAST_WALL=
run_timed() {  # OUTFILE LIMIT CMD...
  local out=$1 limit=$2
  shift 2
  local t0 t1 rc=0
  t0=$EPOCHREALTIME
  # exec, so that $! is timeout itself and not a subshell that carries
  # this script's traps.
  (trap - EXIT INT TERM; exec timeout "$limit" "$@" >"$out" 2>&1) &
  _current_pid=$!
  wait "$_current_pid" || rc=$?
  t1=$EPOCHREALTIME
  _current_pid=
  LAST_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  if [ "$rc" != 0 ]; then
    local why="exit $rc"
    [ "$rc" != 124 ] || why="timed out after $limit s"
    echo "bench: command failed ($why): $*" >&2
    sed 's/^/    | /' "$out" >&2
    return "$rc"
  fi
}

# farmhand with a root and config, timed: fh_timed OUT LIMIT ROOT CONFIG ARGS...
fh_timed() {
  local out=$1 limit=$2 root=$3 config=$4
  shift 4
  run_timed "$out" "$limit" "$FH" --root "$root" --config "$config" "$@"
}

# The duration a step line of `farmhand apply` reports, e.g. for
#   [bw-a] clone (overlay)  done in 0.01 s
# step_seconds OUT NAME "clone (" prints 0.01.
step_seconds() {  # OUTFILE NAME STEP_PREFIX
  awk -v p="[$2] $3" 'index($0, p) == 1 && / done in [0-9.]+ s$/ { v = $(NF - 1) } END { if (v == "") v = "n/a"; print v }' "$1"
}

# "min median max" of the numbers given as arguments.
stats() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a n/a n/a"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.3f %.3f %.3f\n", v[1], m, v[NR] }'
}

median() { stats "$@" | awk '{ print $2 }'; }

# A / B with one decimal, or n/a.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a + 0 > 0) printf "%.1f", a / b; else print "n/a" }'; }

# 1 if A < B, else 0.
less_than() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 < b + 0) ? 1 : 0 }'; }

# The machine's load, to judge how noisy the figures are.
print_machine() {
  echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r)"
}

# Makes sure the bookworm base the benchmarks use is in BENCH_CACHE, by an
# apply of one overlay container into a scratch root (a cold build, about
# 100 s, the first time only). Prints whether it had to be built.
ensure_base() {
  local root=$WORK/warmup out=$WORK/warmup.out
  init_root "$root"
  write_config "$WORK/warmup.json" overlay warmup
  fh_timed "$out" "$COLD_TIMEOUT" "$root" "$WORK/warmup.json" apply
  if grep -q ': building' "$out"; then
    echo "base: built into $BENCH_CACHE in $LAST_WALL s (cold; reused from now on)"
  else
    echo "base: cached in $BENCH_CACHE ($(grep -o 'debian-bookworm-amd64-[0-9a-f]*' "$out" | head -1))"
  fi
  fh_timed "$WORK/warmup-destroy.out" "$CMD_TIMEOUT" "$root" "$WORK/warmup.json" destroy warmup
}
