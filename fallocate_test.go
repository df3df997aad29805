package txfs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/txfs/txfs/internal/falloctab"
	"github.com/txfs/txfs/segment"
)

// engineFallocate calls the engine's operation for a fallocate mode, and
// says false for the modes the engine has none for (the VFS refuses those
// combinations, or they are no operation on data).
func engineFallocate(v *Volume, ino Ino, mode uint32, off, length int64) (error, bool) {
	switch mode {
	case falloctab.CollapseRange:
		return v.CollapseRange(ino, off, length), true
	case falloctab.InsertRange:
		return v.InsertRange(ino, off, length), true
	case falloctab.ZeroRange, falloctab.ZeroRange | falloctab.KeepSize:
		return v.ZeroRange(ino, off, length, mode&falloctab.KeepSize != 0), true
	case falloctab.PunchHole | falloctab.KeepSize:
		return v.PunchHole(ino, off, length), true
	case 0, falloctab.KeepSize:
		return v.Allocate(ino, off, length, mode == falloctab.KeepSize), true
	}
	return nil, false
}

// engineState reads what falloctab.Check compares.
func engineState(t *testing.T, v *Volume, ino Ino, content bool) falloctab.State {
	t.Helper()
	a, err := v.GetAttr(ino)
	if err != nil {
		t.Fatal(err)
	}
	s, err := falloctab.StateOf(int64(a.Size), a.Mode, [2]int64{a.Mtime.Sec, int64(a.Mtime.Nsec)},
		[2]int64{a.Ctime.Sec, int64(a.Ctime.Nsec)}, content, func(b []byte) (int, error) { return v.Read(ino, b, 0) })
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFallocateLikeExt4 runs the cases of testdata/fallocate.txt that the
// engine has an operation for, and requires what ext4 does: the errors,
// the sizes, the contents and the times. The engine changes nothing when
// it refuses (the mount marks the file changed then, as ext4 does). With
// chunks of one item every operation takes several transactions.
func TestFallocateLikeExt4(t *testing.T) {
	for _, chunk := range []int{0, 1} {
		t.Run(fmt.Sprintf("chunk=%d", chunk), func(t *testing.T) {
			testRangeChunk = chunk
			defer func() { testRangeChunk = 0 }()
			v, _ := newTestVolume(t, 32<<20, Options{})
			bs := int64(v.bs)
			cases, err := falloctab.Load(bs, MaxFileSize)
			if err != nil {
				t.Fatal(err)
			}
			ran := 0
			for i, c := range cases {
				a, err := v.Create(RootIno, fmt.Sprint(i), 0o6755, Owner{Uid: 1000, Gid: 1000})
				if err != nil {
					t.Fatal(err)
				}
				if content := falloctab.Content(c, bs); content != nil {
					if _, err := v.Write(a.Ino, content, 0); err != nil {
						t.Fatal(err)
					}
				} else if _, err := v.SetAttr(a.Ino, &SetAttrIn{Valid: SetSize, Size: uint64(c.Size)}); err != nil {
					t.Fatal(err)
				}
				old := Timespec{Sec: 1000000}
				if _, err := v.SetAttr(a.Ino, &SetAttrIn{Valid: SetMtime | SetCtime, Mtime: old, Ctime: old}); err != nil {
					t.Fatal(err)
				}
				before := engineState(t, v, a.Ino, !c.Sparse(bs))
				err, ok := engineFallocate(v, a.Ino, c.Mode, c.Off, c.Len)
				if !ok {
					continue
				}
				ran++
				after := engineState(t, v, a.Ino, !c.Sparse(bs))
				if bad := falloctab.Check(c, bs, errnoOf(err), before, after, err == nil, false); len(bad) > 0 {
					t.Errorf("%s (%+v): %v", c.Name, c, bad)
				}
				if err := v.Check(); err != nil {
					t.Fatalf("%s: check: %v", c.Name, err)
				}
			}
			if ran < 30 {
				t.Fatalf("only %d cases ran", ran)
			}
		})
	}
}

var errStop = errors.New("stopped by the test")

// rangeFixture is a volume with a file f of 40 blocks and a bit, which
// has a hole at blocks 10-12 and shares blocks 20-29 with file other.
type rangeFixture struct {
	v           *Volume
	dev         *segment.MemDevice
	f, other    Ino
	data, odata []byte
}

func newRangeFixture(t *testing.T) *rangeFixture {
	t.Helper()
	v, dev := newTestVolume(t, 32<<20, Options{})
	x := &rangeFixture{v: v, dev: dev}
	bs := int64(v.bs)
	rng := rand.New(rand.NewSource(1))
	x.odata = make([]byte, 40*bs)
	rng.Read(x.odata)
	x.data = falloctab.Content(falloctab.Case{Size: 40*bs + 123}, bs)
	for _, it := range []struct {
		ino  *Ino
		name string
		data []byte
	}{{&x.f, "f", x.data}, {&x.other, "other", x.odata}} {
		a, err := v.Create(RootIno, it.name, 0o644, Owner{})
		if err != nil {
			t.Fatal(err)
		}
		*it.ino = a.Ino
		if _, err := v.Write(a.Ino, it.data, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := v.CopyRange(x.other, 20*bs, x.f, 20*bs, 10*bs); err != nil || n != 10*bs {
		t.Fatalf("copy: %d %v", n, err)
	}
	copy(x.data[20*bs:30*bs], x.odata[20*bs:30*bs])
	if err := v.PunchHole(x.f, 10*bs, 3*bs); err != nil {
		t.Fatal(err)
	}
	clear(x.data[10*bs : 13*bs])
	return x
}

// read returns the whole of file ino.
func readAll(t *testing.T, v *Volume, ino Ino) []byte {
	t.Helper()
	a, err := v.GetAttr(ino)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, a.Size)
	if n, err := v.Read(ino, b, 0); err != nil || n != len(b) {
		t.Fatalf("read: %d of %d, %v", n, len(b), err)
	}
	return b
}

// rangeCall is a range operation on the fixture's f, with its mode for
// falloctab.Want.
type rangeCall struct {
	name      string
	mode      uint32
	off, len_ int64 // in blocks, plus bytes
}

func (c rangeCall) run(x *rangeFixture) error {
	err, _ := engineFallocate(x.v, x.f, c.mode, c.off, c.len_)
	return err
}

func (c rangeCall) want(data []byte) []byte {
	return falloctab.Want(falloctab.Case{Size: int64(len(data)), Mode: c.mode, Off: c.off, Len: c.len_}, data)
}

func rangeCalls(bs int64) []rangeCall {
	return []rangeCall{
		{"collapse", falloctab.CollapseRange, 5 * bs, 7 * bs},
		{"insert", falloctab.InsertRange, 5 * bs, 7 * bs},
		{"zero", falloctab.ZeroRange, 100, 30 * bs},
		{"zero past the end", falloctab.ZeroRange, 35 * bs, 10 * bs},
		{"punch", falloctab.PunchHole | falloctab.KeepSize, 3*bs + 5, 20 * bs},
	}
}

// TestRangeInterrupted stops every range operation after its first
// transaction, with the rest in the range item, and requires that the
// checker accepts the volume so, and that whatever touches the file next
// finishes the operation first: a read, a seek, a write, a truncate, a
// copy from or into the file, its unlink, and Open after a crash, also
// read-only.
func TestRangeInterrupted(t *testing.T) {
	finishers := []struct {
		name string
		do   func(t *testing.T, x *rangeFixture, want []byte) []byte // returns what f must hold
	}{
		{"read", func(t *testing.T, x *rangeFixture, want []byte) []byte { return want }},
		{"seek", func(t *testing.T, x *rangeFixture, want []byte) []byte {
			if _, err := x.v.Seek(x.f, 0, true); err != nil {
				t.Fatal(err)
			}
			return want
		}},
		{"write", func(t *testing.T, x *rangeFixture, want []byte) []byte {
			if _, err := x.v.Write(x.f, []byte("written"), 7); err != nil {
				t.Fatal(err)
			}
			copy(want[7:], "written")
			return want
		}},
		{"truncate", func(t *testing.T, x *rangeFixture, want []byte) []byte {
			if _, err := x.v.SetAttr(x.f, &SetAttrIn{Valid: SetSize, Size: 3*4096 + 17}); err != nil {
				t.Fatal(err)
			}
			return want[:3*4096+17]
		}},
		{"copy from", func(t *testing.T, x *rangeFixture, want []byte) []byte {
			a, _ := x.v.Create(RootIno, "copy", 0o644, Owner{})
			if n, err := x.v.CopyRange(x.f, 0, a.Ino, 0, 1<<30); err != nil || n != int64(len(want)) {
				t.Fatalf("copy: %d %v", n, err)
			}
			if got := readAll(t, x.v, a.Ino); !bytes.Equal(got, want) {
				t.Fatal("the copy differs")
			}
			return want
		}},
		{"copy into", func(t *testing.T, x *rangeFixture, want []byte) []byte {
			if n, err := x.v.CopyRange(x.other, 0, x.f, 0, 4*4096); err != nil || n != 4*4096 {
				t.Fatalf("copy: %d %v", n, err)
			}
			copy(want, x.odata[:4*4096])
			return want
		}},
		{"unlink", func(t *testing.T, x *rangeFixture, want []byte) []byte {
			if err := x.v.Unlink(RootIno, "f"); err != nil {
				t.Fatal(err)
			}
			return nil
		}},
	}
	for _, call := range rangeCalls(4096) {
		for _, fin := range finishers {
			t.Run(call.name+"/"+fin.name, func(t *testing.T) {
				x := newRangeFixture(t)
				want := call.want(x.data)
				stopAfterFirst(t, x, call)
				if want = fin.do(t, x, want); want != nil {
					if got := readAll(t, x.v, x.f); !bytes.Equal(got, want) {
						t.Fatalf("f differs from the model (%d bytes, want %d)", len(got), len(want))
					}
				}
				if _, ok, _ := x.v.pendingRange(x.f); ok {
					t.Fatal("the range item is still there")
				}
				if got := readAll(t, x.v, x.other); !bytes.Equal(got, x.odata) {
					t.Fatal("the file sharing blocks changed")
				}
			})
		}
		for _, ro := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/crash, read-only %v", call.name, ro), func(t *testing.T) {
				x := newRangeFixture(t)
				want := call.want(x.data)
				stopAfterFirst(t, x, call)
				if err := x.v.Sync(); err != nil {
					t.Fatal(err)
				}
				v, err := Open(x.dev.Crash(segment.CrashOptions{KeepPrefix: 0}, nil), Options{ReadOnly: ro})
				if err != nil {
					t.Fatal(err)
				}
				defer v.Close()
				if !ro && !strings.Contains(strings.Join(v.opened, "\n"), "range operation") {
					t.Errorf("Open did not say it finished the range operation: %q", v.opened)
				}
				if err := v.Check(); err != nil {
					t.Fatalf("check: %v", err)
				}
				if got := readAll(t, v, x.f); !bytes.Equal(got, want) {
					t.Fatalf("f differs from the model (%d bytes, want %d)", len(got), len(want))
				}
				if _, ok, _ := v.pendingRange(x.f); ok != ro {
					t.Fatalf("range item there: %v; a read-only volume keeps it (it writes nothing), a read-write Open finishes it", ok)
				}
				if err := v.Check(); err != nil {
					t.Fatalf("check after the read: %v", err)
				}
			})
		}
	}
}

