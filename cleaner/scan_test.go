package cleaner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"github.com/txfs/txfs/segment"
)

const testVolume = 0x5eed

// noSeg is a header's "no next segment" (journal.NoSeg).
const noSeg = ^uint32(0)

// scanFixture is a memory device of 8 segments of 64 KiB with units
// written by the real unit builder, and a scanner over it.
type scanFixture struct {
	t     testing.TB
	geo   segment.Geometry
	dev   *segment.MemDevice
	rng   *rand.Rand
	reads []uint64 // addresses the scanner read
}

func newScanFixture(t testing.TB) *scanFixture {
	geo := segment.Geometry{BlockSize: 4096, SegmentSize: 64 << 10, Segments: 8}
	if err := geo.Validate(geo.DeviceBytes()); err != nil {
		t.Fatal(err)
	}
	return &scanFixture{t: t, geo: geo, dev: segment.NewMemDevice(geo.DeviceBytes()), rng: rand.New(rand.NewSource(1))}
}

func (f *scanFixture) scanner() Scanner {
	return Scanner{Geo: f.geo, VolumeID: testVolume, Read: func(buf []byte, addr uint64) error {
		f.reads = append(f.reads, addr)
		_, err := f.dev.ReadAt(buf, int64(addr))
		return err
	}}
}

func (f *scanFixture) segStart(s uint32) uint64 { return uint64(f.geo.SegmentOffset(s)) }

// segment reads the bytes of segment s.
func (f *scanFixture) segment(s uint32) []byte {
	buf := make([]byte, f.geo.SegmentSize)
	if _, err := f.dev.ReadAt(buf, int64(f.segStart(s))); err != nil {
		f.t.Fatal(err)
	}
	return buf
}

// builtUnit is a sealed unit, not yet written, and the blocks a scan
// should list for it (padding left out), in summary order.
type builtUnit struct {
	place segment.UnitPlace
	buf   []byte
	want  []Block
	pads  int // padding entries the builder put in
}

// end is the device address right after the unit.
func (u builtUnit) end() uint64 { return u.place.DevAddr(uint32(len(u.buf))) }

// in lists the unit's blocks that lie in segment s.
func (u builtUnit) in(geo segment.Geometry, s uint32) []Block {
	var out []Block
	for _, b := range u.want {
		if seg, _ := geo.SegmentOf(b.Addr); seg == s {
			out = append(out, b)
		}
	}
	return out
}

// build seals a unit at addr of the given kind for volume vol, naming
// next as its next segment, holding blocks of random bytes of the kinds
// and lengths of entries (their checksums are filled in). A unit of
// operations gets records too. It continues at the start of next if it
// is longer than the rest of its segment.
func (f *scanFixture) build(addr uint64, kind uint16, vol, seq uint64, next uint32, entries ...segment.SummaryEntry) builtUnit {
	f.t.Helper()
	s, ok := f.geo.SegmentOf(addr)
	if !ok {
		f.t.Fatalf("address %d is outside the segments", addr)
	}
	place := segment.UnitPlace{Addr: addr, Split: uint32(f.segStart(s) + uint64(f.geo.SegmentSize) - addr)}
	if next < f.geo.Segments {
		place.Next = f.segStart(next)
	}
	b := segment.NewUnitBuilder(place, kind, f.geo.BlockSize, f.geo.SegmentSize)
	u := builtUnit{place: place}
	for _, e := range entries {
		data := make([]byte, e.Len)
		f.rng.Read(data)
		e.Sum = segment.Checksum(data)
		if !b.Fits(len(data), 1, 0) {
			f.t.Fatalf("a block of %d bytes does not fit in the unit at %d", len(data), addr)
		}
		before := b.NumBlocks()
		i, a := b.AddBlock(e, data)
		u.pads += i - before
		u.want = append(u.want, Block{SummaryEntry: e, Addr: a})
	}
	if kind == segment.UnitOps {
		rec := make([]byte, 300)
		f.rng.Read(rec)
		b.AppendRecords(rec)
	}
	u.buf, _ = b.Seal(vol, seq, seq*7919, next)
	return u
}

