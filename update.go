package txfs

import (
	"fmt"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/inode"
)

// Every operation runs its transactions through update: begin, the
// operation's own reads and changes, then commit or the end of the
// volume's writing (docs/DESIGN.md, "Transactions and the log").

// update runs fn as one transaction of op with footprint f, and commits it
// when fn returns nil. Lock held; begin may release it while it waits for
// room or memory, so fn reads what it needs itself. A transaction that
// changed nothing is dropped: it has nothing to record. One that fails
// before its first change leaves no trace. One that fails after it
// cannot be undone, since its changes are applied to the in-memory state
// as they go: the volume stops writing there and then, saying which
// operation failed and why, so nothing can make the half-done change
// durable, and the next Open recovers from the log.
func (v *Volume) update(op int, f footprint, fn func(t *tx) error) error {
	return v.updateSettled(op, f, nil, fn)
}

// updateSettled is update for an operation on the blocks of inos: none of
// them has a truncate or a range operation in progress when fn runs.
// Those are finished first, and again if one started while begin waited
// with the lock released. Lock held.
func (v *Volume) updateSettled(op int, f footprint, inos []Ino, fn func(t *tx) error) error {
	for {
		for _, ino := range inos {
			if err := v.finishTruncate(ino); err != nil {
				return err
			}
		}
		t, err := v.begin(op, f)
		if err != nil {
			return err
		}
		settled, err := v.settled(inos)
		if err == nil && !settled {
			t.end(op, nil) // it changed nothing
			continue
		}
		if err == nil {
			err = fn(t)
		}
		return t.end(op, err)
	}
}

// settled reports whether none of inos has a truncate or a range
// operation in progress.
func (v *Volume) settled(inos []Ino) (bool, error) {
	for _, ino := range inos {
		for _, k := range []btree.Key{inode.TruncKey(ino), inode.RangeKey(ino)} {
			_, ok, err := v.tree.Get(k)
			if err != nil {
				return false, v.fail(err)
			}
			if ok {
				return false, nil
			}
		}
	}
	return true, nil
}

// updateChange is update for a change of regular file ino by a fallocate
// mode, which removes its security.capability first, as the kernel's
// file_modified does; fn gets the inode. An immutable file, or an
// append-only one unless appendOK, is refused first (ErrPermission), as
// the VFS does. Lock held.
func (v *Volume) updateChange(op int, ino Ino, f footprint, appendOK bool, fn func(t *tx, r *inode.Record) error) error {
	return v.updateSettled(op, f, []Ino{ino}, func(t *tx) error {
		r, err := v.regularInode(ino)
		if err != nil {
			return err
		}
		if immutable(r) || !appendOK {
			if err := checkChange(r); err != nil {
				return err
			}
		}
		if err := t.dropCapabilities(ino); err != nil {
			return err
		}
		return fn(t, r)
	})
}

// end ends t, a transaction of op, as fn's result err says: it commits t
// when err is nil, drops it when it changed nothing, and otherwise stops
// the volume (update). Lock held.
func (t *tx) end(op int, err error) error {
	v := t.v
	switch {
	case err == nil && t.changed:
		t.commit()
		return nil
	case err == nil || !t.changed:
		return err
	}
	return v.fail(fmt.Errorf("%s failed halfway through its transaction: %w", opNames[uint64(op)], err))
}

// The size of a transaction.

// metaRecBytes bounds the records of one metadata operation: a few items
// of at most the tree's largest value each.
func (v *Volume) metaRecBytes() int { return 8 * (v.maxValue() + 64) }

// unitPayload is what one transaction may put in a unit.
func (v *Volume) unitPayload() int {
	return int(min(int64(v.geo.SegmentSize), maxUnitBytes)) - 6*v.bs
}

func (v *Volume) maxValue() int { return btree.MaxValueSize(v.bs) }
