package txfs

import (
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"

	"github.com/txfs/txfs/segment"
)

// Tests of a volume at its limits: full, emptied, refilled, and crashed
// while full. Every operation must either succeed or say ENOSPC, never
// fail the volume.

// noSpaceOK fails the test for any error but ENOSPC, and reports whether
// err was nil.
func noSpaceOK(t testing.TB, what string, err error) bool {
	t.Helper()
	if err != nil && !errors.Is(err, ErrNoSpace) {
		t.Fatalf("%s: %v (only ENOSPC may fail an operation on a full volume)", what, err)
	}
	return err == nil
}

// fillSmallFiles has two writers create files of 100 bytes to 30 KB in a
// few directories until both get ENOSPC, and returns the bytes written.
func fillSmallFiles(t *testing.T, v *Volume, round int) int64 {
	t.Helper()
	var mu sync.Mutex
	var total int64
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(round*10 + w)))
			dir, err := v.Mkdir(RootIno, fmt.Sprintf("r%dw%d", round, w), 0o755, Owner{})
			if !noSpaceOK(t, "mkdir", err) {
				return
			}
			buf := make([]byte, 30000)
			for i := 0; ; i++ {
				a, err := v.Create(dir.Ino, fmt.Sprintf("f%d", i), 0o644, Owner{})
				if !noSpaceOK(t, "create", err) {
					return
				}
				n := 100 + rng.Intn(len(buf)-100)
				rng.Read(buf[:n])
				_, err = v.Write(a.Ino, buf[:n], 0)
				if !noSpaceOK(t, "write", err) {
					return
				}
				mu.Lock()
				total += int64(n)
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	return total
}

// removeAll removes everything under the root.
func removeAll(t *testing.T, v *Volume, dir Ino) {
	t.Helper()
	if err := removeTree(v, dir); err != nil {
		t.Fatal(err)
	}
}

// removeTree removes everything under dir, and stops at the first error.
func removeTree(v *Volume, dir Ino) error {
	var ents []DirEntry
	if err := v.Readdir(dir, 0, func(e DirEntry) bool { ents = append(ents, e); return true }); err != nil {
		return err
	}
	for _, e := range ents {
		if e.Mode == 0o040000 {
			if err := removeTree(v, e.Ino); err != nil {
				return err
			}
			if err := v.Rmdir(dir, e.Name); err != nil {
				return fmt.Errorf("rmdir %s: %w", e.Name, err)
			}
			continue
		}
		if err := v.Unlink(dir, e.Name); err != nil {
			return fmt.Errorf("unlink %s: %w", e.Name, err)
		}
	}
	return nil
}

// A volume filled with small files until ENOSPC, emptied, and filled
// again, round after round, never fails an operation with anything but
// ENOSPC and takes as much each round.
func TestRefillSmallFiles(t *testing.T) {
	v, dev := newTestVolume(t, 32<<20, Options{})
	var first int64
	for round := 0; round < 4; round++ {
		got := fillSmallFiles(t, v, round)
		st, err := v.Statfs()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d KiB of files; statfs then says %d blocks free", round, got>>10, st.Bavail)
		if round == 0 {
			first = got
		} else if got < first*9/10 {
			t.Fatalf("round %d took %d bytes, round 0 took %d", round, got, first)
		}
		if err := v.Check(); err != nil {
			t.Fatalf("round %d full: %v", round, err)
		}
		removeAll(t, v, RootIno)
		if err := v.Check(); err != nil {
			t.Fatalf("round %d emptied: %v", round, err)
		}
	}
	v = reopen(t, v, dev)
	v.Close()
}

