// Command mkfs.txfs formats an image file or block device as a txfs volume.
//
// Exit codes: 0 formatted, 1 failed (the device is refused or cannot be
// written), 2 wrong arguments.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/internal/bytesize"
	"github.com/txfs/txfs/segment"
	"github.com/urfave/cli/v2"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

type usageError struct{ error }

func main() {
	err := Main(os.Args)
	switch {
	case err == nil:
		os.Exit(exitOK)
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "mkfs.txfs:", err)
		os.Exit(exitUsage)
	default:
		fmt.Fprintln(os.Stderr, "mkfs.txfs:", err)
		os.Exit(exitError)
	}
}

// Main runs mkfs.txfs with args (args[0] is the program name).
func Main(args []string) error {
	app := &cli.App{
		Name:      "mkfs.txfs",
		Usage:     "format an image file or block device as a txfs volume",
		ArgsUsage: "IMAGE",
		Description: `Creates IMAGE as a sparse file of --size bytes, or formats an existing file
or block device (its whole size unless --size says less). An existing txfs
volume, or a device with data on it, is refused without --force.
--preallocate writes the whole image file once (it then takes its full size
on disk): fsync on a sparse image also makes the host filesystem journal
each new allocation, which costs about twice as much per sync.

Examples:
   mkfs.txfs --size 1G disk.img
   mkfs.txfs --size 64M --segment-size 512K --label cache cache.img
   mkfs.txfs --force /dev/sdb1
   mkfs.txfs --size 4G --preallocate db.img`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "size", Usage: "size of a new image (K, M, G, T suffixes)"},
			&cli.StringFlag{Name: "block-size", Value: "4K", Usage: "block size: a power of two, 4K to 64K"},
			&cli.StringFlag{Name: "segment-size", Usage: "segment size (default: 16M, less for small volumes)"},
			&cli.StringFlag{Name: "compression", Value: "lz4", Usage: "lz4 or none"},
			&cli.StringFlag{Name: "label", Usage: "volume label, up to 32 bytes"},
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "overwrite an existing volume or data"},
			&cli.BoolFlag{Name: "preallocate", Usage: "write the whole image file once, so that syncs never make the host filesystem allocate"},
		},
		HideHelpCommand: true,
		Action:          run,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
	}
	return app.Run(args)
}

func run(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError{errors.New("need exactly one IMAGE argument (see --help)")}
	}
	path := c.Args().First()
	var o txfs.FormatOptions
	var size int64
	var err error
	if s := c.String("size"); s != "" {
		if size, err = bytesize.Parse(s); err != nil {
			return usageError{fmt.Errorf("--size: %w", err)}
		}
	}
	bs, err := bytesize.Parse(c.String("block-size"))
	if err != nil {
		return usageError{fmt.Errorf("--block-size: %w", err)}
	}
	o.BlockSize = uint32(bs)
	if s := c.String("segment-size"); s != "" {
		ss, err := bytesize.Parse(s)
		if err != nil {
			return usageError{fmt.Errorf("--segment-size: %w", err)}
		}
		o.SegmentSize = uint32(ss)
	}
	switch c.String("compression") {
	case "lz4":
	case "none":
		o.NoCompress = true
	default:
		return usageError{fmt.Errorf("--compression must be lz4 or none, not %q", c.String("compression"))}
	}
	o.Label = c.String("label")
	if len(o.Label) > segment.LabelSize {
		return usageError{fmt.Errorf("--label is %d bytes, at most %d", len(o.Label), segment.LabelSize)}
	}

	dev, created, err := openTarget(path, size, c.Bool("force"))
	if err != nil {
		return err
	}
	defer dev.Close()
	var target segment.Device = dev
	if size > 0 && size < dev.Size() {
		target = limitDevice{dev, size}
	}
	if c.Bool("preallocate") {
		if err := preallocate(dev, target.Size()); err != nil {
			if created {
				os.Remove(path)
			}
			return fmt.Errorf("preallocate %s: %w", path, err)
		}
	}
	if err := txfs.Format(target, o); err != nil {
		if created {
			os.Remove(path)
		}
		if errors.Is(err, segment.ErrGeometry) {
			return fmt.Errorf("%s: too small or badly shaped for a volume: %v", path, err)
		}
		return fmt.Errorf("format %s: %w", path, err)
	}
	sb, _, err := segment.ReadSuperblock(target)
	if err != nil {
		return fmt.Errorf("read back %s: %w", path, err)
	}
	g := sb.Geometry
	comp := "lz4"
	if o.NoCompress {
		comp = "none"
	}
	fmt.Fprintf(c.App.Writer, "%s: txfs volume of %s, %d segments of %s, blocks of %s, compression %s\nuuid %s",
		path, FormatSize(int64(sb.DeviceSize)), g.Segments, FormatSize(int64(g.SegmentSize)), FormatSize(int64(g.BlockSize)), comp, uuidString(sb.UUID))
	if sb.Label != "" {
		fmt.Fprintf(c.App.Writer, " label %q", sb.Label)
	}
	fmt.Fprintln(c.App.Writer)
	return nil
}

