package segment

import (
	"errors"
	"math/rand"
	"os"
	"sync"
	"time"
)

// memPageSize is the allocation unit of a MemDevice. Pages are allocated on
// first write, so a mostly empty 1 GiB test volume costs little memory.
const memPageSize = 4096

// memSectorSize is the unit a torn write may be cut at when the cut is
// sector aligned: disks write whole sectors atomically or not at all.
const memSectorSize = 512

// errInjectedFault is what FailAfter injects when no error is given.
var errInjectedFault = errors.New("segment: injected device fault")

// memWrite is one WriteAt that has not been made durable by Sync yet.
type memWrite struct {
	off  int64
	data []byte // a private copy, never modified, so devices may share it
}

// CrashOptions chooses which of the writes issued since the last Sync
// survive a simulated power loss (see MemDevice.Crash).
type CrashOptions struct {
	// KeepPrefix is the number of unsynced writes, in issue order, that
	// survive completely; the rest are lost. A negative value (-1) chooses
	// it at random in [0, n] for n unsynced writes; values above n mean n.
	KeepPrefix int
	// TearLast makes the write right after the kept prefix, if any, survive
	// partially: a random-length prefix of it, cut at a 512-byte sector
	// boundary or at any byte (chosen at random). The prefix may be empty.
	TearLast bool
	// Reorder ignores KeepPrefix: every unsynced write independently
	// survives or is lost, as a disk with a volatile cache may do. With
	// TearLast, any of them may also survive torn.
	Reorder bool
}

// MemDevice is an in-memory Device for tests that can simulate a crash
// (power loss), modelled after pebble's vfs.NewCrashableMem.
//
// It keeps a durable image and, separately, the writes issued since the last
// Sync, in order. Reads see every write; Crash derives the image a disk could
// hold after losing power now, by applying a subset of the pending writes to
// the durable image.
//
// Pages of the durable image are copy-on-write: once a page is durable it is
// never modified in place, only replaced. That lets Crash and Snapshot share
// pages with the receiver instead of copying the whole volume each time.
type MemDevice struct {
	size int64

	mu      sync.RWMutex
	durable map[int64][]byte // page index -> page, as of the last Sync; pages are immutable
	dirty   map[int64][]byte // page index -> current page, for pages written since the last Sync; owned by this device
	pending []memWrite       // writes since the last Sync, in order

	closed    bool
	readOnly  bool
	failAfter int   // writes left before faults begin; negative: no fault injection
	failErr   error // what writes and syncs return once failAfter reaches 0
	writes    int   // WriteAt calls
	syncs     int   // Sync calls
}

var _ Device = (*MemDevice)(nil)

// NewMemDevice returns a zero-filled memory device of size bytes.
func NewMemDevice(size int64) *MemDevice {
	if size < 0 {
		panic("segment: negative MemDevice size")
	}
	return &MemDevice{
		size:      size,
		durable:   make(map[int64][]byte),
		dirty:     make(map[int64][]byte),
		failAfter: -1,
	}
}

// ReadAt implements Device. It returns the current contents: the durable
// image with every pending write applied.
func (d *MemDevice) ReadAt(p []byte, off int64) (int, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return 0, os.ErrClosed
	}
	n, err := clampRead(off, len(p), d.size)
	d.read(p[:n], off)
	return n, err
}

// read copies the current contents at off into p, which must be in range.
func (d *MemDevice) read(p []byte, off int64) {
	for len(p) > 0 {
		idx, in := off/memPageSize, int(off%memPageSize)
		page, ok := d.dirty[idx]
		if !ok {
			page = d.durable[idx]
		}
		var n int
		if page == nil {
			n = min(len(p), memPageSize-in)
			clear(p[:n]) // never written: zeros
		} else {
			n = copy(p, page[in:])
		}
		p, off = p[n:], off+int64(n)
	}
}

// WriteAt implements Device. The write is visible to reads at once but only
// becomes durable at the next Sync.
func (d *MemDevice) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writes++
	if d.closed {
		return 0, os.ErrClosed
	}
	if d.readOnly {
		return 0, errDeviceReadOnly
	}
	if d.failAfter == 0 {
		return 0, d.failErr
	}
	if err := checkWriteRange(off, len(p), d.size); err != nil {
		return 0, err
	}
	if d.failAfter > 0 {
		d.failAfter--
	}
	if len(p) == 0 {
		return 0, nil
	}
	w := memWrite{off: off, data: append([]byte(nil), p...)}
	d.pending = append(d.pending, w)
	d.apply(w.data, w.off)
	return len(p), nil
}

// apply writes data at off into the dirty pages, copying durable pages
// before their first modification.
func (d *MemDevice) apply(data []byte, off int64) {
	for len(data) > 0 {
		idx, in := off/memPageSize, int(off%memPageSize)
		page, ok := d.dirty[idx]
		if !ok {
			page = make([]byte, memPageSize)
			copy(page, d.durable[idx])
			d.dirty[idx] = page
		}
		n := copy(page[in:], data)
		data, off = data[n:], off+int64(n)
	}
}

// Sync implements Device: every pending write becomes durable.
func (d *MemDevice) Sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.syncs++
	if d.closed {
		return os.ErrClosed
	}
	if d.failAfter == 0 {
		return d.failErr
	}
	d.commit()
	return nil
}

