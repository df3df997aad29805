package fuse

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// UnmountDir unmounts the mount on dir: with umount2(2) as root, else
// with "fusermount3 -u" (which lets users unmount their own FUSE mounts).
// lazy detaches the mount even while files on it are open (MNT_DETACH,
// "fusermount3 -u -z"): it leaves the tree at once and the kernel lets it
// go when its last user does. A mount with open files fails with an error
// that is syscall.EBUSY.
func UnmountDir(dir string, lazy bool) error {
	if os.Geteuid() == 0 {
		flags := 0
		if lazy {
			flags = syscall.MNT_DETACH
		}
		if err := syscall.Unmount(dir, flags); err != nil {
			return fmt.Errorf("umount %s: %w", dir, err)
		}
		return nil
	}
	bin, err := exec.LookPath("fusermount3")
	if err != nil {
		if bin, err = exec.LookPath("fusermount"); err != nil {
			return fmt.Errorf("umount %s: neither fusermount3 nor fusermount found (or run as root)", dir)
		}
	}
	args := []string{"-u", dir}
	if lazy {
		args = []string{"-u", "-z", dir}
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "busy") {
			return fmt.Errorf("umount %s: %w", dir, syscall.EBUSY)
		}
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("umount %s: %s", dir, msg)
	}
	return nil
}

// Release takes back a mount that is not to be used after all (a step
// after the mount failed): it unmounts dir, or detaches it lazily when
// files on it are already open, and waits until the server has answered
// its last request, so that the caller may close the volume. No mount is
// left on dir unless the unmount itself fails.
func Release(server *Server, dir string) error {
	err := server.Unmount()
	if err == nil {
		return nil
	}
	if derr := UnmountDir(dir, true); derr != nil {
		return fmt.Errorf("%v; lazy unmount: %w", err, derr)
	}
	server.Wait()
	return nil
}
