package txfs

import (
	"bytes"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/txfs/txfs/journal"
	"github.com/txfs/txfs/segment"
)

// A small fsync on a fresh sparse image fills the hole ahead of the log, so
// the syncs after it do not make the host allocate; the fill is plain zeros
// that recovery reads as the end of the log.
func TestSyncFillsHolesAhead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	dev, err := segment.CreateFile(path, 256<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := Format(dev, FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := Open(dev, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := v.Create(RootIno, "f", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{7}, 4096)
	for i := 0; i < 50; i++ {
		if _, err := v.Write(a.Ino, data, int64(i)*4096); err != nil {
			t.Fatal(err)
		}
		if err := v.Fsync(a.Ino); err != nil {
			t.Fatal(err)
		}
		// Right after the log head the image holds zeros, not a hole.
		v.mu.Lock()
		head := int64(v.log.Cur.Addr)
		v.mu.Unlock()
		hole, err := unix.Seek(int(dev.Fd()), head, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		if hole < head+journal.FillNear {
			t.Fatalf("after fsync %d the log head is at %d and a hole begins at %d", i, head, hole)
		}
	}
	// Recovery stops at the zeros: reopen without a clean close (the
	// device is simply opened again) and find every synced write.
	dev2, err := segment.OpenFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := Open(dev2, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := v2.Check(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 50*4096)
	if n, err := v2.Read(a.Ino, got, 0); err != nil || n != len(got) || !bytes.Equal(got, bytes.Repeat([]byte{7}, len(got))) {
		t.Fatalf("after recovery: %d bytes, %v", n, err)
	}
	v2.Close()
	dev2.Close()
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	dev.Close()
}
