package btree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/txfs/txfs/internal/cache"
	"github.com/txfs/txfs/internal/corrupt"
)

// KeySize is the encoded size of a Key. Part of the on-disk format.
const KeySize = 17

// Key orders the items of the tree: by Ino, then Type, then Off, all
// compared as unsigned integers.
type Key struct {
	Ino  uint64
	Type uint8
	Off  uint64
}

// Encode writes the 17-byte big-endian form of k to dst, which must be at
// least KeySize long. Big-endian makes bytewise order equal key order.
func (k Key) Encode(dst []byte) {
	_ = dst[KeySize-1]
	binary.BigEndian.PutUint64(dst[0:8], k.Ino)
	dst[8] = k.Type
	binary.BigEndian.PutUint64(dst[9:17], k.Off)
}

// DecodeKey reads a key written by Encode. b must be at least KeySize long.
func DecodeKey(b []byte) Key {
	_ = b[KeySize-1]
	return Key{
		Ino:  binary.BigEndian.Uint64(b[0:8]),
		Type: b[8],
		Off:  binary.BigEndian.Uint64(b[9:17]),
	}
}

// Compare returns -1, 0 or +1 as k sorts before, equal to or after o.
func (k Key) Compare(o Key) int {
	switch {
	case k.Ino != o.Ino:
		if k.Ino < o.Ino {
			return -1
		}
		return 1
	case k.Type != o.Type:
		if k.Type < o.Type {
			return -1
		}
		return 1
	case k.Off != o.Off:
		if k.Off < o.Off {
			return -1
		}
		return 1
	}
	return 0
}

// Less reports whether k sorts before o.
func (k Key) Less(o Key) bool { return k.Compare(o) < 0 }

// String formats k for error messages.
func (k Key) String() string { return fmt.Sprintf("(%d,%d,%d)", k.Ino, k.Type, k.Off) }

// next returns the smallest key greater than k, or false if k is the
// largest possible key.
func (k Key) next() (Key, bool) {
	switch {
	case k.Off != ^uint64(0):
		k.Off++
	case k.Type != ^uint8(0):
		k.Type, k.Off = k.Type+1, 0
	case k.Ino != ^uint64(0):
		k.Ino, k.Type, k.Off = k.Ino+1, 0, 0
	default:
		return k, false
	}
	return k, true
}

// NodeID names a tree node: a virtual block number the caller maps to
// disk. IDs with tempBit set are in-memory names of nodes that have not
// been flushed yet.
type NodeID uint64

// NilNode is the root of an empty tree and never names a node.
const NilNode NodeID = 0

// tempBit marks temporary IDs of nodes created since the last Flush.
// Permanent IDs handed out by the allocator must stay below it.
const tempBit = 1 << 63

func (id NodeID) isTemp() bool { return id&tempBit != 0 }

// ErrCorrupt is wrapped by every error about node bytes or tree structure
// that cannot be right.
var ErrCorrupt = corrupt.Kind("btree: corrupt tree node")

// ErrValueTooLarge is returned by Put for values longer than MaxValueSize.
var ErrValueTooLarge = errors.New("btree: value too large")

// Node format constants. These constants are part of the on-disk format.
const (
	nodeMagic     = 0x544E // "TN" read as a little-endian uint16
	headerSize    = 8      // magic(2) level(1) flags(1) count(2) reserved(2)
	leafItemHdr   = KeySize + 2
	innerItemSize = KeySize + 8
	maxLevel      = 32 // levels are 0..maxLevel-1
)

// Block size limits. The lower bound lets an internal node hold 4 items
// with room to spare; the upper bound keeps the 16-bit item count from
// overflowing (a 1 MiB node holds at most 55,188 leaf items).
const (
	minBlockSize = 128
	maxBlockSize = 1 << 20
)

