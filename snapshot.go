package txfs

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/cow"
	"github.com/txfs/txfs/inode"
)

// Snapshots. A snapshot is a name, a time and a reference to a root of the
// metadata tree: the tree as it was when the snapshot was taken. Nodes and
// blocks are shared between the live tree and the snapshots and counted
// lazily (Rodeh 2008): taking a snapshot adds one reference, to the root;
// the live tree copies a node on its first change while something else
// still refers to it (btree.Sharing), and a file block whose block map
// item a snapshot shares gets a new block when it is written (tx.mustCopy).
// With no snapshot nothing is shared and nothing is ever copied.
//
// Create, restore and delete are each one checkpoint: the change is made
// while the checkpoint writes the tree (flushed, so the root is a virtual
// block that can take a reference), and no transaction begins until that
// checkpoint is durable. So each is atomic across a power cut, and nothing
// written after it can be replayed over a state that lacks it.

// snapNameMax is the longest snapshot name.
const snapNameMax = 16

// SnapshotInfo describes one snapshot.
type SnapshotInfo struct {
	Name    string
	Created time.Time
	// Exclusive is the stored bytes only this snapshot holds: what
	// deleting it frees.
	Exclusive int64
	// Shared is the stored bytes it holds that the live tree or another
	// snapshot holds too.
	Shared int64
}

// snapshot is an entry of the snapshot table.
type snapshot struct {
	name    string
	created int64  // Unix ns
	root    uint64 // the tree root it holds a reference to
	nextIno uint64 // the next inode number when it was taken
}

// CheckSnapshotName says why name cannot name a snapshot: 1 to 16
// characters of [A-Za-z0-9].
func CheckSnapshotName(name string) error {
	if len(name) == 0 || len(name) > snapNameMax {
		return fmt.Errorf("%w: a snapshot name has 1 to %d characters, %q has %d", ErrInvalid, snapNameMax, name, len(name))
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return fmt.Errorf("%w: a snapshot name has only the letters A-Z, a-z and digits 0-9, %q does not", ErrInvalid, name)
		}
	}
	return nil
}

func (v *Volume) findSnapshot(name string) int {
	return slices.IndexFunc(v.snaps, func(s snapshot) bool { return s.name == name })
}

// ErrSnapshotExists and ErrNoSnapshot are the errors of snapshot
// operations on a name that is taken, or not. They are ErrExist and
// ErrNotExist (errors.Is), in words about snapshots.
var (
	ErrSnapshotExists error = &namedErr{ErrExist, "txfs: a snapshot of that name exists"}
	ErrNoSnapshot     error = &namedErr{ErrNotExist, "txfs: no snapshot of that name"}
)

// namedErr is a sentinel said in other words.
type namedErr struct {
	sentinel error
	msg      string
}

func (e *namedErr) Error() string { return e.msg }
func (e *namedErr) Unwrap() error { return e.sentinel }

// CreateSnapshot records the current state of the whole filesystem under
// name. It fails, changing nothing, if name exists.
func (v *Volume) CreateSnapshot(name string) error {
	if err := CheckSnapshotName(name); err != nil {
		return err
	}
	return v.snapshotCheckpoint(func() error {
		if v.findSnapshot(name) >= 0 {
			return fmt.Errorf("%w: %q", ErrSnapshotExists, name)
		}
		root := uint64(v.tree.Root())
		if err := v.applyRef(root, 1); err != nil {
			return err
		}
		v.snaps = append(v.snaps, snapshot{name: name, created: time.Now().UnixNano(), root: root, nextIno: v.nextIno})
		return nil
	}, func() (int, error) { return 0, nil })
}

// DeleteSnapshot removes snapshot name and frees what only it held. The
// live tree does not change.
func (v *Volume) DeleteSnapshot(name string) error {
	err := v.withSnapshot(name, func(i int) error {
		root := v.snaps[i].root
		v.snaps = slices.Delete(v.snaps, i, i+1)
		v.dropView(name)
		return v.release(root)
	}, func(i int) (int, error) { return v.releaseLeaves(v.snaps[i].root) })
	if err == nil {
		v.snapshotChanged("delete", name)
	}
	return err
}

// OnSnapshotChange sets fn to be told, after it is done, of every
// snapshot deleted ("delete") or restored ("restore"), with no lock held:
// a mount drops what the kernel caches of it.
func (v *Volume) OnSnapshotChange(fn func(op, name string)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.onSnapshot = fn
}

func (v *Volume) snapshotChanged(op, name string) {
	v.mu.Lock()
	fn := v.onSnapshot
	v.mu.Unlock()
	if fn != nil {
		fn(op, name)
	}
}

