package btree

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/txfs/txfs/internal/cache"
	"github.com/txfs/txfs/internal/corrupt"
)

// Store loads the encoded bytes of a node that was flushed earlier. The
// bytes are already checksum-verified by the caller; the tree still
// validates their structure. The tree keeps no reference to the slice.
type Store interface {
	LoadNode(id NodeID) ([]byte, error)
}

// TreeStats describes the shape of the tree and the state of its cache.
type TreeStats struct {
	Height      int   // levels from root to leaves; 0 for an empty tree
	CachedNodes int   // nodes in memory, clean and dirty
	CachedBytes int64 // what they cost in memory
	DirtyNodes  int   // nodes changed since the last Flush (pinned in memory)
	DirtyBytes  int64 // what they cost in memory
}

// Tree is a B+tree of key/value items whose nodes live in a Store and a
// bounded in-memory cache. All methods are safe for concurrent use: one
// mutex is held for the whole of each call (Ascend releases it while its
// callback runs).
type Tree struct {
	mu         sync.Mutex
	store      Store
	root       NodeID
	blockSize  int
	cacheBytes int64

	nodes map[NodeID]*node // every cached node, clean or dirty
	dirty map[NodeID]*node // the dirty ones, pinned until Flush

	// policy orders the clean nodes for eviction; the dirty ones that
	// were clean before are pinned in it (cachepolicy.go).
	policy     cache.Policy
	cleanBytes int64
	dirtyBytes int64
	// trace, if set, is told of every lookup of a node by permanent ID,
	// every node Flush leaves clean and every node dropped (SetTrace).
	trace func(op cache.Op, id NodeID, weight int64)

	// touched lists dirty nodes whose size may have changed during the
	// current call; settle brings dirtyBytes up to date from them.
	touched []*node

	nextTemp uint64 // counter for temporary IDs

	// pending maps the temporary IDs of new nodes to the permanent IDs a
	// failed Flush already allocated for them, so a retry reuses them
	// instead of leaking them.
	pending map[NodeID]NodeID
	// freed lists permanent IDs of nodes dropped since the last Flush;
	// Flush hands them to free.
	freed []NodeID

	// sharing says which nodes other trees share (share.go); nil: none.
	sharing Sharing

	// hits and misses count the loads the cache answered and those that
	// read the store (metrics); atomic, so that they are read without mu.
	hits, misses atomic.Uint64
}

// NewTree returns a tree whose root is root (NilNode for an empty tree),
// with nodes of blockSize bytes, keeping nodes in memory up to about
// cacheBytes bytes of memory (more while the dirty ones alone take more).
// blockSize must be between 128 bytes and 1 MiB; NewTree panics
// otherwise, as that is a programming error.
func NewTree(store Store, root NodeID, blockSize int, cacheBytes int64) *Tree {
	if blockSize < minBlockSize || blockSize > maxBlockSize {
		panic(fmt.Sprintf("btree: block size %d out of range [%d, %d]", blockSize, minBlockSize, maxBlockSize))
	}
	return &Tree{
		policy:     newPolicy(cache.Default, cacheBytes),
		store:      store,
		root:       root,
		blockSize:  blockSize,
		cacheBytes: cacheBytes,
		nodes:      make(map[NodeID]*node),
		dirty:      make(map[NodeID]*node),
		pending:    make(map[NodeID]NodeID),
	}
}

// --- cache --------------------------------------------------------------

// CacheCounts is how many node loads the cache has answered (hits) and
// how many read the store (misses) since the tree was made. It may be
// called at any time, from any goroutine.
func (t *Tree) CacheCounts() (hits, misses uint64) { return t.hits.Load(), t.misses.Load() }

// load returns node id from the cache or the store. want is the level the
// node must have (from its parent), or -1 for the root.
func (t *Tree) load(id NodeID, want int) (*node, error) {
	n := t.nodes[id]
	if n == nil {
		t.misses.Add(1)
		if id == NilNode || id.isTemp() {
			// A temporary node is dirty and so always cached.
			return nil, fmt.Errorf("%w: node %#x is referenced but does not exist", ErrCorrupt, uint64(id))
		}
		b, err := t.store.LoadNode(id)
		if err != nil {
			return nil, fmt.Errorf("btree: loading node %d: %w", id, err)
		}
		if n, err = decodeNode(id, b, t.blockSize); err != nil {
			return nil, err
		}
		if want >= 0 && int(n.level) != want {
			// Checked before caching so a bad node is never trusted.
			return nil, corrupt.Errorf(ErrCorrupt, corrupt.Location{Block: uint64(id)}, "node %d has level %d, its parent expects %d", id, n.level, want)
		}
		n.acct = n.memSize()
		t.cleanBytes += int64(n.acct)
		t.nodes[id] = n
		t.addClean(n)
		t.traceGet(n)
		return n, nil
	}
	t.hits.Add(1)
	if want >= 0 && int(n.level) != want {
		return nil, corrupt.Errorf(ErrCorrupt, corrupt.Location{Block: uint64(id)}, "node %d has level %d, its parent expects %d", id, n.level, want)
	}
	t.policy.Hit(&n.ce)
	t.traceGet(n)
	return n, nil
}

