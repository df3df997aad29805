package txfs

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/txfs/txfs/segment"
)

// OpenPath opens the volume in an image file or block device. It holds a
// lock on it for as long as the volume is open: exclusive for writing,
// shared for reading, so one writer at most uses an image.
func OpenPath(path string, o Options) (*Volume, error) {
	dev, err := segment.OpenFile(path, o.ReadOnly)
	if err != nil {
		return nil, err
	}
	if err := LockDevice(dev, path, !o.ReadOnly); err != nil {
		dev.Close()
		return nil, err
	}
	v, err := Open(dev, o)
	if err != nil {
		dev.Close()
		return nil, err
	}
	v.closeDev = true
	return v, nil
}

// LockDevice takes the image lock (flock) on an open device, or fails at
// once naming the process that holds it.
func LockDevice(dev *segment.FileDevice, path string, exclusive bool) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(dev.Fd()), how|syscall.LOCK_NB); err != nil {
		if err == syscall.EWOULDBLOCK {
			return fmt.Errorf("%w: %s is in use%s", ErrBusy, path, lockHolder(dev))
		}
		return fmt.Errorf("lock %s: %w", path, err)
	}
	return nil
}

// lockHolder names the process holding a flock on the device's file, from
// /proc/locks, or returns "".
func lockHolder(dev *segment.FileDevice) string {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(dev.Fd()), &st); err != nil {
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
