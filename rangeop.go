package txfs

import (
	"errors"
	"fmt"
	"math"
	"syscall"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/inode"
)

// Range operations change the block map of a file over a range of whole
// blocks: freeing them (hole punch, zero range), or moving every block
// after a point down or up (collapse range, insert range). A big file has
// more items to change than one transaction holds, so an operation that
// does not fit records what is left in a range item (0, 8, ino) in its
// first transaction, and finishes in later ones (finishRange), the last of
// which removes the item. No one ever sees the block map half changed:
// every access to the file's blocks finishes the operation first (reads,
// seeks, writes, truncates, copies), and Open finishes one a crash
// interrupted. A read-only volume, which writes nothing, and a full volume
// until there is room read the file through a view of the operation as
// finished (fileView).

// rangeItemBytes bounds the records of one block map item a range
// operation frees (a Del and a Ref record) or moves (a Del and a Put).
const rangeItemBytes = 48

// testRangeChunk, when a test sets it, is the number of items a range
// operation changes per transaction, so that small files take several.
var testRangeChunk int

// testHookRangeStep, when a test sets it, runs before each later
// transaction of a range operation, with the lock held; an error stops
// the operation there, as a full volume would.
var testHookRangeStep func(v *Volume, ino Ino) error

// rangeChunkItems bounds the block map items one transaction of a range
// operation frees or moves: 4096 like freeChunkLimit, fewer with small
// segments.
func (v *Volume) rangeChunkItems() int {
	if testRangeChunk > 0 {
		return testRangeChunk
	}
	return max(1, min(4096, (v.unitPayload()-v.metaRecBytes())/rangeItemBytes))
}

// rangeStepOp is the footprint of a transaction of a range operation that
// changes items block map items (each deleted, and put again when it
// moves, or its block's reference dropped when it is freed), the inode
// and the range item.
func (v *Volume) rangeStepOp(items int) footprint {
	return footprint{recBytes: items*rangeItemBytes + v.metaRecBytes(), items: 2*items + 4, runs: 4, dat: items, frees: true}
}

// rangeChunk is how many items a transaction of a range operation
// changes: rangeChunkItems, fewer when the log is short of room
// (chunkBlocks), so that the operation goes on on a full volume. Lock
// held.
func (v *Volume) rangeChunk() int {
	if testRangeChunk > 0 {
		return testRangeChunk
	}
	return v.chunkBlocks(v.rangeChunkItems(), v.rangeStepOp)
}

// pendingRange returns the range operation in progress on ino, if any.
func (v *Volume) pendingRange(ino Ino) (inode.RangeOp, bool, error) {
	return v.pendingRangeIn(v.tree, ino)
}

func (v *Volume) pendingRangeIn(tree *btree.Tree, ino Ino) (inode.RangeOp, bool, error) {
	val, ok, err := tree.Get(inode.RangeKey(ino))
	if err != nil || !ok {
		return inode.RangeOp{}, false, v.failIf(err)
	}
	o, err := inode.DecodeRangeOp(val)
	if err != nil {
		return inode.RangeOp{}, false, v.fail(err)
	}
	return o, true, nil
}

// runRange does as much of o as t holds (chunk items, as it was begun
// with), which changes r, records what is left in the range item, and
// reports whether o is done. finishRest finishes the rest.
func (t *tx) runRange(ino Ino, r *inode.Record, o inode.RangeOp, chunk int) (bool, error) {
	done, err := t.rangeStep(ino, r, &o, chunk)
	if err != nil {
		return false, err
	}
	return done, t.endStep(ino, r, o, done, false)
}

// finishRest finishes in further transactions the range operation on ino
// whose first transaction ended with done and err.
func (v *Volume) finishRest(ino Ino, done bool, err error) error {
	if err != nil || done {
		return err
	}
	// The operation is done for whoever looks; a full volume only delays
	// the rest.
	return v.deferFree(ino, v.finishRange(ino))
}

// endStep ends the work of a transaction of range operation o on ino,
// whose inode is now r: it records what is left of o in the range item, or
// removes the item (which exists if had) when o is done.
func (t *tx) endStep(ino Ino, r *inode.Record, o inode.RangeOp, done, had bool) error {
	var err error
	switch {
	case !done:
		err = t.put(inode.RangeKey(ino), o.Encode())
	case had:
		err = t.del(inode.RangeKey(ino))
	}
	if err != nil {
		return err
	}
	return t.putInode(ino, r)
}

