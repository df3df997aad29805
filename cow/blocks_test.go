package cow

import (
	"errors"
	"math/rand"
	"testing"

	"github.com/txfs/txfs/internal/invariants"
	"github.com/txfs/txfs/segment"
)

// testBlocks is an accounting over 32 segments of 1 MiB on a memory
// device. Data blocks are only accounted, never written, in the first
// dataSegs segments; table blocks are written after them.
const dataSegs = 16

type testBlocks struct {
	t    *testing.T
	dev  *segment.MemDevice
	geo  segment.Geometry
	next uint64 // where the next table block goes
	b    *Blocks
}

func newTestBlocks(t *testing.T) *testBlocks {
	geo := segment.Geometry{BlockSize: 4096, SegmentSize: 1 << 20, Segments: 2 * dataSegs}
	tb := &testBlocks{t: t, dev: segment.NewMemDevice(geo.DeviceBytes()), geo: geo,
		next: uint64(geo.SegmentOffset(dataSegs))}
	tb.b = NewBlocks(geo, Open(State{}, 4096, tb.read, 1<<20), segment.OpenUsage(geo.Segments, 4096, segment.BlockPtr{}, 0, tb.read))
	return tb
}

func (tb *testBlocks) read(addr uint64, buf []byte) error {
	_, err := tb.dev.ReadAt(buf, int64(addr))
	return err
}

func (tb *testBlocks) put(level int, index uint64, old segment.BlockPtr, raw []byte) (segment.BlockPtr, error) {
	if tb.next+uint64(len(raw)) > uint64(tb.geo.DeviceBytes()) {
		tb.t.Fatal("the test device is full of table blocks")
	}
	addr := tb.next
	tb.next += uint64(len(raw))
	_, err := tb.dev.WriteAt(raw, int64(addr))
	return segment.BlockPtr{Addr: addr, Sum: segment.Checksum(raw)}, err
}

// reload flushes both tables and opens them again from the device.
func (tb *testBlocks) reload() {
	tb.t.Helper()
	if err := tb.b.Flush(tb.put, tb.put); err != nil {
		tb.t.Fatal(err)
	}
	root, depth := tb.b.Usage().Root()
	tb.b = NewBlocks(tb.geo, Open(tb.b.DAT().State(), 4096, tb.read, 1<<20),
		segment.OpenUsage(tb.geo.Segments, 4096, root, depth, tb.read))
}

// addr is a place for stored bytes in segment s.
func (tb *testBlocks) addr(s uint32, off int) uint64 {
	return uint64(tb.geo.SegmentOffset(s)) + uint64(off)
}

func (tb *testBlocks) live(s uint32) int64 {
	tb.t.Helper()
	e, err := tb.b.Usage().Get(s)
	if err != nil {
		tb.t.Fatal(err)
	}
	return int64(e.Live)
}

func (tb *testBlocks) verify() {
	tb.t.Helper()
	if err := tb.b.Verify(nil); err != nil {
		tb.t.Fatal(err)
	}
}

