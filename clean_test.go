package txfs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// fileSet is files of one size on a volume, and what each should hold.
type fileSet struct {
	v     *Volume
	inos  []Ino
	data  [][]byte
	names []string
}

// newFileSet writes n files of size bytes of random data.
func newFileSet(t testing.TB, v *Volume, r *rand.Rand, prefix string, n, size int) *fileSet {
	t.Helper()
	fs := &fileSet{v: v}
	for i := range n {
		name := fmt.Sprintf("%s%d", prefix, i)
		a, err := v.Create(RootIno, name, 0o644, Owner{})
		if err != nil {
			t.Fatalf("create %s (file %d of %d): %v", name, i, n, err)
		}
		d := randBytes(r, size)
		if _, err := v.Write(a.Ino, d, 0); err != nil {
			t.Fatalf("write %s (file %d of %d): %v", name, i, n, err)
		}
		fs.inos, fs.data, fs.names = append(fs.inos, a.Ino), append(fs.data, d), append(fs.names, name)
	}
	return fs
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// overwrite writes chunk bytes of new random data at a random aligned
// place of a random file (of the first hot files with probability hotP).
func (fs *fileSet) overwrite(r *rand.Rand, chunk int, hot int, hotP float64) error {
	i := r.IntN(len(fs.inos))
	if hot > 0 && r.Float64() < hotP {
		i = r.IntN(hot)
	}
	off := r.IntN(len(fs.data[i])/chunk) * chunk
	d := randBytes(r, chunk)
	if _, err := fs.v.Write(fs.inos[i], d, int64(off)); err != nil {
		return err
	}
	copy(fs.data[i][off:], d)
	return nil
}

// verify reads every file back.
func (fs *fileSet) verify(t testing.TB) {
	t.Helper()
	for i, ino := range fs.inos {
		got := make([]byte, len(fs.data[i]))
		if n, err := fs.v.Read(ino, got, 0); err != nil || n != len(got) {
			t.Fatalf("read %s: %d bytes, %v", fs.names[i], n, err)
		}
		if !bytes.Equal(got, fs.data[i]) {
			t.Fatalf("%s does not hold what was written", fs.names[i])
		}
	}
}

// usable is the bytes of file data a fresh volume says it can take.
func usable(t testing.TB, v *Volume) int64 {
	st, err := v.Statfs()
	if err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.BlockSize)
}

// A file set of 80% of the volume overwritten ten times over never meets
// ENOSPC: the cleaner gives back what the overwrites leave dead.
func TestCleanerOverwritesEightyPercent(t *testing.T) {
	v, _ := newSmallVolume(t, 16<<20, 256<<10, Options{})
	r := rand.New(rand.NewPCG(1, 2))
	const size = 256 << 10
	n := int(usable(t, v) * 8 / 10 / size)
	fs := newFileSet(t, v, r, "f", n, size)
	const chunk = 64 << 10
	total := 10 * n * size / chunk
	for i := range total {
		if err := fs.overwrite(r, chunk, 0, 0); err != nil {
			st, _ := v.Status()
			t.Fatalf("overwrite %d of %d: %v (status %+v)", i, total, err, st)
		}
	}
	fs.verify(t)
	st, err := v.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Cleaner.SegmentsCleaned == 0 || st.Cleaner.BytesMoved == 0 {
		t.Fatalf("the cleaner did nothing: %+v", st.Cleaner)
	}
	t.Logf("%d files of %d KiB, %d overwrites of %d KiB: %+v", n, size>>10, total, chunk>>10, st.Cleaner)
	// The blocks at a victim's start belong to a unit begun in another
	// segment: the summaries of the units seen since Open find them, and
	// the DAT is walked only for the rest.
	v.mu.Lock()
	batches, censuses := v.clean.batches, v.clean.censuses
	v.mu.Unlock()
	t.Logf("%d batches, %d walked the DAT", batches, censuses)
	if censuses*10 > batches {
		t.Errorf("%d of %d batches walked the DAT", censuses, batches)
	}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
}

