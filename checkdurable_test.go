package txfs

import (
	"strings"
	"testing"

	"github.com/txfs/txfs/fsck"
	"github.com/txfs/txfs/segment"
)

// A durable check of a volume whose last checkpoint cannot be read
// reports the damage instead of failing itself.
func TestCheckDurableReportsAnUnreadableCheckpoint(t *testing.T) {
	v, dev := newTestVolume(t, 16<<20, Options{})
	f, err := v.Create(RootIno, "f", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(f.Ino, []byte("some data"), 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	ref := v.sb.Checkpoint
	s, _ := v.geo.SegmentOf(ref.Addr)
	place := segment.UnitPlace{Addr: ref.Addr, Split: uint32(v.log.SegEnd(s) - ref.Addr)}
	if ref.NextSeg < v.geo.Segments {
		place.Next = uint64(v.geo.SegmentOffset(ref.NextSeg))
	}
	v.mu.Unlock()
	// The record and its copy.
	places := []int64{int64(ref.Addr) + 40, int64(place.DevAddr(ref.Len)) + 40}
	saved := make([][]byte, len(places))
	for i, at := range places {
		saved[i] = make([]byte, 1)
		if _, err := dev.ReadAt(saved[i], at); err != nil {
			t.Fatal(err)
		}
		if _, err := dev.WriteAt([]byte{saved[i][0] ^ 0xff}, at); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { // for the checks at the end
		for i, at := range places {
			dev.WriteAt(saved[i], at)
		}
	})
	rep, err := fsck.CheckDurable(v.Fsck(), nil)
	if err != nil {
		t.Fatalf("the checker failed: %v", err)
	}
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "the last durable checkpoint cannot be read") {
		t.Fatalf("found %q", rep.Problems)
	}
}
