package cache

import "container/heap"

// lfu evicts the entry used least often since it came into the cache,
// the least recently used of those on a tie. Counts live as long as the
// entry (pinned time included); an entry that leaves starts again from
// one when it comes back. The entries are kept in a min-heap, so a hit
// costs O(log n).
type lfu struct {
	h    lfuHeap
	tick uint64
}

// NewLFU returns an empty least-frequently-used policy.
func NewLFU() Policy { return &lfu{} }

func (p *lfu) Name() string { return LFU }
func (p *lfu) Len() int     { return len(p.h) }

func (p *lfu) Add(e *Entry, weight int64) {
	mustBe(e, out, "Add")
	e.weight, e.state, e.freq = weight, listed, 1
	p.tick++
	e.seq = p.tick
	heap.Push(&p.h, e)
}

func (p *lfu) Hit(e *Entry) {
	if e.state == out {
		return
	}
	if e.freq < ^uint32(0) {
		e.freq++
	}
	p.tick++
	e.seq = p.tick
	if e.state == listed {
		heap.Fix(&p.h, e.index)
	}
}

func (p *lfu) Pin(e *Entry) {
	mustBe(e, listed, "Pin")
	heap.Remove(&p.h, e.index)
	e.state = pinned
}

func (p *lfu) Unpin(e *Entry, weight int64) {
	mustBe(e, pinned, "Unpin")
	e.weight, e.state = weight, listed
	heap.Push(&p.h, e)
}

func (p *lfu) Remove(e *Entry) {
	if e.state == listed {
		heap.Remove(&p.h, e.index)
	}
	e.state = out
}

func (p *lfu) Evict() *Entry {
	if len(p.h) == 0 {
		return nil
	}
	e := heap.Pop(&p.h).(*Entry)
	e.state = out
	return e
}

// lfuHeap orders entries by uses, then by last use.
type lfuHeap []*Entry

func (h lfuHeap) Len() int { return len(h) }
func (h lfuHeap) Less(i, j int) bool {
	if h[i].freq != h[j].freq {
		return h[i].freq < h[j].freq
	}
	return h[i].seq < h[j].seq
}
func (h lfuHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *lfuHeap) Push(x any) {
	e := x.(*Entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *lfuHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}
