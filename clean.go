package txfs

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/txfs/txfs/cleaner"
	"github.com/txfs/txfs/cow"
	"github.com/txfs/txfs/journal"
	"github.com/txfs/txfs/segment"
)

// The segment cleaner (docs/DESIGN.md, "The cleaner"). A batch takes
// victims chosen by the policy, finds their live blocks (the summaries of
// their units, checked against the DAT), copies them unchanged into units
// of their own in the cleaner's segment (journal.Log.ColdSeg), and then
// moves each block in the DAT with a compare-and-set (cow.Blocks.Move): a block rewritten or freed since it
// was read keeps its new state, and its copy is garbage. The victims'
// table blocks are marked dirty, so that the next checkpoint writes them
// elsewhere; once that checkpoint is durable the victims are free (its
// flush makes the copies durable first). A crash before it loses only
// the moves: the last durable checkpoint still places every block in its
// victim, which nothing reused.
//
// The volume lock is held only to choose victims, to check candidates
// against the DAT, and to move them; the reading and copying are done
// without it. cleanState.mu lets one batch run at a time.

// CleanerOptions set the segment cleaner. The zero value is the default.
type CleanerOptions struct {
	// Policy chooses victims: "greedy", "cost-benefit" or "age-threshold"
	// ("": cleaner.DefaultPolicy).
	Policy string
	// LowWatermark is the number of free segments below which the cleaner
	// works in the background, and HighWatermark the number it works up
	// to (and, when the volume is idle, cleans up to). 0: 2 and 3 times
	// the reserve (1/10 and 3/20 of the volume, at least 8 and 12).
	LowWatermark, HighWatermark int
	// Pace is the pause between two batches of background cleaning, which
	// leaves the device to foreground operations. 0: 20 ms.
	Pace time.Duration
	// Off turns the background cleaner off: writers short of space and
	// Clean still clean.
	Off bool
}

// Cleaner defaults and limits.
const (
	defaultCleanPace = 20 * time.Millisecond
	// cleanBatchBytes bounds the live bytes one batch copies, so that the
	// device is never busy with the cleaner for long at a time.
	cleanBatchBytes = 2 << 20
	// cleanMaxVictims bounds the segments one batch reads.
	cleanMaxVictims = 16
	// cleanIdleAfter is how long the log must not have changed for the
	// volume to count as idle.
	cleanIdleAfter = 2 * time.Second
	// cleanCeiling is the highest utilization a victim may have: above it
	// a segment gives back too little for what copying it costs, and its
	// dead space does not count as free.
	cleanCeiling = 0.95
)

// cleanState is the cleaner's settings, its background goroutine's
// signals and what it has done (guarded by the volume lock, but for mu).
type cleanState struct {
	mu        sync.Mutex // one pass at a time
	policy    cleaner.Policy
	low, high int
	pace      time.Duration
	off       bool
	kick      chan struct{} // something may have become due
	stop      chan struct{} // closed when the volume closes
	done      chan struct{} // closed when the background cleaner ends
	started   bool          // the background cleaner runs
	running   bool          // a batch is under way

	passes, cleaned uint64
	moved, written  int64
	// batches counts the batches that moved something, censuses those
	// that had to walk the DAT for a victim's blocks.
	batches, censuses uint64
	// emptied are the victims left with nothing but table blocks for the
	// next checkpoint to write elsewhere: no candidates until it begins.
	emptied map[uint32]bool
}

// setupCleaner applies the options (Open has checked them).
func (v *Volume) setupCleaner() {
	v.applyCleanerOptions(v.opts.Cleaner)
	c := &v.clean
	c.kick = make(chan struct{}, 1)
	c.stop = make(chan struct{})
	c.done = make(chan struct{})
}

// applyCleanerOptions sets the cleaner's policy, watermarks, pace and
// switch from o (checked). Lock held, or not started yet.
func (v *Volume) applyCleanerOptions(o CleanerOptions) {
	c := &v.clean
	c.policy, _ = cleaner.ByName(o.Policy)
	c.low, c.high, c.pace, c.off = o.LowWatermark, o.HighWatermark, o.Pace, o.Off
	if c.low <= 0 {
		c.low = max(2*v.log.Reserve, 8)
	}
	if c.high <= 0 {
		c.high = max(3*v.log.Reserve, 12)
	}
	c.high = max(c.high, c.low)
	if c.pace <= 0 {
		c.pace = defaultCleanPace
	}
}

