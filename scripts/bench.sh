#!/usr/bin/env bash
# Benchmarks a txfs mount beside go-fuse's loopback filesystem on the same
# disk, and prints per workload the median of each and the ratio.
#
#   scripts/bench.sh
#   ROUNDS=5 PIN=1 WORKLOADS="files fsyncfiles" scripts/bench.sh
#
# Why a loopback: it is the thinnest FUSE filesystem there is (each request
# becomes the same syscall on a directory of the host filesystem), so the
# ratio txfs/loopback is what txfs's engine costs on top of FUSE itself.
# The loopback runs with kernel FUSE passthrough OFF, because with it the
# file data never reaches the daemon while txfs handles every byte in its
# daemon (docs/PRACTICES item 21); one extra run of the loopback WITH
# passthrough is reported too, labelled as such, and not used for ratios.
#
# Both daemons get the same mount options (MaxWrite 1 MiB, MaxBackground 64,
# direct mount, READDIRPLUS_AUTO, 1 s entry/attr timeouts,
# default_permissions) and the same 4 MiB kernel readahead. The loopback
# has go-fuse answer GETXATTR security.capability (IgnoreSecurityLabels);
# txfs clears privileges itself (HANDLE_KILLPRIV_V2), so the kernel does not
# ask before every write (see scripts/fusebench/main.go). The loopback keeps splicing its reads from
# its backing file (txfs cannot: it verifies every block in memory).
#
# Rounds are interleaved (txfs, loopback, txfs, loopback, ...) so that drift
# in the disk or the host (a VM's disk is noisy) hits both alike, and the
# median of ROUNDS runs is reported.
#
# Environment (defaults in brackets):
#   ROUNDS      rounds per workload [3]
#   BENCHDIR    work directory on the disk under test [/var/tmp/txfsbench];
#               the txfs image and the loopback's directory both live here
#   IMAGE_SIZE  txfs image size, sparse [4G]
#   PIN         1: daemon on CPU 0, workload on CPU 1 (taskset) [0]; FUSE
#               metadata results swing 2-3x with placement on 2 cores
#   PASSTHROUGH 1: also run every workload once on a passthrough loopback [1]
#   WORKLOADS   subset of: seqwrite seqread randread warmread randwrite
#               randwrite4 files fsyncfiles dbench cp listing sqlite [all]
#   HOST        1: also run the workloads in HOST_WORKLOADS straight on the
#               disk's filesystem, no FUSE: what the disk allows [1]
#   HOST_WORKLOADS [seqread randwrite randwrite4 fsyncfiles listing]
#   SEQ_SIZE    file size for sequential I/O and random read [1G]
#   RAND_SIZE   file size for 4 KiB random fsync writes [64M]
#   RAND_IOS    4 KiB random reads per run [20000]
#   WARM_TIME   seconds of 4 KiB random reads of a file read before [10]
#   RAND_TIME   time cap in seconds of the random write run [30]
#   NFILES      files created/stat'ed/deleted [20000]
#   NSYNC       4 KiB files written with fsync each [2000]
#   NLIST       empty files in the directory that "listing" lists [100000]
#   DBENCH_TIME dbench seconds, 4 clients [30]
#   CP_SRC      tree copied with cp -a [/usr/local/go/src]
#   SQL_ROWS    rows sqlite3 inserts, in SQL_TX transactions [100000]
#   SQL_TX      transactions of the sqlite workload [100]
#   TIMEOUT     seconds after which one workload run counts as a hang [900]
#
# It installs fio and dbench with apt-get if they are missing (and says so),
# and nothing else. Needs root (mount, drop_caches). Everything it mounts is
# unmounted on exit, also on failure; a mount left behind is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ROUNDS=${ROUNDS:-3}
BENCHDIR=${BENCHDIR:-/var/tmp/txfsbench}
IMAGE_SIZE=${IMAGE_SIZE:-4G}
PIN=${PIN:-0}
PASSTHROUGH=${PASSTHROUGH:-1}
WORKLOADS=${WORKLOADS:-seqwrite seqread randread warmread randwrite randwrite4 files fsyncfiles dbench cp listing sqlite}
HOST=${HOST:-1}
HOST_WORKLOADS=${HOST_WORKLOADS:-seqread randwrite randwrite4 fsyncfiles listing}
SEQ_SIZE=${SEQ_SIZE:-1G}
RAND_SIZE=${RAND_SIZE:-64M}
RAND_IOS=${RAND_IOS:-20000}
WARM_TIME=${WARM_TIME:-10}
RAND_TIME=${RAND_TIME:-30}
NFILES=${NFILES:-20000}
NSYNC=${NSYNC:-2000}
NLIST=${NLIST:-100000}
DBENCH_TIME=${DBENCH_TIME:-30}
CP_SRC=${CP_SRC:-/usr/local/go/src}
SQL_ROWS=${SQL_ROWS:-100000}
SQL_TX=${SQL_TX:-100}
TIMEOUT=${TIMEOUT:-900}

