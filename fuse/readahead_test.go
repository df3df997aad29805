package fuse

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// readAhead returns the kernel readahead of the mount on dir, in KiB.
func readAhead(t *testing.T, dir string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestReadAhead(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: only root may set a mount's readahead")
	}
	if got := readAhead(t, testMount(t)); got != fmt.Sprint(DefaultReadAheadKB) {
		t.Errorf("default readahead %s KiB, want %d", got, DefaultReadAheadKB)
	}
	if got := readAhead(t, testMountConfig(t, MountConfig{ReadAheadKB: 512})); got != "512" {
		t.Errorf("readahead=512 gave %s KiB", got)
	}
	if got := readAhead(t, testMountConfig(t, MountConfig{ReadAheadKB: -1})); got != "128" {
		t.Errorf("the kernel's default readahead is %s KiB here, want 128", got)
	}
}
