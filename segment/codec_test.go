package segment

import (
	"math/rand"
	"testing"
)

// TestLooksRandomCountsDistinct: looksRandom says "random" exactly when
// the first 256 bytes hold more than 128 distinct values, also at the
// boundary, whatever comes after them.
func TestLooksRandomCountsDistinct(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for distinct := 1; distinct <= 256; distinct++ {
		for range 4 {
			b := make([]byte, 4096)
			rng.Read(b[256:])
			values := rng.Perm(256)[:distinct]
			for i := range 256 {
				if i < distinct {
					b[i] = byte(values[i])
				} else {
					b[i] = byte(values[rng.Intn(distinct)])
				}
			}
			rng.Shuffle(256, func(i, j int) { b[i], b[j] = b[j], b[i] })
			if got, want := looksRandom(b), distinct > 128; got != want {
				t.Fatalf("%d distinct values: looksRandom %v, want %v", distinct, got, want)
			}
		}
	}
}

// BenchmarkLooksRandom: the test runs once per block written with
// compression on.
func BenchmarkLooksRandom(b *testing.B) {
	buf := make([]byte, 4096)
	rand.New(rand.NewSource(1)).Read(buf)
	for range b.N {
		looksRandom(buf)
	}
}
