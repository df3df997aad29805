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

// Segment lists the blocks of the units that start in segment s, given
// its bytes seg: those in s, and those of its last unit that lie at the
// start of the next segment (a scan of that segment cannot see them, so
// the cleaner moves them with s's). It looks for a unit at every block boundary, and
// goes on after the end of each whole unit it decodes. first is the
// offset of the first unit found (the segment's size if none): the bytes
// before it are the end of a unit begun in another segment, whose blocks
// a scan of s alone cannot name.
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
		blocks = append(blocks, blocksOf(sc.Geo, u)...)
		if u.Header.Length >= size-off {
			break // it goes on into the next segment
		}
		off += u.Header.Length
	}
	return blocks, first
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

// blocksOf lists u's blocks (not padding).
func blocksOf(geo segment.Geometry, u *segment.Unit) []Block {
	var out []Block
	for i, e := range u.Summary {
		if e.Kind == segment.SumPad {
			continue
		}
		addr := u.BlockAddr(i)
		if _, ok := geo.SegmentOf(addr); ok {
			out = append(out, Block{SummaryEntry: e, Addr: addr})
		}
	}
	return out
}
