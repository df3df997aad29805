package main

import (
	"fmt"
	"strings"
	"sync"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/control"
	"github.com/urfave/cli/v2"
)

func reloadCommand() *cli.Command {
	return &cli.Command{
		Name:      "reload",
		Usage:     "change the options of a mounted volume that can change without unmounting",
		ArgsUsage: "DIR",
		Description: `Applies mount options to the volume mounted on DIR, through its control
socket (root and the user who mounted only): the cleaner's options
(clean_policy, clean_low, clean_high, clean_pace, noclean, and clean, which
turns background cleaning back on) and the node cache's policy
(node_cache). Any other option may be given with
the value it was mounted with (so the options of a systemd unit or fstab
line can be given again whole); one with another value is refused with
its name, and then nothing changes: unmount and mount again to change it.

Exit status: 0 applied, 1 error (refused options too), 2 usage.

Examples:
   txfs reload -o clean_policy=greedy,clean_pace=5ms /mnt/txfs
   txfs reload -o noclean /mnt/txfs
   txfs reload -o node_cache=lru /mnt/txfs`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "o", Usage: "mount `OPTIONS` to apply, comma separated, as for txfs mount"},
			&cli.BoolFlag{Name: "json", Usage: "print the answer as JSON (the control socket's)"},
		},
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("reload needs DIR, a txfs mount point (see 'txfs help reload')")
			}
			dir := c.Args().First()
			opts := c.StringSlice("o")
			if len(opts) == 0 {
				return usagef("reload needs options to apply (-o)")
			}
			if _, err := mountOptions(opts); err != nil {
				return err // a usage error: the daemon would refuse it too
			}
			t, err := findTarget(dir)
			if err != nil {
				return fmt.Errorf("reload %s: %w", dir, err)
			}
			if t.client == nil {
				return fmt.Errorf("reload %s: not mounted (options of an image apply when it is mounted)", dir)
			}
			defer t.client.Close()
			res, err := t.client.Reload(opts)
			if err != nil {
				return fmt.Errorf("reload %s: %w", dir, err)
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			fmt.Fprintf(c.App.Writer, "%s: applied %s\n", t.describe(), strings.Join(res.Applied, ","))
			return nil
		},
	}
}

// mountedVolume is what the control socket of a mount serves: the volume,
// and the mount's options, some of which can change (control.Reloader).
type mountedVolume struct {
	*txfs.Volume
	mu   sync.Mutex
	opts []string      // the options in force, as given to txfs mount and reloads since
	set  mountSettings // what they ask for
}

// Reload applies options on top of those in force: the cleaner's ones
// change; any other must keep its value.
func (m *mountedVolume) Reload(options []string) ([]string, error) {
	var given []string
	for _, o := range options {
		for _, p := range strings.Split(o, ",") {
			if p = strings.TrimSpace(p); p != "" {
				given = append(given, p)
			}
		}
	}
	if len(given) == 0 {
		return nil, fmt.Errorf("%w: no options to apply", txfs.ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	all := append(append([]string(nil), m.opts...), given...)
	set, err := mountOptions(all)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", txfs.ErrInvalid, err)
	}
	if fixed := fixedChanges(m.set, set); len(fixed) > 0 {
		return nil, fmt.Errorf("%w: %s cannot change while mounted (unmount and mount again); nothing was changed",
			txfs.ErrInvalid, strings.Join(fixed, ", "))
	}
	if err := m.SetCleaner(set.cleaner); err != nil {
		return nil, err
	}
	if set.nodeCache.policy != m.set.nodeCache.policy {
		if err := m.SetNodeCache(set.nodeCache.policy); err != nil {
			return nil, err
		}
	}
	m.opts, m.set = all, set
	return given, nil
}

// fixedChanges names the options that differ between a and b and cannot
// change while mounted.
func fixedChanges(a, b mountSettings) []string {
	var out []string
	f, g := a.fuse, b.fuse
	for _, d := range []struct {
		name    string
		changed bool
	}{
		{"ro", f.ReadOnly != g.ReadOnly},
		{"allow_other", f.AllowOther != g.AllowOther},
		{"noatime", f.NoAtime != g.NoAtime},
		{"debug", f.Debug != g.Debug},
		{"noexec", f.NoExec != g.NoExec},
		{"readahead", f.ReadAheadKB != g.ReadAheadKB},
		{"nonempty", a.nonEmpty != b.nonEmpty},
		{"cache", a.cacheBytes != b.cacheBytes},
		{"metrics", a.metricsAddr != b.metricsAddr},
		{"node_trace", a.nodeCache.trace != b.nodeCache.trace},
	} {
		if d.changed {
			out = append(out, d.name)
		}
	}
	return out
}

var _ control.Reloader = (*mountedVolume)(nil)
