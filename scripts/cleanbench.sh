#!/usr/bin/env bash
# Measures the segment cleaner (docs/PERFORMANCE.md, "Cleaner write cost"):
#
#   1. write cost: random 4 KiB overwrites of a file set kept at 50%, 70%
#      and 85% of a fresh 64 MiB memory volume's statfs space, uniform and
#      hot/cold (90% of the writes to a tenth of the files), for each
#      policy (greedy, cost-benefit, age-threshold): bytes written to the
#      device per byte of file data written, over a window of 4x the file
#      set after a warm-up of 2x, beside Sprite LFS's 2/(1-u);
#   2. latency: p50/p99/max of 4 KiB writes each followed by fsync, one
#      after the other for 8 s, on an image file in /var/tmp: with the
#      cleaner idle, and while a background writer overwrites a file set
#      at 80% at 8 and 16 MiB/s (and the same writer on a volume with
#      plenty of free segments), 3 interleaved rounds.
#
# Every volume is checked (Check) and its files read back at the end of
# its run; the exit status is 1 if any run failed (ENOSPC, a check), 2 on
# bad flags.
#
#   scripts/cleanbench.sh                      # both, defaults (4-5 minutes on 2 cores)
#   scripts/cleanbench.sh -mode cost -util 0.7,0.85 -workload hotcold
#   scripts/cleanbench.sh -mode cost -size 256M -segment 1M
#   scripts/cleanbench.sh -mode latency -dir /some/disk -bg-rate 8M -rounds 5
#   scripts/cleanbench.sh -h                   # every flag
#
# Flags are passed to the program (scripts/cleanbench); the tables go to
# stdout, progress to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/cleanbench ./scripts/cleanbench
exec bin/cleanbench "$@"
