package segment

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"github.com/txfs/txfs/internal/cache"
	"github.com/txfs/txfs/internal/corrupt"
)

// Tables hold fixed-size entries (the DAT, the segment usage table) in
// blocks of exactly BlockSize bytes, stored raw (never compressed, so their
// size is known before they are written). A table is a radix tree: leaves
// at level 0 hold entries; an interior node holds BlockSize/16 pointers
// (BlockPtr: 8-byte address, 8-byte xxhash64 of the block; address 0 means
// "never written: all zero"). A table of depth d has d interior levels; with
// depth 0 the root pointer names leaf 0 itself. The checkpoint record holds
// each table's root pointer and depth. Part of the on-disk format.
const (
	TableDAT = 1
	TableSUT = 2

	BlockPtrSize = 16
)

// BlockPtr points at a raw table block and carries its checksum.
type BlockPtr struct {
	Addr uint64
	Sum  uint64
}

// PutBlockPtr encodes p into b[0:16].
func PutBlockPtr(b []byte, p BlockPtr) {
	binary.LittleEndian.PutUint64(b, p.Addr)
	binary.LittleEndian.PutUint64(b[8:], p.Sum)
}

// GetBlockPtr decodes b[0:16].
func GetBlockPtr(b []byte) BlockPtr {
	return BlockPtr{Addr: binary.LittleEndian.Uint64(b), Sum: binary.LittleEndian.Uint64(b[8:])}
}

// BlockReader reads a raw table block of exactly len(buf) bytes at addr.
type BlockReader func(addr uint64, buf []byte) error

// TablePut writes a table block and returns where it went. old is where the
// block was before (zero if never written), so the caller can account for
// the space. raw is reused after the call: put copies what it keeps.
type TablePut func(level int, index uint64, old BlockPtr, raw []byte) (BlockPtr, error)

// tableBlock is what leaves and interior nodes share in the cache.
type tableBlock struct {
	level int // 0 for a leaf
	index uint64
	dirty bool
	ce    cache.Entry // in the policy while clean, pinned while dirty after
}

type tableLeaf struct {
	tableBlock
	data []byte
}

type tableNode struct {
	tableBlock
	ptrs []BlockPtr
}

// blockOverhead is what a cached table block costs in memory beside its
// BlockSize bytes: its struct and map entry.
const blockOverhead = 160

// Table is one table in memory. Clean blocks, leaves and interior nodes
// alike, are cached in an LRU (a policy of package internal/cache)
// bounded in bytes; dirty ones are kept until Flush. Not safe for
// concurrent use.
type Table struct {
	id         uint8
	bs         int
	esize      int
	perLeaf    uint64
	fanout     uint64
	depth      int
	rootPtr    BlockPtr
	read       BlockReader
	nodes      []map[uint64]*tableNode // nodes[l-1] is interior level l
	leaves     map[uint64]*tableLeaf
	policy     cache.Policy // orders the clean blocks for eviction
	maxClean   int          // clean blocks kept
	dirty      int          // dirty leaves
	dirtyNodes int          // dirty interior nodes
	flushBuf   []byte       // one block, for Flush to hand to put
	// last is the leaf looked up last: runs of lookups (a write's new
	// blocks have neighbouring DAT entries) find it without the map.
	last *tableLeaf

	// hits and misses count the block lookups the cache answered and
	// those that read the device (metrics); atomic, so that they are read
	// without the owner's lock.
	hits, misses atomic.Uint64
}

// CacheCounts is how many block lookups the cache has answered (hits) and
// how many read the device (misses). It may be called from any goroutine.
func (t *Table) CacheCounts() (hits, misses uint64) { return t.hits.Load(), t.misses.Load() }

// DirtyLeaves is the number of leaves waiting for Flush.
func (t *Table) DirtyLeaves() int { return t.dirty }

// BlockMemory is what one cached block costs in memory.
func (t *Table) BlockMemory() int64 { return int64(t.bs) + blockOverhead }

// DirtyMemory is what the blocks waiting for Flush cost in memory.
func (t *Table) DirtyMemory() int64 { return int64(t.dirty+t.dirtyNodes) * t.BlockMemory() }

// CleanMemory is what the clean cached blocks cost in memory: at most the
// bound given to NewTable, or 8 blocks if that is less.
func (t *Table) CleanMemory() int64 { return int64(t.policy.Len()) * t.BlockMemory() }