// SetCleaner changes the cleaner's settings while the volume is open:
// policy, watermarks, pace and whether it cleans in the background. A
// pass under way ends first; the next one follows the new settings.
func (v *Volume) SetCleaner(o CleanerOptions) error {
	if err := checkCleanerOptions(o); err != nil {
		return err
	}
	v.clean.mu.Lock() // no pass meanwhile
	defer v.clean.mu.Unlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return err
	}
	v.opts.Cleaner = o
	v.applyCleanerOptions(o)
	select { // the background cleaner looks again
	case v.clean.kick <- struct{}{}:
	default:
	}
	return nil
}

// checkCleanerOptions refuses settings that cannot work.
func checkCleanerOptions(o CleanerOptions) error {
	if _, err := cleaner.ByName(o.Policy); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if o.LowWatermark < 0 || o.HighWatermark < 0 || o.Pace < 0 {
		return fmt.Errorf("%w: cleaner watermarks and pace must not be negative", ErrInvalid)
	}
	if o.HighWatermark > 0 && o.LowWatermark > o.HighWatermark {
		return fmt.Errorf("%w: cleaner low watermark %d is above the high one %d", ErrInvalid, o.LowWatermark, o.HighWatermark)
	}
	return nil
}

// testHookClean, if set, is called without the volume lock at each stage
// of a batch ("written": copies written, not yet moved; "moved") and of a
// pass ("checkpoint": before its checkpoint), so that tests can cut the
// power there.
var testHookClean func(v *Volume, stage string)

func (v *Volume) cleanStage(stage string) {
	if testHookClean != nil {
		testHookClean(v, stage)
	}
}

// victim is a segment a batch cleans, and what it found there.
type victim struct {
	seg     uint32
	lastSeq uint64
	found   []cleaner.Block // what its units' summaries name
	spanned []uint64        // blocks of units across it and a neighbour (journal.Log.Spanned)
}

// move is a block a batch copies: where it is, what the DAT says of it,
// and where its copy goes.
type move struct {
	vb   uint64
	e    cow.Entry
	sum  segment.SummaryEntry
	to   uint64
	data []byte
}

// Clean runs a cleaning pass now: every segment the policy would take
// whose dead space is at least a quarter of it, then a checkpoint, after
// which their space is free.
func (v *Volume) Clean() (CleanResult, error) {
	v.mu.Lock()
	err := v.writable()
	if err == nil && v.stopping {
		err = ErrClosed
	}
	v.mu.Unlock()
	if err != nil {
		return CleanResult{}, err
	}
	return v.cleanPass(func(int) bool { return true }, 0.75, 0, nil)
}

// cleanPass runs batches while more(segments emptied so far) says so and
// a batch finds victims of at most utilization ceiling, pausing between
// them, then takes a checkpoint if anything moved, which gives the
// emptied victims back. policy chooses the victims (nil: the volume's). One batch
// runs at a time, and Close waits for the one under way; a writer short
// of space waits for a batch, not for a paced pass.
func (v *Volume) cleanPass(more func(n int) bool, ceiling float64, pause time.Duration, policy cleaner.Policy) (CleanResult, error) {
	if policy == nil {
		policy = v.clean.policy
	}
	var res CleanResult
	var err error
	for more(res.Segments) {
		var r CleanResult
		v.clean.mu.Lock()
		r, err = v.cleanBatch(ceiling, policy)
		v.clean.mu.Unlock()
		res.Segments += r.Segments
		res.BytesMoved += r.BytesMoved
		res.BytesFreed += r.BytesFreed
		if err != nil || r.Segments == 0 && r.BytesMoved == 0 {
			break
		}
		time.Sleep(pause)
	}
	if (res.Segments > 0 || res.BytesMoved > 0) && err == nil {
		v.cleanStage("checkpoint")
		err = v.checkpoint()
	}
	if res.Segments > 0 || res.BytesMoved > 0 {
		v.mu.Lock()
		v.clean.passes++
		v.mu.Unlock()
	}
	if errors.Is(err, ErrClosed) {
		err = nil
	}
	return res, err
}

