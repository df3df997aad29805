package btree

import (
	"math/rand"
	"sync"
	"testing"

	"github.com/txfs/txfs/internal/cache"
)

// TestSetCachePolicyConcurrent switches the policy and the trace while
// other goroutines use the tree (run with -race): the cache stays
// consistent and within its bound.
func TestSetCachePolicyConcurrent(t *testing.T) {
	s := newMemStore(512)
	tr := NewTree(s, NilNode, 512, 1<<14)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() {
		r := rand.New(rand.NewSource(1))
		names := cache.Names()
		w := cache.NewTraceWriter(discard{})
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := tr.SetCachePolicy(names[r.Intn(len(names))]); err != nil {
				t.Error(err)
				return
			}
			if r.Intn(2) == 0 {
				tr.SetTrace(func(op cache.Op, id NodeID, weight int64) { w.Record(op, uint64(id), weight) })
			} else {
				tr.SetTrace(nil)
			}
			if err := checkCache(tr); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3000 {
				k := Key{Ino: uint64(g), Off: uint64(i % 700)}
				if err := tr.Put(k, []byte{byte(i)}); err != nil {
					t.Error(err)
					return
				}
				tr.Get(Key{Ino: uint64(g), Off: uint64(i * 7 % 700)})
				if i%300 == 0 {
					if err := s.flush(tr); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := s.flush(tr); err != nil {
		t.Fatal(err)
	}
	checkFlushed(t, tr, s)
	if err := checkCache(tr); err != nil {
		t.Fatal(err)
	}
	if got, want := len(collect(t, tr, Key{}, 0)), 3*700; got != want {
		t.Fatalf("%d items, want %d", got, want)
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// TestTrace: the trace has a Get for every lookup the cache counts, a Put
// for every node Flush writes and a Del for every node dropped; replayed
// through a cache that never evicts, it misses once per node, as the tree
// did.
func TestTrace(t *testing.T) {
	s := newMemStore(512)
	tr := NewTree(s, NilNode, 512, 1<<30)
	var events []cache.Event
	tr.SetTrace(func(op cache.Op, id NodeID, weight int64) {
		if id.isTemp() || (op != cache.Del && weight <= 0) {
			t.Errorf("event %d %#x %d", op, uint64(id), weight)
		}
		events = append(events, cache.Event{Op: op, Key: uint64(id), Weight: weight})
	})
	for i := range 2000 {
		if err := tr.Put(Key{Ino: uint64(i)}, []byte("value")); err != nil {
			t.Fatal(err)
		}
	}
	writes := 0
	err := tr.Flush(s.alloc, func(id NodeID, b []byte) error { writes++; return s.write(id, b) }, s.free)
	if err != nil {
		t.Fatal(err)
	}
	// Read everything through a cold tree, then delete half, and flush.
	tr = NewTree(s, tr.Root(), 512, 1<<30)
	trace := func(op cache.Op, id NodeID, weight int64) {
		events = append(events, cache.Event{Op: op, Key: uint64(id), Weight: weight})
	}
	tr.SetTrace(trace)
	for i := range 2000 {
		if _, ok, err := tr.Get(Key{Ino: uint64(i)}); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	hits, misses := tr.CacheCounts()
	for i := 0; i < 2000; i += 2 {
		if _, err := tr.Delete(Key{Ino: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.flush(tr); err != nil {
		t.Fatal(err)
	}
	ops := map[cache.Op]int{}
	for _, e := range events {
		ops[e.Op]++
	}
	if ops[cache.Put] < writes || ops[cache.Del] == 0 {
		t.Fatalf("trace %v for %d nodes written first", ops, writes)
	}
	// The reads of the cold tree alone.
	var reads []cache.Event
	for _, e := range events {
		if e.Op == cache.Get && len(reads) < int(hits+misses) {
			reads = append(reads, e)
		}
	}
	r := cache.Replay(reads, cache.NewLRU(), 1<<30)
	if r.Hits != hits || r.Misses != misses {
		t.Fatalf("replay %+v, the tree counted %d hits, %d misses", r, hits, misses)
	}
}

// BenchmarkGetEvicting reads random keys of a tree four times the size of
// its cache, under each policy: the cost of a lookup with the hits, misses
// and evictions of each.
func BenchmarkGetEvicting(b *testing.B) {
	const n = 100_000
	s := newMemStore(4096)
	tr := NewTree(s, NilNode, 4096, 1<<30)
	for i := range n {
		if err := tr.Put(Key{Ino: uint64(i)}, []byte("a value of some bytes")); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.flush(tr); err != nil {
		b.Fatal(err)
	}
	size := tr.Stats().CachedBytes
	for _, policy := range cache.Names() {
		b.Run(policy, func(b *testing.B) {
			tr := NewTree(s, tr.Root(), 4096, size/4)
			if err := tr.SetCachePolicy(policy); err != nil {
				b.Fatal(err)
			}
			r := rand.New(rand.NewSource(1))
			b.ResetTimer()
			for range b.N {
				// Skewed: a quarter of the keys get most lookups.
				i := r.Intn(n)
				if r.Intn(4) > 0 {
					i /= 4
				}
				if _, _, err := tr.Get(Key{Ino: uint64(i)}); err != nil {
					b.Fatal(err)
				}
			}
			hits, misses := tr.CacheCounts()
			b.ReportMetric(100*float64(hits)/float64(hits+misses), "hit%")
		})
	}
}