// Big files (1 to 10 MiB) written to 60% of a 256 MiB volume with the
// default geometry and deleted, again and again: the space deletes free is
// there for the next round.
func TestBigFilesRefill(t *testing.T) {
	v, _ := newSmallVolume(t, 256<<20, 0, Options{})
	st, _ := v.Statfs()
	target := int64(st.Bavail) * int64(st.BlockSize) * 6 / 10
	rng := rand.New(rand.NewSource(3))
	buf := make([]byte, 1<<20)
	rng.Read(buf)
	for round := 0; round < 3; round++ {
		var written int64
		for i := 0; written < target; i++ {
			a, err := v.Create(RootIno, fmt.Sprintf("big%d", i), 0o644, Owner{})
			if err != nil {
				t.Fatalf("round %d: create: %v", round, err)
			}
			size := int64(1<<20 + rng.Intn(9<<20))
			for off := int64(0); off < size && written < target; off += int64(len(buf)) {
				n := min(int64(len(buf)), size-off)
				if _, err := v.Write(a.Ino, buf[:n], off); err != nil {
					t.Fatalf("round %d: write at %d after %d of %d bytes: %v", round, off, written, target, err)
				}
				written += n
			}
		}
		removeAll(t, v, RootIno)
		if err := v.Check(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

// Space a delete frees shows in statfs at once, and the next writer gets
// it without waiting for a timed checkpoint.
func TestDeleteFreesAtOnce(t *testing.T) {
	v, _ := newTestVolume(t, 32<<20, Options{})
	before, _ := v.Statfs()
	a, _ := v.Create(RootIno, "big", 0o644, Owner{})
	buf := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(buf)
	var off int64
	for ; ; off += int64(len(buf)) {
		if _, err := v.Write(a.Ino, buf, off); err != nil {
			mustErr(t, err, ErrNoSpace)
			break
		}
	}
	full, _ := v.Statfs()
	if err := v.Unlink(RootIno, "big"); err != nil {
		t.Fatal(err)
	}
	after, _ := v.Statfs()
	t.Logf("free blocks: %d empty, %d full, %d right after the delete", before.Bavail, full.Bavail, after.Bavail)
	if after.Bavail < before.Bavail*90/100 {
		t.Fatalf("statfs shows %d blocks free after deleting everything, %d before writing", after.Bavail, before.Bavail)
	}
	b, _ := v.Create(RootIno, "again", 0o644, Owner{})
	for o := int64(0); o < off*9/10; o += int64(len(buf)) {
		if _, err := v.Write(b.Ino, buf, o); err != nil {
			t.Fatalf("writing again after the delete, at %d of %d: %v", o, off, err)
		}
	}
}

// statfs promises only space that can be written: one file written in 1
// MiB writes until ENOSPC takes what statfs said was free, at every volume
// size and with the default geometry.
func TestStatfsIsHonest(t *testing.T) {
	for _, size := range []int64{16 << 20, 64 << 20, 128 << 20, 256 << 20} {
		t.Run(fmt.Sprintf("%dM", size>>20), func(t *testing.T) {
			v, _ := newSmallVolume(t, size, 0, Options{})
			st, _ := v.Statfs()
			avail := int64(st.Bavail) * int64(st.BlockSize)
			a, _ := v.Create(RootIno, "f", 0o644, Owner{})
			buf := make([]byte, 1<<20)
			rand.New(rand.NewSource(2)).Read(buf)
			var written int64
			for {
				n, err := v.Write(a.Ino, buf, written)
				written += int64(n)
				if err != nil {
					mustErr(t, err, ErrNoSpace)
					break
				}
			}
			t.Logf("%d MiB volume: statfs said %d KiB free, one file took %d KiB (%.1f%%)",
				size>>20, avail>>10, written>>10, 100*float64(written)/float64(avail))
			if written < avail*97/100 {
				t.Fatalf("statfs said %d bytes free, a file took only %d", avail, written)
			}
			if written > avail+avail/50+1<<20 {
				t.Fatalf("statfs said %d bytes free, a file took %d: it does not count what can be written", avail, written)
			}
			if err := v.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Power cuts while the volume is full, while it is being emptied and while
// it is refilled: every crash image opens read-write, checks clean, and
// can be emptied (deletes on a full volume whose segments are all partly
// live leave the cleaner room to give space back), and the space comes
// back; some are filled again.
func TestCrashWhileFull(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	v, dev := newTestVolume(t, 16<<20, Options{CheckpointBytes: 4 << 20})
	empty, _ := v.Statfs()
	var images []*segment.MemDevice
	cut := func() {
		opt := segment.CrashOptions{KeepPrefix: -1, TearLast: rng.Intn(2) == 0, Reorder: rng.Intn(3) == 0}
		images = append(images, dev.Crash(opt, rng))
	}
	for round := 0; round < 3; round++ {
		fillSmallFiles(t, v, round)
		cut()
		for i := 0; i < 3; i++ {
			a, _ := v.Create(RootIno, fmt.Sprintf("x%d-%d", round, i), 0o644, Owner{})
			if a.Ino != 0 {
				noSpaceOK(t, "write", func() error { _, err := v.Write(a.Ino, make([]byte, 64<<10), 0); return err }())
			}
			cut()
		}
		// Half emptied.
		var ents []DirEntry
		v.Readdir(RootIno, 0, func(e DirEntry) bool { ents = append(ents, e); return true })
		for i, e := range ents {
			if i%2 == 0 && e.Mode == 0o040000 {
				removeAll(t, v, e.Ino)
				v.Rmdir(RootIno, e.Name)
				cut()
			}
		}
	}
	for i, img := range images {
		v, err := Open(img, Options{})
		if err != nil {
			t.Fatalf("image %d: read-write open: %v", i, err)
		}
		if err := v.Check(); err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
		if err := removeTree(v, RootIno); err != nil {
			t.Fatalf("image %d: emptying: %v", i, err)
		}
		if err := v.Sync(); err != nil {
			t.Fatal(err)
		}
		if st, _ := v.Statfs(); st.Bavail < empty.Bavail*9/10 {
			t.Fatalf("image %d: emptied, %d blocks free; %d when new", i, st.Bavail, empty.Bavail)
		}
		if i%4 == 0 {
			if got := fillSmallFiles(t, v, 9); got < 8<<20 {
				t.Fatalf("image %d: refilled only %d bytes", i, got)
			}
			if err := v.Check(); err != nil {
				t.Fatalf("image %d refilled: %v", i, err)
			}
		}
		if err := v.Close(); err != nil {
			t.Fatalf("image %d: close: %v", i, err)
		}
	}
	t.Logf("%d power cuts on a full volume recovered, emptied and refilled", len(images))
}
