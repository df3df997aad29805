package cow

import (
	"maps"
	"math/rand"
	"slices"
	"testing"

	"github.com/txfs/txfs/segment"
)

// accounting is everything Blocks keeps: every DAT entry, every
// segment's usage and the dead bytes.
type accounting struct {
	entries []Entry
	usage   []segment.UsageEntry
	dead    int64
}

func (tb *testBlocks) accounting() accounting {
	tb.t.Helper()
	var a accounting
	for vb := uint64(1); vb < tb.b.DAT().Count(); vb++ {
		e, err := tb.b.DAT().Get(vb)
		if err != nil {
			tb.t.Fatal(err)
		}
		a.entries = append(a.entries, e)
	}
	for s := range tb.geo.Segments {
		e, err := tb.b.Usage().Get(s)
		if err != nil {
			tb.t.Fatal(err)
		}
		a.usage = append(a.usage, e)
	}
	a.dead = tb.b.DeadBytes()
	return a
}

func (a accounting) equal(b accounting) bool {
	return slices.Equal(a.entries, b.entries) && slices.Equal(a.usage, b.usage) && a.dead == b.dead
}

// Move is a compare-and-set: a block that is no longer at the address
// with the checksum the cleaner copied stays where it is, and nothing in
// the accounting changes.
func TestBlocksMoveOnlyWhatWasCopied(t *testing.T) {
	for _, c := range []struct {
		name string
		// change happens after the copy of vb (1000 bytes at byte 0 of
		// segment 1, checksum 7); then Move(vb, oldAddr, oldSum, to).
		change          func(tb *testBlocks, vb uint64)
		oldAddr, oldSum func(tb *testBlocks) uint64
	}{
		{name: "freed", change: func(tb *testBlocks, vb uint64) {
			if err := tb.b.Ref(vb, -1); err != nil {
				tb.t.Fatal(err)
			}
		}},
		{name: "freed and allocated again", change: func(tb *testBlocks, vb uint64) {
			if err := tb.b.Ref(vb, -1); err != nil {
				tb.t.Fatal(err)
			}
			if again, err := tb.b.Alloc(); err != nil || again != vb {
				tb.t.Fatalf("alloc: %d %v", again, err)
			}
		}},
		{name: "freed, allocated and written at the same place", change: func(tb *testBlocks, vb uint64) {
			if err := tb.b.Ref(vb, -1); err != nil {
				tb.t.Fatal(err)
			}
			if again, err := tb.b.Alloc(); err != nil || again != vb {
				tb.t.Fatalf("alloc: %d %v", again, err)
			}
			if err := tb.b.Write(vb, tb.addr(1, 0), 1000, 0, 99); err != nil {
				tb.t.Fatal(err)
			}
		}},
		{name: "rewritten elsewhere", change: func(tb *testBlocks, vb uint64) {
			if err := tb.b.Write(vb, tb.addr(3, 8192), 1000, 0, 7); err != nil {
				tb.t.Fatal(err)
			}
		}},
		{name: "rewritten at the same place", change: func(tb *testBlocks, vb uint64) {
			if err := tb.b.Write(vb, tb.addr(1, 0), 1000, 0, 8); err != nil {
				tb.t.Fatal(err)
			}
		}},
		{name: "another checksum", oldSum: func(*testBlocks) uint64 { return 8 }},
		{name: "another address", oldAddr: func(tb *testBlocks) uint64 { return tb.addr(1, 4096) }},
		{name: "allocated again, not written, at no address", change: func(tb *testBlocks, vb uint64) {
			if err := tb.b.Ref(vb, -1); err != nil {
				tb.t.Fatal(err)
			}
			if again, err := tb.b.Alloc(); err != nil || again != vb {
				tb.t.Fatalf("alloc: %d %v", again, err)
			}
		}, oldAddr: func(*testBlocks) uint64 { return 0 }, oldSum: func(*testBlocks) uint64 { return 0 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			tb := newTestBlocks(t)
			vb := tb.written(1, 1000, 7)
			other := tb.written(1, 500, 5)
			if c.change != nil {
				c.change(tb, vb)
			}
			oldAddr, oldSum := tb.addr(1, 0), uint64(7)
			if c.oldAddr != nil {
				oldAddr = c.oldAddr(tb)
			}
			if c.oldSum != nil {
				oldSum = c.oldSum(tb)
			}
			before := tb.accounting()
			moved, err := tb.b.Move(vb, oldAddr, oldSum, tb.addr(2, 0))
			if err != nil || moved {
				t.Fatalf("move: %v %v", moved, err)
			}
			if after := tb.accounting(); !after.equal(before) {
				t.Fatalf("a move that did not happen changed the accounting:\n%+v\nwas\n%+v", after, before)
			}
			// The other block of the segment still moves.
			if moved, err := tb.b.Move(other, tb.addr(1, 0), 5, tb.addr(2, 0)); err != nil || !moved {
				t.Fatalf("move of the untouched block: %v %v", moved, err)
			}
			tb.verify()
		})
	}
}

