// Command txfs mounts and manages txfs images.
//
//	txfs mount [-o OPTIONS] [--ready-fd N] IMAGE DIR
//	txfs mount --daemon [--log FILE] [--pid-file FILE] [-o OPTIONS] IMAGE DIR
//	txfs IMAGE DIR [-o OPTIONS]       (as mount.fuse3 runs it: --daemon)
//	txfs umount [--dead] DIR
//	txfs status [--json] TARGET
//	txfs clean [--json] TARGET
//	txfs web [--listen HOST:PORT] DIR...
//
// txfs mount refuses a DIR that is missing, not a directory, not empty or
// already a mount point (unless -o nonempty), and when it fails it leaves
// no mount behind. With --daemon it returns once the mount is usable and
// a supervisor process serves it, restarting the server after a crash
// (daemon.go).
//
// Exit status: 0 success, 1 error, 2 usage error, 3 the image (or the pid
// file of --daemon) is in use by another process; txfs snapshot also 4 (the
// snapshot to create exists) and 5 (the one to restore or delete does not).
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/service"
	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(exitCode(Main(os.Args)))
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitBusy: another process has the image (a mount, or txfs status
	// or txfs clean on it), or the pid file of --daemon.
	exitBusy = 3
)

// usageError is a command line that does not parse: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitCode prints err, if any, and returns the exit status for it.
func exitCode(err error) int {
	if err != nil {
		fmt.Fprintf(os.Stderr, "txfs: %v\n", err)
	}
	return exitStatus(err)
}

// exitStatus is the exit status for err.
func exitStatus(err error) int {
	var ue usageError
	var se exitStatusError
	var snap snapshotErr
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &se):
		return se.status
	case errors.As(err, &snap):
		return snap.code
	case errors.Is(err, txfs.ErrBusy), errors.Is(err, service.ErrRunning):
		return exitBusy
	}
	return exitError
}

// onUsageError turns flag parse errors into usage errors (exit status 2)
// instead of letting cli print and exit.
func onUsageError(c *cli.Context, err error, isSubcommand bool) error {
	return usagef("%v (see 'txfs help %s')", err, c.Command.Name)
}

// newApp builds the command line application.
func newApp() *cli.App {
	return &cli.App{
		Name:  "txfs",
		Usage: "a transactional log-structured filesystem",
		Description: `Mount a txfs image (made with mkfs.txfs) on a directory, and unmount it;
show a volume's space and cleaner, clean it, take and restore snapshots,
change its cleaner's options while mounted, and serve a web console.
Installation: docs/INSTALL.md.

Examples:
   txfs mount disk.img /mnt/txfs
   txfs mount --daemon disk.img /mnt/txfs
   txfs status /mnt/txfs
   txfs clean /mnt/txfs
   txfs snapshot create /mnt/txfs monday
   txfs web /mnt/txfs
   txfs umount /mnt/txfs`,
		Commands: []*cli.Command{
			mountCommand(),
			umountCommand(),
			statusCommand(),
			cleanCommand(),
			snapshotCommand(),
			reloadCommand(),
			webCommand(),
		},
		// No command, or an unknown one.
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown command %q (see 'txfs help')", c.Args().First())
			}
			_ = cli.ShowAppHelp(c)
			return usagef("no command given")
		},
		OnUsageError: onUsageError,
		// Main returns every error; main alone decides the exit status.
		ExitErrHandler:  func(*cli.Context, error) {},
		HideHelpCommand: false,
	}
}

// Main runs the txfs command line; args[0] is the program name, as in
// os.Args. The error, if any, says what failed; a usageError means the
// command line was wrong.
func Main(args []string) error {
	app := newApp()
	helper, ok, err := mountHelperArgs(app, args)
	if err != nil {
		return err
	}
	if ok {
		args = helper
	}
	return app.Run(args)
}
