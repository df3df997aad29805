package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/segment"
)

// costConfig is one run of the write-cost benchmark.
type costConfig struct {
	policy   string
	util     float64 // live file data over what statfs says a fresh volume can take
	workload string  // "uniform" or "hotcold"
}

// costResult is what one run measured over its steady-state window.
type costResult struct {
	cfg        costConfig
	segSize    int64
	files      int
	setBytes   int64  // file data of the set
	usable     int64  // what statfs said the fresh volume could take
	user       int64  // file data the benchmark wrote
	ops        int64  // Status UserBytes: units of operations written
	devStatus  int64  // Status DeviceBytes
	devWritten int64  // bytes written to the device (counted below the engine)
	devRead    int64  // bytes read from the device
	moved      int64  // Status BytesMoved
	cleaned    uint64 // Status SegmentsCleaned
	passes     uint64
	freeMin    int // fewest free segments seen in the window
	freeMax    int
	elapsed    time.Duration
	err        error // the run stopped (ENOSPC, a failed operation)
	verifyErr  error
	checkErr   error
	closeErr   error
}

// cost is the write cost: bytes written to the device per byte of file
// data the benchmark wrote.
func (r *costResult) cost() float64 { return ratio(r.devWritten, r.user) }

// victimUtil is the mean utilization of the segments the cleaner emptied:
// the bytes it moved per segment emptied, over the segment size.
func (r *costResult) victimUtil() float64 {
	if r.cleaned == 0 {
		return 0
	}
	return float64(r.moved) / float64(r.cleaned) / float64(r.segSize)
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// costParams are the sizes every run of the write-cost benchmark shares.
type costParams struct {
	devSize  int64
	segSize  uint32 // 0: what mkfs picks for devSize
	fileSize int
	chunk    int
	warmup   float64 // file sets overwritten before the window
	window   float64 // file sets overwritten in it
	hotShare float64 // share of the writes that go to the hot files
	hotEvery int     // every hotEvery-th file is hot
	seed     uint64
}

// runCost fills a fresh memory volume to cfg.util, overwrites the file set
// params.warmup times, then measures over params.window times, and checks
// the volume.
func runCost(cfg costConfig, p costParams) *costResult {
	res := &costResult{cfg: cfg}
	start := time.Now()
	defer func() { res.elapsed = time.Since(start) }()

	dev := &countingDevice{Device: segment.NewMemDevice(p.devSize)}
	if err := txfs.Format(dev, txfs.FormatOptions{SegmentSize: p.segSize}); err != nil {
		res.err = fmt.Errorf("format: %w", err)
		return res
	}
	v, err := txfs.Open(dev, txfs.Options{Cleaner: txfs.CleanerOptions{Policy: cfg.policy}})
	if err != nil {
		res.err = fmt.Errorf("open: %w", err)
		return res
	}
	defer func() {
		res.checkErr = v.Check()
		res.closeErr = v.Close()
	}()
	st, err := v.Status()
	if err != nil {
		res.err = err
		return res
	}
	res.segSize = int64(st.SegmentSize)
	sf, err := v.Statfs()
	if err != nil {
		res.err = err
		return res
	}
	res.usable = int64(sf.Bavail) * int64(sf.BlockSize)

	hotEvery, hotP := 0, 0.0
	if cfg.workload == "hotcold" {
		hotEvery, hotP = p.hotEvery, p.hotShare
	}
	res.files = int(cfg.util * float64(res.usable) / float64(p.fileSize))
	if hotEvery > 0 {
		res.files -= res.files % hotEvery
	}
	seed := p.seed + uint64(cfg.util*1000)
	rng := rand.NewChaCha8(chachaKey("write cost", seed))
	r := rand.New(rand.NewPCG(seed, 1))
	fs, err := newFileSet(v, rng, "f", res.files, p.fileSize, hotEvery)
	if err != nil {
		res.err = fmt.Errorf("fill: %w", err)
		return res
	}
	res.setBytes = fs.bytes

	buf := make([]byte, p.chunk)
	overwrite := func(total int64, watch func()) (int64, error) {
		var n int64
		for i := 0; n < total; i++ {
			w, err := fs.overwrite(r, rng, buf, hotP)
			if err != nil {
				return n, err
			}
			n += int64(w)
			if watch != nil && i%64 == 0 {
				watch()
			}
		}
		return n, nil
	}
	if n, err := overwrite(int64(p.warmup*float64(fs.bytes)), nil); err != nil {
		res.err = fmt.Errorf("warm-up, after %.1f MiB: %w%s", mib(n), err, spaceState(v, err))
		return res
	}

	// Each end of the window waits for the log written so far to reach
	// the device, so that the device's count and the engine's agree.
	if err := v.Fsync(fs.inos[0]); err != nil {
		res.err = err
		return res
	}
	before, err := v.Status()
	if err != nil {
		res.err = err
		return res
	}
	w0, r0 := dev.written.Load(), dev.read.Load()
	res.freeMin, res.freeMax = before.FreeSegments, before.FreeSegments
	watch := func() {
		if s, err := v.Status(); err == nil {
			res.freeMin, res.freeMax = min(res.freeMin, s.FreeSegments), max(res.freeMax, s.FreeSegments)
		}
	}
	res.user, err = overwrite(int64(p.window*float64(fs.bytes)), watch)
	if err == nil {
		err = v.Fsync(fs.inos[0])
	}
	after, serr := v.Status()
	res.devWritten, res.devRead = dev.written.Load()-w0, dev.read.Load()-r0
	if serr == nil {
		res.ops = after.Cleaner.UserBytes - before.Cleaner.UserBytes
		res.devStatus = after.Cleaner.DeviceBytes - before.Cleaner.DeviceBytes
		res.moved = after.Cleaner.BytesMoved - before.Cleaner.BytesMoved
		res.cleaned = after.Cleaner.SegmentsCleaned - before.Cleaner.SegmentsCleaned
		res.passes = after.Cleaner.Passes - before.Cleaner.Passes
	}
	if err != nil {
		res.err = fmt.Errorf("window, after %.1f MiB: %w%s", mib(res.user), err, spaceState(v, err))
		return res
	}
	res.verifyErr = fs.verify()
	return res
}

// spaceState says, for an ENOSPC, what the volume said of its space.
func spaceState(v *txfs.Volume, err error) string {
	if !errors.Is(err, txfs.ErrNoSpace) {
		return ""
	}
	st, serr := v.Status()
	sf, ferr := v.Statfs()
	if serr != nil || ferr != nil {
		return ""
	}
	return fmt.Sprintf(" (free segments %d of %d, reserve %d; live %.1f MiB, reclaimable %.1f MiB; statfs free %.1f MiB; cleaner %+v)",
		st.FreeSegments, st.Segments, st.ReserveSegments, mib(st.LiveBytes), mib(st.ReclaimableBytes),
		mib(int64(sf.Bavail)*int64(sf.BlockSize)), st.Cleaner)
}
