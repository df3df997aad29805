package fuse

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/txfs/txfs/internal/metricstest"
)

// Each request the kernel sends is counted once under its operation, and
// the bytes users write and read are counted as they pass.
func TestOperationMetrics(t *testing.T) {
	mnt, v := testMountVolume(t, MountConfig{})
	value := func(name string, labels ...string) float64 {
		return metricstest.Value(t, v.Metrics(), name, labels...)
	}
	written, read := value("txfs_written_bytes_total"), value("txfs_read_bytes_total")
	fsyncs := value("txfs_operations_total", "op", "fsync")

	data := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(data)
	path := filepath.Join(mnt, "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := value("txfs_written_bytes_total"); got < written+1<<20 {
		t.Errorf("written bytes %v after writing 1 MiB, %v before", got, written)
	}
	if got := value("txfs_operations_total", "op", "fsync"); got != fsyncs+1 {
		t.Errorf("%v fsync requests after one fsync, %v before", got, fsyncs)
	}
	// One request in 16 of each kind is timed.
	f, err = os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	timed := value("txfs_operation_duration_seconds", "op", "fsync")
	for range 32 {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	if got := value("txfs_operation_duration_seconds", "op", "fsync"); got != timed+2 {
		t.Errorf("32 fsyncs timed %v in the latency histogram, want 2 (one in 16)", got-timed)
	}
	for _, op := range []string{"create", "write", "flush", "release"} {
		if got := value("txfs_operations_total", "op", op); got < 1 {
			t.Errorf("no %s request counted", op)
		}
	}

	// The kernel keeps what was written in its page cache: drop it so
	// that the reads reach the daemon.
	f, err = os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	dropPageCache(t, f)
	got, err := os.ReadFile(path)
	f.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	if got := value("txfs_read_bytes_total"); got < read+1<<20 {
		t.Errorf("read bytes %v after reading 1 MiB, %v before", got, read)
	}

	errs := value("txfs_operation_errors_total", "op", "lookup")
	if _, err := os.Stat(filepath.Join(mnt, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of a missing name: %v", err)
	}
	if got := value("txfs_operation_errors_total", "op", "lookup"); got != errs+1 {
		t.Errorf("lookup errors %v after a lookup of a missing name, %v before", got, errs)
	}
	// The engine's metrics are in the same registry.
	if fams := metricstest.Families(t, v.Metrics()); !fams["txfs_log_flush_duration_seconds"] || !fams["txfs_live_bytes"] {
		t.Errorf("the engine's metrics are missing from the mount's registry")
	}
}

// dropPageCache drops the kernel's clean pages of f.
func dropPageCache(t *testing.T, f *os.File) {
	t.Helper()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
}
