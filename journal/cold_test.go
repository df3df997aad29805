package journal

import (
	"slices"
	"testing"

	"github.com/txfs/txfs/segment"
)

// The cleaner's segment comes from the free list, once, and stays its own
// until released.
func TestLogTakeCold(t *testing.T) {
	tl := newTestLog(t)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	size := int64(tl.geo.SegmentSize)
	if tl.ColdSeg != NoSeg || tl.ColdRoom() != 0 {
		t.Fatalf("a new log holds segment %d for the cleaner, %d bytes of room", tl.ColdSeg, tl.ColdRoom())
	}
	free := slices.Clone(tl.Free)
	if !tl.TakeCold() {
		t.Fatal("no segment for the cleaner with free ones")
	}
	cold := free[len(free)-1]
	if tl.ColdSeg != cold || !slices.Equal(tl.Free, free[:len(free)-1]) {
		t.Fatalf("took %d, free %v; want %d taken from %v", tl.ColdSeg, tl.Free, cold, free)
	}
	if tl.ColdPos != uint64(tl.geo.SegmentOffset(cold)) || tl.ColdRoom() != size {
		t.Fatalf("cleaner's position %d, room %d; want the start of segment %d, %d", tl.ColdPos, tl.ColdRoom(), cold, size)
	}
	if len(tl.UsedSince) != 0 {
		t.Fatalf("noted as used by a checkpoint that is not running: %v", tl.UsedSince)
	}

	// Held: taking again changes nothing.
	tl.ColdPos += 3 * 4096
	if !tl.TakeCold() || tl.ColdSeg != cold || tl.ColdPos != uint64(tl.geo.SegmentOffset(cold))+3*4096 || len(tl.Free) != len(free)-1 {
		t.Fatalf("second take: segment %d at %d, %d free", tl.ColdSeg, tl.ColdPos, len(tl.Free))
	}
	if tl.ColdRoom() != size-3*4096 {
		t.Fatalf("room %d after 3 blocks", tl.ColdRoom())
	}
	tl.ColdPos = tl.SegEnd(cold)
	if tl.ColdRoom() != 0 {
		t.Fatalf("room %d in a full segment", tl.ColdRoom())
	}

	// Released, it is not free again: it holds what the cleaner moved.
	tl.ReleaseCold()
	if tl.ColdSeg != NoSeg || tl.ColdRoom() != 0 || slices.Contains(tl.Free, cold) || len(tl.UsedSince) != 0 {
		t.Fatalf("after release: segment %d, room %d, free %v, used %v", tl.ColdSeg, tl.ColdRoom(), tl.Free, tl.UsedSince)
	}
	tl.ReleaseCold() // nothing held: nothing to do
	if tl.ColdSeg != NoSeg || len(tl.UsedSince) != 0 {
		t.Fatal("a second release changed something")
	}

	// Nothing free: nothing to take.
	tl.Free = nil
	if tl.TakeCold() || tl.ColdSeg != NoSeg || tl.ColdRoom() != 0 {
		t.Fatalf("took segment %d with none free", tl.ColdSeg)
	}
}

// While a checkpoint is written, the cleaner's segment counts as taken
// since it began, whether taken or released meanwhile: the checkpoint may
// have found it empty before the cleaner wrote there.
func TestLogColdWhileCheckpointing(t *testing.T) {
	tl := newTestLog(t)
	tl.mu.Lock()
	defer tl.mu.Unlock()

	tl.Checkpointing = true
	if !tl.TakeCold() {
		t.Fatal("no segment for the cleaner")
	}
	cold := tl.ColdSeg
	if !tl.TakeCold() || !slices.Equal(tl.UsedSince, []uint32{cold}) {
		t.Fatalf("taken during a checkpoint: used %v, want [%d]", tl.UsedSince, cold)
	}

	// Taken before the checkpoint began, released during it.
	tl.Checkpointing, tl.UsedSince = false, nil
	tl.ReleaseCold()
	if !tl.TakeCold() {
		t.Fatal("no segment for the cleaner")
	}
	cold = tl.ColdSeg
	tl.Checkpointing = true
	tl.ReleaseCold()
	if !slices.Equal(tl.UsedSince, []uint32{cold}) {
		t.Fatalf("released during a checkpoint: used %v, want [%d]", tl.UsedSince, cold)
	}
	// The checkpoint saw it empty; it is not given back.
	tl.GiveBack([]uint32{cold, 12})
	if slices.Contains(tl.Free, cold) || !slices.Contains(tl.Free, 12) {
		t.Fatalf("after the checkpoint: free %v", tl.Free)
	}
	tl.ReleaseCold() // nothing held
	if len(tl.UsedSince) != 1 {
		t.Fatalf("a release of nothing noted %v", tl.UsedSince)
	}

	// Released with no checkpoint running: the next one decides.
	tl.Checkpointing, tl.UsedSince = false, nil
	if !tl.TakeCold() {
		t.Fatal("no segment for the cleaner")
	}
	cold = tl.ColdSeg
	tl.ReleaseCold()
	tl.GiveBack([]uint32{cold})
	if !slices.Equal(tl.Free, []uint32{cold}) {
		t.Fatalf("a released segment a checkpoint found empty is not free: %v", tl.Free)
	}
}

// A checkpoint never gives back the segment the cleaner holds, even when
// it found it empty, nor makes it the log's next segment.
func TestLogGiveBackKeepsColdSegment(t *testing.T) {
	tl := newTestLog(t)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if !tl.TakeCold() {
		t.Fatal("no segment for the cleaner")
	}
	cold := tl.ColdSeg
	tl.Free = nil
	tl.NextSeg = NoSeg
	tl.Cur = tl.NewUnit(segment.UnitOps, tl.Cur.Addr)

	tl.GiveBack([]uint32{cold})
	if len(tl.Free) != 0 || tl.NextSeg != NoSeg || tl.ColdSeg != cold {
		t.Fatalf("the cleaner's segment %d given back: free %v, next %d", cold, tl.Free, tl.NextSeg)
	}
	tl.GiveBack([]uint32{5, cold, 6})
	if tl.NextSeg != 6 || !slices.Equal(tl.Free, []uint32{5}) || tl.ColdSeg != cold {
		t.Fatalf("free %v, next %d, cleaner's %d; want [5], 6, %d", tl.Free, tl.NextSeg, tl.ColdSeg, cold)
	}
	// The log never enters it.
	for range 3 {
		tl.GiveBack([]uint32{cold, 7, 8})
		tl.NextSeg = NoSeg
		tl.TakeNext()
		if tl.NextSeg == cold {
			t.Fatal("the log took the cleaner's segment as its next")
		}
	}
}
