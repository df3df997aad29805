package txfs

import (
	"time"

	"github.com/txfs/txfs/cow"
	"github.com/txfs/txfs/journal"
	"github.com/txfs/txfs/segment"
)

// Space accounting. The log can still write Room bytes (journal.Log): the rest of the
// current segment, the next segment and the free segments. Out of that:
//
//   - the next checkpoint must always fit (ckptCost: a bound of what it
//     writes, computed from the metadata dirty now, plus what a checkpoint
//     still on its way to the disk wrote, which recovery would write again
//     after a crash). This is the invariant Room >= ckptCost that makes
//     checkpoints, and recovery after a crash at any point, always possible;
//   - a reserve of segments (1/20 of the volume, at least 4) is kept from
//     ordinary operations; operations that free space (unlink, rmdir,
//     truncate, removexattr, rename) may use all of it. Deleting files
//     dirties metadata (at most all of it, about 2% of the data it
//     describes) and writes small records, while the space it frees comes
//     back only when whole segments are empty and a checkpoint is durable:
//     the reserve is what a full volume spends to be emptied;
//   - the reserve also absorbs the metadata one ordinary operation dirties
//     (its growth), as long as that is smaller than the reserve;
//     larger growth, and the growth of an operation that frees space, is
//     held back explicitly.
//
// An operation is admitted when Room - need - ckptCost >= max(reserve,
// growth). When it is not, a checkpoint is taken first if that can help
// (dirty metadata that a checkpoint writes for less than its bound, or
// segments that deletes emptied since the last checkpoint), and the
// operation gets ENOSPC only if it still does not fit.

// footprint is what a transaction may add to the log and what metadata it
// may dirty, declared before it changes anything.
type footprint struct {
	blockBytes, nblocks, recBytes int  // what goes into its unit
	items, runs                   int  // tree items it puts or deletes, and in how many places of the tree
	dat                           int  // DAT entries it changes (allocations, writes, references)
	frees                         bool // it frees space, and may use half the reserve
}

// metaOp is the footprint of a namespace operation that changes up to
// items tree items, each anywhere in the tree.
func (v *Volume) metaOp(items int, frees bool) footprint {
	return footprint{recBytes: v.metaRecBytes(), items: items, runs: items, frees: frees}
}

// symlinkOp is the footprint of making a symbolic link to a target of n
// bytes: its inode, entry and parent, and the target in chunks.
func (v *Volume) symlinkOp(n int) footprint {
	f := v.metaOp(4+n/v.maxValue()+1, false)
	f.recBytes += 2 * n
	return f
}

// renameOp is the footprint of a rename: two directories, two entries, the
// inodes named, and an orphan item.
func (v *Volume) renameOp() footprint {
	f := v.metaOp(10, true)
	f.recBytes *= 2
	return f
}

// need is the log bytes a transaction may take: its blocks, summaries and
// records, and one unit's header, mark and rounding.
func (f footprint) need(bs int) int64 {
	return int64(f.blockBytes + f.nblocks*segment.SummarySize + f.recBytes + segment.UnitHeaderSize + journal.MarkSize + 2*bs)
}

// reserveBytes is what ordinary operations leave in the log; operations
// that free space leave what the cleaner needs to go on (cleanerReserve).
func (v *Volume) reserveBytes(frees bool) int64 {
	if frees {
		return v.cleanerReserve()
	}
	return int64(v.log.Reserve) * int64(v.geo.SegmentSize)
}

// cleanerReserve is what the log keeps for the cleaner even from
// operations that free space: a segment for its next copies (the log
// never takes the last free segment: journal.Log.KeepForCleaner), and
// what moving a segment's worth of blocks adds to the next checkpoint.
// Without it, deletes on a full volume whose segments all hold some live
// block could leave the cleaner no segment, and nothing would ever come
// back. The cleaner may take that segment: its batch empties more than
// it fills, and the checkpoint after it gives a segment back.
func (v *Volume) cleanerReserve() int64 {
	return int64(v.geo.SegmentSize) + v.ckptCostWith(0, v.segmentBlocks()) - v.ckptCost()
}

