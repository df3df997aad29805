package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// devPattern returns n bytes derived from seed, so that writes can be told
// apart byte by byte. No byte is 0xAA, the fill used for old contents.
func devPattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((seed*131 + i*7) % 170) // < 0xAA
	}
	return b
}

// devFill returns n copies of c.
func devFill(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }

// testDeviceContract checks the behaviour every Device must share. dev must
// be zero-filled, writable and at least 64 KiB.
func testDeviceContract(t *testing.T, dev Device) {
	t.Helper()
	size := dev.Size()

	// Read your writes, across a page boundary.
	data := devPattern(1, 5000)
	if n, err := dev.WriteAt(data, 3000); n != len(data) || err != nil {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	got := make([]byte, 6000)
	if n, err := dev.ReadAt(got, 2500); n != len(got) || err != nil {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	want := append(append(make([]byte, 500), data...), make([]byte, 500)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("read back differs from what was written")
	}
	if err := dev.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}

	// Writes must fit entirely or not happen at all.
	tail := devFill(0xAA, 20)
	if n, err := dev.WriteAt(tail, size-10); n != 0 || !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("WriteAt past the end = %d, %v; want 0, ErrOutOfRange", n, err)
	}
	if _, err := dev.WriteAt(tail, -1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("WriteAt at -1: %v; want ErrOutOfRange", err)
	}
	if n, err := dev.WriteAt(tail, size-20); n != 20 || err != nil {
		t.Fatalf("WriteAt ending exactly at Size = %d, %v", n, err)
	}

	// Reads past the end follow io.ReaderAt.
	buf := make([]byte, 30)
	n, err := dev.ReadAt(buf, size-10)
	if n != 10 || err != io.EOF || !bytes.Equal(buf[:10], tail[:10]) {
		t.Fatalf("ReadAt across the end = %d, %v, %x", n, err, buf[:n])
	}
	if n, err := dev.ReadAt(buf, size); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt at Size = %d, %v; want 0, EOF", n, err)
	}
	if _, err := dev.ReadAt(buf, -5); err == nil {
		t.Fatalf("ReadAt at a negative offset succeeded")
	}

	// After Close everything fails with os.ErrClosed.
	if err := dev.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := dev.ReadAt(buf, 0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("ReadAt after Close: %v", err)
	}
	if _, err := dev.WriteAt(buf, 0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("WriteAt after Close: %v", err)
	}
	if err := dev.Sync(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Sync after Close: %v", err)
	}
	if err := dev.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

func TestFileDeviceContract(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	dev, err := CreateFile(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	testDeviceContract(t, dev)
}

func TestMemDeviceContract(t *testing.T) {
	testDeviceContract(t, NewMemDevice(1<<20))
}

func TestFileDeviceCreateReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	const size = 8 << 20
	dev, err := CreateFile(path, size)
	if err != nil {
		t.Fatal(err)
	}
	if dev.Size() != size || dev.Path() != path {
		t.Fatalf("Size, Path = %d, %q", dev.Size(), dev.Path())
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() != size {
		t.Fatalf("stat: %v, size %d", err, st.Size())
	}
	data := devPattern(2, 10000)
	if _, err := dev.WriteAt(data, size/2); err != nil {
		t.Fatal(err)
	}
	if err := dev.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}

	ro, err := OpenFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if ro.Size() != size {
		t.Fatalf("reopened Size = %d", ro.Size())
	}
	if ro.Fd() == ^uintptr(0) {
		t.Fatalf("Fd of an open device is invalid")
	}
	got := make([]byte, len(data))
	if _, err := ro.ReadAt(got, size/2); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reopened contents differ (err %v)", err)
	}
	if _, err := ro.WriteAt(data, 0); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("WriteAt on a read-only device: %v; want os.ErrPermission", err)
	}
	if err := ro.Sync(); err != nil {
		t.Fatalf("Sync on a read-only device: %v", err)
	}

	rw, err := OpenFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if _, err := rw.WriteAt(data, 0); err != nil {
		t.Fatalf("WriteAt on a read-write device: %v", err)
	}
}

