package txfs

import (
	"math/rand/v2"
	"testing"
)

// Found by scripts/cleanbench (docs/PERFORMANCE.md, "Cleaner write cost").

// overwriteSet fills a volume of size bytes in segments of seg bytes to
// pct percent of what statfs says it can take, in files of 256 KiB, and
// overwrites them with 4 KiB writes at random aligned places, rounds
// times the set's size over.
func overwriteSet(t *testing.T, size int64, seg uint32, o Options, pct, rounds int) *Volume {
	t.Helper()
	v, _ := newSmallVolume(t, size, seg, o)
	r := rand.New(rand.NewPCG(7, 8))
	const file = 256 << 10
	n := int(usable(t, v) * int64(pct) / 100 / file)
	fs := newFileSet(t, v, r, "f", n, file)
	const chunk = 4 << 10
	total := rounds * n * file / chunk
	for i := range total {
		if err := fs.overwrite(r, chunk, 0, 0); err != nil {
			st, _ := v.Status()
			sf, _ := v.Statfs()
			t.Fatalf("overwrite %d of %d at %d%%: %v (statfs free %d blocks; %+v)", i+1, total, pct, err, sf.Bavail, st)
		}
	}
	fs.verify(t)
	return v
}

// Overwrites of a file set at 80% of what statfs reports never meet
// ENOSPC, whatever the policy: statfs counts as free what the cleaner can
// give back, and a writer short of space cleans.
func TestCleanerPoliciesOverwriteEightyPercent(t *testing.T) {
	for _, policy := range []string{"greedy", "cost-benefit", "age-threshold"} {
		t.Run(policy, func(t *testing.T) {
			overwriteSet(t, 16<<20, 256<<10, Options{Cleaner: CleanerOptions{Policy: policy}}, 80, 1)
		})
	}
}

// A segment the cleaner empties is counted once: it must be written
// again before it can be emptied again, so the count cannot pass the
// segments written plus those the volume has.
func TestCleanerCountsEachSegmentOnce(t *testing.T) {
	v := overwriteSet(t, 16<<20, 256<<10, Options{Cleaner: CleanerOptions{Policy: "greedy"}}, 85, 2)
	st, err := v.Status()
	if err != nil {
		t.Fatal(err)
	}
	most := uint64(st.Cleaner.DeviceBytes/int64(st.SegmentSize)) + uint64(st.Segments)
	if st.Cleaner.SegmentsCleaned > most {
		t.Fatalf("%d segments counted emptied, but only %d were written or held data: %+v", st.Cleaner.SegmentsCleaned, most, st.Cleaner)
	}
}

// The cleaner works beside the checkpoints the checkpointer takes without
// a data race (this test is for -race): checkpoints every 512 KiB of log,
// and the cleaner at work all along.
func TestCleanerBesideCheckpointer(t *testing.T) {
	v, _ := newSmallVolume(t, 16<<20, 256<<10, Options{CheckpointBytes: 512 << 10})
	r := rand.New(rand.NewPCG(9, 10))
	const file = 256 << 10
	n := int(usable(t, v) * 80 / 100 / file)
	fs := newFileSet(t, v, r, "f", n, file)
	const chunk = 16 << 10
	total := n * file / chunk
	for i := range total {
		if err := fs.overwrite(r, chunk, 0, 0); err != nil {
			t.Fatalf("overwrite %d of %d: %v", i+1, total, err)
		}
	}
	fs.verify(t)
}