// stopAfterFirst runs call with chunks of two items and stops it after
// its first transaction.
func stopAfterFirst(t *testing.T, x *rangeFixture, call rangeCall) {
	t.Helper()
	testRangeChunk = 2
	testHookRangeStep = func(*Volume, Ino) error { return errStop }
	defer func() { testRangeChunk, testHookRangeStep = 0, nil }()
	if err := call.run(x); !errors.Is(err, errStop) {
		t.Fatalf("%s: %v, want it stopped after the first transaction", call.name, err)
	}
	if _, ok, _ := x.v.pendingRange(x.f); !ok {
		t.Fatal("no range item")
	}
	if err := x.v.Check(); err != nil {
		t.Fatalf("check of the volume with the operation half done: %v", err)
	}
}

// rangeModel is what a range operation (a fallocate mode the engine has)
// must do to a file holding data, by ext4's rules (testdata/fallocate.txt):
// the content after it, or the errno it fails with.
func rangeModel(data []byte, bs int64, mode uint32, off, n int64) ([]byte, syscall.Errno) {
	size := int64(len(data))
	switch mode {
	case falloctab.CollapseRange:
		if off%bs != 0 || n%bs != 0 || off+n >= size {
			return data, syscall.EINVAL
		}
	case falloctab.InsertRange:
		if off%bs != 0 || n%bs != 0 {
			return data, syscall.EINVAL
		}
		if n > MaxFileSize-size {
			return data, syscall.EFBIG
		}
		if off >= size {
			return data, syscall.EINVAL
		}
	}
	return falloctab.Want(falloctab.Case{Size: size, Mode: mode, Off: off, Len: n}, append([]byte{}, data...)), 0
}

