package inode

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/txfs/txfs/btree"
)

// The keys of every kind of item, as docs/FORMAT.md lists them.
func TestKeys(t *testing.T) {
	for _, c := range []struct {
		got, want btree.Key
	}{
		{InodeKey(9), btree.Key{Ino: 9, Type: 1, Off: 0}},
		{DirentKey(9, 77), btree.Key{Ino: 9, Type: 2, Off: 77}},
		{XattrKey(9, 77), btree.Key{Ino: 9, Type: 3, Off: 77}},
		{SymlinkKey(9, 2), btree.Key{Ino: 9, Type: 4, Off: 2}},
		{BlockKey(9, 5), btree.Key{Ino: 9, Type: 5, Off: 5}},
		{OrphanKey(9), btree.Key{Ino: 0, Type: 6, Off: 9}},
		{TruncKey(9), btree.Key{Ino: 0, Type: 7, Off: 9}},
		{RangeKey(9), btree.Key{Ino: 0, Type: 8, Off: 9}},
	} {
		if c.got != c.want {
			t.Errorf("key %v, want %v", c.got, c.want)
		}
	}
}

// NameHash is xxhash64 shifted right by 2: readdir cookies (hash+1) stay
// below 1<<62. The value pins the hash function, which is on disk.
func TestNameHash(t *testing.T) {
	if h := NameHash("hello"); h != 0x26c7827d889f6da3>>2 {
		t.Fatalf("NameHash(hello) = %#x", h)
	}
	for _, n := range []string{"", "a", strings.Repeat("z", 255)} {
		if NameHash(n) >= 1<<62 {
			t.Fatalf("NameHash(%q) >= 1<<62", n)
		}
	}
}

// The inode record's bytes, field by field, as docs/FORMAT.md has them.
func TestRecordLayout(t *testing.T) {
	r := &Record{
		Mode: 0x81a4, Nlink: 2, Uid: 3, Gid: 4, Size: 5, NBlocks: 6, Rdev: 7,
		Atime: Timespec{8, 9}, Mtime: Timespec{10, 11}, Ctime: Timespec{12, 13},
		Flags: 0x10, Parent: 14,
	}
	want := "a4810000" + "02000000" + "03000000" + "04000000" +
		"0500000000000000" + "0600000000000000" + "0700000000000000" +
		"0800000000000000" + "09000000" + // atime s, ns
		"0b000000" + "0a00000000000000" + // mtime ns, s
		"0c00000000000000" + "0d000000" + // ctime s, ns
		"10000000" + "0e00000000000000" + "0000000000000000"
	b := r.Encode()
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("encoded\n%s, want\n%s", got, want)
	}
	back, err := DecodeRecord(1, b)
	if err != nil || *back != *r {
		t.Fatalf("decoded %+v, %v; want %+v", back, err, r)
	}
	for _, n := range []int{0, RecordSize - 1, RecordSize + 1} {
		if _, err := DecodeRecord(1, make([]byte, n)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("record of %d bytes: %v", n, err)
		}
	}
}

func TestDirents(t *testing.T) {
	es := []Dirent{{Name: "a", Ino: 2, Type: 8}, {Name: strings.Repeat("n", 255), Ino: 1 << 40, Type: 4}}
	b := EncodeDirents(es)
	if want := "0200000000000000" + "08" + "01" + "61"; hex.EncodeToString(b[:11]) != want {
		t.Fatalf("first entry %x, want %s", b[:11], want)
	}
	got, err := DecodeDirents(b)
	if err != nil || len(got) != 2 || got[0] != es[0] || got[1] != es[1] {
		t.Fatalf("decoded %v, %v", got, err)
	}
	if got, err := DecodeDirents(nil); err != nil || len(got) != 0 {
		t.Fatalf("empty item: %v, %v", got, err)
	}
	for _, bad := range [][]byte{
		b[:9],        // cut inside the header
		b[:10],       // name cut off
		b[:len(b)-1], // second name cut short
		append(EncodeDirents([]Dirent{{Name: "x", Ino: 2}})[:9], 0), // empty name
	} {
		if _, err := DecodeDirents(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%x: %v", bad, err)
		}
	}
}

