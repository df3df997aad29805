package cleaner

import (
	"math/rand"
	"slices"
	"strings"
	"testing"
)

func policy(t *testing.T, name string) Policy {
	t.Helper()
	p, err := ByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ids(segs []Segment) []uint32 {
	var out []uint32
	for _, s := range segs {
		out = append(out, s.ID)
	}
	return out
}

func wantOrder(t *testing.T, what string, got []Segment, want ...uint32) {
	t.Helper()
	if !slices.Equal(ids(got), want) {
		t.Fatalf("%s: order %v, want %v", what, ids(got), want)
	}
}

// randomSegments are n segments of 1000 bytes with few distinct live
// byte counts and ages, so that ties are common.
func randomSegments(rng *rand.Rand, n int) []Segment {
	segs := make([]Segment, n)
	for i := range segs {
		segs[i] = Segment{ID: uint32(i), Live: int64(rng.Intn(5)) * 250, Size: 1000, LastSeq: uint64(rng.Intn(6)) * 20}
	}
	return segs
}

// ageOf is the age the policies give a segment: units written since its
// newest, plus one, and never less than 1.
func ageOf(s Segment, now uint64) float64 {
	if now <= s.LastSeq {
		return 1
	}
	return float64(now-s.LastSeq) + 1
}

func costBenefitScore(s Segment, now uint64) float64 {
	u := s.Utilization()
	return (1 - u) * ageOf(s, now) / (1 + u)
}

// checkSortedStable checks that out is cands ordered by key, ascending,
// with equal keys in their order in cands.
func checkSortedStable(t *testing.T, what string, cands, out []Segment, key func(Segment) float64) {
	t.Helper()
	if len(out) != len(cands) {
		t.Fatalf("%s: %d segments out of %d", what, len(out), len(cands))
	}
	pos := map[uint32]int{}
	for i, s := range cands {
		pos[s.ID] = i
	}
	seen := map[uint32]bool{}
	for i, s := range out {
		if _, ok := pos[s.ID]; !ok || seen[s.ID] {
			t.Fatalf("%s: segment %d is not one of the candidates or comes twice: %v", what, s.ID, ids(out))
		}
		seen[s.ID] = true
		if i == 0 {
			continue
		}
		a, b := out[i-1], s
		switch ka, kb := key(a), key(b); {
		case ka > kb:
			t.Fatalf("%s: segment %d (%v) before %d (%v): %v", what, a.ID, ka, b.ID, kb, ids(out))
		case ka == kb && pos[a.ID] > pos[b.ID]:
			t.Fatalf("%s: tie between %d and %d not kept in input order: %v", what, a.ID, b.ID, ids(out))
		}
	}
}

func TestUtilization(t *testing.T) {
	for _, c := range []struct {
		s    Segment
		want float64
	}{
		{Segment{Live: 0, Size: 1000}, 0},
		{Segment{Live: 250, Size: 1000}, 0.25},
		{Segment{Live: 1000, Size: 1000}, 1},
		{Segment{Live: 5000, Size: 1000}, 1}, // damaged usage: never above 1
		{Segment{Live: -5, Size: 1000}, 0},
		{Segment{Live: 0, Size: 0}, 1}, // no size: nothing to gain
	} {
		if got := c.s.Utilization(); got != c.want {
			t.Errorf("%+v: utilization %v, want %v", c.s, got, c.want)
		}
	}
}

func TestGreedyOrdersByLiveBytes(t *testing.T) {
	cands := []Segment{
		{ID: 1, Live: 500, Size: 1000, LastSeq: 1},
		{ID: 2, Live: 100, Size: 1000, LastSeq: 99},
		{ID: 3, Live: 300, Size: 1000, LastSeq: 2},
		{ID: 4, Live: 100, Size: 1000, LastSeq: 3},
		{ID: 5, Live: 0, Size: 1000, LastSeq: 100},
	}
	// Age plays no part; 2 and 4 tie and keep their order.
	wantOrder(t, "greedy", policy(t, Greedy).Rank(cands, 100), 5, 2, 4, 3, 1)

	rng := rand.New(rand.NewSource(1))
	for range 200 {
		cands := randomSegments(rng, rng.Intn(60))
		out := policy(t, Greedy).Rank(cands, 200)
		checkSortedStable(t, "greedy", cands, out, func(s Segment) float64 { return float64(s.Live) })
	}
}

func TestCostBenefitWeighsAgeAgainstUtilization(t *testing.T) {
	const now = 10000
	youngEmptier := Segment{ID: 1, Live: 100, Size: 1000, LastSeq: 9990} // u 0.1, age 11: 9
	oldFuller := Segment{ID: 2, Live: 500, Size: 1000, LastSeq: 9000}    // u 0.5, age 1001: 333.67
	cb := policy(t, CostBenefit)
	wantOrder(t, "cost-benefit, old and half full against young and nearly empty",
		cb.Rank([]Segment{youngEmptier, oldFuller}, now), 2, 1)
	// Greedy sees only the live bytes.
	wantOrder(t, "greedy, same segments", policy(t, Greedy).Rank([]Segment{youngEmptier, oldFuller}, now), 1, 2)

	// Not old enough to make up for being nearly full.
	nearlyFull := Segment{ID: 3, Live: 900, Size: 1000, LastSeq: 9900} // u 0.9, age 101: 5.32
	wantOrder(t, "cost-benefit, nearly full and older against young and nearly empty",
		cb.Rank([]Segment{nearlyFull, youngEmptier}, now), 1, 3)

	// A full segment gives nothing back, however old; a segment whose
	// newest unit is the log's (or newer) has age 1; no size counts as full.
	full := Segment{ID: 4, Live: 1000, Size: 1000, LastSeq: 0}
	fresh := Segment{ID: 5, Live: 0, Size: 1000, LastSeq: now + 5} // score 1
	sizeless := Segment{ID: 6, Live: 0, Size: 0, LastSeq: 0}
	wantOrder(t, "cost-benefit with a full, a fresh and a sizeless segment",
		cb.Rank([]Segment{full, fresh, sizeless, youngEmptier}, now), 1, 5, 4, 6)

	rng := rand.New(rand.NewSource(2))
	for range 200 {
		cands := randomSegments(rng, rng.Intn(60))
		out := cb.Rank(cands, 100)
		checkSortedStable(t, "cost-benefit", cands, out, func(s Segment) float64 { return -costBenefitScore(s, 100) })
	}
}

func TestAgeThresholdOldFirst(t *testing.T) {
	const now = 100
	cands := []Segment{
		{ID: 1, Live: 100, Size: 1000, LastSeq: 90}, // age 11, young
		{ID: 2, Live: 800, Size: 1000, LastSeq: 10}, // age 91, old
		{ID: 3, Live: 300, Size: 1000, LastSeq: 50}, // age 51, the median: old
		{ID: 4, Live: 0, Size: 1000, LastSeq: 95},   // age 6, young
		{ID: 5, Live: 300, Size: 1000, LastSeq: 20}, // age 81, old
	}
	at := policy(t, AgeThreshold)
	// Old ones emptiest first (3 and 5 tie and keep their order), then
	// the young ones emptiest first: the empty young segment 4 comes
	// after the nearly full old segment 2.
	wantOrder(t, "age-threshold", at.Rank(cands, now), 3, 5, 2, 4, 1)
	// With an even number the median is the upper middle age: 51 of
	// 6, 11, 51, 81.
	wantOrder(t, "age-threshold, four segments", at.Rank([]Segment{cands[0], cands[2], cands[3], cands[4]}, now), 3, 5, 4, 1)
	// All of one age: all old, emptiest first.
	same := []Segment{{ID: 1, Live: 3, LastSeq: 7}, {ID: 2, Live: 1, LastSeq: 7}, {ID: 3, Live: 2, LastSeq: 7}}
	wantOrder(t, "age-threshold, one age", at.Rank(same, now), 2, 3, 1)
	wantOrder(t, "age-threshold, one segment", at.Rank(cands[:1], now), 1)

	rng := rand.New(rand.NewSource(3))
	for range 200 {
		cands := randomSegments(rng, 1+rng.Intn(60))
		ages := make([]float64, len(cands))
		for i, s := range cands {
			ages[i] = ageOf(s, 100)
		}
		slices.Sort(ages)
		median := ages[len(ages)/2]
		old := func(s Segment) bool { return ageOf(s, 100) >= median }
		out := at.Rank(cands, 100)
		// Old before young, each part by live bytes.
		checkSortedStable(t, "age-threshold", cands, out, func(s Segment) float64 {
			if old(s) {
				return float64(s.Live)
			}
			return 1e9 + float64(s.Live)
		})
		if n := len(slices.DeleteFunc(slices.Clone(cands), func(s Segment) bool { return !old(s) })); n < (len(cands)+1)/2 {
			t.Fatalf("only %d of %d segments are at least the median age", n, len(cands))
		}
	}
}

func TestRankEmpty(t *testing.T) {
	for _, name := range Names() {
		p := policy(t, name)
		if out := p.Rank(nil, 10); len(out) != 0 {
			t.Errorf("%s ranks nothing as %v", name, out)
		}
		if out := p.Rank([]Segment{}, 10); len(out) != 0 {
			t.Errorf("%s ranks an empty list as %v", name, out)
		}
	}
}

// Rank leaves its input as it was and returns a list of its own.
func TestRankLeavesInputAlone(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	for _, name := range Names() {
		p := policy(t, name)
		for range 50 {
			cands := randomSegments(rng, 2+rng.Intn(10))
			before := slices.Clone(cands)
			out := p.Rank(cands, 150)
			if !slices.Equal(cands, before) {
				t.Fatalf("%s changed its input: %v, was %v", name, cands, before)
			}
			for i := range out {
				out[i].Live = -1
			}
			if !slices.Equal(cands, before) {
				t.Fatalf("%s returned its input's array", name)
			}
		}
	}
}

func TestByName(t *testing.T) {
	for _, name := range Names() {
		if p := policy(t, name); p.Name() != name {
			t.Errorf("ByName(%q) is %q", name, p.Name())
		}
	}
	if p := policy(t, ""); p.Name() != DefaultPolicy {
		t.Errorf(`ByName("") is %q, want the default %q`, p.Name(), DefaultPolicy)
	}
	if !slices.Contains(Names(), DefaultPolicy) {
		t.Errorf("the default policy %q is not one of %v", DefaultPolicy, Names())
	}
	for _, bad := range []string{"lru", "Greedy", " greedy", "cost_benefit"} {
		p, err := ByName(bad)
		if err == nil {
			t.Fatalf("ByName(%q) gave %q", bad, p.Name())
		}
		msg := err.Error()
		if !strings.Contains(msg, bad) {
			t.Errorf("the error %q does not name %q", msg, bad)
		}
		for _, name := range Names() {
			if !strings.Contains(msg, name) {
				t.Errorf("the error %q does not list %q", msg, name)
			}
		}
	}
}
