package cache

// s3fifo is S3-FIFO (Yang et al., SOSP 2023), weighted by bytes: three
// FIFO queues. A new entry goes to the small queue (a tenth of the
// capacity); one used again while there moves on to the main queue when
// it reaches the tail, one that was not leaves and its key is remembered
// in the ghost queue. A key found in the ghost queue comes back straight
// into the main queue. The main queue's tail entry is reinserted at its
// head while it has uses left (each pass takes one, at most three), and
// leaves otherwise.
//
// So an entry used once, as by a scan, passes through the small queue
// only and cannot push out the main queue's entries, and a hit only
// counts (no list is touched under the owner's lock). Pinned entries are
// out of the queues; unpinned, they go back to the head of the queue they
// were in.
type s3fifo struct {
	capacity   int64
	small      list
	main       list
	ghost      map[uint64]uint64 // key -> its place in ghostQueue
	ghostQueue []ghostEntry      // oldest first from ghostStart
	ghostStart int
	ghostBytes int64
	ghostSeq   uint64
}

type ghostEntry struct {
	key    uint64
	weight int64
	seq    uint64
}

const (
	queueSmall uint8 = iota
	queueMain
)

// maxFreq is the most uses an S3-FIFO entry counts: as many passes
// through the main queue as it survives without a new use.
const maxFreq = 3

// NewS3FIFO returns an empty S3-FIFO policy for a cache of capacity bytes.
func NewS3FIFO(capacity int64) Policy {
	return &s3fifo{capacity: capacity, ghost: make(map[uint64]uint64)}
}

func (p *s3fifo) Name() string { return S3FIFO }
func (p *s3fifo) Len() int     { return p.small.n + p.main.n }

// smallTarget is the share of the capacity the small queue may take, and
// the ghost queue remembers keys up to what the rest may hold.
func (p *s3fifo) smallTarget() int64 { return p.capacity / 10 }

func (p *s3fifo) Add(e *Entry, weight int64) {
	mustBe(e, out, "Add")
	e.weight, e.state, e.freq = weight, listed, 0
	if _, ok := p.ghost[e.Key]; ok {
		delete(p.ghost, e.Key)
		e.queue = queueMain
		p.main.pushFront(e)
		return
	}
	e.queue = queueSmall
	p.small.pushFront(e)
}

func (p *s3fifo) Hit(e *Entry) {
	if e.state != out && e.freq < maxFreq {
		e.freq++
	}
}

func (p *s3fifo) queueOf(e *Entry) *list {
	if e.queue == queueMain {
		return &p.main
	}
	return &p.small
}

func (p *s3fifo) Pin(e *Entry) {
	mustBe(e, listed, "Pin")
	p.queueOf(e).remove(e)
	e.state = pinned
}

func (p *s3fifo) Unpin(e *Entry, weight int64) {
	mustBe(e, pinned, "Unpin")
	e.weight, e.state = weight, listed
	p.queueOf(e).pushFront(e)
}

func (p *s3fifo) Remove(e *Entry) {
	if e.state == listed {
		p.queueOf(e).remove(e)
	}
	e.state = out
}

func (p *s3fifo) Evict() *Entry {
	for p.small.n > 0 || p.main.n > 0 {
		// The small queue keeps at least its newest entry, so that it
		// has a chance of a second use when the queue's share is less
		// than one entry (a cache of a few nodes).
		if p.main.n == 0 || p.small.bytes > p.smallTarget() && p.small.n > 1 {
			e := p.small.tail
			p.small.remove(e)
			if e.freq > 0 {
				e.queue, e.freq = queueMain, 0
				p.main.pushFront(e)
				continue
			}
			p.remember(e)
			e.state = out
			return e
		}
		e := p.main.tail
		p.main.remove(e)
		if e.freq > 0 {
			e.freq--
			p.main.pushFront(e)
			continue
		}
		e.state = out
		return e
	}
	return nil
}

// remember puts the key of e, leaving from the small queue, in the ghost
// queue, forgetting the oldest keys beyond what the main queue may hold.
func (p *s3fifo) remember(e *Entry) {
	p.ghostSeq++
	p.ghost[e.Key] = p.ghostSeq
	p.ghostQueue = append(p.ghostQueue, ghostEntry{e.Key, e.weight, p.ghostSeq})
	p.ghostBytes += e.weight
	for p.ghostBytes > p.capacity-p.smallTarget() && p.ghostStart < len(p.ghostQueue) {
		g := p.ghostQueue[p.ghostStart]
		p.ghostStart++
		p.ghostBytes -= g.weight
		if p.ghost[g.key] == g.seq {
			delete(p.ghost, g.key)
		}
	}
	// Slide the live part down once the dead part is as long, so the
	// queue's memory stays within twice what it holds.
	if p.ghostStart > 64 && p.ghostStart >= len(p.ghostQueue)/2 {
		n := copy(p.ghostQueue, p.ghostQueue[p.ghostStart:])
		clear(p.ghostQueue[n:])
		p.ghostQueue, p.ghostStart = p.ghostQueue[:n], 0
	}
}
