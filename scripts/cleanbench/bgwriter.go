package main

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/txfs/txfs"
)

// bgWriter overwrites a file set in a goroutine, in chunks at random
// aligned places: as fast as it can until pace is called, then at rate
// bytes a second, until stop.
type bgWriter struct {
	set    *fileSet
	rate   int64
	halt   chan struct{}
	paced  chan struct{}
	done   chan struct{}
	halted sync.Once
	mu     sync.Mutex
	n      int64 // bytes written
	err    error
}

func startBgWriter(set *fileSet, chunk int, rate int64, seed uint64) *bgWriter {
	w := &bgWriter{set: set, rate: rate, halt: make(chan struct{}), paced: make(chan struct{}), done: make(chan struct{})}
	go w.run(chunk, seed)
	return w
}

func (w *bgWriter) run(chunk int, seed uint64) {
	defer close(w.done)
	rng := rand.NewChaCha8(chachaKey("latency background", seed))
	r := rand.New(rand.NewPCG(seed, 2))
	buf := make([]byte, chunk)
	var start time.Time
	var n, base int64
	for {
		select {
		case <-w.halt:
			return
		default:
		}
		k, err := w.set.overwrite(r, rng, buf, 0)
		w.mu.Lock()
		w.n += int64(k)
		w.err = err
		w.mu.Unlock()
		if err != nil {
			return
		}
		n += int64(k)
		select {
		case <-w.paced:
			if start.IsZero() {
				start, base = time.Now(), n
			}
			due := time.Duration(float64(n-base) / float64(w.rate) * float64(time.Second))
			if ahead := due - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		default:
		}
	}
}

// pace makes the writer keep to its rate from now on.
func (w *bgWriter) pace() { close(w.paced) }

// written is the bytes written so far (0 for no writer).
func (w *bgWriter) written() int64 {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// failed is the error that stopped the writer, if one did.
func (w *bgWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// stop ends the writer, waits for it and returns what stopped it early.
func (w *bgWriter) stop() error {
	w.halted.Do(func() { close(w.halt) })
	<-w.done
	return w.failed()
}

// sampler looks at the cleaner every 20 ms: whether a batch is under way,
// and how many segments are free.
type sampler struct {
	v                *txfs.Volume
	halt, done       chan struct{}
	samples, busy    int
	freeMin, freeMax int
}

func startSampler(v *txfs.Volume, free int) *sampler {
	s := &sampler{v: v, halt: make(chan struct{}), done: make(chan struct{}), freeMin: free, freeMax: free}
	go s.run()
	return s
}

func (s *sampler) run() {
	defer close(s.done)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.halt:
			return
		case <-t.C:
		}
		st, err := s.v.Status()
		if err != nil {
			continue
		}
		s.samples++
		if st.Cleaner.State == "cleaning" {
			s.busy++
		}
		s.freeMin, s.freeMax = min(s.freeMin, st.FreeSegments), max(s.freeMax, st.FreeSegments)
	}
}

// stop ends the sampling; its results may be read after.
func (s *sampler) stop() {
	select {
	case <-s.halt:
	default:
		close(s.halt)
	}
	<-s.done
}

func (s *sampler) busyShare() float64 {
	if s.samples == 0 {
		return 0
	}
	return float64(s.busy) / float64(s.samples)
}

// chachaKey makes the key of a random stream from a name and the seed.
func chachaKey(name string, seed uint64) [32]byte {
	var key [32]byte
	copy(key[:], fmt.Sprintf("%d %s", seed, name))
	return key
}
