package txfs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/txfs/txfs/segment"
)

// syncedFiles writes n files, each created, written and fsynced on its own,
// with no checkpoint after the first, and returns the device (closed
// without a checkpoint, as after a crash) and the address of each file's
// unit.
func syncedFiles(t *testing.T, n int) (*segment.MemDevice, []uint64, [][]byte) {
	t.Helper()
	dev := segment.NewMemDevice(32 << 20)
	if err := Format(dev, FormatOptions{SegmentSize: 256 << 10}); err != nil {
		t.Fatal(err)
	}
	v, err := Open(dev, Options{CheckpointBytes: 1 << 40, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var addrs []uint64
	var datas [][]byte
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < n; i++ {
		a, err := v.Create(RootIno, fmt.Sprintf("f%02d", i), 0o644, Owner{})
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, 10000)
		rng.Read(data)
		if _, err := v.Write(a.Ino, data, 0); err != nil {
			t.Fatal(err)
		}
		v.mu.Lock()
		addrs = append(addrs, v.log.Cur.Addr)
		v.mu.Unlock()
		if err := v.Fsync(a.Ino); err != nil {
			t.Fatal(err)
		}
		datas = append(datas, data)
	}
	// Power cut: everything fsynced is on the device, nothing else.
	crashed := dev.Crash(segment.CrashOptions{KeepPrefix: 0}, nil)
	v.Close()
	return crashed, addrs, datas
}

func copyDev(d *segment.MemDevice) *segment.MemDevice {
	b := d.Bytes()
	c := segment.NewMemDevice(int64(len(b)))
	c.WriteAt(b, 0)
	return c
}

// files lists the files f00.. the volume holds with the right content. A
// file may also be there empty: created in a unit before the one of its
// data (the writer sealed the unit in between).
func files(t *testing.T, v *Volume, datas [][]byte) []int {
	t.Helper()
	var have []int
	for i, want := range datas {
		a, err := v.Lookup(RootIno, fmt.Sprintf("f%02d", i))
		if errors.Is(err, ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatalf("f%02d: %v", i, err)
		}
		got := make([]byte, len(want)+1)
		n, err := v.Read(a.Ino, got, 0)
		if err == nil && n == 0 {
			continue
		}
		if err != nil || !bytes.Equal(got[:n], want) {
			t.Fatalf("f%02d: read %d bytes, %v; content differs", i, n, err)
		}
		have = append(have, i)
	}
	return have
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// A zeroed block in the middle of a synced log is damage, not the end of
// the log: a read-write Open refuses it and says what is lost, a read-only
// Open shows the state before it and the checker reports it, and it can be
// dropped for good or the units after it salvaged.
func TestDamagedLogIsNotATail(t *testing.T) {
	const n = 20
	dev, addrs, datas := syncedFiles(t, n)
	bad := copyDev(dev)
	bad.WriteAt(make([]byte, 4096), int64(addrs[6]))

	// Undamaged, every file is there.
	v, err := Open(copyDev(dev), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := files(t, v, datas); len(got) != n {
		t.Fatalf("undamaged: files %v", got)
	}
	v.Close()

	_, err = Open(copyDev(bad), Options{})
	if !errors.Is(err, ErrLogDamaged) || !strings.Contains(err.Error(), "cannot be read") {
		t.Fatalf("read-write open of a damaged log: %v", err)
	}
	t.Log(err)

	v, err = Open(copyDev(bad), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := files(t, v, datas); fmt.Sprint(got) != fmt.Sprint(seq(0, 6)) {
		t.Fatalf("read-only open shows files %v, want those before the damage", got)
	}
	if err := v.Check(); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("check of a damaged log: %v", err)
	}
	v.Close()

	// Dropping the damage: the state before it, for good.
	d := copyDev(bad)
	v, err = Open(d, Options{LogDamage: TruncateDamage})
	if err != nil {
		t.Fatal(err)
	}
	if got := files(t, v, datas); fmt.Sprint(got) != fmt.Sprint(seq(0, 6)) {
		t.Fatalf("after dropping the damage: files %v", got)
	}
	if _, err := v.Create(RootIno, "after", 0o644, Owner{}); err != nil {
		t.Fatal(err)
	}
	v = reopen(t, v, d)
	if got := files(t, v, datas); fmt.Sprint(got) != fmt.Sprint(seq(0, 6)) {
		t.Fatalf("reopened after dropping the damage: files %v", got)
	}
	v.Close()
	// A crash after it: the units left beyond the old damage prove
	// nothing any more.
	v, err = Open(d, Options{CheckpointBytes: 1 << 40, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := v.Create(RootIno, "more", 0o644, Owner{})
	v.Fsync(a.Ino)
	v2, err := Open(d.Crash(segment.CrashOptions{}, nil), Options{})
	if err != nil {
		t.Fatalf("open after a crash following a dropped damage: %v", err)
	}
	if err := v2.Check(); err != nil {
		t.Fatal(err)
	}
	v2.Close()
	v.Close()

	// Salvaging: everything but the file whose unit was damaged.
	d = copyDev(bad)
	v, err = Open(d, Options{LogDamage: SalvageDamage})
	if err != nil {
		t.Fatal(err)
	}
	if got := files(t, v, datas); fmt.Sprint(got) != fmt.Sprint(append(seq(0, 6), seq(7, n)...)) {
		t.Fatalf("after salvage: files %v", got)
	}
	if _, err := v.Repair(); err != nil {
		t.Fatal(err)
	}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
	v = reopen(t, v, d)
	v.Close()
}

// Damage in the last units, with nothing written after them, cannot be
// told from a torn tail: recovery takes it as the end of the log.
func TestDamageAtTheEndIsATail(t *testing.T) {
	dev, addrs, datas := syncedFiles(t, 5)
	dev.WriteAt(make([]byte, 4096), int64(addrs[4]))
	v, err := Open(dev, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if got := files(t, v, datas); fmt.Sprint(got) != fmt.Sprint(seq(0, 4)) {
		t.Fatalf("files %v", got)
	}
}

// A bad block anywhere in the synced log after the checkpoint never goes
// unnoticed: either it ends a tail with nothing proven after it (the last
// units), or Open refuses the log.
func TestEveryDamagedBlockIsFound(t *testing.T) {
	const n = 12
	dev, addrs, datas := syncedFiles(t, n)
	img := dev.Bytes()
	end := addrs[n-1] + 4096
	for at := addrs[0]; at < end; at += 4096 {
		d := segment.NewMemDevice(int64(len(img)))
		d.WriteAt(img, 0)
		d.WriteAt(make([]byte, 4096), int64(at))
		v, err := Open(d, Options{})
		if errors.Is(err, ErrLogDamaged) {
			continue
		}
		if err != nil {
			t.Fatalf("block at %d zeroed: %v", at, err)
		}
		// Accepted as a tail: only the last file may be gone.
		if got := files(t, v, datas); len(got) < n-1 {
			t.Fatalf("block at %d zeroed: open succeeded with files %v", at, got)
		}
		v.Close()
	}
}

// One flipped bit in either superblock slot, either copy, or anywhere in
// the current checkpoint unit or the copy of its record leaves a volume
// that opens read-write with every synced file intact.
func TestSingleBitFlipsInSuperblocksAndCheckpoint(t *testing.T) {
	dev, _, datas := syncedFiles(t, 6)
	// Take a checkpoint, then sync more files after it.
	v, err := Open(copyDev(dev), Options{CheckpointBytes: 1 << 40, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	dev = v.dev.(*segment.MemDevice)
	for i := 6; i < 9; i++ {
		a, _ := v.Create(RootIno, fmt.Sprintf("f%02d", i), 0o644, Owner{})
		data := bytes.Repeat([]byte{byte(i)}, 5000)
		v.Write(a.Ino, data, 0)
		v.Fsync(a.Ino)
		datas = append(datas, data)
	}
	ref := v.sb.Checkpoint
	s, _ := v.geo.SegmentOf(ref.Addr)
	place := segment.UnitPlace{Addr: ref.Addr, Split: uint32(v.log.SegEnd(s) - ref.Addr)}
	if ref.NextSeg < v.geo.Segments {
		place.Next = uint64(v.geo.SegmentOffset(ref.NextSeg))
	}
	copyAt := place.DevAddr(ref.Len)
	img := dev.Crash(segment.CrashOptions{}, nil) // pages shared, copied on write
	v.Close()
	try := func(what string, off uint64, bit int) {
		d := img.Crash(segment.CrashOptions{}, nil)
		var b [1]byte
		d.ReadAt(b[:], int64(off))
		b[0] ^= 1 << bit
		d.WriteAt(b[:], int64(off))
		v, err := Open(d, Options{})
		if err != nil {
			t.Fatalf("%s: bit %d of byte %d flipped: %v", what, bit, off, err)
		}
		defer v.Close()
		if got := files(t, v, datas); len(got) != len(datas) {
			t.Fatalf("%s: bit %d of byte %d flipped: files %v", what, bit, off, got)
		}
		if err := v.Check(); err != nil {
			t.Fatalf("%s: bit %d of byte %d flipped: %v", what, bit, off, err)
		}
	}
	n := 0
	for _, base := range []uint64{0, segment.CopyOffset, 4096, 4096 + segment.CopyOffset} {
		for off := base; off < base+segment.SuperSize; off += 3 {
			try("superblock", off, n%8)
			n++
		}
	}
	for off := ref.Addr; off < ref.Addr+uint64(ref.Len); off += 5 {
		try("checkpoint unit", off, n%8)
		n++
	}
	for off := copyAt; off < copyAt+uint64(ref.Len); off += 5 {
		try("copy of the checkpoint record", off, n%8)
		n++
	}
	t.Logf("%d single bit flips, each opened read-write with every synced file", n)
}

// A volume that uses a feature this txfs does not know is refused with a
// message that says so: an incompatible one always, a read-only
// compatible one for writing.
func TestUnknownFeaturesRefused(t *testing.T) {
	dev := segment.NewMemDevice(16 << 20)
	if err := Format(dev, FormatOptions{SegmentSize: 256 << 10}); err != nil {
		t.Fatal(err)
	}
	sb, _, err := segment.ReadSuperblock(dev)
	if err != nil {
		t.Fatal(err)
	}
	set := func(ro, in uint32) {
		s := *sb
		s.ROCompat, s.Incompat = ro, in
		segment.WriteSuperblock(dev, &s, 0)
		segment.WriteSuperblock(dev, &s, 1)
	}
	set(0, 1<<30)
	for _, ro := range []bool{false, true} {
		if _, err := Open(dev, Options{ReadOnly: ro}); !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "incompatible features") {
			t.Fatalf("unknown incompatible feature, read-only %v: %v", ro, err)
		}
	}
	set(1<<30, 0)
	if _, err := Open(dev, Options{}); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("unknown read-only compatible feature opened read-write: %v", err)
	}
	v, err := Open(dev, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("unknown read-only compatible feature opened read-only: %v", err)
	}
	v.Close()
}
