package fuse

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hanwen/go-fuse/v2/posixtest"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/segment"
)

// testMount formats a fresh in-memory volume, mounts it on a temporary
// directory and returns the mount point. Cleanup unmounts, runs the
// volume's checker and closes the volume. Shaped like go-fuse's
// fs/mem_test.go testMount.
func testMount(t *testing.T) string {
	t.Helper()
	return testMountConfig(t, MountConfig{})
}

// testMountConfig is testMount with mount options.
func testMountConfig(t *testing.T, cfg MountConfig) string {
	t.Helper()
	mnt, _ := testMountVolume(t, cfg)
	return mnt
}

// testMountVolume is testMountConfig that also returns the volume, for
// tests that look at the engine behind the mount.
func testMountVolume(t *testing.T, cfg MountConfig) (string, *txfs.Volume) {
	t.Helper()
	mnt, v, _ := testMountServer(t, cfg)
	return mnt, v
}

// testMountServer is testMountVolume that also returns the server, for
// tests that change the volume behind the kernel's back.
func testMountServer(t *testing.T, cfg MountConfig) (string, *txfs.Volume, *Server) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("skipping: no /dev/fuse: %v", err)
	}

	dev := segment.NewMemDevice(64 << 20)
	if err := txfs.Format(dev, txfs.FormatOptions{}); err != nil {
		t.Fatalf("Format: %v", err)
	}
	v, err := txfs.Open(dev, txfs.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}

	mnt := t.TempDir()
	cfg.FsName = "txfs-test"
	cfg.Debug = os.Getenv("TXFS_FUSE_DEBUG") != ""
	cfg.panicHandler = func(p any) fuse.Status {
		t.Errorf("panic in a request handler: %v\n%s", p, debug.Stack())
		return fuse.EIO
	}
	srv, err := Mount(v, mnt, cfg)
	if err != nil {
		v.Close()
		// Not root and no working fusermount3: mount(2) fails with
		// EPERM, or opening a root-only /dev/fuse with EACCES.
		if (errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES)) && os.Geteuid() != 0 {
			t.Skipf("skipping: mounting needs root here: %v", err)
		}
		t.Fatalf("Mount: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("Unmount: %v", err)
			// Leave no mount behind for the next test.
			if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
				t.Errorf("lazy unmount: %v", err)
			}
		}
		srv.Wait()
		checkVolume(t, v)
		if err := v.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return mnt, v, srv
}

// checkVolume runs the volume's consistency checker, if it has one.
func checkVolume(t *testing.T, v *txfs.Volume) {
	t.Helper()
	if c, ok := any(v).(interface{ Check() error }); ok {
		if err := c.Check(); err != nil {
			t.Errorf("Check: %v", err)
		}
	}
}

// posixSkip lists the posixtest tests that do not apply, and why.
var posixSkip = map[string]string{
	// This test expects two descriptors of one process to conflict under
	// fcntl F_SETLK, which POSIX record locks never do: they belong to
	// the process, and the kernel sends the same lock owner for both, so
	// the daemon's lock manager (locks.go) grants both. It fails the same
	// way on ext4, and passes only where the daemon takes OFD locks on
	// its own descriptors (go-fuse's loopback). locks_test.go tests
	// conflicts between processes and between OFD locks.
	"FcntlFlockLocksFile": "POSIX locks of one process do not conflict; fails on ext4 too",
}

func TestPosix(t *testing.T) {
	names := make([]string, 0, len(posixtest.All))
	for nm := range posixtest.All {
		names = append(names, nm)
	}
	sort.Strings(names)
	for _, nm := range names {
		fn := posixtest.All[nm]
		t.Run(nm, func(t *testing.T) {
			if reason, ok := posixSkip[nm]; ok {
				t.Skip(reason)
			}
			mnt := testMount(t)
			fn(t, mnt)
		})
	}
}