// openTarget opens or creates the image, refusing to overwrite a volume or
// data without force.
func openTarget(path string, size int64, force bool) (*segment.FileDevice, bool, error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		parent := filepath.Dir(path)
		if pst, err := os.Stat(parent); errors.Is(err, os.ErrNotExist) {
			return nil, false, fmt.Errorf("cannot create %s: no such directory %s", path, parent)
		} else if err != nil || !pst.IsDir() {
			return nil, false, fmt.Errorf("cannot create %s: %s is not a directory", path, parent)
		}
		if size == 0 {
			return nil, false, usageError{fmt.Errorf("%s does not exist: give --size to create it", path)}
		}
		dev, err := segment.CreateFile(path, size)
		if err != nil {
			return nil, false, fmt.Errorf("cannot create %s: %w", path, err)
		}
		return dev, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	if st.IsDir() {
		return nil, false, fmt.Errorf("%s is a directory, not an image file or block device", path)
	}
	if st.Mode().IsRegular() && st.Size() == 0 && size == 0 {
		return nil, false, usageError{fmt.Errorf("%s is an empty file: give --size to make it an image of that size", path)}
	}
	dev, err := segment.OpenFile(path, false)
	if err != nil {
		return nil, false, err
	}
	if err := dev.Lock(true); err != nil {
		dev.Close()
		return nil, false, err
	}
	if !force {
		if err := checkBlank(dev, path); err != nil {
			dev.Close()
			return nil, false, err
		}
	}
	if st.Mode().IsRegular() && size > 0 && size != dev.Size() {
		// Through the descriptor that holds the lock: a reopen would
		// leave a moment when another mkfs or mount could take it.
		if err := dev.Truncate(size); err != nil {
			dev.Close()
			return nil, false, err
		}
	}
	return dev, false, nil
}

// checkBlank refuses a device that holds a txfs volume, or anything at all
// in its first 64 KiB, or that cannot be read to say: formatting it would
// destroy what is there.
func checkBlank(dev segment.Device, path string) error {
	if sb, _, err := segment.ReadSuperblock(dev); err == nil {
		return fmt.Errorf("%s already holds a txfs volume (uuid %s); use --force to overwrite it", path, uuidString(sb.UUID))
	}
	head := make([]byte, 64<<10)
	n, err := dev.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("cannot read %s to see what it holds: %w; use --force to format it anyway", path, err)
	}
	if !bytes.Equal(head[:n], make([]byte, n)) {
		return fmt.Errorf("%s is not empty; use --force to overwrite it", path)
	}
	return nil
}

// preallocate writes zeros over the first size bytes of an image file.
// A sparse image makes the host filesystem allocate blocks, and journal the
// allocation, at every sync into a part of the image not written before;
// an image written once has every block in place, so a sync is only the
// data and a cache flush (the reason databases zero their log files ahead).
// Block devices need nothing.
func preallocate(dev *segment.FileDevice, size int64) error {
	st, err := os.Stat(dev.Path())
	if err != nil || !st.Mode().IsRegular() {
		return err
	}
	zero := make([]byte, 4<<20)
	for off := int64(0); off < size; off += int64(len(zero)) {
		n := min(int64(len(zero)), size-off)
		if _, err := dev.WriteAt(zero[:n], off); err != nil {
			return err
		}
	}
	return dev.Sync()
}

// limitDevice formats only the first n bytes of a larger device.
type limitDevice struct {
	*segment.FileDevice
	n int64
}

func (d limitDevice) Size() int64 { return d.n }

// FormatSize renders a byte count with the largest exact binary suffix.
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return fmt.Sprintf("%d%s", n/u.m, u.s)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

func uuidString(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
