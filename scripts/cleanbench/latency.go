package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/segment"
)

// latParams set the latency benchmark.
type latParams struct {
	dir     string
	imgSize int64
	segSize uint32        // 0: what mkfs picks for imgSize
	window  time.Duration // of each phase
	util    float64       // of the background file set while the cleaner works
	bgChunk int
	bgRates []int64 // bytes per second of the background writer
	rounds  int
	policy  string
	seed    uint64
}

// latPhase is one measured phase of one round.
type latPhase struct {
	lat     []time.Duration // sorted
	elapsed time.Duration
	bgBytes int64 // background data written in the window
	passes  uint64
	cleaned uint64
	moved   int64
	busy    float64 // share of samples with a cleaning batch under way
	freeMin int
	freeMax int
	segSize uint32
	errs    []string
}

func (p *latPhase) pct(q float64) time.Duration {
	if len(p.lat) == 0 {
		return 0
	}
	i := min(int(q*float64(len(p.lat))), len(p.lat)-1)
	return p.lat[i]
}

func (p *latPhase) mean() time.Duration {
	if len(p.lat) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range p.lat {
		sum += d
	}
	return sum / time.Duration(len(p.lat))
}

// latSeries is one phase measured over the rounds.
type latSeries struct {
	name   string
	rate   int64
	rounds []*latPhase
}

