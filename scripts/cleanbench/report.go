package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// costBench runs every (workload, utilization, policy) and prints the
// tables. It reports whether every run finished and checked clean.
func costBench(p costParams, utils []float64, policies, workloads []string) bool {
	for _, w := range workloads {
		if w != "uniform" && w != "hotcold" {
			fail(fmt.Errorf("unknown workload %q (uniform or hotcold)", w))
		}
	}
	fmt.Printf("== write cost: memory volume of %.0f MiB, files of %d KiB, overwrites of %d bytes at random aligned offsets;\n",
		mib(p.devSize), p.fileSize>>10, p.chunk)
	fmt.Printf("   warm-up %.1fx the file set, window %.1fx; hotcold: %.0f%% of writes to every %d-th file\n",
		p.warmup, p.window, 100*p.hotShare, p.hotEvery)
	start := time.Now()
	results := map[costConfig]*costResult{}
	ok := true
	for _, w := range workloads {
		for _, u := range utils {
			for _, pol := range policies {
				cfg := costConfig{policy: pol, util: u, workload: w}
				r := runCost(cfg, p)
				results[cfg] = r
				fmt.Fprintf(os.Stderr, "  %-8s u=%.2f %-13s cost %6.2f  victims %.2f  %v%s\n", w, u, pol, r.cost(), r.victimUtil(), round(r.elapsed), problems(r))
				if problems(r) != "" {
					ok = false
				}
			}
		}
	}
	var segSize, usable int64
	for _, r := range results {
		segSize, usable = max(segSize, r.segSize), max(usable, r.usable)
	}
	fmt.Printf("   segments of %d KiB, statfs free on the fresh volume %.1f MiB (u is of that); %v in all\n\n",
		segSize>>10, mib(usable), round(time.Since(start)))

	// The summary: write cost per policy beside 2/(1-u), and their ratio.
	fmt.Printf("write cost = bytes written to the device / bytes of file data written (window); LFS = 2/(1-u)\n")
	failed := false
	fmt.Printf("%-8s %5s %6s", "workload", "u", "LFS")
	for _, pol := range policies {
		fmt.Printf(" | %-13s %6s", pol, "/LFS")
	}
	fmt.Println()
	for _, w := range workloads {
		for _, u := range utils {
			lfs := 2 / (1 - u)
			fmt.Printf("%-8s %5.2f %6.2f", w, u, lfs)
			for _, pol := range policies {
				r := results[costConfig{pol, u, w}]
				if r.err != nil {
					failed = true
					fmt.Printf(" | %13s %6s", "FAILED", "-")
					continue
				}
				fmt.Printf(" | %13.2f %6.2f", r.cost(), r.cost()/lfs)
			}
			fmt.Println()
		}
	}
	if failed {
		fmt.Println("FAILED: the run stopped early (the reason is in the last column below)")
	}

	// The details of each run.
	fmt.Printf("\n%-8s %5s %-13s %5s %8s %7s %7s %7s %7s %7s %7s %7s %6s %5s %8s  %s\n",
		"workload", "u", "policy", "files", "user MiB", "cost", "ops", "moved", "other", "st.cost", "read", "victim", "passes", "free", "time", "check")
	for _, w := range workloads {
		for _, u := range utils {
			for _, pol := range policies {
				r := results[costConfig{pol, u, w}]
				fmt.Printf("%-8s %5.2f %-13s %5d %8.1f %7.2f %7.3f %7.2f %7.2f %7.2f %7.2f %7.2f %6d %2d-%-2d %8v  %s\n",
					w, u, pol, r.files, mib(r.user), r.cost(), ratio(r.ops, r.user), ratio(r.moved, r.user),
					ratio(r.devWritten-r.ops-r.moved, r.user), ratio(r.devStatus, r.ops), ratio(r.devRead, r.user),
					r.victimUtil(), r.passes, r.freeMin, r.freeMax, round(r.elapsed), orOK(problems(r)))
			}
		}
	}
	fmt.Println(`columns, all over the window and per byte of file data written (user): cost = bytes written to the device;
ops = bytes of the units of operations (Status UserBytes); moved = bytes the cleaner copied (Status BytesMoved);
other = the rest of cost (checkpoints, headers of the cleaner's units); st.cost = Status DeviceBytes / UserBytes, the
engine's own ratio; read = bytes read from the device; victim = Status BytesMoved / SegmentsCleaned / segment size;
passes = cleaning passes (each ends with a checkpoint); free = fewest-most free segments seen`)
	return ok
}

// problems says what went wrong in a run, or "".
func problems(r *costResult) string {
	var p []string
	for _, e := range []struct {
		what string
		err  error
	}{{"", r.err}, {"verify: ", r.verifyErr}, {"check: ", r.checkErr}, {"close: ", r.closeErr}} {
		if e.err != nil {
			p = append(p, e.what+e.err.Error())
		}
	}
	if len(p) == 0 {
		return ""
	}
	return "  FAILED: " + strings.Join(p, "; ")
}

func orOK(s string) string {
	if s == "" {
		return "ok"
	}
	return s
}