// child loads child i of internal node p.
func (t *Tree) child(p *node, i int) (*node, error) {
	return t.load(p.kid(i), int(p.level)-1)
}

// markDirty pins n in memory before it is changed.
func (t *Tree) markDirty(n *node) {
	if !n.dirty {
		t.policy.Pin(&n.ce)
		t.cleanBytes -= int64(n.acct)
		t.dirtyBytes += int64(n.acct)
		n.dirty = true
		t.dirty[n.id] = n
	}
	if !n.touched {
		n.touched = true
		t.touched = append(t.touched, n)
	}
}

// newNode gives n a temporary ID and caches it as dirty.
func (t *Tree) newNode(n *node) {
	t.nextTemp++
	n.id = NodeID(tempBit | t.nextTemp)
	n.dirty = true
	n.acct = 0
	t.nodes[n.id] = n
	t.dirty[n.id] = n
	n.touched = true
	t.touched = append(t.touched, n)
}

// drop removes n from the tree for good. Its permanent ID (or the one a
// failed Flush allocated for it) is freed at the next Flush.
func (t *Tree) drop(n *node) {
	if n.dirty {
		t.dirtyBytes -= int64(n.acct)
		delete(t.dirty, n.id)
	} else {
		t.cleanBytes -= int64(n.acct)
	}
	t.removeCached(n)
	n.acct = 0
	if !n.id.isTemp() {
		t.freed = append(t.freed, n.id)
	} else if p, ok := t.pending[n.id]; ok {
		t.freed = append(t.freed, p)
		delete(t.pending, n.id)
	}
}

// settle brings the byte counts up to date with the sizes of the nodes
// changed by the current call.
func (t *Tree) settle() {
	for _, n := range t.touched {
		n.touched = false
		if t.nodes[n.id] != n {
			continue // dropped
		}
		m := n.memSize()
		t.dirtyBytes += int64(m - n.acct)
		n.acct = m
	}
	clear(t.touched)
	t.touched = t.touched[:0]
}

// evict drops the clean nodes the policy chooses while the cache is over
// its bound. Dirty nodes cannot be dropped, so the cache may stay over
// the bound until the next Flush. Mutating calls evict only at their end,
// so that no node they hold a pointer to leaves the cache under them.
func (t *Tree) evict() {
	for t.cleanBytes+t.dirtyBytes > t.cacheBytes {
		e := t.policy.Evict()
		if e == nil {
			return
		}
		n := t.nodes[NodeID(e.Key)]
		t.cleanBytes -= int64(n.acct)
		delete(t.nodes, n.id)
	}
}

// done finishes every call that may have changed or loaded nodes.
func (t *Tree) done() {
	t.settle()
	t.evict()
}

// --- lookups ------------------------------------------------------------

// Get returns a copy of the value of k.
func (t *Tree) Get(k Key) (val []byte, ok bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.done()
	val, ok, err = t.find(k)
	return bytes.Clone(val), ok, err
}

// find returns the value of k as it is in its leaf. Lock held.
func (t *Tree) find(k Key) (val []byte, ok bool, err error) {
	if t.root == NilNode {
		return nil, false, nil
	}
	n, err := t.load(t.root, -1)
	if err != nil {
		return nil, false, err
	}
	for !n.leaf() {
		i := n.childIndex(k)
		if i < 0 {
			return nil, false, nil
		}
		if n, err = t.child(n, i); err != nil {
			return nil, false, err
		}
	}
	i, found := n.search(k)
	if !found {
		return nil, false, nil
	}
	return n.val(i), true, nil
}

