package tests

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vmHWM is the most resident memory process pid has had, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(l, "VmHWM: %d kB", &kb); err == nil {
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// TestMountMemoryBudget: -o cache sets the daemon's memory budget, and
// writing and deleting a GiB keeps the daemon within it and its fixed
// overhead (README, "txfs mount").
func TestMountMemoryBudget(t *testing.T) {
	if skipReason != "" {
		t.Skip("skipping: " + skipReason)
	}
	const (
		budget   = 8 << 20
		overhead = 48 << 20
	)
	base := t.TempDir()
	dir := filepath.Join(base, "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m := newMountSized(t, filepath.Join(base, "txfs.img"), dir, "4G", fmt.Sprintf("cache=%dM", budget>>20))
	f, err := os.Create(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(buf) // incompressible
	for i := range 1024 {
		buf[0], buf[1] = byte(i), byte(i>>8)
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "big")); err != nil {
		t.Fatal(err)
	}
	hwm := vmHWM(t, m.pid())
	t.Logf("most resident memory of the daemon: %d MiB, budget %d MiB", hwm>>20, budget>>20)
	if hwm > budget+overhead {
		t.Fatalf("the daemon had %d MiB resident with a budget of %d MiB (at most %d MiB more expected)", hwm>>20, budget>>20, overhead>>20)
	}
}
