package txfs

import (
	"errors"
	"fmt"
	"time"

	"github.com/txfs/txfs/cow"
	"github.com/txfs/txfs/inode"
	"github.com/txfs/txfs/journal"
	"github.com/txfs/txfs/segment"
)

// checkpoint writes every metadata block dirtied since the last checkpoint,
// then the checkpoint record, waits until all of it is durable, and points
// the other superblock slot at it. Operations go on meanwhile except while
// the dirty blocks are being encoded.
func (v *Volume) checkpoint() error {
	v.ckptMu.Lock()
	defer v.ckptMu.Unlock()
	v.mu.Lock()
	if err := v.checkAbandoned(); err != nil {
		v.mu.Unlock()
		return err
	}
	if err := v.writable(); err != nil {
		v.mu.Unlock()
		return err
	}
	v.ckptRunning = true
	v.usedSince = v.usedSince[:0]
	v.ckptFreed = v.ckptFreed[:0]
	ref, candidates, err := v.writeCheckpointLocked()
	if err == nil {
		err = v.waitDurable(ref.Seq)
	}
	v.mu.Unlock()
	if err != nil {
		v.mu.Lock()
		v.ckptRunning = false
		v.mu.Unlock()
		return err
	}
	sb := *v.sb
	sb.Generation++
	sb.Checkpoint = ref
	slot := 1 - v.sbSlot
	err = segment.WriteSuperblock(v.dev, &sb, slot)
	if err == nil {
		err = v.dev.Sync()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ckptRunning = false
	if err != nil {
		return v.fail(err)
	}
	v.sb, v.sbSlot = &sb, slot
	if err := v.freeCheckpointNodes(v.ckptFreed); err != nil {
		return err
	}
	v.ckptFreed = v.ckptFreed[:0]
	// Segments empty in the checkpoint are free now that it is durable,
	// except those the log took while it was written.
	taken := map[uint32]bool{v.curSeg: true, v.nextSeg: true}
	for _, s := range v.usedSince {
		taken[s] = true
	}
	free := v.free[:0:0]
	for _, s := range candidates {
		if !taken[s] {
			free = append(free, s)
		}
	}
	v.free = free
	v.lastCkpt = time.Now()
	v.changed.Broadcast()
	return nil
}

// writeCheckpointLocked queues the checkpoint's blocks and record and
// returns the record's unit and the segments that are empty in it.
func (v *Volume) writeCheckpointLocked() (segment.UnitRef, []uint32, error) {
	var ref segment.UnitRef
	if err := v.sealLocked(); err != nil {
		return ref, nil, err
	}
	v.logBytes, v.deadBytes = 0, 0
	// Tree nodes are DAT-mapped blocks like file data.
	err := v.tree.Flush(
		func() (inode.NodeID, error) {
			vb, err := v.dat.Alloc()
			return inode.NodeID(vb), err
		},
		func(id inode.NodeID, enc []byte) error {
			stored, flags := segment.EncodeBlock(enc, nil, true)
			if err := v.ensure(segment.UnitMeta, len(stored), 1, 0); err != nil {
				return err
			}
			e := segment.SummaryEntry{Kind: segment.SumNode, Flags: flags, ID: uint64(id), Sum: segment.Checksum(stored)}
			_, addr := v.cur.AddBlock(e, stored)
			return v.applyWrite(uint64(id), addr, uint32(len(stored)), uint16(flags), e.Sum)
		},
		// A node the new tree dropped is still part of the checkpoint
		// before it, which stays the one recovery starts from until this
		// one is durable: its virtual block must not be reused before.
		// The checkpoint record lists these; they are freed once it is
		// durable (or when recovery starts from it).
		func(id inode.NodeID) error { v.ckptFreed = append(v.ckptFreed, uint64(id)); return nil })
	if err != nil {
		return ref, nil, v.fail(err)
	}
	// DAT blocks are counted in the usage table; usage blocks are not.
	putTable := func(table uint64, count bool) segment.TablePut {
		return func(level int, index uint64, old segment.BlockPtr, raw []byte) (segment.BlockPtr, error) {
			if err := v.ensure(segment.UnitMeta, len(raw), 1, 0); err != nil {
				return old, err
			}
			sum := segment.Checksum(raw)
			e := segment.SummaryEntry{Kind: segment.SumTable, ID: index, Owner: table, Offset: uint64(level), Sum: sum}
			_, addr := v.cur.AddBlock(e, raw)
			if count {
				if old.Addr != 0 {
					s, _ := v.geo.SegmentOf(old.Addr)
					if err := v.sut.Add(s, 0, -1); err != nil {
						return old, err
					}
				}
				s, _ := v.geo.SegmentOf(addr)
				if err := v.sut.Add(s, 0, 1); err != nil {
					return old, err
				}
			}
			return segment.BlockPtr{Addr: addr, Sum: sum}, nil
		}
	}
	if err := v.dat.Flush(putTable(segment.TableDAT, true)); err != nil {
		return ref, nil, v.fail(err)
	}
	if err := v.sut.Flush(putTable(segment.TableSUT, false)); err != nil {
		return ref, nil, v.fail(err)
	}
	v.ckptNo++
	sutRoot, sutDepth := v.sut.Root()
	rec := checkpointRec{Number: v.ckptNo, TreeRoot: uint64(v.tree.Root()), NextIno: v.nextIno,
		DAT: v.dat.State(), SUTRoot: sutRoot, SUTDepth: sutDepth, Time: time.Now().UnixNano(),
		FreedNodes: v.ckptFreed}
	if err := v.ensure(segment.UnitCheckpoint, 0, 0, checkpointSize+8*len(v.ckptFreed)); err != nil {
		return ref, nil, err
	}
	v.cur.AppendRecords(rec.encode())
	ref.Addr, ref.Seq = v.cur.Addr, v.seq
	ckptSeg := v.curSeg
	if err := v.sealLocked(); err != nil {
		return ref, nil, err
	}
	last := v.queue[len(v.queue)-1]
	ref.Len, ref.Sum = uint32(len(last.buf)), v.prevSum
	v.cur.Kind = segment.UnitOps
	candidates, err := v.emptySegments(ckptSeg)
	if err != nil {
		return ref, nil, v.fail(err)
	}
	return ref, candidates, nil
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
// needs: no live block, no table block, not the checkpoint's segment nor
// the log head's.
func (v *Volume) emptySegments(ckptSeg uint32) ([]uint32, error) {
	holders := map[uint32]bool{ckptSeg: true, v.curSeg: true, v.nextSeg: true}
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

// checkpointer takes checkpoints when enough log was written or enough time
// passed, and ticks the writer so small units do not wait long.
func (v *Volume) checkpointer() {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	n := 0
	for range tick.C {
		v.mu.Lock()
		if v.closed || v.err != nil {
			v.mu.Unlock()
			return
		}
		if !v.cur.Empty() {
			v.wake.Signal()
		}
		n++
		// Checkpoint when the log since the last one is long (recovery
		// time), when dirty metadata grows (cache, and it must fit in the
		// reserve), or after a while.
		due := v.logBytes >= v.opts.CheckpointBytes || v.tree.DirtyBytes() >= v.opts.CacheBytes/2 ||
			v.dirtyMetaBytes() >= int64(v.reserve)*int64(v.geo.SegmentSize)/4 ||
			(n%500 == 0 && v.logBytes > 0 && time.Since(v.lastCkpt) >= v.opts.CheckpointInterval)
		v.mu.Unlock()
		if due {
			if err := v.checkpoint(); err != nil && !errors.Is(err, ErrClosed) {
				return
			}
		}
	}
}

// recover loads the newest checkpoint and replays the log after it. It
// returns the number of units replayed.
func (v *Volume) recover() (int, error) {
	ref := v.sb.Checkpoint
	u, err := v.readUnit(ref.Addr, ref.Len)
	if err != nil {
		return 0, fmt.Errorf("%w: checkpoint %d at byte %d: %v", ErrIO, ref.Seq, ref.Addr, err)
	}
	if u.Header.Seq != ref.Seq || u.Header.Sum != ref.Sum || u.Header.Kind != segment.UnitCheckpoint {
		return 0, fmt.Errorf("%w: checkpoint at byte %d is not the unit the superblock names", ErrIO, ref.Addr)
	}
	c, err := decodeCheckpoint(u.Records)
	if err != nil {
		return 0, err
	}
	v.logf("superblock slot %d (generation %d) names checkpoint %d: unit %d at byte %d", v.sbSlot, v.sb.Generation, c.Number, ref.Seq, ref.Addr)
	v.ckptNo = c.Number
	v.nextIno = c.NextIno
	v.dat = cow.Open(c.DAT, v.bs, v.readRaw, 4096)
	if n := c.DAT.Count; n > 1 {
		// The checkpoint that counts entry n-1 wrote its leaf; a count past
		// the table would make every walk of the DAT endless.
		if ok, err := v.dat.Stored(n - 1); err != nil || !ok {
			return 0, fmt.Errorf("%w: checkpoint %d counts %d DAT entries, its table does not hold them (%v)", ErrIO, c.Number, n, err)
		}
	}
	v.sut = segment.OpenUsage(v.geo.Segments, v.bs, c.SUTRoot, c.SUTDepth, v.readRaw)
	v.tree = inode.NewTree(v, inode.NodeID(c.TreeRoot), v.bs, v.opts.CacheBytes)
	if err := v.freeCheckpointNodes(c.FreedNodes); err != nil {
		return 0, fmt.Errorf("%w: checkpoint %d: %v", ErrIO, c.Number, err)
	}
	ckptSeg, _ := v.geo.SegmentOf(ref.Addr)
	v.curSeg, v.nextSeg = ckptSeg, u.Header.NextSeg
	free, err := v.emptySegments(ckptSeg)
	if err != nil {
		return 0, fmt.Errorf("%w: usage table: %v", ErrIO, err)
	}
	// Roll forward along the chain: same segment first, then the one the
	// segment names as next.
	used := map[uint32]bool{ckptSeg: true, v.nextSeg: true}
	logSegs := map[uint32]bool{ckptSeg: true} // segments holding the checkpoint and the log after it
	pos, seq, prev := ref.Addr+uint64(ref.Len), ref.Seq+1, ref.Sum
	replayed := 0
	var skippedNodes uint64
	for {
		u, at := v.nextUnit(pos, seq, prev)
		if u == nil {
			break
		}
		if s, _ := v.geo.SegmentOf(at); s != v.curSeg {
			v.curSeg, v.nextSeg = s, u.Header.NextSeg
			used[s], used[v.nextSeg] = true, true
			logSegs[s] = true
		}
		v.logf("unit %d at byte %d (segment %d): %s", seq, at, v.curSeg, unitKindName(u.Header.Kind))
		if err := v.replayUnit(u, &skippedNodes); err != nil {
			return 0, fmt.Errorf("%w: replay of unit %d at byte %d: %v", ErrIO, seq, at, err)
		}
		replayed++
		pos, seq, prev = at+uint64(u.Header.Length), seq+1, u.Header.Sum
	}
	v.seq, v.prevSum = seq, prev
	v.written, v.durable = seq-1, seq-1
	v.logf("the log ends before unit %d: nothing at byte %d or at the start of segment %d continues the chain; %d units replayed", seq, pos, v.nextSeg, replayed)
	why, err := v.nextSegmentTaken(v.nextSeg, logSegs)
	if err != nil {
		return 0, fmt.Errorf("%w: usage table: %v", ErrIO, err)
	}
	if why != "" {
		// Another free segment takes its place. Until a checkpoint names
		// it, recovery would still look for the log in the damaged one:
		// counting this as a replayed unit makes Open take that
		// checkpoint before anything is written.
		s, ok := lastUnused(free, used)
		if !ok {
			return 0, fmt.Errorf("%w: no free segment to continue the log", ErrNoSpace)
		}
		v.warnings = append(v.warnings, fmt.Sprintf("the log names segment %d, which %s, as the next: segment %d takes its place", v.nextSeg, why, s))
		v.logf("%s", v.warnings[len(v.warnings)-1])
		v.nextSeg, used[s] = s, true
		replayed++
	}
	segEnd := uint64(v.geo.SegmentOffset(v.curSeg)) + uint64(v.geo.SegmentSize)
	if pos+uint64(4*v.bs) > segEnd {
		// The segment is full: the log goes on at its next segment.
		v.curSeg = v.nextSeg
		pos = uint64(v.geo.SegmentOffset(v.curSeg))
		s, ok := lastUnused(free, used)
		if !ok {
			return 0, fmt.Errorf("%w: no free segment to continue the log", ErrNoSpace)
		}
		v.nextSeg, used[s] = s, true
	}
	for _, s := range free {
		if !used[s] {
			v.free = append(v.free, s)
		}
	}
	v.cur = v.newUnit(segment.UnitOps, pos)
	return replayed, nil
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

// readUnit reads and verifies the unit at addr; n is its length if known.
func (v *Volume) readUnit(addr uint64, n uint32) (*segment.Unit, error) {
	s, ok := v.geo.SegmentOf(addr)
	if !ok {
		return nil, fmt.Errorf("address %d outside the segments", addr)
	}
	segEnd := uint64(v.geo.SegmentOffset(s)) + uint64(v.geo.SegmentSize)
	if n == 0 {
		hdr := make([]byte, segment.UnitHeaderSize)
		if _, err := v.dev.ReadAt(hdr, int64(addr)); err != nil {
			return nil, err
		}
		h, err := segment.ParseUnitHeader(hdr, uint32(segEnd-addr))
		if err != nil {
			return nil, err
		}
		n = h.Length
	}
	if uint64(n) > segEnd-addr {
		return nil, fmt.Errorf("%w: unit at %d runs past its segment", segment.ErrCorrupt, addr)
	}
	buf := make([]byte, n)
	if _, err := v.dev.ReadAt(buf, int64(addr)); err != nil {
		return nil, err
	}
	return segment.DecodeUnit(buf, addr, uint32(segEnd-addr))
}

// nextUnit finds the unit that continues the chain: at pos, or else at the
// start of the next segment. Anything else ends the log.
func (v *Volume) nextUnit(pos, seq, prev uint64) (*segment.Unit, uint64) {
	try := func(at uint64) *segment.Unit {
		if _, ok := v.geo.SegmentOf(at); !ok {
			return nil
		}
		u, err := v.readUnit(at, 0)
		if err != nil || u.Header.VolumeID != v.sb.VolumeID() || u.Header.Seq != seq || u.Header.Prev != prev {
			return nil
		}
		return u
	}
	segEnd := uint64(v.geo.SegmentOffset(v.curSeg)) + uint64(v.geo.SegmentSize)
	if pos+segment.UnitHeaderSize <= segEnd {
		if u := try(pos); u != nil {
			return u, pos
		}
	}
	at := uint64(v.geo.SegmentOffset(v.nextSeg))
	if u := try(at); u != nil {
		return u, at
	}
	return nil, 0
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
		switch r.Type {
		case journal.RecPut:
			return v.applyPut(inode.DecodeKey(r.Key[:]), append([]byte(nil), r.Value...))
		case journal.RecDel:
			_, err := v.tree.Delete(inode.DecodeKey(r.Key[:]))
			return err
		case journal.RecAlloc:
			if end := v.dat.Count() + *skippedNodes; r.V > end {
				return fmt.Errorf("allocation of virtual block %d, past the %d the log can have made", r.V, end)
			}
			return v.dat.AllocExact(r.V)
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
