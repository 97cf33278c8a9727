#!/usr/bin/env bash
# B8: `farmhand apply` with a payload (git sources and setup steps) and
# nothing to do, on 10 declared containers whose local remotes have not moved.
#
#   tests/bench/b8_payload.sh /path/to/farmhand
#
# Makes two local git repositories (file:// URLs, world-readable: farmhand
# fetches as the build user, uid 883) and COUNT overlay containers from the
# cached bookworm base, each with two sources (one per repository) and two
# cheap setup steps, one depending on each source. Then it prints:
#   - the first apply (create, clone, run the steps);
#   - RUNS no-op applies: wall time and apply's own "(N s)" figure, each
#     checked to be a no-op (output, step marker mtimes, object count);
#   - FETCHES runs of the `farmhand git-sync` helper on one existing
#     checkout: the fetch time of an unchanged remote (which must receive no
#     objects) and the helper's wall time;
#   - one apply after a new commit in one repository, checked to rerun only
#     the steps depending on it, in every container.
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

COUNT=${FARMHAND_BENCH_CONTAINERS:-10}
RUNS=${FARMHAND_BENCH_RUNS:-10}
FETCHES=${FARMHAND_BENCH_FETCHES:-10}

bench_init b8
for tool in git python3 stat; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
# mktemp -d makes WORK 0700. A real / is 0755: the build user reaches the
# repositories and the checkout's mountpoint (ROOT/run/farmhand/git) through it.
chmod 0755 "$WORK"

echo "== B8: no-op apply with sources and setup steps on $COUNT containers =="
print_machine
ensure_base

# Commits are made with a fixed identity and without the host's gitconfig.
_git() {
  GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 \
    git -c user.name=farmhand-bench -c user.email=farmhand-bench@invalid \
    -c init.defaultBranch=main -c commit.gpgsign=false "$@"
}

# Commits a change to the repository DIR (a line appended to CHANGES) and
# opens it up for uid 883: directories 0755, files readable by all.
commit_change() {  # DIR MESSAGE
  (
    umask 022
    echo "$2" >>"$1/CHANGES"
    _git -C "$1" add -A && _git -C "$1" commit -q -m "$2"
  ) >&2
  find "$1" -type d -exec chmod 0755 {} + -o -type f -exec chmod a+r,go-w {} +
}

REPOS=$WORK/repos
(umask 022 && mkdir -p "$REPOS")
chmod 0755 "$REPOS"
for repo in a b; do
  (umask 022 && _git init -q -b main "$REPOS/$repo")
  commit_change "$REPOS/$repo" "$repo: first version"
done

ROOT=$WORK/root
init_root "$ROOT"
chmod 0755 "$ROOT"
M=$ROOT/var/lib/machines
names=()
for ((i = 1; i <= COUNT; i++)); do names+=("$(printf 'b8-%02d' "$i")"); done

# Like write_config's containers, plus the payload.
python3 - "$WORK/config.json" "$REPOS" "${names[@]}" <<'PY'
import json, sys
out, repos, names = sys.argv[1], sys.argv[2], sys.argv[3:]
def container(name):
    return {
        "name": name, "distro": "debian", "release": "bookworm", "arch": "amd64",
        "packages": [], "build_packages": False,
        "sources": [{"name": r, "url": "file://%s/%s" % (repos, r), "ref": "main",
                     "path": "/home/sai/src/" + r} for r in ("a", "b")],
        "setup": [{"name": "build-" + r,
                   "run": ["sh", "-c", "echo built {{source.%s.commit}} > /home/sai/built-%s" % (r, r)],
                   "sources": [r]} for r in ("a", "b")],
    }
config = {"clone_method": "overlay",
          "network": {"pool": "10.231.0.0/16", "subnet_prefix": 24},
          "containers": [container(n) for n in names]}
with open(out, "w") as f:
    json.dump(config, f, indent=1)
    f.write("\n")
PY

# Apply's own "(N s)" figure, from its last line.
self_seconds() { tail -1 "$1" | sed -n 's/.*(\([0-9.]*\) s)\.$/\1/p'; }

# How many lines of OUTFILE report STEP ("setup build-a", "source a:") done.
count_steps() {  # OUTFILE STEP
  awk -v s="$2" 'index($0, "] " s) && / done in [0-9.]+ s$/ { n++ } END { print n + 0 }' "$1"
}

# The mtimes (ns) of every step's marker file, one line per file.
markers() {
  local n r
  for n in "${names[@]}"; do
    for r in a b; do echo "$n/built-$r $(stat -c '%.9Y' "$M/$n/home/sai/built-$r")"; done
  done
}

CHECKOUT=$M/${names[0]}/home/sai/src/a
objects() { find "$CHECKOUT/.git/objects" -type f | wc -l; }

