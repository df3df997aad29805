package main

import (
	"fmt"
	"io"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/control"
	"github.com/urfave/cli/v2"
)

func statusCommand() *cli.Command {
	return targetCommand(&cli.Command{
		Name:  "status",
		Usage: "show a volume's space and its cleaner",
		Description: `TARGET is a txfs mount point or an image. For a mount point, txfs asks the
daemon serving it through its control socket (only root and the user who
mounted may). An image that is not mounted is opened read-only; an image
that is mounted is asked through the socket of its mount.

Shows the size, the bytes in use (live) and how many of them only
snapshots hold (what deleting every snapshot frees), the number of
snapshots, free and reclaimable (dead bytes in segments the cleaner can
empty), the free segments and the reserve,
and the cleaner: its policy, state and watermarks, and what it has done
since the mount (passes, segments cleaned, bytes moved, write
amplification). --json prints the control socket's JSON (GET /v1/status).

Examples:
   txfs status /mnt/txfs
   txfs status --json disk.img`,
	}, volumeRequest[control.Status]{
		open: txfs.Options{ReadOnly: true},
		local: func(v *txfs.Volume) (control.Status, error) {
			st, err := v.Status()
			return control.StatusOf(st), err
		},
		remote: (*control.Client).Status,
		print:  printStatus,
	})
}

// printStatus prints the status as a table for people.
func printStatus(w io.Writer, t target, st control.Status) {
	row := func(name, format string, args ...any) {
		fmt.Fprintf(w, "%-20s %s\n", name, fmt.Sprintf(format, args...))
	}
	c := st.Cleaner
	switch {
	case t.client == nil:
		// Opened read-only for this: its mode says nothing.
		row("volume", "%s", t.describe())
	case st.ReadOnly:
		row("volume", "%s, mounted read-only", t.describe())
	default:
		row("volume", "%s, mounted read-write", t.describe())
	}
	row("size", "%s: %d segments of %s, blocks of %s", humanBytes(st.SizeBytes), st.Segments,
		humanBytes(int64(st.SegmentSize)), humanBytes(int64(st.BlockSize)))
	row("live", "%s, of which %s only snapshots hold", humanBytes(st.LiveBytes), humanBytes(st.SnapshotBytes))
	row("snapshots", "%d", st.Snapshots)
	row("free", "%s", humanBytes(st.FreeBytes))
	row("reclaimable", "%s", humanBytes(st.ReclaimableBytes))
	row("free segments", "%d (reserve %d)", st.FreeSegments, st.ReserveSegments)
	row("cleaner", "%s, %s", orDash(c.Policy), orDash(c.State))
	row("watermarks", "cleans below %d free segments, up to %d", c.LowWatermark, c.HighWatermark)
	row("passes", "%d", c.Passes)
	row("segments cleaned", "%d", c.SegmentsCleaned)
	row("bytes moved", "%s", humanBytes(c.BytesMoved))
	if c.UserBytes == 0 {
		row("write amplification", "- (nothing written yet)")
	} else {
		row("write amplification", "%.2f (%s written for %s of operations)", c.WriteAmplification,
			humanBytes(c.DeviceBytes), humanBytes(c.UserBytes))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
