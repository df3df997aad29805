package fuse

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// TestSnapshotsDir: every snapshot reads in .snapshots as it was taken,
// while the live tree changes; nothing in it can be changed; the
// directory is not listed in the root and its name cannot be taken.
func TestSnapshotsDir(t *testing.T) {
	dir, v := testMountVolume(t, MountConfig{})
	writeFile(t, filepath.Join(dir, "f"), "one")
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "d", "g"), "deep")
	if err := os.Symlink("f", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setxattr(filepath.Join(dir, "f"), "user.k", []byte("v1"), 0); err != nil {
		t.Fatal(err)
	}
	if err := v.CreateSnapshot("first"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "f"), "two, longer")
	if err := os.Remove(filepath.Join(dir, "d", "g")); err != nil {
		t.Fatal(err)
	}
	if err := v.CreateSnapshot("second"); err != nil {
		t.Fatal(err)
	}

	snaps := filepath.Join(dir, SnapshotsDir)
	names, err := os.ReadDir(snaps)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[0].Name() != "first" || names[1].Name() != "second" || !names[0].IsDir() {
		t.Fatalf("%s lists %v", snaps, names)
	}
	first := filepath.Join(snaps, "first")
	if got := readFile(t, filepath.Join(first, "f")); got != "one" {
		t.Errorf("first/f reads %q", got)
	}
	if got := readFile(t, filepath.Join(first, "d", "g")); got != "deep" {
		t.Errorf("first/d/g reads %q", got)
	}
	if got, err := os.Readlink(filepath.Join(first, "link")); err != nil || got != "f" {
		t.Errorf("first/link: %q, %v", got, err)
	}
	buf := make([]byte, 16)
	if n, err := syscall.Getxattr(filepath.Join(first, "f"), "user.k", buf); err != nil || string(buf[:n]) != "v1" {
		t.Errorf("first/f user.k: %q, %v", buf[:n], err)
	}
	if got := readFile(t, filepath.Join(snaps, "second", "f")); got != "two, longer" {
		t.Errorf("second/f reads %q", got)
	}
	if _, err := os.Stat(filepath.Join(snaps, "second", "d", "g")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("second/d/g: %v, want none", err)
	}
	// Distinct inode numbers: the same file in two snapshots and live.
	a, b, c := stat(t, filepath.Join(first, "f")), stat(t, filepath.Join(snaps, "second", "f")), stat(t, filepath.Join(dir, "f"))
	if a.Ino == b.Ino || a.Ino == c.Ino || b.Ino == c.Ino {
		t.Errorf("inode numbers %d %d %d", a.Ino, b.Ino, c.Ino)
	}

	// Read-only, all of it.
	for what, err := range map[string]error{
		"write":               os.WriteFile(filepath.Join(first, "f"), []byte("x"), 0o644),
		"create":              os.WriteFile(filepath.Join(first, "new"), []byte("x"), 0o644),
		"mkdir":               os.Mkdir(filepath.Join(first, "nd"), 0o755),
		"remove":              os.Remove(filepath.Join(first, "f")),
		"rename":              os.Rename(filepath.Join(first, "f"), filepath.Join(first, "h")),
		"chmod":               os.Chmod(filepath.Join(first, "f"), 0o600),
		"setxattr":            syscall.Setxattr(filepath.Join(first, "f"), "user.k", []byte("x"), 0),
		"mkdir in .snapshots": os.Mkdir(filepath.Join(snaps, "third"), 0o755),
	} {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s in a snapshot: %v, want EROFS", what, err)
		}
	}
	// Not listed in the root; its name is taken.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(ents, func(e os.DirEntry) bool { return e.Name() == SnapshotsDir }) {
		t.Errorf("the root lists %s", SnapshotsDir)
	}
	if err := os.Mkdir(snaps, 0o755); !errors.Is(err, os.ErrExist) {
		t.Errorf("mkdir %s: %v", snaps, err)
	}
	if err := os.Rename(filepath.Join(dir, "d"), snaps); !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EEXIST) {
		t.Errorf("rename onto %s: %v", snaps, err)
	}
	if err := os.Remove(snaps); !errors.Is(err, syscall.EPERM) {
		t.Errorf("rmdir %s: %v", snaps, err)
	}

	// A deleted snapshot is gone from the directory.
	if err := v.DeleteSnapshot("first"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(snaps, "first", "f")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("first/f after the delete: %v", err)
	}
	if got := readFile(t, filepath.Join(snaps, "second", "f")); got != "two, longer" {
		t.Errorf("second/f after deleting first reads %q", got)
	}
}