// TestBlocksModel applies random allocations, writes, moves and
// reference changes, with flushes in between, and checks the live bytes
// of every segment against a model and the invariant after each step.
func TestBlocksModel(t *testing.T) {
	tb := newTestBlocks(t)
	rng := rand.New(rand.NewSource(2))
	type block struct {
		refs      uint32
		addr, sum uint64
		len       uint32
	}
	blocks := map[uint64]*block{}
	live := make([]int64, tb.geo.Segments)
	var dead int64
	place := func() (uint64, uint32) {
		s := uint32(rng.Intn(dataSegs))
		return tb.addr(s, rng.Intn(1<<20-4096)), uint32(1 + rng.Intn(4096))
	}
	pick := func() (uint64, *block) {
		for vb, bl := range blocks {
			return vb, bl
		}
		return 0, nil
	}
	for i := 0; i < 5000; i++ {
		vb, bl := pick()
		switch k := rng.Intn(12); {
		case k < 3 || bl == nil:
			vb, err := tb.b.Alloc()
			if err != nil || blocks[vb] != nil {
				t.Fatalf("alloc %d: %v", vb, err)
			}
			blocks[vb] = &block{refs: 1}
		case k < 6:
			addr, n := place()
			sum := rng.Uint64()
			if err := tb.b.Write(vb, addr, n, 0, sum); err != nil {
				t.Fatal(err)
			}
			if bl.addr != 0 {
				s, _ := tb.geo.SegmentOf(bl.addr)
				live[s] -= int64(bl.len)
				dead += int64(bl.len)
			}
			s, _ := tb.geo.SegmentOf(addr)
			live[s] += int64(n)
			bl.addr, bl.len, bl.sum = addr, n, sum
		case k < 7:
			if err := tb.b.Ref(vb, 1); err != nil {
				t.Fatal(err)
			}
			bl.refs++
		case k < 9:
			if err := tb.b.Ref(vb, -1); err != nil {
				t.Fatal(err)
			}
			if bl.refs--; bl.refs == 0 {
				if bl.addr != 0 {
					s, _ := tb.geo.SegmentOf(bl.addr)
					live[s] -= int64(bl.len)
					dead += int64(bl.len)
				}
				delete(blocks, vb)
			}
		case k < 11:
			to, _ := place()
			moved, err := tb.b.Move(vb, bl.addr, bl.sum, to)
			if err != nil {
				t.Fatal(err)
			}
			if moved != (bl.addr != 0) {
				t.Fatalf("block %d at %d: moved %v", vb, bl.addr, moved)
			}
			if moved {
				from, _ := tb.geo.SegmentOf(bl.addr)
				s, _ := tb.geo.SegmentOf(to)
				live[from] -= int64(bl.len)
				live[s] += int64(bl.len)
				bl.addr = to
			}
		case rng.Intn(8) == 0:
			tb.reload()
			tb.b.dead = dead
		}
		if i%16 == 0 {
			tb.verify()
		}
		for s := range uint32(dataSegs) {
			if got := tb.live(s); got != live[s] {
				t.Fatalf("step %d: segment %d has %d live bytes, model %d", i, s, got, live[s])
			}
		}
		if tb.b.DeadBytes() != dead {
			t.Fatalf("step %d: %d dead bytes, model %d", i, tb.b.DeadBytes(), dead)
		}
	}
	tb.verify()
	for vb, bl := range blocks {
		e, err := tb.b.DAT().Live(vb)
		if err != nil || e.Refs != bl.refs || e.Addr != bl.addr || e.Len != bl.len || e.Sum != bl.sum {
			t.Fatalf("block %d: %+v %v, model %+v", vb, e, err, *bl)
		}
	}
}

func (tb *testBlocks) written(s uint32, n uint32, sum uint64) uint64 {
	tb.t.Helper()
	vb, err := tb.b.Alloc()
	if err != nil {
		tb.t.Fatal(err)
	}
	if err := tb.b.Write(vb, tb.addr(s, 0), n, 0, sum); err != nil {
		tb.t.Fatal(err)
	}
	return vb
}

func TestBlocksMove(t *testing.T) {
	tb := newTestBlocks(t)
	vb := tb.written(1, 1000, 7)
	moved, err := tb.b.Move(vb, tb.addr(1, 0), 7, tb.addr(2, 4096))
	if err != nil || !moved {
		t.Fatalf("move: %v %v", moved, err)
	}
	if tb.live(1) != 0 || tb.live(2) != 1000 {
		t.Fatalf("live bytes after the move: %d in 1, %d in 2", tb.live(1), tb.live(2))
	}
	if e, _ := tb.b.DAT().Live(vb); e.Addr != tb.addr(2, 4096) || e.Len != 1000 || e.Sum != 7 || e.Refs != 1 {
		t.Fatalf("entry after the move: %+v", e)
	}
	if tb.b.DeadBytes() != 0 {
		t.Fatalf("a move killed %d bytes", tb.b.DeadBytes())
	}
	tb.verify()
}

func TestBlocksMoveRewritten(t *testing.T) {
	tb := newTestBlocks(t)
	vb := tb.written(1, 1000, 7)
	// Rewritten elsewhere after the cleaner copied it.
	if err := tb.b.Write(vb, tb.addr(3, 0), 900, 0, 8); err != nil {
		t.Fatal(err)
	}
	moved, err := tb.b.Move(vb, tb.addr(1, 0), 7, tb.addr(2, 0))
	if err != nil || moved {
		t.Fatalf("move of a rewritten block: %v %v", moved, err)
	}
	if e, _ := tb.b.DAT().Live(vb); e.Addr != tb.addr(3, 0) || e.Sum != 8 {
		t.Fatalf("entry: %+v", e)
	}
	if tb.live(2) != 0 || tb.live(3) != 900 {
		t.Fatalf("live bytes: %d in 2, %d in 3", tb.live(2), tb.live(3))
	}
	// Rewritten at the same place with other bytes: the checksum tells.
	if err := tb.b.Write(vb, tb.addr(1, 0), 1000, 0, 9); err != nil {
		t.Fatal(err)
	}
	if moved, err := tb.b.Move(vb, tb.addr(1, 0), 7, tb.addr(2, 0)); err != nil || moved {
		t.Fatalf("move of a block rewritten in place: %v %v", moved, err)
	}
	tb.verify()
}