// NewTable opens a table of entrySize-byte entries from its root pointer,
// keeping up to cacheBytes of clean blocks in memory (at least 8 blocks).
func NewTable(id uint8, blockSize, entrySize int, root BlockPtr, depth int, read BlockReader, cacheBytes int64) *Table {
	t := &Table{id: id, bs: blockSize, esize: entrySize, perLeaf: uint64(blockSize / entrySize),
		fanout: uint64(blockSize / BlockPtrSize), depth: depth, rootPtr: root, read: read,
		leaves: map[uint64]*tableLeaf{}, policy: cache.NewLRU()}
	t.maxClean = int(max(8, min(cacheBytes/t.BlockMemory(), 1<<40)))
	for i := 0; i < depth; i++ {
		t.nodes = append(t.nodes, map[uint64]*tableNode{})
	}
	return t
}

// markDirty pins b in the policy: it stays until Flush.
func (t *Table) markDirty(b *tableBlock) {
	if b.dirty {
		return
	}
	b.dirty = true
	if b.level == 0 {
		t.dirty++
	} else {
		t.dirtyNodes++
	}
	if b.ce.Evictable() {
		t.policy.Pin(&b.ce)
	}
}

// markClean makes node b, just written, evictable.
func (t *Table) markClean(b *tableBlock) {
	b.dirty = false
	t.dirtyNodes--
	t.cached(b)
}

// cached makes clean block b evictable, as used just now: unpinned if it
// was clean before, added if it is new.
func (t *Table) cached(b *tableBlock) {
	if b.ce.Pinned() {
		t.policy.Unpin(&b.ce, t.BlockMemory())
		return
	}
	b.ce.Key = uint64(b.level)<<56 | b.index // indexes stay below 2^56: capacity is at most 2^62 entries
	t.policy.Add(&b.ce, t.BlockMemory())
}

// used records a use of a cached block.
func (t *Table) used(b *tableBlock) { t.policy.Hit(&b.ce) }

// FlushBound is the most blocks Flush would write if extra more leaves
// became dirty and the table then held entries entries: the dirty leaves,
// the interior nodes above them (at most as many as exist on each level),
// and the interior nodes already dirty.
func (t *Table) FlushBound(extra int, entries uint64) int {
	return t.BlocksFor(t.dirty+extra, entries) + t.dirtyNodes
}

// BlocksFor is the most blocks writing n leaves of a table of entries
// entries takes: the leaves and the interior nodes above them.
func (t *Table) BlocksFor(n int, entries uint64) int {
	width := max(1, (entries+t.perLeaf-1)/t.perLeaf) // leaves
	k := min(uint64(n), width)
	total := k
	for level := 1; level <= t.depth || width > 1; level++ {
		width = (width + t.fanout - 1) / t.fanout
		k = min(k, width)
		total += k
	}
	return int(total)
}

// Leaves is the number of leaves a table of entries entries has.
func (t *Table) Leaves(entries uint64) int { return int(max(1, (entries+t.perLeaf-1)/t.perLeaf)) }

// Root returns the root pointer and depth, valid after Flush.
func (t *Table) Root() (BlockPtr, int) { return t.rootPtr, t.depth }

// PerLeaf is the number of entries in one leaf.
func (t *Table) PerLeaf() uint64 { return t.perLeaf }

func (t *Table) capacity(depth int) uint64 {
	c := t.perLeaf
	for i := 0; i < depth; i++ {
		if c > 1<<62/t.fanout {
			return 1 << 62
		}
		c *= t.fanout
	}
	return c
}

// Grow makes room for entries [0, n).
func (t *Table) Grow(n uint64) {
	for t.capacity(t.depth) < n {
		// The old root becomes child 0 of a new root one level up.
		t.depth++
		t.nodes = append(t.nodes, map[uint64]*tableNode{})
		root := &tableNode{tableBlock: tableBlock{level: t.depth, dirty: true}, ptrs: make([]BlockPtr, t.fanout)}
		t.dirtyNodes++
		root.ptrs[0] = t.rootPtr
		t.nodes[t.depth-1][0] = root
		t.rootPtr = BlockPtr{}
	}
}

func (t *Table) errorf(format string, a ...any) error {
	return fmt.Errorf("%w: table %d: %s", ErrCorrupt, t.id, fmt.Sprintf(format, a...))
}