func TestFileDeviceCreateRefusesExisting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if dev, err := CreateFile(path, 1<<20); !errors.Is(err, os.ErrExist) {
		if dev != nil {
			dev.Close()
		}
		t.Fatalf("CreateFile over an existing file: %v; want os.ErrExist", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatalf("existing file was modified: %q", b)
	}
}

func TestFileDeviceOpenMissing(t *testing.T) {
	if _, err := OpenFile(filepath.Join(t.TempDir(), "nope"), false); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenFile of a missing path: %v", err)
	}
}

// TestMemDeviceReadYourWrites compares random writes and reads against a
// flat byte slice.
func TestMemDeviceReadYourWrites(t *testing.T) {
	const size = 1 << 20
	rng := rand.New(rand.NewSource(1))
	dev := NewMemDevice(size)
	model := make([]byte, size)
	for i := range 500 {
		n := 1 + rng.Intn(3*memPageSize)
		off := rng.Int63n(size - int64(n) + 1)
		data := devPattern(i, n)
		if _, err := dev.WriteAt(data, off); err != nil {
			t.Fatal(err)
		}
		copy(model[off:], data)
		if i%50 == 0 {
			if err := dev.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		rn := 1 + rng.Intn(3*memPageSize)
		roff := rng.Int63n(size - int64(rn) + 1)
		got := make([]byte, rn)
		if _, err := dev.ReadAt(got, roff); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, model[roff:roff+int64(rn)]) {
			t.Fatalf("step %d: ReadAt(%d, %d) differs from the model", i, rn, roff)
		}
	}
	if !bytes.Equal(dev.Bytes(), model) {
		t.Fatalf("Bytes differs from the model")
	}
	if got, want := dev.WriteCount(), 500; got != want {
		t.Errorf("WriteCount = %d, want %d", got, want)
	}
	if got, want := dev.SyncCount(), 10; got != want {
		t.Errorf("SyncCount = %d, want %d", got, want)
	}
}

// memSetup returns a 64 KiB device whose durable contents are all 0xAA, and
// a copy of those contents.
func memSetup(t *testing.T) (*MemDevice, []byte) {
	t.Helper()
	dev := NewMemDevice(64 << 10)
	base := devFill(0xAA, 64<<10)
	if _, err := dev.WriteAt(base, 0); err != nil {
		t.Fatal(err)
	}
	if err := dev.Sync(); err != nil {
		t.Fatal(err)
	}
	return dev, base
}

// memWrites issues overlapping writes and returns the contents after each
// prefix of them: states[k] holds base with the first k writes applied.
func memWrites(t *testing.T, dev *MemDevice, base []byte, ws []memWrite) (states [][]byte) {
	t.Helper()
	cur := append([]byte(nil), base...)
	states = append(states, append([]byte(nil), cur...))
	for _, w := range ws {
		if _, err := dev.WriteAt(w.data, w.off); err != nil {
			t.Fatal(err)
		}
		copy(cur[w.off:], w.data)
		states = append(states, append([]byte(nil), cur...))
	}
	return states
}

var memTestWrites = []memWrite{
	{off: 0, data: devPattern(1, 4096)},
	{off: 2048, data: devPattern(2, 4096)}, // overlaps the first
	{off: 10000, data: devPattern(3, 9000)},
	{off: 4096, data: devPattern(4, 1)},
	{off: 30000, data: devPattern(5, 700)},
}

func TestMemDeviceSyncDurability(t *testing.T) {
	dev, base := memSetup(t)
	states := memWrites(t, dev, base, memTestWrites)
	if got := dev.PendingWrites(); got != len(memTestWrites) {
		t.Fatalf("PendingWrites = %d", got)
	}
	if !bytes.Equal(dev.Crash(CrashOptions{KeepPrefix: 0}, nil).Bytes(), base) {
		t.Fatalf("crash before Sync kept unsynced writes")
	}
	if err := dev.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := dev.PendingWrites(); got != 0 {
		t.Fatalf("PendingWrites after Sync = %d", got)
	}
	final := states[len(states)-1]
	for _, opt := range []CrashOptions{{KeepPrefix: 0}, {KeepPrefix: 0, TearLast: true}, {Reorder: true, TearLast: true}} {
		if !bytes.Equal(dev.Crash(opt, rand.New(rand.NewSource(1))).Bytes(), final) {
			t.Fatalf("crash %+v after Sync lost synced writes", opt)
		}
	}
}

