package txfs

import (
	"errors"
	"fmt"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/cow"
	"github.com/txfs/txfs/journal"
	"github.com/txfs/txfs/segment"
)

// recover loads the newest checkpoint and replays the log after it. It
// returns the number of units replayed.
func (v *Volume) recover() (int, error) {
	ref := v.sb.Checkpoint
	u, c, err := v.loadCheckpoint(ref)
	if err != nil {
		return 0, err
	}
	if err := v.freeCheckpointNodes(c.FreedNodes); err != nil {
		return 0, fmt.Errorf("%w: checkpoint %d: %v", ErrIO, c.Number, err)
	}
	// Roll forward along the chain: right after each unit, in the segment
	// it names as next once it reaches the end of its own.
	used := map[uint32]bool{}
	refSeg, _ := v.geo.SegmentOf(ref.Addr)
	used[refSeg] = true
	v.log.CurSeg, _ = v.geo.SegmentOf(u.Addr)
	v.log.NextSeg = journal.NoSeg
	ckpt := u
	pos, seq, prev := v.log.Follow(u, used)
	logSegs := map[uint32]bool{} // segments holding units of the log after the checkpoint
	replayed := 0
	var skippedNodes uint64
	for {
		u := v.log.NextUnit(pos, seq, prev)
		if u == nil {
			next := "no next segment"
			if v.log.NextSeg != journal.NoSeg {
				next = fmt.Sprintf("nor at the start of segment %d", v.log.NextSeg)
			}
			v.logf("the log ends before unit %d: nothing at byte %d, %s, continues the chain; %d operations units replayed", seq, pos, next, replayed)
			d := v.findDamage(pos, seq)
			if d == nil {
				break
			}
			v.logf("%s", d)
			if d.lostOnlyCopy(ref, ckpt, c) {
				v.warn("the copy of checkpoint %d, unit %d at byte %d, cannot be read; it holds nothing the checkpoint does not, and the log goes on after it",
					c.Number, d.Seq, d.Addr)
				v.accepted = true
				pos, seq, prev = v.resumeAfter(d)
				continue
			}
			if v.opts.LogDamage == SalvageDamage {
				// Go on from the first whole unit after the damage.
				say := fmt.Sprintf("salvaged units %d to %d after the damaged unit %d at byte %d (lost: %d units)",
					d.Resume, d.Last, d.Seq, d.Addr, d.Resume-d.Seq)
				v.logf("%s", say)
				v.opened = append(v.opened, say)
				v.accepted = true
				pos, seq, prev = v.resumeAfter(d)
				// The lost units may have allocated virtual blocks (at
				// most one per two bytes of each) that later units use.
				skippedNodes += (d.Resume - d.Seq) * v.log.UnitLimit() / 2
				continue
			}
			if v.opts.LogDamage == TruncateDamage {
				// The log goes on at the damage, with sequence numbers
				// past every unit left beyond it, so that none of them
				// can ever be taken for part of the log, or for proof.
				say := fmt.Sprintf("dropped the log from the damaged unit %d at byte %d on (units %d to %d lost: %s)",
					d.Seq, d.Addr, d.Seq, d.Last, d.Beyond)
				v.logf("%s", say)
				v.opened = append(v.opened, say)
				v.accepted = true
				next := v.cutSeq(d, ref.Seq)
				v.log.Seq, v.log.PrevSum = next, prev
				v.log.Written, v.log.Durable = next-1, next-1
				return v.finishRecovery(pos, used, logSegs, replayed)
			}
			v.damage = d
			break
		}
		for _, p := range u.Place.Pieces(u.Header.Length) {
			s, _ := v.geo.SegmentOf(p.Addr)
			logSegs[s] = true
		}
		v.logf("unit %d at byte %d (segment %d): %s", seq, u.Addr, v.log.CurSeg, unitKindName(u.Header.Kind))
		if err := v.replayUnit(u, &skippedNodes); err != nil {
			return 0, fmt.Errorf("%w: replay of unit %d at byte %d: %v", ErrIO, seq, u.Addr, err)
		}
		if u.Header.Kind == segment.UnitOps {
			replayed++
		}
		v.log.NoteSpan(u.Place, u.Header.Length, u.Summary)
		pos, seq, prev = v.log.Follow(u, used)
	}
	v.log.Seq, v.log.PrevSum = seq, prev
	v.log.Written, v.log.Durable = seq-1, seq-1
	v.changes = int64(replayed)
	return v.finishRecovery(pos, used, logSegs, replayed)
}

