// Command enginebench measures the txfs engine (no FUSE) side by side with
// plain file I/O on the same disk, and prints the ratios:
//
//   - fsync: 16 goroutines each writing 4 KiB and calling Fsync, against a
//     plain loop of pwrite+fdatasync on a file, and against 16 goroutines
//     running that loop on one file (which the host filesystem's own
//     journal batches);
//   - seqwrite: sequential 1 MiB writes through the engine, against raw
//     pwrite of the same bytes to an image file;
//   - recovery: Open after 64 MiB of log past the last checkpoint, and after
//     a run with default checkpointing;
//   - fsck: Open and the full check of a 1 GiB volume holding 100,000 files.
//
// Run: go run ./scripts/enginebench -dir /var/tmp -size 1G
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/segment"
	"golang.org/x/sys/unix"
)

var (
	dir      = flag.String("dir", os.TempDir(), "directory on the disk to measure")
	seqSize  = flag.Int64("size", 1<<30, "bytes of the sequential write")
	rounds   = flag.Int("rounds", 3, "rounds of each workload (medians are printed)")
	ops      = flag.Int("ops", 200, "fsync operations per goroutine")
	fsckOnly = flag.Bool("fsck", false, "only time the check of a volume with 100,000 files")
)

func main() {
	flag.Parse()
	if *fsckOnly {
		d, n, err := fsckTime()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("fsck (open, recovery and full check) of a 1 GiB volume with %d files: %v\n", n, d.Round(time.Millisecond))
		return
	}
	var fs, fb, fl, ss, sb []float64
	for r := 0; r < *rounds; r++ {
		fs = append(fs, must(fsyncTxfs()))
		fb = append(fb, must(fsyncBaseline(16)))
		fl = append(fl, must(fsyncBaseline(1)))
		ss = append(ss, must(seqTxfs()))
		sb = append(sb, must(seqBaseline()))
	}
	mf, mfb, mfl, ms, msb := median(fs), median(fb), median(fl), median(ss), median(sb)
	fmt.Printf("fsync, 16 writers of 4 KiB:  txfs %8.0f ops/s   pwrite+fdatasync loop %8.0f ops/s   ratio %.2fx\n", mf, mfl, mf/mfl)
	fmt.Printf("                             txfs %8.0f ops/s   16 such loops         %8.0f ops/s   ratio %.2fx\n", mf, mfb, mf/mfb)
	fmt.Printf("sequential write %s:        txfs %8.1f MiB/s   raw pwrite       %8.1f MiB/s   ratio %.2f\n", sizeStr(*seqSize), ms, msb, ms/msb)
	for _, c := range []struct {
		name  string
		bytes int64
	}{{"64 MiB of log past the checkpoint", 0}, {"default checkpointing", txfsDefault}} {
		d, err := recovery(c.bytes)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("recovery, %s: %v\n", c.name, d.Round(time.Millisecond))
	}
}

const txfsDefault = -1

func must(x float64, err error) float64 {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return x
}

func median(x []float64) float64 {
	sort.Float64s(x)
	return x[len(x)/2]
}

func sizeStr(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }

func newVolume(size int64, o txfs.Options) (*txfs.Volume, string, error) {
	path := filepath.Join(*dir, fmt.Sprintf("enginebench-%d.img", rand.Int()))
	dev, err := segment.CreateFile(path, size)
	if err != nil {
		return nil, "", err
	}
	if err := txfs.Format(dev, txfs.FormatOptions{}); err != nil {
		return nil, "", err
	}
	v, err := txfs.Open(dev, o)
	return v, path, err
}

func fsyncTxfs() (float64, error) {
	v, path, err := newVolume(1<<30, txfs.Options{})
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer v.Close()
	var inos []txfs.Ino
	for w := 0; w < 16; w++ {
		a, err := v.Create(txfs.RootIno, fmt.Sprint(w), 0o644, txfs.Owner{})
		if err != nil {
			return 0, err
		}
		inos = append(inos, a.Ino)
	}
	buf := make([]byte, 4096)
	rand.Read(buf)
	return timeOps(16, func(w, i int) error {
		if _, err := v.Write(inos[w], buf, int64(i)*4096); err != nil {
			return err
		}
		return v.Fsync(inos[w])
	})
}

