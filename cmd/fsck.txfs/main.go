// Command fsck.txfs checks a txfs volume: it recovers the volume in memory
// (the newest checkpoint and every whole log unit after it) and verifies
// every checksum, reference count, link count, directory and the segment
// usage table. It never writes to the image.
//
// With --repair (-y) it first fixes, through ordinary transactions, what can
// be fixed safely: orphans freed, interrupted truncates finished, link
// counts, entries naming missing inodes, nameless inodes into lost+found,
// reference counts and segment usage.
//
// Exit codes (as fsck(8)): 0 clean, 1 errors corrected, 4 errors found and left uncorrected,
// 8 operational error (the image cannot be opened or read, or is not a txfs
// image at all), 16 usage error, 32 cancelled by SIGINT.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/fsck"
	"github.com/txfs/txfs/segment"
	"github.com/urfave/cli/v2"
)

// Exit codes of fsck(8).
const (
	exitClean       = 0
	exitCorrected   = 1
	exitUncorrected = 4
	exitOperational = 8
	exitUsage       = 16
	exitCancelled   = 32
)

type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }

func main() {
	// The check only reads: an interrupt can stop it at any point.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "\nfsck.txfs: cancelled")
		os.Exit(exitCancelled)
	}()
	err := Main(os.Args)
	if err == nil {
		os.Exit(exitClean)
	}
	var e exitError
	if !errors.As(err, &e) {
		e = exitError{exitUsage, err}
	}
	if e.err != nil && e.err.Error() != "" {
		fmt.Fprintln(os.Stderr, "fsck.txfs:", e.err)
	}
	os.Exit(e.code)
}

// Main runs fsck.txfs with args (args[0] is the program name).
func Main(args []string) error { return mainWithOutput(args, os.Stdout) }

func mainWithOutput(args []string, w io.Writer) error {
	app := &cli.App{
		Writer:    w,
		Name:      "fsck.txfs",
		Usage:     "check a txfs volume",
		ArgsUsage: "IMAGE",
		Description: `Recovers IMAGE in memory and checks everything: superblocks, the checkpoint,
every log unit and block checksum, the metadata tree, reference counts, link
counts, directories, orphans and the segment usage table. The image is only
read. An image mounted read-write is refused (it is locked).

With --repair (or -y) it first fixes what ordinary transactions can fix
safely, and says what it changed: orphans freed, interrupted truncates
finished, entries naming missing inodes removed, wrong entry types
corrected, nameless inodes put into /lost+found, link counts set, reference
counts and segment usage recounted. Checksum errors are reported, not
repaired: the data they guard is gone.

A damaged log (a unit that was synced cannot be read, and units written
after it prove it) is reported with what is lost and what follows. With
--repair, what follows the damage is replayed when every record of it
applies without the lost units, else the log is cut at the damage; either
way fsck says which.

Exit codes: 0 clean, 1 errors corrected, 4 errors left, 8 the image cannot
be opened or read, is in use, or is not a txfs image at all (a directory,
an empty file, no txfs superblock or log anywhere it would be), 16 wrong
arguments, 32 cancelled (SIGINT).

Examples:
   fsck.txfs disk.img
   fsck.txfs -n --json disk.img
   fsck.txfs --repair disk.img`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "n", Usage: "check only, change nothing (the default)"},
			&cli.BoolFlag{Name: "repair", Aliases: []string{"y"}, Usage: "fix what can be fixed safely, then check"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
			&cli.BoolFlag{Name: "progress", Usage: "show progress on standard error (the default when it is a terminal)"},
		},
		HideHelpCommand: true,
		Action:          run,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return exitError{exitUsage, err}
		},
	}
	return app.Run(args)
}

type result struct {
	Image       string   `json:"image"`
	Clean       bool     `json:"clean"`
	Inodes      uint64   `json:"inodes"`
	Directories uint64   `json:"directories"`
	DataBlocks  uint64   `json:"data_blocks"`
	TreeNodes   uint64   `json:"tree_nodes"`
	Orphans     uint64   `json:"orphans"`
	Problems    []string `json:"problems"`
	Warnings    []string `json:"warnings"`
	Repaired    []string `json:"repaired"`
}

