package segment

import (
	"math/rand"
	"path/filepath"
	"testing"
)

// TestHasSignature: images txfs wrote are recognized, even with both
// superblocks zeroed (the log is still there); zeros, random bytes and
// nothing at all are not.
func TestHasSignature(t *testing.T) {
	for _, c := range []struct {
		image string
		want  bool
	}{
		{"v1-clean.img", true},
		{"zeroed-superblock-1.img", true},
		{"zeroed-superblocks.img", true},
		{"truncated.img", true},
	} {
		dev, err := OpenFile(filepath.Join("..", "tests", "testdata", c.image), true)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := HasSignature(dev); got != c.want || err != nil {
			t.Errorf("%s: HasSignature = %v, %v; want %v", c.image, got, err, c.want)
		}
		dev.Close()
	}

	random := NewMemDevice(1 << 20)
	b := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(b)
	random.WriteAt(b, 0)
	// Only a log unit's magic, at the start of segment 0 of a volume
	// with 64 KiB blocks.
	unitOnly := NewMemDevice(1 << 20)
	unitOnly.WriteAt([]byte(UnitMagic), 2*MaxBlockSize)
	for _, c := range []struct {
		name string
		dev  Device
		want bool
	}{
		{"empty", NewMemDevice(0), false},
		{"one byte", NewMemDevice(1), false},
		{"zeros", NewMemDevice(1 << 20), false},
		{"random", random, false},
		{"a unit at 2*64K", unitOnly, true},
	} {
		if got, err := HasSignature(c.dev); got != c.want || err != nil {
			t.Errorf("%s: HasSignature = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}