func TestMemDeviceCrashKeepPrefix(t *testing.T) {
	dev, base := memSetup(t)
	states := memWrites(t, dev, base, memTestWrites)
	for k := 0; k <= len(memTestWrites)+1; k++ {
		img := dev.Crash(CrashOptions{KeepPrefix: k}, nil)
		want := states[min(k, len(memTestWrites))]
		if !bytes.Equal(img.Bytes(), want) {
			t.Fatalf("KeepPrefix %d: image is not base + the first %d writes", k, k)
		}
		if img.PendingWrites() != 0 {
			t.Fatalf("crash image has pending writes")
		}
	}

	// KeepPrefix -1 picks some prefix; over many seeds, every one.
	seen := make(map[int]bool)
	for seed := range int64(200) {
		img := dev.Crash(CrashOptions{KeepPrefix: -1}, rand.New(rand.NewSource(seed)))
		k := memFindState(img.Bytes(), states)
		if k < 0 {
			t.Fatalf("seed %d: random KeepPrefix produced no prefix state", seed)
		}
		seen[k] = true
	}
	if len(seen) != len(states) {
		t.Errorf("random KeepPrefix reached prefixes %v of 0..%d", seen, len(memTestWrites))
	}
}

// memFindState returns the index of b in states, or -1.
func memFindState(b []byte, states [][]byte) int {
	for i, s := range states {
		if bytes.Equal(b, s) {
			return i
		}
	}
	return -1
}

func TestMemDeviceCrashTearLast(t *testing.T) {
	dev, base := memSetup(t)
	// The write to tear starts mid-sector so that sector cuts and byte cuts
	// can be told apart.
	ws := []memWrite{
		{off: 0, data: devPattern(1, 1000)},
		{off: 1000, data: devPattern(2, 9100)},
		{off: 20000, data: devPattern(3, 500)},
	}
	states := memWrites(t, dev, base, ws)
	torn := ws[1]
	var sectorCuts, byteCuts, emptyCuts int
	for seed := range int64(300) {
		img := dev.Crash(CrashOptions{KeepPrefix: 1, TearLast: true}, rand.New(rand.NewSource(seed))).Bytes()
		// Write 0 survives whole, write 2 is lost.
		if !bytes.Equal(img[:1000], ws[0].data) || !bytes.Equal(img[20000:], states[0][20000:]) {
			t.Fatalf("seed %d: writes around the torn one are wrong", seed)
		}
		region := img[torn.off : torn.off+int64(len(torn.data))]
		l := 0
		for l < len(region) && region[l] == torn.data[l] {
			l++
		}
		if l == len(region) {
			t.Fatalf("seed %d: torn write survived whole", seed)
		}
		if !bytes.Equal(region[l:], base[torn.off+int64(l):torn.off+int64(len(torn.data))]) {
			t.Fatalf("seed %d: torn write is not a prefix of the write (first %d bytes new, then not old)", seed, l)
		}
		switch {
		case l == 0:
			emptyCuts++
		case (torn.off+int64(l))%memSectorSize == 0:
			sectorCuts++
		default:
			byteCuts++
		}
	}
	if sectorCuts == 0 || byteCuts == 0 || emptyCuts == 0 {
		t.Errorf("cuts: %d at sectors, %d at bytes, %d empty; want some of each", sectorCuts, byteCuts, emptyCuts)
	}

	// With every write kept, there is nothing to tear.
	img := dev.Crash(CrashOptions{KeepPrefix: len(ws), TearLast: true}, rand.New(rand.NewSource(1)))
	if !bytes.Equal(img.Bytes(), states[len(ws)]) {
		t.Fatalf("TearLast with every write kept changed the image")
	}
}

