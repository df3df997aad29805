package journal

import (
	"fmt"

	"github.com/txfs/txfs/segment"
)

// The chain of units, as recovery follows it from the checkpoint: every
// unit names the unit before it (sequence number and checksum) and the
// segment the log goes on in, and the next unit lies right after it, in
// that next segment once a unit reaches there. While recovery follows the
// chain, the head (CurSeg and NextSeg) is where the walk is; at its end,
// it is where the log goes on.

// Follow notes that the log passed through unit u and returns where the
// unit after it must be: right after it, which is in the next segment when
// u reached there.
func (l *Log) Follow(u *segment.Unit, used map[uint32]bool) (pos, seq, prev uint64) {
	// Units name no next segment (NoSeg) until one is free, then keep
	// naming the one chosen: anything else is damage, reported; the
	// latest valid name is the one the log used.
	n, was := u.Header.NextSeg, l.NextSeg
	switch {
	case n == NoSeg:
	case n >= l.cfg.Geo.Segments || n == l.CurSeg:
		l.cfg.Warn("unit %d at byte %d names segment %d as the next, which is %s", u.Header.Seq, u.Addr, n,
			map[bool]string{true: "its own", false: "not a segment"}[n == l.CurSeg])
	case was != NoSeg && n != was:
		l.cfg.Warn("the units of segment %d name both segment %d and segment %d as the next", l.CurSeg, was, n)
		l.NextSeg = n
	default:
		l.NextSeg = n
	}
	used[l.CurSeg] = true
	if l.NextSeg != NoSeg {
		used[l.NextSeg] = true
	}
	if u.Header.Length >= u.Place.Split && l.NextSeg != NoSeg {
		l.CurSeg, l.NextSeg = l.NextSeg, NoSeg
	}
	return u.Place.DevAddr(u.Header.Length), u.Header.Seq + 1, u.Header.Sum
}

// ReadUnit reads and verifies the unit at addr; n is its length if known.
// A unit longer than the rest of its segment continues at the start of the
// segment its header names as next.
func (l *Log) ReadUnit(addr uint64, n uint32) (*segment.Unit, error) {
	s, ok := l.cfg.Geo.SegmentOf(addr)
	if !ok {
		return nil, fmt.Errorf("address %d outside the segments", addr)
	}
	split := uint32(l.SegEnd(s) - addr)
	hdr := make([]byte, segment.UnitHeaderSize)
	if _, err := l.cfg.Dev.ReadAt(hdr, int64(addr)); err != nil {
		return nil, err
	}
	maxLen := split + l.cfg.Geo.SegmentSize
	h, err := segment.ParseUnitHeader(hdr, maxLen)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		n = h.Length
	}
	if n > maxLen {
		return nil, fmt.Errorf("%w: a unit of %d bytes at %d would run past the segment after its own", segment.ErrCorrupt, n, addr)
	}
	place := segment.UnitPlace{Addr: addr, Split: split}
	if h.NextSeg < l.cfg.Geo.Segments && h.NextSeg != s {
		place.Next = uint64(l.cfg.Geo.SegmentOffset(h.NextSeg))
	} else if n > split {
		return nil, fmt.Errorf("%w: unit at %d runs past its segment to segment %d", segment.ErrCorrupt, addr, h.NextSeg)
	}
	buf := make([]byte, n)
	for _, p := range place.Pieces(n) {
		if _, err := l.cfg.Dev.ReadAt(buf[p.Start:p.End], int64(p.Addr)); err != nil {
			return nil, err
		}
	}
	return segment.DecodeUnit(buf, place, maxLen)
}

// NextUnit finds the unit that continues the chain: at pos, or else at the
// start of the next segment (where version 1 logs went on when the rest of
// a segment was too small). Anything else ends the log.
func (l *Log) NextUnit(pos, seq, prev uint64) *segment.Unit {
	try := func(at uint64) *segment.Unit {
		if _, ok := l.cfg.Geo.SegmentOf(at); !ok {
			return nil
		}
		u, err := l.ReadUnit(at, 0)
		if err != nil || u.Header.VolumeID != l.cfg.VolumeID || u.Header.Seq != seq || u.Header.Prev != prev {
			return nil
		}
		return u
	}
	if pos+segment.UnitHeaderSize <= l.SegEnd(l.CurSeg) {
		if u := try(pos); u != nil {
			return u
		}
	}
	if l.NextSeg != NoSeg {
		if u := try(uint64(l.cfg.Geo.SegmentOffset(l.NextSeg))); u != nil {
			// The log entered its next segment: that segment's units
			// name their own next.
			l.CurSeg, l.NextSeg = l.NextSeg, NoSeg
			return u
		}
	}
	return nil
}
