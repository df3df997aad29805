package segment

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// ErrLocked reports a device another process holds the lock of.
var ErrLocked = errors.New("image in use")

// Lock takes the image lock (flock) on the device: exclusive for writing,
// shared for reading, so that one writer at most uses an image. It fails
// at once, naming the process that holds the lock when /proc/locks says.
// The lock lasts until Close.
func (d *FileDevice) Lock(exclusive bool) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(d.Fd()), how|syscall.LOCK_NB); err != nil {
		if err == syscall.EWOULDBLOCK {
			return fmt.Errorf("%w: %s%s", ErrLocked, d.path, d.lockHolder())
		}
		return fmt.Errorf("lock %s: %w", d.path, err)
	}
	return nil
}

// lockHolder names the process holding a flock on the device's file, from
// /proc/locks, or returns "".
func (d *FileDevice) lockHolder() string {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(d.Fd()), &st); err != nil {
		return ""
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return ""
	}
	defer f.Close()
	want := fmt.Sprintf(":%d", st.Ino)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF
		fs := strings.Fields(sc.Text())
		if len(fs) >= 6 && fs[1] == "FLOCK" && strings.HasSuffix(fs[5], want) {
			pid := fs[4]
			cmd, _ := os.ReadFile("/proc/" + pid + "/comm")
			if c := strings.TrimSpace(string(cmd)); c != "" {
				return fmt.Sprintf(" (held by process %s, %s)", pid, c)
			}
			return fmt.Sprintf(" (held by process %s)", pid)
		}
	}
	return ""
}
