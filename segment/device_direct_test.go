package segment

import (
	"bytes"
	"math/rand"
	"path/filepath"
	"testing"
	"unsafe"
)

// alignedBuffer returns n bytes whose address is a multiple of directAlign.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := (directAlign - int(uintptr(unsafe.Pointer(&b[0]))%directAlign)) % directAlign
	return b[skip : skip+n]
}

// TestFileDeviceDirectWrites: large aligned writes of an image file bypass
// the page cache, small or unaligned ones do not, and reads see whichever
// write came last over the same bytes, after buffered writes too.
func TestFileDeviceDirectWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	c, err := CreateFile(path, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	d, err := OpenFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.direct == nil {
		t.Skip("the file system of TMPDIR refuses O_DIRECT")
	}
	rng := rand.New(rand.NewSource(1))
	want := make([]byte, 8<<20)
	write := func(p []byte, off int64) {
		t.Helper()
		if n, err := d.WriteAt(p, off); err != nil || n != len(p) {
			t.Fatalf("write of %d bytes at %d: %d, %v", len(p), off, n, err)
		}
		copy(want[off:], p)
	}
	check := func(what string) {
		t.Helper()
		got := make([]byte, len(want))
		if _, err := d.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: the image does not hold what was written", what)
		}
	}
	big := alignedBuffer(1 << 20)
	rng.Read(big)
	write(big, 1<<20)
	if d.DirectWrites() != 1 {
		t.Fatalf("a 1 MiB aligned write: %d direct writes, want 1", d.DirectWrites())
	}
	check("after a direct write")
	// Read into the page cache, overwritten in part through it, then
	// directly again: no stale page survives either way.
	small := make([]byte, 4096)
	rng.Read(small)
	write(small, 1<<20+8192)
	check("after a buffered write into a directly written range")
	rng.Read(big)
	write(big, 1<<20)
	check("after a direct write over cached pages")
	// Unaligned address, or too small: through the page cache.
	rng.Read(big)
	write(big[1:1+512<<10], 3<<20)
	write(big[:64<<10], 5<<20)
	if d.DirectWrites() != 2 {
		t.Fatalf("%d direct writes, want 2: unaligned and small writes went direct", d.DirectWrites())
	}
	check("after buffered writes")
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}
