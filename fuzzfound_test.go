package txfs

import (
	"errors"
	"testing"

	"github.com/txfs/txfs/journal"
	"github.com/txfs/txfs/segment"
)

// Damage the structure-aware fuzz targets found, each made again by hand:
// the base image with one change, resealed so every checksum holds.

// damagedImage returns a device holding the base image after change.
func damagedImage(t *testing.T, change func(m *imageModel)) *segment.MemDevice {
	t.Helper()
	m, err := decodeImage(fuzzBaseImage(t))
	if err != nil {
		t.Fatal(err)
	}
	change(m)
	img, err := m.seal()
	if err != nil {
		t.Fatal(err)
	}
	dev := segment.NewMemDevice(int64(len(img)))
	dev.WriteAt(img, 0)
	return dev
}

// insertRecord puts r at position i of the records of the n-th unit after
// the checkpoint.
func insertRecord(t *testing.T, m *imageModel, n, i int, r journal.Record) {
	u := m.unitsAfterCheckpoint()[n]
	rs, err := u.decodeRecords()
	if err != nil {
		t.Fatal(err)
	}
	u.setRecords(append(rs[:i], append([]journal.Record{r}, rs[i:]...)...))
}

// TestReplayAllocFarBeyondTheDAT: an Alloc record naming a virtual block
// far past the DAT's end made replay put every entry in between on the
// free list (a huge number exhausts memory). Only a checkpoint that never
// became durable can have taken blocks past the end, and no more than the
// nodes it wrote, so the record is refused.
func TestReplayAllocFarBeyondTheDAT(t *testing.T) {
	dev := damagedImage(t, func(m *imageModel) {
		far := m.ckpts[0].rec.DAT.Count + 100000
		insertRecord(t, m, 0, 1, journal.Record{Type: journal.RecAlloc, V: far})
	})
	for _, ro := range []bool{true, false} {
		v, err := Open(dev, Options{ReadOnly: ro})
		if err == nil {
			v.Close()
			t.Fatal("the volume opened")
		}
		if !errors.Is(err, ErrIO) {
			t.Fatalf("open: %v", err)
		}
	}
}

// TestReplayPastACheckpointThatNeverBecameCurrent: with the superblocks
// still naming the checkpoint before the newest (a power cut before the
// superblock write), replay skips the newest checkpoint's units, whose
// nodes took virtual blocks past the DAT's end, and then replays
// allocations past them. That must work and give the same volume.
func TestReplayPastACheckpointThatNeverBecameCurrent(t *testing.T) {
	want := func() string {
		dev := segment.NewMemDevice(fuzzDevSize)
		dev.WriteAt(fuzzBaseImage(t), 0)
		v, err := Open(dev, Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		s, err := dump(v)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	var gap bool
	dev := damagedImage(t, func(m *imageModel) {
		old := m.ckpts[1].unit
		for _, sb := range m.slots {
			sb.Checkpoint = segment.UnitRef{Addr: old.addr, Len: old.hdr.Length, Seq: old.hdr.Seq, Sum: old.hdr.Sum}
		}
		// The case needs an allocation past the DAT of the older checkpoint
		// plus what the operations before the newer one allocated.
		count := m.ckpts[0].rec.DAT.Count
		for _, u := range m.unitsAfterCheckpoint() {
			rs, _ := u.decodeRecords()
			for _, r := range rs {
				gap = gap || (r.Type == journal.RecAlloc && r.V >= count)
			}
		}
	})
	if !gap {
		t.Fatal("no allocation past the newer checkpoint's nodes")
	}
	v, err := Open(dev, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
	if got, err := dump(v); err != nil || got != want {
		t.Fatalf("replayed from the older checkpoint:\n%s\n%v\nwant:\n%s", got, err, want)
	}
}
