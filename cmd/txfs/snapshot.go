package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/control"
	"github.com/urfave/cli/v2"
)

// Exit codes of the snapshot commands, beside exitError, exitUsage and
// exitBusy (an invalid snapshot name is a usage error).
const (
	exitSnapshotExists = 4 // create: the name is taken
	exitNoSnapshot     = 5 // restore, delete: no snapshot has the name
)

func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:  "snapshot",
		Usage: "create, list, restore and delete snapshots of a volume",
		Description: `A snapshot records the state of the whole filesystem under a name of 1 to
16 letters and digits. It costs almost nothing to take: blocks are shared
with the live filesystem and copied only when one side changes them.
TARGET is a txfs mount point, whose daemon runs the command (through its
control socket: only root and the user who mounted may), or an image: one
that is not mounted is opened, changed and closed; one that is mounted is
changed through the socket of its mount.

Exit status: 0 done, 1 error, 2 usage error or invalid name, 3 the image
is in use by another process, 4 the snapshot to create exists, 5 the
snapshot to restore or delete does not.

Examples:
   txfs snapshot create /mnt/txfs monday
   txfs snapshot list /mnt/txfs
   txfs snapshot restore /mnt/txfs monday
   txfs snapshot delete disk.img monday`,
		OnUsageError: onUsageError,
		Subcommands: []*cli.Command{
			snapshotOpCommand("create", "record the current state of the filesystem as snapshot ID", "created",
				(*txfs.Volume).CreateSnapshot),
			snapshotOpCommand("restore", "make the filesystem equal to snapshot ID (every snapshot stays)", "restored",
				(*txfs.Volume).RestoreSnapshot),
			snapshotOpCommand("delete", "delete snapshot ID and free what only it holds", "deleted",
				(*txfs.Volume).DeleteSnapshot),
			snapshotListCommand(),
		},
	}
}

// snapshotOpCommand is txfs snapshot OP TARGET ID.
func snapshotOpCommand(op, usage, done string, local func(*txfs.Volume, string) error) *cli.Command {
	return &cli.Command{
		Name:         op,
		Usage:        usage,
		ArgsUsage:    "TARGET ID",
		OnUsageError: onUsageError,
		Flags:        []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print the answer as JSON (the control socket's)"}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("snapshot %s needs TARGET (a mount point or an image) and ID (see 'txfs help snapshot')", op)
			}
			path, id := c.Args().Get(0), c.Args().Get(1)
			if err := txfs.CheckSnapshotName(id); err != nil {
				return usagef("snapshot %s: %v", op, err)
			}
			req := volumeRequest[control.SnapshotResult]{
				local: func(v *txfs.Volume) (control.SnapshotResult, error) {
					return control.SnapshotResult{Name: id, Done: done}, local(v, id)
				},
				remote: func(cl *control.Client) (control.SnapshotResult, error) { return cl.Snapshot(op, id) },
			}
			t, res, err := req.run(path)
			if err != nil {
				return snapshotError(fmt.Errorf("snapshot %s %s %s: %w", op, path, id, err))
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			fmt.Fprintf(c.App.Writer, "%s: snapshot %s %s\n", t.describe(), id, done)
			return nil
		},
	}
}

func snapshotListCommand() *cli.Command {
	return targetCommand(&cli.Command{
		Name:  "list",
		Usage: "list the snapshots with the space each holds",
		Description: `Lists the snapshots, oldest first: name, creation time, the space only
that snapshot holds (what deleting it frees) and the space it shares with
the live filesystem or other snapshots.`,
	}, volumeRequest[control.SnapshotList]{
		open: txfs.Options{ReadOnly: true},
		local: func(v *txfs.Volume) (control.SnapshotList, error) {
			l, err := v.Snapshots()
			return control.SnapshotListOf(l), err
		},
		remote: (*control.Client).Snapshots,
		print:  printSnapshots,
	})
}

func printSnapshots(w io.Writer, t target, list control.SnapshotList) {
	if len(list.Snapshots) == 0 {
		fmt.Fprintf(w, "%s: no snapshots\n", t.describe())
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCREATED\tEXCLUSIVE\tSHARED")
	for _, s := range list.Snapshots {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.Created.Local().Format(time.DateTime), humanBytes(s.ExclusiveBytes), humanBytes(s.SharedBytes))
	}
	tw.Flush()
}

// snapshotErr gives a snapshot command's error its exit status.
type snapshotErr struct {
	err  error
	code int
}

func (e snapshotErr) Error() string { return e.err.Error() }
func (e snapshotErr) Unwrap() error { return e.err }

func snapshotError(err error) error {
	switch {
	case errors.Is(err, txfs.ErrSnapshotExists):
		return snapshotErr{err, exitSnapshotExists}
	case errors.Is(err, txfs.ErrNoSnapshot):
		return snapshotErr{err, exitNoSnapshot}
	case errors.Is(err, txfs.ErrInvalid):
		return usageError{err}
	}
	return err
}
