// Command txfs mounts and manages txfs images.
//
//	txfs mount [-o OPTIONS] [--ready-fd N] IMAGE DIR
//	txfs umount DIR
//	txfs status [--json] TARGET
//	txfs clean [--json] TARGET
//	txfs web [--listen HOST:PORT] DIR...
//
// txfs mount refuses a DIR that is missing, not a directory, not empty or
// already a mount point (unless -o nonempty), and when it fails it leaves
// no mount behind.
//
// Exit status: 0 success, 1 error, 2 usage error; txfs snapshot also 3 (the
// snapshot to create exists) and 4 (the one to restore or delete does not).
package main

import (
	"errors"
	"fmt"
	"os"

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
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "txfs: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	var se snapshotErr
	if errors.As(err, &se) {
		return se.code
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
show a volume's space and cleaner, and clean it.

Examples:
   txfs mount disk.img /mnt/txfs
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
	return newApp().Run(args)
}