// ptrOf returns the pointer to the block (level, index).
func (t *Table) ptrOf(level int, index uint64) (BlockPtr, error) {
	if level == t.depth {
		if index != 0 {
			return BlockPtr{}, nil
		}
		return t.rootPtr, nil
	}
	parent, err := t.node(level+1, index/t.fanout)
	if err != nil {
		return BlockPtr{}, err
	}
	return parent.ptrs[index%t.fanout], nil
}

func (t *Table) readBlock(p BlockPtr, what string) ([]byte, error) {
	buf := make([]byte, t.bs)
	if p.Addr == 0 {
		return buf, nil
	}
	if err := t.read(p.Addr, buf); err != nil {
		return nil, fmt.Errorf("table %d %s at %d: %w", t.id, what, p.Addr, err)
	}
	if got := Checksum(buf); got != p.Sum {
		return nil, corrupt.Errorf(ErrChecksum, corrupt.Location{Addr: p.Addr}, "table %d %s: stored %x, computed %x", t.id, what, p.Sum, got)
	}
	return buf, nil
}

// node returns interior node (level >= 1, index), loading it.
func (t *Table) node(level int, index uint64) (*tableNode, error) {
	if level < 1 || level > t.depth {
		return nil, t.errorf("no level %d", level)
	}
	if n := t.nodes[level-1][index]; n != nil {
		t.hits.Add(1)
		t.used(&n.tableBlock)
		return n, nil
	}
	t.misses.Add(1)
	p, err := t.ptrOf(level, index)
	if err != nil {
		return nil, err
	}
	buf, err := t.readBlock(p, fmt.Sprintf("node %d/%d", level, index))
	if err != nil {
		return nil, err
	}
	n := &tableNode{tableBlock: tableBlock{level: level, index: index}, ptrs: make([]BlockPtr, t.fanout)}
	for i := range n.ptrs {
		n.ptrs[i] = GetBlockPtr(buf[i*BlockPtrSize:])
	}
	t.nodes[level-1][index] = n
	t.cached(&n.tableBlock)
	return n, nil
}

func (t *Table) leaf(index uint64) (*tableLeaf, error) {
	if l := t.last; l != nil && l.index == index {
		t.hits.Add(1)
		t.used(&l.tableBlock)
		return l, nil
	}
	if l := t.leaves[index]; l != nil {
		t.hits.Add(1)
		t.used(&l.tableBlock)
		t.last = l
		return l, nil
	}
	t.misses.Add(1)
	p, err := t.ptrOf(0, index)
	if err != nil {
		return nil, err
	}
	buf, err := t.readBlock(p, fmt.Sprintf("leaf %d", index))
	if err != nil {
		return nil, err
	}
	l := &tableLeaf{tableBlock: tableBlock{index: index}, data: buf}
	t.cached(&l.tableBlock)
	t.leaves[index] = l
	t.evict()
	if t.leaves[index] == l { // kept: a policy may drop what it just took
		t.last = l
	}
	return l, nil
}

// evict drops the least recently used clean blocks over the bound. A
// clean interior node can go while blocks below it stay: it is read again
// when one of them is written or its pointers are needed. Callers hold no
// pointer to a clean block across it.
func (t *Table) evict() {
	for t.policy.Len() > t.maxClean {
		e := t.policy.Evict()
		level, index := int(e.Key>>56), e.Key&(1<<56-1)
		if level == 0 {
			if t.last != nil && t.last == t.leaves[index] {
				t.last = nil
			}
			delete(t.leaves, index)
		} else {
			delete(t.nodes[level-1], index)
		}
	}
}

// Stored reports whether the leaf holding entry i is in memory or was
// written; the entries of a leaf that never was read as zeros.
func (t *Table) Stored(i uint64) (bool, error) {
	if i >= t.capacity(t.depth) {
		return false, nil
	}
	if t.leaves[i/t.perLeaf] != nil {
		return true, nil
	}
	p, err := t.ptrOf(0, i/t.perLeaf)
	return p.Addr != 0, err
}

// Get copies entry i into dst (len entrySize).
func (t *Table) Get(i uint64, dst []byte) error {
	if i >= t.capacity(t.depth) {
		clear(dst)
		return nil
	}
	l, err := t.leaf(i / t.perLeaf)
	if err != nil {
		return err
	}
	o := int(i%t.perLeaf) * t.esize
	copy(dst, l.data[o:o+t.esize])
	return nil
}