// cleanBatch cleans one batch of victims. clean.mu held.
func (v *Volume) cleanBatch(ceiling float64, policy cleaner.Policy) (CleanResult, error) {
	c := &v.clean

	v.mu.Lock()
	victims, err := v.pickVictims(ceiling, policy)
	volumeID := v.sb.VolumeID()
	v.mu.Unlock()
	if err != nil || len(victims) == 0 {
		return CleanResult{}, err
	}
	v.setCleaning(true)
	defer v.setCleaning(false)

	// Read each victim and list what its units name, without the lock.
	sc := cleaner.Scanner{Geo: v.geo, VolumeID: volumeID, Read: func(buf []byte, addr uint64) error {
		_, err := v.dev.ReadAt(buf, int64(addr))
		return err
	}}
	buf := make([]byte, v.geo.SegmentSize)
	for _, vic := range victims {
		if _, err := v.dev.ReadAt(buf, v.geo.SegmentOffset(vic.seg)); err != nil {
			return CleanResult{}, fmt.Errorf("%w: cleaner: reading segment %d: %v", ErrIO, vic.seg, err)
		}
		vic.found, _ = sc.Segment(vic.seg, buf)
	}
	buf = nil

	v.mu.Lock()
	moves, tables, victims, err := v.planMoves(victims)
	coldPos := v.log.ColdPos
	v.mu.Unlock()
	if err != nil || len(victims) == 0 {
		return CleanResult{}, err
	}

	// Copy: read each block, check it, and write the copies in units of
	// their own, then make them durable before any DAT entry names them.
	if err := v.readMoves(moves); err != nil {
		return CleanResult{}, err
	}
	end, written, err := v.writeMoved(moves, coldPos, volumeID)
	if err != nil {
		return CleanResult{}, v.failIO(err)
	}

	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.writable(); err != nil {
		return CleanResult{}, err
	}
	v.log.ColdPos = end
	res := CleanResult{}
	var lastSeq uint64
	for _, vic := range victims {
		lastSeq = max(lastSeq, vic.lastSeq)
	}
	if err := v.sut.Touch(v.log.ColdSeg, lastSeq); err != nil {
		return res, v.fail(err)
	}
	for _, m := range moves {
		if m.data == nil {
			if e, err := v.dat.Get(m.vb); err == nil && e.Addr == m.e.Addr && e.Sum == m.e.Sum {
				v.logf("cleaner: virtual block %d at byte %d does not match its checksum: left where it is", m.vb, m.e.Addr)
			}
			continue
		}
		ok, err := v.blocks.Move(m.vb, m.e.Addr, m.e.Sum, m.to)
		if err != nil {
			return res, v.fail(err)
		}
		if ok {
			res.BytesMoved += int64(m.e.Len)
		}
	}
	if err := v.markTablesDirty(tables); err != nil {
		return res, v.fail(err)
	}
	for _, vic := range victims {
		e, err := v.sut.Get(vic.seg)
		if err != nil {
			return res, v.fail(err)
		}
		if e.Live == 0 {
			res.Segments++
			res.BytesFreed += int64(v.geo.SegmentSize)
			if c.emptied == nil {
				c.emptied = map[uint32]bool{}
			}
			c.emptied[vic.seg] = true
		}
	}
	v.changes++
	c.batches++
	c.cleaned += uint64(res.Segments)
	c.moved += res.BytesMoved
	c.written += written
	v.logChanged()
	if testHookClean != nil {
		v.mu.Unlock()
		v.cleanStage("moved")
		v.mu.Lock()
	}
	return res, nil
}

// failIO stops the volume for a device error met without the lock.
func (v *Volume) failIO(err error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.fail(err)
}

func (v *Volume) setCleaning(on bool) {
	v.mu.Lock()
	v.clean.running = on
	v.mu.Unlock()
}

// segmentUse is what segment s holds that the volume needs, in bytes: its
// live blocks, its DAT table blocks and its usage table blocks (sutIn).
func (v *Volume) segmentUse(e segment.UsageEntry, sutBlocks int) int64 {
	return int64(e.Live) + int64(int(e.Tables)+sutBlocks)*int64(v.bs)
}

