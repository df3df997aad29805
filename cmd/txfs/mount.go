package main

import (
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/cleaner"
	txfuse "github.com/txfs/txfs/fuse"
	"github.com/txfs/txfs/internal/bytesize"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
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
   noexec               no program on the mount may be run (exec: may)
   nosuid, nodev        always on: set-ID bits and device files on the
                        image are not honoured; suid, dev and async are
                        accepted and change nothing
   readahead=KB         kernel readahead of the mount in KiB (default 4096;
                        0 keeps the kernel's 128; needs root)
   cache=SIZE           the daemon's memory budget, with K, M or G (default
                        64M, from 4M to 1T): metadata caches, metadata not
                        yet checkpointed, writes not yet on the image. The
                        daemon stays within it plus about 40 MiB, and 420
                        bytes for each inode the kernel keeps looked up
   node_cache=POLICY    how the metadata node cache chooses what to evict:
                        s3fifo (default), lru or lfu
   node_trace=FILE      record the node cache's lookups in FILE while
                        mounted, for scripts/cachetrace to replay
   clean_policy=NAME    how the cleaner chooses segments to empty: greedy,
                        cost-benefit (default) or age-threshold
   clean_low=N          the cleaner works in the background while fewer
                        than N segments are free (default: 2 times the
                        reserve, 1/10 of the segments, at least 8)
   clean_high=N         ... and up to N free segments, and cleans up to N
                        when the volume is idle (default: 3 times the
                        reserve, at least 12)
   clean_pace=DURATION  pause between two batches of background cleaning
                        (default 20ms)
   noclean              no background cleaning; writers short of space
                        and "txfs clean" still clean (clean: the default)
   metrics=HOST:PORT    also serve the Prometheus metrics of the control
                        socket's GET /metrics on TCP there, to anyone who
                        can connect (such as 127.0.0.1:9567)

The clean_* options, noclean and node_cache can change while mounted:
txfs reload.

--cpuprofile FILE writes a Go CPU profile of the daemon to FILE until it
exits; --memprofile FILE writes a Go heap profile to FILE on SIGUSR1 and
when it exits (go tool pprof bin/txfs FILE).

--daemon serves in the background: txfs returns 0 once DIR is usable, or
fails with the server's message and exit status. A supervisor process (its
own session, input /dev/null, output appended to --log FILE, default
/var/log/txfs/ESCAPED.log or $TXFS_LOG_DIR/ESCAPED.log; its pid in
--pid-file FILE, default /run/txfs/ESCAPED.pid) runs the server and
restarts it after a crash (kill -9 included), after unmounting the dead
mount: after 0.1, 0.2, 0.4, 0.8 and 1.6 s; a sixth crash within a minute
ends it with status 1 and no mount. SIGTERM or SIGINT to the supervisor
unmounts and checkpoints as in the foreground, then it exits 0. With
$NOTIFY_SOCKET set (systemd, Type=notify) the foreground txfs mount sends
READY=1 once DIR is usable and STOPPING=1 once it is unmounted.
"txfs IMAGE DIR -o OPTIONS", as mount.fuse3 runs it for fstab and
"mount -t fuse.txfs", is "txfs mount --daemon -o OPTIONS IMAGE DIR"
without the options only fstab reads (defaults, noauto, nofail, _netdev,
x-*, ...).

Exit status: 0 unmounted cleanly (with --daemon: mounted); 1 failed; 2
usage; 3 the image is in use by another process (named), or another
daemon holds the pid file.

Once mounted, txfs serves the control socket of the mount, which "txfs
status" and "txfs clean" use: /run/txfs/ESCAPED.sock (ESCAPED is DIR as
"systemd-escape --path" writes it; $TXFS_RUN_DIR replaces /run/txfs), for
root and the user who mounted only. If it cannot be opened, txfs warns and
serves the mount without it.

