#!/usr/bin/env bash
# Measures the node cache's eviction policies (docs/PERFORMANCE.md,
# "Caches"): records a trace of each workload on a txfs mount
# (scripts/cachetrace/record.sh: untar, gobuild, sqlite, fio, scan; about
# 4 minutes on 2 cores, as root) unless DIR already has it, then replays
# every trace under lru, lfu, s3fifo and otter at 1/8, 1/4 and 1/2 of its
# working set and prints the hit-rate table.
#
#   scripts/cachetrace.sh [DIR]            # traces in DIR (default /var/tmp/txfs-cachetraces)
#   scripts/cachetrace.sh DIR -sample internal/cache/testdata
#                                          # and rewrite the replay test's samples
#                                          # (a relative -sample is the repository's)
set -euo pipefail
dir=$(realpath -m "${1:-/var/tmp/txfs-cachetraces}")
shift || true
cd "$(dirname "$0")/.."
workloads=(untar gobuild sqlite fio scan)
missing=()
for w in "${workloads[@]}"; do
	[ -s "$dir/$w.trace" ] || missing+=("$w")
done
if [ ${#missing[@]} -gt 0 ]; then
	scripts/cachetrace/record.sh "$dir" "${missing[@]}"
fi
traces=()
for w in "${workloads[@]}"; do traces+=("$dir/$w.trace"); done
mkdir -p bin
(cd scripts/cachetrace && go build -o ../../bin/cachetrace .)
exec bin/cachetrace "$@" "${traces[@]}"
