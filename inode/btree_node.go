package inode

import (
	"encoding/binary"
	"errors"
	"fmt"
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
var ErrCorrupt = errors.New("inode: corrupt tree node")

// ErrValueTooLarge is returned by Put for values longer than MaxValueSize.
var ErrValueTooLarge = errors.New("inode: value too large")

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

// node is the in-memory form of a tree node. Leaves use vals, internal
// nodes use kids; keys[i] belongs to vals[i] or kids[i]. Children are
// referred to by ID, never by pointer, so that a clean child can be
// evicted from the cache while its parent stays.
//
// Value slices are never written to after they are stored in a node (Put
// stores a fresh copy; replacing a value swaps the slice), which is what
// lets Ascend hand them out without copying.
type node struct {
	id    NodeID
	level uint8
	keys  []Key
	vals  [][]byte
	kids  []NodeID
	size  int // encoded size in bytes, kept up to date by the node methods

	// Cache bookkeeping, owned by Tree.
	dirty      bool
	acct       int  // bytes this node adds to cleanBytes or dirtyBytes
	touched    bool // on Tree.touched, waiting for its acct to be settled
	prev, next *node
}

func (n *node) leaf() bool { return n.level == 0 }

// itemSize is the encoded size of item i.
func (n *node) itemSize(i int) int {
	if n.leaf() {
		return leafItemHdr + len(n.vals[i])
	}
	return innerItemSize
}

// computeSize recomputes size from scratch after bulk changes.
func (n *node) computeSize() {
	s := headerSize
	for i := range n.keys {
		s += n.itemSize(i)
	}
	n.size = s
}

// search returns the first index whose key is >= k and whether that key
// equals k.
func (n *node) search(k Key) (int, bool) {
	lo, hi := 0, len(n.keys)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if n.keys[m].Less(k) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(n.keys) && n.keys[lo] == k
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

func (n *node) insertLeaf(i int, k Key, v []byte) {
	n.keys = insertAt(n.keys, i, k)
	n.vals = insertAt(n.vals, i, v)
	n.size += leafItemHdr + len(v)
}

func (n *node) insertKid(i int, k Key, id NodeID) {
	n.keys = insertAt(n.keys, i, k)
	n.kids = insertAt(n.kids, i, id)
	n.size += innerItemSize
}

func (n *node) removeAt(i int) {
	n.size -= n.itemSize(i)
	n.keys = removeAt(n.keys, i)
	if n.leaf() {
		n.vals = removeAt(n.vals, i)
	} else {
		n.kids = removeAt(n.kids, i)
	}
}

func insertAt[T any](s []T, i int, v T) []T {
	var zero T
	s = append(s, zero)
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}

func removeAt[T any](s []T, i int) []T {
	copy(s[i:], s[i+1:])
	var zero T
	s[len(s)-1] = zero // drop the reference for the GC
	return s[:len(s)-1]
}

// splitPoint returns the index at which the items of n are best divided
// into two nodes of similar encoded size; both sides get at least one
// item. n must hold at least two items.
func (n *node) splitPoint() int {
	total := n.size - headerSize
	best, bestMax := 1, int(^uint(0)>>1)
	left := 0
	for i := 1; i < len(n.keys); i++ {
		left += n.itemSize(i - 1)
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
// level and returns it (without an ID).
func (n *node) splitOff(i int) *node {
	r := &node{level: n.level}
	r.keys = append([]Key(nil), n.keys[i:]...)
	clear(n.keys[i:])
	n.keys = n.keys[:i]
	if n.leaf() {
		r.vals = append([][]byte(nil), n.vals[i:]...)
		clear(n.vals[i:])
		n.vals = n.vals[:i]
	} else {
		r.kids = append([]NodeID(nil), n.kids[i:]...)
		n.kids = n.kids[:i]
	}
	n.computeSize()
	r.computeSize()
	return r
}

// appendFrom moves all items of r to the end of n. Their keys must sort
// after those of n.
func (n *node) appendFrom(r *node) {
	n.keys = append(n.keys, r.keys...)
	if n.leaf() {
		n.vals = append(n.vals, r.vals...)
	} else {
		n.kids = append(n.kids, r.kids...)
	}
	n.size += r.size - headerSize
	r.keys, r.vals, r.kids, r.size = nil, nil, nil, headerSize
}

// encode appends the encoding of n to dst, naming each child through
// remap (used by Flush to write permanent IDs of children that still have
// temporary IDs in memory).
func (n *node) encode(dst []byte, remap func(NodeID) NodeID) []byte {
	var h [headerSize]byte
	binary.LittleEndian.PutUint16(h[0:2], nodeMagic)
	h[2] = n.level
	h[3] = 0 // flags
	binary.LittleEndian.PutUint16(h[4:6], uint16(len(n.keys)))
	dst = append(dst, h[:]...)
	var kb [KeySize]byte
	for i, k := range n.keys {
		k.Encode(kb[:])
		dst = append(dst, kb[:]...)
		if n.leaf() {
			dst = binary.LittleEndian.AppendUint16(dst, uint16(len(n.vals[i])))
			dst = append(dst, n.vals[i]...)
		} else {
			dst = binary.LittleEndian.AppendUint64(dst, uint64(remap(n.kids[i])))
		}
	}
	return dst
}

// decodeNode parses the encoding of node id for a tree of blockSize-byte
// nodes. It never panics: every inconsistency is an error wrapping
// ErrCorrupt that names the node. The node keeps no reference to b.
func decodeNode(id NodeID, b []byte, blockSize int) (*node, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: node %d: %s", ErrCorrupt, id, fmt.Sprintf(format, args...))
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
	// One private copy backs all values, so the store may reuse b and the
	// values stay immutable.
	own := append([]byte(nil), b...)
	n := &node{id: id, level: level, keys: make([]Key, count)}
	if level == 0 {
		n.vals = make([][]byte, count)
	} else {
		n.kids = make([]NodeID, count)
	}
	maxVal := MaxValueSize(blockSize)
	p := headerSize
	for i := range count {
		if p+minItem > len(own) || p+minItem > blockSize {
			return nil, bad("item %d runs past the end", i)
		}
		k := DecodeKey(own[p:])
		if i > 0 && !n.keys[i-1].Less(k) {
			return nil, bad("key %d %v does not sort after %v", i, k, n.keys[i-1])
		}
		n.keys[i] = k
		p += KeySize
		if level == 0 {
			vl := int(binary.LittleEndian.Uint16(own[p:]))
			p += 2
			if vl > maxVal {
				return nil, bad("value %d is %d bytes, more than the maximum %d", i, vl, maxVal)
			}
			if p+vl > len(own) || p+vl > blockSize {
				return nil, bad("value %d of %d bytes runs past the end", i, vl)
			}
			n.vals[i] = own[p : p+vl : p+vl]
			p += vl
		} else {
			c := NodeID(binary.LittleEndian.Uint64(own[p:]))
			if c == NilNode || c.isTemp() {
				return nil, bad("child %d has invalid id %#x", i, uint64(c))
			}
			n.kids[i] = c
			p += 8
		}
	}
	for _, x := range own[p:] {
		if x != 0 {
			return nil, bad("nonzero bytes after the last item at offset %d", p)
		}
	}
	n.size = p
	return n, nil
}
