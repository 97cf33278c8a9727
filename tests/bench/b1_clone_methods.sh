#!/usr/bin/env bash
# B1: creating a further bookworm container from the cached base, with each
# clone method, against a fresh debootstrap of the same base.
#
#   tests/bench/b1_clone_methods.sh /path/to/farmhand
#
# - debootstrap: a cold `farmhand apply` into an empty cache on a loop-mounted
#   btrfs image (so the base is a subvolume and snapshots work). It also makes
#   the first clone, which is negligible next to the build.
# - btrfs (snapshot) and reflink: on that btrfs image, sharing its cache.
# - overlay and copy: on the host's ext4, with the base copied (cp -a) into
#   the persistent cache rather than built twice.
# Each further container is made REPS times (apply, then `farmhand destroy`);
# the table shows min/median/max of the apply's wall time and of the clone
# step's own time as apply reports it.
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPS=${FARMHAND_BENCH_REPS:-3}
IMG_SIZE=${FARMHAND_BENCH_BTRFS_SIZE:-6G}

bench_init b1
command -v mkfs.btrfs >/dev/null || { echo "bench: mkfs.btrfs is missing (btrfs-progs)" >&2; exit 1; }

echo "== B1: clone methods vs debootstrap (bookworm amd64, no extra packages) =="
print_machine

# --- a btrfs filesystem on a loop device ---------------------------------
BT=$WORK/btrfs
IMG=$WORK/btrfs.img
truncate -s "$IMG_SIZE" "$IMG"
mkfs.btrfs -q -f "$IMG" >/dev/null
mkdir -p "$BT"
mount -o loop "$IMG" "$BT"
# Unmounting a `mount -o loop` detaches its device (autoclear); detach
# explicitly in case it did not.
on_exit "unmount_under '$BT'; umount '$BT' 2>/dev/null || umount -l '$BT'; for d in \$(losetup -j '$IMG' -O NAME -n 2>/dev/null); do losetup -d \"\$d\"; done"
echo "btrfs: $IMG_SIZE image on $(findmnt -n -o SOURCE "$BT")"

# --- the fresh debootstrap ------------------------------------------------
COLD=$BT/cold
init_root "$COLD" empty
write_config "$WORK/cold.json" btrfs bw-cold
echo "cold apply (debootstrap into an empty cache on btrfs) ..."
fh_timed "$WORK/cold.out" "$COLD_TIMEOUT" "$COLD" "$WORK/cold.json" apply
COLD_WALL=$LAST_WALL
COLD_BUILD=$(awk '/\] base .*: building  done in/ { print $(NF - 1) }' "$WORK/cold.out")
if ! grep -q ': building' "$WORK/cold.out"; then
  echo "bench: the cold apply did not build a base:" >&2
  cat "$WORK/cold.out" >&2
  exit 1