// treeGrowth bounds the tree nodes a change of items items in runs places
// dirties: each place its path from the root, and a split or merge on each
// level; and for long runs of small items (block maps), two nodes for
// every 16 items (a leaf is at least a quarter full: 37 block map items
// with 4 KiB blocks). A run's path shares the root with every other, and a
// split or merge adds at most one node per level and a new root.
func (v *Volume) treeGrowth(items, runs int) int {
	h, err := v.tree.Height()
	if err != nil {
		h = 8
	}
	return runs*(2*h+1) + 2*((items+15)/16)
}

// growth bounds the bytes the next checkpoint grows by when a transaction
// of footprint f commits.
func (v *Volume) growth(f footprint) int64 {
	return v.ckptCostWith(v.treeGrowth(f.items, f.runs), f.dat) - v.ckptCostWith(0, 0)
}

// ckptCost bounds the bytes the next checkpoint writes, and the one after
// it.
func (v *Volume) ckptCost() int64 { return v.ckptCostWith(0, 0) }

// ckptCostWith is ckptCost after extraNodes more tree nodes and extraDAT
// more DAT entries became dirty. It counts the next checkpoint, and the
// one that must follow it even if nothing else changes: every checkpoint
// leaves the usage table and the DAT entries of the tree nodes it freed
// dirty. So a checkpoint always leaves room for the next one, and one with
// nothing to write is not taken (checkpoint).
func (v *Volume) ckptCostWith(extraNodes, extraDAT int) int64 {
	nodes := v.tree.DirtyNodes() + extraNodes
	freed := v.tree.PendingFreeCount() + extraNodes
	// Every node written changes its DAT entry; new nodes allocate one.
	cost := v.checkpointBytes(int64(nodes+v.dat.FlushBound(nodes+extraDAT)+v.sut.FlushBound()), freed)
	cost += v.checkpointBytes(int64(v.dat.BlocksFor(freed)+v.sut.FlushBound()), 0)
	if v.log.Checkpointing {
		cost += v.ckptInflight
	}
	return cost
}

// checkpointBytes bounds the log a checkpoint of blocks metadata blocks
// takes, whose record lists freed tree nodes: the blocks and their summary
// entries, the record and its copy, and the headers, marks and rounding
// of its units, and the padding where it crosses into the next segment.
func (v *Volume) checkpointBytes(blocks int64, freed int) int64 {
	bs := int64(v.bs)
	data := blocks * (bs + segment.SummarySize)
	record := 2 * (checkpointSize + 8*int64(freed) + segment.UnitHeaderSize + bs)
	units := data/int64(v.log.UnitLimit()) + 2
	boundaries := data/int64(v.geo.SegmentSize) + 2
	return data + record + units*(segment.UnitHeaderSize+journal.MarkSize+bs) + boundaries*v.log.PerBoundary()
}

// admits reports whether a transaction of footprint f fits now.
func (v *Volume) admits(f footprint) bool {
	held := max(v.reserveBytes(f.frees), v.growth(f))
	return v.log.Room()-f.need(v.bs)-v.ckptCost() >= held
}

// reclaimable counts the segments that the next durable checkpoint gives
// back: empty now, and neither free already nor part of the log head.
func (v *Volume) reclaimable() (int, error) {
	empty, err := v.emptySegments(map[uint32]bool{v.log.CurSeg: true, v.log.NextSeg: true})
	if err != nil {
		return 0, err
	}
	free := make(map[uint32]bool, len(v.log.Free))
	for _, s := range v.log.Free {
		free[s] = true
	}
	for _, s := range v.log.UsedSince {
		free[s] = true // taken by the log while a checkpoint runs
	}
	n := 0
	for _, s := range empty {
		if !free[s] {
			n++
		}
	}
	return n, nil
}

