package cow

import (
	"fmt"
	"strings"

	"github.com/txfs/txfs/internal/invariants"
	"github.com/txfs/txfs/segment"
)

// Blocks is the block accounting of a volume: the DAT, the segment usage
// table and the geometry that ties addresses to segments. Every change of
// a virtual block goes through it (allocate, write, move, add or drop a
// reference), and each one moves the stored bytes it concerns between
// segments in the same step, so that every segment's live bytes are the
// stored lengths of the live DAT entries placed in it, by construction
// (Verify checks it). It also counts the bytes that died.
//
// An error leaves the accounting half changed: the caller must stop
// writing (the volume does, and recovers from its log). Not safe for
// concurrent use.
type Blocks struct {
	dat   *DAT
	usage *segment.Usage
	geo   segment.Geometry
	dead  int64 // stored bytes that died since ResetDeadBytes

	// snapshots will hold the root of the snapshot table: the tree roots
	// that share blocks with the live one. Reserved, not used yet; no
	// checkpoint records it.
	snapshots segment.BlockPtr
}

// NewBlocks puts the DAT and the usage table of one volume under one
// accounting.
func NewBlocks(geo segment.Geometry, dat *DAT, usage *segment.Usage) *Blocks {
	return &Blocks{dat: dat, usage: usage, geo: geo}
}

// DAT is the table, for reading: changes go through Blocks.
func (b *Blocks) DAT() *DAT { return b.dat }

// Usage is the segment usage table, for reading: live bytes and table
// blocks change only through Blocks.
func (b *Blocks) Usage() *segment.Usage { return b.usage }

// DeadBytes is how many stored bytes died (overwritten or freed) since
// ResetDeadBytes. Moves kill nothing.
func (b *Blocks) DeadBytes() int64 { return b.dead }

// ResetDeadBytes starts counting dead bytes again.
func (b *Blocks) ResetDeadBytes() { b.dead = 0 }

// Alloc takes a new virtual block with one reference and no content: it
// stores nothing yet, so no segment changes.
func (b *Blocks) Alloc() (uint64, error) { return b.dat.alloc() }

// AllocExact allocates exactly vb, as the log records it (replay).
func (b *Blocks) AllocExact(vb uint64) error { return b.dat.allocExact(vb) }

// Write records that vb's content is now stored at addr: its old stored
// bytes, if any, die in their segment and the new ones live in addr's.
func (b *Blocks) Write(vb, addr uint64, length uint32, flags uint16, sum uint64) error {
	old, err := b.dat.setLoc(vb, addr, length, flags, sum)
	if err != nil {
		return err
	}
	if old.Addr != 0 {
		if err := b.addLive(old.Addr, -int64(old.Len)); err != nil {
			return err
		}
	}
	return b.addLive(addr, int64(length))
}

// Ref changes vb's reference count by delta; at zero vb is freed and its
// stored bytes die.
func (b *Blocks) Ref(vb uint64, delta int64) error {
	old, freed, err := b.dat.addRef(vb, delta)
	if err != nil {
		return err
	}
	if freed && old.Addr != 0 {
		return b.addLive(old.Addr, -int64(old.Len))
	}
	return nil
}

// Path says how a block was reached from the root of the tree about to
// change it.
type Path uint8

const (
	// OwnPath: every tree node on the way to the block belongs to this
	// tree alone.
	OwnPath Path = iota
	// SharedPath: some node on the way is shared with another tree (a
	// snapshot). References are counted lazily (Rodeh 2008): sharing a
	// node adds a reference to it, not to everything below it, so a
	// block under a shared node is shared whatever its own count says.
	SharedPath
)

// MustCopy reports whether vb is shared, so that new content for it must
// go to a new virtual block and vb keep its own: vb has more than one
// reference, or the path to it is shared.
func (b *Blocks) MustCopy(vb uint64, path Path) (bool, error) {
	e, err := b.dat.Live(vb)
	if err != nil {
		return false, err
	}
	return e.Refs > 1 || path == SharedPath, nil
}

