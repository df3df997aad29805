package txfs

import (
	"bytes"
	"math/rand"
	"testing"
)

// TestWriteWholeBlocksUnstaged: whole blocks of a write go from the
// caller's buffer straight into the log unit; only a partial block is
// built in the scratch buffer (with the rest of its old content).
func TestWriteWholeBlocksUnstaged(t *testing.T) {
	v, _ := newTestVolume(t, 64<<20, Options{})
	f, err := v.Create(RootIno, "f", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	bs := v.bs
	want := make([]byte, 8*bs)
	rand.New(rand.NewSource(1)).Read(want)
	if _, err := v.Write(f.Ino, want, 0); err != nil {
		t.Fatal(err)
	}
	if v.scratch != nil {
		t.Fatalf("a write of whole blocks staged them in the scratch buffer")
	}
	// Partial blocks at both ends of a write that spans whole ones.
	patch := bytes.Repeat([]byte{0xAB}, 3*bs)
	if _, err := v.Write(f.Ino, patch, int64(bs/2)); err != nil {
		t.Fatal(err)
	}
	copy(want[bs/2:], patch)
	got := make([]byte, len(want))
	if n, err := v.Read(f.Ino, got, 0); err != nil || n != len(want) {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("file content differs after whole and partial block writes")
	}
}