func run(c *cli.Context) error {
	if c.NArg() != 1 {
		return exitError{exitUsage, errors.New("need exactly one IMAGE argument (see --help)")}
	}
	path := c.Args().First()
	if err := checkIsImage(path); err != nil {
		return exitError{exitOperational, err}
	}
	res := result{Image: path, Problems: []string{}, Warnings: []string{}, Repaired: []string{}}
	if c.Bool("repair") {
		if c.Bool("n") {
			return exitError{exitUsage, errors.New("-n and --repair exclude each other")}
		}
		// Open read-write: recovery, freeing orphans and finishing
		// truncates happen here, then the repairs, then a checkpoint.
		v, err := txfs.OpenPath(path, txfs.Options{})
		if errors.Is(err, txfs.ErrLogDamaged) {
			v, err = openDamaged(path, &res)
		}
		if err != nil {
			if errors.Is(err, txfs.ErrBusy) || os.IsPermission(err) {
				return exitError{exitOperational, err}
			}
			res.Problems = append(res.Problems, err.Error())
			return report(c, res)
		}
		changed, err := fsck.Repair(v.Fsck())
		res.Repaired = append(res.Repaired, changed...)
		if err == nil {
			changed, err = fsck.RepairCounts(v.Fsck())
			res.Repaired = append(res.Repaired, changed...)
		}
		if cerr := v.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			res.Problems = append(res.Problems, "repair: "+err.Error())
			return report(c, res)
		}
	}
	v, err := txfs.OpenPath(path, txfs.Options{ReadOnly: true})
	if err != nil {
		if errors.Is(err, txfs.ErrBusy) || os.IsPermission(err) {
			return exitError{exitOperational, err}
		}
		// The volume does not recover: that is damage fsck reports.
		res.Problems = append(res.Problems, err.Error())
		return report(c, res)
	}
	defer v.Close()
	var progress fsck.Progress
	bar := c.Bool("progress") || isTerminal(os.Stderr)
	if bar {
		progress = progressBar(os.Stderr)
	}
	rep, err := fsck.CheckWithProgress(v.Fsck(), progress)
	if bar {
		fmt.Fprint(os.Stderr, "\r\033[K") // the report replaces the bar
	}
	if err != nil {
		return exitError{exitOperational, err}
	}
	res.Inodes, res.Directories, res.DataBlocks = rep.Inodes, rep.Directories, rep.DataBlocks
	res.TreeNodes, res.Orphans = rep.Nodes, rep.Orphans
	res.Problems = append(res.Problems, rep.Problems...)
	res.Warnings = append(res.Warnings, rep.Warnings...)
	return report(c, res)
}

// openDamaged opens, read-write, a volume whose log is damaged (a unit
// that was durable cannot be read, and units written after it follow).
// It salvages what follows the damage when every record of it applies to
// the state before the damage (tried read-only first), and otherwise drops
// the log from the damage on; either way it says so. Repair then puts the
// namespace right.
func openDamaged(path string, res *result) (*txfs.Volume, error) {
	trial, err := txfs.OpenPath(path, txfs.Options{ReadOnly: true, LogDamage: txfs.SalvageDamage})
	if err == nil {
		trial.Close()
		return txfs.OpenPath(path, txfs.Options{LogDamage: txfs.SalvageDamage})
	}
	res.Repaired = append(res.Repaired, fmt.Sprintf("the units after the damage cannot be replayed without the lost ones (%v): the log is cut at the damage", err))
	return txfs.OpenPath(path, txfs.Options{LogDamage: txfs.TruncateDamage})
}

// checkIsImage fails for a path that is not a txfs image at all: missing,
// a directory, empty, or without any mark txfs writes. That is an
// operational error (exit 8); a txfs image with damage is checked and its
// problems listed (exit 4).
func checkIsImage(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory, not a txfs image", path)
	}
	dev, err := segment.OpenFile(path, true)
	if err != nil {
		return err
	}
	defer dev.Close()
	if dev.Size() == 0 {
		return fmt.Errorf("%s is empty, not a txfs image", path)
	}
	ok, err := segment.HasSignature(dev)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if !ok {
		return fmt.Errorf("%s is not a txfs image (no txfs superblock or log in it)", path)
	}
	return nil
}

func report(c *cli.Context, res result) error {
	res.Clean = len(res.Problems) == 0
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return exitError{exitOperational, err}
		}
	} else {
		for _, p := range res.Repaired {
			fmt.Fprintln(w, "repaired:", p)
		}
		for _, p := range res.Warnings {
			fmt.Fprintln(w, "warning:", p)
		}
		for _, p := range res.Problems {
			fmt.Fprintln(w, "problem:", p)
		}
		state := "clean"
		if !res.Clean {
			state = fmt.Sprintf("%d problems", len(res.Problems))
		}
		fmt.Fprintf(w, "%s: %s: %d inodes (%d directories, %d orphans), %d data blocks, %d tree nodes\n",
			res.Image, state, res.Inodes, res.Directories, res.Orphans, res.DataBlocks, res.TreeNodes)
	}
	if !res.Clean {
		return exitError{exitUncorrected, errors.New("")}
	}
	if len(res.Repaired) > 0 {
		return exitError{exitCorrected, errors.New("")}
	}
	return nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar draws one line that the checker's passes overwrite, at most
// ten times a second.
func progressBar(w io.Writer) fsck.Progress {
	names := []string{"", "tree", "names", "virtual blocks", "segments"}
	var last time.Time
	return func(pass int, done, total uint64) {
		if time.Since(last) < 100*time.Millisecond {
			return
		}
		last = time.Now()
		pct := uint64(0)
		if total > 0 {
			pct = min(100, done*100/total)
		}
		bar := strings.Repeat("#", int(pct/5)) + strings.Repeat(".", 20-int(pct/5))
		fmt.Fprintf(w, "\rpass %d/4 %-15s [%s] %3d%%", pass, names[pass], bar, pct)
	}
}
