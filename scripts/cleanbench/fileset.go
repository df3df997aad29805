package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"

	"github.com/txfs/txfs"
)

// fileSet is files of one size on a volume, what each should hold, and
// which of them are hot.
type fileSet struct {
	v     *txfs.Volume
	inos  []txfs.Ino
	data  [][]byte
	hot   []int // indexes of the hot files
	cold  []int // and of the others
	bytes int64 // file data of the set
}

// newFileSet writes n files of size bytes of random data, named
// prefix0..prefixN-1. Every hotEvery-th file is hot (0: none): the hot
// files are spread over the set, so that the segments the first fill
// writes hold hot and cold data mixed, and separating them is the
// cleaner's work.
func newFileSet(v *txfs.Volume, rng *rand.ChaCha8, prefix string, n, size, hotEvery int) (*fileSet, error) {
	fs := &fileSet{v: v}
	for i := range n {
		name := fmt.Sprintf("%s%d", prefix, i)
		a, err := v.Create(txfs.RootIno, name, 0o644, txfs.Owner{})
		if err != nil {
			return nil, fmt.Errorf("create %s (file %d of %d): %w", name, i+1, n, err)
		}
		d := make([]byte, size)
		rng.Read(d)
		if _, err := v.Write(a.Ino, d, 0); err != nil {
			return nil, fmt.Errorf("write %s (file %d of %d): %w", name, i+1, n, err)
		}
		fs.inos, fs.data = append(fs.inos, a.Ino), append(fs.data, d)
		if hotEvery > 0 && i%hotEvery == 0 {
			fs.hot = append(fs.hot, i)
		} else {
			fs.cold = append(fs.cold, i)
		}
		fs.bytes += int64(size)
	}
	return fs, nil
}

// overwrite writes chunk bytes of new random data at a random place,
// aligned to chunk, of a file chosen at random: a hot one with
// probability hotP (when there are hot files), otherwise any file when
// hotP is 0, or a cold one. It returns the bytes written.
func (fs *fileSet) overwrite(r *rand.Rand, rng *rand.ChaCha8, buf []byte, hotP float64) (int, error) {
	var i int
	switch {
	case len(fs.hot) == 0 || hotP == 0:
		i = r.IntN(len(fs.inos))
	case r.Float64() < hotP:
		i = fs.hot[r.IntN(len(fs.hot))]
	default:
		i = fs.cold[r.IntN(len(fs.cold))]
	}
	off := r.IntN(len(fs.data[i])/len(buf)) * len(buf)
	rng.Read(buf)
	if _, err := fs.v.Write(fs.inos[i], buf, int64(off)); err != nil {
		return 0, fmt.Errorf("overwrite of %d bytes at %d of file %d: %w", len(buf), off, i, err)
	}
	copy(fs.data[i][off:], buf)
	return len(buf), nil
}

// verify reads every file back and compares it with what was written.
func (fs *fileSet) verify() error {
	for i, ino := range fs.inos {
		got := make([]byte, len(fs.data[i]))
		if n, err := fs.v.Read(ino, got, 0); err != nil || n != len(got) {
			return fmt.Errorf("read of file %d: %d of %d bytes, %v", i, n, len(got), err)
		}
		if !bytes.Equal(got, fs.data[i]) {
			return fmt.Errorf("file %d does not hold what was written", i)
		}
	}
	return nil
}
