package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

func umountCommand() *cli.Command {
	return &cli.Command{
		Name:      "umount",
		Aliases:   []string{"unmount"},
		Usage:     "unmount a mounted txfs directory",
		ArgsUsage: "DIR",
		Description: `Unmounts DIR: with umount(2) when run as root, else with "fusermount3 -u".
The "txfs mount" process serving DIR then writes a checkpoint, closes the
image and exits. Fails with "DIR is busy" while files on it are open.

Examples:
   txfs umount /mnt/txfs`,
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("umount needs DIR (see 'txfs help umount')")
			}
			return unmount(c.Args().First())
		},
	}
}

// unmount unmounts the FUSE mount on dir.
func unmount(dir string) error {
	if os.Geteuid() == 0 {
		err := syscall.Unmount(dir, 0)
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("%s is busy", dir)
		}
		if err != nil {
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
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-u", dir)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "busy") {
			return fmt.Errorf("%s is busy", dir)
		}
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("umount %s: %s", dir, msg)
	}
	return nil
}
