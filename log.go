package txfs

import (
	"fmt"
	"runtime"
	"time"

	"github.com/txfs/txfs/journal"
	"github.com/txfs/txfs/segment"
)

// The log head: where the next unit goes, and the writer goroutine that
// puts sealed units on the device.
//
// The head is a position in the current segment; the next segment is
// chosen from the free list when the log enters a segment, and every unit
// names it. A unit longer than what is left of its segment continues at
// the start of the next one, so no segment's end is left unused. When no
// segment is free, there is no next segment (noSeg) until a checkpoint
// frees one: the units meanwhile never fill their segment, so the unit
// after them always has a place.

// noSeg stands for "no next segment chosen".
const noSeg = ^uint32(0)

type sealedUnit struct {
	seq   uint64
	place segment.UnitPlace
	buf   []byte
	mem   int64 // the capacity of buf, which the queue counts
}

// end is the device address right after the unit.
func (u *sealedUnit) end() uint64 { return u.place.DevAddr(uint32(len(u.buf))) }

// segEnd is the device address right after segment s.
func (v *Volume) segEnd(s uint32) uint64 {
	return uint64(v.geo.SegmentOffset(s)) + uint64(v.geo.SegmentSize)
}

// unitLimit is the longest unit: it spans at most two segments.
func (v *Volume) unitLimit() uint64 { return min(maxUnitBytes, uint64(v.geo.SegmentSize)) }

// newUnit starts a unit at addr in the current segment.
func (v *Volume) newUnit(kind uint16, addr uint64) *segment.UnitBuilder {
	end := v.segEnd(v.curSeg)
	place := segment.UnitPlace{Addr: addr, Split: uint32(end - addr)}
	limit := v.unitLimit()
	if v.nextSeg != noSeg {
		place.Next = uint64(v.geo.SegmentOffset(v.nextSeg))
	} else {
		// Without a next segment the last block stays free, so that the
		// log never ends exactly at the end of a segment it cannot leave.
		limit = min(limit, uint64(max(int64(end-addr)-int64(v.bs), 0)))
	}
	return segment.NewUnitBuilder(place, kind, uint32(v.bs), uint32(max(int64(limit)-journal.MarkSize, 0)))
}

// takeNext chooses the next segment from the free list, if none is chosen
// and one is free.
func (v *Volume) takeNext() {
	if v.nextSeg != noSeg || len(v.free) == 0 {
		return
	}
	v.nextSeg = v.free[len(v.free)-1]
	v.free = v.free[:len(v.free)-1]
	if v.ckptRunning {
		v.usedSince = append(v.usedSince, v.nextSeg)
	}
}

// sealLocked closes cur and queues it for the writer; the next unit starts
// right after it, in the next segment if it reached there.
func (v *Volume) sealLocked() error {
	if v.cur.Empty() {
		return nil
	}
	if v.cur.Kind != segment.UnitCheckpoint {
		var w journal.Writer
		w.Mark(v.durable)
		v.cur.AppendRecords(w.Buf)
	}
	place := v.cur.Place
	buf, sum := v.cur.Seal(v.sb.VolumeID(), v.seq, v.prevSum, v.nextSeg)
	for _, p := range place.Pieces(uint32(len(buf))) {
		s, _ := v.geo.SegmentOf(p.Addr)
		if err := v.sut.Touch(s, v.seq); err != nil {
			return v.fail(err)
		}
	}
	u := &sealedUnit{seq: v.seq, place: place, buf: buf, mem: int64(cap(buf))}
	v.queue = append(v.queue, u)
	v.queued += u.mem
	v.logBytes += int64(len(buf))
	v.prevSum = sum
	v.seq++
	v.curTxns = 0
	kind := v.cur.Kind
	if uint32(len(buf)) >= place.Split {
		// The unit reached the next segment: the log goes on there.
		v.curSeg, v.nextSeg = v.nextSeg, noSeg
		v.takeNext()
	}
	v.cur = v.newUnit(kind, u.end())
	v.wake.Signal()
	v.logChanged()
	return nil
}

