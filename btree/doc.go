// Package btree is a B+tree of key/value items whose nodes are blocks,
// bounded in memory by a node cache. It knows nothing of what the items
// mean: txfs keeps all its metadata in one such tree, the way btrfs does,
// and package inode gives the items their meaning. The tree finds, inserts,
// deletes and scans items by key, loads nodes through a Store and hands
// the changed ones back at Flush; txfs names nodes by virtual block, so
// the DAT (package cow) makes their writes copy-on-write. The on-disk
// structure the tree owns is the node format below (docs/FORMAT.md, "The
// metadata tree").
//
// # Keys
//
// A Key is (Ino, Type, Off), ordered by Ino, then Type, then Off, all
// unsigned. Its encoding is 17 bytes, big-endian, so that bytewise order is
// key order:
//
//	offset size field
//	0      8    Ino
//	8      1    Type
//	9      8    Off
//
// # Nodes
//
// Nodes are blocks named by 64-bit node IDs (virtual block numbers that
// the caller maps to disk). The tree does no I/O of its own: it loads
// nodes through a Store and, at a checkpoint, hands changed nodes to the
// callbacks of Flush. Nodes created since the last Flush have temporary
// IDs (bit 63 set) that Flush replaces with permanent ones from its
// allocator, children before parents, so that every encoded node refers
// only to permanent IDs. A node that already has a permanent ID keeps it
// when it changes and is simply rewritten (copy-on-write happens below
// the tree, in the virtual block layer).
//
// # Shared nodes
//
// Several trees may share nodes (snapshots of the tree). The tree is told
// which through a Sharing (SetSharing): before it changes a node, parents
// first, it asks whether the node is shared, and if so changes a copy
// instead and says so (Copied), so that whoever counts references adds one
// to everything the copy refers to. References are counted lazily: taking
// a snapshot adds one to the root only. PathShared tells whether anything
// a leaf refers to is shared through the path above it.
//
// # Node format
//
// These constants are part of the on-disk format. Multi-byte integers in
// the header and items are little-endian; keys are big-endian as above.
//
//	offset size field
//	0      2    magic 0x544E ("TN"), little-endian: bytes 0x4E 0x54
//	2      1    level: 0 for a leaf, parent level = child level + 1, < 32
//	3      1    flags: 0 (any other value is corrupt)
//	4      2    item count n, little-endian, at least 1
//	6      2    reserved: 0 (any other value is corrupt)
//	8      ...  n items, back to back, keys strictly ascending
//
// A leaf item (level 0) is 19 bytes plus its value:
//
//	offset size field
//	0      17   key
//	17     2    value length L, little-endian, at most MaxValueSize
//	19     L    value bytes
//
// An internal item (level > 0) is 25 bytes:
//
//	offset size field
//	0      17   key: at most the smallest key in the child's subtree
//	17     8    child node ID, little-endian (never 0, bit 63 clear)
//
// The child of internal item i holds keys in [key i, key i+1); the last
// child's range ends where its parent's range ends. The first key of an
// internal node may thus be smaller than every key below it (it is
// lowered when a smaller key is inserted, never raised on deletion).
//
// Flush writes each node padded with zero bytes to exactly the block size;
// bytes after the last item must be zero. A node's items and header never
// exceed the block size.
//
// # Capacity
//
// MaxValueSize(blockSize) is (blockSize-8)/4 - 19, capped at 65535: any
// four leaf items fit in a node, so an overfull leaf always splits into
// two nodes that fit. Block sizes from 128 bytes to 1 MiB are supported;
// every internal node then also holds at least 4 items. A node splits when
// its encoding would exceed the block size; after a deletion a node that
// is less than a quarter full is merged with a neighbour if both fit in
// one node, or shares the neighbour's items evenly otherwise. Empty nodes
// are removed, a root with a single child is replaced by that child, and
// deleting every item leaves the empty tree (root NilNode).
//
// # Cache
//
// Every loaded or new node lives in one map keyed by ID. Nodes changed
// since the last Flush are dirty and pinned; clean nodes are ordered for
// eviction by a policy of package internal/cache (S3-FIFO unless
// SetCachePolicy chooses LRU or LFU) and bounded, together with the dirty
// ones, by the cache size given to NewTree, each node counted by what it costs in memory: its items as
// encoded, in a buffer of one block, their offsets and a fixed overhead.
// Parents refer to children by ID only, so a clean child can leave the
// cache while its parent stays.
package btree