// finishRange finishes the range operation in progress on ino, if any,
// in transactions of rangeChunkItems items; the last removes the range
// item. Lock held. begin may release it meanwhile, and another caller
// may then take the operation further: each transaction starts from the
// item as it is. An open reference keeps an unlink from freeing the
// inode under the operation.
func (v *Volume) finishRange(ino Ino) (err error) {
	if _, ok, err := v.pendingRange(ino); err != nil || !ok {
		return err
	}
	if v.ro {
		return nil // it writes nothing: readers go through the view (readView)
	}
	v.opens[ino]++
	defer func() {
		if v.opens[ino] == 0 {
			return // Close dropped every reference
		}
		if v.opens[ino]--; v.opens[ino] == 0 {
			delete(v.opens, ino)
			if err == nil && v.writable() == nil {
				err = v.finishFree(ino) // an unlink left it to us
			}
		}
	}()
	for {
		if testHookRangeStep != nil {
			if err := testHookRangeStep(v, ino); err != nil {
				return err
			}
		}
		chunk := v.rangeChunk()
		done := false
		err := v.update(opRangeStep, v.rangeStepOp(chunk), func(t *tx) error {
			o, ok, err := v.pendingRange(ino)
			if err != nil || !ok {
				done = true
				return err
			}
			r, err := v.getInode(ino)
			if errors.Is(err, ErrNotExist) {
				// Nothing left to change (the item outlived its inode).
				done = true
				return t.del(inode.RangeKey(ino))
			}
			if err != nil {
				return err
			}
			if done, err = t.rangeStep(ino, r, &o, chunk); err != nil {
				return err
			}
			return t.endStep(ino, r, o, done, true)
		})
		if err != nil || done {
			return err
		}
	}
}

// dropRange removes the range item of ino, an inode being freed, if it
// has one: a range operation that stopped (the volume was full, say)
// has nothing left to do once the blocks are gone.
func (t *tx) dropRange(ino Ino) error {
	if _, ok, err := t.v.tree.Get(inode.RangeKey(ino)); err != nil || !ok {
		return t.v.failIf(err)
	}
	return t.del(inode.RangeKey(ino))
}

// rangeStep frees or moves up to budget block map items of o's work in
// t, moves o's cursor past them, and reports whether o is done. r is the
// inode, whose block count it keeps.
func (t *tx) rangeStep(ino Ino, r *inode.Record, o *inode.RangeOp, budget int) (bool, error) {
	v := t.v
	end := o.First + o.Count
	if o.Kind != inode.RangeInsert && o.Cursor < end {
		items, more, err := v.blockItems(ino, o.Cursor, end, budget, false)
		if err != nil {
			return false, err
		}
		for _, it := range items {
			if err := t.del(inode.BlockKey(ino, it.off)); err != nil {
				return false, err
			}
			if err := t.ref(it.vb, -1); err != nil {
				return false, err
			}
			r.NBlocks--
		}
		if more {
			o.Cursor = items[len(items)-1].off + 1
			return false, nil
		}
		o.Cursor = end
		budget -= len(items)
	}
	if o.Kind == inode.RangeFree {
		return true, nil
	}
	var items []blockItem
	var more bool
	var err error
	if o.Kind == inode.RangeCollapse {
		items, more, err = v.blockItems(ino, o.Cursor, ^uint64(0), budget, false)
	} else {
		items, more, err = v.blockItems(ino, o.First, o.Cursor, budget, true)
	}
	if err != nil || len(items) == 0 {
		return !more, err // with no budget left, whether anything remains
	}
	// Every item lands on a free place: a collapse moves items down into
	// the freed range or onto places whose items moved down before, an
	// insert moves them up past the old end or onto places whose items
	// moved up before.
	for _, it := range items {
		to := it.off + o.Count
		if o.Kind == inode.RangeCollapse {
			to = it.off - o.Count
		}
		if err := t.del(inode.BlockKey(ino, it.off)); err != nil {
			return false, err
		}
		if err := t.put(inode.BlockKey(ino, to), inode.EncodeBlockItem(it.vb)); err != nil {
			return false, err
		}
	}
	if !more {
		return true, nil
	}
	if last := items[len(items)-1].off; o.Kind == inode.RangeCollapse {
		o.Cursor = last + 1
	} else {
		o.Cursor = last
	}
	return false, nil
}

// blockItem is one block map item: a file block and its virtual block.
type blockItem struct{ off, vb uint64 }

// blockItems returns up to n block map items of ino with file blocks in
// [from, to), from the lowest up (from the highest down with down), and
// whether more follow.
func (v *Volume) blockItems(ino Ino, from, to uint64, n int, down bool) ([]blockItem, bool, error) {
	var items []blockItem
	more := false
	visit := func(k btree.Key, val []byte) bool {
		if k.Ino != ino || k.Type != inode.TypeBlock || k.Off < from || k.Off >= to {
			return false
		}
		if len(items) >= n {
			more = true
			return false
		}
		items = append(items, blockItem{k.Off, inode.DecodeBlockItem(val)})
		return true
	}
	var err error
	if down {
		err = v.tree.Descend(inode.BlockKey(ino, to), visit)
	} else {
		err = v.tree.Ascend(inode.BlockKey(ino, from), visit)
	}
	return items, more, v.failIf(err)
}