func fsyncBaseline(writers int) (float64, error) {
	path := filepath.Join(*dir, fmt.Sprintf("enginebench-%d.dat", rand.Int()))
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	buf := make([]byte, 4096)
	rand.Read(buf)
	return timeOps(writers, func(w, i int) error {
		if _, err := f.WriteAt(buf, int64(w*(*ops)*16/writers+i)*4096); err != nil {
			return err
		}
		return unix.Fdatasync(int(f.Fd()))
	})
}

// timeOps runs 16 × ops operations in n goroutines and returns
// operations/s.
func timeOps(n int, op func(w, i int) error) (float64, error) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < *ops*16/n; i++ {
				if err := op(w, i); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return float64(16**ops) / time.Since(start).Seconds(), nil
}

func seqTxfs() (float64, error) {
	v, path, err := newVolume(*seqSize*2+(256<<20), txfs.Options{})
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer v.Close()
	a, err := v.Create(txfs.RootIno, "seq", 0o644, txfs.Owner{})
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 1<<20)
	rand.Read(buf)
	start := time.Now()
	for off := int64(0); off < *seqSize; off += int64(len(buf)) {
		if _, err := v.Write(a.Ino, buf, off); err != nil {
			return 0, err
		}
	}
	if err := v.Fsync(a.Ino); err != nil {
		return 0, err
	}
	return float64(*seqSize) / (1 << 20) / time.Since(start).Seconds(), nil
}

func seqBaseline() (float64, error) {
	path := filepath.Join(*dir, fmt.Sprintf("enginebench-%d.dat", rand.Int()))
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	buf := make([]byte, 1<<20)
	rand.Read(buf)
	start := time.Now()
	for off := int64(0); off < *seqSize; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf, off); err != nil {
			return 0, err
		}
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return 0, err
	}
	return float64(*seqSize) / (1 << 20) / time.Since(start).Seconds(), nil
}

// recovery writes 64 MiB of small files and data past the last checkpoint
// (or with default checkpointing), abandons the volume as a crash would,
// and times Open.
func recovery(ckptBytes int64) (time.Duration, error) {
	o := txfs.Options{CheckpointBytes: 1 << 40, CheckpointInterval: time.Hour}
	if ckptBytes == txfsDefault {
		o = txfs.Options{}
	}
	v, path, err := newVolume(1<<30, o)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	buf := make([]byte, 64<<10)
	rand.Read(buf)
	var last txfs.Ino
	for i := 0; i < 1024; i++ { // 1024 files of 64 KiB: 64 MiB of log
		a, err := v.Create(txfs.RootIno, fmt.Sprint(i), 0o644, txfs.Owner{})
		if err != nil {
			return 0, err
		}
		if _, err := v.Write(a.Ino, buf, 0); err != nil {
			return 0, err
		}
		last = a.Ino
	}
	// Fsync of the newest change makes every earlier unit durable too.
	if err := v.Fsync(last); err != nil {
		return 0, err
	}
	// No Close: the process "loses power" here; a new device reads the file.
	dev, err := segment.OpenFile(path, false)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	v2, err := txfs.Open(dev, txfs.Options{ReadOnly: true})
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	v2.Close()
	dev.Close()
	return d, nil
}

// fsckTime fills a 1 GiB volume with 100,000 small files in 100
// directories, closes it, and times what fsck.txfs does: open (recovery)
// and the full check, which reads every block.
func fsckTime() (time.Duration, uint64, error) {
	v, path, err := newVolume(1<<30, txfs.Options{})
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(path)
	buf := make([]byte, 1000)
	for d := 0; d < 100; d++ {
		dir, err := v.Mkdir(txfs.RootIno, fmt.Sprint("d", d), 0o755, txfs.Owner{})
		if err != nil {
			return 0, 0, err
		}
		for i := 0; i < 1000; i++ {
			a, err := v.Create(dir.Ino, fmt.Sprint("f", i), 0o644, txfs.Owner{})
			if err != nil {
				return 0, 0, err
			}
			if _, err := v.Write(a.Ino, buf, 0); err != nil {
				return 0, 0, err
			}
		}
	}
	if err := v.Close(); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	v2, err := txfs.OpenPath(path, txfs.Options{ReadOnly: true})
	if err != nil {
		return 0, 0, err
	}
	defer v2.Close()
	rep, err := v2.CheckReport()
	if err != nil {
		return 0, 0, err
	}
	if len(rep.Problems) > 0 {
		return 0, 0, fmt.Errorf("check found problems: %v", rep.Problems[0])
	}
	return time.Since(start), rep.Inodes, nil
}