// withSnapshot runs change on the snapshot named name (its index) in a
// snapshot operation's checkpoint, whose DAT it changes in leaves(i)
// leaves at most.
func (v *Volume) withSnapshot(name string, change func(i int) error, leaves func(i int) (int, error)) error {
	if err := CheckSnapshotName(name); err != nil {
		return err
	}
	return v.snapshotCheckpoint(func() error {
		i := v.findSnapshot(name)
		if i < 0 {
			return fmt.Errorf("%w: %q", ErrNoSnapshot, name)
		}
		return change(i)
	}, func() (int, error) {
		if i := v.findSnapshot(name); i >= 0 {
			return leaves(i)
		}
		return 0, nil // refused by change
	})
}

// RestoreSnapshot makes the live tree equal to snapshot name. Every
// snapshot stays as it is, the one restored too. Inode numbers are never
// given out twice: files made after the snapshot are gone, and their
// numbers stay unused.
func (v *Volume) RestoreSnapshot(name string) error {
	err := v.withSnapshot(name, func(i int) error {
		root := v.snaps[i].root
		old := uint64(v.tree.Root())
		if err := v.applyRef(root, 1); err != nil {
			return err
		}
		if err := v.tree.SetRoot(btree.NodeID(root)); err != nil {
			return v.fail(err)
		}
		// What waited for room belongs to the old tree.
		clear(v.deferred)
		return v.release(old)
	}, func(int) (int, error) {
		// The live tree is partly in memory until the checkpoint writes
		// it: count every DAT leaf.
		return v.dat.Leaves(), nil
	})
	if err != nil {
		return err
	}
	// The snapshot may hold files that were open and unlinked when it was
	// taken, and operations a crash would have finished: as Open does.
	v.mu.Lock()
	_, err = v.freeOrphans()
	v.mu.Unlock()
	v.snapshotChanged("restore", name)
	return err
}

// snapshotCheckpoint takes a checkpoint during which change, run under
// the lock once the tree is flushed, changes the snapshots; no
// transaction begins until it is durable. An error from change (a name
// that exists or not) leaves everything as it was.
func (v *Volume) snapshotCheckpoint(change func() error, leaves func() (int, error)) error {
	// Room for the checkpoint with the change: the counts it changes, in
	// DAT leaves (those of the trees it releases, of a new root, of the
	// table), and the table. It may free space: it may use all but what
	// the cleaner needs, as deletes do.
	fits := func() error {
		leaves, err := leaves()
		if err != nil {
			// A node it would free does not read back (damage): nothing
			// has changed yet, so the operation is refused and the volume
			// goes on.
			return fmt.Errorf("%w: %w", ErrIO, err)
		}
		tables := v.snapTableBlocks(len(v.snaps) + 1)
		if v.log.Room()-v.ckptCostWith(tables, leaves+2+tables) < v.reserveBytes(true) {
			return fmt.Errorf("%w: the checkpoint of a snapshot operation needs more room than is left", ErrNoSpace)
		}
		return nil
	}
	var refused error
	err := v.checkpointWith(func() error {
		if err := change(); err != nil {
			if v.err == nil {
				refused = err
				return nil
			}
			return err
		}
		v.snapDirty = true
		return nil
	}, fits)
	if err != nil {
		return err
	}
	return refused
}

// release drops one reference to the subtree of node id, freeing what
// nothing else refers to: a deleted snapshot, or the live tree a restore
// replaced. Lock held.
func (v *Volume) release(id uint64) error {
	e, err := v.dat.Live(id)
	if err != nil {
		return v.fail(err)
	}
	if e.Refs > 1 {
		return v.applyRef(id, -1)
	}
	b, err := v.readBlock(id, nil)
	if err != nil {
		return v.fail(err)
	}
	r, err := btree.DecodeRefs(btree.NodeID(id), b, v.bs)
	if err != nil {
		return v.fail(err)
	}
	for _, k := range r.Kids {
		if err := v.release(uint64(k)); err != nil {
			return err
		}
	}
	for i, k := range r.Keys {
		if vb := blockOfItem(k, r.Vals[i]); vb != 0 {
			if err := v.applyRef(vb, -1); err != nil {
				return err
			}
		}
	}
	v.tree.Forget(btree.NodeID(id))
	return v.applyRef(id, -1)
}

// blockOfItem is the virtual block a tree item refers to, 0 if none.
func blockOfItem(k btree.Key, val []byte) uint64 {
	if k.Type != inode.TypeBlock {
		return 0
	}
	return inode.DecodeBlockItem(val)
}

// liveSharing tells the live tree which of its nodes snapshots share:
// those with more than one reference (btree.Sharing).
type liveSharing struct{ v *Volume }

