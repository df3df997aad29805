package fuse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/txfs/txfs"
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
	data := writeRandom(t, p, 4<<20, 1)
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
// copy_file_range, a write through another descriptor. A reader that
// opened the file before sees each change at once, as a new open does.
func TestPageCacheNeverStale(t *testing.T) {
	mnt := testMount(t)
	p := filepath.Join(mnt, "f")
	want := bytes.Repeat([]byte("txfs page cache "), 64<<10) // 1 MiB
	if err := os.WriteFile(p, want, 0o644); err != nil {
		t.Fatal(err)
	}
	reader, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	check := func(what string) {
		t.Helper()
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("after %s: %d bytes, %v; content differs: %v", what, len(got), err, !bytes.Equal(got, want))
		}
		if got := readAll(t, reader); !bytes.Equal(got, want) {
			t.Fatalf("after %s: a reader open before reads %d bytes; content differs: %v", what, len(got), !bytes.Equal(got, want))
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

// writeRandom writes size random bytes from seed to a new file p and
// returns them.
func writeRandom(t *testing.T, p string, size int, seed int64) []byte {
	t.Helper()
	data := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(data)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

// inoOf returns the inode number of path.
func inoOf(t *testing.T, path string) txfs.Ino {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// readAll reads f from its start to its end with pread.
func readAll(t *testing.T, f *os.File) []byte {
	t.Helper()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, st.Size()+4096)
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return buf[:n]
}

// cachingConfig caches names and attributes for longer than any test, so
// that only an invalidation can make the mount look again.
func cachingConfig(c *readCounter) MountConfig {
	return MountConfig{
		EntryTimeout: time.Hour,
		AttrTimeout:  time.Hour,
		wrapRaw: func(raw fuse.RawFileSystem) fuse.RawFileSystem {
			c.RawFileSystem = raw
			return c
		},
	}
}

// A change to a file's bytes behind the kernel's back, followed by
// InvalidateFile of the range, is what readers see at once, also through
// a descriptor opened before; the kernel keeps the pages outside the
// range.
func TestInvalidateFile(t *testing.T) {
	c := new(readCounter)
	mnt, v, srv := testMountServer(t, cachingConfig(c))
	p := filepath.Join(mnt, "f")
	data := writeRandom(t, p, 4<<20, 2)
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := readAll(t, r); !bytes.Equal(got, data) {
		t.Fatal("first read differs")
	}

	ino := inoOf(t, p)
	const off = 1<<20 + 8192
	change := bytes.Repeat([]byte("behind"), 4096/6+1)[:4096]
	if _, err := v.Write(ino, change, off); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); !bytes.Equal(got, data) {
		t.Fatal("the kernel's cache did not serve the read before the invalidation: this test shows nothing")
	}
	copy(data[off:], change)

	before := c.bytes.Load()
	if err := srv.InvalidateFile(ino, off, int64(len(change))); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); !bytes.Equal(got, data) {
		t.Errorf("after InvalidateFile an open descriptor reads old bytes")
	}
	if n := c.bytes.Load() - before; n > 4096 {
		t.Errorf("after invalidating 4 KiB the daemon was asked for %d bytes", n)
	}
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, data) {
		t.Errorf("after InvalidateFile a new open reads %d bytes, %v, differing: %v", len(got), err, !bytes.Equal(got, data))
	}
}