// write puts the unit on the device, both pieces.
func (f *scanFixture) write(u builtUnit) {
	f.t.Helper()
	for _, p := range u.place.Pieces(uint32(len(u.buf))) {
		if _, err := f.dev.WriteAt(u.buf[p.Start:p.End], int64(p.Addr)); err != nil {
			f.t.Fatal(err)
		}
	}
}

// add builds a unit of this volume and writes it.
func (f *scanFixture) add(addr uint64, kind uint16, seq uint64, next uint32, entries ...segment.SummaryEntry) builtUnit {
	f.t.Helper()
	u := f.build(addr, kind, testVolume, seq, next, entries...)
	f.write(u)
	return u
}

func data(n uint32, vb, ino, off uint64) segment.SummaryEntry {
	return segment.SummaryEntry{Kind: segment.SumData, Len: n, ID: vb, Owner: ino, Offset: off}
}

func node(n uint32, vb uint64) segment.SummaryEntry {
	return segment.SummaryEntry{Kind: segment.SumNode, Len: n, ID: vb}
}

func table(n uint32, owner, level, index uint64) segment.SummaryEntry {
	return segment.SummaryEntry{Kind: segment.SumTable, Len: n, Owner: owner, Offset: level, ID: index}
}

// dataBlocks are n data blocks of size bytes each.
func dataBlocks(n int, size uint32, firstVB uint64) []segment.SummaryEntry {
	var out []segment.SummaryEntry
	for i := range n {
		out = append(out, data(size, firstVB+uint64(i), 9, uint64(i)))
	}
	return out
}

// fullBlocks are n data blocks of a whole block each.
func fullBlocks(n int, firstVB uint64) []segment.SummaryEntry { return dataBlocks(n, 4096, firstVB) }

func concat(lists ...[]Block) []Block {
	var out []Block
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func checkBlocks(t *testing.T, what string, got, want []Block) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: listed\n%s\nwant\n%s", what, describe(got), describe(want))
	}
}

func describe(bs []Block) string {
	s := ""
	for _, b := range bs {
		s += fmt.Sprintf("  kind %d id %d at %d len %d\n", b.Kind, b.ID, b.Addr, b.Len)
	}
	return s
}

// twoSegments writes units into segments 2 and 3: in 2, an operations
// unit, a checkpoint's blocks, a cleaner's unit and a unit that goes on
// into 3 after a padding entry; in 3, after that unit's tail, two more.
func twoSegments(f *scanFixture) (ops, meta, moved, across, after1, after2 builtUnit) {
	f.t.Helper()
	ops = f.add(f.segStart(2), segment.UnitOps, 10, 3, data(4096, 1, 5, 0), node(1000, 2), data(2500, 3, 5, 1))
	meta = f.add(ops.end(), segment.UnitMeta, 11, 3, table(4096, segment.TableDAT, 0, 3), node(2000, 4), table(700, segment.TableSUT, 1, 0))
	moved = f.add(meta.end(), segment.UnitMoved, 0, noSeg, data(3000, 6, 7, 2), node(4096, 8))
	// Enough whole blocks to put some at the start of segment 3.
	n := int(f.segStart(3)-moved.end())/4096 + 3
	across = f.add(moved.end(), segment.UnitOps, 12, 3, fullBlocks(n, 100)...)
	after1 = f.add(across.end(), segment.UnitOps, 13, 4, node(4096, 200), data(100, 201, 5, 9))
	after2 = f.add(after1.end(), segment.UnitMeta, 14, 4, table(4096, segment.TableDAT, 1, 0))
	if across.pads != 1 || across.end() <= f.segStart(3) || len(across.in(f.geo, 3)) < 2 {
		f.t.Fatalf("the unit across segments 2 and 3 has %d padding entries, ends at %d, has %d blocks in 3",
			across.pads, across.end(), len(across.in(f.geo, 3)))
	}
	return
}