// randomRange draws a range operation for a file of size bytes: mostly
// aligned and inside the file, sometimes not.
func randomRange(rng *rand.Rand, bs, size int64) (mode uint32, off, n int64) {
	mode = []uint32{falloctab.CollapseRange, falloctab.InsertRange, falloctab.ZeroRange,
		falloctab.ZeroRange | falloctab.KeepSize}[rng.Intn(4)]
	blocks := size/bs + 1
	off, n = rng.Int63n(blocks+1)*bs, (1+rng.Int63n(blocks))*bs
	if mode == falloctab.InsertRange {
		n = (1 + rng.Int63n(16)) * bs
	}
	if mode&falloctab.ZeroRange != 0 || rng.Intn(8) == 0 {
		off, n = rng.Int63n(size+2*bs), 1+rng.Int63n(blocks*bs)
	}
	return mode, off, n
}

// TestRangeBigFile collapses, inserts and zeroes in a file with more
// blocks than one transaction changes, at the default chunk size.
func TestRangeBigFile(t *testing.T) {
	v, dev := newTestVolume(t, 64<<20, Options{})
	bs := int64(v.bs)
	nb := int64(v.rangeChunkItems()) + 900
	a, _ := v.Create(RootIno, "big", 0o644, Owner{})
	// Block i starts with its number; the rest is zeros (compressible).
	data := make([]byte, nb*bs)
	for i := int64(0); i < nb; i++ {
		copy(data[i*bs:], fmt.Sprintf("block %d", i))
	}
	if _, err := v.Write(a.Ino, data, 0); err != nil {
		t.Fatal(err)
	}
	steps := 0
	testHookRangeStep = func(*Volume, Ino) error { steps++; return nil }
	defer func() { testHookRangeStep = nil }()
	for _, c := range []struct {
		mode   uint32
		off, n int64
	}{
		{falloctab.CollapseRange, 3 * bs, 5 * bs},
		{falloctab.InsertRange, bs, 7 * bs},
		{falloctab.InsertRange, 0, bs},
		{falloctab.CollapseRange, 0, 2 * bs},
		{falloctab.ZeroRange, 100, (nb - 50) * bs},
	} {
		steps = 0
		err, _ := engineFallocate(v, a.Ino, c.mode, c.off, c.n)
		if err != nil {
			t.Fatalf("mode %#x: %v", c.mode, err)
		}
		if steps == 0 {
			t.Errorf("mode %#x of %d blocks took one transaction", c.mode, nb)
		}
		data, _ = rangeModel(data, bs, c.mode, c.off, c.n)
		if got := readAll(t, v, a.Ino); !bytes.Equal(got, data) {
			t.Fatalf("mode %#x: the file differs from the model", c.mode)
		}
	}
	v = reopen(t, v, dev)
	defer v.Close()
	if got := readAll(t, v, a.Ino); !bytes.Equal(got, data) {
		t.Fatal("after reopen the file differs from the model")
	}
}