// finishRecovery makes the free list and the log head once the log is
// read to its end at pos.
func (v *Volume) finishRecovery(pos uint64, used, logSegs map[uint32]bool, replayed int) (int, error) {
	if v.log.NextSeg != journal.NoSeg {
		why, err := v.nextSegmentTaken(v.log.NextSeg, logSegs)
		if err != nil {
			return 0, fmt.Errorf("%w: usage table: %v", ErrIO, err)
		}
		if why != "" {
			// A free segment takes its place. Until a checkpoint names
			// the log head, recovery would look for the log in the
			// damaged one: counting this as a replayed unit makes Open
			// take that checkpoint before anything else is written.
			v.warnings = append(v.warnings, fmt.Sprintf("the log names segment %d, which %s, as the next: a free segment takes its place", v.log.NextSeg, why))
			v.logf("%s", v.warnings[len(v.warnings)-1])
			v.log.NextSeg = journal.NoSeg
			replayed++
			v.changes++
		}
	}
	free, err := v.emptySegments(used)
	if err != nil {
		return 0, fmt.Errorf("%w: usage table: %v", ErrIO, err)
	}
	v.log.Resume(pos, free)
	return replayed, nil
}

// warn records damage that recovery worked around, for the checker.
func (v *Volume) warn(format string, a ...any) {
	w := fmt.Sprintf(format, a...)
	v.warnings = append(v.warnings, w)
	v.logf("%s", w)
}

// readCheckpoint reads the checkpoint unit the superblock names, or its
// loadCheckpoint reads the checkpoint the superblock names (ref) and
// loads its tree, DAT and usage table, as they were when it was taken.
func (v *Volume) loadCheckpoint(ref segment.UnitRef) (*segment.Unit, *checkpointRec, error) {
	u, err := v.readCheckpoint(ref)
	if err != nil {
		return nil, nil, err
	}
	c, err := decodeCheckpoint(u.Records)
	if err != nil {
		return nil, nil, err
	}
	v.logf("superblock slot %d (generation %d) names checkpoint %d: unit %d at byte %d", v.sbSlot, v.sb.Generation, c.Number, ref.Seq, ref.Addr)
	v.ckptNo = c.Number
	v.nextIno = c.NextIno
	v.dat = cow.Open(c.DAT, v.bs, v.log.ReadRaw, v.mem.tables)
	if n := c.DAT.Count; n > 1 {
		// The checkpoint that counts entry n-1 wrote its leaf; a count past
		// the table would make every walk of the DAT endless.
		if ok, err := v.dat.Stored(n - 1); err != nil || !ok {
			return nil, nil, fmt.Errorf("%w: checkpoint %d counts %d DAT entries, its table does not hold them (%v)", ErrIO, c.Number, n, err)
		}
	}
	v.sut = segment.OpenUsage(v.geo.Segments, v.bs, c.SUTRoot, c.SUTDepth, v.log.ReadRaw)
	v.blocks = cow.NewBlocks(v.geo, v.dat, v.sut)
	v.tree = btree.NewTree(v, btree.NodeID(c.TreeRoot), v.bs, v.mem.tree)
	v.tree.SetSharing(liveSharing{v})
	if err := v.loadSnapTable(c.SnapTable, int(c.SnapCount)); err != nil {
		return nil, nil, fmt.Errorf("%w: checkpoint %d: %w", ErrIO, c.Number, err)
	}
	return u, c, nil
}

