package segment

import (
	"fmt"
	"math/rand"
	"strings"
	"sync"
)

// EventKind says what an Event of a RecordingDevice is.
type EventKind uint8

// The kinds of recorded events.
const (
	EventWrite EventKind = iota + 1 // a WriteAt that succeeded
	EventSync                       // a Sync that succeeded: a barrier
	EventMark                       // a label the test added with Mark
)

// Event is one thing that happened to a RecordingDevice, in order.
type Event struct {
	Kind  EventKind
	Off   int64  // EventWrite: where
	Data  []byte // EventWrite: a private copy of what; never modified
	Label string // EventMark
}

// String describes the event in a few words.
func (e Event) String() string {
	switch e.Kind {
	case EventWrite:
		return fmt.Sprintf("write %d bytes at %d", len(e.Data), e.Off)
	case EventSync:
		return "sync"
	case EventMark:
		return "mark " + e.Label
	}
	return fmt.Sprintf("event kind %d", e.Kind)
}

// RecordingDevice wraps a Device and records every successful WriteAt (its
// offset and a copy of its bytes) and every successful Sync, in the order
// the wrapped device saw them, together with the labels a test adds with
// Mark. An ImageBuilder then derives from the record every image the disk
// could hold after a power loss at any point of the run.
//
// It is safe for concurrent use. Writes, syncs and marks are serialized, so
// the record's order is exactly the order in which they took effect on the
// wrapped device; reads are passed through without the lock.
type RecordingDevice struct {
	inner Device

	mu     sync.Mutex
	events []Event
}

var _ Device = (*RecordingDevice)(nil)

// NewRecordingDevice starts recording the writes and syncs made to inner.
func NewRecordingDevice(inner Device) *RecordingDevice {
	return &RecordingDevice{inner: inner}
}

// Inner returns the wrapped device.
func (r *RecordingDevice) Inner() Device { return r.inner }

// ReadAt implements Device.
func (r *RecordingDevice) ReadAt(p []byte, off int64) (int, error) {
	return r.inner.ReadAt(p, off)
}

// WriteAt implements Device. A write that fails is not recorded; one that
// succeeds is recorded with a copy of p.
func (r *RecordingDevice) WriteAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.inner.WriteAt(p, off)
	if n > 0 {
		r.events = append(r.events, Event{Kind: EventWrite, Off: off, Data: append([]byte(nil), p[:n]...)})
	}
	return n, err
}

// Sync implements Device. Only a Sync that succeeds is recorded.
func (r *RecordingDevice) Sync() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.inner.Sync()
	if err == nil {
		r.events = append(r.events, Event{Kind: EventSync})
	}
	return err
}

// Size implements Device.
func (r *RecordingDevice) Size() int64 { return r.inner.Size() }

// Close implements Device by closing the wrapped device. It is not recorded.
func (r *RecordingDevice) Close() error { return r.inner.Close() }

// Mark adds a label at this point of the record, between the device events
// that completed before and those that start after, and returns its index
// in Events.
func (r *RecordingDevice) Mark(label string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, Event{Kind: EventMark, Label: label})
	return len(r.events) - 1
}

// Len returns the number of events recorded so far.
func (r *RecordingDevice) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// Events returns the events recorded so far, in order. The slice is the
// caller's; the Data of write events is shared and must not be modified.
func (r *RecordingDevice) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Variant says which of the writes that were not yet made durable survive
// a crash, other than all of them. The zero Variant keeps them all.
//
// Positions count the writes pending at the crash point: the writes since
// the last Sync at or before it (see ImageBuilder.Pending), 0 the oldest.
type Variant struct {
	// Lost are the positions of pending writes that never reached the
	// disk.
	Lost []int
	// Torn, when TornLen is above 0, is the position of a pending write of
	// which only the first TornLen bytes reached the disk. (A tear that
	// keeps no byte is a loss: list it in Lost.)
	Torn    int
	TornLen int
}

func (v Variant) torn() bool { return v.TornLen > 0 }

// String describes the variant, for reproducers.
func (v Variant) String() string {
	var parts []string
	if len(v.Lost) > 0 {
		parts = append(parts, fmt.Sprintf("lost %v", v.Lost))
	}
	if v.torn() {
		parts = append(parts, fmt.Sprintf("torn #%d to %d bytes", v.Torn, v.TornLen))
	}
	if len(parts) == 0 {
		return "plain"
	}
	return strings.Join(parts, ", ")
}

