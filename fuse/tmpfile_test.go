package fuse

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/txfs/txfs"
)

// openTmpfile opens an O_TMPFILE file in dir.
func openTmpfile(t *testing.T, dir string, flags int) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|flags, 0o600)
	if err != nil {
		t.Fatalf("open(%s, O_TMPFILE|%#o): %v", dir, flags, err)
	}
	return fd
}

func fstat(t *testing.T, fd int) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatalf("fstat: %v", err)
	}
	return st
}

func TestTmpfile(t *testing.T) {
	mnt, v := testMountVolume(t, MountConfig{})
	d := filepath.Join(mnt, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("no name yet "), 30000)

	// Written and read through the descriptor, with no name.
	fd := openTmpfile(t, d, 0)
	defer unix.Close(fd)
	if n, err := unix.Pwrite(fd, data, 0); err != nil || n != len(data) {
		t.Fatalf("pwrite: %d %v", n, err)
	}
	got := make([]byte, len(data))
	if n, err := unix.Pread(fd, got, 0); err != nil || n != len(data) || !bytes.Equal(got, data) {
		t.Fatalf("pread: %d %v", n, err)
	}
	st := fstat(t, fd)
	if st.Nlink != 0 || st.Mode != unix.S_IFREG|0o600 || st.Size != int64(len(data)) {
		t.Errorf("fstat: nlink %d mode %#o size %d, want 0, %#o, %d", st.Nlink, st.Mode, st.Size, unix.S_IFREG|0o600, len(data))
	}
	if ents, err := os.ReadDir(d); err != nil || len(ents) != 0 {
		t.Errorf("directory lists %v (%v)", ents, err)
	}

	// linkat(fd, "", AT_EMPTY_PATH) names it.
	a := filepath.Join(d, "a")
	if err := unix.Linkat(fd, "", unix.AT_FDCWD, a, unix.AT_EMPTY_PATH); err != nil {
		t.Fatalf("linkat AT_EMPTY_PATH: %v", err)
	}
	if got := readFile(t, a); got != string(data) {
		t.Errorf("linked file has %d bytes, want its data", len(got))
	}
	if st := stat(t, a); st.Nlink != 1 || st.Ino != fstat(t, fd).Ino {
		t.Errorf("linked file: nlink %d ino %d", st.Nlink, st.Ino)
	}

	// linkat through /proc/self/fd, which needs no capability.
	fd2 := openTmpfile(t, mnt, 0)
	defer unix.Close(fd2)
	if _, err := unix.Pwrite(fd2, []byte("second"), 0); err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(mnt, "b")
	if err := unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd2), unix.AT_FDCWD, b, unix.AT_SYMLINK_FOLLOW); err != nil {
		t.Fatalf("linkat /proc/self/fd: %v", err)
	}
	if got := readFile(t, b); got != "second" {
		t.Errorf("b = %q", got)
	}

	// With O_EXCL the kernel refuses to give it a name, as it does for a
	// file that was unlinked.
	fd3 := openTmpfile(t, d, unix.O_EXCL)
	if _, err := unix.Pwrite(fd3, data, 0); err != nil {
		t.Fatal(err)
	}
	ino := fstat(t, fd3).Ino
	if err := unix.Linkat(fd3, "", unix.AT_FDCWD, filepath.Join(d, "excl"), unix.AT_EMPTY_PATH); !errors.Is(err, unix.ENOENT) {
		t.Errorf("linkat of an O_EXCL tmpfile: %v, want ENOENT", err)
	}
	f, err := os.Create(filepath.Join(mnt, "gone"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Remove(f.Name()); err != nil {
		t.Fatal(err)
	}
	if err := unix.Linkat(int(f.Fd()), "", unix.AT_FDCWD, filepath.Join(mnt, "back"), unix.AT_EMPTY_PATH); !errors.Is(err, unix.ENOENT) {
		t.Errorf("linkat of an unlinked file: %v, want ENOENT", err)
	}

	// Closed without a name: freed once the release arrives.
	if err := unix.Close(fd3); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, err := v.GetAttr(ino)
		if errors.Is(err, txfs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("closed tmpfile %d not freed: %v", ino, err)
		}
	}
	if err := v.Check(); err != nil {
		t.Errorf("check after the unnamed tmpfile was freed: %v", err)
	}
	if ents, err := os.ReadDir(d); err != nil || len(ents) != 1 || ents[0].Name() != "a" {
		t.Errorf("directory lists %v (%v), want only a", ents, err)
	}
}

// TestTmpfileSetgid: a tmpfile in a set-group-ID directory takes the
// directory's group, as Create's files do.
func TestTmpfileSetgid(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: chown needs root")
	}
	mnt := testMount(t)
	d := filepath.Join(mnt, "g")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, 0, 4321); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(d, 0o2775); err != nil {
		t.Fatal(err)
	}
	fd := openTmpfile(t, d, 0)
	defer unix.Close(fd)
	if st := fstat(t, fd); st.Gid != 4321 || st.Uid != 0 {
		t.Errorf("tmpfile owner %d:%d, want 0:4321", st.Uid, st.Gid)
	}
}
