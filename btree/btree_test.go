package btree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/txfs/txfs/internal/cache"
)

// memStore is an in-memory Store with an allocator that reuses freed IDs
// (as the DAT does) and checks that frees match allocations.
type memStore struct {
	mu        sync.Mutex
	blockSize int
	blocks    map[NodeID][]byte
	alloced   map[NodeID]bool
	freeList  []NodeID
	next      NodeID
	loads     int

	// Error injection: the n-th call from now fails (0 = never).
	failAlloc, failWrite, failFree int
}

var errInjected = errors.New("injected failure")

func newMemStore(blockSize int) *memStore {
	return &memStore{blockSize: blockSize, blocks: map[NodeID][]byte{}, alloced: map[NodeID]bool{}}
}

func (s *memStore) LoadNode(id NodeID) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads++
	b, ok := s.blocks[id]
	if !ok {
		return nil, fmt.Errorf("memStore: no node %d", id)
	}
	return append([]byte(nil), b...), nil
}

func countdown(n *int) bool {
	if *n == 0 {
		return false
	}
	*n--
	return *n == 0
}

func (s *memStore) alloc() (NodeID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if countdown(&s.failAlloc) {
		return 0, errInjected
	}
	var id NodeID
	if len(s.freeList) > 0 {
		id = s.freeList[len(s.freeList)-1]
		s.freeList = s.freeList[:len(s.freeList)-1]
	} else {
		s.next++
		id = s.next
	}
	s.alloced[id] = true
	return id, nil
}

func (s *memStore) write(id NodeID, enc []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if countdown(&s.failWrite) {
		return errInjected
	}
	if !s.alloced[id] {
		return fmt.Errorf("memStore: write of unallocated node %d", id)
	}
	if len(enc) > s.blockSize {
		return fmt.Errorf("memStore: node %d is %d bytes, block size %d", id, len(enc), s.blockSize)
	}
	s.blocks[id] = append([]byte(nil), enc...)
	return nil
}

func (s *memStore) free(id NodeID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if countdown(&s.failFree) {
		return errInjected
	}
	if !s.alloced[id] {
		return fmt.Errorf("memStore: free of node %d, which is not allocated (double free?)", id)
	}
	delete(s.alloced, id)
	delete(s.blocks, id)
	s.freeList = append(s.freeList, id)
	return nil
}

func (s *memStore) flush(t *Tree) error { return t.Flush(s.alloc, s.write, s.free) }