// Move relocates vb's stored bytes, copied unchanged (length, flags and
// checksum stay), from oldAddr to newAddr, if its DAT entry still says
// they are at oldAddr with checksum oldSum: a cleaner copies a block and
// then moves it, and the block may have been rewritten or freed in
// between, when the copy is garbage. It reports whether vb moved; its
// live bytes leave oldAddr's segment for newAddr's, and none die.
func (b *Blocks) Move(vb, oldAddr, oldSum, newAddr uint64) (bool, error) {
	e, err := b.dat.Get(vb)
	if err != nil {
		return false, err
	}
	if e.Free() || e.Addr == 0 || e.Addr != oldAddr || e.Sum != oldSum {
		return false, nil
	}
	from, err := b.segmentOf(oldAddr)
	if err != nil {
		return false, err
	}
	to, err := b.segmentOf(newAddr)
	if err != nil {
		return false, err
	}
	if _, err := b.dat.setLoc(vb, newAddr, e.Len, e.Flags, e.Sum); err != nil {
		return false, err
	}
	if err := b.usage.Add(from, -int64(e.Len), 0); err != nil {
		return false, err
	}
	return true, b.usage.Add(to, int64(e.Len), 0)
}

func (b *Blocks) segmentOf(addr uint64) (uint32, error) {
	s, ok := b.geo.SegmentOf(addr)
	if !ok {
		return 0, fmt.Errorf("address %d is outside the segments", addr)
	}
	return s, nil
}

func (b *Blocks) addLive(addr uint64, delta int64) error {
	s, err := b.segmentOf(addr)
	if err != nil {
		return err
	}
	if err := b.usage.Add(s, delta, 0); err != nil {
		return err
	}
	if delta < 0 {
		b.dead -= delta
	}
	return nil
}

// Flush writes the dirty blocks of the DAT through putDAT, counting each
// in the segment it goes to (and no longer in the one it left), then the
// dirty blocks of the usage table through putUsage, which counts nothing
// (counting them would change the table while it is written). The usage
// table goes last: writing the DAT changes it.
func (b *Blocks) Flush(putDAT, putUsage segment.TablePut) error {
	err := b.dat.Flush(func(level int, index uint64, old segment.BlockPtr, raw []byte) (segment.BlockPtr, error) {
		p, err := putDAT(level, index, old, raw)
		if err != nil {
			return p, err
		}
		if old.Addr != 0 {
			s, _ := b.geo.SegmentOf(old.Addr)
			if err := b.usage.Add(s, 0, -1); err != nil {
				return p, err
			}
		}
		s, _ := b.geo.SegmentOf(p.Addr)
		return p, b.usage.Add(s, 0, 1)
	})
	if err != nil {
		return err
	}
	if invariants.Enabled {
		// Every checkpoint: the usage table it writes must agree with
		// the DAT it writes.
		if err := b.Verify(nil); err != nil {
			return fmt.Errorf("invariant broken before a checkpoint: %w", err)
		}
	}
	return b.usage.Flush(putUsage)
}

// census reports every 4096th entry it has counted to progress.
const censusStep = 4096

// LiveBySegment counts, for every segment, the stored bytes of the live,
// written DAT entries placed in it: what its live bytes must be. outside
// (nil: ignored) hears of each entry placed outside the segments,
// progress (nil: ignored) of every 4096th entry counted.
func (b *Blocks) LiveBySegment(progress func(vb uint64), outside func(vb, addr uint64)) ([]int64, error) {
	live := make([]int64, b.geo.Segments)
	for vb := uint64(1); vb < b.dat.Count(); vb++ {
		if vb%censusStep == 0 && progress != nil {
			progress(vb)
		}
		e, err := b.dat.Get(vb)
		if err != nil {
			return live, err
		}
		if e.Free() || e.Addr == 0 {
			continue
		}
		s, ok := b.geo.SegmentOf(e.Addr)
		if !ok {
			if outside != nil {
				outside(vb, e.Addr)
			}
			continue
		}
		live[s] += int64(e.Len)
	}
	return live, nil
}

// TablesBySegment counts, for every segment, the DAT table blocks written
// in it: what its table block count must be. outside (nil: ignored) hears
// of each table block outside the segments.
func (b *Blocks) TablesBySegment(outside func(level int, index uint64, addr uint64)) ([]int64, error) {
	tables := make([]int64, b.geo.Segments)
	err := b.dat.Walk(func(level int, index uint64, p segment.BlockPtr) error {
		if s, ok := b.geo.SegmentOf(p.Addr); ok {
			tables[s]++
		} else if outside != nil {
			outside(level, index, p.Addr)
		}
		return nil
	})
	return tables, err
}

