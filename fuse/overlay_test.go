package fuse

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestOverlayUpperOnTxfs mounts overlayfs with its upper and work
// directories on a txfs mount: deleting and renaming files of the lower
// layer must leave whiteouts in the upper directory (made with
// RENAME_WHITEOUT and by mknod), and the merged view must survive a
// remount of the overlay.
func TestOverlayUpperOnTxfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting overlayfs needs root")
	}
	if fss, err := os.ReadFile("/proc/filesystems"); err != nil || !strings.Contains(string(fss), "\toverlay\n") {
		t.Skip("skipping: no overlayfs in this kernel")
	}
	mnt := testMount(t)
	lower, merged := t.TempDir(), t.TempDir()
	upper, work := filepath.Join(mnt, "upper"), filepath.Join(mnt, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(lower, "gone"), "G")
	writeFile(t, filepath.Join(lower, "moved"), "M")
	writeFile(t, filepath.Join(lower, "kept"), "K")
	if err := os.MkdirAll(filepath.Join(lower, "ldir/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	mountOverlay := func() {
		t.Helper()
		if err := syscall.Mount("overlay", merged, "overlay", 0, opts); err != nil {
			t.Fatalf("mount overlay with upper on txfs: %v", err)
		}
	}
	unmountOverlay := func() {
		t.Helper()
		if err := syscall.Unmount(merged, 0); err != nil {
			t.Errorf("unmount overlay: %v", err)
			syscall.Unmount(merged, syscall.MNT_DETACH)
		}
	}
	mountOverlay()
	m := func(name string) string { return filepath.Join(merged, name) }
	if err := os.Remove(m("gone")); err != nil {
		t.Errorf("delete a lower file: %v", err)
	}
	if err := os.Rename(m("moved"), m("moved2")); err != nil {
		t.Errorf("rename a lower file: %v", err)
	}
	if err := os.RemoveAll(m("ldir")); err != nil {
		t.Errorf("delete a lower directory: %v", err)
	}
	writeFile(t, m("new"), "N")
	checkMerged := func() {
		t.Helper()
		if got, want := dirNames(t, merged), "kept moved2 new"; got != want {
			t.Errorf("merged directory: %q, want %q", got, want)
		}
		if got := readFile(t, m("moved2")); got != "M" {
			t.Errorf("moved2 = %q, want M", got)
		}
	}
	checkMerged()
	unmountOverlay()

	// Upper holds a whiteout for every lower name that went.
	for _, name := range []string{"gone", "moved", "ldir"} {
		st := statxSync(t, filepath.Join(upper, name))
		if st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev_major != 0 || st.Rdev_minor != 0 {
			t.Errorf("upper/%s: mode %#o rdev %d:%d, want a whiteout", name, st.Mode, st.Rdev_major, st.Rdev_minor)
		}
	}
	for _, name := range []string{"gone", "moved", "ldir/sub"} {
		if _, err := os.Stat(filepath.Join(lower, name)); err != nil {
			t.Errorf("lower %s changed: %v", name, err)
		}
	}
	mountOverlay()
	checkMerged()
	unmountOverlay()
}