// median of f over the rounds.
func (s *latSeries) median(f func(*latPhase) float64) float64 {
	var xs []float64
	for _, p := range s.rounds {
		xs = append(xs, f(p))
	}
	slices.Sort(xs)
	if len(xs) == 0 {
		return 0
	}
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

func (s *latSeries) p99() float64 {
	return s.median(func(p *latPhase) float64 { return float64(p.pct(0.99)) })
}

// latencyBench measures 4 KiB writes with fsync on an image file: with no
// other load (the cleaner idle), and for each background rate, beside a
// writer overwriting a small file set on a volume with plenty of free
// segments (the cleaner still idle) and a file set at p.util (the cleaner
// working all along). Rounds are interleaved; medians are printed.
func latencyBench(p latParams) bool {
	fmt.Printf("\n== latency: 4 KiB write + Fsync at random aligned offsets of a 4 MiB file, one after the other for %v per phase,\n   %d rounds, image files in %s (%s)\n",
		p.window, p.rounds, p.dir, fsType(p.dir))
	fmt.Printf("   background writer: overwrites of %d KiB at random aligned offsets, no fsync, at a set rate\n", p.bgChunk>>10)
	idle := &latSeries{name: "idle"}
	var series []*latSeries
	var pairs [][2]*latSeries
	for _, rate := range p.bgRates {
		r := fmt.Sprintf("%.0f MiB/s", mib(rate))
		bg := &latSeries{name: "bg " + r + ", no cleaning", rate: rate}
		cl := &latSeries{name: "bg " + r + ", cleaning", rate: rate}
		series = append(series, bg, cl)
		pairs = append(pairs, [2]*latSeries{bg, cl})
	}
	var seg uint32
	for round := range p.rounds {
		ph := latRun(p, p.imgSize, 0, 0)
		idle.rounds = append(idle.rounds, ph)
		if p.segSize == 0 {
			p.segSize = ph.segSize
		}
		seg = ph.segSize
		report(round, idle.name, ph)
		for _, pr := range pairs {
			// The same writer on a volume four times larger, its file set
			// a tenth of it: the log stays far from the low watermark.
			ph := latRun(p, 4*p.imgSize, 0.1, pr[0].rate)
			pr[0].rounds = append(pr[0].rounds, ph)
			report(round, pr[0].name, ph)
			ph = latRun(p, p.imgSize, p.util, pr[1].rate)
			pr[1].rounds = append(pr[1].rounds, ph)
			report(round, pr[1].name, ph)
		}
	}

	fmt.Printf("   image %.0f MiB (no-cleaning phases: %.0f MiB), segments of %d KiB, policy %q, cleaning phases at u=%.2f\n\n",
		mib(p.imgSize), mib(4*p.imgSize), seg>>10, policyName(p.policy), p.util)
	fmt.Printf("%-26s %6s %9s %9s %9s %9s %8s %6s %7s %8s %5s  %s\n", "phase (medians of rounds)", "ops", "p50", "p99", "max", "mean", "bg MiB/s", "passes", "cleaned", "moved", "busy", "p99 of each round")
	ok := true
	for _, s := range append([]*latSeries{idle}, series...) {
		var each []string
		for _, ph := range s.rounds {
			each = append(each, us(ph.pct(0.99)).String())
		}
		fmt.Printf("%-26s %6.0f %9v %9v %9v %9v %8.1f %6.0f %7.0f %8.1f %4.0f%%  %s\n", s.name,
			s.median(func(p *latPhase) float64 { return float64(len(p.lat)) }),
			us(time.Duration(s.median(func(p *latPhase) float64 { return float64(p.pct(0.5)) }))),
			us(time.Duration(s.p99())),
			us(time.Duration(s.median(func(p *latPhase) float64 { return float64(p.pct(1)) }))),
			us(time.Duration(s.median(func(p *latPhase) float64 { return float64(p.mean()) }))),
			s.median(func(p *latPhase) float64 { return mib(p.bgBytes) / p.elapsed.Seconds() }),
			s.median(func(p *latPhase) float64 { return float64(p.passes) }),
			s.median(func(p *latPhase) float64 { return float64(p.cleaned) }),
			s.median(func(p *latPhase) float64 { return mib(p.moved) }),
			s.median(func(p *latPhase) float64 { return 100 * p.busy }),
			strings.Join(each, " "))
		for _, ph := range s.rounds {
			if len(ph.errs) > 0 {
				ok = false
			}
		}
	}
	fmt.Println()
	for _, pr := range pairs {
		fmt.Printf("bg %3.0f MiB/s: p99(cleaning)/p99(idle) = %.2f;  p99(cleaning)/p99(same writer, no cleaning) = %.2f\n",
			mib(pr[0].rate), pr[1].p99()/idle.p99(), pr[1].p99()/pr[0].p99())
	}
	fmt.Println(`columns: ops = writes with fsync measured; bg MiB/s = file data the background writer wrote per second of the window; passes, cleaned, moved =
cleaning passes run, segments emptied and MiB copied in the window; busy = share of 20 ms samples with a cleaning batch
under way`)
	return ok
}

// report prints one phase of one round as it ends (to stderr), and what
// went wrong in it.
func report(round int, name string, ph *latPhase) {
	fmt.Fprintf(os.Stderr, "  round %d %-26s p50 %9v p99 %9v max %9v  bg %5.1f MiB/s  cleaned %3d  free %d-%d\n", round+1, name,
		us(ph.pct(0.5)), us(ph.pct(0.99)), us(ph.pct(1)), mib(ph.bgBytes)/ph.elapsed.Seconds(), ph.cleaned, ph.freeMin, ph.freeMax)
	for _, e := range ph.errs {
		fmt.Printf("   round %d, %s: FAILED: %s\n", round+1, name, e)
	}
	if strings.HasSuffix(name, ", cleaning") && ph.cleaned == 0 && len(ph.errs) == 0 {
		fmt.Printf("   round %d, %s: the cleaner emptied no segment in the window\n", round+1, name)
	}
	if strings.HasSuffix(name, "no cleaning") && ph.cleaned > 0 {
		fmt.Printf("   round %d, %s: the cleaner emptied %d segments in the window\n", round+1, name, ph.cleaned)
	}
}

func policyName(p string) string {
	if p == "" {
		return "default"
	}
	return p
}

func us(d time.Duration) time.Duration { return d.Round(time.Microsecond) }

// latSettle is how long the background writer runs at its rate before
// the window on the busy volume.
const latSettle = 3 * time.Second

// latFile is the size of the file the measured writes go to.
const latFile = 4 << 20

// latRun makes an image of imgSize bytes, fills a background file set to
// util of it (0: none), and measures writes with fsync for p.window while a
// background writer overwrites that set at rate bytes a second. With util
// at least 0.5 it first overwrites as fast as it can until the cleaner
// has started, so that it works all through the window.
func latRun(p latParams, imgSize int64, util float64, rate int64) *latPhase {
	ph := &latPhase{}
	fail := func(format string, args ...any) *latPhase {
		ph.errs = append(ph.errs, fmt.Sprintf(format, args...))
		return ph
	}
	path := filepath.Join(p.dir, fmt.Sprintf("cleanbench-%d.img", os.Getpid()))
	os.Remove(path)
	defer os.Remove(path)
	dev, err := segment.CreateFile(path, imgSize)
	if err != nil {
		return fail("create image: %v", err)
	}
	err = txfs.Format(dev, txfs.FormatOptions{SegmentSize: p.segSize})
	dev.Close()
	if err != nil {
		return fail("format: %v", err)
	}
	v, err := txfs.OpenPath(path, txfs.Options{Cleaner: txfs.CleanerOptions{Policy: p.policy}})
	if err != nil {
		return fail("open: %v", err)
	}
	defer func() {
		if err := v.Check(); err != nil {
			ph.errs = append(ph.errs, "check: "+err.Error())
		}
		if err := v.Close(); err != nil {
			ph.errs = append(ph.errs, "close: "+err.Error())
		}
	}()
	st, err := v.Status()
	if err != nil {
		return fail("status: %v", err)
	}
	ph.segSize = st.SegmentSize
	sf, err := v.Statfs()
	if err != nil {
		return fail("statfs: %v", err)
	}
	usable := int64(sf.Bavail) * int64(sf.BlockSize)

	rng := rand.NewChaCha8(chachaKey("latency foreground", p.seed))
	fg, err := newFileSet(v, rng, "lat", 1, latFile, 0)
	if err != nil {
		return fail("foreground file: %v", err)
	}
	var bg *bgWriter
	if util > 0 {
		const bgFile = 1 << 20
		n := int((util*float64(usable) - latFile) / bgFile)
		set, err := newFileSet(v, rand.NewChaCha8(chachaKey("latency background fill", p.seed)), "bg", n, bgFile, 0)
		if err != nil {
			return fail("background fill: %v", err)
		}
		bg = startBgWriter(set, p.bgChunk, rate, p.seed)
		defer bg.stop()
	}
	if err := v.Fsync(fg.inos[0]); err != nil {
		return fail("fsync: %v", err)
	}

	if bg != nil && util >= 0.5 {
		if err := waitForCleaner(v, bg); err != nil {
			return fail("%v", err)
		}
		bg.pace()
		time.Sleep(latSettle)
	} else if bg != nil {
		bg.pace()
	}

	before, err := v.Status()
	if err != nil {
		return fail("status: %v", err)
	}
	smp := startSampler(v, before.FreeSegments)
	r := rand.New(rand.NewPCG(p.seed, 3))
	buf := make([]byte, 4096)
	ino := fg.inos[0]
	b0 := bg.written()
	start := time.Now()
	for i := 0; time.Since(start) < p.window; i++ {
		off := int64(r.IntN(latFile/len(buf)) * len(buf))
		rng.Read(buf)
		t0 := time.Now()
		_, err := v.Write(ino, buf, off)
		if err == nil {
			err = v.Fsync(ino)
		}
		d := time.Since(t0)
		if err != nil {
			smp.stop()
			if errors.Is(err, txfs.ErrNoSpace) {
				s, _ := v.Status()
				return fail("write %d: %v (status %+v)", i+1, err, s)
			}
			return fail("write %d: %v", i+1, err)
		}
		copy(fg.data[0][off:], buf)
		ph.lat = append(ph.lat, d)
	}
	ph.elapsed = time.Since(start)
	ph.bgBytes = bg.written() - b0
	smp.stop()
	ph.busy, ph.freeMin, ph.freeMax = smp.busyShare(), smp.freeMin, smp.freeMax
	after, err := v.Status()
	if err != nil {
		return fail("status: %v", err)
	}
	ph.passes = after.Cleaner.Passes - before.Cleaner.Passes
	ph.cleaned = after.Cleaner.SegmentsCleaned - before.Cleaner.SegmentsCleaned
	ph.moved = after.Cleaner.BytesMoved - before.Cleaner.BytesMoved
	slices.Sort(ph.lat)

	if err := fg.verify(); err != nil {
		ph.errs = append(ph.errs, "foreground file: "+err.Error())
	}
	if bg != nil {
		if err := bg.stop(); err != nil {
			ph.errs = append(ph.errs, "background writer: "+err.Error())
		}
		if err := bg.set.verify(); err != nil {
			ph.errs = append(ph.errs, "background files: "+err.Error())
		}
	}
	return ph
}

// waitForCleaner waits until the cleaner has emptied segments and the
// free ones are below its low watermark, while bg writes.
func waitForCleaner(v *txfs.Volume, bg *bgWriter) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		s, err := v.Status()
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		if s.Cleaner.SegmentsCleaned > 0 && s.FreeSegments < s.Cleaner.LowWatermark {
			return nil
		}
		if err := bg.failed(); err != nil {
			return fmt.Errorf("background writer before the window: %w", err)
		}
		if time.Now().After(deadline) {
			return errors.New("the cleaner had not started after 5 minutes of overwrites")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fsType names the filesystem that holds dir and its device, as df -T
// would.
func fsType(dir string) string {
	out, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "?"
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "?"
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	best, typ := "", "?"
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mnt := f[1]
		under := abs == mnt || mnt == "/" || strings.HasPrefix(abs, mnt+"/")
		if under && len(mnt) >= len(best) {
			best, typ = mnt, f[2]+" on "+f[0]
		}
	}
	return typ
}