// sealSize is the size at which a unit of operations is sealed, and no
// more transactions join it: its buffer waits in memory until written.
const sealSize = 512 << 10

// ensure makes cur a unit of the given kind with room for a transaction
// of storedBytes of blocks in nblocks blocks and recBytes of records.
func (v *Volume) ensure(kind uint16, storedBytes, nblocks, recBytes int) error {
	if v.cur.Kind != kind || (kind == segment.UnitOps && v.cur.Size() >= sealSize) {
		if err := v.sealLocked(); err != nil {
			return err
		}
		v.cur.Kind = kind
	}
	if v.cur.Fits(storedBytes, nblocks, recBytes) {
		v.cur.Reserve(storedBytes)
		return nil
	}
	if err := v.sealLocked(); err != nil {
		return err
	}
	if v.nextSeg == noSeg && len(v.free) > 0 {
		v.takeNext()
		v.cur = v.newUnit(kind, v.cur.Addr)
	}
	if !v.cur.Fits(storedBytes, nblocks, recBytes) {
		// Admission (space.go) keeps the room for every transaction it
		// lets in: getting here is a bug, and nothing may be half written.
		return v.fail(fmt.Errorf("a transaction of %d bytes does not fit in the log (%d bytes of room at byte %d)",
			storedBytes+nblocks*segment.SummarySize+recBytes, v.cur.Room(), v.cur.Addr))
	}
	v.cur.Reserve(storedBytes)
	return nil
}

// readRaw reads bytes at a device address, from a unit not yet written if
// that is where they are.
func (v *Volume) readRaw(addr uint64, buf []byte) error {
	if v.cur != nil && len(buf) <= maxUnitBytes {
		if b, ok := v.cur.BlockBytes(addr, uint32(len(buf))); ok {
			copy(buf, b)
			return nil
		}
	}
	for _, u := range v.queue {
		// In 64 bits so that nothing wraps: addr may be anything.
		off, ok := u.place.Offset(addr, uint32(len(u.buf)))
		end := uint64(off) + uint64(len(buf))
		if ok && end <= uint64(len(u.buf)) && (off >= u.place.Split || end <= uint64(u.place.Split)) {
			copy(buf, u.buf[off:])
			return nil
		}
	}
	if _, err := v.dev.ReadAt(buf, int64(addr)); err != nil {
		return fmt.Errorf("read at %d: %w", addr, err)
	}
	return nil
}

// inMemory reports whether any byte of [start, end) is in a unit not yet
// on the device; readRaw serves such reads from memory, one unit at a time.
func (v *Volume) inMemory(start, end uint64) bool {
	if v.cur != nil && v.cur.Overlaps(start, end) {
		return true
	}
	for _, u := range v.queue {
		if u.place.Overlaps(uint32(len(u.buf)), start, end) {
			return true
		}
	}
	return false
}

// sealAfter is how long a unit nobody waits for may gather transactions.
// Every unit takes at least a block: a unit per metadata operation would
// spend a block on each, and a full volume's room with it.
const sealAfter = 25 * time.Millisecond

// sealWanted says when the writer should close cur rather than let more
// transactions join it: someone waits for it, it is big, or it has waited
// sealAfter (the checkpointer wakes the writer then).
func (v *Volume) sealWanted() bool {
	return v.syncReq >= v.seq || v.closing || v.ckptRunning || v.cur.Size() >= sealSize ||
		time.Since(v.curStart) >= sealAfter
}

func (v *Volume) writerHasWork() bool {
	return v.err != nil || v.closing || len(v.queue) > 0 ||
		(!v.cur.Empty() && v.sealWanted()) || (v.syncReq > v.durable && v.written >= v.syncReq)
}