func TestBlocksMoveFreed(t *testing.T) {
	tb := newTestBlocks(t)
	vb := tb.written(1, 1000, 7)
	if err := tb.b.Ref(vb, -1); err != nil {
		t.Fatal(err)
	}
	if moved, err := tb.b.Move(vb, tb.addr(1, 0), 7, tb.addr(2, 0)); err != nil || moved {
		t.Fatalf("move of a freed block: %v %v", moved, err)
	}
	// Freed and allocated again, not yet written.
	if again, err := tb.b.Alloc(); err != nil || again != vb {
		t.Fatalf("alloc: %d %v, want %d", again, err, vb)
	}
	if moved, err := tb.b.Move(vb, tb.addr(1, 0), 7, tb.addr(2, 0)); err != nil || moved {
		t.Fatalf("move of a block allocated again: %v %v", moved, err)
	}
	if tb.live(1) != 0 || tb.live(2) != 0 {
		t.Fatalf("live bytes: %d in 1, %d in 2", tb.live(1), tb.live(2))
	}
	tb.verify()
	if _, err := tb.b.Move(vb+100, tb.addr(1, 0), 7, tb.addr(2, 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("move of a block beyond the DAT: %v", err)
	}
}

func TestBlocksMustCopy(t *testing.T) {
	tb := newTestBlocks(t)
	vb := tb.written(1, 1000, 7)
	for _, c := range []struct {
		refs int64
		path Path
		want bool
	}{{0, OwnPath, false}, {0, SharedPath, true}, {1, OwnPath, true}, {0, SharedPath, true}} {
		if err := tb.b.Ref(vb, c.refs); err != nil {
			t.Fatal(err)
		}
		if got, err := tb.b.MustCopy(vb, c.path); err != nil || got != c.want {
			t.Fatalf("%+v: %v %v", c, got, err)
		}
	}
	if err := tb.b.Ref(vb, -2); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.b.MustCopy(vb, OwnPath); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("free block: %v", err)
	}
}

func TestBlocksOutside(t *testing.T) {
	tb := newTestBlocks(t)
	vb := tb.written(1, 1000, 7)
	if err := tb.b.Write(vb, 0, 10, 0, 1); err == nil {
		t.Fatal("write outside the segments")
	}
	vb = tb.written(1, 1000, 7)
	if _, err := tb.b.Move(vb, tb.addr(1, 0), 7, uint64(tb.geo.DeviceBytes())); err == nil {
		t.Fatal("move outside the segments")
	}
}

func TestBlocksVerifyRepair(t *testing.T) {
	tb := newTestBlocks(t)
	a := tb.written(1, 1000, 7)
	b := tb.written(2, 500, 8)
	tb.reload()
	tb.verify()
	if err := tb.b.Verify([]uint32{3}); err != nil {
		t.Fatal(err)
	}
	// Damage: usage that no block explains, a count no reference explains.
	if err := tb.b.Usage().Add(3, 12345, 0); err != nil {
		t.Fatal(err)
	}
	if err := tb.b.Verify([]uint32{1, 2}); err != nil {
		t.Fatalf("the damage is not in segments 1 and 2: %v", err)
	}
	if err := tb.b.Verify([]uint32{3}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("verify of segment 3: %v", err)
	}
	if err := tb.b.Verify(nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("verify of all: %v", err)
	}
	var notes []string
	err := tb.b.Repair(func(vb uint64) uint32 {
		if vb == a {
			return 2
		}
		return 0
	}, func(s string) { notes = append(notes, s) })
	if err != nil || len(notes) != 4 {
		t.Fatalf("repair: %v %q", err, notes)
	}
	tb.verify()
	if e, _ := tb.b.DAT().Live(a); e.Refs != 2 {
		t.Fatalf("block %d: %+v", a, e)
	}
	if e, _ := tb.b.DAT().Get(b); !e.Free() {
		t.Fatalf("block %d: %+v", b, e)
	}
	if tb.live(1) != 1000 || tb.live(2) != 0 || tb.live(3) != 0 {
		t.Fatalf("live bytes: %d, %d, %d", tb.live(1), tb.live(2), tb.live(3))
	}
}

// In a build that checks invariants (race, or the tag "invariants") Flush
// refuses to write usage that disagrees with the DAT; other builds leave
// it to the checker.
func TestFlushChecksInvariant(t *testing.T) {
	tb := newTestBlocks(t)
	tb.written(1, 1000, 7)
	if err := tb.b.Flush(tb.put, tb.put); err != nil {
		t.Fatal(err)
	}
	if err := tb.b.Usage().Add(3, 12345, 0); err != nil {
		t.Fatal(err)
	}
	err := tb.b.Flush(tb.put, tb.put)
	if invariants.Enabled && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a flush of usage the DAT does not explain: %v", err)
	}
	if !invariants.Enabled && err != nil {
		t.Fatalf("a build without invariant checks checked: %v", err)
	}
}
