package segment

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs from the golden file:\n%s\nwant:\n%s", name, got, want)
	}
}

func hexdump(b []byte) string {
	var sb strings.Builder
	for i := 0; i < len(b); i += 16 {
		end := min(i+16, len(b))
		if bytes.Equal(b[i:end], make([]byte, end-i)) && i > 0 && i+16 < len(b) {
			continue
		}
		fmt.Fprintf(&sb, "%04x  % x\n", i, b[i:end])
	}
	return sb.String()
}

func testSuper() *Superblock {
	s := &Superblock{Version: FormatVersion, Flags: SuperCompress, Label: "golden",
		Geometry:   Geometry{BlockSize: 4096, SegmentSize: 1 << 20, Segments: 63},
		DeviceSize: 64 << 20, Created: 1700000000000000000, Generation: 7,
		Checkpoint: UnitRef{Addr: 8192, Len: 4096, Seq: 3, Sum: 0x1122334455667788}}
	for i := range s.UUID {
		s.UUID[i] = byte(i)
	}
	return s
}

func TestSuperblockGolden(t *testing.T) {
	s := testSuper()
	b := s.Encode()
	golden(t, "superblock.golden", hexdump(b))
	d, err := DecodeSuperblock(b)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(*d) != fmt.Sprint(*s) {
		t.Fatalf("round trip: %+v, want %+v", *d, *s)
	}
}

func TestSuperblockDamage(t *testing.T) {
	b := testSuper().Encode()
	for i := 0; i < 248*8; i++ {
		c := append([]byte(nil), b...)
		c[i/8] ^= 1 << (i % 8)
		if _, err := DecodeSuperblock(c); err == nil {
			t.Fatalf("flipped bit %d accepted", i)
		}
	}
}

func TestReadSuperblockPicksNewest(t *testing.T) {
	dev := NewMemDevice(64 << 20)
	s := testSuper()
	if err := WriteSuperblock(dev, s, 0); err != nil {
		t.Fatal(err)
	}
	s2 := *s
	s2.Generation = 8
	if err := WriteSuperblock(dev, &s2, 1); err != nil {
		t.Fatal(err)
	}
	got, slot, err := ReadSuperblock(dev)
	if err != nil || slot != 1 || got.Generation != 8 {
		t.Fatalf("got slot %d gen %v err %v", slot, got, err)
	}
	// Damage to one copy of the newer slot leaves the other copy.
	dev.WriteAt(make([]byte, 100), 4096+50)
	got, slot, err = ReadSuperblock(dev)
	if err != nil || slot != 1 || got.Generation != 8 {
		t.Fatalf("after damaging the first copy of slot 1: slot %d gen %v err %v", slot, got, err)
	}
	// Both copies of the newer slot damaged: the older slot.
	dev.WriteAt(make([]byte, 100), 4096+CopyOffset+50)
	got, slot, err = ReadSuperblock(dev)
	if err != nil || slot != 0 || got.Generation != 7 {
		t.Fatalf("after damaging slot 1: slot %d err %v", slot, err)
	}
	dev.WriteAt(make([]byte, 100), 50)
	dev.WriteAt(make([]byte, 100), CopyOffset+50)
	if _, _, err := ReadSuperblock(dev); !errors.Is(err, ErrNoSuperblock) {
		t.Fatalf("both slots damaged: %v", err)
	}
}

