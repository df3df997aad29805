package tests

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	txfuse "github.com/txfs/txfs/fuse"
)

// mountinfoOn returns the lines of /proc/self/mountinfo whose mount point
// is dir, bottom first.
func mountinfoOn(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var on []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && txfuse.UnescapeMountPath(f[4]) == dir {
			on = append(on, line)
		}
	}
	return on
}

// refused runs "txfs ARGS" (with files as descriptors 3, ...), which must
// exit with code at once, saying each of says, and leave the mounts on
// dir as they were.
func refused(t *testing.T, dir string, code int, says []string, files []*os.File, args ...string) {
	t.Helper()
	mountDirsMu.Lock()
	mountDirs[dir] = true
	mountDirsMu.Unlock()
	before := mountinfoOn(t, dir)
	got, out := runFiles(t, 20*time.Second, files, bin("txfs"), args...)
	cmd := "txfs " + strings.Join(args, " ")
	if got != code {
		t.Errorf("%s: exit %d, want %d; output:\n%s", cmd, got, code, out)
	}
	for _, s := range says {
		if !strings.Contains(out, s) {
			t.Errorf("%s: the message does not say %q:\n%s", cmd, s, out)
		}
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 {
		t.Errorf("%s: want a one-line message, got:\n%s", cmd, out)
	}
	after := mountinfoOn(t, dir)
	if !slices.Equal(before, after) {
		t.Errorf("%s changed the mounts on %s:\nbefore:\n%s\nafter:\n%s", cmd, dir,
			strings.Join(before, "\n"), strings.Join(after, "\n"))
		for range len(after) - len(before) {
			_ = detach(dir)
		}
	}
}

// TestMountRefusesMountPoint: txfs mount refuses a mount point that is
// missing, not a directory, not empty, or already a mount point (live or
// dead) at once, with a message naming it and what is in the way, and
// leaves no mount behind. -o nonempty mounts over contents and mounts.
func TestMountRefusesMountPoint(t *testing.T) {
	m := newMount(t)
	if err := os.WriteFile(filepath.Join(m.dir, "canary"), []byte("lower\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	img := filepath.Join(base, "b.img")
	mkfs(t, img, "64M")
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(base, "missing")
	full := filepath.Join(base, "full")
	if err := os.Mkdir(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "under"), []byte("hidden\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	refused(t, file, 1, []string{file, "not a directory"}, nil, "mount", img, file)
	if st, err := os.Stat(file); err != nil || !st.Mode().IsRegular() {
		t.Errorf("%s after the refused mount: %v, %v", file, st, err)
	}
	refused(t, missing, 1, []string{missing, "no such directory"}, nil, "mount", img, missing)
	refused(t, full, 1, []string{full, "not empty", "-o nonempty"}, nil, "mount", img, full)
	refused(t, m.dir, 1, []string{m.dir, "fuse.txfs " + m.img + " is already mounted there", "-o nonempty"}, nil, "mount", img, m.dir)

	// -o nonempty mounts over the contents, which are back after the
	// unmount.
	over := newMountOn(t, filepath.Join(base, "c.img"), full, "nonempty")
	if _, err := os.Stat(filepath.Join(full, "under")); !os.IsNotExist(err) {
		t.Errorf("the directory's contents show through the mount: %v", err)
	}
	over.stop()
	if b, err := os.ReadFile(filepath.Join(full, "under")); err != nil || string(b) != "hidden\n" {
		t.Errorf("the directory's contents after the unmount: %q, %v", b, err)
	}

	// -o nonempty mounts a second image over the first; "txfs umount"
	// then takes off the top one only.
	top := startDaemon(t, img, m.dir, []string{"nonempty"})
	if _, err := os.Stat(filepath.Join(m.dir, "canary")); !os.IsNotExist(err) {
		t.Errorf("the lower mount shows through the upper: %v", err)
	}
	if code, out := runTimeout(t, exitTimeout, bin("txfs"), "umount", m.dir); code != 0 {
		t.Fatalf("txfs umount of the upper mount: exit %d: %s", code, out)
	}
	if !top.waitExit(exitTimeout) || top.exitCode() != 0 {
		t.Fatalf("the upper txfs mount after its unmount: exited %v, %v; stderr:\n%s", top.exited(), top.err, top.stderr)
	}
	fsck(t, img)
	if b, err := os.ReadFile(filepath.Join(m.dir, "canary")); err != nil || string(b) != "lower\n" {
		t.Errorf("the lower mount after the upper's unmount: canary %q, %v", b, err)
	}

	// A dead mount (its daemon killed) is named as such, with the way
	// out, and "txfs umount" clears it.
	m.killOnly()
	refused(t, m.dir, 1, []string{m.dir, "fuse.txfs " + m.img + " whose server is gone", "txfs umount " + m.dir}, nil, "mount", img, m.dir)
	if code, out := runTimeout(t, exitTimeout, bin("txfs"), "umount", m.dir); code != 0 {
		t.Errorf("txfs umount of the dead mount: exit %d: %s", code, out)
		_ = detach(m.dir)
	}
	if on := mountinfoOn(t, m.dir); len(on) > 0 {
		t.Errorf("still mounted after txfs umount of the dead mount: %s", on)
	}
	fsck(t, m.img)
}

// TestMountFailuresLeaveNoMount: options that cannot be honoured are
// refused before the mount, and a --ready-fd write that fails after the
// mount takes the mount back (exit 1).
func TestMountFailuresLeaveNoMount(t *testing.T) {
	if skipReason != "" {
		t.Skip("skipping: " + skipReason)
	}
	base := t.TempDir()
	img := filepath.Join(base, "a.img")
	mkfs(t, img, "64M")
	dir := filepath.Join(base, "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(base, "missing", "cpu.prof")
	refused(t, dir, 1, []string{"--cpuprofile", prof}, nil, "mount", "--cpuprofile", prof, img, dir)
	refused(t, dir, 1, []string{"--memprofile", prof}, nil, "mount", "--memprofile", prof, img, dir)
	refused(t, dir, 2, []string{"cache=3M"}, nil, "mount", "-o", "cache=3M", img, dir)
	refused(t, dir, 2, []string{"--ready-fd 9 is not an open file descriptor"}, nil, "mount", "--ready-fd", "9", img, dir)
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	refused(t, dir, 2, []string{"--ready-fd 3 is not open for writing"}, []*os.File{devNull}, "mount", "--ready-fd", "3", img, dir)

	// Nobody reads the pipe: "ready" cannot be written after the mount.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	refused(t, dir, 1, []string{"--ready-fd 3", "broken pipe"}, []*os.File{w}, "mount", "--ready-fd", "3", img, dir)
	w.Close()
	fsck(t, img)
}

// TestUmountRefuses: txfs umount names the path and the reason for a
// missing path, a directory that is not a mount point, and a mount that
// is not txfs, which it leaves alone.
func TestUmountRefuses(t *testing.T) {
	if skipReason != "" {
		t.Skip("skipping: " + skipReason)
	}
	base := t.TempDir()
	missing := filepath.Join(base, "missing")
	refused(t, missing, 1, []string{missing, "no such file or directory"}, nil, "umount", missing)
	refused(t, base, 1, []string{base, "not a mount point"}, nil, "umount", base)
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	refused(t, file, 1, []string{file, "not a mount point"}, nil, "umount", file)
	tmpfs := filepath.Join(base, "tmpfs")
	if err := os.Mkdir(tmpfs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("scratch", tmpfs, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(tmpfs, syscall.MNT_DETACH)
	refused(t, tmpfs, 1, []string{tmpfs, "tmpfs scratch is mounted there, not txfs"}, nil, "umount", tmpfs)
}
