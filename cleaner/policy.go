package cleaner

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Segment is what victim selection knows of a segment: how many of its
// bytes are still needed (live blocks and table blocks), its size, and
// the sequence number of the newest unit written to it, the age of its
// data.
type Segment struct {
	ID      uint32
	Live    int64
	Size    int64
	LastSeq uint64
}

// Utilization is the share of the segment still needed, from 0 to 1.
func (s Segment) Utilization() float64 {
	if s.Size <= 0 {
		return 1
	}
	return min(max(float64(s.Live)/float64(s.Size), 0), 1)
}

// age is how many units the log has written since the segment's newest
// one (at least 1).
func (s Segment) age(now uint64) float64 {
	if now <= s.LastSeq {
		return 1
	}
	return float64(now-s.LastSeq) + 1
}

// A Policy orders candidate segments, best victim first. now is the
// log's current sequence number. It must not keep cands.
type Policy interface {
	Name() string
	Rank(cands []Segment, now uint64) []Segment
}

// The policies by name.
const (
	Greedy       = "greedy"
	CostBenefit  = "cost-benefit"
	AgeThreshold = "age-threshold"
)

// DefaultPolicy is the policy a volume uses unless told otherwise: the
// one with the lowest write cost in scripts/cleanbench (docs/PERFORMANCE.md).
const DefaultPolicy = CostBenefit

// Names lists the policies.
func Names() []string { return []string{Greedy, CostBenefit, AgeThreshold} }

// ByName returns the policy of that name ("" is the default).
func ByName(name string) (Policy, error) {
	switch name {
	case Greedy:
		return greedy{}, nil
	case CostBenefit, "":
		return costBenefit{}, nil
	case AgeThreshold:
		return ageThreshold{}, nil
	}
	return nil, fmt.Errorf("unknown cleaning policy %q (one of %s)", name, strings.Join(Names(), ", "))
}

// greedy takes the segments with the least live data first: the fewest
// bytes to copy for each segment freed, now.
type greedy struct{}

func (greedy) Name() string { return Greedy }

func (greedy) Rank(cands []Segment, now uint64) []Segment {
	out := slices.Clone(cands)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Live < out[j].Live })
	return out
}

// costBenefit is Sprite LFS's rule (Rosenblum and Ousterhout, 1992): the
// space a segment gives back, weighted by how long it has stayed
// unchanged, over the cost of reading it and writing its live data,
// (1-u)·age/(1+u). Old data is cold: it is unlikely to die soon, so its
// segments are worth cleaning at a higher utilization than hot ones,
// which empty themselves if left alone.
type costBenefit struct{}

func (costBenefit) Name() string { return CostBenefit }

func (costBenefit) Rank(cands []Segment, now uint64) []Segment {
	out := slices.Clone(cands)
	score := func(s Segment) float64 {
		u := s.Utilization()
		return (1 - u) * s.age(now) / (1 + u)
	}
	sort.SliceStable(out, func(i, j int) bool { return score(out[i]) > score(out[j]) })
	return out
}

// ageThreshold is after F2FS's age-threshold cleaning (ATGC): segments
// younger than a threshold are left alone, since their data is still
// dying; among the older ones the emptiest go first. The threshold is the
// median age of the candidates, so half of them are always eligible; the
// young half follows, emptiest first, for when the old half is not enough.
type ageThreshold struct{}

func (ageThreshold) Name() string { return AgeThreshold }

func (ageThreshold) Rank(cands []Segment, now uint64) []Segment {
	if len(cands) == 0 {
		return nil
	}
	ages := make([]float64, len(cands))
	for i, s := range cands {
		ages[i] = s.age(now)
	}
	slices.Sort(ages)
	threshold := ages[len(ages)/2]
	var old, young []Segment
	for _, s := range cands {
		if s.age(now) >= threshold {
			old = append(old, s)
		} else {
			young = append(young, s)
		}
	}
	g := greedy{}
	return append(g.Rank(old, now), g.Rank(young, now)...)
}
