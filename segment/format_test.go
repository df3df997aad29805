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
	// A torn newer slot leaves the older one.
	dev.WriteAt(make([]byte, 100), 4096+50)
	got, slot, err = ReadSuperblock(dev)
	if err != nil || slot != 0 || got.Generation != 7 {
		t.Fatalf("after tearing slot 1: slot %d err %v", slot, err)
	}
	dev.WriteAt(make([]byte, 100), 50)
	if _, _, err := ReadSuperblock(dev); !errors.Is(err, ErrNoSuperblock) {
		t.Fatalf("both slots damaged: %v", err)
	}
}

func TestUnitRoundTripAndGolden(t *testing.T) {
	u := NewUnitBuilder(8192, UnitOps, 4096, 1<<20)
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
	d, err := DecodeUnit(buf, 8192, 1<<20)
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
		if _, err := DecodeUnit(c, 8192, 1<<20); err == nil {
			t.Fatalf("flipped bit %d accepted", bit)
		}
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

func TestTableGrowFlushReload(t *testing.T) {
	dev := NewMemDevice(64 << 20)
	next := uint64(1 << 20)
	read := func(addr uint64, buf []byte) error { _, err := dev.ReadAt(buf, int64(addr)); return err }
	put := func(level int, index uint64, old BlockPtr, raw []byte) (BlockPtr, error) {
		addr := next
		next += uint64(len(raw))
		if _, err := dev.WriteAt(raw, int64(addr)); err != nil {
			return old, err
		}
		return BlockPtr{Addr: addr, Sum: Checksum(raw)}, nil
	}
	tb := NewTable(TableDAT, 4096, 32, BlockPtr{}, 0, read, 4)
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
		tb = NewTable(TableDAT, 4096, 32, root, depth, read, 4)
		for idx, b := range want {
			if err := tb.Get(idx, e); err != nil || e[0] != b {
				t.Fatalf("round %d entry %d: %d %v, want %d", round, idx, e[0], err, b)
			}
		}
	}
	// A damaged table block is reported, not read as zeros.
	root, depth := tb.Root()
	dev.WriteAt([]byte{0xff}, int64(root.Addr)+10)
	tb = NewTable(TableDAT, 4096, 32, root, depth, read, 4)
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