// MaxValueSize is the largest value Put accepts for nodes of blockSize
// bytes: (blockSize-8)/4 - 19, capped at 65535 (the value length field is
// 16 bits). At this size any four leaf items fit in one node, which is
// what makes a two-way split of an overfull leaf always produce two nodes
// that fit (an overfull leaf holds at most 1.25 nodes' worth of items, none
// larger than a quarter). Internal items are 25 bytes, so internal nodes
// hold at least 4 items for every supported block size (128 bytes to
// 1 MiB). It returns 0 for block sizes outside that range.
func MaxValueSize(blockSize int) int {
	if blockSize < minBlockSize || blockSize > maxBlockSize {
		return 0
	}
	return min((blockSize-headerSize)/4-leafItemHdr, 0xFFFF)
}

// node is the in-memory form of a tree node: its items exactly as they are
// encoded on disk, back to back, and the offset of each. A node in memory
// thus costs a block and 4 bytes an item (a decoded form, with a Key and a
// slice for each item, would cost three times its encoded size), and that
// is what the cache bound counts (memSize). Children are referred to by
// ID, never by pointer, so that a clean child can be evicted from the
// cache while its parent stays.
//
// Items are changed in place, so a value handed out of a node must be
// copied before the tree's lock is released (Get, leafNear).
type node struct {
	id    NodeID
	level uint8
	items []byte   // the encoded items (leaf: key, length, value; internal: key, child)
	offs  []uint32 // offs[i] is where item i starts in items

	// Cache bookkeeping, owned by Tree.
	dirty   bool
	acct    int  // bytes this node adds to cleanBytes or dirtyBytes
	touched bool // on Tree.touched, waiting for its acct to be settled
	ce      cache.Entry
}

// nodeOverhead is what a cached node costs beside its items and offsets:
// the node itself and its entries in the cache's maps.
const nodeOverhead = 160

// A node's items get a buffer of a whole block (a node only outgrows it
// for a moment, before it splits), and its offsets a slice rounded up to
// offsStep: few sizes, so that what an evicted node frees is taken again
// by the next node loaded. With sizes to the byte, the allocator's free
// slots of one size wait for a node of just that size, and a cache that
// turns over costs half as much again.
const (
	itemsStep = 1024
	offsStep  = 32
)

// newItems returns a copy of b in a buffer of capacity at least c,
// rounded up to itemsStep.
func newItems(b []byte, c int) []byte {
	out := make([]byte, len(b), (max(c, len(b))+itemsStep-1)/itemsStep*itemsStep)
	copy(out, b)
	return out
}

// newOffs returns a copy of o in a slice of its own.
func newOffs(o []uint32) []uint32 {
	out := make([]uint32, len(o), (len(o)+offsStep-1)/offsStep*offsStep)
	copy(out, o)
	return out
}

// memSize is what n costs in memory, as the cache counts it.
func (n *node) memSize() int { return nodeOverhead + cap(n.items) + 4*cap(n.offs) }

func (n *node) leaf() bool { return n.level == 0 }

// size is the encoded size of n in bytes.
func (n *node) size() int { return headerSize + len(n.items) }

// count is the number of items.
func (n *node) count() int { return len(n.offs) }

// end is where item i ends in items.
func (n *node) end(i int) int {
	if i+1 < len(n.offs) {
		return int(n.offs[i+1])
	}
	return len(n.items)
}

// itemSize is the encoded size of item i.
func (n *node) itemSize(i int) int { return n.end(i) - int(n.offs[i]) }

// key is the key of item i.
func (n *node) key(i int) Key { return DecodeKey(n.items[n.offs[i]:]) }

// setKey changes the key of item i; its order among the others stays.
func (n *node) setKey(i int, k Key) { k.Encode(n.items[n.offs[i]:]) }

// val is the value of leaf item i. It is changed in place later: copy it
// to keep it.
func (n *node) val(i int) []byte { return n.items[int(n.offs[i])+leafItemHdr : n.end(i)] }

// kid is the child of internal item i.
func (n *node) kid(i int) NodeID {
	return NodeID(binary.LittleEndian.Uint64(n.items[int(n.offs[i])+KeySize:]))
}

// setKid makes id the child of internal item i.
func (n *node) setKid(i int, id NodeID) {
	binary.LittleEndian.PutUint64(n.items[int(n.offs[i])+KeySize:], uint64(id))
}

