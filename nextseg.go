package txfs

import (
	"fmt"

	"github.com/txfs/txfs/segment"
)

// nextSegmentTaken says why segment s cannot be where the log goes on
// after recovery, or "" if it can: it must exist, hold none of the
// segments the log after the checkpoint used, no live block and no table
// block. The log chose it from the free segments when it entered its
// current segment and has not reached it, so any of these is damage, and
// writing there would destroy what it holds.
func (v *Volume) nextSegmentTaken(s uint32, logSegs map[uint32]bool) (string, error) {
	if s >= v.geo.Segments {
		return "does not exist", nil
	}
	if logSegs[s] {
		return "holds the log", nil
	}
	e, err := v.sut.Get(s)
	if err != nil {
		return "", err
	}
	if e.Live != 0 || e.Tables != 0 {
		return fmt.Sprintf("holds %d bytes of blocks and %d table blocks", e.Live, e.Tables), nil
	}
	why := ""
	err = v.sut.Walk(func(level int, index uint64, p segment.BlockPtr) error {
		if seg, _ := v.geo.SegmentOf(p.Addr); seg == s {
			why = "holds the usage table"
		}
		return nil
	})
	return why, err
}

// lastUnused returns the last segment of free that is not in used.
func lastUnused(free []uint32, used map[uint32]bool) (uint32, bool) {
	for i := len(free) - 1; i >= 0; i-- {
		if !used[free[i]] {
			return free[i], true
		}
	}
	return 0, false
}
