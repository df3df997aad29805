package cache

import (
	"bytes"
	"math/rand"
	"slices"
	"testing"
)

// evictAll drains p, returning the keys in the order it evicts them.
func evictAll(p Policy) []uint64 {
	var out []uint64
	for e := p.Evict(); e != nil; e = p.Evict() {
		out = append(out, e.Key)
	}
	return out
}

// added makes an entry of 10 bytes for each key and adds it to p in
// that order.
func added(p Policy, keys ...uint64) map[uint64]*Entry {
	m := make(map[uint64]*Entry)
	for _, k := range keys {
		m[k] = &Entry{Key: k}
		p.Add(m[k], 10)
	}
	return m
}

func TestLRUOrder(t *testing.T) {
	p := NewLRU()
	e := added(p, 1, 2, 3, 4)
	p.Hit(e[1])
	p.Pin(e[3])
	p.Hit(e[2])
	if got, want := evictAll(p), []uint64{4, 1, 2}; !slices.Equal(got, want) {
		t.Fatalf("evicted %v, want %v", got, want)
	}
	p.Unpin(e[3], 20)
	if got := evictAll(p); !slices.Equal(got, []uint64{3}) || e[3].Weight() != 20 {
		t.Fatalf("after unpin evicted %v, weight %d", got, e[3].Weight())
	}
}

func TestLFUOrder(t *testing.T) {
	p := NewLFU()
	e := added(p, 1, 2, 3, 4)
	p.Hit(e[1])
	p.Hit(e[1])
	p.Hit(e[3])
	p.Hit(e[4])
	p.Pin(e[4])
	p.Hit(e[4]) // counted while pinned
	// 2 once; 3 twice; 1 three times; 4 pinned with three.
	if got, want := evictAll(p), []uint64{2, 3, 1}; !slices.Equal(got, want) {
		t.Fatalf("evicted %v, want %v", got, want)
	}
	// A tie goes to the least recently used.
	p.Unpin(e[4], 10)
	p.Add(e[2], 10)
	p.Hit(e[2])
	p.Hit(e[2])
	if got, want := evictAll(p), []uint64{4, 2}; !slices.Equal(got, want) {
		t.Fatalf("evicted %v, want %v", got, want)
	}
}

func TestS3FIFOOrder(t *testing.T) {
	// Capacity 100: the small queue takes 10 bytes.
	p := NewS3FIFO(100)
	e := added(p, 1, 2, 3)
	e[4] = &Entry{Key: 4}
	p.Hit(e[2])
	// 1, unused, leaves from the small queue for the ghost queue; 2,
	// used, moves on to the main queue; then the small queue is within
	// its share and 3 stays while 2, unused since it moved, leaves.
	if got, want := p.Evict().Key, uint64(1); got != want {
		t.Fatalf("evicted %d, want %d", got, want)
	}
	if got, want := p.Evict().Key, uint64(2); got != want {
		t.Fatalf("evicted %d, want %d", got, want)
	}
	// 1 comes back from the ghost queue into the main queue, 4 into the
	// small one; the small queue is over its share again and 3 goes.
	p.Add(e[1], 10)
	p.Add(e[4], 10)
	p.Hit(e[1])
	if got, want := p.Evict().Key, uint64(3); got != want {
		t.Fatalf("evicted %d, want %d", got, want)
	}
	// Now the small queue (4) is within its share: the main queue's 1
	// has a use left, goes round once, and is evicted on its second pass.
	if got, want := p.Evict().Key, uint64(1); got != want {
		t.Fatalf("evicted %d, want %d", got, want)
	}
	if got, want := evictAll(p), []uint64{4}; !slices.Equal(got, want) {
		t.Fatalf("evicted %v, want %v", got, want)
	}
}

// TestS3FIFOScan: a scan of keys used once does not push out a hot set,
// as it does under LRU.
func TestS3FIFOScan(t *testing.T) {
	hits := map[string]int{}
	for _, name := range Names() {
		p, _ := New(name, 1000)
		c := NewCache(p, 1000)
		for round := 0; round < 5; round++ {
			for k := uint64(0); k < 50; k++ {
				c.Access(k, 10)
			}
		}
		for k := uint64(1000); k < 3000; k++ {
			c.Access(k, 10)
		}
		for k := uint64(0); k < 50; k++ {
			if c.Access(k, 10) {
				hits[name]++
			}
		}
	}
	t.Logf("hot keys still cached after a scan: %v", hits)
	if hits[S3FIFO] != 50 || hits[LRU] != 0 {
		t.Fatalf("hot keys still cached after a scan: %v; want all under s3fifo, none under lru", hits)
	}
}

