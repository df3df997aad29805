package segment

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"
)

// sealedUnit builds a unit of the given kind at byte 8192 holding one
// block of random bytes, sealed with a valid checksum.
func sealedUnit(t *testing.T, kind uint16, seq, prev uint64, next uint32) (buf, block []byte, place UnitPlace) {
	t.Helper()
	place = UnitPlace{Addr: 8192, Split: 1 << 20}
	u := NewUnitBuilder(place, kind, 4096, 1<<20)
	block = make([]byte, 3000)
	rand.New(rand.NewSource(int64(kind))).Read(block)
	u.AddBlock(SummaryEntry{Kind: SumData, ID: 9, Owner: 4, Offset: 2, Sum: Checksum(block)}, block)
	buf, _ = u.Seal(0xabc, seq, prev, next)
	return buf, block, place
}

// Units of kinds 1 to 4 are read; any other kind is corrupt, even with a
// good checksum.
func TestUnitKinds(t *testing.T) {
	for kind := range uint16(8) {
		buf, _, place := sealedUnit(t, kind, 5, 6, 7)
		h, err := ParseUnitHeader(buf, 1<<20)
		_, derr := DecodeUnit(buf, place, 1<<20)
		known := kind >= UnitOps && kind <= UnitMoved
		switch {
		case known && (err != nil || derr != nil || h.Kind != kind):
			t.Errorf("kind %d: header %v (kind %d), unit %v", kind, err, h.Kind, derr)
		case !known && (!errors.Is(err, ErrCorrupt) || !errors.Is(derr, ErrCorrupt)):
			t.Errorf("kind %d: header %v, unit %v; want both corrupt", kind, err, derr)
		}
	}
	for _, kind := range []uint16{0xff, 0x8004, 0xffff} {
		buf, _, _ := sealedUnit(t, kind, 5, 6, 7)
		if _, err := ParseUnitHeader(buf, 1<<20); !errors.Is(err, ErrCorrupt) {
			t.Errorf("kind %#x: %v", kind, err)
		}
	}
}

// A unit of moved blocks, as the cleaner writes it: no sequence number,
// no previous checksum, no next segment, no records.
func TestUnitMovedRoundTrip(t *testing.T) {
	buf, block, place := sealedUnit(t, UnitMoved, 0, 0, noSegment)
	u, err := DecodeUnit(buf, place, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	h := u.Header
	if h.Kind != UnitMoved || h.Seq != 0 || h.Prev != 0 || h.NextSeg != noSegment || h.RecStored != 0 || len(u.Records) != 0 {
		t.Fatalf("header %+v, %d bytes of records", h, len(u.Records))
	}
	if len(u.Summary) != 1 || u.BlockAddr(0) != place.Addr+UnitHeaderSize || !bytes.Equal(u.Block(0), block) {
		t.Fatalf("summary %+v, block at %d", u.Summary, u.BlockAddr(0))
	}
}