fi
IMAGES=$COLD/var/cache/farmhand/images
manifests=("$IMAGES"/*.json)
KEY=$(basename "${manifests[0]}" .json)
echo "cold apply: $COLD_WALL s wall (base build step ${COLD_BUILD:-n/a} s), base $KEY," \
  "$(du -sh --apparent-size "$IMAGES/$KEY" | cut -f1) apparent"
echo "cold apply steps:"
grep -E '^\[bw-cold\] .*(done in|FAILED after)' "$WORK/cold.out" | sed 's/^/    /'

# --- the same base in the persistent (ext4) cache -------------------------
mkdir -p "$BENCH_CACHE/images"
if [ -d "$BENCH_CACHE/images/$KEY" ] && [ -f "$BENCH_CACHE/images/$KEY.json" ]; then
  echo "ext4 cache: $KEY already in $BENCH_CACHE"
else
  (
    # Holds the lock farmhand takes to build this base (flock on
    # images/.KEY.lock), so a concurrent apply waits for the copy.
    exec 9>>"$BENCH_CACHE/images/.$KEY.lock"
    flock 9
    if [ ! -f "$BENCH_CACHE/images/$KEY.json" ] || [ ! -d "$BENCH_CACHE/images/$KEY" ]; then
      rm -rf --one-file-system "$BENCH_CACHE/images/$KEY" "$BENCH_CACHE/images/.$KEY.bench-copy"
      t0=$EPOCHREALTIME
      cp -a "$IMAGES/$KEY" "$BENCH_CACHE/images/.$KEY.bench-copy"
      mv "$BENCH_CACHE/images/.$KEY.bench-copy" "$BENCH_CACHE/images/$KEY"
      cp -a "$IMAGES/$KEY.json" "$BENCH_CACHE/images/.$KEY.json.bench-copy"
      mv "$BENCH_CACHE/images/.$KEY.json.bench-copy" "$BENCH_CACHE/images/$KEY.json"
      echo "ext4 cache: copied $KEY into $BENCH_CACHE in" \
        "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s (cp -a, btrfs -> ext4)"
    fi
  )
fi

# --- further containers ---------------------------------------------------
declare -A APPLY=() CLONE=() DESTROY=() ROOTFS=()
measure() {  # METHOD LABEL ROOT
  local method=$1 label=$2 root=$3 name="bw-$1" i
  local config=$WORK/$method.json applies=() clones=() destroys=()
  write_config "$config" "$method" "$name"
  for ((i = 1; i <= REPS; i++)); do
    fh_timed "$WORK/$method-$i.out" "$CMD_TIMEOUT" "$root" "$config" apply
    applies+=("$LAST_WALL")
    if grep -q ': building' "$WORK/$method-$i.out"; then
      echo "bench: $label: the apply built a base instead of reusing it" >&2
      cat "$WORK/$method-$i.out" >&2
      exit 1
    fi
    grep -q '1 created' "$WORK/$method-$i.out" || {
      echo "bench: $label: the apply did not create exactly one container:" >&2
      cat "$WORK/$method-$i.out" >&2
      exit 1
    }
    clones+=("$(step_seconds "$WORK/$method-$i.out" "$name" "clone (")")
    if [ "$i" = 1 ]; then
      local dir=$root/var/lib/machines/$name
      case $method in
        btrfs) ROOTFS[$label]=$(btrfs subvolume show "$dir" >/dev/null 2>&1 && echo "a subvolume" || echo "NOT a subvolume") ;;
        reflink) ROOTFS[$label]=$(btrfs filesystem du -s --raw "$dir" | awk 'NR == 2 { printf "%.0f MB, %.1f MB not shared", $1 / 1e6, $2 / 1e6 }') ;;
        overlay) ROOTFS[$label]=$(findmnt -n -o FSTYPE "$dir" || echo "not mounted") ;;
        copy) ROOTFS[$label]="$(du -s --block-size=1M "$dir" | cut -f1) MB" ;;
      esac
    fi
    fh_timed "$WORK/$method-$i.destroy.out" "$CMD_TIMEOUT" "$root" "$config" destroy "$name"
    destroys+=("$LAST_WALL")
  done
  APPLY[$label]=$(stats "${applies[@]}")
  CLONE[$label]=$(stats "${clones[@]}")
  DESTROY[$label]=$(stats "${destroys[@]}")
  echo "$label: apply ${applies[*]} s; clone step ${clones[*]} s; destroy ${destroys[*]} s"
  echo "  steps of the last apply:"
  grep -E "^\[$name\] .*(done in|FAILED after)" "$WORK/$method-$REPS.out" | sed 's/^/    /'
}

echo
echo "further containers, $REPS runs each (apply, then destroy):"
init_root "$BT/snap" "$COLD/var/cache/farmhand"
measure btrfs "btrfs snapshot" "$BT/snap"
init_root "$BT/reflink" "$COLD/var/cache/farmhand"
measure reflink "reflink (btrfs)" "$BT/reflink"
init_root "$WORK/ext4-overlay"
measure overlay "overlay (ext4)" "$WORK/ext4-overlay"
init_root "$WORK/ext4-copy"
measure copy "copy (ext4)" "$WORK/ext4-copy"

echo
echo "B1 results (seconds; min/median/max over $REPS runs; ratio = cold debootstrap apply / median apply)"
printf '%-17s %-23s %-23s %-9s %s\n' method "apply wall" "clone step" ratio "clone rootfs"
printf '%-17s %-23s %-23s %-9s %s\n' "debootstrap" "$COLD_WALL" "${COLD_BUILD:-n/a} (base build)" "1.0" "-"
for label in "btrfs snapshot" "reflink (btrfs)" "overlay (ext4)" "copy (ext4)"; do
  read -r amin amed amax <<<"${APPLY[$label]}"
  read -r cmin cmed cmax <<<"${CLONE[$label]}"
  printf '%-17s %-23s %-23s %-9s %s\n' "$label" "$amin/$amed/$amax" "$cmin/$cmed/$cmax" \
    "$(ratio "$COLD_WALL" "$amed")x" "${ROOTFS[$label]}"
done
echo
echo "destroy wall time (min/median/max):"
for label in "btrfs snapshot" "reflink (btrfs)" "overlay (ext4)" "copy (ext4)"; do
  printf '  %-17s %s\n' "$label" "${DESTROY[$label]// //}"
done
echo
echo "noise: spread of apply wall time (max - min) / median per method:"
for label in "btrfs snapshot" "reflink (btrfs)" "overlay (ext4)" "copy (ext4)"; do
  read -r amin amed amax <<<"${APPLY[$label]}"
  printf '  %-17s %s%%\n' "$label" "$(awk -v a="$amin" -v m="$amed" -v b="$amax" 'BEGIN { printf "%.0f", (m > 0 ? 100 * (b - a) / m : 0) }')"
done
echo
echo "targets (for comparison; not asserted):"
for label in "btrfs snapshot" "reflink (btrfs)" "overlay (ext4)" "copy (ext4)"; do
  read -r amin amed amax <<<"${APPLY[$label]}"
  r=$(ratio "$COLD_WALL" "$amed")
  verdict=$(awk -v r="$r" 'BEGIN { print (r + 0 >= 20) ? "meets" : "misses" }')
  line="  $label: ${r}x faster than debootstrap ($verdict >= 20x)"
  case $label in
    "btrfs snapshot" | "overlay (ext4)")
      [ "$(less_than "$amed" 1)" = 1 ] && line+="; median apply $amed s (meets < 1 s)" ||
        line+="; median apply $amed s (misses < 1 s)" ;;
  esac
  echo "$line"
done
print_machine