// checkFlushed verifies the state right after a successful Flush: no dirty
// nodes, a permanent root, the cache within bounds, and the reachable
// nodes exactly the allocated ones, all written.
func checkFlushed(t *testing.T, tr *Tree, s *memStore) {
	t.Helper()
	st := tr.Stats()
	if st.DirtyNodes != 0 || st.DirtyBytes != 0 || tr.DirtyBytes() != 0 {
		t.Fatalf("dirty after Flush: %+v", st)
	}
	if st.CachedBytes > tr.cacheBytes {
		t.Fatalf("cache over its bound after Flush: %d > %d", st.CachedBytes, tr.cacheBytes)
	}
	if r := tr.Root(); r.isTemp() {
		t.Fatalf("temporary root %#x after Flush", uint64(r))
	}
	seen := map[NodeID]bool{}
	err := tr.Walk(func(id NodeID, level int) error {
		if id.isTemp() {
			return fmt.Errorf("temporary node %#x after Flush", uint64(id))
		}
		if seen[id] {
			return fmt.Errorf("node %d reached twice", id)
		}
		seen[id] = true
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range seen {
		if !s.alloced[id] || s.blocks[id] == nil {
			t.Fatalf("reachable node %d is not allocated and written (dangling)", id)
		}
	}
	for id := range s.alloced {
		if !seen[id] {
			t.Fatalf("allocated node %d is not reachable (leak)", id)
		}
	}
}

// checkCache verifies the cache bookkeeping: item offsets, node sizes, the
// byte counts (of memory), the dirty set and the LRU list of clean nodes.
func checkCache(tr *Tree) error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var clean, dirty int64
	nclean := 0
	for id, n := range tr.nodes {
		if err := checkOffsets(n); err != nil {
			return fmt.Errorf("node %d: %v", id, err)
		}
		if size := n.size(); size > tr.blockSize {
			return fmt.Errorf("node %d: size %d over the block size", id, size)
		}
		size := n.memSize()
		if n.id != id || n.acct != size {
			return fmt.Errorf("node %d: id %d, acct %d, memory %d", id, n.id, n.acct, size)
		}
		if n.dirty {
			dirty += int64(size)
			if tr.dirty[id] != n {
				return fmt.Errorf("dirty node %d not in the dirty set", id)
			}
			// Pinned if it was clean before, unknown to the policy if new.
			if n.ce.Pinned() == id.isTemp() {
				return fmt.Errorf("dirty node %d: pinned %v", id, n.ce.Pinned())
			}
		} else {
			clean += int64(size)
			nclean++
			if n.ce.Pinned() || n.ce.Key != uint64(id) || n.ce.Weight() != int64(size) {
				return fmt.Errorf("clean node %d: policy entry %d, pinned %v, weight %d", id, n.ce.Key, n.ce.Pinned(), n.ce.Weight())
			}
		}
	}
	if tr.policy.Len() != nclean || len(tr.dirty) != len(tr.nodes)-countClean(tr) {
		return fmt.Errorf("policy (%d evictable nodes) or dirty set out of step with the cache (%d clean)", tr.policy.Len(), nclean)
	}
	if clean != tr.cleanBytes || dirty != tr.dirtyBytes {
		return fmt.Errorf("byte counts clean %d dirty %d, want %d and %d", tr.cleanBytes, tr.dirtyBytes, clean, dirty)
	}
	if tr.cleanBytes > 0 && tr.cleanBytes+tr.dirtyBytes > tr.cacheBytes {
		return fmt.Errorf("clean nodes kept over the cache bound")
	}
	return nil
}

// checkOffsets verifies that n's offsets name its items back to back.
func checkOffsets(n *node) error {
	p := 0
	for i, o := range n.offs {
		if int(o) != p || p+KeySize > len(n.items) {
			return fmt.Errorf("item %d at %d, expected at %d of %d bytes", i, o, p, len(n.items))
		}
		p += innerItemSize
		if n.leaf() {
			p += leafItemHdr - innerItemSize + int(binary.LittleEndian.Uint16(n.items[o+KeySize:]))
		}
	}
	if p != len(n.items) {
		return fmt.Errorf("items end at %d, the buffer at %d", p, len(n.items))
	}
	return nil
}

func countClean(tr *Tree) int {
	c := 0
	for _, n := range tr.nodes {
		if !n.dirty {
			c++
		}
	}
	return c
}

// model is the reference the tree is compared against.
type model map[Key][]byte

func (m model) sorted() []Key {
	keys := make([]Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, Key.Compare)
	return keys
}

type item struct {
	k Key
	v []byte
}

func collect(t *testing.T, tr *Tree, from Key, limit int) []item {
	t.Helper()
	var out []item
	err := tr.Ascend(from, func(k Key, v []byte) bool {
		out = append(out, item{k, bytes.Clone(v)})
		return limit <= 0 || len(out) < limit
	})
	if err != nil {
		t.Fatalf("Ascend: %v", err)
	}
	return out
}

// collectDown is collect through Descend: the items below before, from
// the largest down.
func collectDown(t *testing.T, tr *Tree, before Key, limit int) []item {
	t.Helper()
	var out []item
	err := tr.Descend(before, func(k Key, v []byte) bool {
		out = append(out, item{k, bytes.Clone(v)})
		return limit <= 0 || len(out) < limit
	})
	if err != nil {
		t.Fatalf("Descend: %v", err)
	}
	return out
}

// compare checks every item of the tree against m, through Ascend,
// Descend and Get.
func compare(t *testing.T, tr *Tree, m model) {
	t.Helper()
	keys := m.sorted()
	got := collect(t, tr, Key{}, 0)
	if len(got) != len(keys) {
		t.Fatalf("Ascend returned %d items, want %d", len(got), len(keys))
	}
	for i, it := range got {
		if it.k != keys[i] || !bytes.Equal(it.v, m[keys[i]]) {
			t.Fatalf("item %d: got %v (%d bytes), want %v (%d bytes)", i, it.k, len(it.v), keys[i], len(m[keys[i]]))
		}
	}
	// Descend reaches every key but the largest possible one.
	top := Key{Ino: ^uint64(0), Type: ^uint8(0), Off: ^uint64(0)}
	down := collectDown(t, tr, top, 0)
	if v, ok := m[top]; ok {
		down = append([]item{{top, v}}, down...)
	}
	if len(down) != len(keys) {
		t.Fatalf("Descend returned %d items, want %d", len(down), len(keys))
	}
	for i, it := range down {
		if want := keys[len(keys)-1-i]; it.k != want || !bytes.Equal(it.v, m[want]) {
			t.Fatalf("Descend item %d: got %v, want %v", i, it.k, want)
		}
	}
	for _, k := range keys {
		v, ok, err := tr.Get(k)
		if err != nil || !ok || !bytes.Equal(v, m[k]) {
			t.Fatalf("Get(%v) = %d bytes, %v, %v", k, len(v), ok, err)
		}
	}
	if err := tr.Walk(func(NodeID, int) error { return nil }); err != nil {
		t.Fatalf("Walk: %v", err)
	}
}

func randKey(r *rand.Rand) Key {
	// A small key space so that replacements and deletions hit.
	return Key{Ino: uint64(r.Intn(40)), Type: uint8(r.Intn(3)), Off: uint64(r.Intn(64))}
}

func randValue(r *rand.Rand, maxVal int) []byte {
	var n int
	switch r.Intn(10) {
	case 0:
		n = maxVal
	case 1, 2:
		n = r.Intn(maxVal + 1)
	default:
		n = r.Intn(min(maxVal, 16) + 1)
	}
	v := make([]byte, n)
	r.Read(v)
	return v
}

func TestModelRandom(t *testing.T) {
	seeds := []int64{1, 2, 3, 42, 1234, time.Now().UnixNano()}
	for _, seed := range seeds {
		for _, bs := range []int{128, 512, 4096} {
			t.Run(fmt.Sprintf("seed=%d/bs=%d", seed, bs), func(t *testing.T) {
				t.Parallel()
				t.Logf("seed %d", seed)
				runModel(t, seed, bs, "")
			})
		}
	}
}

// TestModelPolicies runs the model with the node cache under each policy
// (TestModelRandom switches policies at random while it runs).
func TestModelPolicies(t *testing.T) {
	for _, policy := range cache.Names() {
		for _, seed := range []int64{time.Now().UnixNano()} {
			for _, bs := range []int{128, 4096} {
				t.Run(fmt.Sprintf("%s/seed=%d/bs=%d", policy, seed, bs), func(t *testing.T) {
					t.Parallel()
					runModel(t, seed, bs, policy)
				})
			}
		}
	}
}

// runModel checks the tree against a map under random operations. With a
// policy named, its node cache uses that one; with none, it changes
// policy at random now and then, dirty nodes and all.
func runModel(t *testing.T, seed int64, bs int, policy string) {
	defer func() {
		if t.Failed() {
			t.Logf("failed with seed %d, block size %d", seed, bs)
		}
	}()
	r := rand.New(rand.NewSource(seed))
	s := newMemStore(bs)
	cacheBytes := int64(bs * (4 + r.Intn(40)))
	names := cache.Names()
	setPolicy := func(tr *Tree) {
		p := policy
		if p == "" {
			p = names[r.Intn(len(names))]
		}
		if err := tr.SetCachePolicy(p); err != nil {
			t.Fatal(err)
		}
	}
	tr := NewTree(s, NilNode, bs, cacheBytes)
	setPolicy(tr)
	m := model{}
	maxVal := MaxValueSize(bs)
	ops := 6000
	injected := 0
	defer func() { t.Logf("%d injected Flush failures", injected) }()
	if testing.Short() {
		ops = 1500
	}
	for op := range ops {
		// Phases of mostly inserting and mostly deleting, so the tree
		// both grows deep and shrinks back.
		putBias := 60
		if (op/1000)%2 == 1 {
			putBias = 30
		}
		switch x := r.Intn(100); {
		case x < putBias:
			k, v := randKey(r), randValue(r, maxVal)
			if err := tr.Put(k, v); err != nil {
				t.Fatalf("op %d: Put(%v): %v", op, k, err)
			}
			m[k] = v
		case x < 85:
			k := randKey(r)
			existed, err := tr.Delete(k)
			_, want := m[k]
			if err != nil || existed != want {
				t.Fatalf("op %d: Delete(%v) = %v, %v; want %v", op, k, existed, err, want)
			}
			delete(m, k)
		case x < 93:
			k := randKey(r)
			v, ok, err := tr.Get(k)
			want, wok := m[k]
			if err != nil || ok != wok || !bytes.Equal(v, want) {
				t.Fatalf("op %d: Get(%v) = %d bytes, %v, %v; want %d bytes, %v", op, k, len(v), ok, err, len(want), wok)
			}
		case x < 95:
			before := randKey(r)
			limit := 1 + r.Intn(30)
			got := collectDown(t, tr, before, limit)
			var want []Key
			keys := m.sorted()
			for i := len(keys) - 1; i >= 0 && len(want) < limit; i-- {
				if keys[i].Less(before) {
					want = append(want, keys[i])
				}
			}
			if len(got) != len(want) {
				t.Fatalf("op %d: Descend(%v) limit %d: %d items, want %d", op, before, limit, len(got), len(want))
			}
			for i := range got {
				if got[i].k != want[i] || !bytes.Equal(got[i].v, m[want[i]]) {
					t.Fatalf("op %d: Descend(%v) item %d = %v, want %v", op, before, i, got[i].k, want[i])
				}
			}
		case x < 97:
			from := randKey(r)
			limit := 1 + r.Intn(30)
			got := collect(t, tr, from, limit)
			var want []Key
			for _, k := range m.sorted() {
				if !k.Less(from) && len(want) < limit {
					want = append(want, k)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("op %d: Ascend(%v) limit %d: %d items, want %d", op, from, limit, len(got), len(want))
			}
			for i := range got {
				if got[i].k != want[i] || !bytes.Equal(got[i].v, m[want[i]]) {
					t.Fatalf("op %d: Ascend(%v) item %d = %v, want %v", op, from, i, got[i].k, want[i])
				}
			}
		default:
			// Sometimes make the flush fail once somewhere first.
			if r.Intn(3) == 0 {
				switch r.Intn(3) {
				case 0:
					s.failAlloc = 1 + r.Intn(3)
				case 1:
					s.failWrite = 1 + r.Intn(5)
				case 2:
					s.failFree = 1 + r.Intn(3)
				}
				err := s.flush(tr) // may succeed if fewer calls than the countdown
				s.failAlloc, s.failWrite, s.failFree = 0, 0, 0
				if err != nil {
					if !errors.Is(err, errInjected) {
						t.Fatalf("op %d: Flush: %v", op, err)
					}
					// Carry on changing the tree; a later Flush
					// must finish the job.
					injected++
					if r.Intn(4) == 0 {
						compare(t, tr, m)
					}
					continue
				}
			} else if err := s.flush(tr); err != nil {
				t.Fatalf("op %d: Flush: %v", op, err)
			}
			checkFlushed(t, tr, s)
			if r.Intn(2) == 0 {
				// Reopen from the store and carry on with the new tree.
				tr = NewTree(s, tr.Root(), bs, cacheBytes)
				setPolicy(tr)
				compare(t, tr, m)
			}
		}
		if policy == "" && r.Intn(200) == 0 {
			setPolicy(tr)
		}
		if err := checkCache(tr); err != nil {
			t.Fatalf("op %d: %v", op, err)
		}
		if op%1000 == 0 {
			compare(t, tr, m)
		}
	}
	compare(t, tr, m)
	// Delete everything: the tree must come back to empty.
	for _, k := range m.sorted() {
		if existed, err := tr.Delete(k); err != nil || !existed {
			t.Fatalf("final Delete(%v) = %v, %v", k, existed, err)
		}
	}
	if tr.Root() != NilNode {
		t.Fatalf("root %#x after deleting everything", uint64(tr.Root()))
	}
	if err := s.flush(tr); err != nil {
		t.Fatal(err)
	}
	checkFlushed(t, tr, s)
	if len(s.alloced) != 0 {
		t.Fatalf("%d nodes allocated in an empty tree", len(s.alloced))
	}
}

func TestEmptyTree(t *testing.T) {
	s := newMemStore(4096)
	tr := NewTree(s, NilNode, 4096, 1<<20)
	if _, ok, err := tr.Get(Key{}); ok || err != nil {
		t.Fatalf("Get on empty tree: %v %v", ok, err)
	}
	if existed, err := tr.Delete(Key{Ino: 1}); existed || err != nil {
		t.Fatalf("Delete on empty tree: %v %v", existed, err)
	}
	if got := collect(t, tr, Key{}, 0); len(got) != 0 {
		t.Fatalf("Ascend on empty tree: %v", got)
	}
	if got := collectDown(t, tr, Key{Ino: 1}, 0); len(got) != 0 {
		t.Fatalf("Descend on empty tree: %v", got)
	}
	if err := s.flush(tr); err != nil {
		t.Fatal(err)
	}
	if tr.Root() != NilNode || len(s.alloced) != 0 {
		t.Fatalf("empty tree flushed to root %d with %d nodes", tr.Root(), len(s.alloced))
	}
	if st := tr.Stats(); st.Height != 0 || st.CachedNodes != 0 {
		t.Fatalf("stats of empty tree: %+v", st)
	}
	checkFlushed(t, tr, s)
}

func TestSingleItem(t *testing.T) {
	s := newMemStore(4096)
	tr := NewTree(s, NilNode, 4096, 1<<20)
	k := Key{Ino: 7, Type: 1, Off: 3}
	if err := tr.Put(k, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if !tr.Root().isTemp() {
		t.Fatalf("new root %#x is not temporary", uint64(tr.Root()))
	}
	if err := s.flush(tr); err != nil {
		t.Fatal(err)
	}
	checkFlushed(t, tr, s)
	tr2 := NewTree(s, tr.Root(), 4096, 1<<20)
	v, ok, err := tr2.Get(k)
	if err != nil || !ok || string(v) != "hello" {
		t.Fatalf("Get after reopen: %q %v %v", v, ok, err)
	}
	v[0] = 'J' // the returned slice is the caller's
	if v, _, _ := tr2.Get(k); string(v) != "hello" {
		t.Fatalf("value changed through a returned slice: %q", v)
	}
	if _, ok, _ := tr2.Get(Key{Ino: 7, Type: 1, Off: 4}); ok {
		t.Fatal("found a missing key")
	}
	if st := tr2.Stats(); st.Height != 1 {
		t.Fatalf("height %d, want 1", st.Height)
	}
	if existed, err := tr2.Delete(k); !existed || err != nil {
		t.Fatalf("Delete: %v %v", existed, err)
	}
	if err := s.flush(tr2); err != nil {
		t.Fatal(err)
	}
	if tr2.Root() != NilNode || len(s.alloced) != 0 {
		t.Fatalf("root %d, %d nodes after deleting the only item", tr2.Root(), len(s.alloced))
	}
}

func TestEqualPrefixKeys(t *testing.T) {
	// Many keys differing only in Off, or only in Type, including the
	// extremes of each field.
	s := newMemStore(256)
	tr := NewTree(s, NilNode, 256, 1<<16)
	m := model{}
	for i := range uint64(3000) {
		k := Key{Ino: 5, Type: 2, Off: i * 0x0101010101}
		m[k] = binary.BigEndian.AppendUint64(nil, i)
	}
	for ty := range 256 {
		m[Key{Ino: 5, Type: uint8(ty), Off: ^uint64(0)}] = []byte{byte(ty)}
	}
	m[Key{Ino: ^uint64(0), Type: 255, Off: ^uint64(0)}] = []byte("max")
	m[Key{}] = []byte("min")
	for k, v := range m {
		if err := tr.Put(k, v); err != nil {
			t.Fatal(err)
		}
	}
	compare(t, tr, m)
	if err := s.flush(tr); err != nil {
		t.Fatal(err)
	}
	checkFlushed(t, tr, s)
	// Ascend from the middle of the run.
	from := Key{Ino: 5, Type: 2, Off: 1500*0x0101010101 - 1}
	got := collect(t, tr, from, 3)
	want := []Key{{5, 2, 1500 * 0x0101010101}, {5, 2, 1501 * 0x0101010101}, {5, 2, 1502 * 0x0101010101}}
	for i := range want {
		if got[i].k != want[i] {
			t.Fatalf("Ascend from the middle: item %d = %v, want %v", i, got[i].k, want[i])
		}
	}
	// Ascend from the largest key finds it and stops.
	got = collect(t, tr, Key{Ino: ^uint64(0), Type: 255, Off: ^uint64(0)}, 0)
	if len(got) != 1 || string(got[0].v) != "max" {
		t.Fatalf("Ascend from the largest key: %v", got)
	}
	// Deleting everything in random order empties the tree.
	keys := m.sorted()
	rand.New(rand.NewSource(9)).Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for i, k := range keys {
		if existed, err := tr.Delete(k); !existed || err != nil {
			t.Fatalf("Delete(%v): %v %v", k, existed, err)
		}
		delete(m, k)
		if i%700 == 0 {
			compare(t, tr, m)
			if err := s.flush(tr); err != nil {
				t.Fatal(err)
			}
			checkFlushed(t, tr, s)
		}
	}
	if tr.Root() != NilNode {
		t.Fatalf("root %#x after deleting everything", uint64(tr.Root()))
	}
	if err := s.flush(tr); err != nil {
		t.Fatal(err)
	}
	checkFlushed(t, tr, s)
	if len(s.alloced) != 0 {
		t.Fatalf("%d nodes left allocated", len(s.alloced))
	}
}

func TestValueSizes(t *testing.T) {
	for _, bs := range []int{128, 4096, 1 << 20} {
		max := MaxValueSize(bs)
		if want := min((bs-8)/4-19, 65535); max != want {
			t.Fatalf("MaxValueSize(%d) = %d, want %d", bs, max, want)
		}
		s := newMemStore(bs)
		tr := NewTree(s, NilNode, bs, int64(bs)*8)
		if err := tr.Put(Key{}, make([]byte, max+1)); !errors.Is(err, ErrValueTooLarge) {
			t.Fatalf("bs %d: Put of %d bytes: %v, want ErrValueTooLarge", bs, max+1, err)
		}
		// Only maximum-size values: every leaf holds 4 or a few more.
		m := model{}
		for i := range 200 {
			v := bytes.Repeat([]byte{byte(i)}, max)
			k := Key{Ino: uint64(i * 7919 % 200)}
			if err := tr.Put(k, v); err != nil {
				t.Fatal(err)
			}
			m[k] = v
		}
		compare(t, tr, m)
		if err := s.flush(tr); err != nil {
			t.Fatal(err)
		}
		checkFlushed(t, tr, s)
		compare(t, NewTree(s, tr.Root(), bs, int64(bs)*8), m)
	}
	if MaxValueSize(100) != 0 || MaxValueSize(2<<20) != 0 {
		t.Fatal("MaxValueSize of an unsupported block size is not 0")
	}
}

func TestFlushErrors(t *testing.T) {
	const bs = 256
	s := newMemStore(bs)
	tr := NewTree(s, NilNode, bs, 1<<14)
	m := model{}
	put := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			k := Key{Ino: uint64(i), Type: 1}
			v := fmt.Appendf(nil, "value %d", i)
			if err := tr.Put(k, v); err != nil {
				t.Fatal(err)
			}
			m[k] = v
		}
	}
	put(0, 500)
	if err := s.flush(tr); err != nil {
		t.Fatal(err)
	}
	checkFlushed(t, tr, s)

	// Changes touching permanent and new nodes, and freeing some.
	put(500, 800)
	for i := 0; i < 300; i += 2 {
		tr.Delete(Key{Ino: uint64(i), Type: 1})
		delete(m, Key{Ino: uint64(i), Type: 1})
	}
	for _, inject := range []*int{&s.failWrite, &s.failAlloc, &s.failFree} {
		*inject = 3
		if err := s.flush(tr); !errors.Is(err, errInjected) {
			t.Fatalf("Flush with an injected failure: %v", err)
		}
		if tr.DirtyBytes() == 0 {
			t.Fatal("failed Flush lost the dirty state")
		}
		compare(t, tr, m)
		// The tree stays usable between the failure and the retry.
		put(800, 820)
	}
	if err := s.flush(tr); err != nil {
		t.Fatal(err)
	}
	checkFlushed(t, tr, s)
	compare(t, tr, m)
	compare(t, NewTree(s, tr.Root(), bs, 1<<14), m)
}

// TestCacheBounded holds the node cache to its bound, under each policy,
// while a tree grows far past it, is read and scanned, and shrinks.
func TestCacheBounded(t *testing.T) {
	for _, policy := range cache.Names() {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			testCacheBounded(t, policy)
		})
	}
}

