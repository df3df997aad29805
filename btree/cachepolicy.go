package btree

import (
	"github.com/txfs/txfs/internal/cache"
)

// The node cache's policy (package cache) orders the clean nodes for
// eviction. A node enters it when it is loaded, or when Flush leaves a
// new node clean; it is pinned while dirty, and leaves when evicted,
// dropped or forgotten. Nodes with temporary IDs are never in it.

// newPolicy returns an empty policy by name; the name has been checked.
func newPolicy(name string, cacheBytes int64) cache.Policy {
	p, err := cache.New(name, cacheBytes)
	if err != nil {
		panic(err)
	}
	return p
}

// addClean puts n, just cached clean, in the policy.
func (t *Tree) addClean(n *node) {
	n.ce.Key = uint64(n.id)
	t.policy.Add(&n.ce, int64(n.acct))
}

// flushedClean makes n, just written by Flush and now clean under its
// permanent ID, evictable: unpinned if it was clean before, added if it
// is new.
func (t *Tree) flushedClean(n *node) {
	if n.ce.Pinned() {
		t.policy.Unpin(&n.ce, int64(n.acct))
	} else {
		t.addClean(n)
	}
	if t.trace != nil {
		t.trace(cache.Put, n.id, int64(n.acct))
	}
}

// removeCached takes n out of the cache for good, clean or dirty; the
// caller has taken its bytes off.
func (t *Tree) removeCached(n *node) {
	t.policy.Remove(&n.ce)
	delete(t.nodes, n.id)
	if t.trace != nil && !n.id.isTemp() {
		t.trace(cache.Del, n.id, 0)
	}
}

// forgetAll empties the cache. Nothing is dirty.
func (t *Tree) forgetAll() {
	for _, n := range t.nodes {
		t.removeCached(n)
	}
	t.cleanBytes = 0
}

// traceGet records a lookup of n.
func (t *Tree) traceGet(n *node) {
	if t.trace != nil && !n.id.isTemp() {
		t.trace(cache.Get, n.id, int64(n.acct))
	}
}

// CachePolicy is the name of the node cache's policy.
func (t *Tree) CachePolicy() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.policy.Name()
}

// SetCachePolicy makes the node cache order its clean nodes by the named
// policy (cache.Names), from now on. The nodes cached stay cached: they
// enter the new policy in the order the old one would have evicted them,
// so that the first to go is still the old policy's choice, and the dirty
// ones stay pinned. What the old policy knew beyond that order is lost.
func (t *Tree) SetCachePolicy(name string) error {
	p, err := cache.New(name, t.cacheBytes)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.done()
	for e := t.policy.Evict(); e != nil; e = t.policy.Evict() {
		p.Add(e, e.Weight())
	}
	for _, n := range t.nodes {
		if n.ce.Pinned() {
			t.policy.Remove(&n.ce)
			p.Add(&n.ce, int64(n.acct))
			p.Pin(&n.ce)
		}
	}
	t.policy = p
	return nil
}

// SetTrace has fn told, with the tree's lock held, of every lookup of a
// node by permanent ID (cache.Get, hit or miss, with what the node costs
// in memory), every node a Flush leaves clean (cache.Put) and every node
// that leaves the cache other than by eviction (cache.Del): what a replay
// needs to run the cache again under another policy. nil stops it. fn
// must not call the tree's methods.
func (t *Tree) SetTrace(fn func(op cache.Op, id NodeID, weight int64)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.trace = fn
}
