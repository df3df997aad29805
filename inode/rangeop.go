package inode

import (
	"encoding/binary"
	"fmt"
)

// Kinds of range operation, as the range item records them
// (docs/FORMAT.md, "Range operation").
const (
	RangeFree     = 1 // free the whole blocks [First, First+Count)
	RangeCollapse = 2 // free them, then move every block after them Count blocks down
	RangeInsert   = 3 // move every block at or after First Count blocks up
)

// RangeOpSize is the encoded size of a range item's value.
const RangeOpSize = 25

// RangeOp is what a range operation still has to do, the value of
// RangeKey (25 bytes, little-endian; docs/FORMAT.md, "Range operation"):
//
//	0 1 kind  1 8 first block  9 8 count of blocks  17 8 cursor
//
// The cursor says how far it got. RangeFree: the next block to free.
// RangeCollapse: below First+Count, the next block to free; from there
// on, the next block to move down. RangeInsert: the blocks at and above
// it have moved up; the next to move is the highest below it.
type RangeOp struct {
	Kind         uint8
	First, Count uint64
	Cursor       uint64
}

// Encode returns the RangeOpSize bytes of o.
func (o RangeOp) Encode() []byte {
	b := make([]byte, RangeOpSize)
	b[0] = o.Kind
	binary.LittleEndian.PutUint64(b[1:], o.First)
	binary.LittleEndian.PutUint64(b[9:], o.Count)
	binary.LittleEndian.PutUint64(b[17:], o.Cursor)
	return b
}

// DecodeRangeOp decodes a range item. A value of the wrong size, an
// unknown kind, an empty range or one past the last block is ErrCorrupt.
func DecodeRangeOp(b []byte) (RangeOp, error) {
	le := binary.LittleEndian
	if len(b) != RangeOpSize {
		return RangeOp{}, fmt.Errorf("%w: range item of %d bytes", ErrCorrupt, len(b))
	}
	if b[0] < RangeFree || b[0] > RangeInsert {
		return RangeOp{}, fmt.Errorf("%w: range item of kind %d", ErrCorrupt, b[0])
	}
	o := RangeOp{Kind: b[0], First: le.Uint64(b[1:]), Count: le.Uint64(b[9:]), Cursor: le.Uint64(b[17:])}
	if o.Count == 0 || o.First+o.Count < o.First {
		return RangeOp{}, fmt.Errorf("%w: range item of blocks [%d, +%d)", ErrCorrupt, o.First, o.Count)
	}
	return o, nil
}