// Ascend calls fn for every item with key >= from, in ascending key
// order, until fn returns false.
//
// fn must not modify the tree. (It is called without the tree's lock
// held, one leaf's worth of items at a time, so calling Get from fn works
// and a concurrent change cannot corrupt the scan; the scan may or may not
// see such changes.) val is valid during the call only: fn must copy it to
// keep it, and must not modify it.
func (t *Tree) Ascend(from Key, fn func(k Key, val []byte) bool) error {
	var l leafItems
	for {
		if err := t.leafNear(from, false, &l); err != nil || len(l.keys) == 0 {
			return err
		}
		for i, k := range l.keys {
			// Each key follows the one before (from moves past it). A
			// damaged tree may hold keys below their place: in a leaf
			// read from disk, or in one a merge made in memory. Going on
			// from them would scan the same leaves again, for ever, and
			// callers rely on the order.
			if k.Less(from) {
				return fmt.Errorf("%w: key %v met by a scan at %v", ErrCorrupt, k, from)
			}
			if !fn(k, l.vals[i]) {
				return nil
			}
			var more bool
			if from, more = k.next(); !more {
				return nil
			}
		}
	}
}

// Descend calls fn for every item with key < before, in descending key
// order, until fn returns false. As with Ascend, fn runs without the
// tree's lock, one leaf's worth of items at a time, must not modify the
// tree, and may keep val only by copying it.
func (t *Tree) Descend(before Key, fn func(k Key, val []byte) bool) error {
	var l leafItems
	for {
		if err := t.leafNear(before, true, &l); err != nil || len(l.keys) == 0 {
			return err
		}
		for i := len(l.keys) - 1; i >= 0; i-- {
			if !fn(l.keys[i], l.vals[i]) {
				return nil
			}
		}
		before = l.keys[0]
	}
}

// leafItems is a copy of items of one leaf, for a scan to use without the
// tree's lock.
type leafItems struct {
	keys  []Key
	vals  [][]byte
	arena []byte // the values' bytes
}

// leafNear sets l to a copy of the items of one leaf, in ascending
// order: with down false, those with key >= k of the first leaf that has
// any; with down true, those with key < k of the last leaf that has any.
// No items means there are none left.
func (t *Tree) leafNear(k Key, down bool, l *leafItems) error {
	l.keys, l.vals, l.arena = l.keys[:0], l.vals[:0], l.arena[:0]
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.done()
	if t.root == NilNode {
		return nil
	}
	type step struct {
		n *node
		i int
	}
	var path []step
	n, err := t.load(t.root, -1)
	if err != nil {
		return err
	}
	for !n.leaf() {
		i := max(n.childIndex(k), 0)
		if down {
			// Every key of child i sorts at or after its key and before
			// the key of child i+1, so the keys below k are in the last
			// child whose key sorts below k, and in those to its left.
			if i, _ = n.search(k); i == 0 {
				break // none in this subtree
			}
			i--
		}
		path = append(path, step{n, i})
		if n, err = t.child(n, i); err != nil {
			return err
		}
	}
	// The items of n to return are [lo, hi).
	lo, hi := 0, 0
	if n.leaf() {
		if lo, _ = n.search(k); down {
			lo, hi = 0, lo
		} else {
			hi = n.count()
		}
	}
	// next is the child after (before, going down) the one s took, if any.
	next := func(s step) (int, bool) {
		if down {
			return s.i - 1, s.i > 0
		}
		return s.i + 1, s.i+1 < s.n.count()
	}
	for lo == hi {
		// Nothing here: go up to the nearest ancestor with a next child
		// and down its leftmost path (rightmost, going down).
		for len(path) > 0 {
			if _, ok := next(path[len(path)-1]); ok {
				break
			}
			path = path[:len(path)-1]
		}
		if len(path) == 0 {
			return nil
		}
		top := &path[len(path)-1]
		top.i, _ = next(*top)
		if n, err = t.child(top.n, top.i); err != nil {
			return err
		}
		for !n.leaf() {
			i := 0
			if down {
				i = n.count() - 1
			}
			path = append(path, step{n, i})
			if n, err = t.child(n, i); err != nil {
				return err
			}
		}
		lo, hi = 0, n.count()
	}
	// The values are copied: the node changes in place once the lock is
	// released.
	for i := lo; i < hi; i++ {
		l.arena = append(l.arena, n.val(i)...)
	}
	start := 0
	for i := lo; i < hi; i++ {
		end := start + len(n.val(i))
		l.keys = append(l.keys, n.key(i))
		l.vals = append(l.vals, l.arena[start:end:end])
		start = end
	}
	return nil
}

