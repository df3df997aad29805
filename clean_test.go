package txfs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
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