// Writing and deleting 60% of the volume a hundred times never meets
// ENOSPC, with files kept between the rounds so that deletes leave
// segments partly live.
func TestCleanerWriteDeleteRounds(t *testing.T) {
	v, _ := newSmallVolume(t, 8<<20, 128<<10, Options{})
	r := rand.New(rand.NewPCG(3, 4))
	const size = 24 << 10
	n := int(usable(t, v) * 6 / 10 / size)
	for round := range 100 {
		fs := newFileSet(t, v, r, fmt.Sprintf("r%d-", round), n, size)
		// Keep every tenth file of a round until the next round, so that
		// segments hold a mix of live and dead blocks.
		for i, name := range fs.names {
			if i%10 == 0 && round%2 == 0 {
				continue
			}
			if err := v.Unlink(RootIno, name); err != nil {
				t.Fatalf("round %d: unlink %s: %v", round, name, err)
			}
		}
		if round%2 == 1 {
			prev := fmt.Sprintf("r%d-", round-1)
			for i := 0; i < n; i += 10 {
				if err := v.Unlink(RootIno, fmt.Sprintf("%s%d", prev, i)); err != nil {
					t.Fatalf("round %d: unlink kept file: %v", round, err)
				}
			}
		}
	}
	st, _ := v.Status()
	t.Logf("%+v", st.Cleaner)
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
}

// Filled to 100%, the volume answers ENOSPC and checks clean; with half
// of it deleted, the space comes back for new files.
func TestCleanerFullThenHalfDeleted(t *testing.T) {
	v, _ := newSmallVolume(t, 8<<20, 128<<10, Options{})
	r := rand.New(rand.NewPCG(5, 6))
	const size = 32 << 10
	var names []string
	var full bool
	for i := 0; !full; i++ {
		name := fmt.Sprintf("f%d", i)
		a, err := v.Create(RootIno, name, 0o644, Owner{})
		if errors.Is(err, ErrNoSpace) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		if _, err := v.Write(a.Ino, randBytes(r, size), 0); err != nil {
			if !errors.Is(err, ErrNoSpace) {
				t.Fatalf("write %s: %v", name, err)
			}
			full = true
		}
	}
	if err := v.Check(); err != nil {
		t.Fatalf("check when full: %v", err)
	}
	// Delete every other file: every segment keeps live blocks.
	deleted := 0
	for i := 0; i < len(names); i += 2 {
		if err := v.Unlink(RootIno, names[i]); err != nil {
			t.Fatalf("unlink %s: %v", names[i], err)
		}
		deleted++
	}
	fs := newFileSet(t, v, r, "new", deleted*9/10, size)
	fs.verify(t)
	t.Logf("%d files filled the volume; %d deleted, %d written again", len(names), deleted, len(fs.inos))
}