func TestScanUnitsBackToBack(t *testing.T) {
	f := newScanFixture(t)
	ops, meta, moved, across, _, _ := twoSegments(f)
	sc := f.scanner()
	got, first := sc.Segment(2, f.segment(2))
	// The unit that goes on into segment 3 is listed whole: a scan of 3
	// cannot name its blocks there.
	checkBlocks(t, "segment 2", got, concat(ops.want, meta.want, moved.want, across.in(f.geo, 2), across.in(f.geo, 3)))
	if first != 0 {
		t.Fatalf("first unit at %d, want 0", first)
	}
	// The rest of the unit that goes on into segment 3 was read there.
	if !slices.Contains(f.reads, f.segStart(3)) {
		t.Fatalf("the scan did not read the start of segment 3: reads at %v", f.reads)
	}
	// Sanity: the unit across has blocks in both segments, and the
	// padding between them is not listed.
	if len(across.in(f.geo, 2)) == 0 || len(across.in(f.geo, 3)) == 0 {
		t.Fatal("the unit does not lie across segments 2 and 3")
	}
}

// A segment that starts with the tail of a unit begun in the one before:
// the scan starts after it.
func TestScanSegmentStartingWithATail(t *testing.T) {
	f := newScanFixture(t)
	_, _, _, across, after1, after2 := twoSegments(f)
	sc := f.scanner()
	got, first := sc.Segment(3, f.segment(3))
	checkBlocks(t, "segment 3", got, concat(after1.want, after2.want))
	if want := uint32(across.end() - f.segStart(3)); first != want {
		t.Fatalf("first unit of segment 3 at %d, want %d (after the tail)", first, want)
	}
}

// The rest of a unit that goes on into the next segment comes through
// Read; when it cannot be read, the unit is skipped, and the others are
// still listed.
func TestScanUnitIntoNextSegmentUnreadable(t *testing.T) {
	f := newScanFixture(t)
	ops, meta, moved, _, _, _ := twoSegments(f)
	want := concat(ops.want, meta.want, moved.want)
	sc := f.scanner()
	sc.Read = nil
	got, first := sc.Segment(2, f.segment(2))
	checkBlocks(t, "segment 2 without Read", got, want)
	sc.Read = func([]byte, uint64) error { return errors.New("no device") }
	got, _ = sc.Segment(2, f.segment(2))
	checkBlocks(t, "segment 2 with a failing Read", got, want)
	if first != 0 {
		t.Fatalf("first unit at %d", first)
	}
	// The start of segment 3 overwritten: the unit fails its checksum.
	seg3 := f.segment(3)
	clear(seg3[:4096])
	if _, err := f.dev.WriteAt(seg3, int64(f.segStart(3))); err != nil {
		t.Fatal(err)
	}
	got, _ = f.scanner().Segment(2, f.segment(2))
	checkBlocks(t, "segment 2 with the start of 3 overwritten", got, want)
}

// Units of an earlier use of the segment after the live ones are listed:
// they are candidates, which the DAT sorts out. Units of another volume,
// with a bad checksum or torn are skipped, and the scan goes on after
// them.
func TestScanStaleAndDamagedUnits(t *testing.T) {
	f := newScanFixture(t)
	const s = 4
	// The earlier use: five units of two blocks each from the start.
	var stale []builtUnit
	pos := f.segStart(s)
	for i := range 5 {
		u := f.add(pos, segment.UnitMeta, uint64(1+i), s+1, dataBlocks(2, 3000, uint64(10*i+10))...)
		stale, pos = append(stale, u), u.end()
	}
	// The new use overwrites the first two and the start of the third.
	live1 := f.add(f.segStart(s), segment.UnitOps, 50, s+2, dataBlocks(2, 3000, 500)...)
	live2 := f.add(live1.end(), segment.UnitMeta, 51, s+2, dataBlocks(3, 3000, 600)...)
	if live2.end() <= stale[2].place.Addr || live2.end() >= stale[2].end() {
		t.Fatalf("the live units end at %d, not inside the third stale unit [%d, %d)", live2.end(), stale[2].place.Addr, stale[2].end())
	}
	// After the stale ones: a unit of another volume, one with a flipped
	// bit, one torn after its first block, and a good one.
	other := f.build(stale[4].end(), segment.UnitOps, testVolume+1, 52, s+2, dataBlocks(1, 3000, 700)...)
	f.write(other)
	flipped := f.build(other.end(), segment.UnitOps, testVolume, 53, s+2, dataBlocks(2, 3000, 800)...)
	flipped.buf[5000] ^= 0x10
	f.write(flipped)
	torn := f.build(flipped.end(), segment.UnitOps, testVolume, 54, s+2, dataBlocks(2, 3000, 900)...)
	if _, err := f.dev.WriteAt(torn.buf[:4096], int64(torn.place.Addr)); err != nil {
		t.Fatal(err)
	}
	good := f.add(torn.end(), segment.UnitMoved, 0, noSeg, data(1234, 1000, 3, 0))
	if good.end() > f.segStart(s+1) {
		t.Fatal("the units do not fit in the segment")
	}

	got, first := f.scanner().Segment(s, f.segment(s))
	checkBlocks(t, "segment with stale and damaged units", got, concat(live1.want, live2.want, stale[3].want, stale[4].want, good.want))
	if first != 0 {
		t.Fatalf("first unit at %d", first)
	}
}

