// Package cow owns block accounting. It holds the virtual block table
// (DAT) that every tree points through: virtual block -> physical place,
// stored length, flags, checksum and reference count. Moving a block (the
// cleaner) changes one DAT entry; sharing a block (snapshots, clones)
// changes its reference count.
//
// Blocks puts the DAT and the segment usage table under one accounting:
// every allocation, write, move and reference change goes through it and
// moves the stored bytes between segments in the same step, so each
// segment's live bytes are what the DAT places there by construction. It
// alone answers whether a block must be copied before it is written
// (MustCopy), and moves a block only if nothing rewrote or freed it since
// it was copied (Move).
//
// DAT entry (32 bytes, little-endian), entry V of the DAT table:
//
//	 0 8 address of the stored block (0: allocated, not written yet)
//	     when free: next free virtual block (0: none)
//	 8 4 stored length
//	12 2 flags: bit 0 LZ4 (segment.BlockLZ4), bit 15 free
//	14 2 reserved
//	16 8 xxhash64 of the stored bytes; when free: previous free virtual block
//	24 4 reference count
//	28 4 reserved
//
// Virtual block 0 is never allocated. Free entries form a doubly linked
// list so that replay can allocate exactly the block the log names. These
// constants are part of the on-disk format.
package cow

import (
	"encoding/binary"
	"fmt"

	"github.com/txfs/txfs/internal/corrupt"
	"github.com/txfs/txfs/segment"
)

// EntrySize is the size of one DAT entry.
const EntrySize = 32

// Entry flags.
const (
	FlagLZ4  = segment.BlockLZ4
	FlagFree = 1 << 15
)

// Errors of the DAT.
var (
	// ErrCorrupt reports a DAT state that cannot be right: a reference to
	// a free or unknown block, a broken free list.
	ErrCorrupt = corrupt.Kind("cow: corrupt virtual block table")
)

// Entry is one decoded DAT entry.
type Entry struct {
	Addr  uint64
	Len   uint32
	Flags uint16
	Sum   uint64
	Refs  uint32
}

// Free reports whether the entry is on the free list.
func (e Entry) Free() bool { return e.Flags&FlagFree != 0 }

func (e Entry) encode(b []byte) {
	le := binary.LittleEndian
	clear(b[:EntrySize])
	le.PutUint64(b[0:], e.Addr)
	le.PutUint32(b[8:], e.Len)
	le.PutUint16(b[12:], e.Flags)
	le.PutUint64(b[16:], e.Sum)
	le.PutUint32(b[24:], e.Refs)
}

func decodeEntry(b []byte) Entry {
	le := binary.LittleEndian
	return Entry{Addr: le.Uint64(b[0:]), Len: le.Uint32(b[8:]), Flags: le.Uint16(b[12:]), Sum: le.Uint64(b[16:]), Refs: le.Uint32(b[24:])}
}

// State is what a checkpoint records of the DAT.
type State struct {
	Count     uint64 // entries [0, Count) exist
	FreeHead  uint64 // first free virtual block, 0 if none
	FreeCount uint64
	Root      segment.BlockPtr
	Depth     int
}

// DAT is the virtual block table. Not safe for concurrent use.
type DAT struct {
	t      *segment.Table
	st     State
	entry  [EntrySize]byte
	cursor uint64 // where alloc looks for a free entry first
}

// Open loads the DAT of a checkpoint, keeping up to cacheBytes of clean
// table blocks in memory.
func Open(st State, blockSize int, read segment.BlockReader, cacheBytes int64) *DAT {
	if st.Count == 0 {
		st.Count = 1 // virtual block 0 is reserved
	}
	return &DAT{t: segment.NewTable(segment.TableDAT, blockSize, EntrySize, st.Root, st.Depth, read, cacheBytes), st: st}
}

// State returns the checkpoint view; Root and Depth are valid after Flush.
func (d *DAT) State() State {
	st := d.st
	st.Root, st.Depth = d.t.Root()
	return st
}

// Count is the number of entries (allocated or free) including entry 0.
func (d *DAT) Count() uint64 { return d.st.Count }

// InUse is the number of allocated virtual blocks.
func (d *DAT) InUse() uint64 { return d.st.Count - 1 - d.st.FreeCount }

// Get returns entry v.
func (d *DAT) Get(v uint64) (Entry, error) {
	if v == 0 || v >= d.st.Count {
		return Entry{}, corrupt.Errorf(ErrCorrupt, corrupt.Location{Block: v}, "virtual block %d out of range (count %d)", v, d.st.Count)
	}
	if err := d.t.Get(v, d.entry[:]); err != nil {
		return Entry{}, err
	}
	return decodeEntry(d.entry[:]), nil
}

// Stored reports whether entry v is held by the table (in memory or
// written). Every entry below Count is, once a checkpoint wrote the DAT.
func (d *DAT) Stored(v uint64) (bool, error) { return d.t.Stored(v) }

// Live returns entry v and fails if it is free.
func (d *DAT) Live(v uint64) (Entry, error) {
	e, err := d.Get(v)
	if err == nil && e.Free() {
		err = corrupt.Errorf(ErrCorrupt, corrupt.Location{Block: v}, "virtual block %d is free", v)
	}
	return e, err
}

func (d *DAT) put(v uint64, e Entry) error {
	e.encode(d.entry[:])
	return d.t.Set(v, d.entry[:])
}

// allocScan is how many entries past the cursor alloc looks at for a free
// one before it takes the head of the free list.
const allocScan = 1024