// ImageBuilder derives crash images from the image a device held when
// recording began and the events recorded since.
//
// It keeps a cursor device with a prefix of the events applied, so asking
// for crash points in increasing order costs only the new events each time;
// going back restarts from the base. An ImageBuilder is not safe for
// concurrent use; use one per goroutine (they may share base and events).
type ImageBuilder struct {
	base     *MemDevice // every page durable; never modified
	events   []Event
	lastSync []int // lastSync[i]: index of the last Sync at or before event i, or -1

	cur *MemDevice // base with events[:pos] applied: writes pending, syncs committed
	pos int
}

// NewImageBuilder returns a builder for images derived from base, as it is
// now, and events. base is typically a Snapshot of the device taken before
// it was wrapped in a RecordingDevice; its current contents, pending writes
// included, count as durable.
func NewImageBuilder(base *MemDevice, events []Event) *ImageBuilder {
	snap := base.Snapshot()
	snap.commit()
	return newImageBuilder(snap, events)
}

// NewImageBuilderFromBytes is NewImageBuilder for a base image given as its
// bytes; the device size is len(image).
func NewImageBuilderFromBytes(image []byte, events []Event) *ImageBuilder {
	d := NewMemDevice(int64(len(image)))
	zero := make([]byte, memPageSize)
	for off := 0; off < len(image); off += memPageSize {
		p := image[off:min(off+memPageSize, len(image))]
		if string(p) != string(zero[:len(p)]) {
			d.apply(p, int64(off))
		}
	}
	d.commit()
	return newImageBuilder(d, events)
}

func newImageBuilder(base *MemDevice, events []Event) *ImageBuilder {
	b := &ImageBuilder{base: base, events: events, lastSync: make([]int, len(events))}
	last := -1
	for i, e := range events {
		if e.Kind == EventSync {
			last = i
		}
		b.lastSync[i] = last
	}
	b.reset()
	return b
}

func (b *ImageBuilder) reset() {
	b.cur = b.base.cloneDurable()
	b.pos = 0
}

// Events returns the events the builder works from.
func (b *ImageBuilder) Events() []Event { return b.events }

// LastSync returns the index of the last Sync event at or before event k,
// or -1 if there is none.
func (b *ImageBuilder) LastSync(k int) int {
	if k < 0 {
		return -1
	}
	return b.lastSync[k]
}

// Pending returns the indices of the write events that a crash right after
// event k may lose: every write after the last Sync at or before k, up to
// k. Variant positions index this list.
func (b *ImageBuilder) Pending(k int) []int {
	b.checkIndex(k)
	var out []int
	for i := b.LastSync(k) + 1; i <= k; i++ {
		if b.events[i].Kind == EventWrite {
			out = append(out, i)
		}
	}
	return out
}

func (b *ImageBuilder) checkIndex(k int) {
	if k < -1 || k >= len(b.events) {
		panic(fmt.Sprintf("segment: crash point %d outside events [-1, %d)", k, len(b.events)))
	}
}

// advance moves the cursor so that exactly events[:n] are applied.
func (b *ImageBuilder) advance(n int) {
	if n < b.pos {
		b.reset()
	}
	for ; b.pos < n; b.pos++ {
		switch e := b.events[b.pos]; e.Kind {
		case EventWrite:
			// The data is immutable, so the pending list may share it.
			b.cur.pending = append(b.cur.pending, memWrite{off: e.Off, data: e.Data})
			b.cur.apply(e.Data, e.Off)
		case EventSync:
			b.cur.commit()
		}
	}
}

// ImageAt returns a new MemDevice holding what the disk could hold after a
// power loss right after event k (k = -1: before the first event). Every
// write before the last Sync at or before k is kept; of the writes since,
// all are kept unless the variants say otherwise (several variants
// combine). The device is open, writable, and has no pending writes.
func (b *ImageBuilder) ImageAt(k int, variants ...Variant) *MemDevice {
	b.checkIndex(k)
	b.advance(k + 1)
	pending := b.cur.pending
	lost := make([]bool, len(pending))
	cut := make([]int, len(pending))
	for i := range cut {
		cut[i] = -1
	}
	for _, v := range variants {
		for _, p := range v.Lost {
			if p < 0 || p >= len(pending) {
				panic(fmt.Sprintf("segment: variant loses pending write %d of %d", p, len(pending)))
			}
			lost[p] = true
		}
		if v.torn() {
			if v.Torn < 0 || v.Torn >= len(pending) || v.TornLen > len(pending[v.Torn].data) {
				panic(fmt.Sprintf("segment: variant tears pending write %d of %d to %d bytes", v.Torn, len(pending), v.TornLen))
			}
			cut[v.Torn] = v.TornLen
		}
	}
	img := b.cur.cloneDurable()
	for i, w := range pending {
		switch {
		case lost[i]:
		case cut[i] >= 0:
			img.apply(w.data[:cut[i]], w.off)
		default:
			img.apply(w.data, w.off)
		}
	}
	img.commit()
	return img
}

