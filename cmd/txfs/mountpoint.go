package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	txfuse "github.com/txfs/txfs/fuse"
)

// checkMountPoint refuses a mount point that the mount would not work on
// or that it would hide: one that is missing or not a directory, is
// already a mount point, or is not empty. nonEmpty ("-o nonempty", as for
// other FUSE filesystems) allows the last two.
func checkMountPoint(dir string, nonEmpty bool) error {
	st, err := os.Stat(dir)
	if err == nil && !st.IsDir() {
		return fmt.Errorf("cannot mount on %s: not a directory", dir)
	}
	empty := true
	if err == nil {
		// Reading it also asks the server of a FUSE mount there, which
		// a stat may not (the kernel caches attributes).
		empty, err = isEmptyDir(dir)
		if errors.Is(err, os.ErrPermission) {
			empty, err = true, nil // only the kernel can tell
		}
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("cannot mount on %s: no such directory", dir)
	case errors.Is(err, syscall.ENOTCONN):
		what, how := "a FUSE mount", "fusermount3 -u"
		if on, _ := txfuse.MountsOn(dir); len(on) > 0 {
			what = on[len(on)-1].String()
			if on[len(on)-1].Type == "fuse.txfs" {
				how = "txfs umount"
			}
		}
		return fmt.Errorf("cannot mount on %s: %s whose server is gone is there (unmount it first: %s %s)", dir, what, how, dir)
	case err != nil:
		return fmt.Errorf("cannot mount on %s: %w", dir, err)
	case nonEmpty:
		return nil
	}
	on, err := txfuse.MountsOn(dir)
	if err != nil {
		return fmt.Errorf("cannot mount on %s: %w", dir, err)
	}
	if len(on) > 0 {
		return fmt.Errorf("cannot mount on %s: %s is already mounted there (-o nonempty mounts over it)", dir, on[len(on)-1])
	}
	if !empty {
		return fmt.Errorf("cannot mount on %s: directory not empty (-o nonempty mounts over what it holds)", dir)
	}
	return nil
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if err == io.EOF {
		return true, nil
	}
	return false, err
}