func TestRootInode(t *testing.T) {
	mnt := testMount(t)
	var st syscall.Stat_t
	if err := syscall.Lstat(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if st.Ino != txfs.RootIno {
		t.Errorf("root ino %d, want %d", st.Ino, txfs.RootIno)
	}
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(mnt, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Blocks == 0 || sfs.Bsize == 0 || sfs.Namelen != txfs.MaxNameLen {
		t.Errorf("statfs: %+v", sfs)
	}
}

// renameat2 calls renameat2(2), which package syscall lacks.
func renameat2(oldpath, newpath string, flags uint) error {
	nr := map[string]uintptr{"amd64": 316, "arm64": 276, "386": 353, "riscv64": 276}[runtime.GOARCH]
	if nr == 0 {
		return syscall.ENOSYS
	}
	o, err := syscall.BytePtrFromString(oldpath)
	if err != nil {
		return err
	}
	n, err := syscall.BytePtrFromString(newpath)
	if err != nil {
		return err
	}
	const atFdcwd = -100
	fd := atFdcwd
	_, _, e := syscall.Syscall6(nr, uintptr(fd), uintptr(unsafe.Pointer(o)),
		uintptr(fd), uintptr(unsafe.Pointer(n)), uintptr(flags), 0)
	if e != 0 {
		return e
	}
	return nil
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRenameFlags(t *testing.T) {
	mnt := testMount(t)
	a, b, c := filepath.Join(mnt, "a"), filepath.Join(mnt, "b"), filepath.Join(mnt, "c")
	writeFile(t, a, "A")
	writeFile(t, b, "B")

	if err := renameat2(a, b, renameNoReplace); err != syscall.EEXIST {
		t.Errorf("RENAME_NOREPLACE onto existing: %v, want EEXIST", err)
	}
	if err := renameat2(a, c, renameNoReplace); err != nil {
		t.Errorf("RENAME_NOREPLACE onto new name: %v", err)
	}
	if got := readFile(t, c); got != "A" {
		t.Errorf("c = %q, want A", got)
	}
	if _, err := os.Lstat(a); !os.IsNotExist(err) {
		t.Errorf("a after rename: %v", err)
	}

	if err := renameat2(b, c, renameExchange); err != nil {
		t.Fatalf("RENAME_EXCHANGE: %v", err)
	}
	if got, want := readFile(t, b)+readFile(t, c), "AB"; got != want {
		t.Errorf("after exchange b+c = %q, want %q", got, want)
	}
	if err := renameat2(b, a, renameExchange); err != syscall.ENOENT {
		t.Errorf("RENAME_EXCHANGE with missing target: %v, want ENOENT", err)
	}

	// Exchange a directory with a file, across directories.
	d := filepath.Join(mnt, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(d, "in"), "IN")
	if err := renameat2(d, b, renameExchange); err != nil {
		t.Fatalf("RENAME_EXCHANGE dir<->file: %v", err)
	}
	if got := readFile(t, filepath.Join(b, "in")); got != "IN" {
		t.Errorf("b/in = %q", got)
	}
	if got := readFile(t, d); got != "A" {
		t.Errorf("d = %q", got)
	}

	for _, fl := range []uint{1 << 3, renameNoReplace | renameExchange, renameWhiteout | renameExchange} {
		if err := renameat2(c, filepath.Join(mnt, "e"), fl); err != syscall.EINVAL {
			t.Errorf("renameat2 flags %#x: %v, want EINVAL", fl, err)
		}
	}
	// EINVAL, unlike ENOSYS, leaves renameat2 with flags working.
	if err := renameat2(c, filepath.Join(mnt, "e"), renameNoReplace); err != nil {
		t.Errorf("RENAME_NOREPLACE after EINVAL: %v", err)
	}

	// Plain rename over an existing file.
	if err := os.Rename(filepath.Join(mnt, "e"), d); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, d); got != "B" {
		t.Errorf("d = %q, want B", got)
	}
}

func TestXattr(t *testing.T) {
	mnt := testMount(t)
	p := filepath.Join(mnt, "f")
	writeFile(t, p, "")

	if err := syscall.Setxattr(p, "user.a", []byte("hello"), 0); err != nil {
		t.Fatalf("Setxattr: %v", err)
	}
	if err := syscall.Setxattr(p, "user.b", []byte{}, 0); err != nil {
		t.Fatalf("Setxattr empty: %v", err)
	}
	if sz, err := syscall.Getxattr(p, "user.a", nil); err != nil || sz != 5 {
		t.Errorf("Getxattr size: %d, %v; want 5", sz, err)
	}
	if _, err := syscall.Getxattr(p, "user.a", make([]byte, 2)); err != syscall.ERANGE {
		t.Errorf("Getxattr small buffer: %v, want ERANGE", err)
	}
	buf := make([]byte, 64)
	if sz, err := syscall.Getxattr(p, "user.a", buf); err != nil || string(buf[:sz]) != "hello" {
		t.Errorf("Getxattr: %q, %v", buf[:sz], err)
	}
	if sz, err := syscall.Getxattr(p, "user.b", buf); err != nil || sz != 0 {
		t.Errorf("Getxattr empty value: %d, %v", sz, err)
	}
	if _, err := syscall.Getxattr(p, "user.missing", buf); err != syscall.ENODATA {
		t.Errorf("Getxattr missing: %v, want ENODATA", err)
	}

	const list = "user.a\x00user.b\x00"
	if sz, err := syscall.Listxattr(p, nil); err != nil || sz != len(list) {
		t.Errorf("Listxattr size: %d, %v; want %d", sz, err, len(list))
	}
	if _, err := syscall.Listxattr(p, make([]byte, 3)); err != syscall.ERANGE {
		t.Errorf("Listxattr small buffer: %v, want ERANGE", err)
	}
	sz, err := syscall.Listxattr(p, buf)
	if err != nil {
		t.Fatalf("Listxattr: %v", err)
	}
	names := strings.Split(strings.TrimSuffix(string(buf[:sz]), "\x00"), "\x00")
	sort.Strings(names)
	if !slices.Equal(names, []string{"user.a", "user.b"}) {
		t.Errorf("Listxattr: %q", names)
	}

	if err := syscall.Setxattr(p, "user.a", []byte("x"), txfs.XattrCreate); err != syscall.EEXIST {
		t.Errorf("XATTR_CREATE on existing: %v, want EEXIST", err)
	}
	if err := syscall.Setxattr(p, "user.c", []byte("x"), txfs.XattrReplace); err != syscall.ENODATA {
		t.Errorf("XATTR_REPLACE on missing: %v, want ENODATA", err)
	}
	if err := syscall.Setxattr(p, "user.a", []byte("bye"), txfs.XattrReplace); err != nil {
		t.Errorf("XATTR_REPLACE: %v", err)
	}
	if sz, err := syscall.Getxattr(p, "user.a", buf); err != nil || string(buf[:sz]) != "bye" {
		t.Errorf("Getxattr after replace: %q, %v", buf[:sz], err)
	}
	if err := syscall.Removexattr(p, "user.a"); err != nil {
		t.Errorf("Removexattr: %v", err)
	}
	if _, err := syscall.Getxattr(p, "user.a", buf); err != syscall.ENODATA {
		t.Errorf("Getxattr removed: %v, want ENODATA", err)
	}
	if err := syscall.Removexattr(p, "user.a"); err != syscall.ENODATA {
		t.Errorf("Removexattr missing: %v, want ENODATA", err)
	}

	// Directories have xattrs too.
	if err := syscall.Setxattr(mnt, "user.dir", []byte("d"), 0); err != nil {
		t.Errorf("Setxattr on root: %v", err)
	}
	if sz, err := syscall.Getxattr(mnt, "user.dir", buf); err != nil || string(buf[:sz]) != "d" {
		t.Errorf("Getxattr on root: %q, %v", buf[:sz], err)
	}
}

func stat(t *testing.T, p string) syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatalf("Lstat %s: %v", p, err)
	}
	return st
}

