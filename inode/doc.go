// Package inode is the inode layer of txfs: what the items of the metadata
// tree (package btree) mean. Every piece of metadata is an item keyed by
// (inode, type, offset), the way btrfs does: inode records, directory
// entries, extended attributes, symlink targets, block maps, and the
// volume-wide marks of orphans, truncates and range operations in
// progress.
//
// The package holds the item types, the key of each kind of item and the
// codec of each value; all of them are part of the on-disk format
// (docs/FORMAT.md, "Item types" and what follows). It does no I/O and no
// policy: package txfs decides what to put into the tree and when.
//
// Decoders never panic on bytes read from disk: a value that does not
// decode is an error wrapping ErrCorrupt, except that the decoders of the
// 8-byte values of block map and truncate items read any other length as
// 0 (DecodeBlockItem, DecodeTruncItem).
package inode