fh_timed "$WORK/create.out" "$CMD_TIMEOUT" "$ROOT" "$WORK/config.json" apply
CREATE_WALL=$LAST_WALL
grep -q "$COUNT created" "$WORK/create.out" || {
  echo "bench: the first apply did not create $COUNT containers:" >&2
  cat "$WORK/create.out" >&2
  exit 1
}
for step in "source a:" "source b:" "setup build-a" "setup build-b"; do
  got=$(count_steps "$WORK/create.out" "$step")
  [ "$got" = "$COUNT" ] || {
    echo "bench: the first apply reported \"$step\" $got times, not $COUNT:" >&2
    cat "$WORK/create.out" >&2
    exit 1
  }
done
commit_a=$(_git -C "$REPOS/a" rev-parse HEAD)
grep -qx "built $commit_a" "$M/${names[0]}/home/sai/built-a" || {
  echo "bench: $M/${names[0]}/home/sai/built-a does not name commit $commit_a" >&2
  exit 1
}
step_times() {  # OUTFILE STEP_PREFIX
  local n v=()
  for n in "${names[@]}"; do v+=("$(step_seconds "$1" "$n" "$2")"); done
  stats "${v[@]}"
}
echo "first apply: $COUNT containers created, 2 sources cloned and 2 steps run in each: $CREATE_WALL s wall," \
  "$(self_seconds "$WORK/create.out") s as apply reports it"
