package txfs

import (
	"encoding/binary"
	"fmt"
	"maps"
	"time"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/cow"
	"github.com/txfs/txfs/segment"
)

// The checkpoint record is the record section of a UnitCheckpoint unit
// (160 bytes and a list, little-endian):
//
//	  0 4 magic "TXCK"
//	  4 4 format version
//	  8 8 checkpoint number
//	 16 8 root node of the metadata tree (virtual block, 0 = empty)
//	 24 8 next inode number
//	 32 8 DAT entry count
//	 40 8 DAT free list head
//	 48 8 DAT free count
//	 56 16 DAT root pointer      72 4 DAT depth
//	 76 4 usage table depth
//	 80 16 usage table root pointer
//	 96 8 creation time of the checkpoint (Unix ns)
//	104 4 number n of tree nodes this checkpoint dropped
//	108 4 reserved (0)
//	112 8 durable mark: every unit up to this sequence number was durable
//	      when the record was made (version 2; 0 in version 1)
//	120 8 first block of the snapshot table (virtual block, 0: no snapshot;
//	      snapshot.go); the superblock then sets IncompatSnapshots
//	128 4 number of snapshots
//	132 28 reserved (0)
//	160 8n the dropped nodes' virtual blocks: freed once this checkpoint is
//	       durable (and by recovery starting from it), not before, since
//	       the previous checkpoint still uses them
//
// These constants are part of the on-disk format.
const (
	checkpointMagic = "TXCK"
	checkpointSize  = 160
)

type checkpointRec struct {
	Version  uint32 // 0: FormatVersion
	Number   uint64
	TreeRoot uint64
	NextIno  uint64
	DAT      cow.State
	SUTRoot  segment.BlockPtr
	SUTDepth int
	Time     int64
	// FreedNodes are tree nodes the checkpoint's tree no longer uses.
	FreedNodes []uint64
	// Durable is the durable mark (journal.RecMark) of the record.
	Durable uint64
	// SnapTable is the first block of the snapshot table, SnapCount the
	// number of snapshots in it.
	SnapTable uint64
	SnapCount uint32
}

func (c *checkpointRec) encode() []byte {
	b := make([]byte, checkpointSize)
	le := binary.LittleEndian
	copy(b, checkpointMagic)
	version := c.Version
	if version == 0 {
		version = segment.FormatVersion
	}
	le.PutUint32(b[4:], version)
	le.PutUint64(b[8:], c.Number)
	le.PutUint64(b[16:], c.TreeRoot)
	le.PutUint64(b[24:], c.NextIno)
	le.PutUint64(b[32:], c.DAT.Count)
	le.PutUint64(b[40:], c.DAT.FreeHead)
	le.PutUint64(b[48:], c.DAT.FreeCount)
	segment.PutBlockPtr(b[56:], c.DAT.Root)
	le.PutUint32(b[72:], uint32(c.DAT.Depth))
	le.PutUint32(b[76:], uint32(c.SUTDepth))
	segment.PutBlockPtr(b[80:], c.SUTRoot)
	le.PutUint64(b[96:], uint64(c.Time))
	le.PutUint32(b[104:], uint32(len(c.FreedNodes)))
	le.PutUint64(b[112:], c.Durable)
	le.PutUint64(b[120:], c.SnapTable)
	le.PutUint32(b[128:], c.SnapCount)
	for _, id := range c.FreedNodes {
		b = le.AppendUint64(b, id)
	}
	return b
}

