package cache

// Cache is a byte-bounded set of keys ordered by a Policy: what replaying
// a trace needs, and a cache for owners that keep their values elsewhere.
// Pinned entries count against the bound but are never evicted, so a
// cache whose pinned entries alone exceed the bound stays over it. Not
// safe for concurrent use.
type Cache struct {
	policy   Policy
	capacity int64
	entries  map[uint64]*Entry
	bytes    int64 // all entries, pinned or not
	// OnEvict, if set, is called with each key the cache evicts.
	OnEvict func(key uint64)
}

// NewCache returns an empty cache of capacity bytes ordered by p.
func NewCache(p Policy, capacity int64) *Cache {
	return &Cache{policy: p, capacity: capacity, entries: make(map[uint64]*Entry)}
}

// Access uses key, of weight bytes, and reports whether it was cached. A
// key that was not is added, and the cache evicts down to its bound.
func (c *Cache) Access(key uint64, weight int64) (hit bool) {
	if e := c.entries[key]; e != nil {
		c.policy.Hit(e)
		return true
	}
	c.Set(key, weight)
	return false
}

// Set adds key with weight bytes, or changes the weight of a cached key
// (a change is a use), and evicts down to the bound.
func (c *Cache) Set(key uint64, weight int64) {
	e := c.entries[key]
	switch {
	case e == nil:
		e = &Entry{Key: key}
		c.entries[key] = e
		c.policy.Add(e, weight)
		c.bytes += weight
	case e.state == pinned:
		c.bytes += weight - e.weight
		e.weight = weight
	default:
		c.bytes += weight - e.weight
		c.policy.Hit(e)
		c.policy.Pin(e)
		c.policy.Unpin(e, weight)
	}
	c.evict()
}

// Pin keeps key, which must be cached, from eviction until Unpin. It
// reports whether the key was cached.
func (c *Cache) Pin(key uint64) bool {
	e := c.entries[key]
	if e == nil {
		return false
	}
	if e.state == listed {
		c.policy.Pin(e)
	}
	return true
}

// Unpin makes pinned key evictable again, now of weight bytes.
func (c *Cache) Unpin(key uint64, weight int64) {
	if e := c.entries[key]; e != nil && e.state == pinned {
		old := e.weight
		c.policy.Unpin(e, weight)
		c.bytes += weight - old
		c.evict()
	}
}

// Remove drops key from the cache, pinned or not.
func (c *Cache) Remove(key uint64) {
	if e := c.entries[key]; e != nil {
		c.policy.Remove(e)
		c.bytes -= e.weight
		delete(c.entries, key)
	}
}

// Contains reports whether key is cached.
func (c *Cache) Contains(key uint64) bool { return c.entries[key] != nil }

// Bytes is the weight of the cached entries, pinned or not.
func (c *Cache) Bytes() int64 { return c.bytes }

// Len is the number of cached entries.
func (c *Cache) Len() int { return len(c.entries) }

// evict drops entries the policy chooses while the cache is over its
// bound and any is evictable.
func (c *Cache) evict() {
	for c.bytes > c.capacity {
		e := c.policy.Evict()
		if e == nil {
			return
		}
		c.bytes -= e.weight
		delete(c.entries, e.Key)
		if c.OnEvict != nil {
			c.OnEvict(e.Key)
		}
	}
}