// Moves carry each block's live bytes from its segment to the one it
// goes to, keep its length, flags, checksum and references, kill nothing,
// and survive a flush and reload.
func TestBlocksMoveCarriesLiveBytes(t *testing.T) {
	tb := newTestBlocks(t)
	a := tb.written(1, 1000, 7)
	b, err := tb.b.Alloc()
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.b.Write(b, tb.addr(1, 4096), 3000, FlagLZ4, 8); err != nil {
		t.Fatal(err)
	}
	if err := tb.b.Ref(b, 1); err != nil { // shared: two references
		t.Fatal(err)
	}
	c := tb.written(4, 200, 9)
	tb.reload()
	want := map[uint64]Entry{}
	for _, vb := range []uint64{a, b, c} {
		e, _ := tb.b.DAT().Live(vb)
		want[vb] = e
	}
	deadBefore := tb.b.DeadBytes()
	moves := []struct {
		vb       uint64
		from, to uint64
	}{
		{a, tb.addr(1, 0), tb.addr(5, 0)},
		{b, tb.addr(1, 4096), tb.addr(5, 1000)},
		{c, tb.addr(4, 0), tb.addr(4, 65536)}, // within its segment
	}
	for _, m := range moves {
		moved, err := tb.b.Move(m.vb, m.from, want[m.vb].Sum, m.to)
		if err != nil || !moved {
			t.Fatalf("move of %d: %v %v", m.vb, moved, err)
		}
		e := want[m.vb]
		e.Addr = m.to
		want[m.vb] = e
	}
	for _, s := range []struct {
		seg  uint32
		live int64
	}{{1, 0}, {4, 200}, {5, 4000}} {
		if got := tb.live(s.seg); got != s.live {
			t.Fatalf("segment %d has %d live bytes, want %d", s.seg, got, s.live)
		}
	}
	if tb.b.DeadBytes() != deadBefore {
		t.Fatalf("moves killed %d bytes", tb.b.DeadBytes()-deadBefore)
	}
	tb.verify()
	tb.reload()
	tb.verify()
	for vb, w := range want {
		if e, err := tb.b.DAT().Live(vb); err != nil || e != w {
			t.Fatalf("block %d after the moves and a reload: %+v %v, want %+v", vb, e, err, w)
		}
	}
	// Moved again from where it was before: the copy is stale.
	if moved, err := tb.b.Move(a, tb.addr(1, 0), 7, tb.addr(6, 0)); err != nil || moved {
		t.Fatalf("second move from the old place: %v %v", moved, err)
	}
}

