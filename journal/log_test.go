package journal

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/txfs/txfs/segment"
)

// testLog is a Log on a memory device of 16 segments of 64 KiB, with its
// writer running, as a volume would hold it.
type testLog struct {
	*Log
	mu      sync.Mutex
	dev     *segment.MemDevice
	geo     segment.Geometry
	fatal   error
	touched map[uint32]uint64
	durable uint64
	sealed  int
	done    chan struct{}
}

func newTestLog(t *testing.T) *testLog {
	t.Helper()
	tl := &testLog{dev: segment.NewMemDevice(2 << 20), touched: map[uint32]uint64{}, done: make(chan struct{})}
	geo, err := segment.GeometryFor(tl.dev.Size(), 4096, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	tl.geo = geo
	tl.Log = NewLog(Config{Mu: &tl.mu, Changed: sync.NewCond(&tl.mu), Wake: sync.NewCond(&tl.mu), Dev: tl.dev, Geo: geo, VolumeID: 42,
		Err: func() error { return tl.fatal },
		Fail: func(err error) error {
			if tl.fatal == nil {
				tl.fatal = err
				tl.cfg.Changed.Broadcast()
				tl.cfg.Wake.Broadcast()
			}
			return tl.fatal
		},
		Touch:   func(s uint32, seq uint64) error { tl.touched[s] = seq; return nil },
		Durable: func(seq uint64) { tl.durable = seq },
		Sealed:  func() { tl.sealed++ },
	})
	for s := geo.Segments; s > 2; s-- {
		tl.Free = append(tl.Free, s-1)
	}
	tl.CurSeg, tl.NextSeg, tl.Seq = 0, 1, 1
	tl.Cur = tl.NewUnit(segment.UnitOps, uint64(geo.SegmentOffset(0)))
	go tl.Run(tl.done)
	t.Cleanup(tl.close)
	return tl
}

// close ends the writer once everything is durable.
func (tl *testLog) close() {
	tl.mu.Lock()
	tl.Closing = true
	tl.cfg.Wake.Broadcast()
	tl.mu.Unlock()
	<-tl.done
}

// readUnit reads the unit at addr from the device.
func (tl *testLog) readUnit(t *testing.T, addr uint64) *segment.Unit {
	t.Helper()
	s, _ := tl.geo.SegmentOf(addr)
	hdr := make([]byte, segment.UnitHeaderSize)
	if _, err := tl.dev.ReadAt(hdr, int64(addr)); err != nil {
		t.Fatal(err)
	}
	maxLen := 2 * tl.geo.SegmentSize
	h, err := segment.ParseUnitHeader(hdr, maxLen)
	if err != nil {
		t.Fatalf("unit at %d: %v", addr, err)
	}
	place := segment.UnitPlace{Addr: addr, Split: uint32(tl.SegEnd(s) - addr)}
	if h.NextSeg != NoSeg {
		place.Next = uint64(tl.geo.SegmentOffset(h.NextSeg))
	}
	buf := make([]byte, h.Length)
	for _, p := range place.Pieces(h.Length) {
		if _, err := tl.dev.ReadAt(buf[p.Start:p.End], int64(p.Addr)); err != nil {
			t.Fatal(err)
		}
	}
	u, err := segment.DecodeUnit(buf, place, maxLen)
	if err != nil {
		t.Fatalf("unit at %d: %v", addr, err)
	}
	return u
}

// Committed transactions reach the device as units chained by sequence
// number and checksum, each ending with the durable mark, once a caller
// waits for them.
func TestLogWritesChainedUnits(t *testing.T) {
	tl := newTestLog(t)
	var addrs []uint64
	for i := range 3 {
		tl.mu.Lock()
		if err := tl.Ensure(segment.UnitOps, 0, 0, 64); err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, tl.Cur.Addr)
		var w Writer
		w.Op(uint64(i + 1))
		tl.Commit(w.Buf)
		seq := tl.Seq
		if err := tl.WaitDurable(seq); err != nil {
			t.Fatal(err)
		}
		if tl.durable != seq || tl.Written < seq {
			t.Fatalf("unit %d waited for: durable %d, written %d", seq, tl.durable, tl.Written)
		}
		tl.mu.Unlock()
	}
	prev := uint64(0)
	for i, addr := range addrs {
		u := tl.readUnit(t, addr)
		if u.Header.Seq != uint64(i+1) || u.Header.VolumeID != 42 || (i > 0 && u.Header.Prev != prev) {
			t.Fatalf("unit %d: header %+v, want sequence %d after checksum %x", i, u.Header, i+1, prev)
		}
		prev = u.Header.Sum
		var got []Record
		if err := Decode(u.Records, func(r *Record) error { got = append(got, *r); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Type != RecOp || got[0].Op != uint64(i+1) || got[1].Type != RecMark || got[1].V != uint64(i) {
			t.Fatalf("unit %d holds %+v, want its operation and the mark %d", i+1, got, i)
		}
	}
	if tl.sealed != 3 || tl.touched[0] != 3 {
		t.Fatalf("%d units sealed, segment 0 last touched by unit %d", tl.sealed, tl.touched[0])
	}
}

// A unit longer than the rest of its segment continues at the start of
// the next one, which then becomes the current segment and takes the next
// free segment as its next; while a checkpoint is written, the segment
// taken is noted. The room shrinks by what was written.
func TestLogUnitContinuesInNextSegment(t *testing.T) {
	tl := newTestLog(t)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	block := bytes.Repeat([]byte{9}, 4096)
	// Half a segment first, so that the units after it can reach past
	// the end of segment 0 (a unit holds at most a segment).
	if err := tl.Ensure(segment.UnitOps, 8*len(block), 8, 8); err != nil {
		t.Fatal(err)
	}
	for range 8 {
		tl.Cur.AddBlock(segment.SummaryEntry{Kind: segment.SumData, ID: 1, Sum: segment.Checksum(block)}, block)
	}
	tl.Commit([]byte{RecOp, 1})
	if err := tl.Seal(); err != nil {
		t.Fatal(err)
	}
	tl.Checkpointing = true
	room := tl.Room()
	free := len(tl.Free)
	first, empty := tl.Cur.Addr, int64(tl.Cur.Size())
	for i := 0; tl.CurSeg == 0; i++ {
		if err := tl.Ensure(segment.UnitMeta, len(block), 1, 0); err != nil {
			t.Fatal(err)
		}
		tl.Cur.AddBlock(segment.SummaryEntry{Kind: segment.SumNode, ID: 1, Sum: segment.Checksum(block)}, block)
		if i > 32 {
			t.Fatal("the log never left segment 0")
		}
		if tl.Cur.Place.Split < uint32(tl.Cur.Size()) {
			if err := tl.Seal(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if tl.CurSeg != 1 || tl.NextSeg == NoSeg || len(tl.Free) != free-1 || len(tl.UsedSince) != 1 || tl.UsedSince[0] != tl.NextSeg {
		t.Fatalf("after crossing: segment %d, next %d, %d free (of %d), taken while checkpointing %v",
			tl.CurSeg, tl.NextSeg, len(tl.Free), free, tl.UsedSince)
	}
	written := int64(tl.Cur.Addr-uint64(tl.geo.SegmentOffset(1))) + int64(tl.SegEnd(0)-first)
	// Room counted a padding entry lost where the log crosses over.
	if got, want := room-tl.Room(), written+int64(tl.Cur.Size())-empty-tl.PerBoundary(); got != want {
		t.Fatalf("room shrank by %d after %d bytes of log, want %d", got, written, want)
	}
	if err := tl.WaitDurable(tl.Seq - 1); err != nil {
		t.Fatal(err)
	}
	// Follow the units of segment 0 to the one that reaches segment 1.
	u := tl.readUnit(t, first)
	for u.Header.Length < u.Place.Split {
		u = tl.readUnit(t, u.Place.DevAddr(u.Header.Length))
	}
	if u.Header.NextSeg != 1 || u.Header.Length == u.Place.Split || tl.touched[1] != u.Header.Seq {
		t.Fatalf("the last unit of segment 0 is %d bytes, %d of them in it, naming segment %d; segment 1 noted for unit %d",
			u.Header.Length, u.Place.Split, u.Header.NextSeg, tl.touched[1])
	}
}

// Units not yet written are read from memory; once written, from the
// device.
func TestLogReadRawBeforeWrite(t *testing.T) {
	tl := newTestLog(t)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	block := bytes.Repeat([]byte{5}, 4096)
	if err := tl.Ensure(segment.UnitOps, len(block), 1, 0); err != nil {
		t.Fatal(err)
	}
	_, addr := tl.Cur.AddBlock(segment.SummaryEntry{Kind: segment.SumData, ID: 7, Sum: segment.Checksum(block)}, block)
	tl.Commit([]byte{RecWrite, 7})
	got := make([]byte, len(block))
	if !tl.InMemory(addr, addr+1) {
		t.Fatal("a block of the unit being built is not in memory")
	}
	if err := tl.ReadRaw(addr, got); err != nil || !bytes.Equal(got, block) {
		t.Fatalf("read from the unit being built: %v", err)
	}
	if err := tl.WaitDurable(tl.Seq); err != nil {
		t.Fatal(err)
	}
	if tl.InMemory(addr, addr+1) {
		t.Fatal("a durable block is still in memory")
	}
	clear(got)
	if err := tl.ReadRaw(addr, got); err != nil || !bytes.Equal(got, block) {
		t.Fatalf("read from the device: %v", err)
	}
}

// A writer that meets a device error stops the log: waiters get the error,
// and once the writer has ended, WaitDurable says so.
func TestLogStopsOnDeviceError(t *testing.T) {
	tl := newTestLog(t)
	tl.mu.Lock()
	if err := tl.Ensure(segment.UnitOps, 0, 0, 8); err != nil {
		t.Fatal(err)
	}
	tl.Commit([]byte{RecOp, 1})
	bad := errors.New("device gone")
	tl.fatal = bad
	tl.cfg.Wake.Broadcast()
	if err := tl.WaitDurable(tl.Seq); !errors.Is(err, bad) {
		t.Fatalf("WaitDurable after the failure: %v", err)
	}
	tl.mu.Unlock()
	<-tl.done
	tl.mu.Lock()
	tl.fatal = nil
	err := tl.WaitDurable(tl.Seq)
	tl.mu.Unlock()
	if !errors.Is(err, ErrWriterStopped) {
		t.Fatalf("WaitDurable once the writer ended: %v", err)
	}
}

// Following the chain from the first unit finds every unit written, in
// order, across segments, and ends where the log goes on: the walk's head
// is then the writer's.
func TestChainFollowsTheLog(t *testing.T) {
	tl := newTestLog(t)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	block := bytes.Repeat([]byte{3}, 4096)
	first := tl.Cur.Addr
	for i := 0; tl.CurSeg < 3; i++ {
		n := 1 + i%5 // units of 1 to 5 blocks, so that some cross over
		if err := tl.Ensure(segment.UnitOps, n*len(block), n, 8); err != nil {
			t.Fatal(err)
		}
		for range n {
			tl.Cur.AddBlock(segment.SummaryEntry{Kind: segment.SumData, ID: uint64(i), Sum: segment.Checksum(block)}, block)
		}
		tl.Commit([]byte{RecOp, byte(i)})
		if err := tl.Seal(); err != nil {
			t.Fatal(err)
		}
	}
	if err := tl.WaitDurable(tl.Seq - 1); err != nil {
		t.Fatal(err)
	}
	var warnings []string
	walk := NewLog(Config{Dev: tl.dev, Geo: tl.geo, VolumeID: 42,
		Warn: func(format string, a ...any) { warnings = append(warnings, fmt.Sprintf(format, a...)) }})
	walk.CurSeg, walk.NextSeg = 0, NoSeg
	used := map[uint32]bool{}
	pos, seq, prev := first, uint64(1), uint64(0)
	crossed := 0
	for {
		u := walk.NextUnit(pos, seq, prev)
		if u == nil {
			break
		}
		if seq > 1 && u.Header.Seq != seq {
			t.Fatalf("the walk found unit %d where unit %d goes", u.Header.Seq, seq)
		}
		if u.Header.Length > u.Place.Split {
			crossed++
		}
		pos, seq, prev = walk.Follow(u, used)
	}
	// No unit of segment 3 names its next yet: recovery chooses one.
	if seq != tl.Seq || pos != tl.Cur.Addr || walk.CurSeg != tl.CurSeg || walk.NextSeg != NoSeg || crossed == 0 || len(warnings) > 0 {
		t.Fatalf("the walk ends before unit %d at byte %d in segment %d (next %d), %d units crossing over, warnings %q; the log is at unit %d, byte %d, segment %d (next %d)",
			seq, pos, walk.CurSeg, walk.NextSeg, crossed, warnings, tl.Seq, tl.Cur.Addr, tl.CurSeg, tl.NextSeg)
	}
	for s := range uint32(4) {
		if !used[s] {
			t.Errorf("segment %d, which the log passed through, is not noted as used", s)
		}
	}
}

// A durable checkpoint gives back the segments it showed empty, except
// those the log took while it was written; a head without a next segment
// takes one of them.
func TestLogGiveBack(t *testing.T) {
	tl := newTestLog(t)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.Free = nil
	tl.NextSeg = NoSeg
	tl.Cur = tl.NewUnit(segment.UnitOps, tl.Cur.Addr)
	tl.UsedSince = []uint32{7}
	tl.GiveBack([]uint32{0, 5, 6, 7, 9})
	if tl.NextSeg != 9 || len(tl.Free) != 2 || tl.Free[0] != 5 || tl.Free[1] != 6 {
		t.Fatalf("after the checkpoint: next segment %d, free %v; want 9 and [5 6]", tl.NextSeg, tl.Free)
	}
	if tl.Cur.Place.Next != uint64(tl.geo.SegmentOffset(9)) {
		t.Fatal("the empty unit being built does not name the next segment")
	}
}
