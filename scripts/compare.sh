#!/usr/bin/env bash
# Compares the engine of two revisions: builds scripts/enginebench at each
# and runs them interleaved (A, B, A, B, ...) so that drift in the disk or
# the host hits both alike, then prints every workload's median for each
# and the ratio B/A.
#
#   scripts/compare.sh BASE_REV [NEW_REV]      (NEW_REV: the work tree)
#   ROUNDS=5 DIR=/var/tmp SIZE=512M scripts/compare.sh main~10
#
# Environment: ROUNDS rounds of each [3]; DIR the directory on the disk to
# measure [/var/tmp]; SIZE bytes of the sequential write [1G]; OPS fsync
# operations per goroutine [200].
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/compare.sh BASE_REV [NEW_REV]" >&2; exit 2; }
ROUNDS=${ROUNDS:-3}
DIR=${DIR:-/var/tmp}
SIZE=${SIZE:-1G}
OPS=${OPS:-200}
work=$(mktemp -d)
trap 'for w in "$work"/src-*; do [ -d "$w" ] && git worktree remove --force "$w"; done; rm -rf "$work"' EXIT

build() { # rev name: builds enginebench of rev into $work/name
  local src=$work/src-$2
  if [ "$1" = . ]; then src=$PWD; else git worktree add -q --detach "$src" "$1"; fi
  (cd "$src" && go build -o "$work/$2" ./scripts/enginebench)
}
build "$1" a
build "${2:-.}" b
size=$(numfmt --from=iec "$SIZE")

for r in $(seq "$ROUNDS"); do
  for x in a b; do
    "$work/$x" -dir "$DIR" -size "$size" -rounds 1 -ops "$OPS" | sed "s/^/$x $r | /" | tee -a "$work/out"
  done
done
echo
echo "medians over $ROUNDS rounds (a = $1, b = ${2:-work tree}):"
# Lines "<workload>: txfs <n> <unit> ..." and "recovery, <case>: <duration>".
awk -F' [|] ' '
  function add(w, who, v, unit) { vals[w, who] = vals[w, who] " " v; units[w] = unit; ws[w] = 1 }
  function ms(d) { if (d ~ /ms$/) return d + 0; if (d ~ /µs$/) return d / 1000; if (d ~ /s$/) return d * 1000; return d }
  { split($1, k, " "); who = k[1]; line = $2
    if (line ~ /^[^ ][^:]*: +txfs +[0-9.]+/) {
      w = line; sub(/: .*/, "", w)
      v = line; sub(/^[^:]*: +txfs +/, "", v); unit = v; sub(/ .*/, "", v); sub(/^[0-9.]+ +/, "", unit); sub(/ .*/, "", unit)
      add(w, who, v, unit)
    } else if (line ~ /^recovery, /) {
      w = line; sub(/: [^:]*$/, "", w); d = line; sub(/.*: /, "", d)
      add(w, who, ms(d), "ms")
    } }
  function median(s,   a, n, i, j, t) { n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  END { for (w in ws) { ma = median(vals[w, "a"]); mb = median(vals[w, "b"])
    printf "%-50s a %10.1f  b %10.1f %-6s b/a %.3f\n", w, ma, mb, units[w], (ma ? mb / ma : 0) } }
' "$work/out"
