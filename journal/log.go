package journal

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/txfs/txfs/segment"
)

// The log head: where the next unit goes, the units sealed and waiting
// for the device, and the writer goroutine that puts them there.
//
// The head is a position in the current segment; the next segment is
// chosen from the free list when the log enters a segment, and every unit
// names it. A unit longer than what is left of its segment continues at
// the start of the next one, so no segment's end is left unused. When no
// segment is free, there is no next segment (NoSeg) until a checkpoint
// frees one: the units meanwhile never fill their segment, so the unit
// after them always has a place.

// NoSeg stands for "no next segment chosen".
const NoSeg = ^uint32(0)

// SealSize is the size at which a unit of operations is sealed, and no
// more transactions join it: its buffer waits in memory until written.
const SealSize = 512 << 10

// SealAfter is how long a unit nobody waits for may gather transactions.
// Every unit takes at least a block: a unit per metadata operation would
// spend a block on each, and a full volume's room with it.
const SealAfter = 25 * time.Millisecond

// ErrWriterStopped is what WaitDurable returns when the writer has ended
// (the log was closed) before the unit became durable.
var ErrWriterStopped = errors.New("journal: the log writer has stopped")

// Config is what a Log needs from the volume that holds it. The functions
// are called with Mu held.
type Config struct {
	Mu       *sync.Mutex
	Changed  *sync.Cond // broadcast on durable progress and queue space
	Wake     *sync.Cond // wakes the writer
	Dev      segment.Device
	Geo      segment.Geometry
	VolumeID uint64
	// Err is the volume's first fatal error: then the log writes no more.
	Err func() error
	// Fail records a fatal error and returns what callers return.
	Fail func(error) error
	// Touch notes that unit seq lies in segment s (the usage table).
	Touch func(s uint32, seq uint64) error
	// Durable says that every unit up to seq is durable.
	Durable func(seq uint64)
	// Sealed says that a unit was sealed.
	Sealed func()
	// Warn reports damage that following the chain worked around.
	Warn func(format string, a ...any)
	// Flushed, if set, is told of every flush of the device by the
	// writer: the transactions it made durable and how long it took.
	Flushed func(txns int, took time.Duration)
}

// Head is a place where units are built: the unit being built, its
// segment, and the segment the log goes on in. A Log has one; every unit
// of the chain is sealed from a head.
type Head struct {
	Cur     *segment.UnitBuilder
	CurSeg  uint32
	NextSeg uint32
	Start   time.Time // when the first transaction joined Cur
	Txns    int       // transactions in Cur
}

// Log is the write side of the log: the head, the sequence numbers and
// hash chain of the units, the sealed units waiting for the device, the
// writer goroutine, durability, and the free segments the log may enter.
// It has no lock of its own: Config.Mu guards it, and every method is
// called with Mu held, except Run, which takes it.
type Log struct {
	cfg Config
	bs  int

	Head
	Seq     uint64 // sequence number of Cur
	PrevSum uint64 // checksum of the unit before Cur
	Queue   []*SealedUnit
	Queued  int64  // capacity of the queued units' buffers
	Written uint64 // highest sequence number written to the device
	Durable uint64 // highest sequence number flushed
	SyncReq uint64 // highest sequence number a caller waits to be durable
	// SealedBytes counts the bytes of the units sealed; the owner resets
	// it (when a checkpoint begins).
	SealedBytes int64
	// OpsBytes and LogBytes count the bytes of the units of operations and
	// of all units sealed since the log was opened (write amplification).
	OpsBytes, LogBytes int64
	// Committed counts the transactions committed since the log was
	// opened.
	Committed uint64

	Free      []uint32 // segments the log may take
	Reserve   int      // free segments kept from ordinary operations
	UsedSince []uint32 // segments taken since the running checkpoint began
	// Checkpointing: a checkpoint is being written. Units are sealed as
	// soon as the writer can, and the segments taken are noted.
	Checkpointing bool
	// ColdSeg is the segment the cleaner copies live blocks into (NoSeg:
	// none), and ColdPos where its next unit goes. It is held apart from
	// the free segments and the chain: the log never enters it, and a
	// checkpoint never gives it back while the cleaner holds it.
	ColdSeg uint32
	ColdPos uint64
	// Spanned maps a segment to the blocks it holds of units that lie
	// across it and a neighbour (segment.SplitBlocks), for the units this
	// Log sealed and those recovery followed. Such a unit's summary lies
	// in one of the two segments, which may be written over while the
	// other still holds its blocks: the cleaner looks these up in the DAT
	// instead of walking it all. Dropped when the segment is taken again.
	Spanned map[uint32][]uint64
	// KeepForCleaner: the log never takes the last free segment, so that
	// the room kept for the cleaner's next segment lies in a segment it can
	// take (the log's next segment, once named, is the log's for good).
	KeepForCleaner bool
	Closing        bool // the writer ends once everything is durable
	WriterDone     bool // the writer goroutine has ended
}

