package fuse

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// ext4Dir formats a small ext4 image, mounts it on a temporary directory
// through a loop device and returns the mount point, so that a check of
// the mount's behaviour can be run against ext4 too and is known to hold
// there. Cleanup unmounts it.
func ext4Dir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting an ext4 image needs root")
	}
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("skipping: no mkfs.ext4")
	}
	tmp := t.TempDir()
	img, mnt := filepath.Join(tmp, "ext4.img"), filepath.Join(tmp, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("truncate", "-s", "32M", img).CombinedOutput(); err != nil {
		t.Fatalf("truncate: %v\n%s", err, out)
	}
	if out, err := exec.Command(mkfs, "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount ext4 image: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount ext4 image: %v", err)
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	// The new filesystem's lost+found is no part of any check.
	if err := os.Remove(filepath.Join(mnt, "lost+found")); err != nil {
		t.Fatal(err)
	}
	return mnt
}
