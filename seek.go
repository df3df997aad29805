package txfs

import (
	"math"
)

// lseek SEEK_DATA and SEEK_HOLE: data is a mapped block, a hole an unmapped
// one, seen through any range operation in progress (fileView).

// Seek finds data or holes, as lseek(2) SEEK_DATA (hole false) and
// SEEK_HOLE (hole true) do: the first offset at or after off that is data
// (a mapped block) or a hole (an unmapped block, or the end of the file).
// ErrNoData (ENXIO) when off is at or past the end, or no data follows.
func (v *Volume) Seek(ino Ino, off int64, hole bool) (int64, error) {
	if off < 0 {
		return 0, ErrNoData
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return 0, err
	}
	view, _, err := v.readView(ino)
	if err != nil {
		return 0, err
	}
	r, err := v.fileInode(ino)
	if err != nil {
		return 0, err
	}
	size := int64(r.Size)
	if off >= size {
		return 0, ErrNoData
	}
	bs := int64(v.bs)
	next := off / bs // the block a hole search expects mapped next
	found := int64(-1)
	err = v.mappedBlocks(ino, view, uint64(off/bs), math.MaxUint64, func(b, _ uint64) bool {
		if !hole {
			found = max(off, int64(b)*bs)
			return false
		}
		if int64(b) != next {
			return false // a gap before this block
		}
		next++
		return next*bs < size
	})
	if err != nil {
		return 0, err
	}
	if hole {
		return min(max(off, next*bs), size), nil
	}
	if found < 0 || found >= size {
		return 0, ErrNoData
	}
	return found, nil
}