func TestMemDeviceCrashReorder(t *testing.T) {
	dev, base := memSetup(t)
	// Disjoint writes, so each one's fate can be read off the image.
	var ws []memWrite
	for i := range 20 {
		ws = append(ws, memWrite{off: int64(i) * 2048, data: devPattern(i+1, 1024)})
	}
	memWrites(t, dev, base, ws)
	for _, tear := range []bool{false, true} {
		var nonPrefix, tornSeen bool
		for seed := range int64(100) {
			img := dev.Crash(CrashOptions{KeepPrefix: 0, Reorder: true, TearLast: tear}, rand.New(rand.NewSource(seed))).Bytes()
			lostBefore := false
			for i, w := range ws {
				region := img[w.off : w.off+int64(len(w.data))]
				old := base[w.off : w.off+int64(len(w.data))]
				switch {
				case bytes.Equal(region, w.data):
					if lostBefore {
						nonPrefix = true
					}
				case bytes.Equal(region, old):
					lostBefore = true
				default:
					l := 0
					for region[l] == w.data[l] {
						l++
					}
					if !tear || !bytes.Equal(region[l:], old[l:]) {
						t.Fatalf("seed %d tear %v: write %d is neither kept, lost nor a torn prefix", seed, tear, i)
					}
					tornSeen, lostBefore = true, true
				}
				// Between the writes nothing may change.
				if gap := img[w.off+int64(len(w.data)) : w.off+2048]; !bytes.Equal(gap, devFill(0xAA, len(gap))) {
					t.Fatalf("seed %d: bytes outside every write changed", seed)
				}
			}
		}
		if !nonPrefix {
			t.Errorf("tear %v: Reorder never kept a write after a lost one", tear)
		}
		if tear && !tornSeen {
			t.Errorf("Reorder with TearLast never tore a write")
		}
	}
}