func (s liveSharing) Shared(id btree.NodeID) (bool, error) {
	if len(s.v.snaps) == 0 {
		return false, nil // nothing is shared without a snapshot
	}
	e, err := s.v.dat.Live(uint64(id))
	if err != nil {
		return false, err
	}
	return e.Refs > 1, nil
}

func (s liveSharing) Copied(old btree.NodeID, r btree.NodeRefs) error {
	v := s.v
	for _, k := range r.Kids {
		if err := v.blocks.Ref(uint64(k), 1); err != nil {
			return err
		}
	}
	for i, k := range r.Keys {
		if vb := blockOfItem(k, r.Vals[i]); vb != 0 {
			if err := v.blocks.Ref(vb, 1); err != nil {
				return err
			}
		}
	}
	return v.blocks.Ref(uint64(old), -1)
}

// Snapshots lists the snapshots, oldest first, with the space each holds.
func (v *Volume) Snapshots() ([]SnapshotInfo, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return nil, err
	}
	held := map[uint64]int64{} // stored bytes under each node, shared by every snapshot's sum
	out := make([]SnapshotInfo, 0, len(v.snaps))
	for _, s := range v.snaps {
		excl, err := v.exclusiveBytes(s.root)
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", s.name, err)
		}
		all, err := v.subtreeBytes(s.root, held)
		if err != nil {
			return nil, err
		}
		out = append(out, SnapshotInfo{Name: s.name, Created: time.Unix(0, s.created), Exclusive: excl, Shared: all - excl})
	}
	return out, nil
}

// nodeRefs reads tree node id and lists what it refers to.
func (v *Volume) nodeRefs(id uint64) (btree.NodeRefs, error) {
	b, err := v.readBlock(id, nil)
	if err != nil {
		return btree.NodeRefs{}, err
	}
	return btree.DecodeRefs(btree.NodeID(id), b, v.bs)
}

// exclusiveBytes is what deleting the snapshots of roots would free: the
// stored bytes of every node and block whose last reference they drop.
// Lock held.
func (v *Volume) exclusiveBytes(roots ...uint64) (int64, error) {
	var total int64
	err := v.walkRelease(roots, func(_ uint64, e cow.Entry, freed bool) {
		if freed {
			total += int64(e.Len)
		}
	})
	return total, err
}

// releaseLeaves is the number of DAT leaves that releasing roots changes:
// what it adds to the checkpoint that writes it. Lock held.
func (v *Volume) releaseLeaves(roots ...uint64) (int, error) {
	per := uint64(v.bs / cow.EntrySize)
	leaves := map[uint64]bool{}
	err := v.walkRelease(roots, func(vb uint64, _ cow.Entry, _ bool) { leaves[vb/per] = true })
	return len(leaves), err
}

