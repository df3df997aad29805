#!/usr/bin/env bash
# Records node cache traces (docs/PERFORMANCE.md, "Caches") from real
# workloads on a txfs mount, each on a fresh image mounted with
# -o node_trace=FILE:
#
#   untar    untar the Go standard library's source ($(go env GOROOT)/src)
#   gobuild  build bin/txfs on the mount, with the Go build cache there too
#   sqlite   sqlite3: 3,000 transactions of inserts, updates and indexed
#            lookups on a 20,000-row table
#   fio      fio random 4 KiB reads of a 1 GiB file, O_DIRECT, zipf(1.1)
#            (a hot set), after writing it in 64 KiB random writes
#   scan     find + stat over 100,000 files, twice, on a fresh mount (the
#            files are made on a mount that is not traced)
#
#   scripts/cachetrace/record.sh OUTDIR [WORKLOAD...]   # all by default
#
# Needs root, /dev/fuse, fio and sqlite3. Traces are written to
# OUTDIR/WORKLOAD.trace.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(realpath -m "${1:?usage: record.sh OUTDIR [WORKLOAD...]}")
shift
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(untar gobuild sqlite fio scan)
mkdir -p "$out" bin
go build -o bin/txfs ./cmd/txfs
go build -o bin/mkfs.txfs ./cmd/mkfs.txfs
work=$(mktemp -d /var/tmp/cachetrace.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
cleanup() {
	mountpoint -q "$mnt" && bin/txfs umount "$mnt" || true
	rm -rf "$work"
}
trap cleanup EXIT

# mount IMAGE [OPTIONS]: mount in the background on $mnt.
mount_txfs() {
	bin/txfs mount --daemon --log "$work/log" --pid-file "$work/pid" -o "cache=64M${2:+,$2}" "$1" "$mnt"
}
# umount_txfs unmounts $mnt and waits for the daemon to exit: it ends the
# trace after its last checkpoint.
umount_txfs() {
	local pid
	pid=$(cat "$work/pid")
	bin/txfs umount "$mnt"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}

for w in "${workloads[@]}"; do
	img=$work/$w.img
	bin/mkfs.txfs --size 8G "$img" >/dev/null
	trace=$out/$w.trace
	echo "== $w" >&2
	start=$SECONDS
	case $w in
	untar)
		tar -C "$(go env GOROOT)" -cf "$work/src.tar" src
		mount_txfs "$img" "node_trace=$trace"
		tar -C "$mnt" -xf "$work/src.tar"
		umount_txfs
		;;
	gobuild)
		mount_txfs "$img" "node_trace=$trace"
		mkdir "$mnt/src"
		git ls-files -z | xargs -0 cp --parents -t "$mnt/src"
		(cd "$mnt/src" && GOCACHE=$mnt/gocache GOFLAGS=-mod=mod go build -o "$mnt/txfs.bin" ./cmd/txfs)
		umount_txfs
		;;
	sqlite)
		mount_txfs "$img" "node_trace=$trace"
		{
			echo "PRAGMA journal_mode=WAL;"
			echo "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT);"
			echo "CREATE INDEX tk ON t(k);"
			echo "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<20000)"
			echo "  INSERT INTO t SELECT i, abs(random())%100000, hex(randomblob(100)) FROM n;"
			for i in $(seq 3000); do
				echo "BEGIN;"
				echo "INSERT INTO t(k, v) VALUES(abs(random())%100000, hex(randomblob(100)));"
				echo "UPDATE t SET v=hex(randomblob(100)) WHERE id=abs(random())%20000;"
				echo "SELECT count(*) FROM t WHERE k BETWEEN $((i * 31 % 100000)) AND $((i * 31 % 100000 + 50));"
				echo "COMMIT;"
			done
		} | sqlite3 "$mnt/db.sqlite" >/dev/null
		umount_txfs
		;;
	fio)
		mount_txfs "$img" "node_trace=$trace"
		fio --name=fill --filename="$mnt/data" --size=1G --rw=randwrite --bs=64k \
			--ioengine=psync --end_fsync=1 >/dev/null
		fio --name=hot --filename="$mnt/data" --size=1G --rw=randread --bs=4k \
			--direct=1 --ioengine=psync --random_distribution=zipf:1.1 \
			--number_ios=200000 --norandommap >/dev/null
		umount_txfs
		;;
	scan)
		mount_txfs "$img"
		for d in $(seq 0 99); do
			mkdir "$mnt/d$d"
			(cd "$mnt/d$d" && seq 1000 | xargs touch)
		done
		umount_txfs
		mount_txfs "$img" "node_trace=$trace"
		for round in 1 2; do
			find "$mnt" -type f -printf '%s %T@\n' >/dev/null
			echo 2 >/proc/sys/vm/drop_caches # the kernel's dentries and inodes
		done
		umount_txfs
		;;
	*)
		echo "unknown workload $w" >&2
		exit 2
		;;
	esac
	echo "   $(stat -c %s "$trace") bytes of trace in $((SECONDS - start)) s" >&2
	rm -f "$img"
done