// copy (the unit right after it) when the checkpoint unit is damaged.
func (v *Volume) readCheckpoint(ref segment.UnitRef) (*segment.Unit, error) {
	u, err := v.log.ReadUnit(ref.Addr, ref.Len)
	if err == nil && (u.Header.Seq != ref.Seq || u.Header.Sum != ref.Sum || u.Header.Kind != segment.UnitCheckpoint) {
		err = fmt.Errorf("it is not the unit the superblock names (sequence %d, checksum %x)", ref.Seq, ref.Sum)
	}
	if err == nil {
		return u, nil
	}
	if ref.NextSeg == journal.NoSeg && v.sb.Version < 2 {
		return nil, fmt.Errorf("%w: checkpoint %d at byte %d: %v", ErrIO, ref.Seq, ref.Addr, err)
	}
	s, _ := v.geo.SegmentOf(ref.Addr)
	place := segment.UnitPlace{Addr: ref.Addr, Split: uint32(v.log.SegEnd(s) - ref.Addr)}
	if ref.NextSeg < v.geo.Segments {
		place.Next = uint64(v.geo.SegmentOffset(ref.NextSeg))
	}
	at := place.DevAddr(ref.Len)
	c, cerr := v.log.ReadUnit(at, 0)
	if cerr == nil && (c.Header.Seq != ref.Seq+1 || c.Header.Prev != ref.Sum || c.Header.Kind != segment.UnitCheckpoint ||
		c.Header.VolumeID != v.sb.VolumeID()) {
		cerr = errors.New("no copy of it follows")
	}
	if cerr != nil {
		return nil, fmt.Errorf("%w: checkpoint unit %d at byte %d is damaged (%v), and so is its copy at byte %d (%v)",
			ErrIO, ref.Seq, ref.Addr, err, at, cerr)
	}
	warn := fmt.Sprintf("checkpoint unit %d at byte %d is damaged (%v): its copy at byte %d was used", ref.Seq, ref.Addr, err, at)
	v.warnings = append(v.warnings, warn)
	v.logf("%s", warn)
	return c, nil
}

func unitKindName(k uint16) string {
	switch k {
	case segment.UnitOps:
		return "operations, replayed"
	case segment.UnitMeta:
		return "checkpoint blocks, skipped"
	}
	return "checkpoint record, skipped"
}

// replayUnit applies the records of an operations unit. Units a checkpoint
// wrote are skipped: the durable checkpoint already holds what they say,
// and a checkpoint that never became durable does not count. Such a
// checkpoint gave its nodes virtual blocks, possibly past the DAT's end,
// so operations after it allocate beyond the end by at most the nodes
// skipped so far (skippedNodes); a record that goes further is damage.
func (v *Volume) replayUnit(u *segment.Unit, skippedNodes *uint64) error {
	s, _ := v.geo.SegmentOf(u.Addr)
	if err := v.sut.Touch(s, u.Header.Seq); err != nil {
		return err
	}
	if u.Header.Kind != segment.UnitOps {
		for _, e := range u.Summary {
			if e.Kind == segment.SumNode {
				*skippedNodes++
			}
		}
		return nil
	}
	next := 0
	return journal.Decode(u.Records, func(r *journal.Record) error {
		for r.Type == journal.RecWrite && next < len(u.Summary) && u.Summary[next].Kind == segment.SumPad {
			next++
		}
		switch r.Type {
		case journal.RecPut:
			return v.applyPut(btree.DecodeKey(r.Key[:]), append([]byte(nil), r.Value...))
		case journal.RecDel:
			_, err := v.tree.Delete(btree.DecodeKey(r.Key[:]))
			return err
		case journal.RecAlloc:
			if end := v.dat.Count() + *skippedNodes; r.V > end {
				return fmt.Errorf("allocation of virtual block %d, past the %d the log can have made", r.V, end)
			}
			return v.blocks.AllocExact(r.V)
		case journal.RecWrite:
			if next >= len(u.Summary) {
				return fmt.Errorf("write record of block %d beyond the summary", r.V)
			}
			e := u.Summary[next]
			if e.ID != r.V {
				return fmt.Errorf("write record of block %d meets summary entry of block %d", r.V, e.ID)
			}
			addr := u.BlockAddr(next)
			next++
			return v.applyWrite(r.V, addr, e.Len, uint16(e.Flags), e.Sum)
		case journal.RecRef:
			return v.applyRef(r.V, r.Delta)
		}
		return nil
	})
}