Examples:
   txfs mount disk.img /mnt/txfs
   txfs mount -o ro,allow_other disk.img /mnt/txfs
   txfs mount -o cache=16M disk.img /mnt/txfs
   txfs mount --ready-fd 3 disk.img /mnt/txfs 3>ready.pipe
   txfs mount --daemon -o cache=256M disk.img /mnt/txfs
   mount -t fuse.txfs -o noclean disk.img /mnt/txfs`,
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{
				Name:  "o",
				Usage: "mount `OPTIONS`, comma separated (listed above)",
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
			&cli.StringFlag{
				Name:  "memprofile",
				Usage: "write a Go heap profile of the daemon to `FILE` on SIGUSR1 and at exit (for go tool pprof)",
			},
		}, daemonFlags()...),
		OnUsageError: onUsageError,
		Action:       runMount,
	}
}

// mountSettings is what the -o options ask for.
type mountSettings struct {
	fuse txfuse.MountConfig
	// nonEmpty is "-o nonempty": mount even over a directory that is not
	// empty or is already a mount point.
	nonEmpty bool
	// cacheBytes is "-o cache=SIZE", the engine's memory budget
	// (txfs.Options.CacheBytes); 0 is its default.
	cacheBytes int64
	// cleaner is the clean_* options (txfs.Options.Cleaner).
	cleaner txfs.CleanerOptions
	// metricsAddr is "-o metrics=ADDR": serve the metrics on TCP there.
	metricsAddr string
	// nodeCache is the node_* options (nodecache.go).
	nodeCache nodeCacheSettings
}

// mountOptions parses the -o options.
func mountOptions(opts []string) (mountSettings, error) {
	var m mountSettings
	cfg := &m.fuse
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
			m.nonEmpty = true
		case "noexec":
			cfg.NoExec = true
		case "exec":
			cfg.NoExec = false
		case "nosuid", "nodev", "suid", "dev", "async":
			// txfs mounts are always nosuid and nodev; mount.fuse3
			// adds suid and dev for root, as mount(8) does.
		default:
			if kb, ok := strings.CutPrefix(o, "readahead="); ok {
				n, err := strconv.Atoi(kb)
				if err != nil || n < 0 || n > 1<<20 {
					return m, usagef("readahead=%s: want KiB from 0 to 1048576", kb)
				}
				cfg.ReadAheadKB = n
				if n == 0 {
					cfg.ReadAheadKB = -1 // the kernel's default
				}
				continue
			}
			if s, ok := strings.CutPrefix(o, "cache="); ok {
				n, err := bytesize.Parse(s)
				if err != nil || n < minCache || n > maxCache {
					return m, usagef("cache=%s: want a size from 4M to 1T, such as 64M", s)
				}
				m.cacheBytes = n
				continue
			}
			if addr, ok := strings.CutPrefix(o, "metrics="); ok {
				if err := metricsOption(addr); err != nil {
					return m, err
				}
				m.metricsAddr = addr
				continue
			}
			if ok, err := nodeCacheOption(&m.nodeCache, o); ok || err != nil {
				if err != nil {
					return m, err
				}
				continue
			}
			if ok, err := cleanerOption(&m.cleaner, o); ok || err != nil {
				if err != nil {
					return m, err
				}
				continue
			}
			return m, usagef("unknown mount option %q", o)
		}
	}
	if c := m.cleaner; c.HighWatermark > 0 && c.LowWatermark > c.HighWatermark {
		return m, usagef("clean_low=%d is above clean_high=%d", c.LowWatermark, c.HighWatermark)
	}
	return m, nil
}

// cleanerOption parses a clean_* option into c, and reports whether o was
// one.
func cleanerOption(c *txfs.CleanerOptions, o string) (bool, error) {
	name, val, _ := strings.Cut(o, "=")
	segments := func() (int, error) {
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 || n > 1<<30 {
			return 0, usagef("%s=%s: want a number of segments, at least 1", name, val)
		}
		return n, nil
	}
	var err error
	switch name {
	case "clean_policy":
		if _, perr := cleaner.ByName(val); perr != nil || val == "" {
			return true, usagef("clean_policy=%s: want one of %s", val, strings.Join(cleaner.Names(), ", "))
		}
		c.Policy = val
	case "clean_low":
		c.LowWatermark, err = segments()
	case "clean_high":
		c.HighWatermark, err = segments()
	case "clean_pace":
		d, perr := time.ParseDuration(val)
		if perr != nil || d < time.Millisecond || d > time.Minute {
			return true, usagef("clean_pace=%s: want a duration from 1ms to 1m, such as 20ms", val)
		}
		c.Pace = d
	case "noclean", "clean":
		if val != "" {
			return true, usagef("%s takes no value", name)
		}
		c.Off = name == "noclean"
	default:
		return false, nil
	}
	return true, err
}

// The range of -o cache: the engine's smallest budget, and a bound that
// keeps the memory limit below from overflowing.
const (
	minCache = txfs.MinCacheBytes
	maxCache = 1 << 40
)

// memoryOverhead is what the daemon needs beside the engine's budget: the
// Go runtime, FUSE request buffers, one unit being built, buffers waiting
// for reuse. The Go heap is limited to the budget plus this, so that the
// collector runs before garbage doubles the daemon's size.
const memoryOverhead = 40 << 20

// limitMemory tells the Go runtime how much the daemon may use with a
// budget of cacheBytes (0: the engine's default).
func limitMemory(cacheBytes int64) {
	if cacheBytes == 0 {
		cacheBytes = txfs.DefaultCacheBytes
	}
	debug.SetMemoryLimit(cacheBytes + memoryOverhead)
}

// startMemProfile writes a heap profile of the daemon to path on every
// SIGUSR1; stop writes the last one.
func startMemProfile(path string) (stop func()) {
	write := func() {
		runtime.GC() // the profile shows the heap as of the last collection
		f, err := os.Create(path)
		if err == nil {
			err = pprof.WriteHeapProfile(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "txfs: --memprofile: %v\n", err)
		}
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-usr1:
				write()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(usr1)
		close(done)
		<-exited
		write()
	}
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
	set, err := mountOptions(c.StringSlice("o"))
	if err != nil {
		return err
	}
	cfg := set.fuse
	readyFd := c.Int("ready-fd")
	daemon, err := newDaemonConfig(c, image, dir, set.nonEmpty)
	if err != nil {
		return err
	}
	if c.Bool("daemon") {
		if readyFd >= 0 {
			return usagef("--ready-fd does not go with --daemon")
		}
		return runDaemon(daemon)
	}
	var ready *os.File
	if readyFd >= 0 {
		if ready, err = readyFile(readyFd); err != nil {
			return err
		}
		defer ready.Close()
	}
	// Refuse a mount point the mount would fail on or hide before the
	// image is touched.
	if err := checkMountPoint(dir, set.nonEmpty); err != nil {
		return err
	}
	if path := c.String("cpuprofile"); path != "" {
		stop, err := startCPUProfile(path)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer stop()
	}
	if path := c.String("memprofile"); path != "" {
		// Refused before the mount, as --cpuprofile is.
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("--memprofile: %w", err)
		}
		f.Close()
		defer startMemProfile(path)()
	}
	limitMemory(set.cacheBytes)
	metricsLn, err := listenMetrics(set.metricsAddr)
	if err != nil {
		return err
	}
	if metricsLn != nil {
		defer metricsLn.Close() // when the mount fails before it serves
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

	v, err := txfs.OpenPath(image, txfs.Options{ReadOnly: cfg.ReadOnly, NoAtime: cfg.NoAtime, CacheBytes: set.cacheBytes, Cleaner: set.cleaner,
		OnStop: func(err error) { log.Printf("txfs: %s: the volume stops writing: %v", image, err) }})
	if err != nil {
		return fmt.Errorf("open %s: %w", image, err)
	}
	stopNodeTrace, err := startNodeCache(v, set.nodeCache)
	if err != nil {
		v.Close()
		return err
	}
	defer stopNodeTrace()
	srv, err := txfuse.Mount(v, dir, cfg)
	if err != nil {
		v.Close()
		return err
	}
	// The socket opens before "ready", so that whoever waits for it can
	// ask for the status at once; it closes before the volume does.
	ctl := serveControl(dir, &mountedVolume{Volume: v, opts: c.StringSlice("o"), set: set})
	stopMetrics := serveMetrics(metricsLn, v)
	defer stopMetrics()
	if ready != nil {
		_, err := ready.WriteString("ready\n")
		ready.Close()
		ready = nil
		if err != nil {
			// Whoever waits for "ready" will not hear it: take the
			// mount back rather than leave one nobody knows of.
			err = fmt.Errorf("--ready-fd %d: %w", readyFd, err)
			closeControl(ctl)
			if rerr := txfuse.Release(srv, dir); rerr != nil {
				return fmt.Errorf("%w; the mount stays: %v", err, rerr)
			}
			if cerr := v.Close(); cerr != nil {
				return fmt.Errorf("%w; close %s: %v", err, image, cerr)
			}
			return err
		}
	}
	notifyReady(image, dir)
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
	notifyStopping(dir)
	closeControl(ctl)
	stopMetrics()

	// Every request is answered: write the checkpoint and let the
	// image go.
	if err := v.Close(); err != nil {
		return fmt.Errorf("close %s: %w", image, err)
	}
	return nil
}