// InvalidateAll drops every name, attribute and page the kernel has:
// after changes through the volume's API, the mount shows the new tree.
func TestInvalidateAll(t *testing.T) {
	mnt, v, srv := testMountServer(t, cachingConfig(new(readCounter)))
	p := filepath.Join(mnt, "f")
	data := writeRandom(t, p, 1<<20, 3)
	d := filepath.Join(mnt, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("old-target", filepath.Join(mnt, "l")); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	readAll(t, r)
	os.Readlink(filepath.Join(mnt, "l"))
	if _, err := os.Stat(filepath.Join(d, "x")); err != nil {
		t.Fatal(err)
	}

	// Behind the kernel's back: new bytes, mode and size for f; x gone
	// and y made in d; l names another target.
	ino, dino := inoOf(t, p), inoOf(t, d)
	change := bytes.Repeat([]byte{0xA5}, 8192)
	if _, err := v.Write(ino, change, 4096); err != nil {
		t.Fatal(err)
	}
	if _, err := v.SetAttr(ino, &txfs.SetAttrIn{Valid: txfs.SetMode | txfs.SetSize, Mode: 0o600, Size: 512 << 10}); err != nil {
		t.Fatal(err)
	}
	if err := v.Unlink(dino, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Create(dino, "y", 0o640, txfs.Owner{}); err != nil {
		t.Fatal(err)
	}
	if err := v.Unlink(txfs.RootIno, "l"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Symlink(txfs.RootIno, "l", "new-target", txfs.Owner{}); err != nil {
		t.Fatal(err)
	}

	// The kernel still shows what it cached: without the invalidation
	// this test would fail.
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 || st.Size() != 1<<20 {
		t.Fatalf("before InvalidateAll: stat %v, %v: the kernel cached nothing, this test shows nothing", st, err)
	}
	if _, err := os.Stat(filepath.Join(d, "x")); err != nil {
		t.Fatalf("before InvalidateAll: %v: the kernel cached nothing, this test shows nothing", err)
	}

	if err := srv.InvalidateAll(); err != nil {
		t.Fatal(err)
	}
	want := append(append(append([]byte{}, data[:4096]...), change...), data[4096+len(change):512<<10]...)
	if got := readAll(t, r); !bytes.Equal(got, want) {
		t.Errorf("an open descriptor reads %d bytes after InvalidateAll, want %d, differing: %v", len(got), len(want), !bytes.Equal(got, want))
	}
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
		t.Errorf("a new open reads %d bytes after InvalidateAll, %v, differing: %v", len(got), err, !bytes.Equal(got, want))
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 || st.Size() != 512<<10 {
		t.Errorf("after InvalidateAll: stat %v, %v; want mode 0600, size 512 KiB", st, err)
	}
	if _, err := os.Stat(filepath.Join(d, "x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after InvalidateAll, d/x removed behind the kernel: stat says %v", err)
	}
	if st, err := os.Stat(filepath.Join(d, "y")); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("after InvalidateAll, d/y made behind the kernel: stat %v, %v", st, err)
	}
	if names, err := os.ReadDir(d); err != nil || len(names) != 1 || names[0].Name() != "y" {
		t.Errorf("after InvalidateAll, d lists %v, %v; want y", names, err)
	}
	if got, err := os.Readlink(filepath.Join(mnt, "l")); err != nil || got != "new-target" {
		t.Errorf("after InvalidateAll, l reads %q, %v; want new-target", got, err)
	}
}

// When a change behind the kernel's back is marked but its notification
// did not reach the kernel, the next open still drops the file's pages.
func TestOpenAfterChangeBehind(t *testing.T) {
	c := new(readCounter)
	mnt, v, srv := testMountServer(t, cachingConfig(c))
	p := filepath.Join(mnt, "f")
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<14)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Fatal("first read differs")
	}
	ino := inoOf(t, p)
	if _, err := v.Write(ino, []byte("BEHIND"), 100); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Fatal("the kernel's cache did not serve the read: this test shows nothing")
	}
	srv.fsys.known.get(ino).changedBehind.Store(true)
	copy(data[100:], "BEHIND")
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Error("an open after a change behind the kernel's back reads old bytes")
	}
	before := c.bytes.Load()
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Error("second open reads other bytes")
	}
	if n := c.bytes.Load() - before; n != 0 {
		t.Errorf("the open after that keeps no cache: the daemon was asked for %d bytes", n)
	}
}

