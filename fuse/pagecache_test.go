package fuse

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// readCounter counts the bytes READ requests ask the daemon for.
type readCounter struct {
	fuse.RawFileSystem
	bytes atomic.Int64
}

func (c *readCounter) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	c.bytes.Add(int64(in.Size))
	return c.RawFileSystem.Read(cancel, in, buf)
}

func readingMount(t *testing.T) (string, *readCounter) {
	t.Helper()
	c := new(readCounter)
	mnt := testMountConfig(t, MountConfig{
		wrapRaw: func(raw fuse.RawFileSystem) fuse.RawFileSystem {
			c.RawFileSystem = raw
			return c
		},
	})
	return mnt, c
}

// The kernel's cache of a file serves reads across opens and after
// writes through the mount: nothing is read from the daemon again.
func TestPageCacheKept(t *testing.T) {
	mnt, c := readingMount(t)
	p := filepath.Join(mnt, "f")
	data := make([]byte, 4<<20)
	rand.New(rand.NewSource(1)).Read(data)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	read := func(what string) {
		t.Helper()
		before := c.bytes.Load()
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: read %d bytes, %v, content differs: %v", what, len(got), err, !bytes.Equal(got, data))
		}
		if n := c.bytes.Load() - before; n > 0 {
			t.Errorf("%s: the daemon was asked for %d bytes", what, n)
		}
	}
	read("first read after writing")
	read("read after another open")
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	copy(data[1<<20:], "a small write in the middle")
	if _, err := f.WriteAt(data[1<<20:1<<20+4096], 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	time.Sleep(10 * time.Millisecond)
	read("read after a 4 KiB write")
}

// What changes a file's bytes without a write leaves no stale page in the
// kernel's cache: truncate and extend, hole punch, zero range,
// copy_file_range, a write through another descriptor.
func TestPageCacheNeverStale(t *testing.T) {
	mnt := testMount(t)
	p := filepath.Join(mnt, "f")
	want := bytes.Repeat([]byte("txfs page cache "), 64<<10) // 1 MiB
	if err := os.WriteFile(p, want, 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		t.Helper()
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("after %s: %d bytes, %v; content differs: %v", what, len(got), err, !bytes.Equal(got, want))
		}
	}
	check("writing")
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())

	if err := f.Truncate(100_000); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(len(want))); err != nil {
		t.Fatal(err)
	}
	clear(want[100_000:])
	check("truncate and extend")

	copy(want[200_000:], bytes.Repeat([]byte{7}, 300_000))
	f.WriteAt(want[200_000:500_000], 200_000)
	if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 250_000, 100_000); err != nil {
		t.Fatal(err)
	}
	clear(want[250_000:350_000])
	check("a hole punch")

	if err := unix.Fallocate(fd, unix.FALLOC_FL_ZERO_RANGE, 400_000, 50_000); err != nil {
		t.Fatal(err)
	}
	clear(want[400_000:450_000])
	check("a zeroed range")

	src := filepath.Join(mnt, "src")
	srcData := bytes.Repeat([]byte{9}, 1<<20)
	os.WriteFile(src, srcData, 0o644)
	sf, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	off, dstOff := int64(0), int64(8192)
	if _, err := unix.CopyFileRange(int(sf.Fd()), &off, fd, &dstOff, 64<<10, 0); err != nil {
		t.Fatal(err)
	}
	copy(want[8192:8192+64<<10], srcData)
	check("copy_file_range")

	g, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	g.WriteAt([]byte("another descriptor"), 600_000)
	g.Close()
	copy(want[600_000:], "another descriptor")
	check("a write through another descriptor")
}