func TestXattrs(t *testing.T) {
	es := []Xattr{{Name: "user.a", Value: []byte("v")}, {Name: "user.empty", Value: []byte{}}}
	b := EncodeXattrs(es)
	if want := "06" + "0100" + hex.EncodeToString([]byte("user.av")); hex.EncodeToString(b[:10]) != want {
		t.Fatalf("first attribute %x, want %s", b[:10], want)
	}
	got, err := DecodeXattrs(b)
	if err != nil || len(got) != 2 || got[0].Name != "user.a" || string(got[0].Value) != "v" || got[1].Name != "user.empty" || len(got[1].Value) != 0 {
		t.Fatalf("decoded %v, %v", got, err)
	}
	b[9] = 'w'
	if string(got[0].Value) != "v" {
		t.Fatal("a decoded value shares the item's bytes")
	}
	for _, bad := range [][]byte{
		b[:2],        // cut inside the header
		b[:8],        // value cut off
		b[:len(b)-1], // second name cut short
		{0, 0, 0},    // empty name
	} {
		if _, err := DecodeXattrs(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%x: %v", bad, err)
		}
	}
}

func TestRangeOp(t *testing.T) {
	o := RangeOp{Kind: RangeCollapse, First: 1, Count: 2, Cursor: 3}
	b := o.Encode()
	if want := "02" + "0100000000000000" + "0200000000000000" + "0300000000000000"; hex.EncodeToString(b) != want {
		t.Fatalf("encoded %x, want %s", b, want)
	}
	if got, err := DecodeRangeOp(b); err != nil || got != o {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	for _, bad := range []RangeOp{
		{Kind: 0, First: 1, Count: 1},
		{Kind: RangeInsert + 1, First: 1, Count: 1},
		{Kind: RangeFree, First: 1, Count: 0},
		{Kind: RangeFree, First: 1 << 63, Count: 1 << 63},
	} {
		if _, err := DecodeRangeOp(bad.Encode()); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if _, err := DecodeRangeOp(b[:RangeOpSize-1]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short range item: %v", err)
	}
}

// Block map and truncate items hold 8 bytes. A block item of any other
// length reads as virtual block 0, which the DAT refuses; a truncate item
// of any other length is ErrCorrupt (as 0 it would free the whole file).
func TestEightByteItems(t *testing.T) {
	if b := EncodeBlockItem(0x0102030405060708); hex.EncodeToString(b) != "0807060504030201" || DecodeBlockItem(b) != 0x0102030405060708 {
		t.Fatalf("block item %x", b)
	}
	if n, err := DecodeTruncItem(EncodeTruncItem(4096)); err != nil || n != 4096 {
		t.Fatalf("truncate item: %d %v", n, err)
	}
	for _, n := range []int{0, 7, 9} {
		if DecodeBlockItem(bytes.Repeat([]byte{1}, n)) != 0 {
			t.Errorf("a block item of %d bytes does not read as 0", n)
		}
		if _, err := DecodeTruncItem(bytes.Repeat([]byte{1}, n)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("a truncate item of %d bytes: %v", n, err)
		}
	}
}

func TestSplitSymlink(t *testing.T) {
	for _, c := range []struct {
		target string
		chunk  int
		want   []string
	}{
		{"", 4, nil},
		{"abc", 4, []string{"abc"}},
		{"abcd", 4, []string{"abcd"}},
		{"abcdefghi", 4, []string{"abcd", "efgh", "i"}},
	} {
		got := SplitSymlink(c.target, c.chunk)
		if len(got) != len(c.want) {
			t.Fatalf("%q by %d: %q", c.target, c.chunk, got)
		}
		for i := range got {
			if string(got[i]) != c.want[i] {
				t.Fatalf("%q by %d: %q", c.target, c.chunk, got)
			}
		}
	}
}

// The decoders never panic, and what they accept encodes back to the same
// bytes.
func FuzzDecode(f *testing.F) {
	f.Add(EncodeDirents([]Dirent{{Name: "a", Ino: 2, Type: 8}}))
	f.Add(EncodeXattrs([]Xattr{{Name: "user.a", Value: []byte("v")}}))
	f.Add((&Record{Mode: 0x41ed, Nlink: 2}).Encode())
	f.Add(RangeOp{Kind: RangeFree, First: 1, Count: 2}.Encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if es, err := DecodeDirents(b); err == nil && !bytes.Equal(EncodeDirents(es), b) {
			t.Fatalf("dirents %x re-encode as %x", b, EncodeDirents(es))
		}
		if es, err := DecodeXattrs(b); err == nil && !bytes.Equal(EncodeXattrs(es), b) {
			t.Fatalf("xattrs %x re-encode as %x", b, EncodeXattrs(es))
		}
		if r, err := DecodeRecord(1, b); err == nil && !bytes.Equal(r.Encode()[:88], b[:88]) {
			t.Fatalf("record %x re-encodes as %x", b, r.Encode())
		}
		if o, err := DecodeRangeOp(b); err == nil && !bytes.Equal(o.Encode(), b) {
			t.Fatalf("range item %x re-encodes as %x", b, o.Encode())
		}
		DecodeBlockItem(b)
		DecodeTruncItem(b)
	})
}
