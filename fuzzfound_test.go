package txfs

import (
	"encoding/binary"
	"errors"
	"runtime"
	"testing"

	"github.com/txfs/txfs/inode"
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

// TestDATEntryOfAHugeLength: a DAT entry whose stored length is far more
// than a block made reads and the checker allocate that length before
// reading (4 GiB at most, which exhausts memory). A stored block is never
// longer than a block, so such an entry is damage and nothing is read.
func TestDATEntryOfAHugeLength(t *testing.T) {
	var vb uint64
	dev := damagedImage(t, func(m *imageModel) {
		// The first block of /big (the file of many blocks), in the
		// checkpoint's DAT.
		blocks, first := map[Ino]int{}, map[Ino]uint64{}
		for _, n := range m.nodes {
			_, items, _ := parseNodeItems(n.raw)
			for _, it := range items {
				if it.key.Type == itemBlock {
					if blocks[it.key.Ino]++; it.key.Off == 0 {
						first[it.key.Ino] = leUint64(it.val)
					}
				}
			}
		}
		for ino, n := range blocks {
			if n > 100 {
				vb = first[ino]
			}
		}
		e := m.datEntry(vb)
		binary.LittleEndian.PutUint32(e[8:], 64<<20)
	})
	v, err := Open(dev, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	big, err := v.Lookup(RootIno, "big")
	if err != nil {
		t.Fatal(err)
	}
	allocated := func(fn func()) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		fn()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	var rerr error
	if n := allocated(func() { _, rerr = v.Read(big.Ino, make([]byte, 8192), 0) }); n > 4<<20 || !errors.Is(rerr, ErrIO) {
		t.Fatalf("read allocated %d bytes and returned %v", n, rerr)
	}
	var rep *CheckReport
	if n := allocated(func() { rep, _ = v.CheckReport() }); n > 16<<20 || len(rep.Problems) == 0 {
		t.Fatalf("check allocated %d bytes and found %v", n, rep.Problems)
	}
}

// TestAscendOverMisorderedLeaves: a leaf holding keys below those of the
// leaf before it (here a copy of the first leaf's items) made every scan
// of the tree go back to the first leaf and round again, for ever:
// Repair's scan of the namespace grew until memory ran out. The scan now
// stops with an error at a key that does not follow the one before.
func TestAscendOverMisorderedLeaves(t *testing.T) {
	dev := damagedImage(t, func(m *imageModel) {
		if m.nodes[0].raw[2] != 1 || len(m.nodes) < 4 {
			t.Fatal("the tree is not a root over leaves")
		}
		m.nodes[2].raw = append([]byte(nil), m.nodes[1].raw...)
		m.nodes[2].dirty = true
	})
	v, err := Open(dev, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = v.tree.Ascend(inode.Key{}, func(inode.Key, []byte) bool { n++; return n < 100000 })
	if n >= 100000 || !errors.Is(err, inode.ErrCorrupt) {
		t.Fatalf("the scan visited %d items and returned %v", n, err)
	}
	v.Close()
	// Opening read-write scans for orphans; if that passes, Repair scans
	// everything. Either fails.
	v, err = Open(dev, Options{})
	if err == nil {
		_, err = v.Repair()
		v.Close()
	}
	if !errors.Is(err, ErrIO) {
		t.Fatalf("open and repair: %v", err)
	}
}
