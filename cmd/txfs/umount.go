package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/urfave/cli/v2"

	txfuse "github.com/txfs/txfs/fuse"
)

func umountCommand() *cli.Command {
	return &cli.Command{
		Name:      "umount",
		Aliases:   []string{"unmount"},
		Usage:     "unmount a mounted txfs directory",
		ArgsUsage: "DIR",
		Description: `Unmounts DIR: with umount(2) when run as root, else with "fusermount3 -u".
The "txfs mount" process serving DIR then writes a checkpoint, closes the
image and exits. Fails with "DIR is busy" while files on it are open, and
refuses a DIR that is not a txfs mount point (naming what is mounted there).

--dead unmounts DIR only if it is a txfs mount whose daemon is gone (it was
killed or crashed, and every access fails with "Transport endpoint is not
connected"), lazily: programs that still have files open on it keep them
until they close them. Anything else on DIR, a live mount too, is left as it
is, and txfs exits 0. The systemd unit runs it before each start and after
each stop.

Examples:
   txfs umount /mnt/txfs
   txfs umount --dead /mnt/txfs`,
		Flags: []cli.Flag{
			&cli.BoolFlag{
				Name:  "dead",
				Usage: "only unmount a txfs mount whose daemon is gone (lazily); leave anything else",
			},
		},
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("umount needs DIR (see 'txfs help umount')")
			}
			if c.Bool("dead") {
				_, err := detachDeadMount(c.Args().First())
				return err
			}
			return unmount(c.Args().First())
		},
	}
}

// unmount unmounts the txfs mount on dir, and nothing else.
func unmount(dir string) error {
	on, err := txfuse.MountsOn(dir)
	if err != nil {
		return fmt.Errorf("cannot unmount %s: %w", dir, err)
	}
	if len(on) == 0 {
		if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cannot unmount %s: no such file or directory", dir)
		}
		return fmt.Errorf("cannot unmount %s: not a mount point", dir)
	}
	if top := on[len(on)-1]; top.Type != "fuse.txfs" {
		return fmt.Errorf("cannot unmount %s: %s is mounted there, not txfs", dir, top)
	}
	err = txfuse.UnmountDir(dir, false)
	if errors.Is(err, syscall.EBUSY) {
		return fmt.Errorf("%s is busy", dir)
	}
	return err
}