// writer is the one goroutine that writes units to the device and flushes
// it for the callers that wait on durability. Writers of operations never
// wait for it unless they asked for durability or the queue is full.
func (v *Volume) writer() {
	defer close(v.done)
	v.mu.Lock()
	defer v.mu.Unlock()
	defer func() {
		v.writerDone = true
		v.changed.Broadcast()
	}()
	for {
		for !v.writerHasWork() {
			v.wake.Wait()
		}
		if v.err != nil {
			v.changed.Broadcast()
			return
		}
		if len(v.queue) == 0 && !v.cur.Empty() && v.sealWanted() {
			// Group commit: whatever has arrived goes out as one unit. When
			// a flush is wanted, first let the writers the last flush woke
			// add their next transactions, for as long as more keep coming.
			for i := 0; i < 8 && v.syncReq >= v.seq && !v.closing; i++ {
				n := v.curTxns
				v.mu.Unlock()
				runtime.Gosched()
				v.mu.Lock()
				if v.curTxns == n {
					break
				}
			}
			if err := v.sealLocked(); err != nil {
				continue
			}
		}
		if len(v.queue) == 0 && v.closing && v.cur.Empty() && v.durable >= v.written {
			v.changed.Broadcast()
			return
		}
		batch := v.queue
		v.mu.Unlock()
		err := writeUnits(v.dev, batch)
		v.mu.Lock()
		if err != nil {
			v.fail(err)
			continue
		}
		if n := len(batch); n > 0 {
			v.written = batch[n-1].seq
			v.queue = v.queue[n:]
			for _, u := range batch {
				v.queued -= u.mem
				segment.ReleaseUnitBuffer(u.buf)
				u.buf = nil
			}
		}
		if v.syncReq > v.durable || (v.closing && v.written > v.durable) {
			target := v.written
			fill, fillEnd := v.fillAhead(batch)
			v.mu.Unlock()
			if fill != nil {
				// Best effort: without it the syncs only cost more.
				fill.FillHoles(int64(fillEnd), int64(v.fillLimit(fillEnd)), fillNear)
			}
			err := v.dev.Sync()
			v.mu.Lock()
			if err != nil {
				v.fail(err)
				continue
			}
			v.durable = target
			for ino, s := range v.inoSeq {
				if s <= target {
					delete(v.inoSeq, ino)
				}
			}
		}
		v.changed.Broadcast()
	}
}

// writeUnits writes each unit with one write per piece.
func writeUnits(dev segment.Device, batch []*sealedUnit) error {
	for _, u := range batch {
		for _, p := range u.place.Pieces(uint32(len(u.buf))) {
			if _, err := dev.WriteAt(u.buf[p.Start:p.End], int64(p.Addr)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Small synced flushes into an image file fill the holes ahead of the log
// with zeros first (segment.Allocator): a fresh sparse image would
// otherwise make every fdatasync allocate, and journal, blocks on the host.
const (
	fillSmallFlush = 256 << 10 // flushes of more than this fill nothing
	fillAheadBytes = 1 << 20   // how far ahead of the log a fill reaches
	fillNear       = 64 << 10  // fill only when a hole starts this close
)

// fillAhead says whether the flush of batch should first fill holes, and
// from where: the end of its last unit.
func (v *Volume) fillAhead(batch []*sealedUnit) (segment.Allocator, uint64) {
	a, ok := v.dev.(segment.Allocator)
	if !ok || len(batch) == 0 {
		return nil, 0
	}
	n := 0
	for _, u := range batch {
		n += len(u.buf)
	}
	if n > fillSmallFlush {
		return nil, 0
	}
	return a, batch[len(batch)-1].end()
}

// fillLimit is where a fill from end stops: fillAheadBytes on, but never
// past the segment end holds, where nothing of the log lies beyond end.
func (v *Volume) fillLimit(end uint64) uint64 {
	start := uint64(v.geo.SegmentAreaStart())
	seg := (end - 1 - start) / uint64(v.geo.SegmentSize)
	segEnd := start + (seg+1)*uint64(v.geo.SegmentSize)
	return min(segEnd, end+fillAheadBytes)
}

// waitDurable waits until unit seq is written and flushed.
func (v *Volume) waitDurable(seq uint64) error {
	if seq > v.syncReq {
		v.syncReq = seq
	}
	v.wake.Signal()
	for v.durable < seq && v.err == nil {
		if v.writerDone {
			return ErrClosed
		}
		v.changed.Wait()
	}
	return v.err
}