func TestScanNothing(t *testing.T) {
	f := newScanFixture(t)
	sc := f.scanner()
	size := f.geo.SegmentSize
	zeros := make([]byte, size)
	random := make([]byte, size)
	f.rng.Read(random)
	// Random bytes that start like a unit at every block boundary.
	magic := slices.Clone(random)
	for off := 0; off < len(magic); off += 4096 {
		copy(magic[off:], segment.UnitMagic)
		binary.LittleEndian.PutUint16(magic[off+4:], segment.FormatVersion)
		binary.LittleEndian.PutUint16(magic[off+6:], segment.UnitOps)
		binary.LittleEndian.PutUint64(magic[off+8:], testVolume)
	}
	for _, c := range []struct {
		name string
		seg  []byte
	}{{"zeros", zeros}, {"random", random}, {"headers of garbage", magic}, {"nothing", nil}, {"less than a header", random[:63]}} {
		got, first := sc.Segment(1, c.seg)
		if len(got) != 0 || first != size {
			t.Errorf("%s: listed %d blocks, first unit at %d", c.name, len(got), first)
		}
	}
}

// A header that claims a unit longer than the rest of its segment, with a
// next segment that is not one: skipped, without reading anything and
// without a panic, whatever the length says.
func TestScanBadLengthAndNextSegment(t *testing.T) {
	f := newScanFixture(t)
	const s = 5
	size := f.geo.SegmentSize
	at := f.segStart(s) + uint64(size) - 8192
	for _, next := range []uint32{noSeg, f.geo.Segments, f.geo.Segments + 100, s} {
		// A unit that goes on past its segment, checksum and all, but
		// names a next segment that cannot be where its rest is.
		f.dev = segment.NewMemDevice(f.geo.DeviceBytes())
		u := f.build(at, segment.UnitOps, testVolume, 20, s+1, fullBlocks(4, 1)...)
		binary.LittleEndian.PutUint32(u.buf[52:], next)
		resealed(u.buf)
		f.write(u)
		f.reads = nil
		got, first := f.scanner().Segment(s, f.segment(s))
		if len(got) != 0 || first != size || len(f.reads) != 0 {
			t.Errorf("next segment %d: listed %d blocks, first %d, read at %v", next, len(got), first, f.reads)
		}
	}
	// Lengths past the segment's end, up to and past what two segments
	// hold, at every place a header may be.
	f.dev = segment.NewMemDevice(f.geo.DeviceBytes())
	seg := make([]byte, size)
	for _, length := range []uint32{size + 4096, 2 * size, 2*size + 4096, ^uint32(0) &^ 4095} {
		for off := uint32(0); off < size; off += 4096 {
			clear(seg)
			h := seg[off:]
			copy(h, segment.UnitMagic)
			binary.LittleEndian.PutUint16(h[4:], segment.FormatVersion)
			binary.LittleEndian.PutUint16(h[6:], segment.UnitOps)
			binary.LittleEndian.PutUint64(h[8:], testVolume)
			binary.LittleEndian.PutUint32(h[32:], length)
			binary.LittleEndian.PutUint32(h[52:], s+1)
			resealed(seg[off:])
			got, _ := f.scanner().Segment(s, seg)
			if len(got) != 0 {
				t.Fatalf("length %d at %d: listed %d blocks", length, off, len(got))
			}
			// Also when the bytes given end before the segment does.
			if got, _ := f.scanner().Segment(s, seg[:off+4096:off+4096]); len(got) != 0 {
				t.Fatalf("length %d at %d, bytes to %d: listed %d blocks", length, off, off+4096, len(got))
			}
		}
	}
}