func testCacheBounded(t *testing.T, policy string) {
	const (
		bs    = 4096
		cache = 64 << 10
		n     = 200_000
	)
	s := newMemStore(bs)
	newTree := func(root NodeID) *Tree {
		tr := NewTree(s, root, bs, cache)
		if err := tr.SetCachePolicy(policy); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	tr := newTree(NilNode)
	r := rand.New(rand.NewSource(5))
	perm := r.Perm(n)
	val := func(i int) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(i)*3) }
	for j, i := range perm {
		if err := tr.Put(Key{Ino: uint64(i / 10), Type: 5, Off: uint64(i % 10)}, val(i)); err != nil {
			t.Fatal(err)
		}
		if j%20_000 == 19_999 {
			if err := s.flush(tr); err != nil {
				t.Fatal(err)
			}
			if st := tr.Stats(); st.CachedBytes > cache || st.DirtyNodes != 0 {
				t.Fatalf("after Flush: %+v", st)
			}
		}
	}
	if err := s.flush(tr); err != nil {
		t.Fatal(err)
	}
	checkFlushed(t, tr, s)
	st := tr.Stats()
	t.Logf("%d items: %+v, %d nodes in store", n, st, len(s.blocks))
	if st.Height < 3 {
		t.Fatalf("height %d for %d items", st.Height, n)
	}
	// Read everything back through a cold, small cache.
	tr = newTree(tr.Root())
	for i := 0; i < n; i += 3 {
		v, ok, err := tr.Get(Key{Ino: uint64(i / 10), Type: 5, Off: uint64(i % 10)})
		if err != nil || !ok || !bytes.Equal(v, val(i)) {
			t.Fatalf("Get %d: %v %v %v", i, v, ok, err)
		}
	}
	if st := tr.Stats(); st.CachedBytes > cache {
		t.Fatalf("cache grew past its bound on reads: %+v", st)
	}
	count := 0
	err := tr.Ascend(Key{}, func(k Key, v []byte) bool {
		i := int(k.Ino*10 + k.Off)
		if i != count || !bytes.Equal(v, val(i)) {
			t.Fatalf("Ascend item %d is %v", count, k)
		}
		count++
		return true
	})
	if err != nil || count != n {
		t.Fatalf("Ascend: %d items, %v", count, err)
	}
	if st := tr.Stats(); st.CachedBytes > cache {
		t.Fatalf("cache grew past its bound on a scan: %+v", st)
	}
	// Delete most of it through the small cache, then flush.
	for i := range n {
		if i%50 == 0 {
			continue
		}
		if existed, err := tr.Delete(Key{Ino: uint64(i / 10), Type: 5, Off: uint64(i % 10)}); !existed || err != nil {
			t.Fatalf("Delete %d: %v %v", i, existed, err)
		}
	}
	if err := s.flush(tr); err != nil {
		t.Fatal(err)
	}
	checkFlushed(t, tr, s)
	if got := len(collect(t, tr, Key{}, 0)); got != n/50 {
		t.Fatalf("%d items left, want %d", got, n/50)
	}
}

