# Shared helpers for farmhand's integration tests (bash, root, real tools).
#
# A test script sets up shared state at the top level, defines testcase_*
# functions and ends with `run_testcases`. Testcases run in the order they
# are defined; the first failing command fails that testcase, and the script
# ends with a line "N passed, M failed".
# Everything a test starts is stopped by pid, and everything it mounts is
# unmounted, in the EXIT trap.

set -uo pipefail

FH=${1:?usage: $0 /path/to/farmhand}
FH=$(readlink -f "$FH")
TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Base trees are cached across runs; farmhand keys them by recipe and package
# set, so a stale base is rebuilt, never trusted.
TEST_CACHE=${FARMHAND_TEST_CACHE:-/var/cache/farmhand-tests}

if [ "$(id -u)" != 0 ]; then
  echo "SKIP: integration tests need root (real mounts, namespaces, nspawn)" >&2
  exit 1  # not a silent pass: CI runs as root and must run these
fi

_cleanups=()
_pids=()
on_exit() { _cleanups+=("$*"); }

_cleanup() {
  trap - ERR
  # Every step of the cleanup runs, whatever one of them returns: under a
  # testcase's `set -e`, a process that outlived its TERM (timeout's 124)
  # used to end the cleanup there, leaving the rest running.
  set +e
  local pid
  for pid in "${_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null && timeout 30 tail --pid="$pid" -f /dev/null 2>/dev/null
    kill -KILL "$pid" 2>/dev/null || true
  done
  local i
  for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do eval "${_cleanups[i]}" || true; done
}
trap _cleanup EXIT

# Records a background pid to be stopped at exit.
track_pid() { _pids+=("$1"); }

# Makes a fresh host root under /var/tmp (not tmpfs: overlay upper dirs need
# a real filesystem), sharing the base-tree cache, and assigns its path to
# the variable named VAR. Not `$(make_root)`: the cleanup it registers would
# be lost with the command substitution's subshell.
make_root() {
  local dir
  dir=$(mktemp -d /var/tmp/farmhand-it.XXXXXX)
  mkdir -p "$dir/var/cache" "$TEST_CACHE"
  ln -s "$TEST_CACHE" "$dir/var/cache/farmhand"
  on_exit "unmount_under '$dir'; rm -rf --one-file-system '$dir'"
  printf -v "$1" '%s' "$dir"
}

# Unmounts everything mounted below DIR, deepest first.
unmount_under() {
  local m
  for m in $(findmnt -rn -o TARGET | grep -F "$1/" | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
}

# A listing of every path below ROOT with type, mode, owner, size and mtime,
# for "nothing changed on disk" comparisons. Extra args are paths to skip.
tree_listing() {
  local root=$1
  shift
  local skip=()
  local s
  for s in "$@"; do skip+=(-path "$root/$s" -prune -o); done
  # Directories without their mtime: it changes whenever anything inside is
  # created or removed, even briefly (SQLite's -wal and -shm files do that).
  find "$root" "${skip[@]}" \( -type d -printf '%P %y %m %u:%g\n' \) -o \
    \( -printf '%P %y %m %u:%g %s %T@ %l\n' \) | LC_ALL=C sort
}

fail() {
  echo "    FAIL: $*" >&2
  return 1
}

assert_eq() {  # expected actual [what]
  [ "$1" == "$2" ] && return 0
  if [[ "$1$2" == *$'\n'* ]]; then
    fail "${3:-value} differs (- expected, + actual):"$'\n'"$(diff <(echo "$1") <(echo "$2") | head -40)"
  else
    fail "${3:-value}: expected [$1], got [$2]"
  fi
}

assert_contains() {  # haystack needle [what]
  [[ "$1" == *"$2"* ]] && return 0
  fail "${3:-output} does not contain [$2]; it was: [$1]"
}

assert_file_eq() {  # file expected-content
  local got
  got=$(cat "$1" 2>&1) || fail "cannot read $1"
  [ "$got" == "$2" ] && return 0
  fail "$1 differs:"$'\n'"$(diff <(echo "$2") <(echo "$got"))"
}

assert_missing() {
  [ ! -e "$1" ] && [ ! -L "$1" ] && return 0
  fail "$1 should not exist"
}

# Polls COMMAND every 0.1 s until it succeeds or SECONDS pass.
wait_for() {
  local seconds=$1
  shift
  local deadline=$((SECONDS + seconds))
  while ! "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      fail "timed out after ${seconds}s waiting for: $*"
      return 1
    fi
    sleep 0.1
  done
}

# Runs farmhand with a config and root; output in $OUT, exit code in $RC.
fh() {
  RC=0
  OUT=$("$FH" "$@" 2>&1) || RC=$?
}

run_testcases() {
  local passed=0 failed=0 t start
  local names
  # In definition order, not alphabetical: later cases build on earlier ones.
  names=$(grep -o '^testcase_[a-z0-9_]*' "$0")
  for t in $names; do
    start=$SECONDS
    echo "--- $t"
    # A subshell per testcase, with its own cleanups: `set -e` holds inside
    # it (it would not inside an `if`), and whatever it starts is stopped
    # when it ends, pass or fail.
    (
      _pids=()
      _cleanups=()
      trap _cleanup EXIT
      set -eE
      trap 'echo "    FAIL: ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND (status $?)" >&2' ERR
      "$t"
    )
    if [ $? -eq 0 ]; then
      echo "ok   $t ($((SECONDS - start)) s)"
      passed=$((passed + 1))
    else
      echo "FAIL $t ($((SECONDS - start)) s)"
      failed=$((failed + 1))
    fi
  done
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
