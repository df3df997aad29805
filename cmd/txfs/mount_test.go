package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/txfs/txfs"
	txfuse "github.com/txfs/txfs/fuse"
	"github.com/txfs/txfs/segment"
)

func TestMountOptions(t *testing.T) {
	m, err := mountOptions([]string{"ro", " noatime", "readahead=1024", "allow_other", "cache=16M"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.fuse
	if !cfg.ReadOnly || !cfg.NoAtime || !cfg.AllowOther || cfg.ReadAheadKB != 1024 || m.nonEmpty || m.cacheBytes != 16<<20 {
		t.Errorf("parsed %+v", m)
	}
	if m, err = mountOptions([]string{"readahead=0"}); err != nil || m.fuse.ReadAheadKB >= 0 || m.cacheBytes != 0 {
		t.Errorf("readahead=0 (the kernel's default): %+v, %v", m, err)
	}
	if m, err = mountOptions([]string{"nonempty"}); err != nil || !m.nonEmpty {
		t.Errorf("nonempty: %+v, %v", m, err)
	}
	if m, err = mountOptions([]string{"cache=4m", "cache=1G"}); err != nil || m.cacheBytes != 1<<30 {
		t.Errorf("cache=1G after cache=4m: %+v, %v", m, err)
	}
	m, err = mountOptions([]string{"clean_policy=greedy", "clean_low=3", "clean_high=9", "clean_pace=5ms", "noclean"})
	if want := (txfs.CleanerOptions{Policy: "greedy", LowWatermark: 3, HighWatermark: 9, Pace: 5 * time.Millisecond, Off: true}); err != nil || m.cleaner != want {
		t.Errorf("cleaner options: %+v, %v; want %+v", m.cleaner, err, want)
	}
	if _, err := mountOptions([]string{"clean_low=9", "clean_high=3"}); err == nil {
		t.Errorf("clean_low above clean_high accepted")
	}
	for _, bad := range []string{"readahead=", "readahead=-4", "readahead=1x", "readahead=2000000", "sync", "ro=1",
		"cache=", "cache=3M", "cache=2T", "cache=64X", "cache=-64M", "clean_policy=", "clean_policy=lru",
		"clean_low=0", "clean_low=x", "clean_high=-1", "clean_pace=0", "clean_pace=2h", "clean_pace=fast", "noclean=1"} {
		if _, err := mountOptions([]string{bad}); err == nil || !strings.Contains(err.Error(), strings.SplitN(bad, "=", 2)[0]) {
			t.Errorf("option %q: error %v, want one naming it", bad, err)
		}
	}
}

// mountsOn lists the mounts on dir, failing the test if it cannot.
func mountsOn(t *testing.T, dir string) []txfuse.MountInfo {
	t.Helper()
	on, err := txfuse.MountsOn(dir)
	if err != nil {
		t.Fatal(err)
	}
	return on
}

// mainRefused runs Main(args), which must fail at once: a mount that
// succeeds serves until unmounted, so after a while the test unmounts dir
// and fails.
func mainRefused(t *testing.T, dir string, args []string) error {
	t.Helper()
	res := make(chan error, 1)
	go func() { res <- Main(args) }()
	select {
	case err := <-res:
		return err
	case <-time.After(10 * time.Second):
		t.Errorf("%s mounted and is serving", strings.Join(args, " "))
		syscall.Unmount(dir, syscall.MNT_DETACH)
		return <-res
	}
}

// newImage formats a small image file and returns its path.
func newImage(t *testing.T) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "a.img")
	dev, err := segment.CreateFile(img, 32<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := txfs.Format(dev, txfs.FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	return img
}

// TestMountRefusesMountPoint: a mount point that is missing, not a
// directory, not empty or already mounted on is refused (exit 1) with a
// message naming it and what is in the way, and nothing is left mounted.
func TestMountRefusesMountPoint(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil || os.Geteuid() != 0 {
		// Without the check the mounts would be tried: they need both.
		t.Skipf("skipping: needs root and /dev/fuse (%v)", err)
	}
	img := newImage(t)
	base := t.TempDir()
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o644)
	full := filepath.Join(base, "full")
	os.Mkdir(full, 0o755)
	os.WriteFile(filepath.Join(full, "f"), []byte("x"), 0o644)
	tmpfs := filepath.Join(base, "tmpfs")
	os.Mkdir(tmpfs, 0o755)
	if err := syscall.Mount("scratch", tmpfs, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(tmpfs, syscall.MNT_DETACH)

	for _, c := range []struct {
		dir  string
		opts []string
		says []string
		code int
	}{
		{file, nil, []string{file, "not a directory"}, exitError},
		{filepath.Join(base, "missing"), nil, []string{filepath.Join(base, "missing"), "no such directory"}, exitError},
		{full, nil, []string{full, "not empty", "-o nonempty"}, exitError},
		{tmpfs, nil, []string{tmpfs, "tmpfs scratch is already mounted there", "-o nonempty"}, exitError},
		{file, []string{"-o", "nonempty"}, []string{file, "not a directory"}, exitError},
		// The descriptor is checked first, so these never get to mount.
		{filepath.Join(base, "missing"), []string{"--ready-fd", "1000"}, []string{"--ready-fd 1000 is not an open file descriptor"}, exitUsage},
	} {
		before := mountsOn(t, c.dir)
		args := append(append([]string{"txfs", "mount"}, c.opts...), img, c.dir)
		err := mainRefused(t, c.dir, args)
		if code := exitCode(err); code != c.code || err == nil {
			t.Errorf("%s: exit %d (want %d): %v", strings.Join(args, " "), code, c.code, err)
		}
		for _, s := range c.says {
			if err != nil && !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q does not say %q", strings.Join(args, " "), err, s)
			}
		}
		if after := mountsOn(t, c.dir); len(after) != len(before) {
			t.Errorf("%s left a mount behind: %v", strings.Join(args, " "), after)
			syscall.Unmount(c.dir, syscall.MNT_DETACH)
		}
	}

	// A read-only descriptor could never say "ready".
	r, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dir := filepath.Join(base, "missing")
	err = mainRefused(t, dir, []string{"txfs", "mount", "--ready-fd", strconv.Itoa(int(r.Fd())), img, dir})
	if exitCode(err) != exitUsage || err == nil || !strings.Contains(err.Error(), "not open for writing") {
		t.Errorf("--ready-fd on a read-only descriptor: %v", err)
	}
	if on := mountsOn(t, dir); len(on) > 0 {
		t.Errorf("a refused --ready-fd left a mount: %s", on)
		syscall.Unmount(dir, syscall.MNT_DETACH)
	}
}

// TestMemProfile: --memprofile writes a heap profile on SIGUSR1 and again
// when the daemon stops.
func TestMemProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "heap.prof")
	stop := startMemProfile(path)
	isProfile := func() bool {
		b, err := os.ReadFile(path)
		return err == nil && len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b // gzipped protobuf
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !isProfile(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no heap profile after SIGUSR1")
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	stop()
	if !isProfile() {
		t.Fatal("no heap profile at exit")
	}
}