// The Nodes kept for invalidation go when the kernel forgets their
// inodes: the set does not grow with every file the mount ever saw.
func TestKnownNodesForgotten(t *testing.T) {
	mnt, _, srv := testMountServer(t, MountConfig{})
	count := func() int { return len(srv.fsys.known.all()) }
	start := count()
	for i := range 200 {
		p := filepath.Join(mnt, fmt.Sprintf("f%d", i))
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(); n < start+200 {
		t.Fatalf("%d known inodes after making 200 files, %d before", n, start)
	}
	for i := range 200 {
		if err := os.Remove(filepath.Join(mnt, fmt.Sprintf("f%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for count() > start && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := count(); n > start {
		t.Errorf("%d known inodes after removing the 200 files, %d before", n, start)
	}
}

// mmapChildEnv names the file a child process works on through a shared
// mapping (mmapChildMain). A mapping of a file on an in-process mount
// would deadlock the test: a page fault is no system call, so the Go
// runtime cannot stop the faulting thread for a collection while the
// daemon, in the same process, is to answer the fault.
const mmapChildEnv = "TXFS_MMAP_CHILD"

func init() {
	if p := os.Getenv(mmapChildEnv); p != "" {
		if err := mmapChildMain(p); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// The offsets mmapChildMain changes, and with what.
const (
	mmapFileSize  = 1 << 20
	mappedOff     = 100_000
	descriptorOff = 300_000
	punchOff      = 500_000
	punchLen      = 100_000
)

var (
	mappedBytes     = []byte("written through the mapping")
	descriptorBytes = []byte("written through the descriptor")
)

// mmapChildMain maps the file at path, which holds mmapPattern, and checks
// that the mapping and the descriptor see each other's changes at once.
func mmapChildMain(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, mmapFileSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	defer unix.Munmap(m)
	if !bytes.Equal(m, mmapPattern()) {
		return errors.New("the mapping does not show what write(2) wrote")
	}
	copy(m[mappedOff:], mappedBytes)
	got := make([]byte, len(mappedBytes))
	if _, err := f.ReadAt(got, mappedOff); err != nil || !bytes.Equal(got, mappedBytes) {
		return fmt.Errorf("pread after a store through the mapping reads %q, %v", got, err)
	}
	if _, err := f.WriteAt(descriptorBytes, descriptorOff); err != nil {
		return err
	}
	if !bytes.Equal(m[descriptorOff:descriptorOff+len(descriptorBytes)], descriptorBytes) {
		return errors.New("the mapping does not show a pwrite through the descriptor")
	}
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, punchOff, punchLen); err != nil {
		return err
	}
	if !bytes.Equal(m[punchOff:punchOff+punchLen], make([]byte, punchLen)) {
		return errors.New("the mapping does not show a punched hole as zeros")
	}
	return unix.Msync(m, unix.MS_SYNC)
}

func mmapPattern() []byte {
	b := make([]byte, mmapFileSize)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// A shared mapping, descriptors and the volume agree: stores through the
// mapping reach the volume at msync, and the kernel's kept pages never
// show a later open anything else.
func TestPageCacheMmap(t *testing.T) {
	mnt, v := testMountVolume(t, MountConfig{})
	p := filepath.Join(mnt, "f")
	want := mmapPattern()
	if err := os.WriteFile(p, want, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
		t.Fatal("first read differs")
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), mmapChildEnv+"="+p)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	copy(want[mappedOff:], mappedBytes)
	copy(want[descriptorOff:], descriptorBytes)
	clear(want[punchOff : punchOff+punchLen])

	got := make([]byte, len(want))
	if n, err := v.Read(inoOf(t, p), got, 0); err != nil || n != len(want) || !bytes.Equal(got, want) {
		t.Errorf("the volume holds %d bytes, %v, differing: %v", n, err, !bytes.Equal(got, want))
	}
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
		t.Errorf("a new open reads %d bytes, %v, differing: %v", len(got), err, !bytes.Equal(got, want))
	}
}

// InvalidateEntry makes the kernel look a name up again: a name removed
// behind its back is gone at once.
func TestInvalidateEntry(t *testing.T) {
	mnt, v, srv := testMountServer(t, cachingConfig(new(readCounter)))
	p := filepath.Join(mnt, "x")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	if err := v.Unlink(txfs.RootIno, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("before InvalidateEntry: %v: the kernel cached nothing, this test shows nothing", err)
	}
	if err := srv.InvalidateEntry(txfs.RootIno, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after InvalidateEntry of a name removed behind the kernel: stat says %v", err)
	}
}

// sqlite3 changes pages all over its database in every transaction and,
// with a cache smaller than the database, reads them back with pread: the
// kernel serves those reads from the pages the writes left, so the daemon
// is asked for (almost) nothing. With the kernel dropping a file's pages
// whenever its mtime moved, it was asked for several times the database.
func TestPageCacheSqlite(t *testing.T) {
	sqlite, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("skipping: no sqlite3")
	}
	mnt, c := readingMount(t)
	var script bytes.Buffer
	script.WriteString("PRAGMA cache_size=-256;\n")
	script.WriteString("CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT, payload BLOB);\n")
	script.WriteString("CREATE INDEX ta ON t(a);\nCREATE INDEX tb ON t(b);\n")
	const tx, rows = 20, 1000
	for range tx {
		fmt.Fprintf(&script, "BEGIN;\nWITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d)\n", rows)
		script.WriteString("  INSERT INTO t(a, b, payload) SELECT random(), hex(randomblob(16)), randomblob(100) FROM c;\nCOMMIT;\n")
	}
	script.WriteString("PRAGMA integrity_check;\nSELECT count(*) FROM t;\n")
	db := filepath.Join(mnt, "t.db")
	cmd := exec.Command(sqlite, "-bail", db)
	cmd.Stdin = &script
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), fmt.Sprintf("ok\n%d", tx*rows); got != want {
		t.Fatalf("sqlite3 printed %q, want %q", got, want)
	}
	st, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	read := c.bytes.Load()
	t.Logf("%d transactions in %v; database %d KiB; the daemon was asked for %d KiB", tx, time.Since(start).Round(time.Millisecond), st.Size()>>10, read>>10)
	if read > st.Size()/10 {
		t.Errorf("the daemon was asked for %d KiB, more than a tenth of the %d KiB database", read>>10, st.Size()>>10)
	}
}