// Any single flipped bit in either copy of either slot leaves the newest
// superblock readable; a write torn between the two copies of a slot
// leaves the newer copy.
func TestSuperblockDitto(t *testing.T) {
	dev := NewMemDevice(64 << 20)
	s := testSuper()
	WriteSuperblock(dev, s, 0)
	s2 := *s
	s2.Generation = 8
	WriteSuperblock(dev, &s2, 1)
	img := dev.Bytes()
	for _, base := range []int{0, CopyOffset, 4096, 4096 + CopyOffset} {
		for bit := 0; bit < SuperSize*8; bit += 3 {
			c := NewMemDevice(64 << 20)
			b := append([]byte(nil), img[:8192]...)
			b[base+bit/8] ^= 1 << (bit % 8)
			c.WriteAt(b, 0)
			got, slot, err := ReadSuperblock(c)
			if err != nil || slot != 1 || got.Generation != 8 {
				t.Fatalf("bit %d of the copy at %d flipped: slot %d, %v, %v", bit, base, slot, got, err)
			}
		}
	}
	// Slot 1's write torn after its first copy: the first copy is new.
	s3 := s2
	s3.Generation = 9
	torn := NewMemDevice(64 << 20)
	torn.WriteAt(img[:8192], 0)
	torn.WriteAt(s3.Encode(), 4096)
	if got, _, err := ReadSuperblock(torn); err != nil || got.Generation != 9 {
		t.Fatalf("torn between copies: %v %v", got, err)
	}
}