// A block rewritten or freed after the cleaner copied it keeps its new
// state: the move is a compare-and-set on the DAT entry, so the copy is
// garbage and never brings back deleted or old data.
func TestCleanerMoveLosesToOverwriteAndDelete(t *testing.T) {
	v, dev := newSmallVolume(t, 16<<20, 256<<10, Options{Cleaner: CleanerOptions{Off: true}})
	r := rand.New(rand.NewPCG(7, 8))
	const size = 64 << 10
	// Files to keep alternate with files to delete, so that segments are
	// left half live: victims for the cleaner.
	all := newFileSet(t, v, r, "f", 48, size)
	keep := &fileSet{v: v}
	for i := range all.inos {
		if i%2 == 0 {
			keep.inos, keep.data, keep.names = append(keep.inos, all.inos[i]), append(keep.data, all.data[i]), append(keep.names, all.names[i])
		} else if err := v.Unlink(RootIno, all.names[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	stages := 0
	testHookClean = func(hv *Volume, stage string) {
		if hv != v || stage != "written" || stages > 0 {
			return
		}
		stages++
		// The copies are written and not yet moved: overwrite half of
		// the kept files and delete the others.
		for i := range keep.inos {
			if i%2 == 0 {
				d := randBytes(r, size)
				if _, err := v.Write(keep.inos[i], d, 0); err != nil {
					t.Errorf("overwrite: %v", err)
				}
				keep.data[i] = d
			} else if err := v.Unlink(RootIno, keep.names[i]); err != nil {
				t.Errorf("unlink: %v", err)
			}
		}
	}
	defer func() { testHookClean = nil }()
	res, err := v.Clean()
	if err != nil {
		t.Fatal(err)
	}
	if stages == 0 {
		t.Fatalf("the cleaner never reached its moves: %+v", res)
	}
	var left fileSet
	left.v = v
	for i := 0; i < len(keep.inos); i += 2 {
		left.inos, left.data, left.names = append(left.inos, keep.inos[i]), append(left.data, keep.data[i]), append(left.names, keep.names[i])
	}
	left.verify(t)
	for i := 1; i < len(keep.names); i += 2 {
		if _, err := v.Lookup(RootIno, keep.names[i]); !errors.Is(err, ErrNotExist) {
			t.Fatalf("%s: deleted, lookup says %v", keep.names[i], err)
		}
	}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
	v2 := reopen(t, v, dev)
	defer v2.Close()
	left.v = v2
	left.verify(t)
}

// The background cleaner, explicit passes, writers that overwrite and
// writers that delete and recreate all run at once; every file holds
// what was last written to it, and the volume checks clean.
func TestCleanerRacesWriters(t *testing.T) {
	v, _ := newSmallVolume(t, 12<<20, 128<<10, Options{Cleaner: CleanerOptions{LowWatermark: 1000, HighWatermark: 1000, Pace: time.Millisecond}})
	const size = 32 << 10
	seedR := rand.New(rand.NewPCG(9, 10))
	sets := []*fileSet{
		newFileSet(t, v, seedR, "a", 60, size),
		newFileSet(t, v, seedR, "b", 60, size),
	}
	var writers, cleaners sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 8)
	// One goroutine overwrites set a, mostly its first files; one deletes
	// and recreates files of set b; each owns its set. Another runs
	// explicit passes until they are done, beside the background cleaner.
	writers.Add(2)
	go func() {
		defer writers.Done()
		r := rand.New(rand.NewPCG(11, 12))
		for i := 0; i < 600; i++ {
			if err := sets[0].overwrite(r, 8<<10, 6, 0.9); err != nil {
				errs <- fmt.Errorf("overwrite: %w", err)
				return
			}
		}
	}()
	go func() {
		defer writers.Done()
		r := rand.New(rand.NewPCG(13, 14))
		b := sets[1]
		for i := 0; i < 300; i++ {
			k := r.IntN(len(b.inos))
			if err := v.Unlink(RootIno, b.names[k]); err != nil {
				errs <- fmt.Errorf("unlink: %w", err)
				return
			}
			a, err := v.Create(RootIno, b.names[k], 0o644, Owner{})
			if err != nil {
				errs <- fmt.Errorf("create: %w", err)
				return
			}
			d := randBytes(r, size)
			if _, err := v.Write(a.Ino, d, 0); err != nil {
				errs <- fmt.Errorf("write: %w", err)
				return
			}
			b.inos[k], b.data[k] = a.Ino, d
		}
	}()
	cleaners.Add(1)
	go func() {
		defer cleaners.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := v.Clean(); err != nil {
				errs <- fmt.Errorf("clean: %w", err)
				return
			}
		}
	}()
	writers.Wait()
	close(stop)
	cleaners.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	for _, s := range sets {
		s.verify(t)
	}
	st, _ := v.Status()
	if st.Cleaner.BytesMoved == 0 {
		t.Fatalf("the cleaner moved nothing: %+v", st.Cleaner)
	}
	t.Logf("%+v", st.Cleaner)
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
}

// A block of a victim that no longer matches its checksum (damage on the
// device) is left where it is: the cleaner never copies bad bytes as good,
// the pass goes on with the other blocks, and a read of it still fails.
func TestCleanerLeavesDamagedBlock(t *testing.T) {
	v, dev := newSmallVolume(t, 16<<20, 256<<10, Options{Cleaner: CleanerOptions{Off: true}})
	r := rand.New(rand.NewPCG(15, 16))
	all := newFileSet(t, v, r, "f", 48, 64<<10)
	keep := &fileSet{v: v}
	for i := range all.inos {
		if i%2 == 0 {
			keep.inos, keep.data, keep.names = append(keep.inos, all.inos[i]), append(keep.data, all.data[i]), append(keep.names, all.names[i])
		} else if err := v.Unlink(RootIno, all.names[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	// Flip a byte of block 1 of the first kept file on the device.
	var vb uint64
	v.mu.Lock()
	err := v.mappedBlocks(keep.inos[0], plainView, 1, 1, func(_, b uint64) bool { vb = b; return false })
	e, derr := v.dat.Get(vb)
	v.mu.Unlock()
	if err != nil || derr != nil || vb == 0 {
		t.Fatalf("block 1 of %s: vb %d, %v, %v", keep.names[0], vb, err, derr)
	}
	saved := make([]byte, 1)
	dev.ReadAt(saved, int64(e.Addr)+100)
	dev.WriteAt([]byte{saved[0] ^ 0xff}, int64(e.Addr)+100)
	t.Cleanup(func() { dev.WriteAt(saved, int64(e.Addr)+100) }) // for the checks at the end

	res, err := v.Clean()
	if err != nil {
		t.Fatalf("clean: %v", err)
	}
	if res.BytesMoved == 0 {
		t.Fatalf("the pass moved nothing: %+v", res)
	}
	v.mu.Lock()
	after, _ := v.dat.Get(vb)
	v.mu.Unlock()
	if after.Addr != e.Addr {
		t.Fatalf("the damaged block moved from %d to %d", e.Addr, after.Addr)
	}
	buf := make([]byte, 64<<10)
	if _, err := v.Read(keep.inos[0], buf, 0); !errors.Is(err, ErrIO) {
		t.Fatalf("read of the damaged file: %v, want EIO", err)
	}
	rest := &fileSet{v: v, inos: keep.inos[1:], data: keep.data[1:], names: keep.names[1:]}
	rest.verify(t)
}

// With snapshots held and deleted in turn, the cleaner keeps moving
// blocks that snapshots share: each snapshot keeps its files, and the
// space of deleted ones comes back. 40% of the volume is live, each of
// the two snapshots kept holds up to 15% more.
func TestCleanerWithSnapshots(t *testing.T) {
	v, _ := newSmallVolume(t, 8<<20, 128<<10, Options{})
	r := rand.New(rand.NewPCG(9, 10))
	const size = 16 << 10
	fs := newFileSet(t, v, r, "f", int(usable(t, v)*4/10/size), size)
	type kept struct{ name, dump string }
	var snaps []kept
	for round := range 40 {
		name := fmt.Sprintf("s%d", round)
		if err := v.CreateSnapshot(name); err != nil {
			t.Fatalf("round %d: create: %v", round, err)
		}
		snaps = append(snaps, kept{name, mustDump(t, v)})
		for range usable(t, v) * 15 / 100 / 4096 {
			if err := fs.overwrite(r, 4096, 0, 0); err != nil {
				st, _ := v.Status()
				t.Fatalf("round %d: overwrite: %v (status %+v)", round, err, st)
			}
		}
		if len(snaps) > 2 {
			if err := v.DeleteSnapshot(snaps[0].name); err != nil {
				t.Fatal(err)
			}
			snaps = snaps[1:]
		}
		for _, s := range snaps {
			if got, err := dumpSnapshot(v, s.name); err != nil || got != s.dump {
				t.Fatalf("round %d: snapshot %s changed (%v)", round, s.name, err)
			}
		}
	}
	fs.verify(t)
	st, _ := v.Status()
	t.Logf("cleaner: %d passes, %d segments cleaned, %d bytes moved", st.Cleaner.Passes, st.Cleaner.SegmentsCleaned, st.Cleaner.BytesMoved)
	if st.Cleaner.SegmentsCleaned == 0 {
		t.Fatalf("the cleaner never cleaned a segment")
	}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
}

// SetCleaner changes the policy, watermarks and pace of an open volume,
// refuses what Open refuses, and the cleaner follows the new settings.
func TestSetCleaner(t *testing.T) {
	v, _ := newSmallVolume(t, 8<<20, 128<<10, Options{Cleaner: CleanerOptions{Off: true}})
	if err := v.SetCleaner(CleanerOptions{Policy: "nope"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an unknown policy: %v", err)
	}
	if err := v.SetCleaner(CleanerOptions{LowWatermark: 9, HighWatermark: 3}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("low above high: %v", err)
	}
	st, _ := v.Status()
	if st.Cleaner.Policy != "cost-benefit" {
		t.Fatalf("policy %q after refused changes", st.Cleaner.Policy)
	}
	// Dead space everywhere, the background cleaner off, and room enough
	// that no writer has to clean: nothing cleans it.
	r := rand.New(rand.NewPCG(11, 12))
	fs := newFileSet(t, v, r, "f", int(usable(t, v)*4/10/(16<<10)), 16<<10)
	for range usable(t, v) / 10 / 4096 {
		if err := fs.overwrite(r, 4096, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := v.Status(); st.Cleaner.Passes != 0 {
		t.Fatalf("the cleaner ran while off: %+v", st.Cleaner)
	}
	// Turned on with a high watermark above the free segments, it cleans
	// in the background.
	segs := int(v.geo.Segments)
	if err := v.SetCleaner(CleanerOptions{Policy: "greedy", LowWatermark: segs - 1, HighWatermark: segs, Pace: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := v.Status()
		if st.Cleaner.Policy != "greedy" || st.Cleaner.LowWatermark != segs-1 {
			t.Fatalf("status after SetCleaner: %+v", st.Cleaner)
		}
		if st.Cleaner.SegmentsCleaned > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cleaner did not clean within 10 s of being turned on: %+v", st.Cleaner)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fs.verify(t)
}