// commit moves the dirty pages into the durable image. From here on they
// are shared-immutable: the next write to them copies them again.
func (d *MemDevice) commit() {
	for idx, page := range d.dirty {
		d.durable[idx] = page
	}
	d.dirty = make(map[int64][]byte)
	d.pending = nil
}

// Size implements Device.
func (d *MemDevice) Size() int64 { return d.size }

// Close implements Device. Reads, writes and syncs fail with os.ErrClosed
// afterwards, but the contents are kept: Crash, Snapshot and Bytes still
// work, so a test can examine a device after the code under test closed it.
func (d *MemDevice) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return os.ErrClosed
	}
	d.closed = true
	return nil
}

// Crash returns a new MemDevice holding what the disk could hold after a
// power loss now: the durable image plus the pending writes that opt and rng
// let survive. The receiver is unchanged, so a test can take many crash
// images from one run. The new device has no pending writes, is open and
// writable, and has no fault injection. A nil rng means a time-seeded one.
func (d *MemDevice) Crash(opt CrashOptions, rng *rand.Rand) *MemDevice {
	if rng == nil {
		rng = rand.New(rand.NewSource(time.Now().UnixNano()))
	}
	d.mu.RLock()
	img := d.cloneDurable()
	pending := d.pending // never modified in place: WriteAt appends, Sync replaces
	d.mu.RUnlock()

	if opt.Reorder {
		for _, w := range pending {
			choices := 2 // lost, survives
			if opt.TearLast {
				choices = 3 // ..., torn
			}
			switch rng.Intn(choices) {
			case 1:
				img.apply(w.data, w.off)
			case 2:
				img.apply(w.data[:tornLength(w, rng)], w.off)
			}
		}
	} else {
		keep := opt.KeepPrefix
		if keep < 0 {
			keep = rng.Intn(len(pending) + 1)
		}
		keep = min(keep, len(pending))
		for _, w := range pending[:keep] {
			img.apply(w.data, w.off)
		}
		if opt.TearLast && keep < len(pending) {
			w := pending[keep]
			img.apply(w.data[:tornLength(w, rng)], w.off)
		}
	}
	img.commit()
	return img
}

// tornLength picks how much of w survives a torn write: fewer than all of
// its bytes, cut either at a sector boundary of the device (what a disk with
// atomic sectors does) or at any byte (what a file on a host filesystem, or
// a disk without atomic sectors, may do).
func tornLength(w memWrite, rng *rand.Rand) int {
	n := len(w.data)
	if n <= 1 {
		return 0
	}
	if rng.Intn(2) == 0 {
		return rng.Intn(n)
	}
	// Candidate cuts: 0, and every l in (0, n) with off+l sector aligned.
	first := int((memSectorSize - w.off%memSectorSize) % memSectorSize)
	if first == 0 {
		first = memSectorSize
	}
	cuts := 1
	if first < n {
		cuts += (n-1-first)/memSectorSize + 1
	}
	k := rng.Intn(cuts)
	if k == 0 {
		return 0
	}
	return first + (k-1)*memSectorSize
}

// cloneDurable returns a new device with the receiver's durable image and
// no pending writes. The caller must hold d.mu.
func (d *MemDevice) cloneDurable() *MemDevice {
	c := NewMemDevice(d.size)
	c.durable = make(map[int64][]byte, len(d.durable))
	for idx, page := range d.durable {
		c.durable[idx] = page // shared: durable pages are never modified
	}
	return c
}

// Snapshot returns a full copy of the device, with the pending writes still
// pending, so the copy can later be crashed or synced independently. Like
// Crash, the copy is open, writable and free of fault injection, with zero
// counters.
func (d *MemDevice) Snapshot() *MemDevice {
	d.mu.RLock()
	defer d.mu.RUnlock()
	c := d.cloneDurable()
	for idx, page := range d.dirty {
		c.dirty[idx] = append([]byte(nil), page...) // dirty pages are mutable: copy
	}
	c.pending = append([]memWrite(nil), d.pending...)
	return c
}

// Bytes returns a copy of the current contents, pending writes included.
func (d *MemDevice) Bytes() []byte {
	d.mu.RLock()
	defer d.mu.RUnlock()
	b := make([]byte, d.size)
	d.read(b, 0)
	return b
}

// PendingWrites returns the number of writes issued since the last Sync.
func (d *MemDevice) PendingWrites() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.pending)
}

// FailAfter injects a fault: after nWrites more successful writes, every
// WriteAt and Sync fails with err and has no effect, as if the disk died.
// Reads keep working. The fault stays until FailAfter(-1, nil) disables it.
// A nil err with nWrites >= 0 injects a generic error.
func (d *MemDevice) FailAfter(nWrites int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if nWrites < 0 {
		d.failAfter, d.failErr = -1, nil
		return
	}
	if err == nil {
		err = errInjectedFault
	}
	d.failAfter, d.failErr = nWrites, err
}

// SetReadOnly makes writes fail (with an error matching os.ErrPermission)
// while ro is true. Syncs still succeed: there is nothing new to flush.
func (d *MemDevice) SetReadOnly(ro bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.readOnly = ro
}

// WriteCount returns the number of WriteAt calls so far, failed ones included.
func (d *MemDevice) WriteCount() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.writes
}

// SyncCount returns the number of Sync calls so far, failed ones included.
func (d *MemDevice) SyncCount() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.syncs
}