// A version 1 superblock still reads: not clean, next segment unknown.
func TestSuperblockVersion1(t *testing.T) {
	s := testSuper()
	s.Version = 1
	s.Clean = true
	s.Checkpoint.NextSeg = 5
	d, err := DecodeSuperblock(s.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if d.Clean || d.Checkpoint.NextSeg != noSegment {
		t.Fatalf("version 1 read as clean %v next %d", d.Clean, d.Checkpoint.NextSeg)
	}
}

func TestUnitRoundTripAndGolden(t *testing.T) {
	place := UnitPlace{Addr: 8192, Split: 1 << 20}
	u := NewUnitBuilder(place, UnitOps, 4096, 1<<20)
	blk := bytes.Repeat([]byte("txfs"), 1024)
	stored, flags := EncodeBlock(blk, nil, true)
	if flags != BlockLZ4 || len(stored) >= len(blk) {
		t.Fatalf("repetitive block not compressed: %d bytes flags %d", len(stored), flags)
	}
	i, addr := u.AddBlock(SummaryEntry{Kind: SumData, Flags: flags, ID: 5, Owner: 2, Offset: 9, Sum: Checksum(stored)}, stored)
	if i != 0 || addr != 8192+UnitHeaderSize {
		t.Fatalf("block 0 at %d", addr)
	}
	u.AppendRecords([]byte{1, 2, 3})
	buf, sum := u.Seal(0xabcdef, 42, 0x99, 7)
	golden(t, "unit.golden", hexdump(buf))
	d, err := DecodeUnit(buf, place, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if d.Header.Seq != 42 || d.Header.Prev != 0x99 || d.Header.NextSeg != 7 || d.Header.Sum != sum || !bytes.Equal(d.Records, []byte{1, 2, 3}) {
		t.Fatalf("decoded header %+v records %v", d.Header, d.Records)
	}
	if d.BlockAddr(0) != addr {
		t.Fatalf("block address %d, want %d", d.BlockAddr(0), addr)
	}
	raw, err := DecodeBlock(d.Block(0), d.Summary[0].Flags, d.Summary[0].Sum, 4096, nil)
	if err != nil || !bytes.Equal(raw, blk) {
		t.Fatalf("block: %v", err)
	}
	// Every flipped bit of the unit is caught.
	for bit := 0; bit < len(buf)*8; bit += 7 {
		c := append([]byte(nil), buf...)
		c[bit/8] ^= 1 << (bit % 8)
		if _, err := DecodeUnit(c, place, 1<<20); err == nil {
			t.Fatalf("flipped bit %d accepted", bit)
		}
	}
}

// A unit longer than the rest of its segment continues at the start of
// the next one; no block straddles the end of the first segment.
func TestUnitAcrossSegments(t *testing.T) {
	const next = 5 << 20
	place := UnitPlace{Addr: 1<<20 - 8192, Split: 8192, Next: next}
	u := NewUnitBuilder(place, UnitOps, 4096, 1<<20)
	var blocks [][]byte
	var addrs []uint64
	for i := 0; i < 4; i++ {
		b := bytes.Repeat([]byte{byte(i + 1)}, 4096)
		rand.New(rand.NewSource(int64(i))).Read(b[:2048]) // incompressible
		if !u.Fits(4096, 1, 0) {
			t.Fatalf("block %d does not fit", i)
		}
		_, addr := u.AddBlock(SummaryEntry{Kind: SumData, ID: uint64(i + 1), Sum: Checksum(b)}, b)
		blocks, addrs = append(blocks, b), append(addrs, addr)
		if got, ok := u.BlockBytes(addr, 4096); !ok || !bytes.Equal(got, b) {
			t.Fatalf("block %d not readable from the builder at %d", i, addr)
		}
	}
	// Block 0 at 64..4160, block 1 would straddle 8192: it goes to the
	// next segment after a padding entry, and so do the rest.
	want := []uint64{place.Addr + 64, next, next + 4096, next + 8192}
	for i := range want {
		if addrs[i] != want[i] {
			t.Fatalf("block %d at %d, want %d", i, addrs[i], want[i])
		}
	}
	buf, _ := u.Seal(1, 2, 3, 5)
	pieces := place.Pieces(uint32(len(buf)))
	if len(pieces) != 2 || pieces[0].End != 8192 || pieces[1].Addr != next {
		t.Fatalf("pieces %+v", pieces)
	}
	d, err := DecodeUnit(buf, place, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for i, e := range d.Summary {
		if e.Kind == SumPad {
			if e.Len != 8192-4160 {
				t.Fatalf("padding of %d bytes", e.Len)
			}
			continue
		}
		if d.BlockAddr(i) != want[got] || !bytes.Equal(d.Block(i), blocks[got]) {
			t.Fatalf("decoded block %d at %d", got, d.BlockAddr(i))
		}
		got++
	}
	if got != 4 {
		t.Fatalf("%d blocks decoded", got)
	}
	// Without a next segment the same unit cannot be placed.
	if _, err := DecodeUnit(buf, UnitPlace{Addr: place.Addr, Split: 8192}, 2<<20); err == nil {
		t.Fatal("a unit running past its segment with no next decoded")
	}
	if u := NewUnitBuilder(UnitPlace{Addr: place.Addr, Split: 8192}, UnitOps, 4096, 1<<20); u.Fits(8192, 1, 0) {
		t.Fatal("a unit with no next segment offers room past its segment")
	}
}

func TestIncompressibleBlockStoredRaw(t *testing.T) {
	b := make([]byte, 4096)
	rand.New(rand.NewSource(1)).Read(b)
	stored, flags := EncodeBlock(b, nil, true)
	if flags != 0 || !bytes.Equal(stored, b) {
		t.Fatal("random block should be stored raw")
	}
	if _, err := DecodeBlock(stored, 0, Checksum(stored)^1, 4096, nil); !errors.Is(err, ErrChecksum) {
		t.Fatalf("wrong checksum accepted: %v", err)
	}
}

func BenchmarkEncodeBlock(b *testing.B) {
	random := make([]byte, 4096)
	rand.New(rand.NewSource(1)).Read(random)
	text := bytes.Repeat([]byte("the quick brown fox "), 205)[:4096]
	for _, c := range []struct {
		name string
		data []byte
	}{{"random", random}, {"text", text}} {
		b.Run(c.name, func(b *testing.B) {
			dst := make([]byte, 4096)
			b.SetBytes(4096)
			for i := 0; i < b.N; i++ {
				EncodeBlock(c.data, dst, true)
			}
		})
	}
}

// tableDevice is a memory device for tables: read reads a block, put
// writes one after the last.
func tableDevice() (dev *MemDevice, read BlockReader, put TablePut) {
	dev = NewMemDevice(64 << 20)
	next := uint64(1 << 20)
	read = func(addr uint64, buf []byte) error { _, err := dev.ReadAt(buf, int64(addr)); return err }
	put = func(level int, index uint64, old BlockPtr, raw []byte) (BlockPtr, error) {
		addr := next
		next += uint64(len(raw))
		if _, err := dev.WriteAt(raw, int64(addr)); err != nil {
			return old, err
		}
		return BlockPtr{Addr: addr, Sum: Checksum(raw)}, nil
	}
	return dev, read, put
}

func TestTableGrowFlushReload(t *testing.T) {
	dev, read, put := tableDevice()
	tb := NewTable(TableDAT, 4096, 32, BlockPtr{}, 0, read, 0)
	rng := rand.New(rand.NewSource(2))
	want := map[uint64]byte{}
	e := make([]byte, 32)
	for round := 0; round < 5; round++ {
		for i := 0; i < 3000; i++ {
			idx := uint64(rng.Intn(200000))
			b := byte(rng.Intn(255) + 1)
			e[0] = b
			if err := tb.Set(idx, e); err != nil {
				t.Fatal(err)
			}
			want[idx] = b
		}
		if err := tb.Flush(put); err != nil {
			t.Fatal(err)
		}
		root, depth := tb.Root()
		tb = NewTable(TableDAT, 4096, 32, root, depth, read, 0)
		for idx, b := range want {
			if err := tb.Get(idx, e); err != nil || e[0] != b {
				t.Fatalf("round %d entry %d: %d %v, want %d", round, idx, e[0], err, b)
			}
		}
	}
	// A damaged table block is reported, not read as zeros.
	root, depth := tb.Root()
	dev.WriteAt([]byte{0xff}, int64(root.Addr)+10)
	tb = NewTable(TableDAT, 4096, 32, root, depth, read, 0)
	if err := tb.Get(1, e); !errors.Is(err, ErrChecksum) {
		t.Fatalf("damaged root: %v", err)
	}
}

func TestStaleSlotOfAnotherVolumeIgnored(t *testing.T) {
	dev := NewMemDevice(64 << 20)
	s := testSuper()
	WriteSuperblock(dev, s, 0)
	old := *s
	old.UUID[0] ^= 0xff
	old.Generation = 100
	old.Geometry.BlockSize = 8192
	old.Geometry.SegmentSize = 1 << 20
	WriteSuperblock(dev, &old, 1) // at byte 8192, where an 8 KiB volume keeps slot 1
	got, slot, err := ReadSuperblock(dev)
	if err != nil || slot != 0 || got.UUID != s.UUID {
		t.Fatalf("got slot %d uuid %x, %v: a stale slot of another volume won", slot, got.UUID, err)
	}
}

// Feature bits: an unknown incompatible one refuses the volume, an unknown
// read-only compatible one allows reading only, an unknown compatible one
// allows everything; all survive encoding.
func TestSuperblockFeatures(t *testing.T) {
	s := testSuper()
	s.Compat, s.ROCompat, s.Incompat = 1<<3, 1<<4, 1<<5
	d, err := DecodeSuperblock(s.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if d.Compat != 1<<3 || d.ROCompat != 1<<4 || d.Incompat != 1<<5 {
		t.Fatalf("features read back as %#x %#x %#x", d.Compat, d.ROCompat, d.Incompat)
	}
	if err := d.CheckFeatures(true); !errors.Is(err, ErrFeatures) {
		t.Fatalf("unknown incompatible feature: %v", err)
	}
	d.Incompat = 0
	if err := d.CheckFeatures(false); !errors.Is(err, ErrFeatures) {
		t.Fatalf("unknown read-only compatible feature opened read-write: %v", err)
	}
	if err := d.CheckFeatures(true); err != nil {
		t.Fatalf("unknown read-only compatible feature opened read-only: %v", err)
	}
	d.ROCompat = 0
	if err := d.CheckFeatures(false); err != nil {
		t.Fatalf("unknown compatible feature: %v", err)
	}
}
