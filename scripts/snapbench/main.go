// Command snapbench measures snapshots on the txfs engine (no FUSE), on
// an image file on the disk given:
//
//   - create: the time to take a snapshot of an idle volume holding 10,000
//     and 100,000 files (medians of several), which should not depend on
//     the volume's size;
//   - list: Snapshots() with 100 snapshots;
//   - restore and delete: the time of each, after a 1% change;
//   - overwrite: 4 KiB random overwrites of a 64 MiB file (4,096 per
//     round, one sync at the end), with no snapshot and with a snapshot of
//     the file, which makes every first overwrite of a block copy it.
//
// Run: go run ./scripts/snapbench -dir /var/tmp
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/segment"
)

var (
	dir    = flag.String("dir", os.TempDir(), "directory on the disk to measure")
	rounds = flag.Int("rounds", 5, "repetitions of each timing (medians are printed)")
)

func main() {
	flag.Parse()
	for _, files := range []int{10_000, 100_000} {
		if err := createTimes(files); err != nil {
			fail(err)
		}
	}
	if err := overwrite(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "snapbench:", err)
	os.Exit(1)
}

// volume formats an image of size bytes in dir and opens it.
func volume(size int64) (*txfs.Volume, func(), error) {
	path := filepath.Join(*dir, fmt.Sprintf("snapbench-%d.img", os.Getpid()))
	dev, err := segment.CreateFile(path, size)
	if err != nil {
		return nil, nil, err
	}
	if err := txfs.Format(dev, txfs.FormatOptions{}); err != nil {
		return nil, nil, err
	}
	v, err := txfs.Open(dev, txfs.Options{})
	if err != nil {
		return nil, nil, err
	}
	return v, func() { v.Close(); dev.Close(); os.Remove(path) }, nil
}

func median(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

// createTimes times snapshots of a volume with files small files in 100
// directories, then list, restore and delete.
func createTimes(files int) error {
	v, done, err := volume(4 << 30)
	if err != nil {
		return err
	}
	defer done()
	buf := make([]byte, 2048)
	rng := rand.New(rand.NewSource(1))
	var inos []txfs.Ino
	for d := range 100 {
		a, err := v.Mkdir(txfs.RootIno, fmt.Sprintf("d%02d", d), 0o755, txfs.Owner{})
		if err != nil {
			return err
		}
		for i := range files / 100 {
			rng.Read(buf)
			f, err := v.Create(a.Ino, fmt.Sprintf("f%05d", i), 0o644, txfs.Owner{})
			if err != nil {
				return err
			}
			if _, err := v.Write(f.Ino, buf, 0); err != nil {
				return err
			}
			inos = append(inos, f.Ino)
		}
	}
	// Sync takes a checkpoint: the volume is idle.
	if err := v.Sync(); err != nil {
		return err
	}
	var create []time.Duration
	for i := range 100 {
		t := time.Now()
		if err := v.CreateSnapshot(fmt.Sprintf("s%d", i)); err != nil {
			return err
		}
		create = append(create, time.Since(t))
	}
	t := time.Now()
	list, err := v.Snapshots()
	if err != nil {
		return err
	}
	listTime := time.Since(t)
	// A 1% change, then restore and delete.
	for _, ino := range inos[:files/100] {
		rng.Read(buf)
		if _, err := v.Write(ino, buf, 0); err != nil {
			return err
		}
	}
	t = time.Now()
	if err := v.RestoreSnapshot("s0"); err != nil {
		return err
	}
	restore := time.Since(t)
	var del []time.Duration
	for i := range *rounds {
		t := time.Now()
		if err := v.DeleteSnapshot(fmt.Sprintf("s%d", 99-i)); err != nil {
			return err
		}
		del = append(del, time.Since(t))
	}
	fmt.Printf("%7d files: create median %v (min %v, max %v of 100 on an idle volume); list of %d %v; restore after a 1%% change %v; delete median %v\n",
		files, median(create).Round(10*time.Microsecond), slicesMin(create).Round(10*time.Microsecond), slicesMax(create).Round(10*time.Microsecond),
		len(list), listTime.Round(time.Millisecond), restore.Round(10*time.Microsecond), median(del).Round(10*time.Microsecond))
	return nil
}

func slicesMin(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = min(m, x)
	}
	return m
}

func slicesMax(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = max(m, x)
	}
	return m
}

// overwrite times random 4 KiB overwrites of a 64 MiB file with and
// without a snapshot of it.
func overwrite() error {
	v, done, err := volume(1 << 30)
	if err != nil {
		return err
	}
	defer done()
	const size = 64 << 20
	f, err := v.Create(txfs.RootIno, "f", 0o644, txfs.Owner{})
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	rng := rand.New(rand.NewSource(2))
	for off := int64(0); off < size; off += int64(len(buf)) {
		rng.Read(buf)
		if _, err := v.Write(f.Ino, buf, off); err != nil {
			return err
		}
	}
	if err := v.Sync(); err != nil {
		return err
	}
	run := func() (float64, error) {
		t := time.Now()
		for range 4096 {
			off := rng.Int63n(size/4096) * 4096
			if _, err := v.Write(f.Ino, buf[:4096], off); err != nil {
				return 0, err
			}
		}
		if err := v.Sync(); err != nil {
			return 0, err
		}
		return 4096 / time.Since(t).Seconds(), nil
	}
	var plain, snap []float64
	for i := range *rounds {
		p, err := run()
		if err != nil {
			return err
		}
		// A new snapshot each round: every block is shared again.
		if err := v.CreateSnapshot(fmt.Sprintf("o%d", i)); err != nil {
			return err
		}
		s, err := run()
		if err != nil {
			return err
		}
		if err := v.DeleteSnapshot(fmt.Sprintf("o%d", i)); err != nil {
			return err
		}
		plain, snap = append(plain, p), append(snap, s)
	}
	sort.Float64s(plain)
	sort.Float64s(snap)
	mp, ms := plain[len(plain)/2], snap[len(snap)/2]
	fmt.Printf("random 4 KiB overwrites of a 64 MiB file: no snapshot %.0f/s, right after a snapshot %.0f/s (%.2fx)\n", mp, ms, ms/mp)
	return nil
}