// NewLog makes a Log with no head yet: the owner sets the position, the
// sequence numbers and the free segments, then calls Restart.
func NewLog(cfg Config) *Log {
	return &Log{cfg: cfg, bs: int(cfg.Geo.BlockSize), Reserve: max(4, int(cfg.Geo.Segments/20)), ColdSeg: NoSeg,
		Spanned: map[uint32][]uint64{}}
}

// SealedUnit is a unit sealed and waiting for the device.
type SealedUnit struct {
	Seq   uint64
	Place segment.UnitPlace
	Buf   []byte
	Mem   int64 // the capacity of Buf, which the queue counts
	Txns  int   // the transactions it carries
}

// End is the device address right after the unit.
func (u *SealedUnit) End() uint64 { return u.Place.DevAddr(uint32(len(u.Buf))) }

// SegEnd is the device address right after segment s.
func (l *Log) SegEnd(s uint32) uint64 {
	return uint64(l.cfg.Geo.SegmentOffset(s)) + uint64(l.cfg.Geo.SegmentSize)
}

// UnitLimit is the longest unit: it spans at most two segments.
func (l *Log) UnitLimit() uint64 {
	return min(segment.MaxPooledUnit, uint64(l.cfg.Geo.SegmentSize))
}

// NewUnit starts a unit of the given kind at addr in the current segment.
func (l *Log) NewUnit(kind uint16, addr uint64) *segment.UnitBuilder {
	end := l.SegEnd(l.CurSeg)
	place := segment.UnitPlace{Addr: addr, Split: uint32(end - addr)}
	limit := l.UnitLimit()
	if l.NextSeg != NoSeg {
		place.Next = uint64(l.cfg.Geo.SegmentOffset(l.NextSeg))
	} else {
		// Without a next segment the last block stays free, so that the
		// log never ends exactly at the end of a segment it cannot leave.
		limit = min(limit, uint64(max(int64(end-addr)-int64(l.bs), 0)))
	}
	return segment.NewUnitBuilder(place, kind, uint32(l.bs), uint32(max(int64(limit)-MarkSize, 0)))
}

// Resume makes the head go on at pos, where recovery found the end of the
// chain, with the free segments given: the next segment is taken from
// them if the chain named none.
func (l *Log) Resume(pos uint64, free []uint32) {
	l.Free = free
	l.TakeNext()
	l.Cur = l.NewUnit(segment.UnitOps, pos)
}

// GiveBack makes the segments a durable checkpoint showed empty the free
// segments, except those the log took while it was written, and takes
// the next segment from them if the head has none.
func (l *Log) GiveBack(empty []uint32) {
	taken := l.Held()
	free := l.Free[:0:0]
	for _, s := range empty {
		if !taken[s] {
			free = append(free, s)
		}
	}
	l.Free = free
	if l.NextSeg == NoSeg && len(l.Free) > 0 {
		l.TakeNext()
		if l.Cur.Empty() {
			l.Cur = l.NewUnit(l.Cur.Kind, l.Cur.Addr)
		}
	}
}

// TakeNext chooses the next segment from the free list, if none is chosen
// and one is free; never the last one if KeepForCleaner.
func (l *Log) TakeNext() {
	if l.NextSeg != NoSeg || len(l.Free) == 0 || len(l.Free) == 1 && l.KeepForCleaner {
		return
	}
	l.NextSeg = l.Free[len(l.Free)-1]
	l.Free = l.Free[:len(l.Free)-1]
	delete(l.Spanned, l.NextSeg)
	if l.Checkpointing {
		l.UsedSince = append(l.UsedSince, l.NextSeg)
	}
}

// Held is the set of segments taken apart from the free ones that are not
// counted by what they hold: the log head's, its next, the cleaner's, and
// those taken while a checkpoint is being written.
func (l *Log) Held() map[uint32]bool {
	held := map[uint32]bool{l.CurSeg: true, l.NextSeg: true, l.ColdSeg: true}
	for _, s := range l.UsedSince {
		held[s] = true
	}
	return held
}