func TestHardLinks(t *testing.T) {
	mnt := testMount(t)
	f := filepath.Join(mnt, "f")
	writeFile(t, f, "data")
	if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	g, h := filepath.Join(mnt, "g"), filepath.Join(mnt, "d", "h")
	if err := os.Link(f, g); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(f, h); err != nil {
		t.Fatal(err)
	}
	sf, sg, sh := stat(t, f), stat(t, g), stat(t, h)
	if sf.Ino != sg.Ino || sf.Ino != sh.Ino {
		t.Errorf("inos %d %d %d differ", sf.Ino, sg.Ino, sh.Ino)
	}
	if sf.Nlink != 3 || sh.Nlink != 3 {
		t.Errorf("nlink %d/%d, want 3", sf.Nlink, sh.Nlink)
	}
	if err := os.Link(f, g); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("link onto existing: %v, want EEXIST", err)
	}
	if err := os.Link(filepath.Join(mnt, "d"), filepath.Join(mnt, "dl")); !errors.Is(err, syscall.EPERM) {
		t.Errorf("link of a directory: %v, want EPERM", err)
	}
	if err := os.Remove(g); err != nil {
		t.Fatal(err)
	}
	if st := stat(t, h); st.Nlink != 2 {
		t.Errorf("nlink after unlink %d, want 2", st.Nlink)
	}
	if err := os.Rename(h, f); err != nil { // rename onto another link of itself
		t.Fatal(err)
	}
	if got := readFile(t, f); got != "data" {
		t.Errorf("f = %q", got)
	}

	// Directory link counts: 2 + subdirectories.
	if st := stat(t, mnt); st.Nlink != 3 {
		t.Errorf("root nlink %d, want 3", st.Nlink)
	}
	if err := os.Mkdir(filepath.Join(mnt, "d", "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if st := stat(t, filepath.Join(mnt, "d")); st.Nlink != 3 {
		t.Errorf("d nlink %d, want 3", st.Nlink)
	}
	if err := os.Rename(filepath.Join(mnt, "d", "e"), filepath.Join(mnt, "e")); err != nil {
		t.Fatal(err)
	}
	if st := stat(t, filepath.Join(mnt, "d")); st.Nlink != 2 {
		t.Errorf("d nlink after moving e out %d, want 2", st.Nlink)
	}
	if st := stat(t, mnt); st.Nlink != 4 {
		t.Errorf("root nlink %d, want 4", st.Nlink)
	}
	if err := os.Remove(filepath.Join(mnt, "d")); !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		t.Errorf("rmdir non-empty: %v, want ENOTEMPTY", err)
	}
}

