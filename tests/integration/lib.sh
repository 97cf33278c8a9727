# Shared helpers for farmhand's integration tests (bash, root, real tools).
#
# A test script sets up shared state at the top level, defines testcase_*
# functions and ends with `run_testcases`. Testcases run in the order they
# are defined; the first failing command fails that testcase, and the script
# ends with a line "N passed, M failed".
# Everything a test starts is stopped by pid, and everything it mounts is
# unmounted, in the EXIT trap. The cleanup stack, the pid tracker, wait_for
# and make_root are in common.sh, which the benchmarks share.

set -uo pipefail

FH=${1:?usage: $0 /path/to/farmhand}
FH=$(readlink -f "$FH")
TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: integration tests need root (real mounts, namespaces, nspawn)" >&2
  exit 1  # not a silent pass: CI runs as root and must run these
fi
# shellcheck source=tests/integration/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
trap _cleanup EXIT

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

# Runs farmhand with a config and root; output in $OUT, exit code in $RC.
fh() {
  RC=0
  OUT=$("$FH" "$@" 2>&1) || RC=$?
}

# fh with the test's own root and config ($ROOT, $CONFIG).
# shellcheck disable=SC2153  # ROOT and CONFIG are the test script's
fhc() { fh --root "$ROOT" --config "$CONFIG" "$@"; }

# A line of what a testcase is doing, indented under its name.
step() { echo "    $*"; }

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
