// Command cachetrace replays node cache traces (recorded by record.sh, or
// by any mount with -o node_trace=FILE) under each eviction policy of
// package internal/cache and under otter (github.com/maypok86/otter/v2,
// W-TinyLFU), a production cache used as a reference, at several cache
// sizes, and prints the hit rates as a Markdown table (docs/PERFORMANCE.md,
// "Caches"). With -sample DIR it also writes a key-sampled excerpt of
// each trace there, gzipped, for the replay test of internal/cache.
//
//	cachetrace [-fractions 0.125,0.25,0.5] [-sample DIR -sample-events N] TRACE...
//
// It is a module of its own so that otter stays out of txfs's.
package main

import (
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/maypok86/otter/v2"
	"github.com/txfs/txfs/internal/cache"
)

func main() {
	fractions := flag.String("fractions", "0.125,0.25,0.5", "cache sizes, as fractions of each trace's working set")
	sampleDir := flag.String("sample", "", "write a sampled excerpt of each trace to this directory")
	sampleEvents := flag.Int("sample-events", 300000, "about how many events an excerpt keeps at most")
	flag.Parse()
	var fs []float64
	for _, s := range strings.Split(*fractions, ",") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f <= 0 {
			fail(fmt.Errorf("-fractions: bad %q", s))
		}
		fs = append(fs, f)
	}
	if flag.NArg() == 0 {
		fail(fmt.Errorf("no trace given"))
	}
	fmt.Printf("| workload | lookups | working set | cache | %s | otter |\n", strings.Join(cache.Names(), " | "))
	fmt.Printf("|---|---:|---:|---:|%s---:|\n", strings.Repeat("---:|", len(cache.Names())))
	// Misses summed over every trace and size, per policy, and how many
	// rows each policy had the best hit rate of ours in (ties count for
	// each).
	names := append(cache.Names(), "otter")
	totalMisses := make([]uint64, len(names))
	best := make([]int, len(names))
	for _, path := range flag.Args() {
		events, err := readTrace(path)
		if err != nil {
			fail(err)
		}
		name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".gz"), ".trace")
		ws := cache.WorkingSet(events)
		gets := 0
		for _, e := range events {
			if e.Op == cache.Get {
				gets++
			}
		}
		for _, f := range fs {
			capacity := int64(float64(ws) * f)
			row := fmt.Sprintf("| %s | %d | %s | %s (%g) |", name, gets, mib(ws), mib(capacity), f)
			var results []cache.Result
			for _, p := range cache.Names() {
				pol, _ := cache.New(p, capacity)
				results = append(results, cache.Replay(events, pol, capacity))
			}
			results = append(results, replayOtter(events, capacity))
			fewest := results[0].Misses
			for i, r := range results {
				row += fmt.Sprintf(" %.3f%% |", 100*r.HitRate())
				totalMisses[i] += r.Misses
				if i < len(cache.Names()) {
					fewest = min(fewest, r.Misses)
				}
			}
			for i, r := range results[:len(cache.Names())] {
				if r.Misses == fewest {
					best[i]++
				}
			}
			fmt.Println(row)
		}
		if *sampleDir != "" {
			if err := writeSample(filepath.Join(*sampleDir, name+".trace.gz"), events, *sampleEvents); err != nil {
				fail(err)
			}
		}
	}
	fmt.Println()
	for i, n := range names {
		fmt.Printf("%s: %d misses in all", n, totalMisses[i])
		if i < len(best) && i < len(cache.Names()) {
			fmt.Printf(", fewest of lru, lfu and s3fifo in %d rows", best[i])
		}
		fmt.Println()
	}
}

// mib formats a byte count in MiB, or in KiB when it is small.
func mib(b int64) string {
	if b < 10<<20 {
		return fmt.Sprintf("%d KiB", b>>10)
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "cachetrace:", err)
	os.Exit(1)
}

// readTrace reads a trace, gzipped if its name ends in .gz.
func readTrace(path string) ([]cache.Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		if r, err = gzip.NewReader(f); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	events, err := cache.ReadTrace(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return events, nil
}

// replayOtter replays events through otter, bounded by the same weights:
// a lookup that misses sets the key, as the tree loads a node.
func replayOtter(events []cache.Event, capacity int64) cache.Result {
	c := otter.Must(&otter.Options[uint64, int64]{
		MaximumWeight: uint64(capacity),
		Weigher:       func(_ uint64, w int64) uint32 { return uint32(w) },
	})
	var r cache.Result
	for _, e := range events {
		switch e.Op {
		case cache.Get:
			if _, ok := c.GetIfPresent(e.Key); ok {
				r.Hits++
			} else {
				r.Misses++
				c.Set(e.Key, e.Weight)
			}
		case cache.Put:
			c.Set(e.Key, e.Weight)
		case cache.Del:
			c.Invalidate(e.Key)
		}
	}
	return r
}

// writeSample writes the events of the keys whose hash falls in a fixed
// share of the hash space (spatial sampling, as SHARDS does: the sample
// keeps each sampled key's whole access pattern), the share chosen to
// keep about n events.
func writeSample(path string, events []cache.Event, n int) error {
	rate := min(1, float64(n)/float64(len(events)))
	limit := uint64(rate * float64(^uint64(0)>>1))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	tw := cache.NewTraceWriter(zw)
	for _, e := range events {
		if mix(e.Key)>>1 <= limit {
			tw.Record(e.Op, e.Key, e.Weight)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// mix is a 64-bit hash of a key (splitmix64's finalizer).
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
