package txfs

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/inode"
)

// Freeing: orphans (inodes with no name that nobody has open) and the blocks
// past a truncate are freed in transactions of bounded size, each atomic;
// what a full volume keeps from finishing waits for room (deferFree). The
// open references that keep an orphan are counted here too.

// finishFree frees an orphan that nobody has open, in transactions of
// bounded size. Called with the lock held.
func (v *Volume) finishFree(ino Ino) error {
	if v.opens[ino] > 0 {
		return nil
	}
	if _, ok, err := v.tree.Get(inode.OrphanKey(ino)); err != nil || !ok {
		return v.failIf(err)
	}
	for {
		done, err := v.freeChunk(ino, 0, true)
		if err != nil || done {
			return err
		}
	}
}

// freeChunkLimit bounds the blocks one transaction frees, punches or
// shares: 4096, fewer with small segments (a freed block costs two
// records).
func (v *Volume) freeChunkLimit() int {
	return max(1, min(4096, (v.unitPayload()-v.metaRecBytes())/40))
}

// chunkBlocks is the most blocks, up to limit, that one transaction of
// footprint fp(blocks) may take so that the metadata it dirties stays
// within half the reserve and within the room the log has now (space.go):
// large frees, punches and copies are done in transactions of this size,
// so that they progress on a full volume without a checkpoint for each.
// Lock held.
func (v *Volume) chunkBlocks(limit int, fp func(blocks int) footprint) int {
	budget := min(v.reserveBytes(false)/2, v.log.Room()-v.ckptCost()-fp(limit).need(v.bs))
	lo, hi := 1, max(1, limit)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if v.growth(fp(mid)) <= budget {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// freeOp is the footprint of freeing blocks blocks of one inode, with its
// other items when it is the last chunk.
func (v *Volume) freeOp(blocks int) footprint {
	return footprint{recBytes: blocks*40 + v.metaRecBytes(), items: blocks + 8, runs: 2, dat: blocks, frees: true}
}

// freeChunk frees up to chunkBlocks blocks of ino at or after block from
// in one transaction. With whole, the last chunk also removes the inode and
// everything else it owns, its orphan item and any truncate or range item;
// otherwise the last chunk removes the truncate item.
func (v *Volume) freeChunk(ino Ino, from uint64, whole bool) (bool, error) {
	chunk := v.chunkBlocks(v.freeChunkLimit(), v.freeOp)
	more := false
	err := v.update(opFreeInode, v.freeOp(chunk), func(t *tx) error {
		r, err := v.getInode(ino)
		if err != nil {
			return err
		}
		type item struct {
			k  btree.Key
			vb uint64
		}
		var items []item
		err = v.tree.Ascend(inode.BlockKey(ino, from), func(k btree.Key, val []byte) bool {
			if k.Ino != ino || k.Type != inode.TypeBlock {
				return false
			}
			if len(items) == chunk {
				more = true
				return false
			}
			items = append(items, item{k, inode.DecodeBlockItem(val)})
			return true
		})
		if err != nil {
			return v.fail(err)
		}
		for _, it := range items {
			if err := t.del(it.k); err != nil {
				return err
			}
			if err := t.ref(it.vb, -1); err != nil {
				return err
			}
		}
		r.NBlocks -= min(r.NBlocks, uint64(len(items)))
		t.touch(ino)
		if more {
			return t.putInode(ino, r)
		}
		if !whole {
			if err := t.putInode(ino, r); err != nil {
				return err
			}
			return t.del(inode.TruncKey(ino))
		}
		var rest []btree.Key
		err = v.tree.Ascend(btree.Key{Ino: ino}, func(k btree.Key, _ []byte) bool {
			if k.Ino != ino {
				return false
			}
			rest = append(rest, k)
			return true
		})
		if err != nil {
			return v.fail(err)
		}
		for _, k := range rest {
			if err := t.del(k); err != nil {
				return err
			}
		}
		// A truncate left for lack of space goes with the inode.
		if _, ok, err := v.tree.Get(inode.TruncKey(ino)); err != nil {
			return v.fail(err)
		} else if ok {
			if err := t.del(inode.TruncKey(ino)); err != nil {
				return err
			}
		}
		if err := t.del(inode.OrphanKey(ino)); err != nil {
			return err
		}
		return t.dropRange(ino)
	})
	return err == nil && !more, err
}

// freeOrphans finishes interrupted range operations and truncates and
// frees the orphans nobody has open, and says what it did. At Open nothing
// is open yet, so that is every orphan a crash left; Close calls it once it
// has dropped the open references still held. Called with the lock held.
func (v *Volume) freeOrphans() ([]string, error) {
	var orphans, truncs, ranges []Ino
	err := v.tree.Ascend(btree.Key{Ino: 0, Type: inode.TypeOrphan}, func(k btree.Key, _ []byte) bool {
		switch {
		case k.Ino != 0:
			return false
		case k.Type == inode.TypeOrphan:
			orphans = append(orphans, k.Off)
		case k.Type == inode.TypeTrunc:
			truncs = append(truncs, k.Off)
		case k.Type == inode.TypeRange:
			ranges = append(ranges, k.Off)
		}
		return true
	})
	if err != nil {
		return nil, v.fail(err)
	}
	var did []string
	for _, w := range []struct {
		inos   []Ino
		finish func(Ino) error
		done   string // what finishing one did
		left   string // what is left
		orphan bool   // an orphan that is open is its last user's to free
	}{
		{ranges, v.finishRange, "finished the interrupted range operation (hole punch, zero, collapse or insert) of inode %d", "the interrupted range operation of inode %d", false},
		{truncs, v.finishTruncate, "finished the interrupted truncate of inode %d", "the interrupted truncate of inode %d", false},
		{orphans, v.finishFree, "freed orphan inode %d (open with no name: unlinked, or never linked)", "orphan inode %d", true},
	} {
		for _, ino := range w.inos {
			if w.orphan && v.opens[ino] > 0 {
				continue
			}
			if err := w.finish(ino); errors.Is(err, ErrNoSpace) {
				v.deferred[ino] = true
				did = append(did, "left "+fmt.Sprintf(w.left, ino)+" for later: no space yet")
				continue
			} else if err != nil {
				return did, err
			}
			did = append(did, fmt.Sprintf(w.done, ino))
		}
	}
	return did, nil
}

// deferFree keeps an orphan, an interrupted truncate or a range operation
// that err says could not be finished for lack of space: its item stays,
// so nothing is lost (the operation is done for whoever looks: every
// access finishes it first), and it is finished once a checkpoint makes
// room (retryDeferred), at Close, or at the next Open. Other errors are
// returned. Lock held.
func (v *Volume) deferFree(ino Ino, err error) error {
	if errors.Is(err, ErrNoSpace) {
		v.deferred[ino] = true
		return nil
	}
	return err
}

// retryDeferred finishes what deferFree kept, while there is room. Lock
// held.
func (v *Volume) retryDeferred() error {
	for ino := range v.deferred {
		err := v.finishTruncate(ino) // finishes a range operation first
		if err == nil {
			err = v.finishFree(ino)
		}
		if errors.Is(err, ErrNoSpace) {
			return nil
		}
		if err != nil {
			return err
		}
		delete(v.deferred, ino)
	}
	return nil
}

// OpenFile takes a reference on ino: if its last name goes, its data stays
// until Release. OpenFileFlags is the same for an open(2) with flags.
func (v *Volume) OpenFile(ino Ino) error { return v.OpenFileFlags(ino, syscall.O_RDONLY) }

// Release drops a reference taken by OpenFile.
func (v *Volume) Release(ino Ino) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return ErrClosed // Close dropped every reference
	}
	if v.opens[ino] == 0 {
		return ErrInvalid
	}
	v.opens[ino]--
	if v.opens[ino] > 0 {
		return nil
	}
	delete(v.opens, ino)
	if v.writable() != nil {
		return nil
	}
	return v.deferFree(ino, v.finishFree(ino))
}

// finishTruncate frees the blocks past the size the truncate item records,
// in bounded transactions; the last one removes the item. It finishes a
// range operation in progress first, so that what follows sees the
// block map whole. Lock held.
func (v *Volume) finishTruncate(ino Ino) error {
	if err := v.finishRange(ino); err != nil {
		return err
	}
	for {
		val, ok, err := v.tree.Get(inode.TruncKey(ino))
		if err != nil || !ok {
			return v.failIf(err)
		}
		size, err := inode.DecodeTruncItem(val)
		if err != nil {
			return asErrIO(err, ino)
		}
		from := (size + uint64(v.bs) - 1) / uint64(v.bs)
		done, err := v.freeChunk(ino, from, false)
		if err != nil || done {
			return err
		}
	}
}