// TestRangeNotRegular: the range operations are for regular files.
func TestRangeNotRegular(t *testing.T) {
	v, _ := newTestVolume(t, 32<<20, Options{})
	d, _ := v.Mkdir(RootIno, "d", 0o755, Owner{})
	l, _ := v.Symlink(RootIno, "l", "target", Owner{})
	p, _ := v.Mknod(RootIno, "p", syscall.S_IFIFO|0o644, 0, Owner{})
	for _, mode := range []uint32{falloctab.CollapseRange, falloctab.InsertRange, falloctab.ZeroRange, falloctab.PunchHole | falloctab.KeepSize} {
		err, _ := engineFallocate(v, d.Ino, mode, 0, 4096)
		mustErr(t, err, ErrIsDir)
		for _, ino := range []Ino{l.Ino, p.Ino} {
			err, _ := engineFallocate(v, ino, mode, 0, 4096)
			mustErr(t, err, ErrInvalid)
		}
		err, _ = engineFallocate(v, 999, mode, 0, 4096)
		mustErr(t, err, ErrNotExist)
	}
}

// TestRangeBlockedByFullVolume stops every range operation after each of
// its transactions in turn as a full volume would (ENOSPC before the
// next), and requires that the file reads and seeks as the finished
// operation leaves it meanwhile: a read must not fail with ENOSPC, nor
// show the block map half changed. Once space comes back, a read
// finishes the operation.
func TestRangeBlockedByFullVolume(t *testing.T) {
	defer func() { testRangeChunk, testHookRangeStep = 0, nil }()
	for _, call := range rangeCalls(4096) {
		for steps := 0; ; steps++ {
			testRangeChunk, testHookRangeStep = 0, nil
			x := newRangeFixture(t)
			want := call.want(append([]byte{}, x.data...))
			testRangeChunk = 2
			full := false
			left := steps
			testHookRangeStep = func(*Volume, Ino) error {
				if full || left == 0 {
					full = true
					return ErrNoSpace
				}
				left--
				return nil
			}
			if err := call.run(x); err != nil {
				t.Fatalf("%s, full after %d more steps: %v", call.name, steps, err)
			}
			if !full {
				t.Logf("%s: read and seeks checked with the volume full after each of its %d transactions", call.name, steps)
				break
			}
			if _, ok, _ := x.v.pendingRange(x.f); !ok {
				t.Fatalf("%s: the hook stopped it but no range item is left", call.name)
			}
			if err := x.v.Check(); err != nil {
				t.Fatalf("%s, stopped after %d more steps: check: %v", call.name, steps, err)
			}
			if got := readAll(t, x.v, x.f); !bytes.Equal(got, want) {
				t.Fatalf("%s, stopped after %d more steps: the file reads as %s, want %s", call.name, steps, blockSummary(got), blockSummary(want))
			}
			seeks := seekTable(t, x.v, x.f, int64(len(want)))
			if _, ok, _ := x.v.pendingRange(x.f); !ok {
				t.Fatalf("%s: the range operation finished on a full volume", call.name)
			}
			testHookRangeStep = nil
			if got := readAll(t, x.v, x.f); !bytes.Equal(got, want) {
				t.Fatalf("%s, finished after %d steps: the file differs from the model", call.name, steps)
			}
			if _, ok, _ := x.v.pendingRange(x.f); ok {
				t.Fatalf("%s: a read with space did not finish the range operation", call.name)
			}
			if after := seekTable(t, x.v, x.f, int64(len(want))); !slices.Equal(seeks, after) {
				t.Fatalf("%s, stopped after %d more steps: seeks %v, once finished %v", call.name, steps, seeks, after)
			}
			if err := x.v.Check(); err != nil {
				t.Fatalf("%s: check after it finished: %v", call.name, err)
			}
		}
	}
}