// PlacedIn names exactly the live, written blocks the DAT places in the
// chosen segments, with their entries, in order of virtual block.
func TestBlocksPlacedIn(t *testing.T) {
	tb := newTestBlocks(t)
	rng := rand.New(rand.NewSource(5))
	want := map[uint64]Entry{} // every live, written block
	var unwritten []uint64
	for i := range 300 {
		vb, err := tb.b.Alloc()
		if err != nil {
			t.Fatal(err)
		}
		switch i % 10 {
		case 0:
			unwritten = append(unwritten, vb)
			continue
		case 1:
			if err := tb.b.Write(vb, tb.addr(uint32(rng.Intn(dataSegs)), 0), 100, 0, 1); err != nil {
				t.Fatal(err)
			}
			if err := tb.b.Ref(vb, -1); err != nil { // freed
				t.Fatal(err)
			}
			continue
		}
		if err := tb.b.Write(vb, tb.addr(uint32(rng.Intn(dataSegs)), rng.Intn(1<<19)), uint32(1+rng.Intn(4096)), 0, rng.Uint64()); err != nil {
			t.Fatal(err)
		}
		if i%10 == 2 { // rewritten elsewhere
			if err := tb.b.Write(vb, tb.addr(uint32(rng.Intn(dataSegs)), 1<<19), 50, 0, 2); err != nil {
				t.Fatal(err)
			}
		}
		if i%10 == 3 { // moved
			e, _ := tb.b.DAT().Live(vb)
			if moved, err := tb.b.Move(vb, e.Addr, e.Sum, tb.addr(uint32(rng.Intn(dataSegs)), 3<<18)); err != nil || !moved {
				t.Fatalf("move: %v %v", moved, err)
			}
		}
		e, _ := tb.b.DAT().Live(vb)
		want[vb] = e
	}
	check := func(what string, in func(s uint32) bool) {
		t.Helper()
		got := map[uint64]Entry{}
		var order []uint64
		err := tb.b.PlacedIn(in, func(vb uint64, e Entry) {
			if _, dup := got[vb]; dup {
				t.Fatalf("%s: block %d named twice", what, vb)
			}
			got[vb] = e
			order = append(order, vb)
		})
		if err != nil {
			t.Fatal(err)
		}
		expect := maps.Clone(want)
		maps.DeleteFunc(expect, func(vb uint64, e Entry) bool {
			s, _ := tb.geo.SegmentOf(e.Addr)
			return !in(s)
		})
		if !maps.Equal(got, expect) {
			t.Fatalf("%s: named %d blocks, want %d", what, len(got), len(expect))
		}
		if !slices.IsSorted(order) {
			t.Fatalf("%s: not in order of virtual block", what)
		}
		for _, vb := range unwritten {
			if _, ok := got[vb]; ok {
				t.Fatalf("%s: unwritten block %d named", what, vb)
			}
		}
	}
	// Free entries hold free list links where written ones hold addresses:
	// free blocks numbered past the superblocks link to numbers that are
	// addresses in segment 0.
	var high []uint64
	for {
		vb, err := tb.b.Alloc()
		if err != nil {
			t.Fatal(err)
		}
		if vb <= uint64(tb.geo.SegmentAreaStart()) {
			unwritten = append(unwritten, vb)
			continue
		}
		if high = append(high, vb); len(high) == 100 {
			break
		}
	}
	for _, vb := range high {
		if err := tb.b.Ref(vb, -1); err != nil {
			t.Fatal(err)
		}
	}
	if e, _ := tb.b.DAT().Get(high[99]); !e.Free() || e.Addr != high[98] {
		t.Fatalf("free block %d links to %d, want %d", high[99], e.Addr, high[98])
	}
	run := func() {
		check("no segment", func(uint32) bool { return false })
		check("segment 0", func(s uint32) bool { return s == 0 })
		check("every segment", func(uint32) bool { return true })
		check("segments 2 and 3", func(s uint32) bool { return s == 2 || s == 3 })
		check("odd segments", func(s uint32) bool { return s%2 == 1 })
		// What it names in each segment adds up to the segment's live bytes.
		for s := range uint32(dataSegs) {
			var sum int64
			if err := tb.b.PlacedIn(func(x uint32) bool { return x == s }, func(_ uint64, e Entry) { sum += int64(e.Len) }); err != nil {
				t.Fatal(err)
			}
			if sum != tb.live(s) {
				t.Fatalf("segment %d: blocks named hold %d bytes, usage says %d", s, sum, tb.live(s))
			}
		}
	}
	run()
	tb.reload()
	run()
	tb.verify()
}