// regularInode returns the record of ino for an operation on the data of
// a regular file.
func (v *Volume) regularInode(ino Ino) (*inode.Record, error) {
	r, err := v.fileInode(ino)
	if err == nil && r.Mode&syscall.S_IFMT != syscall.S_IFREG {
		err = fmt.Errorf("%w: inode %d is not a regular file", ErrInvalid, ino)
	}
	return r, err
}

// A fileView says where a reader finds each block of a file: block b is
// the block map item b+shift of the piece holding b; blocks no piece
// holds are holes. Pieces are in file order. Reads go through one so that
// a range operation a full volume keeps from finishing (ENOSPC) reads as
// finished; it finishes when space comes back.
type fileView []viewPiece

// viewPiece maps file blocks [from, to) to items [from+shift, to+shift).
type viewPiece struct {
	from, to uint64
	shift    int64
}

// plainView is the view of a file with no range operation in progress.
var plainView = fileView{{0, math.MaxUint64, 0}}

// rangeView is the file as o will leave it, seen in the block map as o has
// left it so far (the cursor's meaning is at inode.RangeOp).
func rangeView(o inode.RangeOp) fileView {
	end := o.First + o.Count
	n := int64(o.Count)
	switch o.Kind {
	case inode.RangeFree:
		if o.Cursor >= end {
			return plainView
		}
		return fileView{{0, o.Cursor, 0}, {end, math.MaxUint64, 0}}
	case inode.RangeCollapse:
		// Below split the items are where they stay; above it each
		// is count blocks further up than it will be.
		split := o.First
		if o.Cursor >= end {
			split = o.Cursor - o.Count
		}
		return fileView{{0, split, 0}, {split, math.MaxUint64 - o.Count, n}}
	default: // inode.RangeInsert
		// The items from cursor up have moved; those below it, from
		// first on, have still to move count blocks up.
		return fileView{{0, o.First, 0}, {end, o.Cursor + o.Count, -n}, {o.Cursor + o.Count, math.MaxUint64, 0}}
	}
}

// readView finishes the range operation in progress on ino, if any, and
// returns the view to read the file's blocks through: plainView, or, when
// the volume has no room to finish it now, the operation seen as finished.
// had says whether there was one (which changed the inode). Lock held;
// finishRange may release it meanwhile.
func (v *Volume) readView(ino Ino) (view fileView, had bool, err error) {
	if _, pending, err := v.pendingRange(ino); err != nil || !pending {
		return plainView, false, err
	}
	if err := v.finishRange(ino); err != nil && !errors.Is(err, ErrNoSpace) {
		return nil, true, err
	}
	o, pending, err := v.pendingRange(ino)
	if err != nil || !pending {
		return plainView, true, err
	}
	return rangeView(o), true, nil
}

// mappedBlocks calls fn for the mapped blocks of ino in [first, last]
// seen through view, in file order, until fn returns false.
func (v *Volume) mappedBlocks(ino Ino, view fileView, first, last uint64, fn func(b, vb uint64) bool) error {
	return v.mappedBlocksIn(v.tree, ino, view, first, last, fn)
}

func (v *Volume) mappedBlocksIn(tree *btree.Tree, ino Ino, view fileView, first, last uint64, fn func(b, vb uint64) bool) error {
	for _, p := range view {
		lo, hi := max(p.from, first), min(p.to-1, last)
		if p.to == 0 || lo > hi {
			continue
		}
		if lo == hi { // one block: a lookup, not a scan
			val, ok, err := tree.Get(inode.BlockKey(ino, uint64(int64(lo)+p.shift)))
			if err != nil {
				return v.fail(err)
			}
			if ok && !fn(lo, inode.DecodeBlockItem(val)) {
				return nil
			}
			continue
		}
		more := true
		err := tree.Ascend(inode.BlockKey(ino, uint64(int64(lo)+p.shift)), func(k btree.Key, val []byte) bool {
			b := uint64(int64(k.Off) - p.shift)
			if k.Ino != ino || k.Type != inode.TypeBlock || b > hi {
				return false
			}
			more = fn(b, inode.DecodeBlockItem(val))
			return more
		})
		if err != nil {
			return v.fail(err)
		}
		if !more {
			return nil
		}
	}
	return nil
}
