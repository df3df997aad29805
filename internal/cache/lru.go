package cache

// lru evicts the entry used least recently. A hit moves an entry to the
// head of one list; an unpinned entry comes back at the head, as used
// just now.
type lru struct{ l list }

// NewLRU returns an empty least-recently-used policy.
func NewLRU() Policy { return &lru{} }

func (p *lru) Name() string { return LRU }
func (p *lru) Len() int     { return p.l.n }

func (p *lru) Add(e *Entry, weight int64) {
	mustBe(e, out, "Add")
	e.weight, e.state = weight, listed
	p.l.pushFront(e)
}

func (p *lru) Hit(e *Entry) {
	if e.state == listed && p.l.head != e {
		p.l.remove(e)
		p.l.pushFront(e)
	}
}

func (p *lru) Pin(e *Entry) {
	mustBe(e, listed, "Pin")
	p.l.remove(e)
	e.state = pinned
}

func (p *lru) Unpin(e *Entry, weight int64) {
	mustBe(e, pinned, "Unpin")
	e.weight, e.state = weight, listed
	p.l.pushFront(e)
}

func (p *lru) Remove(e *Entry) {
	if e.state == listed {
		p.l.remove(e)
	}
	e.state = out
}

func (p *lru) Evict() *Entry {
	e := p.l.tail
	if e != nil {
		p.l.remove(e)
		e.state = out
	}
	return e
}