func TestUnlinkedOpenFile(t *testing.T) {
	mnt := testMount(t)
	p := filepath.Join(mnt, "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := bytes.Repeat([]byte("0123456789abcdef"), 10000)
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Errorf("Lstat after unlink: %v", err)
	}
	got := make([]byte, len(data))
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatalf("read unlinked file: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("unlinked file data differs")
	}
	if _, err := f.WriteAt([]byte("more"), int64(len(data))); err != nil {
		t.Errorf("write unlinked file: %v", err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != int64(len(data)+4) {
		t.Errorf("size %d, want %d", st.Size(), len(data)+4)
	}
	if nl := st.Sys().(*syscall.Stat_t).Nlink; nl != 0 {
		t.Errorf("nlink of unlinked open file %d, want 0", nl)
	}
	// A new file with the same name is a different file.
	writeFile(t, p, "new")
	if got := readFile(t, p); got != "new" {
		t.Errorf("new file = %q", got)
	}
	if err := f.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

func TestMknod(t *testing.T) {
	mnt := testMount(t)
	fifo := filepath.Join(mnt, "fifo")
	if err := syscall.Mkfifo(fifo, 0o640); err != nil {
		t.Fatal(err)
	}
	if st := stat(t, fifo); st.Mode != syscall.S_IFIFO|0o640 {
		t.Errorf("fifo mode %#o", st.Mode)
	}
	// A fifo on the mount works as a fifo (the kernel implements it).
	done := make(chan error, 1)
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err == nil {
			_, err = w.Write([]byte("through the fifo"))
			w.Close()
		}
		done <- err
	}()
	r, err := os.Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(b) != "through the fifo" {
		t.Errorf("fifo read %q, %v", b, err)
	}
	if err := <-done; err != nil {
		t.Errorf("fifo write: %v", err)
	}

	reg := filepath.Join(mnt, "reg")
	if err := syscall.Mknod(reg, syscall.S_IFREG|0o600, 0); err != nil {
		t.Fatal(err)
	}
	if st := stat(t, reg); st.Mode != syscall.S_IFREG|0o600 || st.Size != 0 {
		t.Errorf("regular mknod: mode %#o size %d", st.Mode, st.Size)
	}

	if os.Geteuid() == 0 {
		chr := filepath.Join(mnt, "null")
		dev := 1<<8 | 3 // 1:3, /dev/null
		if err := syscall.Mknod(chr, syscall.S_IFCHR|0o666, dev); err != nil {
			t.Fatal(err)
		}
		if st := stat(t, chr); st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != uint64(dev) {
			t.Errorf("char device: mode %#o rdev %#x, want rdev %#x", st.Mode, st.Rdev, dev)
		}
		big := filepath.Join(mnt, "big")
		// major 300, minor 70000: the bits above the old 8:8 encoding.
		bdev := (70000 & 0xff) | (300 << 8) | ((70000 &^ 0xff) << 12)
		if err := syscall.Mknod(big, syscall.S_IFBLK|0o600, bdev); err != nil {
			t.Fatal(err)
		}
		if st := stat(t, big); st.Rdev != uint64(bdev) {
			t.Errorf("block device rdev %#x, want %#x", st.Rdev, bdev)
		}
	}
	if err := syscall.Mknod(fifo, syscall.S_IFIFO|0o600, 0); err != syscall.EEXIST {
		t.Errorf("mknod over existing: %v, want EEXIST", err)
	}
}

func TestSymlink(t *testing.T) {
	mnt := testMount(t)
	writeFile(t, filepath.Join(mnt, "target"), "T")
	l := filepath.Join(mnt, "link")
	if err := os.Symlink("target", l); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(l); err != nil || got != "target" {
		t.Errorf("Readlink: %q, %v", got, err)
	}
	if st := stat(t, l); st.Mode&syscall.S_IFMT != syscall.S_IFLNK || st.Size != int64(len("target")) {
		t.Errorf("symlink mode %#o size %d", st.Mode, st.Size)
	}
	if got := readFile(t, l); got != "T" {
		t.Errorf("through symlink: %q", got)
	}
	long := strings.Repeat("x/", 2000) + "end"
	ll := filepath.Join(mnt, "long")
	if err := os.Symlink(long, ll); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(ll); err != nil || got != long {
		t.Errorf("long Readlink: %d bytes, %v", len(got), err)
	}
	dangling := filepath.Join(mnt, "dangling")
	if err := os.Symlink("nowhere", dangling); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dangling); !os.IsNotExist(err) {
		t.Errorf("stat dangling: %v", err)
	}
	if err := os.Symlink("x", l); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("symlink over existing: %v", err)
	}
}