// --- changes ------------------------------------------------------------

// Put inserts k with a copy of val, or replaces the value of k.
func (t *Tree) Put(k Key, val []byte) error {
	if len(val) > MaxValueSize(t.blockSize) {
		return fmt.Errorf("%w: %d bytes, the maximum is %d", ErrValueTooLarge, len(val), MaxValueSize(t.blockSize))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.done()
	if t.root == NilNode {
		n := &node{level: 0, items: newItems(nil, t.blockSize)}
		n.insertLeaf(0, k, val)
		t.newNode(n)
		t.root = n.id
		return nil
	}
	r, err := t.ownRoot()
	if err != nil {
		return err
	}
	right, err := t.insert(r, k, val)
	if err != nil || right == nil {
		return err
	}
	// The root split: grow the tree by one level.
	if int(r.level)+1 >= maxLevel {
		return fmt.Errorf("%w: tree would grow past %d levels", ErrCorrupt, maxLevel)
	}
	nr := &node{level: r.level + 1, items: newItems(nil, t.blockSize)}
	nr.insertKid(0, r.key(0), r.id)
	nr.insertKid(1, right.key(0), right.id)
	t.newNode(nr)
	t.root = nr.id
	return nil
}

// insert puts (k, v) into the subtree of n, which the tree owns. If n had
// to split, it returns the new right sibling, which the caller links into
// the parent.
//
// The tree is consistent whenever insert fails: it fails only while
// loading a child on the way down, before anything below changed.
func (t *Tree) insert(n *node, k Key, v []byte) (*node, error) {
	if n.leaf() {
		i, found := n.search(k)
		t.markDirty(n)
		if found {
			n.setVal(i, v)
		} else {
			n.insertLeaf(i, k, v)
		}
		return t.splitIfFull(n), nil
	}
	i := n.childIndex(k)
	if i < 0 {
		// k sorts before every key here; lower the first key so it
		// stays <= every key of its subtree.
		t.markDirty(n)
		n.setKey(0, k)
		i = 0
	}
	c, err := t.ownChild(n, i)
	if err != nil {
		return nil, err
	}
	right, err := t.insert(c, k, v)
	if err != nil || right == nil {
		return nil, err
	}
	t.markDirty(n)
	n.insertKid(i+1, right.key(0), right.id)
	return t.splitIfFull(n), nil
}

// splitIfFull splits n in two if its encoding exceeds the block size and
// returns the new right half. MaxValueSize guarantees both halves fit.
func (t *Tree) splitIfFull(n *node) *node {
	if n.size() <= t.blockSize {
		return nil
	}
	r := n.splitOff(n.splitPoint(), t.blockSize)
	t.newNode(r)
	return r
}

// Delete removes k and reports whether it was there.
func (t *Tree) Delete(k Key) (existed bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.done()
	if t.root == NilNode {
		return false, nil
	}
	if t.sharing != nil {
		// Nothing is copied for a key that is not there.
		if _, found, err := t.find(k); err != nil || !found {
			return false, err
		}
	}
	r, err := t.ownRoot()
	if err != nil {
		return false, err
	}
	existed, err = t.delete(r, k)
	if err != nil || !existed {
		return existed, err
	}
	// Shrink the tree: an empty root goes, and a root with one child
	// hands the role to that child.
	for {
		switch {
		case r.count() == 0:
			t.drop(r)
			t.root = NilNode
			return true, nil
		case !r.leaf() && r.count() == 1:
			t.root = r.kid(0)
			t.drop(r)
			if r, err = t.ownRoot(); err != nil {
				return true, err
			}
		default:
			return true, nil
		}
	}
}

// delete removes k from the subtree of n, which the tree owns, and
// reports whether it was there. Underfull children are merged or rebalanced on the way back up;
// n itself is left for its parent (or Delete, for the root) to fix.
func (t *Tree) delete(n *node, k Key) (bool, error) {
	if n.leaf() {
		i, found := n.search(k)
		if !found {
			return false, nil
		}
		t.markDirty(n)
		n.removeAt(i)
		return true, nil
	}
	i := n.childIndex(k)
	if i < 0 {
		return false, nil
	}
	c, err := t.ownChild(n, i)
	if err != nil {
		return false, err
	}
	existed, err := t.delete(c, k)
	if err != nil || !existed {
		return existed, err
	}
	return true, t.fixChild(n, i, c)
}

// fixChild restores the fill of child i of p (which is c) after a
// deletion below it: an empty child is removed, and one under a quarter
// full is merged with a sibling if both fit in one node, or else shares
// the sibling's items evenly. A failure to load the sibling leaves the
// tree consistent, just less full.
func (t *Tree) fixChild(p *node, i int, c *node) error {
	if c.count() == 0 {
		t.markDirty(p)
		p.removeAt(i)
		t.drop(c)
		return nil
	}
	if c.size()-headerSize >= (t.blockSize-headerSize)/4 || p.count() < 2 {
		return nil
	}
	l, r := i-1, i
	if i == 0 {
		l, r = 0, 1
	}
	ln, err := t.ownChild(p, l)
	if err != nil {
		return err
	}
	rn, err := t.ownChild(p, r)
	if err != nil {
		return err
	}
	t.markDirty(p)
	t.markDirty(ln)
	if ln.size()+rn.size()-headerSize <= t.blockSize {
		// Merge. The keys of rn sort after those of ln, and each key
		// still bounds its own child, so concatenation keeps order and
		// ranges intact.
		ln.appendFrom(rn)
		p.removeAt(r)
		t.drop(rn)
		return nil
	}
	// Rebalance: pool the items and split them evenly. Both halves end up
	// more than a quarter full since together they overflow one node.
	t.markDirty(rn)
	ln.appendFrom(rn)
	moved := ln.splitOff(ln.splitPoint(), t.blockSize)
	rn.items, rn.offs = moved.items, moved.offs
	// The first key of rn is a valid separator: it is above every key of
	// ln and at most every key of rn's subtree.
	p.setKey(r, rn.key(0))
	return nil
}

// --- checkpoints --------------------------------------------------------

// Flush writes out every node changed since the last Flush. Dirty nodes
// are visited children before parents (by ascending level). A new node
// first gets its permanent ID from alloc, which its parent's encoding
// then uses; each node is then handed to write with its encoding, padded
// with zeros to exactly the block size, in a buffer that the next node
// reuses: write must copy what it keeps. After all writes, every
// permanent ID dropped since the last Flush is passed to free.
//
// On success no node is dirty, Root returns the permanent root ID and
// clean nodes become evictable. On error nothing is lost: the tree stays
// usable and a later Flush redoes the writes. IDs already allocated are
// remembered and reused, and IDs already freed are not freed again.
//
// The callbacks run with the tree's lock held and must not call its
// methods.
func (t *Tree) Flush(alloc func() (NodeID, error), write func(id NodeID, encoded []byte) error, free func(id NodeID) error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.done()
	t.settle()

	order := make([]*node, 0, len(t.dirty))
	for _, n := range t.dirty {
		order = append(order, n)
	}
	// Children have lower levels than their parents; the ID order only
	// makes the callback sequence deterministic.
	slices.SortFunc(order, func(a, b *node) int {
		if c := cmp.Compare(a.level, b.level); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	remap := func(id NodeID) NodeID {
		if id.isTemp() {
			return t.pending[id]
		}
		return id
	}
	buf := make([]byte, 0, t.blockSize)
	for _, n := range order {
		if n.id.isTemp() && t.pending[n.id] == NilNode {
			id, err := alloc()
			if err != nil {
				return fmt.Errorf("btree: allocating a node: %w", err)
			}
			if id == NilNode || id.isTemp() {
				return fmt.Errorf("btree: allocator returned invalid node id %#x", uint64(id))
			}
			t.pending[n.id] = id
		}
		enc := n.encode(buf[:0], remap)
		if len(enc) > t.blockSize {
			// Cannot happen while MaxValueSize holds; refuse rather than
			// write a node no reader accepts.
			return fmt.Errorf("btree: node %d encodes to %d bytes, more than the block size %d", n.id, len(enc), t.blockSize)
		}
		enc = enc[:t.blockSize]
		clear(enc[n.size():]) // zero padding
		if err := write(remap(n.id), enc); err != nil {
			return fmt.Errorf("btree: writing node %d: %w", remap(n.id), err)
		}
	}
	for len(t.freed) > 0 {
		if err := free(t.freed[0]); err != nil {
			return fmt.Errorf("btree: freeing node %d: %w", t.freed[0], err)
		}
		t.freed = t.freed[1:]
	}
	t.freed = nil

	// Everything is on disk: switch to permanent IDs and make the nodes
	// clean. Nothing below can fail.
	for _, n := range order {
		if n.id.isTemp() {
			delete(t.nodes, n.id)
			n.id = t.pending[n.id]
			t.nodes[n.id] = n
		}
		if !n.leaf() {
			for j := range n.count() {
				n.setKid(j, remap(n.kid(j)))
			}
		}
	}
	t.root = remap(t.root)
	for _, n := range order {
		n.dirty = false
		t.dirtyBytes -= int64(n.acct)
		t.cleanBytes += int64(n.acct)
		t.flushedClean(n)
	}
	clear(t.dirty)
	clear(t.pending)
	return nil
}

// Root returns the ID of the root node: NilNode for an empty tree. Only
// meaningful right after a successful Flush; while nodes are dirty it may
// be a temporary ID.
func (t *Tree) Root() NodeID {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.root
}

// DirtyBytes returns what the nodes changed since the last Flush cost in
// memory, where they stay until it: a hint for when to checkpoint.
// DirtyNodes is the number of nodes the next Flush writes.
func (t *Tree) DirtyNodes() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.dirty)
}

// PendingFreeCount is the number of node IDs the next Flush frees.
func (t *Tree) PendingFreeCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.freed) + len(t.pending)
}