// cleanCandidates lists the segments the cleaner may take, with what
// they hold: not free, not the log's, not the cleaner's own, not holding
// units still on their way to the device or the last checkpoint, not
// empty (a checkpoint gives those back) and at most ceiling full. Lock
// held.
func (v *Volume) cleanCandidates(ceiling float64) ([]cleaner.Segment, error) {
	skip := v.log.Held()
	for _, s := range v.log.Free {
		skip[s] = true
	}
	for s := range v.clean.emptied {
		skip[s] = true
	}
	if s, ok := v.geo.SegmentOf(v.sb.Checkpoint.Addr); ok {
		skip[s] = true
	}
	sutIn, err := v.usageBlocksBySegment()
	if err != nil {
		return nil, err
	}
	size := int64(v.geo.SegmentSize)
	var out []cleaner.Segment
	for s := range v.geo.Segments {
		if skip[s] {
			continue
		}
		e, err := v.sut.Get(s)
		if err != nil {
			return nil, err
		}
		use := v.segmentUse(e, sutIn[s])
		if use == 0 || e.LastSeq > v.log.Written || float64(use) > ceiling*float64(size) {
			continue
		}
		out = append(out, cleaner.Segment{ID: s, Live: use, Size: size, LastSeq: e.LastSeq})
	}
	return out, nil
}

// reclaimableBytes is the dead space of the segments the cleaner may
// take: what it can give back. Lock held.
func (v *Volume) reclaimableBytes() int64 {
	cands, err := v.cleanCandidates(cleanCeiling)
	if err != nil {
		return 0
	}
	var n int64
	for _, s := range cands {
		n += s.Size - s.Live
	}
	return n
}

// pickVictims takes the cleaner's segment if it holds none and chooses
// the victims of a batch, in the policy's order, as far as their live
// bytes fit in the rest of that segment. Lock held.
func (v *Volume) pickVictims(ceiling float64, policy cleaner.Policy) ([]*victim, error) {
	if err := v.writable(); err != nil {
		return nil, err
	}
	if v.stopping {
		return nil, ErrClosed
	}
	cands, err := v.cleanCandidates(ceiling)
	if err != nil || len(cands) == 0 {
		return nil, err
	}
	ranked := policy.Rank(cands, v.log.Seq)
	// The cleaner's segment is filled to its end, a victim's blocks split
	// between two batches where it must; once too little of it is left for
	// a few blocks, a new one is taken.
	if v.log.ColdRoom() < v.coldMin() {
		v.renewCold()
	}
	if v.log.ColdRoom() < v.coldMin() {
		return nil, nil
	}
	room := min(v.log.ColdRoom(), cleanBatchBytes)
	var out []*victim
	var total, dead int64
	for _, s := range ranked {
		e, err := v.sut.Get(s.ID)
		if err != nil {
			return nil, err
		}
		total += int64(e.Live)
		dead += s.Size - s.Live
		out = append(out, &victim{seg: s.ID, lastSeq: s.LastSeq, spanned: v.log.Spanned[s.ID]})
		if len(out) == cleanMaxVictims || total >= room {
			break
		}
	}
	// A batch is followed by a checkpoint: one that would write more
	// than the batch gives back is not worth it.
	if dead < v.checkpointBytes(int64(v.sut.FlushBound()), 0) {
		return nil, nil
	}
	return out, nil
}

// coldMin is the least room the cleaner's segment must have left to be
// worth a batch: a unit of a few blocks.
func (v *Volume) coldMin() int64 { return int64(segment.UnitHeaderSize + 5*v.bs) }

// renewCold gives the cleaner a new segment for its copies, if one is
// free and the next checkpoint still fits without the room that takes
// from the log (none for the segment the log keeps for it: space.go); what
// the batch then moves is held to what the checkpoint can take
// (planMoves). Lock held.
func (v *Volume) renewCold() {
	if len(v.log.Free) > 0 && v.log.Room()-v.log.ColdCost() >= v.ckptCostWith(0, 1) {
		v.log.ReleaseCold()
		v.log.TakeCold()
	}
}