// Mismatches compares the usage of segments segs (nil: all) with live and
// tables as LiveBySegment and TablesBySegment counted them, and describes
// each segment that differs.
func (b *Blocks) Mismatches(segs []uint32, live, tables []int64) ([]string, error) {
	if segs == nil {
		for s := range b.geo.Segments {
			segs = append(segs, s)
		}
	}
	var bad []string
	for _, s := range segs {
		e, err := b.usage.Get(s)
		if err != nil {
			return bad, fmt.Errorf("usage of segment %d: %w", s, err)
		}
		if int64(e.Live) != live[s] || int64(e.Tables) != tables[s] {
			bad = append(bad, fmt.Sprintf("segment %d usage says %d live bytes and %d table blocks, has %d and %d", s, e.Live, e.Tables, live[s], tables[s]))
		}
	}
	return bad, nil
}

// census is what the DAT says each segment holds.
func (b *Blocks) census() (live, tables []int64, err error) {
	if live, err = b.LiveBySegment(nil, nil); err == nil {
		tables, err = b.TablesBySegment(nil)
	}
	return live, tables, err
}

// Verify checks the invariant of the accounting for segments segs (nil:
// all): each one's usage is what the DAT says it holds.
func (b *Blocks) Verify(segs []uint32) error {
	live, tables, err := b.census()
	if err != nil {
		return err
	}
	bad, err := b.Mismatches(segs, live, tables)
	if err == nil && len(bad) > 0 {
		err = fmt.Errorf("%w: %s", ErrCorrupt, strings.Join(bad, "; "))
	}
	return err
}

// Repair makes the accounting agree with the references that exist,
// trusting them over the counts and the DAT over the usage table: every
// allocated block's reference count becomes want(vb) (at zero the block
// is freed), then every segment's usage what the DAT says it holds. note
// hears of each change.
func (b *Blocks) Repair(want func(vb uint64) uint32, note func(string)) error {
	for vb := uint64(1); vb < b.dat.Count(); vb++ {
		e, err := b.dat.Get(vb)
		if err != nil {
			return err
		}
		n := want(vb)
		if e.Free() || (e.Refs == n && n != 0) {
			continue
		}
		// The usage is recounted below: it may be what is wrong.
		if _, _, err := b.dat.addRef(vb, int64(n)-int64(e.Refs)); err != nil {
			return err
		}
		if n == 0 {
			note(fmt.Sprintf("virtual block %d had %d references and none exist: freed", vb, e.Refs))
		} else {
			note(fmt.Sprintf("virtual block %d: reference count %d set to %d", vb, e.Refs, n))
		}
	}
	live, tables, err := b.census()
	if err != nil {
		return err
	}
	for s := uint32(0); s < b.geo.Segments; s++ {
		e, err := b.usage.Get(s)
		if err != nil {
			return err
		}
		if int64(e.Live) == live[s] && int64(e.Tables) == tables[s] {
			continue
		}
		note(fmt.Sprintf("segment %d usage: %d live bytes and %d table blocks set to %d and %d", s, e.Live, e.Tables, live[s], tables[s]))
		e.Live, e.Tables = uint32(live[s]), uint32(tables[s])
		if err := b.usage.Set(s, e); err != nil {
			return err
		}
	}
	return nil
}

// PlacedIn calls fn for every live, written block that the DAT places in
// a segment for which in is true: the cleaner's census of its victims
// when their summaries do not name every live block.
func (b *Blocks) PlacedIn(in func(s uint32) bool, fn func(vb uint64, e Entry)) error {
	for vb := uint64(1); vb < b.dat.Count(); vb++ {
		e, err := b.dat.Get(vb)
		if err != nil {
			return err
		}
		if e.Free() || e.Addr == 0 {
			continue
		}
		if s, ok := b.geo.SegmentOf(e.Addr); ok && in(s) {
			fn(vb, e)
		}
	}
	return nil
}