func decodeCheckpoint(b []byte) (*checkpointRec, error) {
	le := binary.LittleEndian
	if len(b) < checkpointSize || string(b[:4]) != checkpointMagic ||
		uint64(len(b)) != checkpointSize+8*uint64(le.Uint32(b[104:])) {
		return nil, fmt.Errorf("%w: checkpoint record damaged", ErrIO)
	}
	if v := le.Uint32(b[4:]); v < segment.MinFormatVersion || v > segment.FormatVersion {
		return nil, fmt.Errorf("%w: checkpoint version %d", ErrIO, v)
	}
	c := &checkpointRec{
		Version: le.Uint32(b[4:]), Number: le.Uint64(b[8:]), TreeRoot: le.Uint64(b[16:]), NextIno: le.Uint64(b[24:]),
		DAT: cow.State{Count: le.Uint64(b[32:]), FreeHead: le.Uint64(b[40:]), FreeCount: le.Uint64(b[48:]),
			Root: segment.GetBlockPtr(b[56:]), Depth: int(le.Uint32(b[72:]))},
		SUTDepth: int(le.Uint32(b[76:])), SUTRoot: segment.GetBlockPtr(b[80:]), Time: int64(le.Uint64(b[96:])),
		Durable: le.Uint64(b[112:]), SnapTable: le.Uint64(b[120:]), SnapCount: le.Uint32(b[128:]),
	}
	for o := checkpointSize; o < len(b); o += 8 {
		c.FreedNodes = append(c.FreedNodes, le.Uint64(b[o:]))
	}
	if c.DAT.Depth > 8 || c.SUTDepth > 8 || c.TreeRoot >= 1<<63 || c.DAT.FreeCount >= c.DAT.Count && c.DAT.Count > 0 ||
		c.SnapTable >= c.DAT.Count && c.SnapTable != 0 || (c.SnapTable == 0) != (c.SnapCount == 0) {
		return nil, fmt.Errorf("%w: checkpoint %d has impossible values", ErrIO, c.Number)
	}
	return c, nil
}

// checkpoint writes every metadata block dirtied since the last checkpoint,
// then the checkpoint record and a copy of it, waits until all of it is
// durable, and points the other superblock slot at it. Operations go on
// meanwhile except while the dirty blocks are being encoded.
func (v *Volume) checkpoint() error { return v.checkpointWith(nil, nil) }

// checkpointWith takes a checkpoint during which change, if not nil,
// changes the snapshots (snapshotCheckpoint): it runs under the lock once
// the tree is flushed, and no transaction begins until the checkpoint is
// durable and named by the superblock. fits, if not nil, says first,
// with no transaction running, whether the log has room for it.
func (v *Volume) checkpointWith(change, fits func() error) error {
	v.ckptMu.Lock()
	defer v.ckptMu.Unlock()
	start := time.Now()
	v.mu.Lock()
	if err := v.writable(); err != nil {
		v.mu.Unlock()
		return err
	}
	if change != nil {
		v.frozen = true
		defer func() {
			v.mu.Lock()
			v.frozen = false
			v.changed.Broadcast()
			v.mu.Unlock()
		}()
	}
	if fits != nil {
		if err := fits(); err != nil {
			v.mu.Unlock()
			return err
		}
	}
	if change == nil && v.changes == 0 && !v.checkpointHelps() {
		// Nothing to write and nothing to free: a checkpoint would only
		// spend room. Close still marks the volume clean.
		var err error
		if v.stopping && !v.sb.Clean {
			err = v.writeSuperblock(v.sb.Checkpoint, true)
		}
		v.mu.Unlock()
		return err
	}
	if err := v.moveStrandedTables(); err != nil {
		v.logf("checkpoint: table blocks stay where they are: %v", err)
	}
	// It writes the table blocks the cleaner left in its victims
	// elsewhere: they are empty after it.
	clear(v.clean.emptied)
	v.dropEmptyCold()
	// What recovery would write again if the power failed before this
	// checkpoint is durable: operations must leave room for it meanwhile.
	v.ckptInflight = v.ckptCost()
	v.log.Checkpointing = true
	v.log.UsedSince = v.log.UsedSince[:0]
	v.ckptFreed = v.ckptFreed[:0]
	clean := v.stopping
	ref, last, candidates, err := v.writeCheckpointLocked(change)
	written := v.log.SealedBytes // the checkpoint's units (reset when it began)
	snapshotStage(change, "queued")
	if err == nil {
		err = v.waitDurable(last)
	}
	snapshotStage(change, "durable")
	v.mu.Unlock()
	if err != nil {
		v.mu.Lock()
		v.log.Checkpointing = false
		v.mu.Unlock()
		return err
	}
	// Only checkpoints write superblocks after Open (ckptMu is held), so
	// v.sb stays as it is while the lock is released.
	sb, slot := v.nextSuperblock(ref, clean)
	err = v.putSuperblock(sb, slot)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.log.Checkpointing = false
	if err != nil {
		return v.fail(err)
	}
	v.sb, v.sbSlot = sb, slot
	snapshotStage(change, "named")
	if err := v.freeCheckpointNodes(v.ckptFreed); err != nil {
		return err
	}
	v.ckptFreed = v.ckptFreed[:0]
	// Segments empty in the checkpoint are free now that it is durable.
	v.log.GiveBack(candidates)
	v.lastCkpt = time.Now()
	v.metrics.checkpointed(start, written)
	v.changed.Broadcast()
	v.logChanged()
	return nil
}

