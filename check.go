package txfs

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/cow"
	"github.com/txfs/txfs/fsck"
	"github.com/txfs/txfs/inode"
	"github.com/txfs/txfs/segment"
)

// The checker and repair live in package fsck; the volume gives them their
// access (Fsck). Check and Repair stay here as methods, for every caller
// that has a volume at hand.

// CheckReport is what the checker found.
type CheckReport = fsck.Report

// LostFound is the directory Repair puts inodes that have no name into.
const LostFound = fsck.LostFound

// Check verifies the whole volume as it is now (fsck.Check).
func (v *Volume) Check() error { return fsck.Check(v.Fsck()) }

// CheckReport runs the checks of Check and returns everything found. The
// error is for the checker itself failing (a closed volume).
func (v *Volume) CheckReport() (*CheckReport, error) { return fsck.CheckWithProgress(v.Fsck(), nil) }

// Repair fixes the namespace through ordinary transactions (fsck.Repair).
func (v *Volume) Repair() ([]string, error) { return fsck.Repair(v.Fsck()) }

// RepairCounts sets the reference counts and the segment usage to the
// references that exist (fsck.RepairCounts).
func (v *Volume) RepairCounts() ([]string, error) { return fsck.RepairCounts(v.Fsck()) }

// superblockWarnings are the warnings of the checker Open finds in the
// superblocks (fsck.SuperblockWarnings).
func superblockWarnings(dev segment.Device, bs uint32) []string {
	return fsck.SuperblockWarnings(dev, bs)
}

// Fsck gives the checker and repair (package fsck) their access to the
// volume: reads under the volume lock, changes as transactions.
func (v *Volume) Fsck() fsck.Volume { return fsckAccess{v} }

type fsckAccess struct{ v *Volume }

func (a fsckAccess) Inspect(forRepair bool, fn func(fsck.View) error) error {
	v := a.v
	v.mu.Lock()
	defer v.mu.Unlock()
	if !forRepair {
		if v.closed {
			return ErrClosed
		}
		return fn(fsckView{v})
	}
	if err := v.writable(); err != nil {
		return err
	}
	if err := fn(fsckView{v}); err != nil {
		return v.fail(err)
	}
	return nil
}

func (a fsckAccess) InspectDurable(fn func(fsck.View) error) (moved bool, err error) {
	v := a.v
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return false, ErrClosed
	}
	sb := *v.sb
	outer := fsckView{v}
	warnings, damage := append([]string(nil), v.warnings...), outer.Damage()
	v.mu.Unlock()
	// A volume of its own, private to fn, that reads only the device.
	d := newVolume(v.dev, &sb, 0, Options{ReadOnly: true, CacheBytes: durableCheckCache})
	_, c, err := d.loadCheckpoint(sb.Checkpoint)
	if err != nil {
		err = fmt.Errorf("%w: %w", fsck.ErrCheckpoint, err)
	} else {
		err = fn(durableView{fsckView{d}, c.FreedNodes, warnings, damage})
	}
	v.mu.Lock()
	moved = v.sb.Generation != sb.Generation
	v.mu.Unlock()
	return moved, err
}

// durableCheckCache is the memory the caches of a durable check take.
const durableCheckCache = MinCacheBytes

// durableView is a checkpoint's metadata as the checker reads it.
type durableView struct {
	fsckView
	freed    []uint64 // nodes the checkpoint dropped: freed once it was durable
	warnings []string
	damage   string
}

func (d durableView) DroppedNodes() []uint64 { return d.freed }
func (d durableView) Warnings() []string     { return d.warnings }
func (d durableView) Damage() string         { return d.damage }

func (a fsckAccess) Fix(fn func(fsck.Tx) error) error {
	v := a.v
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.update(opRepair, v.metaOp(8, true), func(t *tx) error { return fn(fsckTx{t}) })
}

func (a fsckAccess) LostFound(name string) (Ino, error) {
	lf, err := a.v.Lookup(RootIno, name)
	if errors.Is(err, ErrNotExist) {
		// As a repair, which the root's inode flags do not stop.
		lf, err = a.v.mknod(opRepair, RootIno, name, syscall.S_IFDIR|0o700, 0, Owner{}, "")
	}
	return lf.Ino, err
}

func (a fsckAccess) FixCounts(fn func(fsck.View) (func(vb uint64) uint32, error)) ([]string, error) {
	v := a.v
	var changed []string
	v.mu.Lock()
	err := v.writable()
	if err == nil {
		var refs func(vb uint64) uint32
		if refs, err = fn(fsckView{v}); err == nil {
			err = v.blocks.Repair(refs, func(c string) { changed = append(changed, c) })
		}
	}
	if len(changed) > 0 {
		v.changes++ // changed outside a transaction: only a checkpoint writes it
	}
	v.mu.Unlock()
	if err != nil {
		return changed, err
	}
	if len(changed) > 0 {
		err = v.checkpoint()
	}
	return changed, err
}

func (a fsckAccess) OpenRepairs() []string {
	a.v.mu.Lock()
	defer a.v.mu.Unlock()
	did := append([]string(nil), a.v.opened...)
	a.v.opened = nil
	return did
}

// fsckView is the volume's metadata as the checker reads it, under the
// volume lock.
type fsckView struct{ v *Volume }

func (f fsckView) BlockSize() int           { return f.v.bs }
func (f fsckView) Tree() *btree.Tree        { return f.v.tree }
func (f fsckView) Blocks() *cow.Blocks      { return f.v.blocks }
func (f fsckView) NextIno() Ino             { return f.v.nextIno }
func (f fsckView) FreeSegments() []uint32   { return f.v.log.Free }
func (f fsckView) KnownFlags() uint32       { return SupportedFlags }
func (f fsckView) Warnings() []string       { return f.v.warnings }
func (f fsckView) NameError(n string) error { return checkName(n) }

func (f fsckView) XattrNameError(n string) error { return f.v.checkXattrName(n) }

func (f fsckView) Snapshots() []uint64                      { return f.v.snapshotRoots() }
func (f fsckView) SnapshotTable() []uint64                  { return f.v.snapTable }
func (f fsckView) LoadNode(id btree.NodeID) ([]byte, error) { return f.v.LoadNode(id) }

func (f fsckView) SnapshotTree(root uint64) *btree.Tree {
	return btree.NewTree(f.v, btree.NodeID(root), f.v.bs, snapshotViewCache)
}

func (f fsckView) DroppedNodes() []uint64 {
	var out []uint64
	for _, id := range f.v.tree.PendingFree() {
		out = append(out, uint64(id)) // freed at the next checkpoint
	}
	return append(out, f.v.ckptFreed...) // freed once the running checkpoint is durable
}

func (f fsckView) ReadBlock(vb uint64) error {
	_, err := f.v.readBlock(vb, nil)
	return err
}

func (f fsckView) Damage() string {
	if f.v.damage == nil {
		return ""
	}
	return f.v.damage.String()
}

// fsckTx is a repair's transaction.
type fsckTx struct{ t *tx }

func (f fsckTx) PutInode(ino Ino, r *inode.Record) error { return f.t.putInode(ino, r) }
func (f fsckTx) AddEntry(dir Ino, e inode.Dirent) error  { return f.t.addEntry(dir, e) }
func (f fsckTx) RemoveEntry(dir Ino, name string) error  { return f.t.removeEntry(dir, name) }
func (f fsckTx) Delete(k btree.Key) error                { return f.t.del(k) }
