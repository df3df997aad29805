#!/usr/bin/env bash
# Measures snapshots (docs/PERFORMANCE.md, "Snapshots"):
#
#   1. timings on the engine (scripts/snapbench): create on idle volumes of
#      10,000 and 100,000 files, list of 100, restore, delete, and random
#      overwrites with and without a snapshot;
#   2. space, side by side with btrfs on a loop device on the same disk:
#      100 MiB in 1,000 files of random data; 100 snapshots of it; then 1
#      MiB changed, spread over 100 files, and one more snapshot. txfs is
#      measured through a mount (txfs status --json: live_bytes), btrfs by
#      `btrfs filesystem usage` (data and metadata used) after a sync.
#
# Needs root, fuse3 and btrfs-progs (apt-get install btrfs-progs); the
# images go to DIR (default /var/tmp).
#
#   scripts/snapbench.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/var/tmp}
mkdir -p bin
go build -o bin/txfs ./cmd/txfs
go build -o bin/mkfs.txfs ./cmd/mkfs.txfs
go build -o bin/snapbench ./scripts/snapbench
bin/snapbench -dir "$dir"

work=$(mktemp -d "$dir/snapbench.XXXXXX")
loop=""
cleanup() {
  set +e
  mountpoint -q "$work/t" && bin/txfs umount "$work/t"
  mountpoint -q "$work/b" && umount "$work/b"
  [ -n "$loop" ] && losetup -d "$loop"
  rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/t" "$work/b"
truncate -s 1G "$work/btrfs.img"
bin/mkfs.txfs --size 1G "$work/txfs.img" >/dev/null
bin/txfs mount "$work/txfs.img" "$work/t" 2>/dev/null &
for _ in $(seq 100); do mountpoint -q "$work/t" && break; sleep 0.1; done
loop=$(losetup -f --show "$work/btrfs.img")
mkfs.btrfs -q -f "$loop" >/dev/null
mount "$loop" "$work/b"
btrfs -q subvolume create "$work/b/data"
mkdir -p "$work/b/snaps"

txfs_used() { sync; bin/txfs status --json "$work/t" | sed -n 's/.*"live_bytes": \([0-9]*\).*/\1/p'; }
btrfs_used() {
  btrfs filesystem sync "$work/b" >/dev/null
  btrfs filesystem usage -b "$work/b" 2>/dev/null | awk '/^ *Used:/ {print $2; exit}'
}

# 100 MiB in 1,000 files, the same bytes on both.
head -c $((100 << 20)) /dev/urandom >"$work/data"
for i in $(seq -w 0 999); do
  dd if="$work/data" of="$work/t/f$i" bs=100K skip=$((10#$i)) count=1 status=none
  cp "$work/t/f$i" "$work/b/data/f$i"
done
t0=$(txfs_used) b0=$(btrfs_used)
for i in $(seq 100); do
  bin/txfs snapshot create "$work/t" "s$i" >/dev/null
  btrfs -q subvolume snapshot -r "$work/b/data" "$work/b/snaps/s$i"
done
t1=$(txfs_used) b1=$(btrfs_used)
# 1 MiB changed, 10,486 bytes at a block boundary in each of 100 files.
for i in $(seq 0 99); do
  f=$(printf 'f%03d' $((i * 10)))
  head -c 10486 /dev/urandom >"$work/chunk"
  dd if="$work/chunk" of="$work/t/$f" bs=4096 seek=$((i % 20)) conv=notrunc status=none
  dd if="$work/chunk" of="$work/b/data/$f" bs=4096 seek=$((i % 20)) conv=notrunc status=none
done
bin/txfs snapshot create "$work/t" after >/dev/null
btrfs -q subvolume snapshot -r "$work/b/data" "$work/b/snaps/after"
t2=$(txfs_used) b2=$(btrfs_used)
kb() { echo "$(( ($1) / 1024 )) KiB"; }
printf '%-44s %14s %14s\n' "" txfs btrfs
printf '%-44s %14s %14s\n' "100 MiB in 1,000 files: used" "$(kb "$t0")" "$(kb "$b0")"
printf '%-44s %14s %14s\n' "100 snapshots of it: added" "$(kb "$t1 - $t0")" "$(kb "$b1 - $b0")"
printf '%-44s %14s %14s\n' "1 MiB changed in 100 files + 1 snapshot" "$(kb "$t2 - $t1")" "$(kb "$b2 - $b1")"
