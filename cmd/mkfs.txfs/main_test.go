package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/segment"
)

func TestMkfs(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "a.img")
	if err := Main([]string{"mkfs.txfs", "--size", "64M", "--label", "test", img}); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(img)
	if st.Size() != 64<<20 {
		t.Fatalf("image of %d bytes", st.Size())
	}
	v, err := txfs.OpenPath(img, txfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
	v.Close()
	// An existing volume is refused without --force, and kept.
	err = Main([]string{"mkfs.txfs", img})
	if err == nil || !strings.Contains(err.Error(), "already holds a txfs volume") {
		t.Fatalf("reformat without --force: %v", err)
	}
	if _, _, err := segment.ReadSuperblock(mustOpen(t, img)); err != nil {
		t.Fatalf("refused format damaged the volume: %v", err)
	}
	if err := Main([]string{"mkfs.txfs", "--force", "--compression", "none", img}); err != nil {
		t.Fatal(err)
	}
	// A file with data is refused.
	data := filepath.Join(dir, "data")
	os.WriteFile(data, []byte("precious"), 0o644)
	os.Truncate(data, 64<<20)
	if err := Main([]string{"mkfs.txfs", data}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("non-empty file: %v", err)
	}
	// Too small, with the reason.
	err = Main([]string{"mkfs.txfs", "--size", "256K", filepath.Join(dir, "small.img")})
	if err == nil || !strings.Contains(err.Error(), "too small") {
		t.Fatalf("tiny image: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "small.img")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused new image was left behind")
	}
	// Usage errors.
	for _, args := range [][]string{{"mkfs.txfs"}, {"mkfs.txfs", "--size", "x", img}, {"mkfs.txfs", "--compression", "zstd", img}, {"mkfs.txfs", filepath.Join(dir, "new.img")}} {
		if err := Main(args); !errors.As(err, new(usageError)) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

func mustOpen(t *testing.T, path string) segment.Device {
	d, err := segment.OpenFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// --preallocate leaves no hole in the image and a volume that checks clean.
func TestPreallocate(t *testing.T) {
	img := filepath.Join(t.TempDir(), "p.img")
	if err := Main([]string{"mkfs.txfs", "--size", "32M", "--preallocate", img}); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 < 32<<20 {
		t.Fatalf("a preallocated 32 MiB image uses %d bytes of disk", st.Blocks*512)
	}
	v, err := txfs.OpenPath(img, txfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestMkfsBadPath: a directory, a missing parent directory, a parent that
// is a file and an empty file without --size are refused with a message
// naming the path and saying what is wrong, and nothing is created.
func TestMkfsBadPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	for _, c := range []struct {
		args  []string
		says  string
		usage bool
	}{
		{[]string{dir}, dir + " is a directory, not an image file or block device", false},
		{[]string{"--force", "--size", "64M", dir}, dir + " is a directory", false},
		{[]string{"--size", "64M", filepath.Join(dir, "nodir", "a.img")}, "cannot create " + filepath.Join(dir, "nodir", "a.img") + ": no such directory " + filepath.Join(dir, "nodir"), false},
		{[]string{"--size", "64M", filepath.Join(file, "a.img")}, "cannot create " + filepath.Join(file, "a.img") + ": " + file + " is not a directory", false},
		{[]string{"--force", empty}, empty + " is an empty file: give --size", true},
	} {
		err := Main(append([]string{"mkfs.txfs"}, c.args...))
		if err == nil || !strings.Contains(err.Error(), c.says) || errors.As(err, new(usageError)) != c.usage {
			t.Errorf("mkfs.txfs %v: %v; want an error saying %q (usage error: %v)", c.args, err, c.says, c.usage)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("the refused formats left %d entries in %s, want the 2 files", len(entries), dir)
	}
	if st, _ := os.Stat(empty); st.Size() != 0 {
		t.Errorf("the refused format changed the empty file to %d bytes", st.Size())
	}
	// An empty file with --size becomes an image of that size.
	if err := Main([]string{"mkfs.txfs", "--size", "32M", empty}); err != nil {
		t.Fatal(err)
	}
}

// failingReads is a device whose reads fail, as a damaged disk's may.
type failingReads struct{ *segment.MemDevice }

func (failingReads) ReadAt([]byte, int64) (int, error) { return 0, syscall.EIO }

// A device mkfs cannot read is not taken for an empty one: it is refused
// with the reason, and --force is what formats it anyway.
func TestMkfsUnreadableDeviceRefused(t *testing.T) {
	err := checkBlank(failingReads{segment.NewMemDevice(1 << 20)}, "disk")
	if err == nil || !strings.Contains(err.Error(), "cannot read disk") || !errors.Is(err, syscall.EIO) {
		t.Fatalf("unreadable device: %v", err)
	}
	if err := checkBlank(segment.NewMemDevice(1<<20), "disk"); err != nil {
		t.Fatalf("zeroed device: %v", err)
	}
}

// An existing image resized by mkfs stays locked from the check to the
// format: no other mkfs or mount can take it in between.
func TestMkfsResizeKeepsTheLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(path, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	dev, _, err := openTarget(path, 16<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if dev.Size() != 16<<20 {
		t.Fatalf("size %d after the resize", dev.Size())
	}
	other, err := segment.OpenFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Lock(true); !errors.Is(err, segment.ErrLocked) {
		t.Fatalf("another open took the lock during the format: %v", err)
	}
}