// sectorCuts returns every length l in (0, len(data)) at which a write of
// data at off can be torn with whole sectors: off+l is sector aligned.
func sectorCuts(off int64, n int) []int {
	first := int((memSectorSize - off%memSectorSize) % memSectorSize)
	if first == 0 {
		first = memSectorSize
	}
	var cuts []int
	for l := first; l < n; l += memSectorSize {
		cuts = append(cuts, l)
	}
	return cuts
}

// TornVariants returns up to max variants in which write event k survives
// only in part, cut at 512-byte sector boundaries of the device: the first
// and last possible cuts and others spread evenly between. There are none
// if event k is not a write or is at most one sector long.
func (b *ImageBuilder) TornVariants(k, max int) []Variant {
	b.checkIndex(k)
	if k < 0 || b.events[k].Kind != EventWrite || max <= 0 {
		return nil
	}
	e := b.events[k]
	cuts := sectorCuts(e.Off, len(e.Data))
	pos := len(b.Pending(k)) - 1 // write k is the newest pending write
	var out []Variant
	for _, c := range spread(cuts, max) {
		out = append(out, Variant{Torn: pos, TornLen: c})
	}
	return out
}

// spread picks up to n elements of s, evenly spaced, first and last
// included.
func spread(s []int, n int) []int {
	if len(s) <= n {
		return s
	}
	if n == 1 {
		return s[:1]
	}
	out := make([]int, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, s[i*(len(s)-1)/(n-1)])
	}
	return out
}

// ReorderVariants returns up to max variants in which a subset of the
// writes pending at event k is lost, as a disk with a volatile cache may
// do. Subsets whose surviving writes are a prefix of the pending ones are
// left out: those images are the plain images of earlier events. When
// there are few enough subsets they are all returned, in a fixed order;
// otherwise a sample drawn from seed (and k), in which about one variant in
// four also tears one surviving write at a sector boundary.
func (b *ImageBuilder) ReorderVariants(k, max int, seed int64) []Variant {
	pend := b.Pending(k)
	n := len(pend)
	if n < 2 || max <= 0 {
		return nil
	}
	if n <= 12 && (1<<n)-(n+1) <= max {
		var out []Variant
		for mask := 1; mask < 1<<n; mask++ {
			if isLostSuffix(mask, n) {
				continue
			}
			out = append(out, Variant{Lost: maskPositions(mask, n)})
		}
		return out
	}
	rng := rand.New(rand.NewSource(seed ^ int64(k+1)*0x5851f42d4c957f2d))
	seen := map[string]bool{}
	var out []Variant
	for tries := 0; len(out) < max && tries < 20*max; tries++ {
		// Vary the loss rate so that both few and many losses are seen.
		rate := []float64{0.1, 0.3, 0.5, 0.8}[rng.Intn(4)]
		lost := make([]bool, n)
		var v Variant
		for i := range lost {
			if rng.Float64() < rate {
				lost[i] = true
				v.Lost = append(v.Lost, i)
			}
		}
		if isLostSuffixBools(lost) {
			continue
		}
		if rng.Intn(4) == 0 {
			var kept []int
			for i, l := range lost {
				if !l {
					kept = append(kept, i)
				}
			}
			p := kept[rng.Intn(len(kept))]
			w := b.events[pend[p]]
			if cuts := sectorCuts(w.Off, len(w.Data)); len(cuts) > 0 {
				v.Torn, v.TornLen = p, cuts[rng.Intn(len(cuts))]
			}
		}
		key := v.String()
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, v)
	}
	return out
}

// isLostSuffix reports whether the lost positions of mask (bit i: position
// i lost) are exactly the last few, so that the survivors are a prefix.
func isLostSuffix(mask, n int) bool {
	lost := make([]bool, n)
	for i := range lost {
		lost[i] = mask&(1<<i) != 0
	}
	return isLostSuffixBools(lost)
}

func isLostSuffixBools(lost []bool) bool {
	i := 0
	for i < len(lost) && !lost[i] {
		i++
	}
	for ; i < len(lost); i++ {
		if !lost[i] {
			return false
		}
	}
	return true
}

func maskPositions(mask, n int) []int {
	var out []int
	for i := 0; i < n; i++ {
		if mask&(1<<i) != 0 {
			out = append(out, i)
		}
	}
	return out
}
