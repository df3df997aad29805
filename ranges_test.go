package txfs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"testing"
)

// TestRangesAgainstModel mixes writes, hole punches, block-sharing copies,
// truncates, zero ranges, collapses and inserts on three files and
// compares every file with a model after every operation. Every other
// seed changes one block map item per transaction, so that range
// operations take many.
func TestRangesAgainstModel(t *testing.T) {
	defer func() { testRangeChunk = 0 }()
	for seed := int64(1); seed < 200; seed++ {
		testRangeChunk = int(seed % 2)
		rng := rand.New(rand.NewSource(seed))
		v, _ := newTestVolume(t, 32<<20, Options{})
		var inos []Ino
		data := make([][]byte, 3)
		for i := 0; i < 3; i++ {
			a, _ := v.Create(RootIno, fmt.Sprint(i), 0o644, Owner{})
			inos = append(inos, a.Ino)
		}
		var log []string
		for op := 0; op < 30; op++ {
			i := rng.Intn(3)
			switch rng.Intn(6) {
			case 0:
				off := rng.Intn(20000)
				d := make([]byte, rng.Intn(10000))
				rng.Read(d)
				v.Write(inos[i], d, int64(off))
				if len(d) > 0 {
					if off+len(d) > len(data[i]) {
						data[i] = append(data[i], make([]byte, off+len(d)-len(data[i]))...)
					}
					copy(data[i][off:], d)
				}
				log = append(log, fmt.Sprintf("write %d %d %d", i, off, len(d)))
			case 1:
				if len(data[i]) == 0 {
					continue
				}
				off := rng.Intn(len(data[i]))
				n := 1 + rng.Intn(len(data[i])-off+8192)
				v.PunchHole(inos[i], int64(off), int64(n))
				clear(data[i][off:min(len(data[i]), off+n)])
				log = append(log, fmt.Sprintf("punch %d %d %d", i, off, n))
			case 2:
				j := rng.Intn(3)
				if j == i {
					continue
				}
				so, do := rng.Intn(len(data[i])+1)/4096*4096, rng.Intn(len(data[j])+1)/4096*4096
				n := rng.Intn(20000)
				v.CopyRange(inos[i], int64(so), inos[j], int64(do), int64(n))
				want := min(n, max(0, len(data[i])-so))
				if want > 0 {
					part := append([]byte(nil), data[i][so:so+want]...)
					if do+want > len(data[j]) {
						data[j] = append(data[j], make([]byte, do+want-len(data[j]))...)
					}
					copy(data[j][do:], part)
				}
				log = append(log, fmt.Sprintf("copy %d %d -> %d %d n %d", i, so, j, do, n))
			case 3:
				size := rng.Intn(len(data[i]) + 5000)
				v.SetAttr(inos[i], &SetAttrIn{Valid: SetSize, Size: uint64(size)})
				if size < len(data[i]) {
					data[i] = data[i][:size]
				} else {
					data[i] = append(data[i], make([]byte, size-len(data[i]))...)
				}
				log = append(log, fmt.Sprintf("trunc %d %d", i, size))
			case 4, 5:
				mode, off, n := randomRange(rng, 4096, int64(len(data[i])))
				err, _ := engineFallocate(v, inos[i], mode, off, n)
				want, errno := rangeModel(data[i], 4096, mode, off, n)
				log = append(log, fmt.Sprintf("range %d mode %#x %d %d", i, mode, off, n))
				if errnoOf(err) != errno {
					t.Fatalf("seed %d op %d: %v, want errno %v\n%v", seed, op, err, errno, log)
				}
				data[i] = want
			}
			for k := 0; k < 3; k++ {
				got := make([]byte, len(data[k])+10)
				n, _ := v.Read(inos[k], got, 0)
				if !bytes.Equal(got[:n], data[k]) {
					t.Fatalf("seed %d op %d file %d differs (len %d want %d)\n%v", seed, op, k, n, len(data[k]), log)
				}
			}
		}
		if err := v.Check(); err != nil {
			t.Fatalf("seed %d: %v\n%v", seed, err, log)
		}
		v.Close()
	}
}

func TestSeekDataAndHoles(t *testing.T) {
	v, _ := newTestVolume(t, 32<<20, Options{})
	a, _ := v.Create(RootIno, "f", 0o644, Owner{})
	// data at blocks 2-3 and 10; size ends inside block 12's hole.
	v.Write(a.Ino, make([]byte, 8192), 2*4096)
	v.Write(a.Ino, []byte("x"), 10*4096+5)
	v.SetAttr(a.Ino, &SetAttrIn{Valid: SetSize, Size: 12*4096 + 100})
	for _, c := range []struct {
		off  int64
		hole bool
		want int64
	}{
		{0, false, 2 * 4096}, {0, true, 0}, {2 * 4096, true, 4 * 4096}, {3*4096 + 7, false, 3*4096 + 7},
		{4 * 4096, false, 10 * 4096}, {10 * 4096, true, 11 * 4096}, {11 * 4096, true, 11 * 4096},
	} {
		got, err := v.Seek(a.Ino, c.off, c.hole)
		if err != nil || got != c.want {
			t.Errorf("Seek(%d, hole=%v) = %d, %v; want %d", c.off, c.hole, got, err, c.want)
		}
	}
	if _, err := v.Seek(a.Ino, 11*4096, false); !errors.Is(err, ErrNoData) {
		t.Errorf("no data after the last block: %v", err)
	}
	if _, err := v.Seek(a.Ino, 12*4096+100, true); !errors.Is(err, ErrNoData) {
		t.Errorf("at the end: %v", err)
	}
}

func TestCopyRangeSharesBlocks(t *testing.T) {
	v, dev := newTestVolume(t, 64<<20, Options{})
	a, _ := v.Create(RootIno, "a", 0o644, Owner{})
	b, _ := v.Create(RootIno, "b", 0o644, Owner{})
	data := make([]byte, 8<<20)
	rand.New(rand.NewSource(1)).Read(data)
	v.Write(a.Ino, data, 0)
	v.Sync()
	before, _ := v.Statfs()
	if n, err := v.CopyRange(a.Ino, 0, b.Ino, 0, 1<<30); err != nil || n != int64(len(data)) {
		t.Fatalf("copy: %d %v", n, err)
	}
	v.Sync()
	after, _ := v.Statfs()
	// Signed: what the checkpoint rewrote leaves dead space that df counts
	// as free, so free space may even grow.
	if used := int64(before.Bfree) - int64(after.Bfree); used > 64 {
		t.Fatalf("an 8 MiB copy used %d blocks: blocks were not shared", used)
	}
	// Writing to one copy leaves the other alone.
	v.Write(b.Ino, []byte("changed"), 4096)
	v = reopen(t, v, dev)
	got := make([]byte, len(data))
	v.Read(a.Ino, got, 0)
	if !bytes.Equal(got, data) {
		t.Fatal("the source changed")
	}
	v.Read(b.Ino, got, 0)
	if string(got[4096:4103]) != "changed" || !bytes.Equal(got[:4096], data[:4096]) {
		t.Fatal("the copy is wrong")
	}
	v.Close()
}
