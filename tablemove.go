package txfs

import (
	"slices"

	"github.com/txfs/txfs/segment"
)

// Table blocks stranded in segments that hold nothing else. A checkpoint
// writes only the DAT and usage table blocks whose entries changed; a block
// no change reaches stays where an earlier checkpoint put it. Once the files
// written around it are deleted it is all its segment holds, and it keeps
// the segment from coming back: round after round of filling a volume with
// small files and deleting them all, more segments would be held so, by a
// block or two each. Table blocks are few and need no cleaner to move: a
// checkpoint writes the ones that lie alone again, at the log head, and
// their segments are empty after it.
//
// Moving a segment's table blocks costs their size and gives the whole
// segment back, so a segment is emptied so only while they fill at most
// half of it, and only as far as the checkpoint still fits (like a delete,
// the move may use the reserve: it gives back more than it spends). Such
// segments count as free for statfs, less what moving their blocks costs,
// and a writer short of room takes the checkpoint that moves them.

// tableBlock names one block of the DAT or of the usage table.
type tableBlock struct {
	usage bool
	level int
	index uint64
}

// strandedCounts counts the table blocks of each segment that holds
// nothing else and that moving them would give back: no live block, table
// blocks filling at most half of it, and neither the log head's nor one
// the log took while a checkpoint is being written. Lock held.
func (v *Volume) strandedCounts() (map[uint32]int, error) {
	usageIn, err := v.usageBlocksBySegment()
	if err != nil {
		return nil, err
	}
	skip := v.log.Held()
	half := int(v.geo.SegmentSize/v.geo.BlockSize) / 2
	counts := map[uint32]int{}
	for s := range v.geo.Segments {
		if skip[s] {
			continue
		}
		e, err := v.sut.Get(s)
		if err != nil {
			return nil, err
		}
		if k := int(e.Tables) + usageIn[s]; e.Live == 0 && k > 0 && k <= half {
			counts[s] = k
		}
	}
	return counts, nil
}

// movable picks, segment by segment in order, the stranded segments whose
// blocks the next checkpoint can move and still fit, and returns them and
// the number of blocks. Lock held.
func (v *Volume) movable(counts map[uint32]int) ([]uint32, int) {
	segs := make([]uint32, 0, len(counts))
	for s := range counts {
		segs = append(segs, s)
	}
	slices.Sort(segs)
	var picked []uint32
	blocks := 0
	for _, s := range segs {
		if v.log.Room() >= v.ckptCostWith(0, blocks+counts[s]) {
			picked = append(picked, s)
			blocks += counts[s]
		}
	}
	return picked, blocks
}

// tablesBack is how many segments the next checkpoint gives back by moving
// table blocks, and how many blocks it moves. Lock held.
func (v *Volume) tablesBack() (segs, blocks int) {
	counts, err := v.strandedCounts()
	if err != nil || len(counts) == 0 {
		return 0, 0
	}
	picked, blocks := v.movable(counts)
	return len(picked), blocks
}

// moveStrandedTables marks dirty the table blocks of the segments
// tablesBack counts, so that the checkpoint about to be written moves
// them. Lock held, before the checkpoint's cost is taken.
func (v *Volume) moveStrandedTables() error {
	counts, err := v.strandedCounts()
	if err != nil || len(counts) == 0 {
		return err
	}
	picked, _ := v.movable(counts)
	if len(picked) == 0 {
		return nil
	}
	in, err := v.tableBlocksIn(picked)
	if err != nil {
		return err
	}
	var blocks []tableBlock
	for _, s := range picked {
		blocks = append(blocks, in[s]...)
	}
	return v.markTablesDirty(blocks)
}

// usageBlocksBySegment counts the usage table blocks stored in each
// segment (the usage table does not count them itself). Lock held.
func (v *Volume) usageBlocksBySegment() (map[uint32]int, error) {
	in := map[uint32]int{}
	err := v.sut.Walk(func(level int, index uint64, p segment.BlockPtr) error {
		if s, ok := v.geo.SegmentOf(p.Addr); ok {
			in[s]++
		}
		return nil
	})
	return in, err
}

// tableBlocksIn lists, for each of segs, the DAT and usage table blocks
// stored in it. Lock held.
func (v *Volume) tableBlocksIn(segs []uint32) (map[uint32][]tableBlock, error) {
	in := map[uint32][]tableBlock{}
	want := map[uint32]bool{}
	for _, s := range segs {
		want[s] = true
	}
	collect := func(usage bool) func(int, uint64, segment.BlockPtr) error {
		return func(level int, index uint64, p segment.BlockPtr) error {
			if s, ok := v.geo.SegmentOf(p.Addr); ok && want[s] {
				in[s] = append(in[s], tableBlock{usage, level, index})
			}
			return nil
		}
	}
	if err := v.sut.Walk(collect(true)); err != nil {
		return nil, err
	}
	for _, s := range segs {
		if e, err := v.sut.Get(s); err != nil || e.Tables > 0 {
			// Some DAT block lies there: find them all.
			if err == nil {
				err = v.dat.Walk(collect(false))
			}
			return in, err
		}
	}
	return in, nil
}

// markTablesDirty marks table blocks dirty, so that the next checkpoint
// writes them again, at the log head. Lock held.
func (v *Volume) markTablesDirty(blocks []tableBlock) error {
	for _, b := range blocks {
		mark := v.dat.MarkDirty
		if b.usage {
			mark = v.sut.MarkDirty
		}
		if err := mark(b.level, b.index); err != nil {
			return err
		}
	}
	return nil
}