// dropEmptyCold lets the cleaner's segment go when nothing in it is live
// (every copy died, or none was made), unless a batch is under way, so
// that the checkpoint about to be written gives it back like any empty
// segment: held, it would be room no writer could use. Lock held, before
// the checkpoint begins.
func (v *Volume) dropEmptyCold() {
	if v.log.ColdSeg == journal.NoSeg || !v.clean.mu.TryLock() {
		return
	}
	defer v.clean.mu.Unlock()
	if e, err := v.sut.Get(v.log.ColdSeg); err == nil && e.Live == 0 && e.Tables == 0 {
		v.log.ReleaseCold()
	}
}

// segmentBlocks is how many blocks a segment holds.
func (v *Volume) segmentBlocks() int { return int(v.geo.SegmentSize) / v.bs }

// planMoves checks what the victims' summaries name against the DAT and
// lists the blocks to move, counting the DAT for a victim whose summaries
// do not account for all its live bytes; it lists the table blocks to
// write elsewhere, and drops victims from the end until the copies fit in
// the cleaner's segment and the next checkpoint in the log. Lock held.
func (v *Volume) planMoves(victims []*victim) ([]move, []tableBlock, []*victim, error) {
	if err := v.writable(); err != nil {
		return nil, nil, nil, err
	}
	if v.log.ColdSeg == journal.NoSeg {
		return nil, nil, nil, nil
	}
	per := make(map[uint32][]move, len(victims))
	var census []uint32
	seen := map[uint64]bool{}
	for _, vic := range victims {
		var live int64
		{
			// Units across the victim and a neighbour: their summaries
			// lie in one of the two, which may have been written over.
			for _, id := range vic.spanned {
				vb := id & (1<<56 - 1)
				if vb == 0 || vb >= v.dat.Count() || seen[vb] {
					continue
				}
				e, err := v.dat.Get(vb)
				if err != nil {
					return nil, nil, nil, v.fail(err)
				}
				if s, ok := v.geo.SegmentOf(e.Addr); e.Free() || !ok || s != vic.seg {
					continue
				}
				seen[vb] = true
				sum := segment.SummaryEntry{Kind: uint8(id >> 56), ID: vb, Flags: uint8(e.Flags & cow.FlagLZ4), Len: e.Len, Sum: e.Sum}
				per[vic.seg] = append(per[vic.seg], move{vb: vb, e: e, sum: sum})
				live += int64(e.Len)
			}
		}
		for _, b := range vic.found {
			if (b.Kind != segment.SumData && b.Kind != segment.SumNode) || b.ID == 0 || b.ID >= v.dat.Count() || seen[b.ID] {
				continue
			}
			e, err := v.dat.Get(b.ID)
			if err != nil {
				return nil, nil, nil, v.fail(err)
			}
			if e.Free() || e.Addr != b.Addr || e.Sum != b.Sum || e.Len != b.Len {
				continue
			}
			seen[b.ID] = true
			per[vic.seg] = append(per[vic.seg], move{vb: b.ID, e: e, sum: b.SummaryEntry})
			if s, _ := v.geo.SegmentOf(e.Addr); s == vic.seg {
				live += int64(e.Len)
			}
		}
		u, err := v.sut.Get(vic.seg)
		if err != nil {
			return nil, nil, nil, v.fail(err)
		}
		if live != int64(u.Live) {
			census = append(census, vic.seg)
		}
	}
	if len(census) > 0 {
		v.clean.censuses++
		// Some live block of these victims lies in a unit that began in
		// another segment, or the summaries are damaged: ask the DAT.
		in := map[uint32]bool{}
		kinds := map[uint64]segment.SummaryEntry{}
		for _, s := range census {
			in[s] = true
			for _, m := range per[s] {
				kinds[m.vb] = m.sum
			}
			per[s] = nil
		}
		err := v.blocks.PlacedIn(func(s uint32) bool { return in[s] }, func(vb uint64, e cow.Entry) {
			s, _ := v.geo.SegmentOf(e.Addr)
			sum, ok := kinds[vb]
			if !ok {
				sum = segment.SummaryEntry{Kind: segment.SumData, ID: vb, Flags: uint8(e.Flags & cow.FlagLZ4), Len: e.Len, Sum: e.Sum}
			}
			per[s] = append(per[s], move{vb: vb, e: e, sum: sum})
		})
		if err != nil {
			return nil, nil, nil, v.fail(err)
		}
	}
	segs := make([]uint32, len(victims))
	for i, vic := range victims {
		segs[i] = vic.seg
	}
	tables, err := v.tableBlocksIn(segs)
	if err != nil {
		return nil, nil, nil, v.fail(err)
	}
	// Take the victims' blocks in order while their copies fit in the
	// cleaner's segment and the next checkpoint in the log; the last
	// victim may be left partly moved, for the next batch.
	coldRoom := v.log.ColdRoom()
	var moves []move
	var keep []*victim
	var marks []tableBlock
	var bytes int64
	for _, vic := range victims {
		took := 0
		for _, m := range per[vic.seg] {
			b := int64(m.e.Len) + segment.SummarySize
			cost := v.ckptCostWith(0, len(moves)+1) + int64(len(marks)+len(tables[vic.seg]))*int64(v.bs+segment.SummarySize)
			if v.movedBytes(bytes+b) > coldRoom || v.log.Room() < cost {
				break
			}
			bytes += b
			moves = append(moves, m)
			took++
		}
		if took < len(per[vic.seg]) && len(v.log.Free) == 0 {
			// Part of a victim gives nothing back, and with no free
			// segment the rest could not follow until this pass's
			// checkpoint returns some.
			moves = moves[:len(moves)-took]
			break
		}
		if took == 0 && len(per[vic.seg]) > 0 {
			break
		}
		keep = append(keep, vic)
		marks = append(marks, tables[vic.seg]...)
		if took < len(per[vic.seg]) {
			break
		}
	}
	return moves, marks, keep, nil
}