// TestCacheInvariants runs random operations through a Cache under each
// policy: the bound holds unless only pinned entries are left, pinned
// keys are never evicted, and the byte count is the sum of the weights.
func TestCacheInvariants(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			const capacity = 5000
			r := rand.New(rand.NewSource(1))
			p, err := New(name, capacity)
			if err != nil {
				t.Fatal(err)
			}
			c := NewCache(p, capacity)
			weights := map[uint64]int64{} // what the cache should hold
			pins := map[uint64]bool{}
			c.OnEvict = func(k uint64) {
				if pins[k] {
					t.Fatalf("pinned key %d evicted", k)
				}
				if _, ok := weights[k]; !ok {
					t.Fatalf("key %d evicted but not cached", k)
				}
				delete(weights, k)
			}
			for op := range 200_000 {
				k := uint64(r.Intn(300))
				w := int64(1 + r.Intn(200))
				switch x := r.Intn(100); {
				case x < 70:
					_, cached := weights[k]
					if !cached {
						weights[k] = w // before it may be evicted at once
					}
					if hit := c.Access(k, w); hit != cached {
						t.Fatalf("op %d: Access(%d) hit %v, cached %v", op, k, hit, cached)
					}
				case x < 80:
					if _, ok := weights[k]; ok && len(pins) < 10 {
						c.Pin(k)
						pins[k] = true
					}
				case x < 90:
					if pins[k] {
						delete(pins, k)
						weights[k] = w
						c.Unpin(k, w)
					}
				case x < 95:
					delete(pins, k)
					delete(weights, k)
					c.Remove(k)
				default:
					if pins[k] {
						continue
					}
					weights[k] = w
					c.Set(k, w)
				}
				var sum int64
				for k, w := range weights {
					sum += w
					if !c.Contains(k) {
						t.Fatalf("op %d: key %d lost", op, k)
					}
				}
				if c.Len() != len(weights) || c.Bytes() != sum {
					t.Fatalf("op %d: cache has %d keys, %d bytes; want %d, %d", op, c.Len(), c.Bytes(), len(weights), sum)
				}
				if c.Bytes() > capacity && p.Len() > 0 {
					t.Fatalf("op %d: %d bytes over the bound %d with %d evictable", op, c.Bytes(), capacity, p.Len())
				}
				if p.Len()+len(pins) != c.Len() {
					t.Fatalf("op %d: %d evictable + %d pinned != %d cached", op, p.Len(), len(pins), c.Len())
				}
			}
		})
	}
}

func TestNewUnknown(t *testing.T) {
	if _, err := New("fifo", 10); err == nil || Valid("fifo") {
		t.Fatal("unknown policy accepted")
	}
	for _, n := range Names() {
		p, err := New(n, 10)
		if err != nil || p.Name() != n || !Valid(n) {
			t.Fatalf("New(%q) = %v, %v", n, p, err)
		}
	}
}

func TestTraceRoundTrip(t *testing.T) {
	want := []Event{{Get, 5, 4096}, {Get, 3, 5000}, {Put, 1 << 40, 100}, {Del, 2, 0}, {Get, 2, 1}}
	var buf bytes.Buffer
	w := NewTraceWriter(&buf)
	for _, e := range want {
		w.Record(e.Op, e.Key, e.Weight)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := ReadTrace(&buf)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("read %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", "nonsense", traceMagic + "\x09", traceMagic + "\x01"} {
		if _, err := ReadTrace(bytes.NewBufferString(bad)); err == nil {
			t.Fatalf("trace %q read without error", bad)
		}
	}
	if r := Replay(want, NewLRU(), 1<<20); r != (Result{Hits: 0, Misses: 3}) {
		t.Fatalf("replay: %+v", r)
	}
	if ws := WorkingSet(want); ws != 4096+5000+100+1 {
		t.Fatalf("working set %d", ws)
	}
}
