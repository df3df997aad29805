// Package journal is the log of a txfs volume: the redo records of atomic
// operations, and the Log that packs them into units and puts the units on
// the device (log.go).
//
// Every POSIX operation becomes a short sequence of records; the records
// of the operations packed into one log unit form its record section,
// which the segment package stores LZ4-compressed. Replay applies the
// records of every whole unit after the checkpoint, in order.
//
// The Log owns the log head (the unit being built, its segment and the
// next one), the sequence numbers and hash chain of the units, the sealed
// units waiting for the device, the writer goroutine that writes them
// (group commit) and flushes for those who wait, and the free segments
// the log may enter; recovery follows the chain of units with it
// (chain.go). It decides nothing about what goes in a unit, nor
// when to checkpoint or what to free: its owner does, under the lock the
// Log shares with it.
//
// Record encoding (one type byte, then fields; uvarint and zigzag varint as
// in encoding/binary; keys are the 17-byte metadata tree keys):
//
//	Put    0x01 key(17) uvarint(len) value   insert or replace a tree item
//	Del    0x02 key(17)                      delete a tree item
//	Alloc  0x03 uvarint(V)                   virtual block V allocated, 1 reference
//	Write  0x04 uvarint(V)                   V's content is the next block of the unit's
//	                                         summary (blocks are consumed in order)
//	Ref    0x05 uvarint(V) varint(delta)     V's reference count changes; freed at 0
//	Op     0x06 uvarint(opcode)              start of one operation (for readers and tools)
//	Mark   0x07 uvarint(seq)                 every unit up to seq was durable when this unit
//	                                         was sealed (the last record of operations and
//	                                         checkpoint-block units; replay ignores it)
//
// These constants are part of the on-disk format: never renumber them.
package journal

import (
	"encoding/binary"
	"fmt"

	"github.com/txfs/txfs/internal/corrupt"
)

// Record types.
const (
	RecPut   = 0x01
	RecDel   = 0x02
	RecAlloc = 0x03
	RecWrite = 0x04
	RecRef   = 0x05
	RecOp    = 0x06
	RecMark  = 0x07
)

// KeySize is the size of a tree key in a record.
const KeySize = 17

// ErrCorrupt reports a record section that does not decode.
var ErrCorrupt = corrupt.Kind("journal: corrupt record")

// Record is one decoded record. Fields not used by its type are zero.
type Record struct {
	Type  uint8
	Key   [KeySize]byte
	Value []byte // aliases the decoded buffer
	V     uint64
	Delta int64
	Op    uint64
}

// Writer appends records to a buffer.
type Writer struct{ Buf []byte }

// Reset empties the buffer.
func (w *Writer) Reset() { w.Buf = w.Buf[:0] }

// Len is the number of bytes written.
func (w *Writer) Len() int { return len(w.Buf) }

// Put records an insert or replace.
func (w *Writer) Put(key []byte, val []byte) {
	w.Buf = append(w.Buf, RecPut)
	w.Buf = append(w.Buf, key[:KeySize]...)
	w.Buf = binary.AppendUvarint(w.Buf, uint64(len(val)))
	w.Buf = append(w.Buf, val...)
}

// Del records a delete.
func (w *Writer) Del(key []byte) {
	w.Buf = append(w.Buf, RecDel)
	w.Buf = append(w.Buf, key[:KeySize]...)
}

// Alloc records the allocation of virtual block v.
func (w *Writer) Alloc(v uint64) {
	w.Buf = append(w.Buf, RecAlloc)
	w.Buf = binary.AppendUvarint(w.Buf, v)
}

// Write records that v's content is the next block of the unit's summary.
func (w *Writer) Write(v uint64) {
	w.Buf = append(w.Buf, RecWrite)
	w.Buf = binary.AppendUvarint(w.Buf, v)
}

// Ref records a reference count change.
func (w *Writer) Ref(v uint64, delta int64) {
	w.Buf = append(w.Buf, RecRef)
	w.Buf = binary.AppendUvarint(w.Buf, v)
	w.Buf = binary.AppendVarint(w.Buf, delta)
}

// Op marks the start of an operation.
func (w *Writer) Op(code uint64) {
	w.Buf = append(w.Buf, RecOp)
	w.Buf = binary.AppendUvarint(w.Buf, code)
}

// Mark records that every unit up to seq was durable: a unit that carries
// it proves that those units were once whole on the device, so recovery can
// tell damage from a torn tail.
func (w *Writer) Mark(seq uint64) {
	w.Buf = append(w.Buf, RecMark)
	w.Buf = binary.AppendUvarint(w.Buf, seq)
}

// MarkSize bounds the size of a Mark record.
const MarkSize = 1 + binary.MaxVarintLen64

// Decode calls fn for every record in b, in order. It stops at the first
// error of fn, or with ErrCorrupt at bytes that do not decode.
func Decode(b []byte, fn func(r *Record) error) error {
	var r Record
	for off := 0; off < len(b); {
		r = Record{Type: b[off]}
		start := off
		off++
		var err error
		uv := func() uint64 {
			if err != nil {
				return 0
			}
			v, n := binary.Uvarint(b[off:])
			if n <= 0 {
				err = fmt.Errorf("%w: bad varint at byte %d", ErrCorrupt, off)
				return 0
			}
			off += n
			return v
		}
		key := func() {
			if off+KeySize > len(b) {
				err = fmt.Errorf("%w: short key at byte %d", ErrCorrupt, off)
				return
			}
			copy(r.Key[:], b[off:off+KeySize])
			off += KeySize
		}
		switch r.Type {
		case RecPut:
			key()
			n := uv()
			if err == nil && (n > uint64(len(b)-off)) {
				err = fmt.Errorf("%w: value of %d bytes at byte %d overruns", ErrCorrupt, n, off)
			}
			if err == nil {
				r.Value = b[off : off+int(n)]
				off += int(n)
			}
		case RecDel:
			key()
		case RecAlloc:
			r.V = uv()
		case RecWrite:
			r.V = uv()
		case RecRef:
			r.V = uv()
			if err == nil {
				d, n := binary.Varint(b[off:])
				if n <= 0 {
					err = fmt.Errorf("%w: bad varint at byte %d", ErrCorrupt, off)
				}
				r.Delta = d
				off += max(n, 0)
			}
		case RecOp:
			r.Op = uv()
		case RecMark:
			r.V = uv()
		default:
			err = fmt.Errorf("%w: unknown record type %#x at byte %d", ErrCorrupt, r.Type, start)
		}
		if err != nil {
			return err
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}