IMG=$BENCHDIR/txfs.img
MNT_TXFS=$BENCHDIR/mnt-txfs
LOOP_DATA=$BENCHDIR/loop-data
MNT_LOOP=$BENCHDIR/mnt-loop
PT_DATA=$BENCHDIR/pt-data
HOST_DATA=$BENCHDIR/host-data
MNT_PT=$BENCHDIR/mnt-pt
RESULTS=$BENCHDIR/results.txt
LOGDIR=$BENCHDIR/logs

say() { printf '%s\n' "$*" >&2; }
die() { say "bench.sh: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (mount(2), /proc/sys/vm/drop_caches)"
[ -e /dev/fuse ] || die "no /dev/fuse"

# --- tools ---------------------------------------------------------------
missing=()
command -v fio >/dev/null || missing+=(fio)
command -v dbench >/dev/null || missing+=(dbench)
[[ " ${WORKLOADS:-sqlite} " != *" sqlite "* ]] || command -v sqlite3 >/dev/null || missing+=(sqlite3)
if [ ${#missing[@]} -gt 0 ]; then
  say "bench.sh: installing ${missing[*]} with apt-get (needed by the workloads)"
  apt-get install -y "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed (run apt-get update first?)"
fi
DBENCH_LOAD=/usr/share/dbench/client.txt
[ -r "$DBENCH_LOAD" ] || die "no dbench load file $DBENCH_LOAD"
[ -d "$CP_SRC" ] || die "CP_SRC $CP_SRC is not a directory"

say "bench.sh: building bin/"
mkdir -p bin
go build -o bin/ ./cmd/... ./scripts/fusebench

# --- CPU placement ---------------------------------------------------------
# PIN=1 puts each daemon on CPU 0 and the workload on CPU 1, so the two never
# fight for a core; unpinned, the scheduler decides (and migrates).
pin_daemon=()
pin_load=()
if [ "$PIN" = 1 ]; then
  last=$(( $(nproc) - 1 ))
  pin_daemon=(taskset -c 0)
  pin_load=(taskset -c "$(( last > 0 ? 1 : 0 ))")
fi

# --- mounts ----------------------------------------------------------------
# Daemon pids and their mount points, for the exit trap.
declare -A DAEMON_PID=()

# wait_ready NAME PID MNT READYFILE: waits until the daemon wrote "ready"
# and the mount shows in /proc/mounts, or fails with the daemon's stderr.
wait_ready() {
  local name=$1 pid=$2 mnt=$3 ready=$4 i
  for ((i = 0; i < 300; i++)); do
    if grep -q ready "$ready" 2>/dev/null && mountpoint -q "$mnt"; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      say "bench.sh: $name daemon exited before it was ready; its stderr:"
      cat "$LOGDIR/$name.stderr" >&2
      exit 1
    fi
    sleep 0.1
  done
  die "$name: not ready after 30 s (stderr in $LOGDIR/$name.stderr)"
}

mount_txfs() {
  mkdir -p "$MNT_TXFS"
  rm -f "$LOGDIR/txfs.ready"
  # --ready-fd 3 writes "ready" to a file once the mount is usable.
  "${pin_daemon[@]}" bin/txfs mount --ready-fd 3 "$IMG" "$MNT_TXFS" \
    3>"$LOGDIR/txfs.ready" 2>>"$LOGDIR/txfs.stderr" &
  DAEMON_PID[$MNT_TXFS]=$!
  wait_ready txfs "${DAEMON_PID[$MNT_TXFS]}" "$MNT_TXFS" "$LOGDIR/txfs.ready"
}

# mount_loop NAME DATA MNT [-passthrough]
mount_loop() {
  local name=$1 data=$2 mnt=$3
  shift 3
  mkdir -p "$data" "$mnt"
  rm -f "$LOGDIR/$name.ready"
  "${pin_daemon[@]}" bin/fusebench mount "$@" --ready-fd 3 "$data" "$mnt" \
    3>"$LOGDIR/$name.ready" >/dev/null 2>>"$LOGDIR/$name.stderr" &
  DAEMON_PID[$mnt]=$!
  wait_ready "$name" "${DAEMON_PID[$mnt]}" "$mnt" "$LOGDIR/$name.ready"
}

# unmount MNT: SIGTERM to the daemon, which unmounts (txfs also writes a
# checkpoint) and exits; a daemon that does not exit within 60 s, or exits
# with an error, is reported.
unmount() {
  local mnt=$1 pid=${DAEMON_PID[$1]:-} i rc
  [ -n "$pid" ] || return 0
  unset "DAEMON_PID[$mnt]"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 600; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "bench.sh: ERROR: daemon $pid of $mnt did not exit 60 s after SIGTERM; SIGQUIT for its stacks (see $LOGDIR)"
    kill -QUIT "$pid" 2>/dev/null || true
    sleep 1
    kill -KILL "$pid" 2>/dev/null || true
    return 1
  fi
  rc=0
  wait "$pid" || rc=$?
  if [ "$rc" != 0 ]; then
    say "bench.sh: ERROR: daemon of $mnt exited with status $rc"
    return 1
  fi
}

cleanup() {
  local rc=$? mnt bad=0
  trap - EXIT
  cd "$ROOT"
  for mnt in "${!DAEMON_PID[@]}"; do
    unmount "$mnt" || bad=1
  done
  # A mount still there is an error: try once more, then say so loudly.
  for mnt in "$MNT_TXFS" "$MNT_LOOP" "$MNT_PT"; do
    if grep -qF " $mnt " /proc/mounts; then
      umount "$mnt" 2>/dev/null || true
      if grep -qF " $mnt " /proc/mounts; then
        say "bench.sh: ERROR: $mnt IS STILL MOUNTED (umount -l $mnt to get rid of it)"
      else
        say "bench.sh: ERROR: $mnt was left mounted by its daemon; unmounted it with umount"
      fi
      bad=1
    fi
  done
  if [ "$bad" != 0 ] && [ "$rc" = 0 ]; then rc=1; fi
  [ "$rc" = 0 ] || say "bench.sh: FAILED (status $rc); daemon logs in $LOGDIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- setup ---------------------------------------------------------------
for mnt in "$MNT_TXFS" "$MNT_LOOP" "$MNT_PT"; do
  ! grep -qF " $mnt " /proc/mounts || die "$mnt is already mounted; unmount it first"
done
mkdir -p "$BENCHDIR" "$LOGDIR"
rm -rf "$IMG" "$LOOP_DATA" "$PT_DATA" "$HOST_DATA" "$RESULTS" "$LOGDIR"/*
say "bench.sh: txfs image $IMG ($IMAGE_SIZE, sparse)"
bin/mkfs.txfs --size "$IMAGE_SIZE" "$IMG" >&2
mount_txfs
mount_loop loop "$LOOP_DATA" "$MNT_LOOP"

# --- workloads -------------------------------------------------------------
# load CMD...: runs one workload command, pinned if PIN=1, with a time limit
# that turns a hang into an error instead of a stuck script.
load() {
  timeout -k 30 "$TIMEOUT" "${pin_load[@]}" "$@"
}

# Drop the page cache (of the FUSE files, the txfs image and the loopback's
# backing files alike) so reads come from the disk through the daemon. txfs
# has no data cache of its own, only a metadata cache, which stays.
drop_caches() {
  sync
  echo 3 >/proc/sys/vm/drop_caches
}

# fio_run ARGS...: one fio job, terse output (runtimes include end_fsync).
fio_run() {
  load fio --name=bench --ioengine=psync --minimal "$@"
}

# fio_layout DIR FILE SIZE: writes FILE sequentially if it is not there yet
# (not timed), so reads and overwrites find a whole file.
fio_layout() {
  local f=$1/$2
  if [ ! -e "$f" ] || [ "$(stat -c %s "$f")" != "$(numfmt --from=iec "$3")" ]; then
    rm -f "$f"
    fio_run --directory="$1" --filename="$2" --rw=write --bs=1M --size="$3" --end_fsync=1 >/dev/null
  fi
}

# run_workload NAME FS MNT ROUND: runs one workload in MNT/bench and prints
# "RESULT metric value unit" lines. Returns non-zero on failure.
run_workload() {
  local w=$1 fs=$2 mnt=$3 round=$4 d=$3/bench out t0 t1
  mkdir -p "$d"
  sync
  case $w in
  seqwrite)
    # A new file each time: append 1 MiB writes, fsync at the end (counted).
    rm -f "$d/seq.dat"
    out=$(fio_run --directory="$d" --filename=seq.dat --rw=write --bs=1M --size="$SEQ_SIZE" --end_fsync=1) || return
    awk -F';' '{printf "RESULT seqwrite %.1f MiB/s\n", $48/1024}' <<<"$out"
    ;;
  seqread)
    fio_layout "$d" seq.dat "$SEQ_SIZE" || return
    drop_caches
    out=$(fio_run --directory="$d" --filename=seq.dat --rw=read --bs=1M --size="$SEQ_SIZE") || return
    awk -F';' '{printf "RESULT seqread %.1f MiB/s\n", $7/1024}' <<<"$out"
    ;;
  randread)
    # Random 4 KiB reads over the whole sequential file; fio's default
    # fadvise(RANDOM) keeps readahead out of it.
    fio_layout "$d" seq.dat "$SEQ_SIZE" || return
    drop_caches
    out=$(fio_run --directory="$d" --filename=seq.dat --rw=randread --bs=4k --size="$SEQ_SIZE" --number_ios="$RAND_IOS") || return
    awk -F';' '{printf "RESULT randread %.0f IOPS\n", $8}' <<<"$out"
    ;;
  warmread)
    # Random 4 KiB reads of a file read whole just before (not timed), in
    # a new open: what a filesystem keeps of a file across opens. fio
    # would drop the file's cached pages first (invalidate=1) without
    # --invalidate=0.
    fio_layout "$d" seq.dat "$SEQ_SIZE" || return
    cat "$d/seq.dat" >/dev/null
    out=$(fio_run --directory="$d" --filename=seq.dat --rw=randread --bs=4k --size="$SEQ_SIZE" --invalidate=0 --time_based --runtime="$WARM_TIME") || return
    awk -F';' '{printf "RESULT warmread %.0f IOPS\n", $8}' <<<"$out"
    ;;
  randwrite)
    # Overwrites of an existing file, fsync after every 4 KiB write; ends
    # when every block was written once or after RAND_TIME seconds.
    fio_layout "$d" rand.dat "$RAND_SIZE" || return
    out=$(fio_run --directory="$d" --filename=rand.dat --rw=randwrite --bs=4k --size="$RAND_SIZE" --fsync=1 --runtime="$RAND_TIME") || return
    awk -F';' '{printf "RESULT randwrite_fsync %.0f IOPS\n", $49}' <<<"$out"
    ;;
  randwrite4)
    # Four writers at once, each overwriting its own file with an fsync
    # after every 4 KiB write: what group commit is for.
    out=$(fio_run --directory="$d" --rw=randwrite --bs=4k --size=16M --numjobs=4 --group_reporting --fsync=1 --runtime="$RAND_TIME") || return
    awk -F';' '{printf "RESULT randwrite4_fsync %.0f IOPS\n", $49}' <<<"$out"
    ;;
  files)
    rm -rf "$d/files"
    mkdir "$d/files"
    load bin/fusebench files -n "$NFILES" "$d/files" || return
    rmdir "$d/files"
    ;;
  fsyncfiles)
    rm -rf "$d/sync"
    mkdir "$d/sync"
    load bin/fusebench fsyncfiles -n "$NSYNC" -size 4096 "$d/sync" || return
    rm -rf "$d/sync"
    ;;
  dbench)
    rm -rf "$d/dbench"
    mkdir "$d/dbench"
    out=$(load dbench -c "$DBENCH_LOAD" -D "$d/dbench" -t "$DBENCH_TIME" 4 2>&1) || { say "$out" | tail -20; return 1; }
    awk '/^Throughput/ {printf "RESULT dbench4 %.1f MB/s\n", $2}' <<<"$out"
    rm -rf "$d/dbench"
    ;;
  cp)
    # The source is read once beforehand so it comes from the page cache
    # for every run alike; only the copy onto the mount is timed.
    rm -rf "$d/cp"
    # (tar skips reading the data when writing to /dev/null, hence wc.)
    tar -cf - "$CP_SRC" 2>/dev/null | wc -c >/dev/null
    t0=$(date +%s.%N)
    load cp -a "$CP_SRC" "$d/cp" || return
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "RESULT cp_a %.2f s\n", b - a}'
    if [ "$round" = 1 ]; then
      # Once per filesystem: the copy must be exact (not timed).
      diff -rq --no-dereference "$CP_SRC" "$d/cp" >&2 || { say "cp -a onto $fs: the copy DIFFERS from $CP_SRC"; return 1; }
    fi
    rm -rf "$d/cp"
    ;;
  listing)
    # NLIST empty files in one directory, made in the first round (not
    # timed). ls -l reads the directory and stats (statx) and asks
    # getxattr(security.selinux) of every name; ls -f only reads it. Each
    # starts once the kernel's FUSE entry and attribute caches (1 s) have
    # expired, "cold" ones also with the page, dentry and inode caches
    # dropped (txfs's own metadata cache stays).
    if [ ! -e "$d/list/f$(printf %07d "$NLIST")" ]; then
      rm -rf "$d/list"
      mkdir "$d/list"
      (cd "$d/list" && seq -f 'f%07g' 1 "$NLIST" | xargs touch) || return
    fi
    local metric args
    for metric in ls_l ls_l_cold ls_f_cold; do
      case $metric in
      ls_l) args=-l ;;
      ls_l_cold) args=-l ;;
      ls_f_cold) args=-f ;;
      esac
      sleep 1.5
      [[ $metric == *_cold ]] && drop_caches
      t0=$(date +%s.%N)
      load ls "$args" "$d/list" >/dev/null || return
      t1=$(date +%s.%N)
      awk -v m="$metric" -v a="$t0" -v b="$t1" 'BEGIN {printf "RESULT %s %.3f s\n", m, b - a}'
    done
    ;;
  sqlite)
    # sqlite3 (rollback journal, its defaults) inserts SQL_ROWS rows into
    # a new database in SQL_TX transactions; two indexes on random values
    # make every transaction change pages all over the file, which soon
    # outgrows sqlite's own 2 MiB cache: it reads them back from the file
    # (the kernel's page cache, if the filesystem lets it keep the pages
    # across the writes). Timed, then checked.
    rm -f "$d/bench.db" "$d/bench.db-journal"
    local per=$(( SQL_ROWS / SQL_TX )) sql=$LOGDIR/sqlite.sql
    {
      echo "CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT, payload BLOB);"
      echo "CREATE INDEX ta ON t(a);"
      echo "CREATE INDEX tb ON t(b);"
      for ((i = 0; i < SQL_TX; i++)); do
        echo "BEGIN;"
        echo "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $per)"
        echo "  INSERT INTO t(a, b, payload) SELECT random(), hex(randomblob(16)), randomblob(100) FROM c;"
        echo "COMMIT;"
      done
    } >"$sql"
    t0=$(date +%s.%N)
    load sqlite3 -bail "$d/bench.db" ".read $sql" || return
    t1=$(date +%s.%N)
    out=$(load sqlite3 -bail "$d/bench.db" "PRAGMA integrity_check; SELECT count(*) FROM t;") || return
    [ "$out" = "ok"$'\n'"$(( per * SQL_TX ))" ] || { say "sqlite on $fs: the database checks as: $out"; return 1; }
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "RESULT sqlite %.2f s\n", b - a}'
    rm -f "$d/bench.db"
    ;;
  *)
    say "unknown workload $w"
    return 1
    ;;
  esac
}

# one WORKLOAD FS MNT ROUND: runs it, records results, stops the whole
# benchmark on a failure or hang with what is needed to reproduce it.
one() {
  local w=$1 fs=$2 mnt=$3 round=$4 out rc=0
  out=$(run_workload "$w" "$fs" "$mnt" "$round") || rc=$?
  if [ "$rc" != 0 ] || ! grep -q '^RESULT ' <<<"$out"; then
    say "bench.sh: ERROR: workload $w on $fs (round $round) failed with status $rc$([ "$rc" = 124 ] && echo ' (TIMEOUT: hang?)')"
    say "$out"
    say "reproduce: WORKLOADS=$w ROUNDS=$round PIN=$PIN BENCHDIR=$BENCHDIR scripts/bench.sh"
    if [ "$rc" = 124 ] && [ -n "${DAEMON_PID[$MNT_TXFS]:-}" ]; then
      # A hang: the txfs daemon's goroutine stacks say where (SIGQUIT
      # makes a Go program print them and exit).
      say "bench.sh: SIGQUIT to txfs (pid ${DAEMON_PID[$MNT_TXFS]}) for its stacks"
      kill -QUIT "${DAEMON_PID[$MNT_TXFS]}" 2>/dev/null || true
      sleep 2
    fi
    for f in "$LOGDIR"/*.stderr; do
      say "--- $f (last 40 lines)"
      tail -200 "$f" >&2
    done
    exit 1
  fi
  grep '^RESULT ' <<<"$out" | while read -r _ metric value unit; do
    printf '%s %s %s %s %s\n' "$metric" "$fs" "$round" "$value" "$unit" >>"$RESULTS"
    say "  round $round $fs: $metric $value $unit"
  done
}

say "bench.sh: ROUNDS=$ROUNDS PIN=$PIN WORKLOADS=\"$WORKLOADS\" SEQ_SIZE=$SEQ_SIZE RAND_SIZE=$RAND_SIZE RAND_IOS=$RAND_IOS NFILES=$NFILES NSYNC=$NSYNC DBENCH_TIME=$DBENCH_TIME CP_SRC=$CP_SRC"
start=$SECONDS
for w in $WORKLOADS; do
  say "== $w"
  for ((r = 1; r <= ROUNDS; r++)); do
    one "$w" txfs "$MNT_TXFS" "$r"
    one "$w" loopback "$MNT_LOOP" "$r"
    if [ "$HOST" = 1 ] && [[ " $HOST_WORKLOADS " == *" $w "* ]]; then
      one "$w" host "$HOST_DATA" "$r"
    fi
  done
done

# One run of each workload on the loopback with kernel passthrough: the
# ceiling for a FUSE filesystem whose data does not go through its daemon.
if [ "$PASSTHROUGH" = 1 ]; then
  unmount "$MNT_LOOP" || exit 1
  rm -rf "$LOOP_DATA"
  mount_loop loop-passthrough "$PT_DATA" "$MNT_PT" -passthrough
  for w in $WORKLOADS; do
    say "== $w (loopback with passthrough)"
    one "$w" passthrough "$MNT_PT" 1
  done
  unmount "$MNT_PT" || exit 1
fi

# The txfs image must check clean after all that.
unmount "$MNT_TXFS" || exit 1
say "bench.sh: fsck.txfs $IMG"
if ! bin/fsck.txfs "$IMG" >"$LOGDIR/fsck.txt" 2>&1; then
  cat "$LOGDIR/fsck.txt" >&2
  die "fsck.txfs found problems in the image after the benchmark (image kept: $IMG)"
fi
say "bench.sh: fsck clean; $(( SECONDS - start )) s of workloads"

# --- report ----------------------------------------------------------------
# Medians per metric and filesystem; the ratio is txfs's speed over the
# loopback's (for times, loopback time / txfs time): above 1 txfs is faster.
median() { # FS METRIC
  awk -v fs="$1" -v m="$2" '$1 == m && $2 == fs {print $4}' "$RESULTS" | sort -g |
    awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
echo
echo "txfs vs go-fuse loopback, same disk ($BENCHDIR), median of $ROUNDS, PIN=$PIN"
printf '%-16s %-8s %10s %10s %8s %12s %10s\n' metric unit txfs loopback ratio passthrough host
for metric in $(awk '{print $1}' "$RESULTS" | awk '!seen[$0]++'); do
  unit=$(awk -v m="$metric" '$1 == m {print $5; exit}' "$RESULTS")
  tx=$(median txfs "$metric")
  lo=$(median loopback "$metric")
  pt=$(median passthrough "$metric")
  ho=$(median host "$metric")
  ratio=$(awk -v t="$tx" -v l="$lo" -v u="$unit" 'BEGIN {
    if (t + 0 == 0 || l + 0 == 0) print "-"; else if (u == "s") printf "%.2fx", l / t; else printf "%.2fx", t / l }')
  printf '%-16s %-8s %10s %10s %8s %12s %10s\n' "$metric" "$unit" "$tx" "$lo" "$ratio" "$pt" "$ho"
done
echo "ratio: txfs speed / loopback speed (no passthrough), >1 = txfs faster; passthrough: one run, not in the ratio;"
echo "host: the same workload on $BENCHDIR itself, no FUSE (median of $ROUNDS), what the disk allows"
echo "raw results: $RESULTS"
rm -rf "$IMG" "$LOOP_DATA" "$PT_DATA" "$HOST_DATA"
