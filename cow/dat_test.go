package cow

import (
	"errors"
	"math/rand"
	"testing"

	"github.com/txfs/txfs/segment"
)

func memDAT(t *testing.T) (*DAT, func() *DAT) {
	dev := segment.NewMemDevice(64 << 20)
	next := uint64(4096)
	read := func(addr uint64, buf []byte) error { _, err := dev.ReadAt(buf, int64(addr)); return err }
	put := func(level int, index uint64, old segment.BlockPtr, raw []byte) (segment.BlockPtr, error) {
		addr := next
		next += uint64(len(raw))
		_, err := dev.WriteAt(raw, int64(addr))
		return segment.BlockPtr{Addr: addr, Sum: segment.Checksum(raw)}, err
	}
	d := Open(State{}, 4096, read, 2)
	return d, func() *DAT {
		if err := d.Flush(put); err != nil {
			t.Fatal(err)
		}
		d = Open(d.State(), 4096, read, 2)
		return d
	}
}

// checkFreeList walks the list both ways and compares with the model.
func checkFreeList(t *testing.T, d *DAT, free map[uint64]bool) {
	t.Helper()
	n, prev := 0, uint64(0)
	for v := d.st.FreeHead; v != 0; n++ {
		e, err := d.Get(v)
		if err != nil || !e.Free() || !free[v] || e.Sum != prev {
			t.Fatalf("free list at %d: %+v %v (in model %v, prev %d)", v, e, err, free[v], prev)
		}
		prev, v = v, e.Addr
	}
	if n != len(free) || uint64(n) != d.st.FreeCount {
		t.Fatalf("free list has %d, model %d, count %d", n, len(free), d.st.FreeCount)
	}
}

func TestDATModel(t *testing.T) {
	d, reload := memDAT(t)
	rng := rand.New(rand.NewSource(1))
	refs := map[uint64]uint32{}
	free := map[uint64]bool{}
	for i := 0; i < 20000; i++ {
		switch k := rng.Intn(10); {
		case k < 4:
			v, err := d.alloc()
			if err != nil || refs[v] != 0 {
				t.Fatalf("alloc %d: %v (refs %d)", v, err, refs[v])
			}
			refs[v] = 1
			delete(free, v)
		case k < 5:
			// Replay allocates exactly: a free block or one past the end.
			v := uint64(rng.Intn(int(d.Count()) + 3))
			if v == 0 || refs[v] != 0 {
				continue
			}
			for c := d.Count(); c < v; c++ {
				free[c] = true
			}
			if err := d.allocExact(v); err != nil {
				t.Fatal(err)
			}
			refs[v] = 1
			delete(free, v)
		case k < 8 && len(refs) > 0:
			for v := range refs {
				_, freed, err := d.addRef(v, -1)
				if err != nil {
					t.Fatal(err)
				}
				if refs[v]--; refs[v] == 0 {
					delete(refs, v)
					free[v] = true
					if !freed {
						t.Fatal("not freed at zero")
					}
				}
				break
			}
		case k < 9 && len(refs) > 0:
			for v := range refs {
				if _, err := d.setLoc(v, uint64(rng.Int63()), 100, FlagLZ4, 7); err != nil {
					t.Fatal(err)
				}
				if _, _, err := d.addRef(v, 1); err != nil {
					t.Fatal(err)
				}
				refs[v]++
				break
			}
		default:
			d = reload()
		}
	}
	checkFreeList(t, d, free)
	for v, n := range refs {
		e, err := d.Live(v)
		if err != nil || e.Refs != n {
			t.Fatalf("block %d: %+v %v, want %d refs", v, e, err, n)
		}
	}
}

func TestDATErrors(t *testing.T) {
	d, _ := memDAT(t)
	v, _ := d.alloc()
	if err := d.allocExact(v); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("double allocation: %v", err)
	}
	if _, _, err := d.addRef(v, -2); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("negative count: %v", err)
	}
	if _, err := d.Get(v + 5); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("out of range: %v", err)
	}
	d.addRef(v, -1)
	if _, err := d.Live(v); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("free block as live: %v", err)
	}
}
