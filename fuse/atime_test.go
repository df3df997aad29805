package fuse

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel leaves atime to a FUSE daemon: a read through the mount must
// move it (relatime), as on ext4, and a second read must not.
func TestAtimeOnRead(t *testing.T) {
	mnt := testMount(t)
	p := filepath.Join(mnt, "f")
	if err := os.WriteFile(p, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	at := func() unix.StatxTimestamp {
		var st unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_STATX_FORCE_SYNC, unix.STATX_BASIC_STATS, &st); err != nil {
			t.Fatal(err)
		}
		return st.Atime
	}
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_STATX_FORCE_SYNC, unix.STATX_BASIC_STATS, &st); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if _, err := os.ReadFile(p); err != nil {
		t.Fatal(err)
	}
	first := at()
	if first == st.Atime || first.Sec < st.Mtime.Sec || (first.Sec == st.Mtime.Sec && first.Nsec <= st.Mtime.Nsec) {
		t.Fatalf("read after write: atime %+v, was %+v, mtime %+v", first, st.Atime, st.Mtime)
	}
	time.Sleep(10 * time.Millisecond)
	if _, err := os.ReadFile(p); err != nil {
		t.Fatal(err)
	}
	if again := at(); again != first {
		t.Fatalf("second read moved atime from %+v to %+v", first, again)
	}
}
