// Command fusebench is the peer and the helpers for scripts/bench.sh.
//
//	fusebench mount [-passthrough] [-plain-readdir] [-readahead KB] [-ready-fd N] DIR MOUNTPOINT
//	fusebench files [-n 20000] [-settle 1.5s] DIR
//	fusebench fsyncfiles [-n 2000] [-size 4096] DIR
//
// "mount" serves go-fuse's loopback filesystem (fs.NewLoopbackRoot) of DIR
// on MOUNTPOINT, in the foreground, with the mount options txfs uses where
// they apply (fuse/mount.go), so the comparison measures the filesystems and
// not their mount options. Kernel FUSE passthrough is off unless
// -passthrough is given: with it, file data goes from the kernel straight to
// the backing file and never reaches the daemon, while txfs handles every
// byte in its daemon (docs/PRACTICES item 21). -plain-readdir turns
// READDIRPLUS off, as txfs had it before. It prints "ready" on stdout
// (and on -ready-fd) once the mount is usable and unmounts on SIGTERM or
// SIGINT.
//
// "files" creates, stats and deletes N empty files in DIR and prints the time
// and rate of each phase. "fsyncfiles" creates N files of SIZE bytes, each
// written and fsynced before the next one, and prints the rate.
//
// Every result line has the form "RESULT <name> <value> <unit>", which
// bench.sh greps for.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	txfuse "github.com/txfs/txfs/fuse"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "mount":
		err = mountCmd(os.Args[2:])
	case "files":
		err = filesCmd(os.Args[2:])
	case "fsyncfiles":
		err = fsyncFilesCmd(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "fusebench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  fusebench mount [-passthrough] [-plain-readdir] [-readahead KB] [-ready-fd N] DIR MOUNTPOINT
  fusebench files [-n 20000] [-settle 1.5s] DIR
  fusebench fsyncfiles [-n 2000] [-size 4096] DIR
`)
	os.Exit(2)
}

func mountCmd(args []string) error {
	f := flag.NewFlagSet("mount", flag.ExitOnError)
	passthrough := f.Bool("passthrough", false, "leave kernel FUSE passthrough on (file data bypasses the daemon)")
	plainReaddir := f.Bool("plain-readdir", false, "no READDIRPLUS: a LOOKUP for every name a program stats after listing it")
	readyFd := f.Int("ready-fd", -1, `write "ready\n" to file descriptor N once mounted`)
	debug := f.Bool("debug", false, "log every FUSE request")
	readAhead := f.Int("readahead", txfuse.DefaultReadAheadKB, "kernel readahead of the mount in KiB, as txfs sets it (0: the kernel's 128)")
	f.Parse(args)
	if f.NArg() != 2 {
		usage()
	}
	dir, mnt := f.Arg(0), f.Arg(1)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}

	// Catch signals before mounting, as txfs does, so a SIGTERM right after
	// the mount still unmounts.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	root, err := fs.NewLoopbackRoot(dir)
	if err != nil {
		return err
	}
	one := time.Second
	mo := fuse.MountOptions{
		Name:   "loopback",
		FsName: dir,
		// Same as txfs: 1 MiB requests (256 pages) instead of 128 KiB.
		MaxWrite: 1 << 20,
		// Same as txfs: more readahead/async requests in flight.
		MaxBackground: 64,
		// Same as txfs: READDIRPLUS while a program stats what it
		// lists (ls -l), plain READDIR otherwise.
		ExtraCapabilities: fuse.CAP_READDIRPLUS_AUTO,
		// go-fuse answers GETXATTR security.capability itself, without
		// a syscall (PRACTICES item 21); the kernel still sends it before
		// every write. txfs negotiates HANDLE_KILLPRIV_V2 instead, which
		// the loopback cannot: it would have to clear set-ID bits and
		// capabilities itself, and as root its writes clear nothing.
		IgnoreSecurityLabels: true,
		// Unlike txfs, splicing stays on: the loopback's reads splice
		// from its backing file, its best path.
		DisableReadDirPlus: *plainReaddir,
		// Same as txfs: mount(2) directly (we run as root), with
		// nosuid,nodev as txfs sets them.
		DirectMount:       true,
		DirectMountStrict: true,
		DirectMountFlags:  syscall.MS_NOSUID | syscall.MS_NODEV,
		Options:           []string{"default_permissions"},
		Debug:             *debug,
	}
	if !*passthrough {
		// The fair peer for txfs: file data goes through the daemon.
		mo.DisabledCapabilities |= fuse.CAP_PASSTHROUGH
	}
	opts := fs.Options{
		MountOptions: mo,
		EntryTimeout: &one,
		AttrTimeout:  &one,
	}
	srv, err := fs.Mount(mnt, root, &opts)
	if err != nil {
		return err
	}
	if *readAhead > 0 {
		// Same as txfs: the readahead window bounds how much the kernel
		// asks of the daemon at once.
		if err := txfuse.SetReadAhead(mnt, *readAhead); err != nil {
			srv.Unmount()
			return err
		}
	}
	done := make(chan struct{})
	go func() {
		srv.Wait()
		close(done)
	}()

	// Say what the kernel offered, so a run shows whether passthrough was
	// possible at all.
	offered := false
	if ks := srv.KernelSettings(); ks != nil {
		offered = ks.Flags64()&fuse.CAP_PASSTHROUGH != 0
	}
	fmt.Fprintf(os.Stderr, "fusebench: loopback of %s on %s; kernel offers passthrough: %v; passthrough enabled: %v\n",
		dir, mnt, offered, *passthrough && offered)

	fmt.Println("ready")
	if *readyFd >= 0 {
		if r := os.NewFile(uintptr(*readyFd), "ready-fd"); r != nil {
			r.WriteString("ready\n")
			r.Close()
		}
	}

	for {
		select {
		case <-done:
			return nil
		case s := <-sigs:
			if err := srv.Unmount(); err != nil {
				fmt.Fprintf(os.Stderr, "fusebench: %v: unmount %s: %v; still serving\n", s, mnt, err)
				continue
			}
			<-done
			return nil
		}
	}
}

// result prints one line for bench.sh.
func result(name string, value float64, unit string) {
	fmt.Printf("RESULT %s %.2f %s\n", name, value, unit)
}

func filesCmd(args []string) error {
	f := flag.NewFlagSet("files", flag.ExitOnError)
	n := f.Int("n", 20000, "number of files")
	settle := f.Duration("settle", 1500*time.Millisecond,
		"pause between phases, longer than the 1 s entry/attr timeouts, so stat and unlink go to the daemon instead of the kernel's cache")
	f.Parse(args)
	if f.NArg() != 1 {
		usage()
	}
	dir := f.Arg(0)
	name := func(i int) string { return filepath.Join(dir, fmt.Sprintf("f%06d", i)) }

	phase := func(label string, op func(i int) error) error {
		start := time.Now()
		for i := 0; i < *n; i++ {
			if err := op(i); err != nil {
				return fmt.Errorf("%s %d: %w", label, i, err)
			}
		}
		d := time.Since(start)
		fmt.Fprintf(os.Stderr, "%s %d files: %v\n", label, *n, d.Round(time.Millisecond))
		result("files_"+label, float64(*n)/d.Seconds(), "files/s")
		return nil
	}

	if err := phase("create", func(i int) error {
		fd, err := syscall.Open(name(i), syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		return syscall.Close(fd)
	}); err != nil {
		return err
	}
	time.Sleep(*settle)
	if err := phase("stat", func(i int) error {
		var st syscall.Stat_t
		if err := syscall.Lstat(name(i), &st); err != nil {
			return err
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Size != 0 {
			return fmt.Errorf("wrong result: mode %o size %d", st.Mode, st.Size)
		}
		return nil
	}); err != nil {
		return err
	}
	time.Sleep(*settle)
	if err := phase("delete", func(i int) error {
		return syscall.Unlink(name(i))
	}); err != nil {
		return err
	}
	// The directory must be empty now: a wrong result is worth more than
	// a timing.
	left, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(left) != 0 {
		names := []string{}
		for i, e := range left {
			if i == 5 {
				names = append(names, "...")
				break
			}
			names = append(names, e.Name())
		}
		return fmt.Errorf("wrong result: %d entries left after deleting all: %s", len(left), strings.Join(names, " "))
	}
	return nil
}

func fsyncFilesCmd(args []string) error {
	f := flag.NewFlagSet("fsyncfiles", flag.ExitOnError)
	n := f.Int("n", 2000, "number of files")
	size := f.Int("size", 4096, "bytes per file")
	f.Parse(args)
	if f.NArg() != 1 {
		usage()
	}
	dir := f.Arg(0)
	buf := make([]byte, *size)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	start := time.Now()
	for i := 0; i < *n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("s%06d", i))
		fh, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := fh.Write(buf); err != nil {
			fh.Close()
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := fh.Sync(); err != nil {
			fh.Close()
			return fmt.Errorf("fsync %s: %w", p, err)
		}
		if err := fh.Close(); err != nil {
			return err
		}
	}
	d := time.Since(start)
	fmt.Fprintf(os.Stderr, "create+write+fsync %d files of %d bytes: %v\n", *n, *size, d.Round(time.Millisecond))
	result("fsyncfiles", float64(*n)/d.Seconds(), "files/s")

	// Read one back: a cheap check that what was synced is what was written.
	got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("s%06d", *n/2)))
	if err != nil {
		return err
	}
	if string(got) != string(buf) {
		return errors.New("wrong result: a synced file reads back different data")
	}
	return nil
}