func TestMemDeviceCrashLeavesReceiverUnchanged(t *testing.T) {
	dev, base := memSetup(t)
	states := memWrites(t, dev, base, memTestWrites)
	cur := states[len(states)-1]
	rng := rand.New(rand.NewSource(7))
	var imgs []*MemDevice
	for _, opt := range []CrashOptions{{KeepPrefix: 0}, {KeepPrefix: 3}, {KeepPrefix: -1, TearLast: true}, {Reorder: true, TearLast: true}} {
		imgs = append(imgs, dev.Crash(opt, rng))
		if !bytes.Equal(dev.Bytes(), cur) || dev.PendingWrites() != len(memTestWrites) {
			t.Fatalf("Crash(%+v) changed the receiver", opt)
		}
	}
	if !bytes.Equal(dev.Crash(CrashOptions{KeepPrefix: 0}, nil).Bytes(), base) {
		t.Fatalf("receiver's durable image changed")
	}

	// Images and receiver share durable pages; writing to any of them,
	// before or after a Sync, must not show through in the others.
	img := imgs[0]
	imgBefore := img.Bytes()
	if err := dev.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.WriteAt(devFill(0x01, 8192), 0); err != nil {
		t.Fatal(err)
	}
	if err := dev.Sync(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.Bytes(), imgBefore) {
		t.Fatalf("writes to the receiver changed a crash image")
	}
	devBefore := dev.Bytes()
	for _, other := range imgs {
		if _, err := other.WriteAt(devFill(0x02, 20000), 100); err != nil {
			t.Fatal(err)
		}
		if err := other.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(dev.Bytes(), devBefore) {
		t.Fatalf("writes to a crash image changed the receiver")
	}
}

func TestMemDeviceSnapshot(t *testing.T) {
	dev, base := memSetup(t)
	states := memWrites(t, dev, base, memTestWrites)
	snap := dev.Snapshot()
	if !bytes.Equal(snap.Bytes(), dev.Bytes()) || snap.PendingWrites() != dev.PendingWrites() {
		t.Fatalf("snapshot differs from the original")
	}
	// The pending writes are still pending in the copy.
	if !bytes.Equal(snap.Crash(CrashOptions{KeepPrefix: 2}, nil).Bytes(), states[2]) {
		t.Fatalf("snapshot lost its pending writes")
	}
	// The two evolve independently, dirty pages included.
	if _, err := snap.WriteAt(devFill(0x03, 100), 2100); err != nil {
		t.Fatal(err)
	}
	if err := snap.Sync(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dev.Bytes(), states[len(states)-1]) || dev.PendingWrites() != len(memTestWrites) {
		t.Fatalf("writing the snapshot changed the original")
	}
	if _, err := dev.WriteAt(devFill(0x04, 100), 4000); err != nil {
		t.Fatal(err)
	}
	if b := snap.Bytes(); !bytes.Equal(b[4000:4100], states[len(states)-1][4000:4100]) {
		t.Fatalf("writing the original changed the snapshot")
	}
}

func TestMemDeviceFailAfter(t *testing.T) {
	dev, base := memSetup(t)
	boom := errors.New("boom")
	dev.FailAfter(2, boom)
	for i := range 2 {
		if _, err := dev.WriteAt(devFill(byte(i), 10), int64(i)*10); err != nil {
			t.Fatalf("write %d before the fault: %v", i, err)
		}
	}
	before := dev.Bytes()
	if n, err := dev.WriteAt(devFill(9, 10), 100); n != 0 || !errors.Is(err, boom) {
		t.Fatalf("write after the fault = %d, %v; want 0, boom", n, err)
	}
	if _, err := dev.WriteAt(devFill(9, 10), 200); !errors.Is(err, boom) {
		t.Fatalf("the fault did not persist: %v", err)
	}
	if err := dev.Sync(); !errors.Is(err, boom) {
		t.Fatalf("Sync after the fault: %v", err)
	}
	if !bytes.Equal(dev.Bytes(), before) || dev.PendingWrites() != 2 {
		t.Fatalf("failed calls had an effect")
	}
	if !bytes.Equal(dev.Crash(CrashOptions{KeepPrefix: 0}, nil).Bytes(), base) {
		t.Fatalf("failed Sync made writes durable")
	}
	if _, err := dev.ReadAt(make([]byte, 10), 0); err != nil {
		t.Fatalf("ReadAt with a fault injected: %v", err)
	}
	if dev.WriteCount() != 1+4 || dev.SyncCount() != 1+1 {
		t.Fatalf("WriteCount, SyncCount = %d, %d; failed calls count too", dev.WriteCount(), dev.SyncCount())
	}

	dev.FailAfter(-1, nil)
	if _, err := dev.WriteAt(devFill(9, 10), 100); err != nil {
		t.Fatalf("write after disabling the fault: %v", err)
	}
	if err := dev.Sync(); err != nil {
		t.Fatalf("Sync after disabling the fault: %v", err)
	}

	// FailAfter(0, nil) fails the very next call with some error.
	dev.FailAfter(0, nil)
	if err := dev.Sync(); err == nil {
		t.Fatalf("Sync after FailAfter(0, nil) succeeded")
	}
}

func TestMemDeviceReadOnly(t *testing.T) {
	dev := NewMemDevice(1 << 16)
	dev.SetReadOnly(true)
	if _, err := dev.WriteAt([]byte{1}, 0); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("WriteAt on a read-only device: %v", err)
	}
	if err := dev.Sync(); err != nil {
		t.Fatalf("Sync on a read-only device: %v", err)
	}
	dev.SetReadOnly(false)
	if _, err := dev.WriteAt([]byte{1}, 0); err != nil {
		t.Fatalf("WriteAt after SetReadOnly(false): %v", err)
	}
}

func TestMemDeviceUnwrittenIsZeroAndSparse(t *testing.T) {
	dev := NewMemDevice(1 << 30)
	if _, err := dev.WriteAt([]byte{7}, 1<<29); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 3*memPageSize)
	if _, err := dev.ReadAt(got, 1<<29-memPageSize); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, len(got))
	want[memPageSize] = 7
	if !bytes.Equal(got, want) {
		t.Fatalf("unwritten bytes are not zero")
	}
	if n := len(dev.dirty) + len(dev.durable); n != 1 {
		t.Fatalf("a one-byte write allocated %d pages", n)
	}
}

