package txfs

import (
	"bytes"
	"testing"

	"github.com/txfs/txfs/segment"
)

// volumeWithDamage makes a volume with a file of two blocks, old, whose
// second block's stored bytes are then overwritten on the device, so that
// reading it fails its checksum.
func volumeWithDamage(t *testing.T) (v *Volume, dev *segment.MemDevice, ino Ino, old []byte) {
	t.Helper()
	v, dev = newTestVolume(t, 32<<20, Options{})
	f, err := v.Create(RootIno, "f", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	ino = f.Ino
	old = bytes.Repeat([]byte("old!"), 2048)
	if _, err := v.Write(ino, old, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	m, err := v.blockMap(ino, 1, 1)
	if err != nil {
		v.mu.Unlock()
		t.Fatal(err)
	}
	e, err := v.dat.Live(m[1])
	v.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.WriteAt(bytes.Repeat([]byte{0x5a}, int(e.Len)), int64(e.Addr)); err != nil {
		t.Fatal(err)
	}
	return v, dev, ino, old
}

// writableNow is v.writable under the lock.
func (v *Volume) writableNow() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.writable()
}

// A transaction that fails before its first change leaves no trace: the
// volume goes on.
func TestFailedBeforeChangeGoesOn(t *testing.T) {
	v, _, ino, old := volumeWithDamage(t)
	// A partial write of block 1 reads it before changing anything.
	_, err := v.Write(ino, []byte("new!"), 4096+10)
	mustErr(t, err, ErrIO)
	if err := v.writableNow(); err != nil {
		t.Fatalf("a write that failed before its first change stopped the volume: %v", err)
	}
	if _, err := v.Create(RootIno, "g", 0o644, Owner{}); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	if _, err := v.Read(ino, got, 0); err != nil || !bytes.Equal(got, old[:4096]) {
		t.Fatalf("block 0: %q, %v; want it unchanged", got[:16], err)
	}
	// A whole block needs no read: the damaged one is replaced.
	if _, err := v.Write(ino, old[:4096], 4096); err != nil {
		t.Fatal(err)
	}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
}