// TakeCold gives the cleaner a free segment to copy blocks into, if it
// holds none, and reports whether it holds one.
func (l *Log) TakeCold() bool {
	if l.ColdSeg != NoSeg {
		return true
	}
	if len(l.Free) == 0 {
		return false
	}
	l.ColdSeg = l.Free[len(l.Free)-1]
	l.Free = l.Free[:len(l.Free)-1]
	l.ColdPos = uint64(l.cfg.Geo.SegmentOffset(l.ColdSeg))
	delete(l.Spanned, l.ColdSeg)
	if l.Checkpointing {
		l.UsedSince = append(l.UsedSince, l.ColdSeg)
	}
	return true
}

// ReleaseCold ends the cleaner's hold on its segment: what it holds is
// counted like any segment's from now on. A checkpoint being written
// may have found it empty before the cleaner moved blocks there, so it
// counts as taken while that checkpoint runs.
func (l *Log) ReleaseCold() {
	if l.ColdSeg == NoSeg {
		return
	}
	if l.Checkpointing {
		l.UsedSince = append(l.UsedSince, l.ColdSeg)
	}
	l.ColdSeg = NoSeg
}

// NoteSpan notes the blocks of a unit of n bytes at place with that
// summary, if it lies across two segments (Spanned).
func (l *Log) NoteSpan(place segment.UnitPlace, n uint32, summary []segment.SummaryEntry) {
	if n <= place.Split || place.Next == 0 {
		return
	}
	from, ok1 := l.cfg.Geo.SegmentOf(place.Addr)
	to, ok2 := l.cfg.Geo.SegmentOf(place.Next)
	if !ok1 || !ok2 {
		return
	}
	before, past := segment.SplitBlocks(summary, place.Split)
	l.Spanned[from] = append(l.Spanned[from], before...)
	l.Spanned[to] = append(l.Spanned[to], past...)
}

// ColdRoom is how many bytes the cleaner's segment can still take.
func (l *Log) ColdRoom() int64 {
	if l.ColdSeg == NoSeg {
		return 0
	}
	return int64(l.SegEnd(l.ColdSeg) - l.ColdPos)
}

// Seal closes Cur and queues it for the writer; the next unit starts right
// after it, in the next segment if it reached there.
func (l *Log) Seal() error {
	if l.Cur.Empty() {
		return nil
	}
	if l.Cur.Kind != segment.UnitCheckpoint {
		var w Writer
		w.Mark(l.Durable)
		l.Cur.AppendRecords(w.Buf)
	}
	place := l.Cur.Place
	summary := l.Cur.Summary()
	buf, sum := l.Cur.Seal(l.cfg.VolumeID, l.Seq, l.PrevSum, l.NextSeg)
	for _, p := range place.Pieces(uint32(len(buf))) {
		s, _ := l.cfg.Geo.SegmentOf(p.Addr)
		if err := l.cfg.Touch(s, l.Seq); err != nil {
			return l.cfg.Fail(err)
		}
	}
	l.NoteSpan(place, uint32(len(buf)), summary)
	u := &SealedUnit{Seq: l.Seq, Place: place, Buf: buf, Mem: int64(cap(buf)), Txns: l.Txns}
	l.Queue = append(l.Queue, u)
	l.Queued += u.Mem
	l.SealedBytes += int64(len(buf))
	l.LogBytes += int64(len(buf))
	if l.Cur.Kind == segment.UnitOps {
		l.OpsBytes += int64(len(buf))
	}
	l.PrevSum = sum
	l.Seq++
	l.Txns = 0
	kind := l.Cur.Kind
	if uint32(len(buf)) >= place.Split {
		// The unit reached the next segment: the log goes on there.
		l.CurSeg, l.NextSeg = l.NextSeg, NoSeg
		l.TakeNext()
	}
	l.Cur = l.NewUnit(kind, u.End())
	l.cfg.Wake.Signal()
	l.cfg.Sealed()
	return nil
}

// Ensure makes Cur a unit of the given kind with room for a transaction
// of storedBytes of blocks in nblocks blocks and recBytes of records.
func (l *Log) Ensure(kind uint16, storedBytes, nblocks, recBytes int) error {
	if l.Cur.Kind != kind || (kind == segment.UnitOps && l.Cur.Size() >= SealSize) {
		if err := l.Seal(); err != nil {
			return err
		}
		l.Cur.Kind = kind
	}
	if l.Cur.Fits(storedBytes, nblocks, recBytes) {
		l.Cur.Reserve(storedBytes)
		return nil
	}
	if err := l.Seal(); err != nil {
		return err
	}
	if l.NextSeg == NoSeg && len(l.Free) > 0 {
		l.TakeNext()
		l.Cur = l.NewUnit(kind, l.Cur.Addr)
	}
	if !l.Cur.Fits(storedBytes, nblocks, recBytes) {
		// Admission keeps the room for every transaction it lets in:
		// getting here is a bug, and nothing may be half written.
		return l.cfg.Fail(fmt.Errorf("a transaction of %d bytes does not fit in the log (%d bytes of room at byte %d)",
			storedBytes+nblocks*segment.SummarySize+recBytes, l.Cur.Room(), l.Cur.Addr))
	}
	l.Cur.Reserve(storedBytes)
	return nil
}

