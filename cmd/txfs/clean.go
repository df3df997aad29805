package main

import (
	"fmt"
	"io"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/control"
	"github.com/urfave/cli/v2"
)

func cleanCommand() *cli.Command {
	return targetCommand(&cli.Command{
		Name:  "clean",
		Usage: "run one cleaning pass on a volume now",
		Description: `Runs one pass of the segment cleaner: it moves the live blocks out of the
segments with the most dead space and frees those segments. TARGET is a
txfs mount point, whose daemon runs the pass (through its control socket:
only root and the user who mounted may), or an image: one that is not
mounted is opened read-write, cleaned and closed (with a checkpoint); one
that is mounted is cleaned through the socket of its mount. Waits until the
pass is done and prints what it did; --json prints the control socket's
JSON (POST /v1/clean).

Examples:
   txfs clean /mnt/txfs
   txfs clean --json disk.img`,
	}, volumeRequest[control.CleanResult]{
		open: txfs.Options{},
		local: func(v *txfs.Volume) (control.CleanResult, error) {
			res, err := v.Clean()
			return control.CleanResultOf(res), err
		},
		remote: (*control.Client).Clean,
		print:  printClean,
	})
}

// printClean says what a cleaning pass did.
func printClean(w io.Writer, t target, res control.CleanResult) {
	if res.SegmentsCleaned == 0 {
		fmt.Fprintf(w, "%s: nothing to clean\n", t.describe())
		return
	}
	fmt.Fprintf(w, "%s: cleaned %d segments: moved %s of live blocks, freed %s\n", t.describe(),
		res.SegmentsCleaned, humanBytes(res.BytesMoved), humanBytes(res.BytesFreed))
}