// heapLive is the size of the objects alive after a full collection.
func heapLive() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestCacheBoundIsMemory: the cache bound counts what the nodes cost in
// memory, clean ones loaded from the store and dirty ones built item by
// item, not their size on disk.
func TestCacheBoundIsMemory(t *testing.T) {
	for _, policy := range cache.Names() {
		t.Run(policy, func(t *testing.T) { testCacheBoundIsMemory(t, policy) })
	}
}

func testCacheBoundIsMemory(t *testing.T, policy string) {
	const (
		bs    = 4096
		cache = 8 << 20
		n     = 400_000
	)
	s := newMemStore(bs)
	tr := NewTree(s, NilNode, bs, 1<<30)
	// Block map items (8-byte values) and inode-like items (100 bytes).
	key := func(i int) Key { return Key{Ino: uint64(i / 64), Type: 5, Off: uint64(i % 64)} }
	for i := range n {
		v := binary.LittleEndian.AppendUint64(nil, uint64(i))
		if i%64 == 0 {
			v = bytes.Repeat([]byte{byte(i)}, 100)
		}
		if err := tr.Put(key(i), v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.flush(tr); err != nil {
		t.Fatal(err)
	}
	root := tr.Root()
	tr = nil
	base := heapLive()
	// Clean nodes: everything read through a cache smaller than the tree.
	tr = NewTree(s, root, bs, cache)
	if err := tr.SetCachePolicy(policy); err != nil {
		t.Fatal(err)
	}
	if err := tr.Ascend(Key{}, func(Key, []byte) bool { return true }); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(3))
	for range 50_000 {
		if _, _, err := tr.Get(key(r.Intn(n))); err != nil {
			t.Fatal(err)
		}
	}
	st := tr.Stats()
	used := heapLive() - base
	t.Logf("clean: %d nodes, counted %d bytes, using %d", st.CachedNodes, st.CachedBytes, used)
	if st.CachedBytes > cache || used > st.CachedBytes*11/10+256<<10 {
		t.Fatalf("clean nodes counted as %d bytes (bound %d) use %d bytes", st.CachedBytes, cache, used)
	}
	// Dirty nodes: items put one by one all over the tree.
	for range 30_000 {
		if err := tr.Put(key(r.Intn(n)), []byte("a new value")); err != nil {
			t.Fatal(err)
		}
	}
	st = tr.Stats()
	used = heapLive() - base
	t.Logf("dirty: %d of %d nodes, counted %d bytes, using %d", st.DirtyNodes, st.CachedNodes, st.CachedBytes, used)
	if used > st.CachedBytes*11/10+256<<10 {
		t.Fatalf("nodes counted as %d bytes (%d dirty) use %d bytes", st.CachedBytes, st.DirtyBytes, used)
	}
	runtime.KeepAlive(tr)
}

func TestConcurrentUse(t *testing.T) {
	s := newMemStore(512)
	tr := NewTree(s, NilNode, 512, 1<<14)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := Key{Ino: uint64(g), Off: uint64(i)}
				if err := tr.Put(k, []byte{byte(i)}); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					tr.Delete(k)
				}
				tr.Get(k)
				if i%500 == 0 {
					tr.Ascend(Key{Ino: uint64(g)}, func(k Key, v []byte) bool {
						tr.Get(k) // allowed: fn runs without the lock
						return k.Ino == uint64(g)
					})
					if err := s.flush(tr); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := s.flush(tr); err != nil {
		t.Fatal(err)
	}
	checkFlushed(t, tr, s)
	if got, want := len(collect(t, tr, Key{}, 0)), 4*(2000-667); got != want {
		t.Fatalf("%d items, want %d", got, want)
	}
}

func TestKeyEncoding(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	var a, b [KeySize]byte
	for range 10000 {
		k1 := Key{Ino: r.Uint64() >> uint(r.Intn(64)), Type: uint8(r.Intn(256)), Off: r.Uint64() >> uint(r.Intn(64))}
		k2 := k1
		switch r.Intn(3) {
		case 0:
			k2.Ino ^= 1 << uint(r.Intn(64))
		case 1:
			k2.Type ^= 1 << uint(r.Intn(8))
		case 2:
			k2.Off ^= 1 << uint(r.Intn(64))
		}
		k1.Encode(a[:])
		k2.Encode(b[:])
		if DecodeKey(a[:]) != k1 {
			t.Fatalf("round trip of %v", k1)
		}
		if got, want := bytes.Compare(a[:], b[:]), k1.Compare(k2); got != want {
			t.Fatalf("bytes order %d != key order %d for %v, %v", got, want, k1, k2)
		}
		if k1.Less(k2) != (k1.Compare(k2) < 0) {
			t.Fatal("Less disagrees with Compare")
		}
	}
}

// badStore serves fixed bytes for every node.
type badStore map[NodeID][]byte

func (s badStore) LoadNode(id NodeID) ([]byte, error) {
	if b, ok := s[id]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("no node %d", id)
}

func encodeTest(level uint8, keys []Key, vals [][]byte, kids []NodeID) []byte {
	n := &node{level: level}
	for i, k := range keys {
		if level == 0 {
			n.insertLeaf(i, k, vals[i])
		} else {
			n.insertKid(i, k, kids[i])
		}
	}
	return n.encode(nil, func(id NodeID) NodeID { return id })
}

// exercise runs every read path over a tree and returns the first error.
func exercise(tr *Tree) error {
	var errs []error
	_, _, err := tr.Get(Key{Ino: 3})
	errs = append(errs, err)
	errs = append(errs, tr.Ascend(Key{}, func(Key, []byte) bool { return true }))
	errs = append(errs, tr.Walk(func(NodeID, int) error { return nil }))
	errs = append(errs, tr.Put(Key{Ino: 4}, []byte("x")))
	_, err = tr.Delete(Key{Ino: 1})
	errs = append(errs, err)
	tr.Stats()
	return errors.Join(errs...)
}

func TestCorruptNodes(t *testing.T) {
	const bs = 512
	// A valid two-level tree to mutate.
	s := newMemStore(bs)
	tr := NewTree(s, NilNode, bs, 1<<16)
	for i := range 100 {
		tr.Put(Key{Ino: uint64(i)}, bytes.Repeat([]byte{byte(i)}, i%20))
	}
	if err := s.flush(tr); err != nil {
		t.Fatal(err)
	}
	root := tr.Root()
	r := rand.New(rand.NewSource(11))
	for trial := range 3000 {
		bad := badStore{}
		for id, b := range s.blocks {
			bad[id] = b
		}
		// Damage the root or a random node.
		victim := root
		if trial%2 == 1 {
			ids := slices.Sorted(func(yield func(NodeID) bool) {
				for id := range s.blocks {
					if !yield(id) {
						return
					}
				}
			})
			victim = ids[r.Intn(len(ids))]
		}
		b := bytes.Clone(bad[victim])
		switch trial % 3 {
		case 0:
			r.Read(b[:r.Intn(len(b))])
		case 1:
			b = b[:r.Intn(len(b))]
		case 2:
			for range 1 + r.Intn(4) {
				i := r.Intn(64)
				if r.Intn(4) == 0 {
					i = r.Intn(len(b))
				}
				b[i] ^= 1 << uint(r.Intn(8))
			}
		}
		bad[victim] = b
		err := exercise(NewTree(bad, root, bs, 1<<16))
		if err != nil && !errors.Is(err, ErrCorrupt) && !bytes.Contains([]byte(err.Error()), []byte("no node")) {
			t.Fatalf("trial %d: error not wrapping ErrCorrupt: %v", trial, err)
		}
	}
	// Pure garbage as the root is always corrupt, and the error names it.
	for range 200 {
		g := make([]byte, r.Intn(bs))
		r.Read(g)
		_, _, err := NewTree(badStore{9: g}, 9, bs, 1<<16).Get(Key{})
		if !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte("node 9")) {
			t.Fatalf("garbage root: %v", err)
		}
	}
}