// movedBytes bounds the bytes of the units that hold b bytes of blocks
// and their summary entries: a header and a block of rounding for each.
func (v *Volume) movedBytes(b int64) int64 {
	units := b/int64(v.log.UnitLimit()-uint64(v.bs)) + 1
	return b + units*int64(segment.UnitHeaderSize+v.bs)
}

// readMoves reads every block to move, in runs of blocks next to each
// other, and checks each against the checksum the DAT holds. A block
// that does not match was freed and its place written again since it was
// planned, or is damaged; it is not moved (its data stays nil).
func (v *Volume) readMoves(moves []move) error {
	slices.SortFunc(moves, func(a, b move) int { return cmpU64(a.e.Addr, b.e.Addr) })
	for i := 0; i < len(moves); {
		j := i + 1
		end := moves[i].e.Addr + uint64(moves[i].e.Len)
		for j < len(moves) && moves[j].e.Addr == end && end-moves[i].e.Addr < 1<<20 {
			end += uint64(moves[j].e.Len)
			j++
		}
		run := make([]byte, end-moves[i].e.Addr)
		if _, err := v.dev.ReadAt(run, int64(moves[i].e.Addr)); err != nil {
			return fmt.Errorf("%w: cleaner: reading at byte %d: %v", ErrIO, moves[i].e.Addr, err)
		}
		for k := i; k < j; k++ {
			m := &moves[k]
			off := m.e.Addr - moves[i].e.Addr
			data := run[off : off+uint64(m.e.Len)]
			if segment.Checksum(data) == m.e.Sum {
				m.data = data
			}
		}
		i = j
	}
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// writeMoved writes the blocks read into units of moved blocks from pos
// in the cleaner's segment and sets each block's new address. It returns
// where the next unit goes and the bytes written. It does not sync: the
// DAT entries that name the copies reach the device only with a
// checkpoint, whose flush makes the copies durable first (every write
// before a flush is durable after it).
func (v *Volume) writeMoved(moves []move, pos, volumeID uint64) (uint64, int64, error) {
	seg, _ := v.geo.SegmentOf(pos)
	segEnd := uint64(v.geo.SegmentOffset(seg)) + uint64(v.geo.SegmentSize)
	var written int64
	var u *segment.UnitBuilder
	flush := func() error {
		if u == nil || u.Empty() {
			return nil
		}
		buf, _ := u.Seal(volumeID, 0, 0, journal.NoSeg)
		_, err := v.dev.WriteAt(buf, int64(u.Addr))
		if f, ok := v.dev.(segment.Flusher); ok && err == nil {
			// Written back now, one unit at a time, rather than by the
			// next fsync of an operation, which would wait for all of
			// it. Durable only with the next checkpoint's sync, as
			// before: nothing names these copies until then.
			err = f.FlushRange(int64(u.Addr), int64(len(buf)))
		}
		pos = u.Addr + uint64(len(buf))
		written += int64(len(buf))
		segment.ReleaseUnitBuffer(buf)
		u = nil
		return err
	}
	for i := range moves {
		m := &moves[i]
		if m.data == nil {
			continue
		}
		if u != nil && !u.Fits(len(m.data), 1, 0) {
			if err := flush(); err != nil {
				return pos, written, err
			}
		}
		if u == nil {
			place := segment.UnitPlace{Addr: pos, Split: uint32(segEnd - pos)}
			u = segment.NewUnitBuilder(place, segment.UnitMoved, uint32(v.bs), uint32(v.log.UnitLimit()))
			if !u.Fits(len(m.data), 1, 0) {
				return pos, written, fmt.Errorf("the cleaner's segment %d has no room for a block at byte %d", seg, pos)
			}
		}
		e := m.sum
		e.Flags = uint8(m.e.Flags & cow.FlagLZ4)
		e.Sum = m.e.Sum
		_, m.to = u.AddBlock(e, m.data)
	}
	if err := flush(); err != nil {
		return pos, written, err
	}
	v.cleanStage("written")
	return pos, written, nil
}

// cleanerLoop is the background cleaner: it cleans while fewer than the low
// watermark of segments are free, and when the volume has been idle for
// a while and fewer than the high watermark are, up to the high one,
// pausing between batches. It ends when the volume closes or stops.
func (v *Volume) cleanerLoop() {
	c := &v.clean
	defer close(c.done)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var events uint64
	changed := time.Now()
	found := true // the last pass found something to do
	for {
		// After a pass that found nothing, only time can change that
		// quickly enough to look again: kicks come with every commit.
		kick := c.kick
		if !found {
			kick = nil
		}
		select {
		case <-kick:
		case <-tick.C:
		case <-c.stop:
			return
		}
		v.mu.Lock()
		if v.stopping || v.closed || v.err != nil {
			v.mu.Unlock()
			return
		}
		if v.ckpter.events != events {
			events, changed = v.ckpter.events, time.Now()
		}
		free := len(v.log.Free)
		idle := time.Since(changed) >= cleanIdleAfter
		off, low, high, pace := c.off, c.low, c.high, c.pace // SetCleaner changes them
		v.mu.Unlock()
		if off || free >= high || free >= low && !idle {
			continue
		}
		more := func(n int) bool {
			v.mu.Lock()
			defer v.mu.Unlock()
			return len(v.log.Free)+n < c.high && !v.stopping
		}
		r, err := v.cleanPass(more, cleanCeiling, pace, nil)
		if err != nil {
			v.logf("cleaner: %v", err)
		}
		found = r.Segments > 0 || r.BytesMoved > 0
	}
}

// stopCleaner ends the background cleaner and waits for a pass in
// progress (its checkpoint included). v.stopping is set.
func (v *Volume) stopCleaner() {
	if v.clean.started {
		close(v.clean.stop)
		<-v.clean.done
	}
	v.clean.mu.Lock()
	v.clean.mu.Unlock()
}

// cleanForSpace runs one batch for a transaction that does not fit, and
// the checkpoint that gives its victims back, and reports whether it
// emptied a segment. Lock held; released meanwhile.
func (v *Volume) cleanForSpace() (bool, error) {
	v.mu.Unlock()
	// Until the segments emptied would make up the reserve and two more,
	// at least one: each pass takes a checkpoint, and a pass that empties
	// little may spend on it, and on a new segment for the copies, all it
	// gives back.
	more := func(n int) bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		return n == 0 || len(v.log.Free)+n < v.log.Reserve+2
	}
	// Greedy, whatever the volume's policy: a writer waits for space
	// now, and the emptiest segments give the most of it for the least
	// copying (a policy that favours old data may take nearly full
	// segments and give back too little to keep up).
	greedy, _ := cleaner.ByName(cleaner.Greedy)
	r, err := v.cleanPass(more, cleanCeiling, 0, greedy)
	v.mu.Lock()
	return r.Segments > 0, err
}
