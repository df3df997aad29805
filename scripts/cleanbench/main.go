// Command cleanbench measures the segment cleaner (docs/PERFORMANCE.md,
// "Cleaner write cost"):
//
//   - write cost: random overwrites of a file set kept at several
//     utilizations of a memory volume, uniform and hot/cold (most writes
//     to a few files), for each cleaning policy; the bytes written to the
//     device per byte of file data written, over a steady-state window,
//     beside Sprite LFS's 2/(1-u);
//   - latency: 4 KiB writes each followed by Fsync on an image file, with
//     the cleaner idle and while it works, p50/p99/max.
//
// Run: scripts/cleanbench.sh [flags], or go run ./scripts/cleanbench -h.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/txfs/txfs/cleaner"
)

func main() {
	var (
		mode      = flag.String("mode", "all", "what to measure: cost, latency or all")
		devSize   = flag.String("size", "64M", "write cost: size of the memory volume")
		segSize   = flag.String("segment", "0", "write cost: segment size (0: what mkfs picks for -size)")
		utils     = flag.String("util", "0.5,0.7,0.85", "write cost: utilizations (live file data over the fresh volume's statfs space)")
		policies  = flag.String("policy", strings.Join(cleaner.Names(), ","), "write cost: cleaning policies")
		workloads = flag.String("workload", "uniform,hotcold", "write cost: workloads")
		fileSize  = flag.String("filesize", "256K", "write cost: size of each file of the set")
		chunk     = flag.String("chunk", "4K", "write cost: bytes of each overwrite (aligned to it)")
		warmup    = flag.Float64("warmup", 2, "write cost: file sets overwritten before the window")
		window    = flag.Float64("window", 4, "write cost: file sets overwritten in the measured window")
		hotShare  = flag.Float64("hotshare", 0.9, "write cost, hotcold: share of the writes that go to the hot files")
		hotEvery  = flag.Int("hotevery", 10, "write cost, hotcold: every n-th file is hot (10: a tenth of the data)")
		seed      = flag.Uint64("seed", 1, "random seed")

		dir       = flag.String("dir", "/var/tmp", "latency: directory for the image file (on the disk to measure)")
		imgSize   = flag.String("image", "256M", "latency: size of the image file")
		imgSeg    = flag.String("image-segment", "0", "latency: segment size of the image (0: what mkfs picks)")
		latWindow = flag.Duration("window-time", 8*time.Second, "latency: how long the writes with fsync of each phase go on")
		latUtil   = flag.Float64("bg-util", 0.8, "latency: utilization of the file set the background writer overwrites while the cleaner works")
		bgChunk   = flag.String("bg-chunk", "64K", "latency: bytes of each background overwrite")
		bgRates   = flag.String("bg-rate", "8M,16M", "latency: bytes per second the background writer writes, one set of phases for each")
		latRounds = flag.Int("rounds", 3, "latency: rounds (interleaved; medians are printed)")
		latPolicy = flag.String("lat-policy", "", "latency: cleaning policy (\"\": the default)")
	)
	flag.Parse()
	if *mode != "cost" && *mode != "latency" && *mode != "all" {
		fail(fmt.Errorf("-mode must be cost, latency or all, not %q", *mode))
	}
	ok := true
	if *mode != "latency" {
		p := costParams{devSize: size(*devSize), segSize: uint32(size(*segSize)), fileSize: int(size(*fileSize)),
			chunk: int(size(*chunk)), warmup: *warmup, window: *window, hotShare: *hotShare, hotEvery: *hotEvery, seed: *seed}
		ok = costBench(p, floats(*utils), split(*policies), split(*workloads)) && ok
	}
	if *mode != "cost" {
		p := latParams{dir: *dir, imgSize: size(*imgSize), segSize: uint32(size(*imgSeg)), window: *latWindow,
			util: *latUtil, bgChunk: int(size(*bgChunk)), bgRates: sizes(*bgRates), rounds: *latRounds, policy: *latPolicy, seed: *seed}
		ok = latencyBench(p) && ok
	}
	if !ok {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "cleanbench:", err)
	os.Exit(2)
}

// size parses a byte count with an optional K, M or G suffix.
func size(s string) int64 {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		fail(fmt.Errorf("bad size %q", s))
	}
	return n * mult
}

func sizes(s string) []int64 {
	var out []int64
	for _, f := range split(s) {
		n := size(f)
		if n == 0 {
			fail(fmt.Errorf("bad rate %q: the background writer needs a rate", f))
		}
		out = append(out, n)
	}
	return out
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func floats(s string) []float64 {
	var out []float64
	for _, f := range split(s) {
		x, err := strconv.ParseFloat(f, 64)
		if err != nil || x <= 0 || x >= 1 {
			fail(fmt.Errorf("bad utilization %q (between 0 and 1)", f))
		}
		out = append(out, x)
	}
	return out
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
