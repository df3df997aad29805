package fuse

import (
	"fmt"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// DefaultReadAheadKB is the kernel readahead txfs asks for on its mounts.
//
// A FUSE mount starts with the 128 KiB readahead of a new backing device,
// and the kernel never asks the daemon for more than the readahead window
// at once: a sequential read becomes one 128 KiB request per round trip,
// however large max_read is. A window of 4 MiB lets the kernel send
// requests of max_read (1 MiB) and keep several in flight, which the
// engine serves concurrently (reads leave the volume lock before touching
// the device). Blocks written together lie together in the log, so a
// large request is one large device read.
const DefaultReadAheadKB = 4096

// SetReadAhead sets the kernel's readahead for the FUSE mount on dir to kb
// KiB through /sys/class/bdi, which only root may write.
func SetReadAhead(dir string, kb int) error {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return err
	}
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(path, []byte(strconv.Itoa(kb)), 0); err != nil {
		return fmt.Errorf("readahead of %s: %w", dir, err)
	}
	return nil
}