// Height is the number of levels from the root to the leaves (0 for an
// empty tree).
func (t *Tree) Height() (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.done()
	if t.root == NilNode {
		return 0, nil
	}
	r, err := t.load(t.root, -1)
	if err != nil {
		return 0, err
	}
	return int(r.level) + 1, nil
}

func (t *Tree) DirtyBytes() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.settle()
	return t.dirtyBytes
}

// Stats describes the tree and its cache. Height is reported only if the
// root is cached or loads without error (0 otherwise).
func (t *Tree) Stats() TreeStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.done()
	t.settle()
	s := TreeStats{
		CachedNodes: len(t.nodes),
		CachedBytes: t.cleanBytes + t.dirtyBytes,
		DirtyNodes:  len(t.dirty),
		DirtyBytes:  t.dirtyBytes,
	}
	if t.root != NilNode {
		if r, err := t.load(t.root, -1); err == nil {
			s.Height = int(r.level) + 1
		}
	}
	return s
}

// Walk visits every node reachable from the root, parents before
// children, in key order, loading through the cache. It checks the
// structure as it goes: keys strictly ascending within each node, every
// key of a child within the range its parent's keys give it, each
// child's level one below its parent's (hence all leaves at the same
// depth), and no empty node. A violation is reported as an error wrapping
// ErrCorrupt that names the node. fn runs with the tree's lock held and
// must not call its methods; an error from fn stops the walk and is
// returned.
func (t *Tree) Walk(fn func(id NodeID, level int) error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.done()
	if t.root == NilNode {
		return nil
	}
	return t.walk(t.root, -1, nil, nil, fn)
}

