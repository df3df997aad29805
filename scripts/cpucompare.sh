#!/usr/bin/env bash
# Compares the daemon's CPU time for one fixed workload between two
# revisions of txfs, interleaved: CPU seconds (user + system) of "txfs
# mount" from mount to unmount, which a loaded machine disturbs far less
# than throughput does. The workload, through the mount: a 256 MiB
# sequential write in 1 MiB blocks with fsync at the end, then 16,384
# random 4 KiB reads of it with O_DIRECT (each reaches the daemon), then
# 2,000 files created, stat'ed and deleted.
#
#   scripts/cpucompare.sh OLD_REV [NEW_REV] [ROUNDS]   (NEW_REV: the work tree)
#
# Needs root, fuse3 and fio. Images go to $TXFS_BENCH_DIR (/var/tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: scripts/cpucompare.sh OLD_REV [NEW_REV] [ROUNDS]}
new=${2:-}
rounds=${3:-5}
dir=${TXFS_BENCH_DIR:-/var/tmp}
work=$(mktemp -d "$dir/cpucompare.XXXXXX")
cleanup() {
  set +e
  mountpoint -q "$work/mnt" && fusermount3 -u "$work/mnt"
  git worktree remove --force "$work/old" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

build() { # REV OUT
  local src=.
  if [ -n "$1" ]; then
    git worktree add --detach "$work/src-$2" "$1" >/dev/null 2>&1
    src=$work/src-$2
  fi
  (cd "$src" && go build -o "$work/$2-txfs" ./cmd/txfs && go build -o "$work/$2-mkfs" ./cmd/mkfs.txfs)
  [ "$src" = . ] || git worktree remove --force "$src"
}
build "$old" old
build "$new" new
mkdir "$work/mnt"

run() { # WHICH -> prints CPU seconds
  rm -f "$work/img"
  "$work/$1-mkfs" --size 1G "$work/img" >/dev/null
  /usr/bin/time -f "%U %S" -o "$work/time" "$work/$1-txfs" mount "$work/img" "$work/mnt" 2>/dev/null &
  local pid=$!
  for _ in $(seq 100); do mountpoint -q "$work/mnt" && break; sleep 0.05; done
  fio --name=w --directory="$work/mnt" --rw=write --bs=1M --size=256M --end_fsync=1 --output=/dev/null
  fio --name=w --directory="$work/mnt" --rw=randread --bs=4k --size=256M --io_size=64M --direct=1 --output=/dev/null
  mkdir "$work/mnt/d"
  for i in $(seq 2000); do : >"$work/mnt/d/f$i"; done
  stat "$work/mnt/d"/* >/dev/null
  rm -r "$work/mnt/d"
  rm "$work/mnt"/w.*
  fusermount3 -u "$work/mnt"
  wait "$pid"
  awk '{printf "%.3f\n", $1 + $2}' "$work/time"
}

for r in $(seq "$rounds"); do
  o=$(run old) n=$(run new)
  echo "round $r: old $o s, new $n s of daemon CPU"
  echo "$o $n" >>"$work/all"
done
sort -n -k1 "$work/all" | awk '{a[NR]=$1} END {print "old median", a[int((NR+1)/2)]}'
sort -n -k2 "$work/all" | awk '{a[NR]=$2} END {print "new median", a[int((NR+1)/2)]}'
