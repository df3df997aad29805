package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/control"
	txfuse "github.com/txfs/txfs/fuse"
	"github.com/urfave/cli/v2"
)

// serveControl opens the control socket of the mount on dir. A mount
// without one still works, so a failure is a warning: txfs status and txfs
// clean will not reach this mount.
func serveControl(dir string, v control.Filesystem) *control.Server {
	s, err := control.Serve(dir, v, control.Options{Owner: os.Getuid()})
	if err != nil {
		fmt.Fprintf(os.Stderr, "txfs: warning: %s has no control socket (txfs status and txfs clean cannot reach it): %v\n", dir, err)
		return nil
	}
	return s
}

// closeControl closes the control socket, if there is one, once its
// requests are answered.
func closeControl(s *control.Server) {
	if s == nil {
		return
	}
	if err := s.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "txfs: closing the control socket %s: %v\n", s.Path(), err)
	}
}

// target is what txfs status and txfs clean were given: a mounted volume
// (reached through its control socket) or an image that is not mounted.
type target struct {
	mount  string          // the mount point, if mounted
	image  string          // the image file
	client *control.Client // the mount's control socket, if mounted
}

// describe names the target for people.
func (t target) describe() string {
	switch {
	case t.mount == "":
		return t.image + " (not mounted)"
	case t.image == "":
		return t.mount
	}
	return fmt.Sprintf("%s (image %s)", t.mount, t.image)
}

// findTarget looks at path: a mount point must be a txfs one, whose
// control socket serves; a directory that is not a mount point is
// refused; anything else is an image. The mount is found in
// /proc/self/mountinfo, not by looking at path: the root of a FUSE mount
// refuses everyone but the user who mounted, root too, unless mounted
// with allow_other.
func findTarget(path string) (target, error) {
	on, err := txfuse.MountsOn(path)
	if err != nil {
		return target{}, err
	}
	if len(on) > 0 {
		top := on[len(on)-1]
		if top.Type != "fuse.txfs" {
			return target{}, fmt.Errorf("not a txfs mount point: %s is mounted there", top)
		}
		// Opening asks the daemon (a stat may be answered from the
		// kernel's cache).
		if f, err := os.Open(path); err == nil {
			f.Close()
		} else if errors.Is(err, syscall.ENOTCONN) {
			return target{}, fmt.Errorf("the daemon of this txfs mount is gone (txfs umount %s clears it)", path)
		}
		return dialMount(top.Dir, top.Source)
	}
	fi, err := os.Stat(path)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return target{}, pe.Err // the command's error names the path
	}
	if err != nil {
		return target{}, err
	}
	if fi.IsDir() {
		return target{}, errors.New("not a txfs mount point (give a mount point or an image)")
	}
	return target{image: path}, nil
}

// dialMount is the target of the txfs mount on dir, of image.
func dialMount(dir, image string) (target, error) {
	c, err := control.Dial(dir)
	if errors.Is(err, control.ErrNoSocket) {
		return target{}, fmt.Errorf("%w (the daemon serving %s could not open one: see its standard error)", err, dir)
	}
	if err != nil {
		return target{}, err
	}
	return target{mount: dir, image: image, client: c}, nil
}

// mountOfImage is the target of the txfs mount that serves image, which
// openImage found in use (ErrBusy, the error given).
func mountOfImage(image string, busy error) (target, error) {
	img, err := os.Stat(image)
	if err != nil {
		return target{}, err
	}
	all, err := txfuse.Mounts()
	if err != nil {
		return target{}, err
	}
	for i := len(all) - 1; i >= 0; i-- {
		m := all[i]
		if m.Type != "fuse.txfs" {
			continue
		}
		if src, err := os.Stat(m.Source); err == nil && os.SameFile(src, img) {
			return dialMount(m.Dir, image)
		}
	}
	return target{}, fmt.Errorf("in use, but not by a mount here (fsck.txfs or mkfs.txfs, or a mount in another namespace, holds it): %w", busy)
}

// volumeRequest is what a command does to the volume of its TARGET.
type volumeRequest[T any] struct {
	open   txfs.Options                     // how to open an image that is not mounted
	local  func(*txfs.Volume) (T, error)    // on that image
	remote func(*control.Client) (T, error) // through the control socket of a mount
	print  func(io.Writer, target, T)       // the answer for people (--json prints T)
}

// targetCommand completes cmd as a command on one TARGET, a mount point
// or an image, with --json.
func targetCommand[T any](cmd *cli.Command, req volumeRequest[T]) *cli.Command {
	cmd.ArgsUsage = "TARGET"
	cmd.Flags = append(cmd.Flags, &cli.BoolFlag{Name: "json", Usage: "print the answer as JSON (the control socket's)"})
	cmd.OnUsageError = onUsageError
	cmd.Action = func(c *cli.Context) error {
		if c.NArg() != 1 {
			return usagef("%s needs TARGET, a mount point or an image (see 'txfs help %s')", cmd.Name, cmd.Name)
		}
		path := c.Args().First()
		t, res, err := req.run(path)
		if err != nil {
			return fmt.Errorf("%s %s: %w", cmd.Name, path, err)
		}
		if c.Bool("json") {
			return printJSON(c.App.Writer, res)
		}
		req.print(c.App.Writer, t, res)
		return nil
	}
	return cmd
}

// run runs the request on the volume at path: locally on an image that is
// not mounted, opened and closed after; remotely through the control
// socket of a mount point, or of the mount that holds the image.
func (req volumeRequest[T]) run(path string) (target, T, error) {
	var zero T
	t, err := findTarget(path)
	if err != nil {
		return t, zero, err
	}
	if t.client == nil {
		v, err := txfs.OpenPath(t.image, req.open)
		if err == nil {
			res, err := req.local(v)
			// A writer's Close writes the checkpoint that makes it durable.
			if cerr := v.Close(); err == nil {
				err = cerr
			}
			return t, res, err
		}
		if !errors.Is(err, txfs.ErrBusy) {
			return t, zero, err
		}
		if t, err = mountOfImage(t.image, err); err != nil {
			return t, zero, err
		}
	}
	defer t.client.Close()
	res, err := req.remote(t.client)
	return t, res, err
}

// printJSON prints v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// humanBytes writes a byte count for people: bytes below 1 KiB, else
// binary units with one decimal.
func humanBytes(n int64) string {
	if n < 1024 && n > -1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	unit := ""
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"} {
		f /= 1024
		unit = u
		if f < 1023.95 && f > -1023.95 { // would round to 1024.0
			break
		}
	}
	return strings.Replace(fmt.Sprintf("%.1f %s", f, unit), ".0 ", " ", 1)
}
