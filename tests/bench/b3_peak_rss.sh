#!/usr/bin/env bash
# B3: peak resident memory of `farmhand apply`.
#
#   tests/bench/b3_peak_rss.sh /path/to/farmhand
#
# Cases: a cold apply of one container with the base cached (overlay, which
# runs no child process, and copy, which runs cp), and a no-op apply on
# COUNT containers.
#
# Two figures per case:
# - "Maximum resident set size" from /usr/bin/time -v. Linux reports the
#   larger of the process's own peak and that of any child it waited for, so
#   when farmhand runs cp or debootstrap this can be the child's figure.
# - farmhand's own peak (VmHWM of the farmhand process alone), written at
#   exit by a small LD_PRELOAD library (needs a C compiler; skipped without).
#   farmhand starts its tools with an environment of its own, so the
#   library is not loaded into them and their figures are not mixed in.
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

COUNT=${FARMHAND_BENCH_CONTAINERS:-20}

bench_init b3
if [ ! -x /usr/bin/time ]; then
  echo "installing GNU time ..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
fi

echo "== B3: peak RSS of farmhand apply =="
print_machine
ensure_base

# --- the at-exit VmHWM reporter ------------------------------------------
HWM_SO=
if command -v cc >/dev/null; then
  cat >"$WORK/hwm.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* At exit, appends "pid name VmHWM-kB" of this process to $FH_BENCH_HWM_LOG. */
__attribute__((destructor)) static void farmhand_bench_hwm(void) {
  const char* log = getenv("FH_BENCH_HWM_LOG");
  if (log == NULL) return;
  FILE* in = fopen("/proc/self/status", "r");
  if (in == NULL) return;
  char line[256], name[64] = "?", hwm[64] = "?";
  while (fgets(line, sizeof line, in) != NULL) {
    if (strncmp(line, "Name:", 5) == 0) sscanf(line + 5, "%63s", name);
    if (strncmp(line, "VmHWM:", 6) == 0) sscanf(line + 6, "%63s", hwm);
  }
  fclose(in);
  FILE* out = fopen(log, "a");
  if (out == NULL) return;
  fprintf(out, "%d %s %s\n", (int)getpid(), name, hwm);
  fclose(out);
}
EOF
  if cc -shared -fPIC -O2 -o "$WORK/hwm.so" "$WORK/hwm.c" 2>"$WORK/hwm.err"; then
    HWM_SO=$WORK/hwm.so
  else
    echo "note: cannot build the VmHWM reporter: $(head -1 "$WORK/hwm.err")"
  fi
else
  echo "note: no C compiler; farmhand's own peak is not reported separately"
fi

declare -A TIME_RSS=() OWN_RSS=() WALL=()
# measure LABEL ROOT CONFIG ARGS...: runs farmhand under /usr/bin/time -v.
measure() {
  local label=$1 root=$2 config=$3
  shift 3
  local out=$WORK/rss-${#TIME_RSS[@]}
  : >"$out.hwm"
  local env=()
  [ -z "$HWM_SO" ] || env=(env "LD_PRELOAD=$HWM_SO" "FH_BENCH_HWM_LOG=$out.hwm")
  run_timed "$out.out" "$CMD_TIMEOUT" /usr/bin/time -v -o "$out.time" \
    "${env[@]}" "$FH" --root "$root" --config "$config" "$@"
  WALL[$label]=$LAST_WALL
  TIME_RSS[$label]=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$out.time")
  # The line of the process named farmhand (a child that inherited the
  # library would have a line of its own).
  OWN_RSS[$label]=$(awk '$2 == "farmhand" { print $3; exit }' "$out.hwm")
  [ -n "${OWN_RSS[$label]}" ] || OWN_RSS[$label]="n/a"
  echo "$label: $(tail -1 "$out.out")"
}

# Cold apply of one container, base cached.
init_root "$WORK/one-overlay"
write_config "$WORK/one-overlay.json" overlay rss-ov
measure "cold apply, 1 container, overlay" "$WORK/one-overlay" "$WORK/one-overlay.json" apply
init_root "$WORK/one-copy"
write_config "$WORK/one-copy.json" copy rss-copy
measure "cold apply, 1 container, copy" "$WORK/one-copy" "$WORK/one-copy.json" apply

# No-op apply on COUNT containers.
ROOT=$WORK/many
init_root "$ROOT"
names=()
for ((i = 1; i <= COUNT; i++)); do names+=("$(printf 'rss-%02d' "$i")"); done
write_config "$WORK/many.json" overlay "${names[@]}"
measure "apply creating $COUNT (overlay)" "$ROOT" "$WORK/many.json" apply
measure "no-op apply, $COUNT containers" "$ROOT" "$WORK/many.json" apply
measure "plan, $COUNT containers" "$ROOT" "$WORK/many.json" plan

echo
echo "B3 results (kB; 'time -v' is the larger of farmhand's peak and its children's (cp, nspawn);"
echo "'farmhand own' is the farmhand process alone; wall includes /usr/bin/time)"
printf '%-36s %-16s %-14s %s\n' case "time -v maxRSS" "farmhand own" "wall s"
for label in "cold apply, 1 container, overlay" "cold apply, 1 container, copy" \
  "apply creating $COUNT (overlay)" "no-op apply, $COUNT containers" "plan, $COUNT containers"; do
  printf '%-36s %-16s %-14s %s\n' "$label" "${TIME_RSS[$label]}" "${OWN_RSS[$label]}" \
    "${WALL[$label]}"
done
print_machine