// spaceCheckpointDue says whether the checkpointer should take a
// checkpoint for space's sake. Lock held.
//
//   - Once the dirty metadata would cost a quarter of the reserve, while
//     the volume has room, so that ordinary operations do not meet the
//     reserve with much of it owed to the next checkpoint. On a nearly
//     full volume such a checkpoint would only spend room.
//   - When deletes have emptied segments, or left segments that hold
//     only table blocks, looked for when scan is set (spaceScanEvery):
//     the checkpoint gives them back, and frees the metadata of the last
//     checkpoints that lies in segments the deletes emptied of data,
//     which statfs cannot count as free until then. So df shows the space
//     a delete freed within a second.
func (v *Volume) spaceCheckpointDue(scan bool) bool {
	c := v.ckptCost()
	if v.roomy(c) && c >= v.reserveBytes(false)/4 {
		return true
	}
	if !scan {
		return false
	}
	n, err := v.reclaimable()
	moved, _ := v.tablesBack()
	return err == nil && n > 0 || moved > 0
}

// roomy says whether the log has room for twice the reserve beyond the
// next checkpoint, whose cost is c. On a volume that is not, a checkpoint
// taken early only spends room: it rewrites metadata that a later one
// would have written once. Lock held.
func (v *Volume) roomy(c int64) bool { return v.log.Room()-c >= 2*v.reserveBytes(false) }

// spaceScanEvery is how long the checkpointer waits, after the log
// changed, before it looks for segments to give back: 100 ms on a nearly
// full volume, 500 ms otherwise, so that a long delete does not
// checkpoint all the time.
func (v *Volume) spaceScanEvery() time.Duration {
	if v.roomy(v.ckptCost()) {
		return 500 * time.Millisecond
	}
	return 100 * time.Millisecond
}

// checkpointHelps says whether a checkpoint now could admit more: it
// writes the metadata changed since the last one, usually for less than
// its bound, frees the segments that deletes emptied, and moves table
// blocks out of segments that hold nothing else (tablemove.go). One that
// is running counts its whole bound against the room until it is done:
// waiting for it (checkpoint does) helps.
func (v *Volume) checkpointHelps() bool {
	if v.changes > 0 || v.log.Checkpointing {
		return true
	}
	n, err := v.reclaimable()
	moved, _ := v.tablesBack()
	return err == nil && n > 0 || moved > 0
}

// blockOverhead is what the log spends for each block of file data beyond
// the block itself, with the metadata it costs at checkpoints: its summary
// entry, its records (allocation, write, block map item), its DAT entry and
// block map item in their table and tree blocks.
func (v *Volume) blockOverhead() int64 {
	return segment.SummarySize + 40 + cow.EntrySize + 40
}

// cleanerRoom is the room the cleaner holds apart from the log's: the
// rest of its segment and the free segment the log keeps for it. Writers
// get it through the cleaner, as far as there is dead space to reclaim:
// the blocks it moves there free as much in their victims.
func (v *Volume) cleanerRoom() int64 {
	return v.log.ColdRoom() + v.log.ColdCostKept()
}

// availableBytes is what ordinary writers can still put in the log, with
// the space that deletes freed since the last checkpoint and the segments
// it gives back by moving table blocks, less what moving them costs (a
// writer that needs it takes a checkpoint), and the dead space the
// cleaner can give back (a writer that needs it waits for the cleaner).
func (v *Volume) availableBytes() int64 {
	n, _ := v.reclaimable()
	moved, blocks := v.tablesBack()
	s := int64(v.geo.SegmentSize)
	dead := v.reclaimableBytes()
	return v.log.Room() + int64(n+moved)*(s-v.log.PerBoundary()) + dead + min(v.cleanerRoom(), dead) -
		v.ckptCostWith(0, blocks) - v.reserveBytes(false)
}