echo "  clone step min/median/max $(step_times "$WORK/create.out" "clone (")"
echo "  source a min/median/max $(step_times "$WORK/create.out" "source a:")"
echo "  setup build-a min/median/max $(step_times "$WORK/create.out" "setup build-a")"
echo "  $(tail -1 "$WORK/create.out")"

markers >"$WORK/markers.before"
objects_before=$(objects)
applies=() selfs=()
for ((i = 1; i <= RUNS; i++)); do
  out=$WORK/noop-$i.out
  fh_timed "$out" "$CMD_TIMEOUT" "$ROOT" "$WORK/config.json" apply
  applies+=("$LAST_WALL")
  why=
  if ! head -1 "$out" | grep -q '^No changes:'; then
    why="its output does not start with \"No changes:\""
  elif grep -qE '^\[[^]]*\] (setup|source) ' "$out"; then
    why="it reported setup or source steps"
  elif ! markers | cmp -s - "$WORK/markers.before"; then
    why="a step marker file changed: $(markers | diff "$WORK/markers.before" - | grep '^>' | head -3 | tr '\n' ' ')"
  elif [ "$(objects)" != "$objects_before" ]; then
    why="$CHECKOUT/.git/objects went from $objects_before to $(objects) files"
  fi
  if [ -n "$why" ]; then
    echo "bench: apply $i was not a no-op: $why" >&2
    cat "$out" >&2
    exit 1
  fi
  selfs+=("$(self_seconds "$out")")
done
echo "no-op apply: $(cat "$WORK/noop-1.out")"
echo "  checked in each of $RUNS runs: \"No changes:\", no setup/source step lines, the $((2 * COUNT)) step" \
  "marker mtimes unchanged, $objects_before files in ${names[0]}'s source a .git/objects"

# The helper apply runs once per source, called directly on an existing
# checkout: the request is what the provisioner sends (see git_sync_request_json).
MNT=$WORK/git-mnt
mkdir -m 0755 "$MNT"
REQUEST=$(python3 - "$M/${names[0]}" "$(stat -c '%u' "$CHECKOUT")" "$(stat -c '%g' "$CHECKOUT")" "$MNT" "$REPOS/a" <<'PY'
import json, sys
tree, uid, gid, mnt, repo = sys.argv[1:]
print(json.dumps({"tree": tree, "path": "/home/sai/src/a", "uid": int(uid), "gid": int(gid), "mountpoint": mnt,
                  "source": {"name": "a", "url": "file://" + repo, "ref": "main", "depth": 0,
                             "submodules": False, "credentials": {}}}))
PY
)
fetch_ms=() helper_walls=() received=()
for ((i = 1; i <= FETCHES; i++)); do
  out=$WORK/git-sync-$i.out
  run_timed "$out" "$CMD_TIMEOUT" "$FH" git-sync --request "$REQUEST"
  helper_walls+=("$LAST_WALL")
  # One JSON line on stdout; anything else would be a log line on stderr.
  result=$(python3 -c '
import json, sys
lines = [l for l in open(sys.argv[1]) if l.startswith("{")]
r = json.loads(lines[-1])
print(r["fetch_ms"], r["received_objects"], str(r["changed"]).lower(), r["commit"])' "$out" 2>/dev/null) || {
    echo "bench: git-sync run $i printed no result line:" >&2
    cat "$out" >&2
    exit 1
  }
  read -r ms objs changed commit <<<"$result"
  if [ "$objs" != 0 ] || [ "$changed" != false ] || [ "$commit" != "$commit_a" ]; then
    echo "bench: git-sync of an unchanged remote (run $i) received $objs objects, changed=$changed," \
      "commit $commit (expected 0, false, $commit_a):" >&2
    cat "$out" >&2
    exit 1
  fi
  fetch_ms+=("$ms")
  received+=("$objs")
done
rmdir "$MNT"
[ "$(objects)" = "$objects_before" ] || {
  echo "bench: $CHECKOUT/.git/objects went from $objects_before to $(objects) files after git-sync" >&2
  exit 1
}
echo "git-sync helper: $(tail -1 "$WORK/git-sync-1.out")"

# A new commit in repository a only: the steps depending on it rerun in
# every container, the others do not.
commit_change "$REPOS/a" "a: second version"
commit_a2=$(_git -C "$REPOS/a" rev-parse HEAD)
markers >"$WORK/markers.before-change"
fh_timed "$WORK/change.out" "$CMD_TIMEOUT" "$ROOT" "$WORK/config.json" apply
CHANGE_WALL=$LAST_WALL
steps_a=$(count_steps "$WORK/change.out" "setup build-a")
steps_b=$(count_steps "$WORK/change.out" "setup build-b")
sources_a=$(count_steps "$WORK/change.out" "source a:")
sources_b=$(count_steps "$WORK/change.out" "source b:")
steps_all=$(grep -cE '^\[[^]]*\] setup ' "$WORK/change.out" || true)
why=
if [ "$steps_a" != "$COUNT" ] || [ "$sources_a" != "$COUNT" ]; then
  why="build-a ran in $steps_a and source a moved in $sources_a of $COUNT containers"
elif [ "$steps_b" != 0 ] || [ "$sources_b" != 0 ] || [ "$steps_all" != "$COUNT" ]; then
  why="build-b ran $steps_b times, source b moved $sources_b times, $steps_all setup lines"
fi
for n in "${names[@]}"; do
  [ -n "$why" ] && break
  if ! grep -qx "built $commit_a2" "$M/$n/home/sai/built-a"; then
    why="$n's built-a does not name the new commit $commit_a2"
  elif [ "$(grep "^$n/built-b " "$WORK/markers.before-change")" != "$n/built-b $(stat -c '%.9Y' "$M/$n/home/sai/built-b")" ]; then
    why="$n's built-b was rewritten"
  fi
done
if [ -n "$why" ]; then
  echo "bench: the apply after a new commit in repository a did the wrong work: $why" >&2
  cat "$WORK/change.out" >&2
  exit 1
fi
echo "apply after a new commit in repository a: $CHANGE_WALL s wall, $(self_seconds "$WORK/change.out") s as apply reports it"
echo "  setup steps run: $steps_all (build-a in $steps_a of $COUNT containers, build-b in $steps_b);" \
  "$(grep -F "[${names[0]}] source a:" "$WORK/change.out" | sed 's/  done in.*//; s/^\[[^]]*\] //')"
echo "  setup build-a min/median/max $(step_times "$WORK/change.out" "setup build-a")"
echo "  $(tail -1 "$WORK/change.out")"

ms_to_s() { awk -v v="$1" 'BEGIN { printf "%.3f", v / 1000 }'; }
fetch_s=()
for v in "${fetch_ms[@]}"; do fetch_s+=("$(ms_to_s "$v")"); done

echo
echo "B8 results ($COUNT containers x 2 sources + 2 setup steps; seconds min/median/max)"
printf '%-44s %s\n' "what" "min/median/max"
row() { read -r a b c <<<"$(stats "${@:3}")"; printf '%-44s %s/%s/%s  (%s runs)\n' "$1" "$a" "$b" "$c" "$2"; }
row "apply, no-op (wall)" "$RUNS" "${applies[@]}"
row "apply, no-op (as apply reports it)" "$RUNS" "${selfs[@]}"
row "git-sync, unchanged remote: fetch_ms / 1000" "$FETCHES" "${fetch_s[@]}"
row "git-sync, unchanged remote: helper (wall)" "$FETCHES" "${helper_walls[@]}"
echo "git-sync, unchanged remote: fetch_ms (1 ms resolution) ${fetch_ms[*]}; received_objects" \
  "$(printf '%s\n' "${received[@]}" | sort -u | tr '\n' ' ')(must be 0: checked)"
printf '%-44s %s\n' "first apply (create + clone + steps, wall)" "$CREATE_WALL"
printf '%-44s %s\n' "apply after one repository moved (wall)" "$CHANGE_WALL"
med=$(median "${applies[@]}")
if [ "$(less_than "$med" 1)" = 1 ]; then v=meets; else v=misses; fi
echo "target (not asserted): no-op apply < 1 s: median $med s ($v)"
print_machine