// resealed sets the checksum of the unit at the start of b after a change
// to its header, over as many of its bytes as b holds.
func resealed(b []byte) {
	n := min(int(binary.LittleEndian.Uint32(b[32:])), len(b))
	clear(b[56:64])
	binary.LittleEndian.PutUint64(b[56:], segment.Checksum(b[:n]))
}

// Bytes handed to Segment that end before the segment does are scanned
// as far as they go: units they hold whole are listed, and one they cut
// off is not.
func TestScanShortSegmentBytes(t *testing.T) {
	f := newScanFixture(t)
	ops, meta, moved, _, _, _ := twoSegments(f)
	seg := f.segment(2)
	sc := f.scanner()
	cut := int(moved.end() - f.segStart(2))
	got, first := sc.Segment(2, seg[:cut])
	checkBlocks(t, "segment 2 up to the end of its third unit", got, concat(ops.want, meta.want, moved.want))
	if first != 0 {
		t.Fatalf("first unit at %d", first)
	}
	got, _ = sc.Segment(2, seg[:cut-4096])
	checkBlocks(t, "segment 2 cut inside its third unit", got, concat(ops.want, meta.want))
	// Cut inside the unit that goes on into the next segment, in an
	// array of that size only.
	for _, n := range []int{cut + 64, cut + 4096, len(seg) - 4096} {
		short := slices.Clip(slices.Clone(seg[:n]))
		got, _ = sc.Segment(2, short)
		checkBlocks(t, fmt.Sprintf("segment 2 cut at %d", n), got, concat(ops.want, meta.want, moved.want))
	}
}

// FuzzScanSegment feeds arbitrary bytes to Segment as segment 2 of a
// device whose segment 3 holds units: it never panics, and every block it
// lists lies whole in segment 2. Its inputs are a segment long: fuzz with
// -fuzzminimizetime=100x, or minimizing each new input takes a minute.
func FuzzScanSegment(f *testing.F) {
	fx := newScanFixture(f)
	twoSegments(fx)
	seg2 := fx.segment(2)
	f.Add(seg2)
	f.Add(seg2[:20000])
	f.Add(fx.segment(3))
	f.Add([]byte{})
	f.Add(make([]byte, fx.geo.SegmentSize))
	header := slices.Clone(seg2[:4096])
	binary.LittleEndian.PutUint32(header[32:], 2*fx.geo.SegmentSize)
	f.Add(header)
	sc := Scanner{Geo: fx.geo, VolumeID: testVolume, Read: func(buf []byte, addr uint64) error {
		_, err := fx.dev.ReadAt(buf, int64(addr))
		return err
	}}
	const s = 2
	// A unit that goes on into the next segment lists its blocks there too.
	start, end := fx.segStart(s), fx.segStart(s)+2*uint64(fx.geo.SegmentSize)
	f.Fuzz(func(t *testing.T, seg []byte) {
		blocks, first := sc.Segment(s, seg)
		if first > fx.geo.SegmentSize || (first < fx.geo.SegmentSize && first%fx.geo.BlockSize != 0) {
			t.Fatalf("first unit at %d", first)
		}
		if len(blocks) > 0 && first == fx.geo.SegmentSize {
			t.Fatal("blocks listed and no unit found")
		}
		for _, b := range blocks {
			if b.Addr < start || b.Addr+uint64(b.Len) > end {
				t.Fatalf("block %d at [%d, %d) outside segment %d and the next [%d, %d)", b.ID, b.Addr, b.Addr+uint64(b.Len), s, start, end)
			}
			if b.Kind == segment.SumPad {
				t.Fatalf("padding listed at %d", b.Addr)
			}
		}
	})
}
