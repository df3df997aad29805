package cleaner

import (
	"github.com/txfs/txfs/segment"
)

// Block is a block that a unit's summary places at Addr.
type Block struct {
	segment.SummaryEntry
	Addr uint64
}

// Scanner finds the units of a segment and the blocks their summaries
// name, to learn what a segment may still hold without the metadata tree.
// What it finds is a list of candidates only: a unit may be stale (left by
// an earlier use of the segment), and a block is live only if the DAT
// still places it at that address with that checksum.
type Scanner struct {
	Geo      segment.Geometry
	VolumeID uint64
	// Read reads device bytes: the part of a unit that lies in the next
	// segment.
	Read func(buf []byte, addr uint64) error
}

// Segment lists the blocks in segment s of the units that start in it,
// given its bytes seg. It looks for a unit at every block boundary, and
// goes on after the end of each whole unit it decodes. first is the
// offset of the first unit found (the segment's size if none): the bytes
// before it are the end of a unit begun in another segment, whose blocks
// a scan of s alone cannot name (UnitAt can, given where it starts).
func (sc Scanner) Segment(s uint32, seg []byte) (blocks []Block, first uint32) {
	size := sc.Geo.SegmentSize
	bs := sc.Geo.BlockSize
	first = size
	for off := uint32(0); off+segment.UnitHeaderSize <= size && off+segment.UnitHeaderSize <= uint32(len(seg)); {
		u := sc.decodeAt(s, off, seg)
		if u == nil {
			off += bs
			continue
		}
		first = min(first, off)
		blocks = append(blocks, inSegment(sc.Geo, s, u)...)
		if u.Header.Length >= size-off {
			break // it goes on into the next segment
		}
		off += u.Header.Length
	}
	return blocks, first
}

// UnitAt decodes the unit that starts at addr (in another segment) and
// lists its blocks that lie in segment s.
func (sc Scanner) UnitAt(addr uint64, s uint32) ([]Block, error) {
	from, ok := sc.Geo.SegmentOf(addr)
	if !ok {
		return nil, nil
	}
	start := uint64(sc.Geo.SegmentOffset(from))
	seg := make([]byte, uint64(sc.Geo.SegmentSize)-(addr-start))
	if err := sc.Read(seg, addr); err != nil {
		return nil, err
	}
	// decodeAt wants the segment's bytes from its start: give it a view
	// whose offset 0 is the segment's start.
	off := uint32(addr - start)
	full := make([]byte, off, uint64(off)+uint64(len(seg)))
	full = append(full, seg...)
	u := sc.decodeAt(from, off, full)
	if u == nil {
		return nil, nil
	}
	return inSegment(sc.Geo, s, u), nil
}

// decodeAt decodes the unit of this volume at offset off of segment s,
// whose bytes are seg, reading its rest from the next segment when it
// goes on there. nil if there is none.
func (sc Scanner) decodeAt(s uint32, off uint32, seg []byte) *segment.Unit {
	size := sc.Geo.SegmentSize
	split := size - off
	maxLen := split + size
	h, err := segment.ParseUnitHeader(seg[off:], maxLen)
	if err != nil || h.VolumeID != sc.VolumeID {
		return nil
	}
	place := segment.UnitPlace{Addr: uint64(sc.Geo.SegmentOffset(s)) + uint64(off), Split: split}
	buf := seg[off:min(uint32(len(seg)), size)]
	if h.Length > split {
		if uint32(len(buf)) < split || h.NextSeg >= sc.Geo.Segments || h.NextSeg == s || sc.Read == nil {
			return nil
		}
		place.Next = uint64(sc.Geo.SegmentOffset(h.NextSeg))
		whole := make([]byte, h.Length)
		copy(whole, buf[:split])
		if err := sc.Read(whole[split:], place.Next); err != nil {
			return nil
		}
		buf = whole
	} else if uint32(len(buf)) < h.Length {
		return nil
	}
	u, err := segment.DecodeUnit(buf[:h.Length], place, maxLen)
	if err != nil {
		return nil
	}
	return u
}

// inSegment lists u's blocks (not padding) that lie in segment s.
func inSegment(geo segment.Geometry, s uint32, u *segment.Unit) []Block {
	var out []Block
	for i, e := range u.Summary {
		if e.Kind == segment.SumPad {
			continue
		}
		addr := u.BlockAddr(i)
		if seg, ok := geo.SegmentOf(addr); ok && seg == s {
			out = append(out, Block{SummaryEntry: e, Addr: addr})
		}
	}
	return out
}
