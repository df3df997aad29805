package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/txfs/txfs"
	txfuse "github.com/txfs/txfs/fuse"
)

// startCPUProfile profiles the daemon into path; stop writes the profile.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "txfs: --cpuprofile: %v\n", err)
		}
	}, nil
}

func mountCommand() *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "serve an image on a directory until unmounted",
		ArgsUsage: "IMAGE DIR",
		Description: `Opens IMAGE (taking an exclusive lock on it: a second mount of the same
image fails at once and names the process that holds it), mounts it on DIR
and serves it in the foreground. SIGTERM or SIGINT unmounts; while files are
open the unmount fails, txfs reports "DIR is busy" and keeps serving. Once DIR
is unmounted, by a signal or by "txfs umount DIR", txfs writes a checkpoint,
closes the image and exits 0.

DIR must be an empty directory that is not already a mount point: a DIR
that is missing, not a directory, not empty or already mounted on (by
txfs or anything else) is refused before the image is opened, naming what
is in the way. "-o nonempty" mounts over the contents or the mount that is
there (they are hidden until the unmount). Whatever fails after the kernel
has the mount, txfs unmounts before it exits: it never leaves a mount
behind.

Options (-o, comma separated, repeatable):
   ro                   mount read-only (the image is opened read-only)
   allow_other          let other users use the mount
   default_permissions  the kernel checks permissions (always on)
   noatime              do not update access times on reads
   debug                log every FUSE request
   nonempty             mount even on a directory that is not empty or is
                        already a mount point
   readahead=KB         kernel readahead of the mount in KiB (default 4096;
                        0 keeps the kernel's 128; needs root)

Examples:
   txfs mount disk.img /mnt/txfs
   txfs mount -o ro,allow_other disk.img /mnt/txfs
   txfs mount --ready-fd 3 disk.img /mnt/txfs 3>ready.pipe`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{
				Name:  "o",
				Usage: "mount options: ro, allow_other, default_permissions, noatime, debug, nonempty, readahead=KB",
			},
			&cli.IntFlag{
				Name:  "ready-fd",
				Value: -1,
				Usage: `write "ready\n" to file descriptor ` + "`N`" + ` once the mount is usable, then close it (if that write fails, txfs unmounts and exits 1)`,
			},
			&cli.StringFlag{
				Name:  "cpuprofile",
				Usage: "write a Go CPU profile of the daemon to `FILE` until it exits (for go tool pprof)",
			},
		},
		OnUsageError: onUsageError,
		Action:       runMount,
	}
}

// mountOptions parses the -o options. nonEmpty is "-o nonempty": mount
// even over a directory that is not empty or is already a mount point.
func mountOptions(opts []string) (cfg txfuse.MountConfig, nonEmpty bool, err error) {
	for _, o := range opts {
		o = strings.TrimSpace(o)
		switch o {
		case "":
		case "ro":
			cfg.ReadOnly = true
		case "rw":
			cfg.ReadOnly = false
		case "allow_other":
			cfg.AllowOther = true
		case "default_permissions":
			// Always on.
		case "noatime":
			cfg.NoAtime = true
		case "atime", "relatime":
			cfg.NoAtime = false
		case "debug":
			cfg.Debug = true
		case "nonempty":
			nonEmpty = true
		default:
			if kb, ok := strings.CutPrefix(o, "readahead="); ok {
				n, err := strconv.Atoi(kb)
				if err != nil || n < 0 || n > 1<<20 {
					return cfg, false, usagef("readahead=%s: want KiB from 0 to 1048576", kb)
				}
				cfg.ReadAheadKB = n
				if n == 0 {
					cfg.ReadAheadKB = -1 // the kernel's default
				}
				continue
			}
			return cfg, false, usagef("unknown mount option %q", o)
		}
	}
	return cfg, nonEmpty, nil
}

// readyFile is the --ready-fd descriptor, checked before anything is
// mounted: a descriptor that is not open for writing could not say
// "ready" once the mount exists.
func readyFile(fd int) (*os.File, error) {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return nil, usagef("--ready-fd %d is not an open file descriptor", fd)
	}
	if flags&unix.O_ACCMODE == unix.O_RDONLY {
		return nil, usagef("--ready-fd %d is not open for writing", fd)
	}
	return os.NewFile(uintptr(fd), "ready-fd"), nil
}

func runMount(c *cli.Context) error {
	if c.NArg() != 2 {
		return usagef("mount needs IMAGE and DIR (see 'txfs help mount')")
	}
	image, dir := c.Args().Get(0), c.Args().Get(1)
	cfg, nonEmpty, err := mountOptions(c.StringSlice("o"))
	if err != nil {
		return err
	}
	readyFd := c.Int("ready-fd")
	var ready *os.File
	if readyFd >= 0 {
		if ready, err = readyFile(readyFd); err != nil {
			return err
		}
		defer ready.Close()
	}
	// Refuse a mount point the mount would fail on or hide before the
	// image is touched.
	if err := checkMountPoint(dir, nonEmpty); err != nil {
		return err
	}
	if path := c.String("cpuprofile"); path != "" {
		stop, err := startCPUProfile(path)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer stop()
	}

	if abs, err := filepath.Abs(image); err == nil {
		image = abs
	}
	cfg.FsName = image

	// Catch signals before the mount exists, so a SIGTERM that arrives
	// right after the mount still unmounts cleanly.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	v, err := txfs.OpenPath(image, txfs.Options{ReadOnly: cfg.ReadOnly, NoAtime: cfg.NoAtime})
	if err != nil {
		return fmt.Errorf("open %s: %w", image, err)
	}
	srv, err := txfuse.Mount(v, dir, cfg)
	if err != nil {
		v.Close()
		return err
	}
	if ready != nil {
		_, err := ready.WriteString("ready\n")
		ready.Close()
		ready = nil
		if err != nil {
			// Whoever waits for "ready" will not hear it: take the
			// mount back rather than leave one nobody knows of.
			err = fmt.Errorf("--ready-fd %d: %w", readyFd, err)
			if rerr := txfuse.Release(srv, dir); rerr != nil {
				return fmt.Errorf("%w; the mount stays: %v", err, rerr)
			}
			if cerr := v.Close(); cerr != nil {
				return fmt.Errorf("%w; close %s: %v", err, image, cerr)
			}
			return err
		}
	}
	done := make(chan struct{})
	go func() {
		srv.Wait()
		close(done)
	}()

serve:
	for {
		select {
		case <-done:
			break serve
		case s := <-sigs:
			err := srv.Unmount()
			switch {
			case err == nil:
				break serve
			case errors.Is(err, syscall.EBUSY) || strings.Contains(err.Error(), "busy"):
				fmt.Fprintf(os.Stderr, "txfs: %v: %s is busy; still serving\n", s, dir)
			default:
				fmt.Fprintf(os.Stderr, "txfs: %v: unmount %s: %v; still serving\n", s, dir, err)
			}
		}
	}
	<-done

	// Every request is answered: write the checkpoint and let the
	// image go.
	if err := v.Close(); err != nil {
		return fmt.Errorf("close %s: %w", image, err)
	}
	return nil
}
