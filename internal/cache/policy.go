// Package cache holds the eviction policies of txfs's byte-bounded caches:
// LRU, LFU and S3-FIFO, behind one interface (Policy). A policy orders
// the entries of a cache for eviction and nothing more: the cache's owner
// keeps the entries (embedding an Entry in each), counts their bytes
// against its bound, and asks the policy for a victim while it is over.
// Entries may be pinned (a dirty tree node, which must stay until it is
// written): a pinned entry is never a victim, and a policy keeps what it
// knew of the entry for when it is unpinned.
//
// Cache wraps a policy with a map and a byte bound, for replaying traces
// (trace.go) and for owners that need no more than that.
package cache

import (
	"fmt"
	"slices"
	"strings"
)

// Entry is what a policy keeps of one cached item. The owner embeds it in
// the item, so that a policy needs no map of its own; its fields belong
// to the policy the entry was added to.
type Entry struct {
	Key    uint64 // set by the owner before Add; unique in the cache
	weight int64  // bytes, as given to Add or Unpin
	state  uint8  // out, listed or pinned

	prev, next *Entry // LRU list, S3-FIFO queues
	seq        uint64 // LFU: when last used, to break ties
	index      int    // LFU: place in the heap
	freq       uint32 // LFU: uses; S3-FIFO: uses since queued, at most 3
	queue      uint8  // S3-FIFO: small or main
}

const (
	out    uint8 = iota // not in the policy
	listed              // evictable
	pinned              // in the cache, not evictable
)

// Weight is the entry's weight, as last given to Add or Unpin.
func (e *Entry) Weight() int64 { return e.weight }

// Policy orders the entries of a cache for eviction. Its methods are
// called with the owner's lock held; a Policy is not safe for concurrent
// use.
type Policy interface {
	// Name is the policy's name, as New takes it.
	Name() string
	// Add makes e, just brought into the cache, an evictable entry of
	// weight bytes. e must not be in the policy.
	Add(e *Entry, weight int64)
	// Hit records a use of e, an entry of the policy, pinned or not.
	Hit(e *Entry)
	// Pin keeps e from eviction until Unpin. e must be evictable.
	Pin(e *Entry)
	// Unpin makes pinned e evictable again, now weighing weight bytes.
	Unpin(e *Entry, weight int64)
	// Remove takes e, pinned or not, out of the policy: it left the
	// cache other than by Evict.
	Remove(e *Entry)
	// Evict chooses the evictable entry to leave first and takes it out
	// of the policy; nil if no entry is evictable.
	Evict() *Entry
	// Len is the number of evictable entries.
	Len() int
}

// Names of the policies, as New and the node_cache mount option take them.
const (
	LRU     = "lru"
	LFU     = "lfu"
	S3FIFO  = "s3fifo"
	Default = S3FIFO
)

// Names lists the policies New knows.
func Names() []string { return []string{LRU, LFU, S3FIFO} }

// New returns an empty policy by name, for a cache of capacity bytes
// (S3-FIFO sizes its queues by it; LRU and LFU ignore it).
func New(name string, capacity int64) (Policy, error) {
	switch name {
	case LRU:
		return NewLRU(), nil
	case LFU:
		return NewLFU(), nil
	case S3FIFO:
		return NewS3FIFO(capacity), nil
	}
	return nil, fmt.Errorf("cache: unknown policy %q (want %s)", name, strings.Join(Names(), ", "))
}

// Valid reports whether New knows name.
func Valid(name string) bool { return slices.Contains(Names(), name) }

// list is an intrusive doubly linked list of entries, most recent at
// head, with the sum of their weights.
type list struct {
	head, tail *Entry
	n          int
	bytes      int64
}

func (l *list) pushFront(e *Entry) {
	e.prev, e.next = nil, l.head
	if l.head != nil {
		l.head.prev = e
	} else {
		l.tail = e
	}
	l.head = e
	l.n++
	l.bytes += e.weight
}

func (l *list) remove(e *Entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
	l.n--
	l.bytes -= e.weight
}

// mustBe panics when e is not in the state a call needs: a programming
// error of the owner, which would otherwise corrupt the lists silently.
func mustBe(e *Entry, state uint8, call string) {
	if e.state != state {
		panic(fmt.Sprintf("cache: %s of entry %d in state %d", call, e.Key, e.state))
	}
}

// Pinned reports whether e is pinned in its policy.
func (e *Entry) Pinned() bool { return e.state == pinned }

// Evictable reports whether e is in its policy and not pinned.
func (e *Entry) Evictable() bool { return e.state == listed }