func TestCorruptStructure(t *testing.T) {
	const bs = 512
	leafA := encodeTest(0, []Key{{Ino: 1}, {Ino: 2}}, [][]byte{{1}, {2}}, nil)
	leafB := encodeTest(0, []Key{{Ino: 5}, {Ino: 6}}, [][]byte{{5}, {6}}, nil)
	cases := []struct {
		name  string
		store badStore
		root  NodeID
		want  string
	}{
		{"child level", badStore{
			1: encodeTest(2, []Key{{Ino: 1}, {Ino: 5}}, nil, []NodeID{2, 3}),
			2: leafA, 3: leafB}, 1, "node 2 has level 0"},
		{"key below parent range", badStore{
			1: encodeTest(1, []Key{{Ino: 2}, {Ino: 5}}, nil, []NodeID{2, 3}),
			2: leafA, 3: leafB}, 1, "node 2"},
		{"key above parent range", badStore{
			1: encodeTest(1, []Key{{Ino: 1}, {Ino: 2}}, nil, []NodeID{2, 3}),
			2: leafA, 3: leafB}, 1, "node 2"},
		{"unsorted keys", badStore{
			1: encodeTest(0, []Key{{Ino: 2}, {Ino: 1}}, [][]byte{{}, {}}, nil)}, 1, "node 1"},
		{"temporary child", badStore{
			1: encodeTest(1, []Key{{Ino: 1}}, nil, []NodeID{tempBit | 5})}, 1, "node 1"},
		{"empty node", badStore{
			1: encodeTest(0, nil, nil, nil)}, 1, "node 1"},
		{"garbage after items", badStore{
			1: append(bytes.Clone(leafA), 0, 0, 7)}, 1, "node 1"},
		{"too long", badStore{
			1: encodeTest(0, []Key{{Ino: 1}}, [][]byte{make([]byte, MaxValueSize(bs)+1)}, nil)}, 1, "node 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := NewTree(c.store, c.root, bs, 1<<16).Walk(func(NodeID, int) error { return nil })
			if !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
				t.Fatalf("Walk: %v; want ErrCorrupt naming %q", err, c.want)
			}
		})
	}
	// The sound version of the first cases walks fine.
	good := badStore{1: encodeTest(1, []Key{{Ino: 1}, {Ino: 5}}, nil, []NodeID{2, 3}), 2: leafA, 3: leafB}
	var visited []NodeID
	if err := NewTree(good, 1, bs, 1<<16).Walk(func(id NodeID, _ int) error {
		visited = append(visited, id)
		return nil
	}); err != nil || !slices.Equal(visited, []NodeID{1, 2, 3}) {
		t.Fatalf("good tree: %v, visited %v", err, visited)
	}
}

