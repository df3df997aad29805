package txfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/inode"
	"github.com/txfs/txfs/journal"
	"github.com/txfs/txfs/segment"
)

// Damage the structure-aware fuzz targets found, each made again by hand:
// the base image with one change, resealed so every checksum holds.

// damagedImage returns a device holding the version 1 base image after
// change (where these were found).
func damagedImage(t *testing.T, change func(m *imageModel)) *segment.MemDevice {
	t.Helper()
	return damagedImageOf(t, 1, change)
}

// damagedImageOf returns a device holding the base image of a format
// version after change.
func damagedImageOf(t *testing.T, version int, change func(m *imageModel)) *segment.MemDevice {
	t.Helper()
	m, err := decodeImage(fuzzBaseImage(t, version))
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

// checkReadOnly opens dev read-only and returns what the checker finds.
func checkReadOnly(t *testing.T, dev *segment.MemDevice) *CheckReport {
	t.Helper()
	v, err := Open(dev, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	rep, err := v.CheckReport()
	if err != nil {
		t.Fatal(err)
	}
	return rep
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
		dev.WriteAt(fuzzBaseImage(t, 1), 0)
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
		for _, sb := range m.superblocks() {
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
				if it.key.Type == inode.TypeBlock {
					if blocks[it.key.Ino]++; it.key.Off == 0 {
						first[it.key.Ino] = inode.DecodeBlockItem(it.val)
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
	err = v.tree.Ascend(btree.Key{}, func(btree.Key, []byte) bool { n++; return n < 100000 })
	if n >= 100000 || !errors.Is(err, btree.ErrCorrupt) {
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

// TestAscendOverAnUnsortedLeaf: a small leaf that holds a copy of a key
// of the leaf before it (below its own range, in order within the leaf)
// decodes fine; replay's deletes then merge it with that leaf, and the
// merged leaf in memory is out of order. The scan checked keys only against where it
// started, so a read of the file met block 0 after block 6 and sliced
// its buffer backwards: a panic. The scan now requires every key to
// follow the one before.
func TestAscendOverAnUnsortedLeaf(t *testing.T) {
	const big = 43 // inode of /big in the base image
	dev := damagedImage(t, func(m *imageModel) {
		var block0 nodeItem
		for _, n := range m.nodes {
			level, items, _ := parseNodeItems(n.raw)
			for _, it := range items {
				if it.key == inode.BlockKey(big, 0) {
					block0 = it
				}
			}
			if level == 0 && items[0].key == inode.BlockKey(big, 7) {
				// Small enough for replay's deletes to merge it.
				raw, _ := encodeNodeItems(len(n.raw), 0, append([]nodeItem{block0}, items[:16]...))
				n.raw, n.dirty = raw, true
			}
		}
	})
	v, err := Open(dev, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Read(big, make([]byte, 64<<10), 0); !errors.Is(err, ErrIO) {
		t.Fatalf("read: %v", err)
	}
}

// editTree edits the items of the checkpoint's tree (a root over leaves)
// and puts each back into the leaf whose key range holds it.
func editTree(t *testing.T, m *imageModel, fn func([]nodeItem) []nodeItem) {
	t.Helper()
	level, seps, _ := parseNodeItems(m.nodes[0].raw)
	if level != 1 {
		t.Fatal("the tree is not a root over leaves")
	}
	var all []nodeItem
	for _, s := range seps {
		_, items, _ := parseNodeItems(m.byVB[s.kid].raw)
		all = append(all, items...)
	}
	all = fn(all)
	sortItems(all)
	for i, s := range seps {
		var items []nodeItem
		for _, it := range all {
			if (i == 0 || !it.key.Less(s.key)) && (i == len(seps)-1 || it.key.Less(seps[i+1].key)) {
				items = append(items, it)
			}
		}
		n := m.byVB[s.kid]
		raw, ok := encodeNodeItems(len(n.raw), 0, items)
		if !ok {
			t.Fatal("a leaf overflows")
		}
		n.raw, n.dirty = raw, true
	}
}

// TestCheckerSeesWhatReadsSee: damage that makes lookups and reads fail,
// or leaves something that nothing ever finds, which the checker passed
// as clean.
func TestCheckerSeesWhatReadsSee(t *testing.T) {
	const file10, big = 13, 43 // inodes of /d/file10 and /big in the base image
	// renameEntry files the entry called from in directory 2 under new
	// names (all in one item).
	renameEntry := func(items []nodeItem, to ...string) []nodeItem {
		var out []nodeItem
		var moved []inode.Dirent
		for _, it := range items {
			if it.key.Type == inode.TypeDirent && it.key.Ino == 2 {
				es, _ := inode.DecodeDirents(it.val)
				if len(es) == 1 && (es[0].Name == "file10" || es[0].Name == "file11") && len(moved) < len(to) {
					es[0].Name = to[len(moved)]
					moved = append(moved, es[0])
					continue
				}
			}
			out = append(out, it)
		}
		return append(out, nodeItem{key: inode.DirentKey(2, inode.NameHash(to[0])), val: inode.EncodeDirents(moved)})
	}
	renameXattr := func(items []nodeItem, name string, hash uint64) []nodeItem {
		for i, it := range items {
			if it.key.Type == inode.TypeXattr && it.key.Ino == big {
				items[i].key.Off = hash
				items[i].val = inode.EncodeXattrs([]inode.Xattr{{Name: name, Value: []byte("a note")}})
			}
		}
		return items
	}
	for _, c := range []struct {
		name string
		edit func([]nodeItem) []nodeItem
	}{
		{"inode item at an offset", func(items []nodeItem) []nodeItem {
			for i := range items {
				if items[i].key == inode.InodeKey(file10) {
					items[i].key.Off = 5
				}
			}
			return items
		}},
		{"orphan mark outside the orphan list", func(items []nodeItem) []nodeItem {
			// file10 loses its name and becomes an orphan, marked in the
			// wrong place: nothing would ever free it.
			items = renameEntry(items, "gone")
			items = items[:len(items)-1]
			for i := range items {
				if items[i].key == inode.InodeKey(file10) {
					rec, _ := inode.DecodeRecord(file10, items[i].val)
					rec.Nlink = 0
					items[i].val = rec.Encode()
				}
			}
			return append(items, nodeItem{key: btree.Key{Ino: 5, Type: inode.TypeOrphan, Off: file10}})
		}},
		{"truncate mark outside the list", func(items []nodeItem) []nodeItem {
			return append(items, nodeItem{key: btree.Key{Ino: 5, Type: inode.TypeTrunc, Off: big}, val: inode.EncodeTruncItem(0)})
		}},
		{"truncate mark of a missing inode", func(items []nodeItem) []nodeItem {
			return append(items, nodeItem{key: inode.TruncKey(9999), val: inode.EncodeTruncItem(0)})
		}},
		{"entry with a slash", func(items []nodeItem) []nodeItem { return renameEntry(items, "a/b") }},
		{"entry named dot-dot", func(items []nodeItem) []nodeItem { return renameEntry(items, "..") }},
		{"two entries of one name", func(items []nodeItem) []nodeItem { return renameEntry(items, "twice", "twice") }},
		{"attribute under another name's hash", func(items []nodeItem) []nodeItem { return renameXattr(items, "user.note", 7) }},
		{"attribute outside the namespaces", func(items []nodeItem) []nodeItem { return renameXattr(items, "bogus", inode.NameHash("bogus")) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			rep := checkReadOnly(t, damagedImage(t, func(m *imageModel) { editTree(t, m, c.edit) }))
			if len(rep.Problems) == 0 {
				t.Fatal("the checker found nothing")
			}
			t.Log(rep.Problems)
		})
	}
}

// TestLogNamesANextSegmentThatHoldsData: the first unit of a segment names
// the segment where the log goes on when this one is full. Recovery took
// the name on trust, so a unit naming a segment that holds data (or the
// log's own segment, or none) made the first writes after Open, its
// checkpoint, overwrite live blocks. Such a segment is now replaced by a
// free one, with a warning, and the checkpoint Open takes names it.
func TestLogNamesANextSegmentThatHoldsData(t *testing.T) {
	want := func() string {
		v, err := Open(damagedImage(t, func(*imageModel) {}), Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		s, _ := dump(v)
		return s
	}()
	for _, next := range []uint32{0, 1, 2, fuzzSegments, 1 << 31} {
		t.Run(fmt.Sprint(next), func(t *testing.T) {
			dev := damagedImage(t, func(m *imageModel) {
				// The log's last segment is segment 2; its first unit
				// names the next.
				for _, u := range m.unitsAfterCheckpoint() {
					if s, _ := m.geo.SegmentOf(u.addr); s == 2 {
						u.hdr.NextSeg = next
						break
					}
				}
			})
			rep := checkReadOnly(t, dev)
			if len(rep.Warnings)+len(rep.Problems) == 0 {
				t.Error("the checker says nothing of the next segment")
			}
			// Enough writes to fill segment 2 and go on to the next.
			v, err := Open(dev, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				a, err := v.Create(RootIno, fmt.Sprint("more", i), 0o644, Owner{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := v.Write(a.Ino, incompressible(40<<10), 0); err != nil {
					t.Fatal(err)
				}
				if err := v.Fsync(a.Ino); err != nil {
					t.Fatal(err)
				}
				if err := v.Unlink(RootIno, fmt.Sprint("more", i)); err != nil {
					t.Fatal(err)
				}
				if err := v.Fsync(RootIno); err != nil {
					t.Fatal(err)
				}
			}
			if err := v.Check(); err != nil {
				t.Fatal(err)
			}
			// Crash now: recovery must follow the log to the segment it went to.
			crashed := dev.Crash(segment.CrashOptions{}, nil)
			v.Close()
			for _, d := range []*segment.MemDevice{crashed, dev} {
				v, err := Open(d, Options{ReadOnly: true})
				if err != nil {
					t.Fatal(err)
				}
				if err := v.Check(); err != nil {
					t.Fatal(err)
				}
				if got, err := dump(v); err != nil || got != want {
					t.Fatalf("after the writes:\n%s\n%v\nwant:\n%s", got, err, want)
				}
				v.Close()
			}
		})
	}
}

// incompressible returns n bytes LZ4 cannot shrink.
func incompressible(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(b)
	return b
}

// TestFreeingAnInodeDropsItsTruncateMark: a truncate whose freeing stopped
// early (ENOSPC) leaves its mark; freeing the whole inode afterwards
// (unlink of the last name) removed the inode and its orphan mark but not
// the truncate mark, and every read-write Open then failed finishing the
// truncate of an inode that no longer exists.
func TestFreeingAnInodeDropsItsTruncateMark(t *testing.T) {
	v, dev := newTestVolume(t, 32<<20, Options{})
	a, _ := v.Create(RootIno, "a", 0o644, Owner{})
	if _, err := v.Write(a.Ino, make([]byte, 5*4096), 0); err != nil {
		t.Fatal(err)
	}
	// The mark of an interrupted truncate, with the blocks past it still
	// mapped, as ENOSPC in the middle of freeing them leaves it.
	v.mu.Lock()
	tx, err := v.begin(opSetAttr, v.metaOp(2, true))
	if err == nil {
		err = tx.put(inode.TruncKey(a.Ino), inode.EncodeTruncItem(4096))
		tx.commit()
	}
	v.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Unlink(RootIno, "a"); err != nil {
		t.Fatal(err)
	}
	v = reopen(t, v, dev)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRootDirectoryMissing: a tree that has lost the root directory's
// inode. The checker did not say so (only that its entries were in "a
// directory" that does not exist), and repair then left a volume that
// checked clean but where every path lookup failed. The checker now
// reports it, and Repair makes the root directory again, which gives its
// entries back their names.
func TestRootDirectoryMissing(t *testing.T) {
	endLog := func(m *imageModel) { m.unitsAfterCheckpoint()[0].hdr.Seq += 100 }
	want := func() string {
		v, err := Open(damagedImage(t, endLog), Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		s, _ := dump(v)
		return s
	}()
	dev := damagedImage(t, func(m *imageModel) {
		endLog(m)
		editTree(t, m, func(items []nodeItem) []nodeItem {
			for i, it := range items {
				if it.key == inode.InodeKey(RootIno) {
					return append(items[:i], items[i+1:]...)
				}
			}
			return items
		})
	})
	rep := checkReadOnly(t, dev)
	missing := false
	for _, p := range rep.Problems {
		missing = missing || strings.Contains(p, "root directory")
	}
	if !missing {
		t.Fatalf("the checker does not report the missing root directory: %v", rep.Problems)
	}
	v, err := Open(dev, Options{})
	if err != nil {
		t.Fatal(err)
	}
	changed, err := v.Repair()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("repair: %v", changed)
	v = reopen(t, v, dev)
	defer v.Close()
	if got, err := dump(v); err != nil || got != want {
		t.Fatalf("after repair:\n%s\n%v\nwant:\n%s", got, err, want)
	}
}

// TestAddressesNearTheEndOfTheAddressSpace: a DAT entry or a table pointer
// whose address is near 2^64 made the bounds checks of reads from units
// not yet written overflow (addr + length wraps) and slice out of range: a
// panic in the checker and in reads.
func TestAddressesNearTheEndOfTheAddressSpace(t *testing.T) {
	const far = ^uint64(0)
	check := func(t *testing.T, dev *segment.MemDevice) {
		v, err := Open(dev, Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		rep, err := v.CheckReport()
		if err != nil || len(rep.Problems) == 0 {
			t.Fatalf("check: %v %v", rep.Problems, err)
		}
		if errs, _ := readEverything(v); len(errs) == 0 {
			t.Fatal("every read succeeded")
		}
	}
	t.Run("DAT entry", func(t *testing.T) {
		check(t, damagedImage(t, func(m *imageModel) {
			binary.LittleEndian.PutUint64(m.datEntry(2), far) // a data block
		}))
	})
	t.Run("table pointer", func(t *testing.T) {
		check(t, damagedImage(t, func(m *imageModel) {
			// The pointer to the DAT's second leaf, which only the
			// checker reads: the log ends at the checkpoint.
			m.unitsAfterCheckpoint()[0].hdr.Seq += 100
			root := m.ckpts[0].dat.root
			delete(root.kids, 1)
			segment.PutBlockPtr(root.blk.stored[segment.BlockPtrSize:], segment.BlockPtr{Addr: far})
		}))
	})
	t.Run("unit waiting for the writer", func(t *testing.T) {
		v, _ := newTestVolume(t, 32<<20, Options{})
		v.mu.Lock()
		defer v.mu.Unlock()
		v.log.Queue = append(v.log.Queue, &journal.SealedUnit{Place: segment.UnitPlace{Addr: 1 << 20, Split: 1 << 20}, Buf: make([]byte, 4096)})
		defer func() { v.log.Queue = v.log.Queue[:len(v.log.Queue)-1] }()
		if err := v.log.ReadRaw(far-10, make([]byte, 46)); err == nil {
			t.Fatal("read at the end of the address space succeeded")
		}
	})
}

// TestDATCountPastItsTable: a checkpoint record whose DAT entry count is
// far past the entries its table holds made the checker (and the repair
// of reference counts) visit every entry up to it: hours for 2^40. The
// leaf of the last entry is written by the checkpoint that counts it, so
// Open now refuses a count whose last entry has no leaf.
func TestDATCountPastItsTable(t *testing.T) {
	dev := damagedImage(t, func(m *imageModel) {
		m.ckpts[0].rec.DAT.Count = 1 << 40
		m.unitsAfterCheckpoint()[0].hdr.Seq += 100 // the log ends at the checkpoint
	})
	done := make(chan error, 1)
	go func() {
		v, err := Open(dev, Options{ReadOnly: true})
		if err == nil {
			_, err = v.CheckReport()
			v.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrIO) {
			t.Fatalf("open and check: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("open and check go on and on")
	}
}

// TestBlockInUseWithNoReferences: a DAT entry in use with reference count
// 0 (a count that reaches 0 frees the entry) that nothing references
// passed the checker, whose recount also found 0, and RepairCounts left
// it: the block and its space leaked for good.
func TestBlockInUseWithNoReferences(t *testing.T) {
	const big = 43 // inode of /big in the base image
	dev := damagedImage(t, func(m *imageModel) {
		m.unitsAfterCheckpoint()[0].hdr.Seq += 100 // the log ends at the checkpoint
		editTree(t, m, func(items []nodeItem) []nodeItem {
			var out []nodeItem
			for _, it := range items {
				switch {
				case it.key == inode.BlockKey(big, 149):
					binary.LittleEndian.PutUint32(m.datEntry(inode.DecodeBlockItem(it.val))[24:], 0)
					continue
				case it.key == inode.InodeKey(big):
					rec, _ := inode.DecodeRecord(big, it.val)
					rec.NBlocks--
					rec.Size = 149 * 4096
					it.val = rec.Encode()
				}
				out = append(out, it)
			}
			return out
		})
	})
	rep := checkReadOnly(t, dev)
	if len(rep.Problems) == 0 {
		t.Fatal("the checker found nothing")
	}
	t.Log(rep.Problems)
	v, err := Open(dev, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := v.RepairCounts(); err != nil || len(changed) == 0 {
		t.Fatalf("repair: %v %v", changed, err)
	}
	v = reopen(t, v, dev)
	v.Close()
}

// zeroBlock zeroes the first block of unit u after sealing, as a bad block
// of the medium does.
func zeroBlock(m *imageModel, u *modelUnit) {
	at, n := u.addr, uint64(m.geo.BlockSize)
	m.damage = append(m.damage, func(img []byte) { clear(img[at : at+n]) })
}

// TestUnitOfCheckpointKindPastTheDamage: a whole unit of checkpoint kind
// past the end of the log, whose record is not a checkpoint record, made
// the search for proof of damage read the durable mark of a record that
// did not decode: a nil dereference, a panic in Open. Such a unit carries
// no mark; the unit before it still proves the damage.
func TestUnitOfCheckpointKindPastTheDamage(t *testing.T) {
	dev := damagedImageOf(t, 2, func(m *imageModel) {
		units := m.unitsAfterCheckpoint()
		zeroBlock(m, units[3])
		units[5].hdr.Kind = segment.UnitCheckpoint
	})
	rep := checkReadOnly(t, dev)
	if err := rep.Err(); err == nil || !strings.Contains(err.Error(), "the log is damaged") {
		t.Fatalf("check: %v", err)
	}
	if _, err := Open(dev, Options{}); !errors.Is(err, ErrLogDamaged) {
		t.Fatalf("read-write open: %v", err)
	}
}

// TestVersion1LogThatWentOnInTheNextSegment: version 1 logs went on at the
// start of the next segment when the rest of a segment was too small.
// Recovery found the unit there but kept that segment as the next one, so
// the segment's units, which name another, drew a false warning that the
// units of one segment name two next segments (fsck.txfs printed it for
// every such volume).
func TestVersion1LogThatWentOnInTheNextSegment(t *testing.T) {
	rep := checkReadOnly(t, damagedImage(t, func(*imageModel) {}))
	if rep.Err() != nil || len(rep.Warnings) > 0 {
		t.Fatalf("problems %v, warnings %v", rep.Problems, rep.Warnings)
	}
}

// TestLogCutAtDamageBeyondWhichTheChainBreaksAgain: two bad blocks in the
// log. Dropping the damage went on with the sequence numbers after the
// chain that follows the first one, which the second breaks: the units
// after the second stayed on the device with durable marks past the new
// log's numbers. After a synced write and a power cut they proved the new
// log's torn end damaged: Open refused a volume that had lost nothing,
// and salvaging (what fsck.txfs --repair tries first) would have replayed
// them over the new state.
func TestLogCutAtDamageBeyondWhichTheChainBreaksAgain(t *testing.T) {
	dev := damagedImageOf(t, 2, func(m *imageModel) {
		units := m.unitsAfterCheckpoint()
		zeroBlock(m, units[2])
		zeroBlock(m, units[5])
	})
	v, err := Open(dev, Options{LogDamage: TruncateDamage, CheckpointBytes: 1 << 40, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	a, err := v.Create(RootIno, "after", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(a.Ino, []byte("synced"), 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Fsync(a.Ino); err != nil {
		t.Fatal(err)
	}
	crashed := dev.Crash(segment.CrashOptions{}, nil)
	v2, err := Open(crashed, Options{})
	if err != nil {
		t.Fatalf("open after a power cut: %v", err)
	}
	defer v2.Close()
	if err := v2.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Lookup(RootIno, "after"); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointLengthPastTheSegments: a superblock naming a checkpoint
// unit of 4 GiB made Open allocate that much to read it, before anything
// checked the length: fuzzing workers died of it. A unit never reaches
// past the segment after its own, so such a length is refused unread.
func TestCheckpointLengthPastTheSegments(t *testing.T) {
	for _, version := range fuzzBaseVersions {
		dev := damagedImageOf(t, version, func(m *imageModel) {
			for _, sb := range m.superblocks() {
				sb.Checkpoint.Len = 1<<32 - 1
			}
		})
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		v, err := Open(dev, Options{ReadOnly: true})
		runtime.ReadMemStats(&after)
		if err == nil {
			v.Close()
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 || !errors.Is(err, ErrIO) {
			t.Fatalf("version %d: open allocated %d bytes and returned %v", version, n, err)
		}
	}
}

// TestCheckpointCopyDamaged: a bad block in the copy of the checkpoint
// record made the log count as damaged (the unit after it says the copy
// was durable), and a read-write Open failed, although the copy holds
// nothing the record does not. The log now goes on after it, with a
// warning, and nothing is lost.
func TestCheckpointCopyDamaged(t *testing.T) {
	want := func() string {
		v, err := Open(damagedImageOf(t, 2, func(*imageModel) {}), Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		s, _ := dump(v)
		return s
	}()
	dev := damagedImageOf(t, 2, func(m *imageModel) { zeroBlock(m, m.ckpts[0].copy) })
	rep := checkReadOnly(t, dev)
	if rep.Err() != nil || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "copy of checkpoint") {
		t.Fatalf("problems %v, warnings %v", rep.Problems, rep.Warnings)
	}
	v, err := Open(dev, Options{})
	if err != nil {
		t.Fatal(err)
	}
	v = reopen(t, v, dev)
	defer v.Close()
	if got, err := dump(v); err != nil || got != want {
		t.Fatalf("after the damaged copy:\n%s\n%v\nwant:\n%s", got, err, want)
	}
}

// TestEmptyRangeItem: the error for a range operation item of the wrong
// length named its first byte, which an empty value does not have: the
// checker, reads of the file and Open, which finishes range operations,
// panicked.
func TestEmptyRangeItem(t *testing.T) {
	const big = 43 // inode of /big in the base image
	dev := damagedImage(t, func(m *imageModel) {
		editTree(t, m, func(items []nodeItem) []nodeItem {
			return append(items, nodeItem{key: inode.RangeKey(big)})
		})
	})
	rep := checkReadOnly(t, dev)
	if rep.Err() == nil {
		t.Fatal("the checker found nothing")
	}
	v, err := Open(dev, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Read(big, make([]byte, 4096), 0); !errors.Is(err, ErrIO) {
		t.Fatalf("read: %v", err)
	}
	v.Close()
	if v, err := Open(dev, Options{}); err == nil {
		_, err = v.Read(big, make([]byte, 4096), 0)
		v.Close()
		if !errors.Is(err, ErrIO) {
			t.Fatalf("read after a read-write open: %v", err)
		}
	}
}
