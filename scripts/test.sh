#!/usr/bin/env bash
# Runs every test: build, vet, and the whole suite under the race detector
# (unit, crash model, corruption, mount and end-to-end tests). Mount tests
# need root and /dev/fuse; without them they skip and say why. Then the
# memory bound, without the race detector (it measures the heap): 4 GiB
# and a million files written to images in $TXFS_MEMORY_DIR (/var/tmp by
# default; sparse, deleted at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
go build ./...
go vet ./...
go test -race -timeout 40m -count=1 "$@" ./...
TXFS_MEMORY_DIR=${TXFS_MEMORY_DIR:-/var/tmp} go test -timeout 10m -count=1 -run '^TestMemoryBound$' -v . | grep -v '^=== RUN'