func FuzzDecodeNode(f *testing.F) {
	const bs = 512
	f.Add(encodeTest(0, []Key{{Ino: 1}, {Ino: 2, Type: 3, Off: 4}}, [][]byte{{}, []byte("abc")}, nil))
	f.Add(encodeTest(1, []Key{{Ino: 1}, {Ino: 9}}, nil, []NodeID{5, 6}))
	f.Add(encodeTest(0, []Key{{Ino: 1}}, [][]byte{make([]byte, MaxValueSize(bs))}, nil))
	f.Add([]byte{0x4E, 0x54, 0, 0, 1, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := decodeNode(7, b, bs)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not wrapping ErrCorrupt: %v", err)
			}
			return
		}
		// What decodes must encode back to the same bytes (minus padding).
		enc := n.encode(nil, func(id NodeID) NodeID { return id })
		if !bytes.Equal(enc, b[:len(enc)]) || n.size() != len(enc) || len(enc) > bs {
			t.Fatalf("round trip differs: size %d, %x vs %x", n.size(), enc, b)
		}
	})
}

func benchmarkPut(b *testing.B, keys []Key) {
	val := make([]byte, 24)
	b.ReportAllocs()
	for b.Loop() {
		s := newMemStore(4096)
		tr := NewTree(s, NilNode, 4096, 4<<20)
		for _, k := range keys {
			if err := tr.Put(k, val); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.flush(tr); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/put")
}

func BenchmarkPutSequential100k(b *testing.B) {
	keys := make([]Key, 100_000)
	for i := range keys {
		keys[i] = Key{Ino: uint64(i / 16), Type: 5, Off: uint64(i % 16)}
	}
	benchmarkPut(b, keys)
}

func BenchmarkPutRandom100k(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	keys := make([]Key, 100_000)
	for i := range keys {
		keys[i] = Key{Ino: r.Uint64(), Type: 5, Off: r.Uint64()}
	}
	benchmarkPut(b, keys)
}