// Commit appends a transaction's records to Cur.
func (l *Log) Commit(records []byte) {
	if l.Cur.Empty() {
		l.Start = time.Now()
	}
	l.Cur.AppendRecords(records)
	l.Txns++
	l.Committed++
	l.cfg.Wake.Signal()
}

// PerBoundary is what the log may lose where it crosses into the next
// segment: a padding entry of up to one block.
func (l *Log) PerBoundary() int64 { return int64(l.bs + segment.SummarySize) }

// Room is how many bytes the log can still write: the rest of the current
// segment, the next segment and the free segments it may take.
func (l *Log) Room() int64 {
	s := int64(l.cfg.Geo.SegmentSize)
	rest := int64(l.SegEnd(l.CurSeg)) - int64(l.Cur.Addr) - int64(l.Cur.Size())
	if l.NextSeg == NoSeg {
		rest -= int64(l.bs) // the last block of a segment without a next stays free
	} else {
		rest += s - l.PerBoundary()
	}
	rest += int64(l.usableFree()) * (s - l.PerBoundary())
	return max(rest, 0)
}

// usableFree is how many free segments the log itself may take: all but
// the last with KeepForCleaner.
func (l *Log) usableFree() int {
	if l.KeepForCleaner {
		return max(len(l.Free)-1, 0)
	}
	return len(l.Free)
}

// ColdCostKept is the room of the free segment kept for the cleaner, which
// Room does not count (0 if none is kept).
func (l *Log) ColdCostKept() int64 {
	if !l.KeepForCleaner || len(l.Free) == 0 {
		return 0
	}
	return int64(l.cfg.Geo.SegmentSize) - l.PerBoundary()
}

// ColdCost is how much Room loses if the cleaner takes a free segment now:
// none when it takes the one kept for it.
func (l *Log) ColdCost() int64 {
	if l.usableFree() == 0 {
		return 0
	}
	return int64(l.cfg.Geo.SegmentSize) - l.PerBoundary()
}

// ReadRaw reads bytes at a device address, from a unit not yet written if
// that is where they are.
func (l *Log) ReadRaw(addr uint64, buf []byte) error {
	if l.Cur != nil && len(buf) <= segment.MaxPooledUnit {
		if b, ok := l.Cur.BlockBytes(addr, uint32(len(buf))); ok {
			copy(buf, b)
			return nil
		}
	}
	for _, u := range l.Queue {
		// In 64 bits so that nothing wraps: addr may be anything.
		off, ok := u.Place.Offset(addr, uint32(len(u.Buf)))
		end := uint64(off) + uint64(len(buf))
		if ok && end <= uint64(len(u.Buf)) && (off >= u.Place.Split || end <= uint64(u.Place.Split)) {
			copy(buf, u.Buf[off:])
			return nil
		}
	}
	if _, err := l.cfg.Dev.ReadAt(buf, int64(addr)); err != nil {
		return fmt.Errorf("read at %d: %w", addr, err)
	}
	return nil
}

// InMemory reports whether any byte of [start, end) is in a unit not yet
// on the device; ReadRaw serves such reads from memory, one unit at a time.
func (l *Log) InMemory(start, end uint64) bool {
	if l.Cur != nil && l.Cur.Overlaps(start, end) {
		return true
	}
	for _, u := range l.Queue {
		if u.Place.Overlaps(uint32(len(u.Buf)), start, end) {
			return true
		}
	}
	return false
}

// SealWanted says when the writer should close Cur rather than let more
// transactions join it: someone waits for it, it is big, or it has waited
// SealAfter (the owner wakes the writer then).
func (l *Log) SealWanted() bool {
	return l.SyncReq >= l.Seq || l.Closing || l.Checkpointing || l.Cur.Size() >= SealSize ||
		time.Since(l.Start) >= SealAfter
}

func (l *Log) writerHasWork() bool {
	return l.cfg.Err() != nil || l.Closing || len(l.Queue) > 0 ||
		(!l.Cur.Empty() && l.SealWanted()) || (l.SyncReq > l.Durable && l.Written >= l.SyncReq)
}

