# shellcheck shell=bash
# The helpers every test script shares: the integration tests (through
# lib.sh), the benchmarks (through tests/bench/lib.sh) and the dashboard
# test's hooks. Sourcing it needs neither root nor a farmhand binary, and it
# sets no trap: the script that sources it decides when _cleanup runs.
#
#   on_exit SNIPPET        run SNIPPET at exit, last registered first
#   track_pid PID          stop PID at exit (before the on_exit snippets)
#   stop_pid PID [GRACE]   SIGCONT, SIGTERM, SIGKILL after GRACE seconds
#   wait_for SECONDS WHAT COMMAND...
#                          poll COMMAND until it succeeds, or fail naming WHAT

# Base trees are cached across runs; farmhand keys them by recipe and package
# set, so a stale base is rebuilt, never trusted.
TEST_CACHE=${FARMHAND_TEST_CACHE:-/var/cache/farmhand-tests}

_cleanups=()
_pids=()
on_exit() { _cleanups+=("$*"); }

# What runs first at exit, before the tracked pids are stopped. A script
# that needs more than the pid tracker redefines it (the benchmarks stop the
# command they are timing there, with every process it started).
cleanup_first() { :; }

_cleanup() {
  local rc=$?
  trap - EXIT ERR INT TERM
  # Every step of the cleanup runs, whatever one of them returns: under a
  # testcase's `set -e`, a process that outlived its TERM (timeout's 124)
  # used to end the cleanup there, leaving the rest running.
  set +e
  cleanup_first
  local pid
  for pid in "${_pids[@]}"; do stop_pid "$pid" 30; done
  local i
  for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do eval "${_cleanups[i]}" || true; done
  exit "$rc"
}

# Records a background pid to be stopped at exit.
track_pid() { _pids+=("$1"); }

# Stops a process started here by pid: resumes it if it was stopped, SIGTERM,
# and SIGKILL if it is still there after GRACE seconds (default 10). A pid
# that is empty or gone is no error.
stop_pid() {  # PID [GRACE]
  local pid=$1 grace=${2:-10}
  [ -n "$pid" ] || return 0
  kill -CONT "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  local deadline=$((EPOCHSECONDS + grace))
  while kill -0 "$pid" 2>/dev/null && [ "$EPOCHSECONDS" -lt "$deadline" ]; do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

fail() {
  echo "    FAIL: $*" >&2
  return 1
}

# Polls COMMAND every 0.1 s until it succeeds; fails after SECONDS, naming
# WHAT it waited for. A script may set WAIT_DEADLINE (in EPOCHSECONDS) to
# end every wait by then, whatever its own SECONDS say.
wait_for() {  # SECONDS WHAT COMMAND...
  local seconds=$1 what=$2
  shift 2
  local deadline=$((EPOCHSECONDS + seconds))
  if [ -n "${WAIT_DEADLINE:-}" ] && [ "$deadline" -gt "$WAIT_DEADLINE" ]; then deadline=$WAIT_DEADLINE; fi
  until "$@" >/dev/null 2>&1; do
    if [ "$EPOCHSECONDS" -ge "$deadline" ]; then
      fail "timed out after ${seconds}s waiting for $what"
      return 1
    fi
    sleep 0.1
  done
}

# Unmounts everything mounted below DIR, deepest first.
unmount_under() {
  local m
  for m in $(findmnt -rn -o TARGET | grep -F "$1/" | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "${UNMOUNT_WHO:-test}: cannot unmount $m" >&2
  done
}

# Lays out a host root for --root in the directory DIR. Its cache is a
# symlink to TEST_CACHE ("shared", the default), to the given cache
# directory, or a plain empty directory ("empty").
init_root() {  # DIR [shared|empty|CACHE_DIR]
  local dir=$1 cache=${2:-shared}
  mkdir -p "$dir/var/cache"
  case $cache in
    shared) mkdir -p "$TEST_CACHE" && ln -s "$TEST_CACHE" "$dir/var/cache/farmhand" ;;
    empty) mkdir -p "$dir/var/cache/farmhand" ;;
    *) ln -s "$cache" "$dir/var/cache/farmhand" ;;
  esac
}

# Makes a fresh host root under /var/tmp (not tmpfs: overlay upper dirs need
# a real filesystem), sharing the base-tree cache, and assigns its path to
# the variable named VAR. Not `$(make_root)`: the cleanup it registers would
# be lost with the command substitution's subshell.
make_root() {  # VAR
  local dir
  dir=$(mktemp -d /var/tmp/farmhand-it.XXXXXX)
  init_root "$dir"
  on_exit "unmount_under '$dir'; rm -rf --one-file-system '$dir'"
  printf -v "$1" '%s' "$dir"
}

# --- figures (the benchmarks) ---

# Seconds since T0 (an $EPOCHREALTIME), with ELAPSED_DECIMALS decimals (1).
elapsed() {  # T0
  awk -v a="$1" -v b="$EPOCHREALTIME" -v d="${ELAPSED_DECIMALS:-1}" 'BEGIN { printf "%.*f", d, b - a }'
}

# One line "LABEL p50 .. ms  p99 .. ms  max .. ms  (N events)" of the
# latencies in microseconds on stdin, the label padded to PERCENTILES_WIDTH.
# Fails on no input.
percentiles() {  # LABEL
  sort -n | awk -v l="$1" -v w="${PERCENTILES_WIDTH:-44}" '{ v[NR] = $1 } END {
    if (NR == 0) { print l ": no events"; exit 1 }
    p50 = v[int((NR - 1) * 0.50) + 1]; p99 = v[int((NR - 1) * 0.99) + 1]
    printf "%-*s p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms  (%d events)\n", w, l, p50 / 1000, p99 / 1000, v[NR] / 1000, NR }'
}