// Set stores entry i, growing the table when needed.
func (t *Table) Set(i uint64, e []byte) error {
	t.Grow(i + 1)
	l, err := t.leaf(i / t.perLeaf)
	if err != nil {
		return err
	}
	t.markDirty(&l.tableBlock)
	o := int(i%t.perLeaf) * t.esize
	copy(l.data[o:o+t.esize], e)
	return nil
}

// MarkDirty makes the next Flush write block (level, index) again, at a
// new place, although no entry under it changed: to move it out of a
// segment.
func (t *Table) MarkDirty(level int, index uint64) error {
	if level > 0 {
		n, err := t.node(level, index)
		if err != nil {
			return err
		}
		t.markDirty(&n.tableBlock)
		return nil
	}
	l, err := t.leaf(index)
	if err != nil {
		return err
	}
	t.markDirty(&l.tableBlock)
	return nil
}

// Dirty reports whether anything awaits Flush.
func (t *Table) Dirty() bool { return t.dirty+t.dirtyNodes > 0 }

// Flush writes every dirty block bottom-up through put and updates the root.
func (t *Table) Flush(put TablePut) error {
	if t.flushBuf == nil {
		t.flushBuf = make([]byte, t.bs)
	}
	buf := t.flushBuf
	for idx, l := range t.leaves {
		if !l.dirty {
			continue
		}
		// Clean before put: a change put itself causes (the log moving on
		// touches the usage table) marks the leaf dirty again for the next
		// flush instead of being lost. It goes on the LRU list only once
		// its parent points at the copy written: evicted before, it would
		// be read again as it was.
		l.dirty = false
		t.dirty--
		// A copy: put may change the leaf (above).
		copy(buf, l.data)
		if err := t.flushBlock(0, idx, buf, put); err != nil {
			t.markDirty(&l.tableBlock)
			return err
		}
		if !l.dirty {
			t.cached(&l.tableBlock)
		}
	}
	for level := 1; level <= t.depth; level++ {
		for idx, n := range t.nodes[level-1] {
			if !n.dirty {
				continue
			}
			for i, p := range n.ptrs {
				PutBlockPtr(buf[i*BlockPtrSize:], p)
			}
			if err := t.flushBlock(level, idx, buf, put); err != nil {
				return err
			}
			t.markClean(&n.tableBlock)
		}
	}
	t.evict()
	return nil
}

func (t *Table) flushBlock(level int, idx uint64, data []byte, put TablePut) error {
	old, err := t.ptrOf(level, idx)
	if err != nil {
		return err
	}
	p, err := put(level, idx, old, data)
	if err != nil {
		return err
	}
	if level == t.depth {
		t.rootPtr = p
		return nil
	}
	parent, err := t.node(level+1, idx/t.fanout)
	if err != nil {
		return err
	}
	parent.ptrs[idx%t.fanout] = p
	t.markDirty(&parent.tableBlock)
	return nil
}

// Walk calls fn for every written block of the table (interior nodes and
// leaves), loading interior nodes as needed. For checkers and for knowing
// which segments hold the table.
func (t *Table) Walk(fn func(level int, index uint64, p BlockPtr) error) error {
	defer t.evict()
	return t.walk(t.depth, 0, fn)
}

func (t *Table) walk(level int, index uint64, fn func(int, uint64, BlockPtr) error) error {
	p, err := t.ptrOf(level, index)
	if err != nil {
		return err
	}
	if p.Addr != 0 {
		if err := fn(level, index, p); err != nil {
			return err
		}
	}
	if level == 0 {
		return nil
	}
	// An interior node made since the last flush (the table grew) has no
	// address yet but children that do.
	n := t.nodes[level-1][index]
	if n == nil {
		if p.Addr == 0 {
			return nil
		}
		if n, err = t.node(level, index); err != nil {
			return err
		}
	}
	for i, c := range n.ptrs {
		child := index*t.fanout + uint64(i)
		if c.Addr != 0 || (level >= 2 && t.nodes[level-2][child] != nil) {
			if err := t.walk(level-1, child, fn); err != nil {
				return err
			}
		}
	}
	return nil
}