// testHookSnapshot, when set by a test, runs at each stage of the
// checkpoint of a snapshot operation.
var testHookSnapshot func(stage string)

func snapshotStage(change func() error, stage string) {
	if change != nil && testHookSnapshot != nil {
		testHookSnapshot(stage)
	}
}

// nextSuperblock is the superblock that names checkpoint ref with the
// clean flag as given, and the slot it goes to: the other one.
func (v *Volume) nextSuperblock(ref segment.UnitRef, clean bool) (*segment.Superblock, int) {
	sb := *v.sb
	sb.Version = segment.FormatVersion
	sb.Generation++
	sb.Checkpoint = ref
	sb.Clean = clean
	// Only a checkpoint with snapshots needs a txfs that knows them.
	sb.Incompat &^= segment.IncompatSnapshots
	if len(v.snaps) > 0 {
		sb.Incompat |= segment.IncompatSnapshots
	}
	return &sb, 1 - v.sbSlot
}

// putSuperblock writes sb into slot and makes it durable. The device must
// hold everything its checkpoint needs already.
func (v *Volume) putSuperblock(sb *segment.Superblock, slot int) error {
	if err := segment.WriteSuperblock(v.dev, sb, slot); err != nil {
		return err
	}
	return v.dev.Sync()
}

// writeSuperblock points the other superblock slot at checkpoint ref, with
// the clean flag as given. Lock held.
func (v *Volume) writeSuperblock(ref segment.UnitRef, clean bool) error {
	sb, slot := v.nextSuperblock(ref, clean)
	if err := v.putSuperblock(sb, slot); err != nil {
		return v.fail(err)
	}
	v.sb, v.sbSlot = sb, slot
	return nil
}

// markInUse points the other superblock slot at the current checkpoint
// with the clean flag cleared, before a volume opened read-write writes
// anything: recovery after a crash must then look for damage past the end
// of the log. A version 1 volume becomes version 2 here, before the first
// unit that only version 2 can read.
func (v *Volume) markInUse() error {
	if !v.sb.Clean && v.sb.Version == segment.FormatVersion {
		return nil
	}
	sb, slot := v.nextSuperblock(v.sb.Checkpoint, false)
	if err := v.putSuperblock(sb, slot); err != nil {
		return err
	}
	v.sb, v.sbSlot = sb, slot
	return nil
}