// walkRelease tells fn of every node and block whose count releasing
// roots (release) drops, and whether it drops the last, without changing
// anything. Lock held.
func (v *Volume) walkRelease(roots []uint64, fn func(vb uint64, e cow.Entry, freed bool)) error {
	drops := map[uint64]uint32{} // references the release would drop
	drop := func(vb uint64) (bool, error) {
		e, err := v.dat.Live(vb)
		if err != nil {
			return false, err
		}
		drops[vb]++
		freed := drops[vb] == e.Refs
		fn(vb, e, freed)
		return freed, nil
	}
	var walk func(id uint64) error
	walk = func(id uint64) error {
		if freed, err := drop(id); err != nil || !freed {
			return err
		}
		r, err := v.nodeRefs(id)
		if err != nil {
			return err
		}
		for _, k := range r.Kids {
			if err := walk(uint64(k)); err != nil {
				return err
			}
		}
		for i, k := range r.Keys {
			if vb := blockOfItem(k, r.Vals[i]); vb != 0 {
				if _, err := drop(vb); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, root := range roots {
		if err := walk(root); err != nil {
			return err
		}
	}
	return nil
}

// subtreeBytes is the stored bytes of node id and of everything below
// it, remembered in memo (nodes a snapshot holds never change). Lock
// held.
func (v *Volume) subtreeBytes(id uint64, memo map[uint64]int64) (int64, error) {
	if n, ok := memo[id]; ok {
		return n, nil
	}
	e, err := v.dat.Live(id)
	if err != nil {
		return 0, err
	}
	total := int64(e.Len)
	r, err := v.nodeRefs(id)
	if err != nil {
		return 0, err
	}
	for _, k := range r.Kids {
		n, err := v.subtreeBytes(uint64(k), memo)
		if err != nil {
			return 0, err
		}
		total += n
	}
	for i, k := range r.Keys {
		if vb := blockOfItem(k, r.Vals[i]); vb != 0 {
			be, err := v.dat.Live(vb)
			if err != nil {
				return 0, err
			}
			total += int64(be.Len)
		}
	}
	memo[id] = total
	return total, nil
}

// The snapshot table is a chain of blocks, each a virtual block written
// by the checkpoint that changed it (summary kind SumNode, owner
// snapTableOwner), little-endian:
//
//	0  4 magic "TXSS"
//	4  4 entries n in this block
//	8  8 next block of the chain (virtual block, 0: the last)
//	16 48n entries:
//	   0 16 name, zero padded
//	  16  8 creation time (Unix ns)
//	  24  8 root node of the tree it holds (virtual block)
//	  32  8 next inode number when it was taken
//	  40  8 reserved (0)
//
// These constants are part of the on-disk format.
const (
	snapTableMagic = "TXSS"
	snapTableHdr   = 16
	snapEntrySize  = 48
	snapTableOwner = 1
)

// snapsPerBlock is how many entries a table block holds.
func (v *Volume) snapsPerBlock() int { return (v.bs - snapTableHdr) / snapEntrySize }

// snapTableBlocks is how many blocks the table of n snapshots takes.
func (v *Volume) snapTableBlocks(n int) int {
	return (n + v.snapsPerBlock() - 1) / v.snapsPerBlock()
}

// writeSnapTable writes the snapshot table as it is now, through put,
// which stores one block as a new virtual block and returns it. The
// blocks of the old table go to the checkpoint's dropped nodes.
func (v *Volume) writeSnapTable(put func(raw []byte) (uint64, error)) error {
	per := v.snapsPerBlock()
	next := uint64(0)
	var vbs []uint64
	// Last block first, so that each names the one after it.
	for start := (v.snapTableBlocks(len(v.snaps)) - 1) * per; start >= 0; start -= per {
		b := make([]byte, v.bs)
		le := binary.LittleEndian
		copy(b, snapTableMagic)
		end := min(start+per, len(v.snaps))
		le.PutUint32(b[4:], uint32(end-start))
		le.PutUint64(b[8:], next)
		for i, s := range v.snaps[start:end] {
			e := b[snapTableHdr+i*snapEntrySize:]
			copy(e[:snapNameMax], s.name)
			le.PutUint64(e[16:], uint64(s.created))
			le.PutUint64(e[24:], s.root)
			le.PutUint64(e[32:], s.nextIno)
		}
		vb, err := put(b)
		if err != nil {
			return err
		}
		vbs = append(vbs, vb)
		next = vb
	}
	v.ckptFreed = append(v.ckptFreed, v.snapTable...)
	slices.Reverse(vbs)
	v.snapTable = vbs
	return nil
}

// snapTableFirst is the first block of the snapshot table, 0 for none.
func (v *Volume) snapTableFirst() uint64 {
	if len(v.snapTable) == 0 {
		return 0
	}
	return v.snapTable[0]
}

// loadSnapTable reads the table of n snapshots that starts at first.
func (v *Volume) loadSnapTable(first uint64, n int) error {
	v.snaps, v.snapTable = nil, nil
	le := binary.LittleEndian
	for vb := first; vb != 0; {
		if len(v.snapTable) > v.snapTableBlocks(n) {
			return fmt.Errorf("%w: the snapshot table is longer than %d snapshots need", ErrIO, n)
		}
		b, err := v.readBlock(vb, nil)
		if err != nil {
			return fmt.Errorf("snapshot table block %d: %w", vb, err)
		}
		count := int(le.Uint32(b[4:]))
		if string(b[:4]) != snapTableMagic || count < 1 || count > v.snapsPerBlock() {
			return fmt.Errorf("%w: snapshot table block %d is damaged", ErrIO, vb)
		}
		v.snapTable = append(v.snapTable, vb)
		for i := range count {
			e := b[snapTableHdr+i*snapEntrySize:]
			name := string(e[:snapNameMax])
			if j := slices.Index(e[:snapNameMax], 0); j >= 0 {
				name = string(e[:j])
			}
			s := snapshot{name: name, created: int64(le.Uint64(e[16:])), root: le.Uint64(e[24:]), nextIno: le.Uint64(e[32:])}
			if CheckSnapshotName(name) != nil || v.findSnapshot(name) >= 0 || s.root == 0 || s.root >= 1<<63 {
				return fmt.Errorf("%w: snapshot table block %d: entry %d is damaged", ErrIO, vb, i)
			}
			v.snaps = append(v.snaps, s)
		}
		vb = le.Uint64(b[8:])
	}
	if len(v.snaps) != n {
		return fmt.Errorf("%w: the checkpoint counts %d snapshots, its table holds %d", ErrIO, n, len(v.snaps))
	}
	return nil
}

// snapshotRoots lists the tree roots the snapshots hold.
func (v *Volume) snapshotRoots() []uint64 {
	out := make([]uint64, len(v.snaps))
	for i, s := range v.snaps {
		out[i] = s.root
	}
	return out
}
