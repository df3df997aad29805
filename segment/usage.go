package segment

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Segment usage table entry (16 bytes, little-endian), entry s for segment s:
//
//	0 4 live bytes: stored bytes of blocks the DAT maps here
//	4 4 table blocks: DAT table blocks (leaves and interior) stored here
//	8 8 sequence number of the newest unit written here (for the cleaner's
//	    age estimate)
//
// Usage table blocks themselves are not counted (counting them would change
// the table while it is written); the segments that hold them are found by
// walking the table. Part of the on-disk format.
const UsageEntrySize = 16

// UsageEntry is one decoded segment usage entry.
type UsageEntry struct {
	Live    uint32
	Tables  uint32
	LastSeq uint64
}

// Usage is the segment usage table. Not safe for concurrent use.
type Usage struct {
	t   *Table
	n   uint32
	buf [UsageEntrySize]byte
}

// OpenUsage loads the usage table of nseg segments. It stays whole in
// memory once read: 16 bytes a segment.
func OpenUsage(nseg uint32, blockSize int, root BlockPtr, depth int, read BlockReader) *Usage {
	return &Usage{t: NewTable(TableSUT, blockSize, UsageEntrySize, root, depth, read, math.MaxInt64), n: nseg}
}

// Get returns the entry of segment s.
func (u *Usage) Get(s uint32) (UsageEntry, error) {
	if s >= u.n {
		return UsageEntry{}, fmt.Errorf("%w: segment %d of %d", ErrCorrupt, s, u.n)
	}
	if err := u.t.Get(uint64(s), u.buf[:]); err != nil {
		return UsageEntry{}, err
	}
	le := binary.LittleEndian
	return UsageEntry{Live: le.Uint32(u.buf[0:]), Tables: le.Uint32(u.buf[4:]), LastSeq: le.Uint64(u.buf[8:])}, nil
}

// Set stores the entry of segment s.
func (u *Usage) Set(s uint32, e UsageEntry) error {
	if s >= u.n {
		return fmt.Errorf("%w: segment %d of %d", ErrCorrupt, s, u.n)
	}
	le := binary.LittleEndian
	le.PutUint32(u.buf[0:], e.Live)
	le.PutUint32(u.buf[4:], e.Tables)
	le.PutUint64(u.buf[8:], e.LastSeq)
	return u.t.Set(uint64(s), u.buf[:])
}

// Add changes the live bytes and table block count of segment s. The
// volume changes them only through cow.Blocks, in step with the DAT.
func (u *Usage) Add(s uint32, live, tables int64) error {
	e, err := u.Get(s)
	if err != nil {
		return err
	}
	nl, nt := int64(e.Live)+live, int64(e.Tables)+tables
	if nl < 0 || nt < 0 || nl > 1<<32-1 {
		return fmt.Errorf("%w: usage of segment %d would become %d bytes, %d table blocks", ErrCorrupt, s, nl, nt)
	}
	e.Live, e.Tables = uint32(nl), uint32(nt)
	return u.Set(s, e)
}

// Touch records that a unit with sequence seq was written to segment s.
func (u *Usage) Touch(s uint32, seq uint64) error {
	e, err := u.Get(s)
	if err != nil {
		return err
	}
	if seq > e.LastSeq {
		e.LastSeq = seq
		return u.Set(s, e)
	}
	return nil
}

// FlushBound is the most blocks the next Flush writes, however many
// entries change before it: every leaf and interior node of the table.
func (u *Usage) FlushBound() int { return u.t.FlushBound(u.t.Leaves(uint64(u.n)), uint64(u.n)) }

// CacheCounts is how many lookups of table blocks the cache answered and
// how many read the device.
func (u *Usage) CacheCounts() (hits, misses uint64) { return u.t.CacheCounts() }

// DirtyMemory is what the blocks the next Flush writes cost in memory.
func (u *Usage) DirtyMemory() int64 { return u.t.DirtyMemory() }

// Root returns the table's root pointer and depth (valid after Flush).
func (u *Usage) Root() (BlockPtr, int) { return u.t.Root() }

// Flush writes the dirty usage blocks.
func (u *Usage) Flush(put TablePut) error { return u.t.Flush(put) }

// MarkDirty makes the next Flush write block (level, index) of the table
// again, at a new place.
func (u *Usage) MarkDirty(level int, index uint64) error { return u.t.MarkDirty(level, index) }

// Walk visits every written block of the usage table.
func (u *Usage) Walk(fn func(level int, index uint64, p BlockPtr) error) error { return u.t.Walk(fn) }
