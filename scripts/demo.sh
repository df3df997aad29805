#!/usr/bin/env bash
# Builds txfs, formats an image (1 GiB, sparse) if it does not exist yet and
# mounts it, in the foreground: press Ctrl-C (or run "bin/txfs umount DIR")
# to checkpoint and unmount.
#
#   scripts/demo.sh [IMAGE [DIR]]     default: txfs.img and ./mnt
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-txfs.img}
dir=${2:-mnt}
mkdir -p bin "$dir"
go build -o bin/ ./cmd/...
if [ ! -e "$image" ]; then
  bin/mkfs.txfs --size 1G "$image"
fi
echo "mounting $image on $dir (Ctrl-C to unmount)"
exec bin/txfs mount "$image" "$dir"