// Run is the writer: the one goroutine that writes units to the device and
// flushes it for the callers that wait on durability. Writers of
// operations never wait for it unless they asked for durability or the
// queue is full. It closes done when it ends: on Closing once everything
// is durable, or on a fatal error.
func (l *Log) Run(done chan struct{}) {
	defer close(done)
	mu := l.cfg.Mu
	mu.Lock()
	defer mu.Unlock()
	defer func() {
		l.WriterDone = true
		l.cfg.Changed.Broadcast()
	}()
	unflushed := 0 // transactions written since the last flush
	for {
		for !l.writerHasWork() {
			l.cfg.Wake.Wait()
		}
		if l.cfg.Err() != nil {
			l.cfg.Changed.Broadcast()
			return
		}
		if len(l.Queue) == 0 && !l.Cur.Empty() && l.SealWanted() {
			// Group commit: whatever has arrived goes out as one unit. When
			// a flush is wanted, first let the writers the last flush woke
			// add their next transactions, for as long as more keep coming.
			for i := 0; i < 8 && l.SyncReq >= l.Seq && !l.Closing; i++ {
				n := l.Txns
				mu.Unlock()
				runtime.Gosched()
				mu.Lock()
				if l.Txns == n {
					break
				}
			}
			if err := l.Seal(); err != nil {
				continue
			}
		}
		if len(l.Queue) == 0 && l.Closing && l.Cur.Empty() && l.Durable >= l.Written {
			l.cfg.Changed.Broadcast()
			return
		}
		batch := l.Queue
		mu.Unlock()
		err := writeUnits(l.cfg.Dev, batch)
		mu.Lock()
		if err != nil {
			l.cfg.Fail(err)
			continue
		}
		if n := len(batch); n > 0 {
			l.Written = batch[n-1].Seq
			l.Queue = l.Queue[n:]
			for _, u := range batch {
				unflushed += u.Txns
				l.Queued -= u.Mem
				segment.ReleaseUnitBuffer(u.Buf)
				u.Buf = nil
			}
		}
		if l.SyncReq > l.Durable || (l.Closing && l.Written > l.Durable) {
			target := l.Written
			fill, fillEnd := l.fillAhead(batch)
			mu.Unlock()
			if fill != nil {
				// Best effort: without it the syncs only cost more.
				fill.FillHoles(int64(fillEnd), int64(l.fillLimit(fillEnd)), FillNear)
			}
			start := time.Now()
			err := l.cfg.Dev.Sync()
			took := time.Since(start)
			mu.Lock()
			if err != nil {
				l.cfg.Fail(err)
				continue
			}
			if l.cfg.Flushed != nil {
				l.cfg.Flushed(unflushed, took)
			}
			unflushed = 0
			l.Durable = target
			l.cfg.Durable(target)
		}
		l.cfg.Changed.Broadcast()
	}
}

// writeUnits writes each unit with one write per piece.
func writeUnits(dev segment.Device, batch []*SealedUnit) error {
	for _, u := range batch {
		for _, p := range u.Place.Pieces(uint32(len(u.Buf))) {
			if _, err := dev.WriteAt(u.Buf[p.Start:p.End], int64(p.Addr)); err != nil {
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
	FillNear       = 64 << 10  // fill only when a hole starts this close
)

// fillAhead says whether the flush of batch should first fill holes, and
// from where: the end of its last unit.
func (l *Log) fillAhead(batch []*SealedUnit) (segment.Allocator, uint64) {
	a, ok := l.cfg.Dev.(segment.Allocator)
	if !ok || len(batch) == 0 {
		return nil, 0
	}
	n := 0
	for _, u := range batch {
		n += len(u.Buf)
	}
	if n > fillSmallFlush {
		return nil, 0
	}
	return a, batch[len(batch)-1].End()
}

// fillLimit is where a fill from end stops: fillAheadBytes on, but never
// past the segment end holds, where nothing of the log lies beyond end.
func (l *Log) fillLimit(end uint64) uint64 {
	geo := l.cfg.Geo
	start := uint64(geo.SegmentAreaStart())
	seg := (end - 1 - start) / uint64(geo.SegmentSize)
	segEnd := start + (seg+1)*uint64(geo.SegmentSize)
	return min(segEnd, end+fillAheadBytes)
}

// WaitDurable waits until unit seq is written and flushed. It returns the
// owner's fatal error, or ErrWriterStopped if the writer ended first.
func (l *Log) WaitDurable(seq uint64) error {
	if seq > l.SyncReq {
		l.SyncReq = seq
	}
	l.cfg.Wake.Signal()
	for l.Durable < seq && l.cfg.Err() == nil {
		if l.WriterDone {
			return ErrWriterStopped
		}
		l.cfg.Changed.Wait()
	}
	return l.cfg.Err()
}