// search returns the first index whose key is >= k and whether that key
// equals k. Keys are compared in their encoding, whose byte order is key
// order.
func (n *node) search(k Key) (int, bool) {
	var kb [KeySize]byte
	k.Encode(kb[:])
	lo, hi := 0, len(n.offs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		o := n.offs[m]
		if bytes.Compare(n.items[o:o+KeySize], kb[:]) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(n.offs) {
		o := n.offs[lo]
		return lo, bytes.Equal(n.items[o:o+KeySize], kb[:])
	}
	return lo, false
}

// childIndex returns the index of the child whose key range holds k:
// the last child whose key is <= k, or -1 if k sorts before them all.
func (n *node) childIndex(k Key) int {
	i, found := n.search(k)
	if found {
		return i
	}
	return i - 1
}

// resize makes item i (or a new item at i, when insert) size bytes long
// and returns where it starts; the bytes of the other items keep their
// content and order.
func (n *node) resize(i, size int, insert bool) int {
	start, old := len(n.items), 0
	if i < len(n.offs) {
		start = int(n.offs[i])
	}
	if !insert {
		old = n.itemSize(i)
	}
	delta := size - old
	tail := start + old
	if delta > 0 {
		if len(n.items)+delta > cap(n.items) {
			// Past its block, until it splits.
			n.items = newItems(n.items, max(len(n.items)+delta, 2*cap(n.items)))
		}
		n.items = n.items[:len(n.items)+delta]
		copy(n.items[tail+delta:], n.items[tail:len(n.items)-delta])
	} else if delta < 0 {
		copy(n.items[tail+delta:], n.items[tail:])
		n.items = n.items[:len(n.items)+delta]
	}
	if insert {
		n.offs = slices.Insert(n.offs, i, uint32(start))
	}
	for j := i + 1; j < len(n.offs); j++ {
		n.offs[j] = uint32(int(n.offs[j]) + delta)
	}
	return start
}

// putLeaf writes a leaf item with key k and value v at p.
func (n *node) putLeaf(p int, k Key, v []byte) {
	k.Encode(n.items[p:])
	binary.LittleEndian.PutUint16(n.items[p+KeySize:], uint16(len(v)))
	copy(n.items[p+leafItemHdr:], v)
}

func (n *node) insertLeaf(i int, k Key, v []byte) {
	n.putLeaf(n.resize(i, leafItemHdr+len(v), true), k, v)
}

// setVal replaces the value of leaf item i.
func (n *node) setVal(i int, v []byte) {
	k := n.key(i)
	n.putLeaf(n.resize(i, leafItemHdr+len(v), false), k, v)
}

func (n *node) insertKid(i int, k Key, id NodeID) {
	p := n.resize(i, innerItemSize, true)
	k.Encode(n.items[p:])
	binary.LittleEndian.PutUint64(n.items[p+KeySize:], uint64(id))
}

func (n *node) removeAt(i int) {
	n.resize(i, 0, false)
	n.offs = slices.Delete(n.offs, i, i+1)
}

// splitPoint returns the index at which the items of n are best divided
// into two nodes of similar encoded size; both sides get at least one
// item. n must hold at least two items.
func (n *node) splitPoint() int {
	total := len(n.items)
	best, bestMax := 1, int(^uint(0)>>1)
	for i := 1; i < len(n.offs); i++ {
		left := int(n.offs[i])
		if m := max(left, total-left); m < bestMax {
			best, bestMax = i, m
		}
		if left >= total/2 {
			break // the larger side only grows from here
		}
	}
	return best
}

// splitOff moves the items from index i on into a new node with the same
// level and returns it (without an ID). Both halves end with buffers of
// blockSize bytes.
func (n *node) splitOff(i, blockSize int) *node {
	at := n.offs[i]
	r := &node{level: n.level, items: newItems(n.items[at:], blockSize), offs: newOffs(n.offs[i:])}
	for j := range r.offs {
		r.offs[j] -= at
	}
	if cap(n.items) > blockSize {
		n.items = newItems(n.items[:at], blockSize)
	} else {
		n.items = n.items[:at]
	}
	n.offs = newOffs(n.offs[:i])
	return r
}

// appendFrom moves all items of r to the end of n. Their keys must sort
// after those of n.
func (n *node) appendFrom(r *node) {
	base := uint32(len(n.items))
	n.items = append(n.items, r.items...)
	for _, o := range r.offs {
		n.offs = append(n.offs, base+o)
	}
	r.items, r.offs = nil, nil
}

// encode appends the encoding of n to dst, naming each child through
// remap (used by Flush to write permanent IDs of children that still have
// temporary IDs in memory).
func (n *node) encode(dst []byte, remap func(NodeID) NodeID) []byte {
	var h [headerSize]byte
	binary.LittleEndian.PutUint16(h[0:2], nodeMagic)
	h[2] = n.level
	h[3] = 0 // flags
	binary.LittleEndian.PutUint16(h[4:6], uint16(len(n.offs)))
	dst = append(dst, h[:]...)
	start := len(dst)
	dst = append(dst, n.items...)
	if !n.leaf() {
		for i, o := range n.offs {
			p := start + int(o) + KeySize
			binary.LittleEndian.PutUint64(dst[p:], uint64(remap(n.kid(i))))
		}
	}
	return dst
}

// decodeNode parses the encoding of node id for a tree of blockSize-byte
// nodes. It never panics: every inconsistency is an error wrapping
// ErrCorrupt that names the node. The node keeps no reference to b.
func decodeNode(id NodeID, b []byte, blockSize int) (*node, error) {
	bad := func(format string, args ...any) error {
		return corrupt.Errorf(ErrCorrupt, corrupt.Location{Block: uint64(id)}, "node %d: %s", id, fmt.Sprintf(format, args...))
	}
	if len(b) < headerSize {
		return nil, bad("%d bytes, shorter than the header", len(b))
	}
	if m := binary.LittleEndian.Uint16(b[0:2]); m != nodeMagic {
		return nil, bad("bad magic %#04x", m)
	}
	level := b[2]
	if level >= maxLevel {
		return nil, bad("level %d out of range", level)
	}
	if b[3] != 0 {
		return nil, bad("unknown flags %#02x", b[3])
	}
	count := int(binary.LittleEndian.Uint16(b[4:6]))
	if r := binary.LittleEndian.Uint16(b[6:8]); r != 0 {
		return nil, bad("reserved field %#04x is not zero", r)
	}
	if count == 0 {
		return nil, bad("no items") // empty nodes are never written
	}
	minItem := innerItemSize
	if level == 0 {
		minItem = leafItemHdr
	}
	if headerSize+count*minItem > len(b) || headerSize+count*minItem > blockSize {
		return nil, bad("%d items do not fit in %d bytes", count, min(len(b), blockSize))
	}
	offs := make([]uint32, count, (count+offsStep-1)/offsStep*offsStep)
	maxVal := MaxValueSize(blockSize)
	p := headerSize
	var prev []byte
	for i := range count {
		if p+minItem > len(b) || p+minItem > blockSize {
			return nil, bad("item %d runs past the end", i)
		}
		kb := b[p : p+KeySize]
		if i > 0 && bytes.Compare(prev, kb) >= 0 {
			return nil, bad("key %d %v does not sort after %v", i, DecodeKey(kb), DecodeKey(prev))
		}
		prev = kb
		offs[i] = uint32(p - headerSize)
		p += KeySize
		if level == 0 {
			vl := int(binary.LittleEndian.Uint16(b[p:]))
			p += 2
			if vl > maxVal {
				return nil, bad("value %d is %d bytes, more than the maximum %d", i, vl, maxVal)
			}
			if p+vl > len(b) || p+vl > blockSize {
				return nil, bad("value %d of %d bytes runs past the end", i, vl)
			}
			p += vl
		} else {
			c := NodeID(binary.LittleEndian.Uint64(b[p:]))
			if c == NilNode || c.isTemp() {
				return nil, bad("child %d has invalid id %#x", i, uint64(c))
			}
			p += 8
		}
	}
	for _, x := range b[p:] {
		if x != 0 {
			return nil, bad("nonzero bytes after the last item at offset %d", p)
		}
	}
	// A private copy of the items: the store may reuse b.
	return &node{id: id, level: level, items: newItems(b[headerSize:p], blockSize), offs: offs}, nil
}
