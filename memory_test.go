package txfs

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/txfs/txfs/segment"
)

// TestDirtyMetadataBounded: the metadata a checkpoint has yet to write
// stays within its share of the memory budget, give or take one
// transaction's, when much metadata changes for little log: a file of
// compressible data written and deleted.
func TestDirtyMetadataBounded(t *testing.T) {
	v, _ := newTestVolume(t, 512<<20, Options{CacheBytes: MinCacheBytes})
	f, err := v.Create(RootIno, "f", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	// A chunk of a delete changes up to 4096 DAT entries and block map
	// items: 32 DAT leaves and up to 60 tree leaves, in order.
	limit := v.mem.dirty + 100*(int64(v.bs)+1024)
	peak := int64(0)
	check := func(what string) {
		t.Helper()
		v.mu.Lock()
		d := v.dirtyMemory()
		v.mu.Unlock()
		peak = max(peak, d)
		if d > limit {
			t.Fatalf("%s: %d bytes of dirty metadata, share %d", what, d, v.mem.dirty)
		}
	}
	buf := bytes.Repeat([]byte("txfs"), 1<<18) // 1 MiB that compresses to almost nothing
	const mib = 256
	for i := range mib {
		if _, err := v.Write(f.Ino, buf, int64(i)<<20); err != nil {
			t.Fatal(err)
		}
		check("write")
	}
	if err := v.Unlink(RootIno, "f"); err != nil {
		t.Fatal(err)
	}
	check("unlink")
	t.Logf("dirty metadata at most %d bytes, share %d", peak, v.mem.dirty)
}

// memoryDirEnv names the directory where TestMemoryBound puts its image;
// the test runs only when it is set (scripts/test.sh sets it and runs the
// test without the race detector).
const memoryDirEnv = "TXFS_MEMORY_DIR"

// heapNow is the heap in use after a full collection: the live objects
// and the free space in the spans that hold them.
func heapNow() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// peakHeap samples heapNow while fn runs and returns the largest. Each
// sample holds the volume lock, so that nothing the engine allocates (and
// drops) while the collection runs counts as held.
func peakHeap(v *Volume, fn func()) int64 {
	sample := func() int64 {
		v.mu.Lock()
		defer v.mu.Unlock()
		return heapNow()
	}
	done := make(chan struct{})
	peak := make(chan int64)
	go func() {
		p := sample()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				peak <- max(p, sample())
				return
			case <-tick.C:
				p = max(p, sample())
			}
		}
	}()
	fn()
	close(done)
	return <-peak
}

// memoryVolume formats an image of 16 GiB in dir and opens it with a
// budget of budget bytes.
func memoryVolume(t *testing.T, dir, name string, budget int64) *Volume {
	t.Helper()
	dev, err := segment.CreateFile(filepath.Join(dir, name), 16<<30)
	if err != nil {
		t.Fatal(err)
	}
	if err := Format(dev, FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := Open(dev, Options{CacheBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	v.closeDev = true
	t.Cleanup(func() { v.Close() })
	return v
}

// heapBound checks heap measures against a bound and logs them.
type heapBound struct {
	t     *testing.T
	bound int64
}

func (b heapBound) check(what string, heap int64) {
	b.t.Helper()
	b.t.Logf("%-28s heap %4d MiB (bound %d MiB)", what, heap>>20, b.bound>>20)
	if heap > b.bound {
		b.t.Fatalf("%s: heap of %d MiB, over the bound of %d MiB", what, heap>>20, b.bound>>20)
	}
}

// TestMemoryBound: the engine's heap stays within its budget plus a fixed
// overhead however much is written. A file of 4 GiB is written and deleted
// with a budget of 16 MiB (a delete dirties 8 bytes of DAT entries per 4
// KiB freed, which stay in memory until a checkpoint writes them), and a
// million small files are made with the default budget. The caches are
// full after the first GiB and the first 500,000 files: measured there
// and at the end, after a sync (no units waiting, no dirty metadata), the
// heap is the same.
func TestMemoryBound(t *testing.T) {
	dir := os.Getenv(memoryDirEnv)
	if dir == "" || raceEnabled {
		t.Skipf("set %s to a directory on a disk, without -race, to run it (scripts/test.sh does)", memoryDirEnv)
	}
	dir, err := os.MkdirTemp(dir, "txfs-memory-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	const (
		overhead = 16 << 20 // the engine's fixed part of the bound (docs/DESIGN.md)
		margin   = 2 << 20  // what the heap may differ by once the caches are full
	)
	base := heapNow()

	const budget = 16 << 20
	v := memoryVolume(t, dir, "file.img", budget)
	b := heapBound{t, base + budget + overhead}
	f, err := v.Create(RootIno, "big", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(buf) // incompressible
	var first, last int64
	peak := peakHeap(v, func() {
		for i := range 4 << 10 {
			buf[0], buf[1] = byte(i), byte(i>>8)
			if _, err := v.Write(f.Ino, buf, int64(i)<<20); err != nil {
				t.Fatal(err)
			}
			if i%1024 == 1023 {
				if err := v.Sync(); err != nil {
					t.Fatal(err)
				}
				last = heapNow()
				b.check(fmt.Sprintf("%d GiB written", i/1024+1), last)
				if first == 0 {
					first = last
				}
			}
		}
	})
	b.check("peak while writing", peak)
	if last > first+margin {
		t.Fatalf("the heap grew by %d KiB from the first GiB to the last", (last-first)>>10)
	}
	peak = peakHeap(v, func() {
		if err := v.Unlink(RootIno, "big"); err != nil {
			t.Fatal(err)
		}
		if err := v.Sync(); err != nil {
			t.Fatal(err)
		}
	})
	b.check("peak while deleting", peak)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}

	v = memoryVolume(t, dir, "files.img", 0)
	b = heapBound{t, base + DefaultCacheBytes + overhead}
	small := make([]byte, 100)
	peak = peakHeap(v, func() {
		var d Attr
		for i := range 1_000_000 {
			if i%10000 == 0 {
				if d, err = v.Mkdir(RootIno, fmt.Sprint(i/10000), 0o755, Owner{}); err != nil {
					t.Fatal(err)
				}
			}
			a, err := v.Create(d.Ino, fmt.Sprint(i), 0o644, Owner{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Write(a.Ino, small, 0); err != nil {
				t.Fatal(err)
			}
			if i%250_000 == 249_999 {
				if err := v.Sync(); err != nil {
					t.Fatal(err)
				}
				last = heapNow()
				b.check(fmt.Sprintf("%d files", i+1), last)
				if i+1 == 500_000 {
					first = last
				}
			}
		}
	})
	b.check("peak while creating files", peak)
	if last > first+margin {
		t.Fatalf("the heap grew by %d KiB from 500,000 files to 1,000,000", (last-first)>>10)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
}