// writeCheckpointLocked queues the checkpoint's blocks, its record and the
// copy of the record, and returns the record's unit, the sequence number of
// the copy (the last unit), and the segments that are empty in it.
func (v *Volume) writeCheckpointLocked(change func() error) (segment.UnitRef, uint64, []uint32, error) {
	var ref segment.UnitRef
	if err := v.log.Seal(); err != nil {
		return ref, 0, nil, err
	}
	v.log.SealedBytes = 0
	v.blocks.ResetDeadBytes()
	v.changes = 0
	// Tree nodes are DAT-mapped blocks like file data.
	err := v.tree.Flush(
		func() (btree.NodeID, error) {
			vb, err := v.blocks.Alloc()
			return btree.NodeID(vb), err
		},
		func(id btree.NodeID, enc []byte) error { return v.writeMetaBlock(uint64(id), enc, 0) },
		// A node the new tree dropped is still part of the checkpoint
		// before it, which stays the one recovery starts from until this
		// one is durable: its virtual block must not be reused before.
		// The checkpoint record lists these; they are freed once it is
		// durable (or when recovery starts from it).
		func(id btree.NodeID) error { v.ckptFreed = append(v.ckptFreed, uint64(id)); return nil })
	if err != nil {
		return ref, 0, nil, v.fail(err)
	}
	if change != nil {
		if err := change(); err != nil {
			return ref, 0, nil, v.fail(err)
		}
	}
	if v.snapDirty {
		err := v.writeSnapTable(func(raw []byte) (uint64, error) {
			vb, err := v.blocks.Alloc()
			if err == nil {
				err = v.writeMetaBlock(vb, raw, snapTableOwner)
			}
			return vb, err
		})
		if err != nil {
			return ref, 0, nil, v.fail(err)
		}
		v.snapDirty = false
	}
	// Blocks counts the DAT blocks in the usage table.
	putTable := func(table uint64) segment.TablePut {
		return func(level int, index uint64, old segment.BlockPtr, raw []byte) (segment.BlockPtr, error) {
			if err := v.log.Ensure(segment.UnitMeta, len(raw), 1, 0); err != nil {
				return old, err
			}
			sum := segment.Checksum(raw)
			e := segment.SummaryEntry{Kind: segment.SumTable, ID: index, Owner: table, Offset: uint64(level), Sum: sum}
			_, addr := v.log.Cur.AddBlock(e, raw)
			return segment.BlockPtr{Addr: addr, Sum: sum}, nil
		}
	}
	if err := v.blocks.Flush(putTable(segment.TableDAT), putTable(segment.TableSUT)); err != nil {
		return ref, 0, nil, v.fail(err)
	}
	v.ckptNo++
	sutRoot, sutDepth := v.sut.Root()
	rec := checkpointRec{Number: v.ckptNo, TreeRoot: uint64(v.tree.Root()), NextIno: v.nextIno,
		DAT: v.dat.State(), SUTRoot: sutRoot, SUTDepth: sutDepth, Time: time.Now().UnixNano(),
		FreedNodes: v.ckptFreed, Durable: v.log.Durable, SnapTable: v.snapTableFirst(), SnapCount: uint32(len(v.snaps))}
	enc := rec.encode()
	// The record, then a copy of it as the next unit: if one flipped bit
	// spoils the record, recovery reads the copy (the superblock says
	// where the record ends and what checksum it had, so the chain after
	// it stays whole).
	holders := map[uint32]bool{}
	for i := 0; i < 2; i++ {
		if err := v.log.Ensure(segment.UnitCheckpoint, 0, 0, len(enc)); err != nil {
			return ref, 0, nil, err
		}
		if i == 0 {
			ref.Addr, ref.Seq, ref.NextSeg = v.log.Cur.Addr, v.log.Seq, v.log.NextSeg
		}
		holders[v.log.CurSeg], holders[v.log.NextSeg] = true, true
		v.log.Cur.AppendRecords(enc)
		if err := v.log.Seal(); err != nil {
			return ref, 0, nil, err
		}
		if i == 0 {
			last := v.log.Queue[len(v.log.Queue)-1]
			ref.Len, ref.Sum = uint32(len(last.Buf)), v.log.PrevSum
		}
	}
	v.log.Cur.Kind = segment.UnitOps
	holders[v.log.CurSeg], holders[v.log.NextSeg] = true, true
	candidates, err := v.emptySegments(holders)
	if err != nil {
		return ref, 0, nil, v.fail(err)
	}
	return ref, v.log.Seq - 1, candidates, nil
}

// writeMetaBlock stores raw, a tree node or a block of the snapshot
// table (owner snapTableOwner), as the content of virtual block vb in the
// checkpoint being written.
func (v *Volume) writeMetaBlock(vb uint64, raw []byte, owner uint64) error {
	stored, flags := v.encodeBlock(raw, v.compress)
	if err := v.log.Ensure(segment.UnitMeta, len(stored), 1, 0); err != nil {
		return err
	}
	e := segment.SummaryEntry{Kind: segment.SumNode, Flags: flags, ID: vb, Owner: owner, Sum: segment.Checksum(stored)}
	_, addr := v.log.Cur.AddBlock(e, stored)
	return v.applyWrite(vb, addr, uint32(len(stored)), uint16(flags), e.Sum)
}

// freeCheckpointNodes frees the nodes a now durable checkpoint dropped.
func (v *Volume) freeCheckpointNodes(ids []uint64) error {
	for _, id := range ids {
		if err := v.applyRef(id, -1); err != nil {
			return err
		}
	}
	return nil
}

// emptySegments lists the segments that hold nothing the current state
// needs: no live block, no table block, none of holders (the checkpoint's
// segments and the log head's).
func (v *Volume) emptySegments(holders map[uint32]bool) ([]uint32, error) {
	holders = maps.Clone(holders)
	holders[v.log.ColdSeg] = true // the cleaner's, whatever it holds
	err := v.sut.Walk(func(level int, index uint64, p segment.BlockPtr) error {
		s, _ := v.geo.SegmentOf(p.Addr)
		holders[s] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []uint32
	for s := v.geo.Segments; s > 0; s-- {
		seg := s - 1
		if holders[seg] {
			continue
		}
		e, err := v.sut.Get(seg)
		if err != nil {
			return nil, err
		}
		if e.Live == 0 && e.Tables == 0 {
			out = append(out, seg)
		}
	}
	return out, nil
}
