package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

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
image and exits; txfs umount waits for that (up to two minutes), so that
the image can be used at once (fsck.txfs, another mount). Fails with "DIR
is busy" while files on it are open, and refuses a DIR that is not a txfs
mount point (naming what is mounted there).

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
	if err != nil {
		return err
	}
	return waitReleased(dir, on[len(on)-1].Source, releaseWait)
}

// releaseWait bounds how long txfs umount waits for the daemon to write
// its last checkpoint and let go of the image.
const releaseWait = 2 * time.Minute

// waitReleased waits until no process writes image (holds its exclusive
// lock): the daemon of the mount on dir, which was just unmounted, writes
// its last checkpoint and exits. An image this user cannot open, or lock,
// is not waited for.
func waitReleased(dir, image string, limit time.Duration) error {
	f, err := os.Open(image)
	if err != nil {
		return nil
	}
	defer f.Close()
	for deadline := time.Now().Add(limit); ; time.Sleep(20 * time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		}
		if err != syscall.EWOULDBLOCK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is unmounted, but its daemon still holds %s after %v", dir, image, limit)
		}
	}
}