// getdents lists dir with getdents64 in buffers of bufSize bytes,
// including "." and "..".
func getdents(t *testing.T, dir string, bufSize int) []string {
	t.Helper()
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	var names []string
	buf := make([]byte, bufSize)
	for {
		n, err := syscall.Getdents(fd, buf)
		if err != nil {
			t.Fatalf("getdents: %v", err)
		}
		if n == 0 {
			return names
		}
		for b := buf[:n]; len(b) > 0; {
			reclen := binary.NativeEndian.Uint16(b[16:18])
			name := b[19:reclen]
			names = append(names, string(name[:bytes.IndexByte(name, 0)]))
			b = b[reclen:]
		}
	}
}

func TestReaddir1000(t *testing.T) {
	mnt := testMount(t)
	dir := filepath.Join(mnt, "dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	want := []string{".", ".."}
	for i := range 1000 {
		nm := fmt.Sprintf("file-%04d-%s", i, strings.Repeat("n", i%50))
		writeFile(t, filepath.Join(dir, nm), "")
		want = append(want, nm)
	}
	sort.Strings(want)

	first := getdents(t, dir, 4096)
	got := slices.Clone(first)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("getdents: %d names, want %d", len(got), len(want))
	}
	if first[0] != "." || first[1] != ".." {
		t.Errorf("listing starts %q %q, want . ..", first[0], first[1])
	}
	// Deterministic: the same order again, with small and large buffers.
	for _, bs := range []int{512, 4096, 1 << 16} {
		if again := getdents(t, dir, bs); !slices.Equal(again, first) {
			t.Errorf("getdents with %d-byte buffer lists in another order", bs)
		}
	}

	// Removing entries while listing neither repeats nor skips the rest.
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	for {
		ents, err := f.ReadDir(37)
		for _, e := range ents {
			if seen[e.Name()] {
				t.Errorf("%s listed twice", e.Name())
			}
			seen[e.Name()] = true
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		if err != nil || len(ents) == 0 {
			break
		}
	}
	if len(seen) != 1000 {
		t.Errorf("listed %d entries while removing, want 1000", len(seen))
	}
	if names := getdents(t, dir, 4096); len(names) != 2 {
		t.Errorf("after removing all: %q", names)
	}
	if err := os.Remove(dir); err != nil {
		t.Errorf("rmdir: %v", err)
	}
}

func TestLseekAllocate(t *testing.T) {
	mnt := testMount(t)
	p := filepath.Join(mnt, "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	if _, err := f.Write(bytes.Repeat([]byte{7}, 100)); err != nil {
		t.Fatal(err)
	}
	const seekData, seekHole = 3, 4
	if off, err := syscall.Seek(fd, 10, seekData); err != nil || off != 10 {
		t.Errorf("SEEK_DATA 10: %d, %v", off, err)
	}
	if off, err := syscall.Seek(fd, 10, seekHole); err != nil || off != 100 {
		t.Errorf("SEEK_HOLE 10: %d, %v", off, err)
	}
	if _, err := syscall.Seek(fd, 100, seekData); err != syscall.ENXIO {
		t.Errorf("SEEK_DATA at EOF: %v, want ENXIO", err)
	}

	if err := syscall.Fallocate(fd, 0, 0, 200); err != nil {
		t.Fatalf("fallocate: %v", err)
	}
	if st := stat(t, p); st.Size != 200 {
		t.Errorf("size after fallocate %d, want 200", st.Size)
	}
	if err := syscall.Fallocate(fd, fallocKeepSize, 0, 500); err != nil {
		t.Errorf("fallocate KEEP_SIZE: %v", err)
	}
	if st := stat(t, p); st.Size != 200 {
		t.Errorf("size after KEEP_SIZE %d, want 200", st.Size)
	}
	if err := syscall.Fallocate(fd, fallocPunchHole|fallocKeepSize, 50, 1000); err != nil {
		t.Errorf("punch hole: %v", err)
	}
	b := make([]byte, 300)
	n, _ := f.ReadAt(b, 0)
	want := append(bytes.Repeat([]byte{7}, 50), make([]byte, 150)...)
	if !bytes.Equal(b[:n], want) {
		t.Errorf("after punch: %v", b[:n])
	}
	if err := syscall.Fallocate(fd, fallocZeroRange, 0, 10); err != nil {
		t.Errorf("ZERO_RANGE: %v", err)
	}
	if err := syscall.Fallocate(fd, fallocZeroRange, 250, 50); err != nil {
		t.Errorf("ZERO_RANGE past the end: %v", err)
	}
	n, _ = f.ReadAt(b, 0)
	want = append(append(make([]byte, 10), bytes.Repeat([]byte{7}, 40)...), make([]byte, 250)...)
	if !bytes.Equal(b[:n], want) {
		t.Errorf("after zero range: %d bytes %v", n, b[:n])
	}

	// A real hole: data in block 0 and block 3 only.
	if _, err := f.WriteAt([]byte("far"), 3*4096); err != nil {
		t.Fatal(err)
	}
	if off, err := syscall.Seek(fd, 0, seekHole); err != nil || off != 4096 {
		t.Errorf("SEEK_HOLE 0 with a hole at block 1: %d, %v", off, err)
	}
	if off, err := syscall.Seek(fd, 4096, seekData); err != nil || off != 3*4096 {
		t.Errorf("SEEK_DATA 4096: %d, %v", off, err)
	}
}

func TestCopyFileRange(t *testing.T) {
	mnt := testMount(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	if err := os.WriteFile(filepath.Join(mnt, "src"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	src, _ := os.Open(filepath.Join(mnt, "src"))
	defer src.Close()
	dst, _ := os.Create(filepath.Join(mnt, "dst"))
	defer dst.Close()
	var copied int
	for copied < len(data) {
		n, err := unix.CopyFileRange(int(src.Fd()), nil, int(dst.Fd()), nil, len(data)-copied, 0)
		if err != nil || n == 0 {
			t.Fatalf("copy_file_range after %d bytes: %d, %v", copied, n, err)
		}
		copied += n
	}
	got, _ := os.ReadFile(filepath.Join(mnt, "dst"))
	if !bytes.Equal(got, data) {
		t.Fatal("the copy differs")
	}
	// Unaligned offsets copy bytes.
	in, out := int64(5), int64(3)
	if n, err := unix.CopyFileRange(int(src.Fd()), &in, int(dst.Fd()), &out, 10, 0); err != nil || n != 10 {
		t.Fatalf("unaligned copy: %d, %v", n, err)
	}
	got, _ = os.ReadFile(filepath.Join(mnt, "dst"))
	if string(got[:16]) != "01256789abcdedef" {
		t.Fatalf("after the unaligned copy: %q", got[:16])
	}
}

// TestSetID checks what the adapter does in place of the filesystem:
// clearing set-ID bits and set-group-ID directories. Writes by another
// user run in a child process (a plain binary off the mount).
func TestSetID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to act as another user")
	}
	mnt := testMountConfig(t, MountConfig{AllowOther: true})
	// Let other users reach the mount: the temporary directories above
	// it are 0700.
	for p := mnt; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(mnt, 0o777); err != nil {
		t.Fatal(err)
	}

	// Set-group-ID directory.
	d := filepath.Join(mnt, "sgid")
	if err := os.Mkdir(d, 0o775); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, 0, 1234); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(d, 0o2775); err != nil {
		t.Fatal(err)
	}
	if st := stat(t, d); st.Mode&07777 != 0o2775 || st.Gid != 1234 {
		t.Fatalf("sgid dir: gid %d mode %#o", st.Gid, st.Mode)
	}
	writeFile(t, filepath.Join(d, "f"), "")
	if st := stat(t, filepath.Join(d, "f")); st.Gid != 1234 {
		t.Errorf("file in sgid dir: gid %d, want 1234", st.Gid)
	}
	if err := os.Mkdir(filepath.Join(d, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if st := stat(t, filepath.Join(d, "sub")); st.Gid != 1234 || st.Mode&syscall.S_ISGID == 0 {
		t.Errorf("dir in sgid dir: gid %d mode %#o, want 1234 and S_ISGID", st.Gid, st.Mode)
	}
	if err := os.Symlink("x", filepath.Join(d, "l")); err != nil {
		t.Fatal(err)
	}
	if st := stat(t, filepath.Join(d, "l")); st.Gid != 1234 {
		t.Errorf("symlink in sgid dir: gid %d, want 1234", st.Gid)
	}

	// Write by a non-root user clears S_ISUID and S_ISGID (with g+x).
	p := filepath.Join(mnt, "suid")
	writeFile(t, p, "x")
	if err := os.Chown(p, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(p, 0o6777); err != nil {
		t.Fatal(err)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	cmd := exec.Command(sh, "-c", "echo more >> "+p)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("write as uid 1000: %v %s", err, out)
	}
	if st := stat(t, p); st.Mode&(syscall.S_ISUID|syscall.S_ISGID) != 0 {
		t.Errorf("after write by owner: mode %#o, want set-ID bits cleared", st.Mode)
	}

	// Write by root keeps them; chown clears them even for root.
	if err := syscall.Chmod(p, 0o6777); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("root"))
	f.Close()
	if st := stat(t, p); st.Mode&07777 != 0o6777 {
		t.Errorf("after write by root: mode %#o, want 06777", st.Mode)
	}
	if err := os.Chown(p, 1001, -1); err != nil {
		t.Fatal(err)
	}
	if st := stat(t, p); st.Mode&(syscall.S_ISUID|syscall.S_ISGID) != 0 || st.Uid != 1001 {
		t.Errorf("after chown: uid %d mode %#o, want set-ID bits cleared", st.Uid, st.Mode)
	}

	// A non-root owner may not give a file away.
	cmd = exec.Command(sh, "-c", "chown 1000 "+p)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1001, Gid: 1001}}
	if err := cmd.Run(); err == nil {
		t.Errorf("chown by non-root owner succeeded")
	}
}

// TestChownChecks checks the adapter's own chown rules, on a mount
// without default_permissions so the kernel does not check first.
func TestChownChecks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to act as another user")
	}
	off := false
	mnt := testMountConfig(t, MountConfig{AllowOther: true, DefaultPermissions: &off})
	for p := filepath.Dir(mnt); p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(mnt, "f")
	writeFile(t, p, "x")
	if err := os.Chown(p, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	as := func(cmdline string) error {
		cmd := exec.Command("sh", "-c", cmdline)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
			Uid: 1000, Gid: 1000, Groups: []uint32{555}}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := as("chgrp 555 " + p); err != nil {
		t.Errorf("chgrp to a supplementary group: %v", err)
	}
	if st := stat(t, p); st.Gid != 555 {
		t.Errorf("gid %d, want 555", st.Gid)
	}
	if err := as("chgrp 556 " + p); err == nil {
		t.Errorf("chgrp to a foreign group succeeded")
	}
	if err := as("chown 1001 " + p); err == nil {
		t.Errorf("chown to another user succeeded")
	}
	if err := as("chown 1000 " + p); err != nil {
		t.Errorf("chown to oneself: %v", err)
	}
	if st := stat(t, p); st.Uid != 1000 || st.Gid != 555 {
		t.Errorf("owner %d:%d, want 1000:555", st.Uid, st.Gid)
	}
}