// alloc takes a free virtual block with one reference and no content: the
// first free one after the last allocation, if one is near, so that blocks
// allocated together share their DAT leaves (a checkpoint then writes few
// leaves for much data); else the head of the free list, or a new one at
// the end. Any choice replays: the log names the block allocated.
func (d *DAT) alloc() (uint64, error) {
	v := d.st.Count
	if d.st.FreeCount > 0 {
		v = d.st.FreeHead
		for c := max(d.cursor, 1); c < min(d.st.Count, d.cursor+allocScan); c++ {
			e, err := d.Get(c)
			if err != nil {
				return 0, err
			}
			if e.Free() {
				v = c
				break
			}
		}
	}
	d.cursor = v + 1
	return v, d.allocExact(v)
}

// allocExact allocates exactly v, which must be free or beyond the end.
// Replay uses it to repeat the allocations the log records.
func (d *DAT) allocExact(v uint64) error {
	if v == 0 {
		return fmt.Errorf("%w: allocation of virtual block 0", ErrCorrupt)
	}
	for d.st.Count < v {
		// Entries skipped over become free.
		n := d.st.Count
		d.st.Count++
		if err := d.push(n); err != nil {
			return err
		}
	}
	if v == d.st.Count {
		d.st.Count++
	} else if err := d.unlink(v); err != nil {
		return err
	}
	return d.put(v, Entry{Refs: 1})
}

func (d *DAT) push(v uint64) error {
	head := d.st.FreeHead
	if head != 0 {
		h, err := d.Get(head)
		if err != nil {
			return err
		}
		h.Sum = v
		if err := d.put(head, h); err != nil {
			return err
		}
	}
	d.st.FreeHead = v
	d.st.FreeCount++
	return d.put(v, Entry{Addr: head, Flags: FlagFree})
}

func (d *DAT) unlink(v uint64) error {
	e, err := d.Get(v)
	if err != nil {
		return err
	}
	if !e.Free() {
		return corrupt.Errorf(ErrCorrupt, corrupt.Location{Block: v}, "allocation of virtual block %d, which is in use", v)
	}
	next, prev := e.Addr, e.Sum
	if prev == 0 {
		if d.st.FreeHead != v {
			return corrupt.Errorf(ErrCorrupt, corrupt.Location{Block: v}, "free block %d has no predecessor but is not the head", v)
		}
		d.st.FreeHead = next
	} else {
		p, err := d.Get(prev)
		if err != nil {
			return err
		}
		p.Addr = next
		if err := d.put(prev, p); err != nil {
			return err
		}
	}
	if next != 0 {
		n, err := d.Get(next)
		if err != nil {
			return err
		}
		n.Sum = prev
		if err := d.put(next, n); err != nil {
			return err
		}
	}
	if d.st.FreeCount == 0 {
		return fmt.Errorf("%w: free count underflow", ErrCorrupt)
	}
	d.st.FreeCount--
	return nil
}

// setLoc records where v's content now is and returns the entry as it was,
// so the caller can move the space accounting.
func (d *DAT) setLoc(v, addr uint64, length uint32, flags uint16, sum uint64) (Entry, error) {
	old, err := d.Live(v)
	if err != nil {
		return old, err
	}
	e := old
	e.Addr, e.Len, e.Flags, e.Sum = addr, length, flags&FlagLZ4, sum
	return old, d.put(v, e)
}

// addRef changes v's reference count. When it reaches zero v is freed and
// the entry as it was is returned with freed true.
func (d *DAT) addRef(v uint64, delta int64) (old Entry, freed bool, err error) {
	old, err = d.Live(v)
	if err != nil {
		return old, false, err
	}
	n := int64(old.Refs) + delta
	if n < 0 || n > 1<<32-1 {
		return old, false, corrupt.Errorf(ErrCorrupt, corrupt.Location{Block: v}, "reference count of %d would become %d", v, n)
	}
	if n == 0 {
		return old, true, d.push(v)
	}
	e := old
	e.Refs = uint32(n)
	return old, false, d.put(v, e)
}

// FlushBound is the most blocks the next Flush writes if up to extra more
// entries change first, allocations among them (each may dirty a leaf of
// its own and grow the table by one entry).
func (d *DAT) FlushBound(extra int) int {
	return d.t.FlushBound(extra, d.st.Count+uint64(extra))
}

// DirtyLeaves is the number of leaves the next Flush writes.
func (d *DAT) DirtyLeaves() int { return d.t.DirtyLeaves() }

// BlocksFor is the most blocks writing the leaves of n changed entries
// takes, with the interior nodes above them.
func (d *DAT) BlocksFor(n int) int { return d.t.BlocksFor(n, d.st.Count) }

// Leaves is the number of DAT leaves.
func (d *DAT) Leaves() int { return d.t.Leaves(d.st.Count) }

// DirtyMemory is what the blocks the next Flush writes cost in memory.
func (d *DAT) DirtyMemory() int64 { return d.t.DirtyMemory() }

// CacheCounts is how many lookups of table blocks the cache answered and
// how many read the device.
func (d *DAT) CacheCounts() (hits, misses uint64) { return d.t.CacheCounts() }

// CleanMemory is what the clean cached blocks cost in memory.
func (d *DAT) CleanMemory() int64 { return d.t.CleanMemory() }

// Dirty reports whether the DAT changed since the last Flush.
func (d *DAT) Dirty() bool { return d.t.Dirty() }

// Flush writes the dirty DAT blocks through put.
func (d *DAT) Flush(put segment.TablePut) error { return d.t.Flush(put) }

// MarkDirty makes the next Flush write block (level, index) of the table
// again, at a new place.
func (d *DAT) MarkDirty(level int, index uint64) error { return d.t.MarkDirty(level, index) }

// Walk visits every written block of the DAT table.
func (d *DAT) Walk(fn func(level int, index uint64, p segment.BlockPtr) error) error {
	return d.t.Walk(fn)
}
