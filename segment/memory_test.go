package segment

import (
	"math/rand"
	"testing"
)

// TestUnitBufferFitsUnit: a sealed unit's buffer is at most half as long again
// as the unit (or 8 KiB), whatever its size, so that the queue of sealed
// units, which counts their capacity, bounds their memory.
func TestUnitBufferFitsUnit(t *testing.T) {
	b := make([]byte, 4096)
	rand.New(rand.NewSource(1)).Read(b) // stored raw
	for _, blocks := range []int{0, 1, 3, 40, 300, 900} {
		for _, reserve := range []bool{false, true} {
			u := NewUnitBuilder(UnitPlace{Addr: 8192, Split: 8 << 20}, UnitOps, 4096, 4<<20)
			if reserve {
				u.Reserve(blocks * len(b))
			}
			for i := range blocks {
				u.AddBlock(SummaryEntry{Kind: SumData, ID: uint64(i + 1), Sum: Checksum(b)}, b)
			}
			u.AppendRecords(make([]byte, 100))
			buf, _ := u.Seal(1, 2, 3, 0)
			if _, err := DecodeUnit(buf, UnitPlace{Addr: 8192, Split: 8 << 20}, 4<<20); err != nil {
				t.Fatal(err)
			}
			if cap(buf) > max(len(buf)*3/2, 8<<10) {
				t.Errorf("%d blocks (reserved %v): a unit of %d bytes in a buffer of %d", blocks, reserve, len(buf), cap(buf))
			}
			ReleaseUnitBuffer(buf)
		}
	}
}

// TestTableCacheBounded: the clean blocks a table keeps, interior nodes
// as well as leaves, stay within its bound however many are read.
func TestTableCacheBounded(t *testing.T) {
	_, read, put := tableDevice()
	const (
		bs     = 4096
		stride = 128 * 256 // one leaf under each interior node of level 1
		n      = 300
	)
	tb := NewTable(TableDAT, bs, 32, BlockPtr{}, 0, read, 0)
	e := make([]byte, 32)
	for i := range n {
		e[0] = byte(i + 1)
		if err := tb.Set(uint64(i)*stride, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.Flush(put); err != nil {
		t.Fatal(err)
	}
	root, depth := tb.Root()
	const bound = 16 * (bs + 160)
	tb = NewTable(TableDAT, bs, 32, root, depth, read, bound)
	for round := range 2 {
		for i := range n {
			if err := tb.Get(uint64(i)*stride, e); err != nil || e[0] != byte(i+1) {
				t.Fatalf("entry %d: %d, %v", i, e[0], err)
			}
		}
		cached := len(tb.leaves)
		for _, lv := range tb.nodes {
			cached += len(lv)
		}
		if cached > 16 {
			t.Fatalf("round %d: %d blocks cached (%d leaves), bound 16", round, cached, len(tb.leaves))
		}
	}
	// What was evicted is read again correctly, and written back after a
	// change through reloaded interior nodes.
	for i := range n {
		e[0] = byte(i + 2)
		if err := tb.Set(uint64(i)*stride, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.Flush(put); err != nil {
		t.Fatal(err)
	}
	root, depth = tb.Root()
	tb = NewTable(TableDAT, bs, 32, root, depth, read, bound)
	for i := range n {
		if err := tb.Get(uint64(i)*stride, e); err != nil || e[0] != byte(i+2) {
			t.Fatalf("entry %d after rewrite: %d, %v", i, e[0], err)
		}
	}
}

// TestTableLastLeafEvicted: the leaf a table remembers as looked up last
// may be evicted by reads of other blocks; a change after that goes to the
// leaf in the table, not to the evicted copy, and survives a flush.
func TestTableLastLeafEvicted(t *testing.T) {
	_, read, put := tableDevice()
	const (
		bs     = 4096
		stride = 128 * 256 // one leaf under each interior node of level 1
		n      = 300
	)
	tb := NewTable(TableDAT, bs, 32, BlockPtr{}, 0, read, 0)
	e := make([]byte, 32)
	for i := range n {
		e[0] = byte(i + 1)
		if err := tb.Set(uint64(i)*stride, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.Flush(put); err != nil {
		t.Fatal(err)
	}
	root, depth := tb.Root()
	tb = NewTable(TableDAT, bs, 32, root, depth, read, 16*(bs+160))
	if err := tb.Get(0, e); err != nil || e[0] != 1 {
		t.Fatalf("entry 0: %d, %v", e[0], err)
	}
	// Interior nodes read for other leaves push leaf 0 out of the cache.
	for i := 1; i < n; i++ {
		if _, err := tb.Stored(uint64(i) * stride); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.Walk(func(int, uint64, BlockPtr) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if tb.leaves[0] != nil {
		t.Fatalf("leaf 0 is still cached; the test needs it evicted")
	}
	e[0] = 99
	if err := tb.Set(0, e); err != nil {
		t.Fatal(err)
	}
	if err := tb.Flush(put); err != nil {
		t.Fatal(err)
	}
	root, depth = tb.Root()
	tb = NewTable(TableDAT, bs, 32, root, depth, read, 16*(bs+160))
	if err := tb.Get(0, e); err != nil || e[0] != 99 {
		t.Fatalf("entry 0 after a change to its evicted leaf: %d, %v", e[0], err)
	}
}

// BenchmarkTableGetRun: lookups of neighbouring entries, as a write's new
// blocks make them in the DAT.
func BenchmarkTableGetRun(b *testing.B) {
	_, read, _ := tableDevice()
	tb := NewTable(TableDAT, 4096, 32, BlockPtr{}, 0, read, 0)
	e := make([]byte, 32)
	const n = 1 << 16
	for i := range n {
		tb.Set(uint64(i), e)
	}
	b.ResetTimer()
	for i := range b.N {
		tb.Get(uint64(i%n), e)
	}
}
