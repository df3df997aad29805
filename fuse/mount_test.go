package fuse

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/segment"
)

// openTestVolume formats and opens a fresh in-memory volume; cleanup
// checks and closes it.
func openTestVolume(t *testing.T) *txfs.Volume {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("skipping: no /dev/fuse: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: the failure paths are tested with mount(2), which needs root")
	}
	dev := segment.NewMemDevice(64 << 20)
	if err := txfs.Format(dev, txfs.FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := txfs.Open(dev, txfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		checkVolume(t, v)
		v.Close()
	})
	return v
}

// assertNoMount fails the test if anything is mounted on dir, and
// detaches it so that no mount outlives the test.
func assertNoMount(t *testing.T, dir string) {
	t.Helper()
	on, err := MountsOn(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range on {
		t.Errorf("%s is left mounted on %s (mount %d)", m, dir, m.ID)
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("lazy unmount of %s: %v", dir, err)
		}
	}
}

// TestMountOnFileLeavesNoMount: mount(2) accepts a regular file as the
// mount point (the root then takes its type), go-fuse's first lookup then
// fails ENOTDIR, and Mount must take the mount back.
func TestMountOnFileLeavesNoMount(t *testing.T) {
	v := openTestVolume(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := Mount(v, file, MountConfig{FsName: "txfs-test"})
	if err == nil {
		srv.Unmount()
		t.Fatal("Mount on a regular file succeeded")
	}
	if !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("Mount on a regular file: %v, want ENOTDIR", err)
	}
	assertNoMount(t, file)
	if st, err := os.Stat(file); err != nil || !st.Mode().IsRegular() {
		t.Errorf("the file after the failed mount: %v, %v", st, err)
	}
}

// TestMountReadaheadFailureLeavesNoMount: when setting the readahead fails
// after the mount, Mount unmounts; when files on the mount are already
// open (so the plain unmount is refused as busy) it detaches the mount
// lazily and waits for them to close.
func TestMountReadaheadFailureLeavesNoMount(t *testing.T) {
	defer func(f func(string, int) error) { setReadAhead = f }(setReadAhead)
	for _, busy := range []bool{false, true} {
		v := openTestVolume(t)
		dir := t.TempDir()
		var closed chan struct{} // closed just before the file is
		setReadAhead = func(dir string, kb int) error {
			if busy {
				// Keep the mount busy past go-fuse's unmount retries.
				f, err := os.Open(dir)
				if err != nil {
					t.Errorf("open the new mount: %v", err)
				} else {
					closed = make(chan struct{})
					go func() {
						time.Sleep(time.Second)
						close(closed)
						f.Close()
					}()
				}
			}
			return syscall.EIO
		}
		srv, err := Mount(v, dir, MountConfig{FsName: "txfs-test"})
		if err == nil {
			srv.Unmount()
			t.Fatalf("busy=%v: Mount succeeded though the readahead failed", busy)
		}
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("busy=%v: Mount: %v, want the readahead's EIO", busy, err)
		}
		assertNoMount(t, dir)
		if closed != nil {
			select {
			case <-closed:
			default:
				t.Errorf("busy=%v: Mount returned before the open file on it was closed", busy)
			}
		}
	}
}

// TestDetachNewMounts: what a failed mount attempt left on a directory
// (a mount that was not there before) is detached; what was there before
// stays.
func TestDetachNewMounts(t *testing.T) {
	openTestVolume(t) // for its skips
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer assertNoMount(t, dir)
	before, err := MountsOn(dir)
	if err != nil || len(before) != 1 || before[0].Type != "tmpfs" {
		t.Fatalf("MountsOn(%s) = %v, %v; want the tmpfs", dir, before, err)
	}
	if err := syscall.Mount("leftover", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	if err := detachNewMounts(dir, before); err != nil {
		t.Fatal(err)
	}
	after, err := MountsOn(dir)
	if err != nil || len(after) != 1 || after[0].ID != before[0].ID {
		t.Fatalf("after detachNewMounts: %v, %v; want only %v", after, err, before)
	}
	if err := syscall.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
}

func TestParseMountInfo(t *testing.T) {
	m, ok := parseMountInfo(`36 35 98:0 / /mnt/a\040b rw,noatime master:1 shared:2 - fuse.txfs /img/x\134y.img rw,user_id=0`)
	if !ok || m.ID != 36 || m.Dir != `/mnt/a b` || m.Type != "fuse.txfs" || m.Source != `/img/x\y.img` || m.Dev != "98:0" {
		t.Errorf("parsed %+v, %v", m, ok)
	}
	if _, ok := parseMountInfo("36 35 98:0 / /mnt rw"); ok {
		t.Error("a line without the separator parsed")
	}
}
