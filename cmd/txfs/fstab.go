package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// mountHelperArgs turns the command line that mount.fuse3 runs for a
// mount of type fuse.txfs (an fstab line "IMAGE DIR fuse.txfs OPTIONS",
// or "mount -t fuse.txfs IMAGE DIR"),
//
//	txfs IMAGE DIR [-o OPTIONS]...
//
// into "txfs mount --daemon -o OPTIONS IMAGE DIR": mount(8) waits for its
// helper, so the helper serves in the background. Options that only
// fstab or mount(8) read are dropped. ok is false when args is not that
// form: its first argument is a command or a flag, or there are not two
// operands.
func mountHelperArgs(app *cli.App, args []string) (helper []string, ok bool, err error) {
	if len(args) < 3 || strings.HasPrefix(args[1], "-") || isCommand(app, args[1]) {
		return nil, false, nil
	}
	var operands, opts []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" && i+1 < len(args):
			i++
			opts = append(opts, helperOptions(args[i])...)
		case strings.HasPrefix(a, "-o") && len(a) > 2:
			opts = append(opts, helperOptions(a[2:])...)
		case strings.HasPrefix(a, "-"):
			if len(operands) != 2 {
				return nil, false, nil
			}
			return nil, true, usagef("txfs IMAGE DIR: unknown flag %q (only -o OPTIONS)", a)
		default:
			operands = append(operands, a)
		}
	}
	if len(operands) != 2 {
		return nil, false, nil
	}
	helper = []string{args[0], "mount", "--daemon"}
	if len(opts) > 0 {
		helper = append(helper, "-o", strings.Join(opts, ","))
	}
	return append(helper, "--", operands[0], operands[1]), true, nil
}

func isCommand(app *cli.App, name string) bool {
	if name == "help" || name == "h" {
		return true
	}
	for _, c := range app.Commands {
		for _, n := range c.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// helperOptions are the options of a comma-separated list that txfs
// mount takes: without those for fstab and mount(8) alone.
func helperOptions(list string) []string {
	var keep []string
	for _, o := range strings.Split(list, ",") {
		switch {
		case o == "", o == "defaults", o == "auto", o == "noauto", o == "nofail", o == "_netdev",
			o == "user", o == "users", o == "nouser", o == "owner", o == "group",
			strings.HasPrefix(o, "x-"), strings.HasPrefix(o, "comment="):
		default:
			keep = append(keep, o)
		}
	}
	return keep
}
