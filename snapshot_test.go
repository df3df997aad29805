package txfs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/segment"
)

// writeAt writes data into path (made if missing) at off.
func writeAt(t testing.TB, v *Volume, name string, data []byte, off int64) Ino {
	t.Helper()
	a, err := v.Lookup(RootIno, name)
	if errors.Is(err, ErrNotExist) {
		a, err = v.Create(RootIno, name, 0o644, Owner{})
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(a.Ino, data, off); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	return a.Ino
}

func mustDump(t testing.TB, v *Volume) string {
	t.Helper()
	d, err := dump(v)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func snapNames(t testing.TB, v *Volume) []string {
	t.Helper()
	list, err := v.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range list {
		out = append(out, s.Name)
	}
	return out
}

func TestSnapshotNames(t *testing.T) {
	v, _ := newTestVolume(t, 16<<20, Options{})
	for _, bad := range []string{"", "a-b", "with space", "x/y", "..", "abcdefghijklmnopq", "é"} {
		if err := v.CreateSnapshot(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("create %q: %v, want ErrInvalid", bad, err)
		}
	}
	for _, good := range []string{"a", "Z9", "abcdefghijklmnop"} {
		if err := v.CreateSnapshot(good); err != nil {
			t.Errorf("create %q: %v", good, err)
		}
	}
	mustErr(t, v.CreateSnapshot("a"), ErrExist)
	mustErr(t, v.DeleteSnapshot("nope"), ErrNotExist)
	mustErr(t, v.RestoreSnapshot("nope"), ErrNotExist)
	if got := snapNames(t, v); !slices.Equal(got, []string{"a", "Z9", "abcdefghijklmnop"}) {
		t.Fatalf("snapshots %v", got)
	}
}

// TestSnapshotSemantics: a snapshot never changes; restore makes the live
// tree equal to it and invalidates no snapshot, older or newer; delete
// changes nothing live.
func TestSnapshotSemantics(t *testing.T) {
	v, dev := newTestVolume(t, 32<<20, Options{})
	rng := rand.New(rand.NewSource(1))
	data := func(n int) []byte { b := make([]byte, n); rng.Read(b); return b }
	writeAt(t, v, "f", data(100<<10), 0)
	if _, err := v.Mkdir(RootIno, "d", 0o755, Owner{}); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	take := func(name string) {
		t.Helper()
		if err := v.CreateSnapshot(name); err != nil {
			t.Fatal(err)
		}
		states[name] = mustDump(t, v)
	}
	take("A")
	writeAt(t, v, "f", data(5000), 3000)
	writeAt(t, v, "g", data(20000), 0)
	if err := v.SetXattr(RootIno, "user.x", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	take("B")
	if err := v.Unlink(RootIno, "f"); err != nil {
		t.Fatal(err)
	}
	if err := v.Rmdir(RootIno, "d"); err != nil {
		t.Fatal(err)
	}
	writeAt(t, v, "h", data(1000), 0)
	now := mustDump(t, v)
	if err := v.DeleteSnapshot("B"); err != nil {
		t.Fatal(err)
	}
	if got := mustDump(t, v); got != now {
		t.Fatalf("delete changed the live tree:\n%s\nwas\n%s", got, now)
	}
	take("B")
	// Each snapshot reads as it was taken, while the live tree changes.
	checkSnapshots := func() {
		t.Helper()
		for name, want := range states {
			got, err := dumpSnapshot(v, name)
			if err != nil {
				t.Fatalf("reading snapshot %s: %v", name, err)
			}
			if got != want {
				t.Fatalf("snapshot %s reads:\n%s\nwant\n%s", name, got, want)
			}
		}
	}
	checkSnapshots()
	for _, name := range []string{"A", "B", "A", "A", "B"} {
		if err := v.RestoreSnapshot(name); err != nil {
			t.Fatal(err)
		}
		if got := mustDump(t, v); got != states[name] {
			t.Fatalf("after restoring %s:\n%s\nwant\n%s", name, got, states[name])
		}
		if err := v.Check(); err != nil {
			t.Fatal(err)
		}
		// The restored tree changes like any other, and the snapshot
		// does not.
		writeAt(t, v, "g", data(9000), 4000)
		checkSnapshots()
	}
	// A deleted snapshot's view fails, and its name can be taken again.
	view, err := v.OpenSnapshot("B")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.DeleteSnapshot("B"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.SnapshotGetAttr(view, RootIno); !errors.Is(err, ErrNotExist) {
		t.Fatalf("a deleted snapshot's view: %v", err)
	}
	take("B")
	v = reopen(t, v, dev)
	defer v.Close()
	if got := snapNames(t, v); !slices.Equal(got, []string{"A", "B"}) {
		t.Fatalf("snapshots after reopen %v", got)
	}
	for _, name := range []string{"B", "A"} {
		if err := v.RestoreSnapshot(name); err != nil {
			t.Fatal(err)
		}
		if got := mustDump(t, v); got != states[name] {
			t.Fatalf("after reopening and restoring %s:\n%s\nwant\n%s", name, got, states[name])
		}
	}
	for _, name := range []string{"A", "B"} {
		if err := v.DeleteSnapshot(name); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotSharedPath is the trap of lazy counts: the block map item of
// a block is in a leaf the snapshot shares, while the block's own count is
// 1. Overwriting it must not write over what the snapshot holds.
func TestSnapshotSharedPath(t *testing.T) {
	v, _ := newTestVolume(t, 16<<20, Options{})
	old := bytes.Repeat([]byte("old!"), 16<<10)
	ino := writeAt(t, v, "f", old, 0)
	if err := v.CreateSnapshot("s"); err != nil {
		t.Fatal(err)
	}
	vb := v.mustBlock(t, ino, 3)
	if e, err := v.dat.Live(vb); err != nil || e.Refs != 1 {
		t.Fatalf("block 3 has %d references (%v); the test needs 1", e.Refs, err)
	}
	if _, err := v.Write(ino, bytes.Repeat([]byte("new!"), 1024), 3*4096); err != nil {
		t.Fatal(err)
	}
	if got := v.mustBlock(t, ino, 3); got == vb {
		t.Fatalf("block 3 rewritten in place (virtual block %d) under a shared leaf", vb)
	}
	if err := v.RestoreSnapshot("s"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(old))
	if n, err := v.Read(ino, got, 0); err != nil || n != len(old) || !bytes.Equal(got, old) {
		t.Fatalf("the snapshot's file changed: read %d bytes, %v", n, err)
	}
}

// mustBlock is the virtual block of file block b of ino.
func (v *Volume) mustBlock(t testing.TB, ino Ino, b uint64) uint64 {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	m, err := v.blockMap(ino, b, b)
	if err != nil || m[b] == 0 {
		t.Fatalf("block %d of inode %d: %v", b, ino, err)
	}
	return m[b]
}

// usageTotals sums the live bytes of every segment and counts the DAT
// entries in use.
func usageTotals(t testing.TB, v *Volume) (live int64, entries uint64) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	for s := range v.geo.Segments {
		e, err := v.sut.Get(s)
		if err != nil {
			t.Fatal(err)
		}
		live += int64(e.Live)
	}
	st := v.dat.State()
	return live, st.Count - st.FreeCount
}

// TestSnapshotSpace: with exact numbers, what snapshots take and what
// deleting them gives back.
func TestSnapshotSpace(t *testing.T) {
	v, _ := newTestVolume(t, 256<<20, Options{})
	// twin gets the same writes and no snapshot.
	twin, _ := newTestVolume(t, 256<<20, Options{})
	rng := rand.New(rand.NewSource(2))
	// 100 MiB in 1,000 files, incompressible.
	buf := make([]byte, 100<<10)
	for i := range 1000 {
		rng.Read(buf)
		writeAt(t, v, fmt.Sprintf("f%04d", i), buf, 0)
		writeAt(t, twin, fmt.Sprintf("f%04d", i), buf, 0)
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	base, _ := usageTotals(t, v)
	if err := v.CreateSnapshot("s0"); err != nil {
		t.Fatal(err)
	}
	one, _ := usageTotals(t, v)
	t.Logf("one snapshot: %+d bytes", one-base)
	if one-base >= 64<<10 {
		t.Errorf("one snapshot takes %d bytes, more than 64 KiB", one-base)
	}
	for i := 1; i < 100; i++ {
		if err := v.CreateSnapshot(fmt.Sprintf("s%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	hundred, _ := usageTotals(t, v)
	t.Logf("100 snapshots: %+d bytes", hundred-base)
	if hundred-base >= 1<<20 {
		t.Errorf("100 snapshots of unchanged data take %d bytes, more than 1 MiB", hundred-base)
	}
	// 1 MiB changed, spread over 100 files, then a snapshot. Each change
	// starts at a block: 10,486 bytes rewrite three 4 KiB blocks.
	chunk := make([]byte, 1<<20/100+1)
	for i := range 100 {
		rng.Read(chunk)
		off := int64(rng.Intn(20)) << 12
		writeAt(t, v, fmt.Sprintf("f%04d", i*10), chunk, off)
		writeAt(t, twin, fmt.Sprintf("f%04d", i*10), chunk, off)
	}
	if err := v.CreateSnapshot("after"); err != nil {
		t.Fatal(err)
	}
	changed, _ := usageTotals(t, v)
	t.Logf("1 MiB changed in 100 files and a snapshot: %+d bytes", changed-hundred)
	// Only the snapshots hold the blocks the change replaced, 300 of 4
	// KiB, and the tree nodes the live tree copied to change them.
	st, err := v.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Snapshots != 101 || st.SnapshotBytes < 300*4096 || st.SnapshotBytes > 300*4096+128<<10 {
		t.Errorf("status: %d snapshots holding %d bytes alone, want 101 holding the 300 blocks replaced", st.Snapshots, st.SnapshotBytes)
	}
	if changed-hundred > 3<<19 {
		t.Errorf("changing 1 MiB and taking a snapshot takes %d bytes, more than 1.5 MiB", changed-hundred)
	}
	// Each delete frees what the list said it would, beside the table
	// block, which shrinks by an entry (a few bytes, compressed).
	for {
		list, err := v.Snapshots()
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 0 {
			break
		}
		s := list[rng.Intn(len(list))]
		before, _ := usageTotals(t, v)
		if err := v.DeleteSnapshot(s.Name); err != nil {
			t.Fatal(err)
		}
		after, _ := usageTotals(t, v)
		if freed := before - after; freed < s.Exclusive-128 || freed > s.Exclusive+128 {
			t.Errorf("deleting %s freed %d bytes, the list said %d", s.Name, freed, s.Exclusive)
		}
	}
	// Back to what the same writes take with no snapshot ever.
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := twin.Sync(); err != nil {
		t.Fatal(err)
	}
	live, entries := usageTotals(t, v)
	twinLive, twinEntries := usageTotals(t, twin)
	t.Logf("all deleted: %d bytes live in %d blocks; with no snapshot ever: %d in %d", live, entries, twinLive, twinEntries)
	// Tree nodes name other nodes by virtual block, and compress a few
	// bytes differently where those differ.
	if entries != twinEntries || live < twinLive-4096 || live > twinLive+4096 {
		t.Errorf("all snapshots deleted: %d bytes live in %d blocks; the same writes with no snapshot: %d bytes in %d blocks",
			live, entries, twinLive, twinEntries)
	}
}

// TestSnapshotCrash cuts the power at every step of create, restore and
// delete: the volume opens with the operation whole or not at all.
func TestSnapshotCrash(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	v, dev := newTestVolume(t, 32<<20, Options{})
	buf := make([]byte, 30000)
	rng.Read(buf)
	writeAt(t, v, "a", buf, 0)
	if err := v.CreateSnapshot("keep"); err != nil {
		t.Fatal(err)
	}
	writeAt(t, v, "b", buf[:7000], 0)
	type state struct {
		tree  string
		snaps []string
	}
	now := func() state { return state{mustDump(t, v), snapNames(t, v)} }
	ops := []struct {
		name string
		do   func() error
	}{
		{"create", func() error { return v.CreateSnapshot("new") }},
		{"restore", func() error { return v.RestoreSnapshot("keep") }},
		{"delete", func() error { return v.DeleteSnapshot("keep") }},
	}
	for _, op := range ops {
		if err := v.Sync(); err != nil {
			t.Fatal(err)
		}
		before := now()
		var images []*segment.MemDevice
		testHookSnapshot = func(stage string) {
			for range 4 {
				images = append(images, dev.Crash(segment.CrashOptions{KeepPrefix: -1, TearLast: true}, rng))
			}
		}
		if err := op.do(); err != nil {
			t.Fatal(err)
		}
		testHookSnapshot = nil
		after := now()
		var saw [2]int
		for i, img := range images {
			w, err := Open(img, Options{})
			if err != nil {
				t.Fatalf("%s, image %d: open: %v", op.name, i, err)
			}
			got := state{mustDump(t, w), snapNames(t, w)}
			switch {
			case got.tree == after.tree && slices.Equal(got.snaps, after.snaps):
				saw[1]++
			case got.tree == before.tree && slices.Equal(got.snaps, before.snaps):
				saw[0]++
			default:
				t.Fatalf("%s, image %d: neither before nor after:\n%v\nbefore %v\nafter %v", op.name, i, got, before, after)
			}
			if err := w.Check(); err != nil {
				t.Fatalf("%s, image %d: %v", op.name, i, err)
			}
			// The volume goes on from there.
			writeAt(t, w, "c", buf[:100], 0)
			if err := w.Check(); err != nil {
				t.Fatalf("%s, image %d, after a write: %v", op.name, i, err)
			}
			w.Close()
		}
		t.Logf("%s: %d images as before, %d as after", op.name, saw[0], saw[1])
		if saw[0] == 0 || saw[1] == 0 {
			t.Errorf("%s: crash images all on one side (%v): the hook does not cut inside the operation", op.name, saw)
		}
	}
}

// TestSnapshotFullVolume: on a full volume a snapshot operation either
// works or answers ENOSPC, and the volume goes on; deleting a file a
// snapshot holds frees nothing, deleting the snapshot frees it.
func TestSnapshotFullVolume(t *testing.T) {
	v, _ := newSmallVolume(t, 8<<20, 64<<10, Options{})
	fill := func(name string) int64 {
		t.Helper()
		a, err := v.Create(RootIno, name, 0o644, Owner{})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64<<10)
		rand.New(rand.NewSource(int64(len(name)))).Read(buf)
		var off int64
		for {
			n, err := v.Write(a.Ino, buf, off)
			off += int64(n)
			if errors.Is(err, ErrNoSpace) {
				return off
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	size := fill("a")
	t.Logf("the volume took %d bytes", size)
	for i := range 3 {
		err := v.CreateSnapshot(fmt.Sprintf("full%d", i))
		if err != nil && !errors.Is(err, ErrNoSpace) {
			t.Fatalf("snapshot of a full volume: %v", err)
		}
		t.Logf("snapshot %d of the full volume: %v", i, err)
	}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
	if err := v.RestoreSnapshot("full0"); err != nil && !errors.Is(err, ErrNoSpace) {
		t.Fatalf("restore on a full volume: %v", err)
	} else {
		t.Logf("restore on the full volume: %v", err)
	}
	if err := v.Unlink(RootIno, "a"); err != nil {
		t.Fatal(err)
	}
	for _, s := range snapNames(t, v) {
		if err := v.DeleteSnapshot(s); err != nil {
			t.Fatalf("delete %s on a full volume: %v", s, err)
		}
	}
	if again := fill("b"); again < size*9/10 {
		t.Errorf("after deleting the file and the snapshots a file took %d bytes, the first %d", again, size)
	}
}

// TestSnapshotRestoreOpenFiles: a file open at a restore goes on with the
// file of its inode number in the restored tree; one made after the
// snapshot fails with ENOENT, and closing it is fine.
func TestSnapshotRestoreOpenFiles(t *testing.T) {
	v, _ := newTestVolume(t, 16<<20, Options{})
	old := writeAt(t, v, "old", []byte("as in the snapshot"), 0)
	if err := v.OpenFile(old); err != nil {
		t.Fatal(err)
	}
	// An unlinked file, open: the snapshot holds it as an orphan.
	gone := writeAt(t, v, "gone", []byte("unlinked"), 0)
	if err := v.OpenFile(gone); err != nil {
		t.Fatal(err)
	}
	if err := v.Unlink(RootIno, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := v.CreateSnapshot("s"); err != nil {
		t.Fatal(err)
	}
	writeAt(t, v, "old", []byte("changed after it"), 0)
	made := writeAt(t, v, "new", []byte("made after it"), 0)
	if err := v.OpenFile(made); err != nil {
		t.Fatal(err)
	}
	if err := v.RestoreSnapshot("s"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := v.Read(old, buf, 0); err != nil || string(buf[:n]) != "as in the snapshot" {
		t.Errorf("the open file reads %q, %v", buf[:n], err)
	}
	if n, err := v.Read(gone, buf, 0); err != nil || string(buf[:n]) != "unlinked" {
		t.Errorf("the open unlinked file reads %q, %v", buf[:n], err)
	}
	if _, err := v.Read(made, buf, 0); !errors.Is(err, ErrNotExist) {
		t.Errorf("a file made after the snapshot, open at the restore: read %v, want ENOENT", err)
	}
	if _, err := v.Write(made, []byte("x"), 0); !errors.Is(err, ErrNotExist) {
		t.Errorf("a file made after the snapshot, open at the restore: write %v, want ENOENT", err)
	}
	for _, ino := range []Ino{old, gone, made} {
		if err := v.Release(ino); err != nil {
			t.Errorf("release %d: %v", ino, err)
		}
	}
	// The orphan is freed once closed; a new file gets a new number.
	a, err := v.Create(RootIno, "newer", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Ino <= made {
		t.Errorf("a file made after the restore got inode %d; %d was given before", a.Ino, made)
	}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotRepairCounts: the repair of reference counts counts what
// snapshots hold, so it finds nothing to change on a sound volume with
// snapshots, and fixes a wrong count under a shared node.
func TestSnapshotRepairCounts(t *testing.T) {
	v, _ := newTestVolume(t, 16<<20, Options{})
	ino := writeAt(t, v, "f", bytes.Repeat([]byte("x"), 40000), 0)
	if err := v.CreateSnapshot("s"); err != nil {
		t.Fatal(err)
	}
	writeAt(t, v, "g", []byte("after"), 0)
	changed, err := v.RepairCounts()
	if err != nil || len(changed) != 0 {
		t.Fatalf("repair of a sound volume with a snapshot: %v, %v", changed, err)
	}
	want, err := dumpSnapshot(v, "s")
	if err != nil {
		t.Fatal(err)
	}
	// Break the count of a block the snapshot and the live tree share.
	vb := v.mustBlock(t, ino, 2)
	v.mu.Lock()
	err = v.blocks.Ref(vb, 1)
	v.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if v.Check() == nil {
		t.Fatal("the checker misses a wrong count")
	}
	if changed, err := v.RepairCounts(); err != nil || len(changed) != 1 {
		t.Fatalf("repair: %v, %v", changed, err)
	}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
	if got, err := dumpSnapshot(v, "s"); err != nil || got != want {
		t.Fatalf("the snapshot after the repair: %v", err)
	}
}

// TestSnapshotStatfs: with a snapshot holding overwritten data, statfs
// counts it as used, a file written until ENOSPC takes what statfs showed
// free, and deleting the snapshot gives its space back to statfs.
func TestSnapshotStatfs(t *testing.T) {
	v, _ := newSmallVolume(t, 32<<20, 256<<10, Options{})
	avail := func() int64 {
		st, err := v.Statfs()
		if err != nil {
			t.Fatal(err)
		}
		return int64(st.Bavail) * int64(st.BlockSize)
	}
	rng := rand.New(rand.NewSource(5))
	data := make([]byte, 8<<20)
	rng.Read(data)
	ino := writeAt(t, v, "a", data, 0)
	if err := v.CreateSnapshot("s"); err != nil {
		t.Fatal(err)
	}
	rng.Read(data)
	if _, err := v.Write(ino, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	free := avail()
	st, _ := v.Status()
	t.Logf("statfs free %d KiB; only the snapshot holds %d KiB", free>>10, st.SnapshotBytes>>10)
	// Fill: the file takes what statfs said.
	f, err := v.Create(RootIno, "fill", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	var took int64
	for {
		n, err := v.Write(f.Ino, data[:1<<20], took)
		took += int64(n)
		if errors.Is(err, ErrNoSpace) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("a file took %d KiB", took>>10)
	// The last few percent need the cleaner to empty segments that the
	// snapshot's blocks share with dead ones; it leaves some behind.
	if took < free*95/100 || took > free+free/50+(1<<20) {
		t.Errorf("statfs showed %d KiB free, a file took %d KiB", free>>10, took>>10)
	}
	if err := v.Unlink(RootIno, "fill"); err != nil {
		t.Fatal(err)
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	before := avail()
	if err := v.DeleteSnapshot("s"); err != nil {
		t.Fatal(err)
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	// What statfs gains is counted in blocks' stored bytes, less what the
	// metadata of as much data costs (as for a deleted file).
	if got := avail() - before; got < st.SnapshotBytes*90/100 {
		t.Errorf("deleting the snapshot gave statfs %d KiB, it held %d KiB alone", got>>10, st.SnapshotBytes>>10)
	}
}

// TestSnapshotTableDamaged: a damaged block of the snapshot table is
// found at Open, which refuses the volume with an I/O error naming it,
// read-write and read-only, and never takes garbage for snapshots.
func TestSnapshotTableDamaged(t *testing.T) {
	dev := segment.NewMemDevice(16 << 20)
	if err := Format(dev, FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := Open(dev, Options{})
	if err != nil {
		t.Fatal(err)
	}
	writeAt(t, v, "f", []byte("data"), 0)
	if err := v.CreateSnapshot("s"); err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	e, err := v.dat.Live(v.snapTableFirst())
	v.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := dev.ReadAt(b, int64(e.Addr)+int64(e.Len)/2); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := dev.WriteAt(b, int64(e.Addr)+int64(e.Len)/2); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		_, err := Open(dev, Options{ReadOnly: ro})
		if !errors.Is(err, ErrIO) || !strings.Contains(err.Error(), "snapshot table block") {
			t.Errorf("open (read-only %v) with a damaged snapshot table: %v", ro, err)
		}
	}
}

// TestSnapshotDeleteDamaged: deleting a snapshot that holds a damaged
// tree node of its own is refused with an I/O error before anything
// changes; the volume goes on writing and the snapshot stays listed.
func TestSnapshotDeleteDamaged(t *testing.T) {
	v, dev := newTestVolume(t, 16<<20, Options{})
	writeAt(t, v, "f", bytes.Repeat([]byte("x"), 20000), 0)
	if err := v.CreateSnapshot("s"); err != nil {
		t.Fatal(err)
	}
	// The live tree copies its root on this change: the old root is the
	// snapshot's alone.
	writeAt(t, v, "g", []byte("after"), 0)
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	root := v.snaps[0].root
	e, err := v.dat.Live(root)
	refs := e.Refs
	v.mu.Unlock()
	if err != nil || refs != 1 {
		t.Fatalf("the snapshot's root has %d references (%v); the test needs 1", refs, err)
	}
	b := make([]byte, 1)
	off := int64(e.Addr) + int64(e.Len)/2
	if _, err := dev.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := dev.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	v.tree.Forget(btree.NodeID(root)) // read from the device again
	if err := v.DeleteSnapshot("s"); !errors.Is(err, ErrIO) {
		t.Fatalf("delete of a snapshot with a damaged node: %v, want ErrIO", err)
	}
	if _, err := v.Snapshots(); !errors.Is(err, ErrIO) || !strings.Contains(err.Error(), "snapshot s:") {
		t.Errorf("listing with a damaged snapshot: %v", err)
	}
	if st, err := v.Status(); err != nil || st.Snapshots != 1 || st.SnapshotBytes != -1 {
		t.Errorf("status with a damaged snapshot: %+v, %v", st, err)
	}
	writeAt(t, v, "h", []byte("the volume goes on"), 0)
	// Put the byte back for the checker at the end of the test.
	b[0] ^= 0x10
	if _, err := dev.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