// seekTable is SEEK_DATA and SEEK_HOLE from every block boundary of a
// file of size bytes, and from the middle of each block (-1: ENXIO).
func seekTable(t *testing.T, v *Volume, ino Ino, size int64) []int64 {
	t.Helper()
	var out []int64
	for off := int64(0); off <= size; off += 2048 {
		for _, hole := range []bool{false, true} {
			got, err := v.Seek(ino, off, hole)
			if errors.Is(err, ErrNoData) {
				got = -1
			} else if err != nil {
				t.Fatalf("seek %d hole %v: %v", off, hole, err)
			}
			out = append(out, got)
		}
	}
	return out
}

// blockSummary describes data block by block: the first byte of each
// 4 KiB, or "0" for a block of zeros.
func blockSummary(data []byte) string {
	var b strings.Builder
	for off := 0; off < len(data); off += 4096 {
		blk := data[off:min(off+4096, len(data))]
		if !slices.ContainsFunc(blk, func(c byte) bool { return c != 0 }) {
			b.WriteString(" 0")
		} else {
			fmt.Fprintf(&b, " %02x", blk[0])
		}
	}
	return b.String()
}

// A range operation a crash interrupted on a volume that has no room to
// finish it at Open is left for later, and Open says so; the file reads as
// the finished operation leaves it meanwhile, and once there is room a
// checkpoint's retry finishes it.
func TestRangeLeftAtOpenForLackOfSpace(t *testing.T) {
	defer func() { testRangeChunk, testHookRangeStep = 0, nil }()
	for _, call := range rangeCalls(4096) {
		x := newRangeFixture(t)
		want := call.want(append([]byte{}, x.data...))
		stopAfterFirst(t, x, call)
		if err := x.v.Sync(); err != nil {
			t.Fatal(err)
		}
		testHookRangeStep = func(*Volume, Ino) error { return ErrNoSpace }
		v, err := Open(x.dev.Crash(segment.CrashOptions{KeepPrefix: 0}, nil), Options{})
		if err != nil {
			t.Fatalf("%s: open: %v", call.name, err)
		}
		if said := strings.Join(v.opened, "\n"); !strings.Contains(said, fmt.Sprintf("left the interrupted range operation of inode %d for later: no space yet", x.f)) {
			t.Fatalf("%s: Open said %q", call.name, said)
		}
		if got := readAll(t, v, x.f); !bytes.Equal(got, want) {
			t.Fatalf("%s: before it finished the file reads as %s, want %s", call.name, blockSummary(got), blockSummary(want))
		}
		if err := v.Check(); err != nil {
			t.Fatalf("%s: check: %v", call.name, err)
		}
		testHookRangeStep = nil
		v.mu.Lock()
		err = v.retryDeferred()
		_, pending, _ := v.pendingRange(x.f)
		v.mu.Unlock()
		if err != nil || pending {
			t.Fatalf("%s: retry with room: %v, still pending %v", call.name, err, pending)
		}
		if got := readAll(t, v, x.f); !bytes.Equal(got, want) {
			t.Fatalf("%s: once finished the file differs from the model", call.name)
		}
		if err := v.Check(); err != nil {
			t.Fatalf("%s: check once finished: %v", call.name, err)
		}
		if err := v.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