// walk checks and visits the subtree of id, whose keys must lie in
// [lo, hi) (nil for unbounded).
func (t *Tree) walk(id NodeID, want int, lo, hi *Key, fn func(NodeID, int) error) error {
	n, err := t.load(id, want)
	if err != nil {
		return err
	}
	// A read-only walk holds no pointers it changes, so it can evict as
	// it goes and stay within the cache bound on a huge tree.
	t.evict()
	if err := fn(id, int(n.level)); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return corrupt.Errorf(ErrCorrupt, corrupt.Location{Block: uint64(id)}, "node %d (level %d): %s", id, n.level, fmt.Sprintf(format, args...))
	}
	if n.count() == 0 {
		return bad("no items")
	}
	keys := make([]Key, n.count())
	for i := range keys {
		k := n.key(i)
		keys[i] = k
		if i > 0 && !keys[i-1].Less(k) {
			return bad("key %d %v does not sort after %v", i, k, keys[i-1])
		}
		if lo != nil && k.Less(*lo) {
			return bad("key %d %v sorts before %v, the lower bound from the parent", i, k, *lo)
		}
		if hi != nil && !k.Less(*hi) {
			return bad("key %d %v is not below %v, the upper bound from the parent", i, k, *hi)
		}
	}
	if n.leaf() {
		return nil
	}
	// Copy what the loop needs: n may be evicted (not changed) meanwhile.
	kids := make([]NodeID, n.count())
	for i := range kids {
		kids[i] = n.kid(i)
	}
	for i, c := range kids {
		chi := hi
		if i+1 < len(keys) {
			chi = &keys[i+1]
		}
		if err := t.walk(c, int(n.level)-1, &keys[i], chi, fn); err != nil {
			return err
		}
	}
	return nil
}