// TestMemDeviceConcurrent runs writers, syncers, readers and crashers at
// once; run with -race.
func TestMemDeviceConcurrent(t *testing.T) {
	const (
		writers = 4
		region  = 64 << 10
		rounds  = 200
	)
	dev := NewMemDevice(writers * region)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	stop := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				data := devPattern(w*rounds+i, 1000)
				off := int64(w*region + (i*1000)%(region-1000))
				if _, err := dev.WriteAt(data, off); err != nil {
					errs <- err
					return
				}
				// Each writer owns its region, so it must read its own write.
				got := make([]byte, len(data))
				if _, err := dev.ReadAt(got, off); err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("writer %d round %d: read back failed (%v)", w, i, err)
					return
				}
				if i%10 == 0 {
					if err := dev.Sync(); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	var bg sync.WaitGroup
	for r := range 3 {
		bg.Add(1)
		go func() {
			defer bg.Done()
			rng := rand.New(rand.NewSource(int64(r)))
			buf := make([]byte, 5000)
			for {
				select {
				case <-stop:
					return
				default:
				}
				switch rng.Intn(4) {
				case 0:
					dev.Crash(CrashOptions{KeepPrefix: -1, TearLast: true, Reorder: rng.Intn(2) == 0}, rng)
				case 1:
					dev.Snapshot()
				default:
					if _, err := dev.ReadAt(buf, rng.Int63n(dev.Size()-int64(len(buf)))); err != nil {
						errs <- err
						return
					}
				}
				_ = dev.PendingWrites() + dev.WriteCount() + dev.SyncCount()
			}
		}()
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := dev.WriteCount(); got != writers*rounds {
		t.Errorf("WriteCount = %d, want %d", got, writers*rounds)
	}
}

// FillHoles fills a hole that begins near the range, leaves data alone,
// and keeps filling as the ranges move on past what it filled before.
func TestFileDeviceFillHoles(t *testing.T) {
	d, err := CreateFile(filepath.Join(t.TempDir(), "img"), 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const near = 64 << 10
	if _, err := unix.Seek(int(d.Fd()), 0, unix.SEEK_HOLE); err != nil {
		t.Skipf("SEEK_HOLE: %v", err)
	}
	data := bytes.Repeat([]byte{9}, 4096)
	if _, err := d.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	holeAt := func(off int64) int64 {
		t.Helper()
		h, err := unix.Seek(int(d.Fd()), off, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if holeAt(4096) != 4096 {
		t.Skip("the filesystem of the temporary directory keeps no holes")
	}
	// Ranges move on as the log does, past what earlier calls filled.
	for off := int64(4096); off < 3<<20; off += 40 << 10 {
		end := off + 1<<20
		wrote, err := d.FillHoles(off, end, near)
		if err != nil {
			t.Fatal(err)
		}
		if h := holeAt(off); h < off+near {
			t.Fatalf("after FillHoles(%d, %d): a hole at %d (wrote %v)", off, end, h, wrote)
		}
		// The log writes its units into what was filled.
		if _, err := d.WriteAt(data, off); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, 4096)
	if _, err := d.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("data before the ranges changed: %v", err)
	}
	// A hole far from every range is left alone.
	if h := holeAt(5 << 20); h != 5<<20 {
		t.Fatalf("a hole far past every range was filled: next hole at %d", h)
	}
}

// FlushRange writes back a range of an image file, which reads back the
// same, and a closed device refuses it.
func TestFileDeviceFlushRange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	d, err := CreateFile(path, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	buf := bytes.Repeat([]byte{7}, 1<<20)
	if _, err := d.WriteAt(buf, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := d.FlushRange(1<<20, 1<<20); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(buf))
	if _, err := d.ReadAt(got, 1<<20); err != nil || !bytes.Equal(got, buf) {
		t.Fatalf("read back after FlushRange: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.FlushRange(0, 4096); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("FlushRange on a closed device: %v", err)
	}
}
