// Package txfs is a transactional, log-structured filesystem volume: the
// POSIX-shaped API (Lookup, Create, Read, Write, Rename...) over the log of
// segments, usable without FUSE. Every operation is one atomic transaction
// whose records and data blocks travel in one log unit; one writer
// goroutine packs the transactions that have arrived into units (group
// commit); checkpoints write the metadata dirtied since the last one; Open
// recovers from the newest checkpoint by replaying every whole unit after
// it. The metadata are the items of package inode in the tree of package
// btree. See docs/DESIGN.md and docs/FORMAT.md.
package txfs

import (
	"crypto/rand"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/cow"
	"github.com/txfs/txfs/inode"
	"github.com/txfs/txfs/internal/corrupt"
	"github.com/txfs/txfs/journal"
	"github.com/txfs/txfs/segment"
)

// FormatOptions are the choices of mkfs.
type FormatOptions struct {
	BlockSize   uint32 // 0: 4096
	SegmentSize uint32 // 0: chosen from the device size
	NoCompress  bool   // store every block raw
	Label       string // at most 32 bytes
}

// Options are the choices of Open.
type Options struct {
	ReadOnly bool
	// CheckpointBytes is how much log may be written before a checkpoint
	// is taken (it bounds recovery time). 0: 32 MiB.
	CheckpointBytes int64
	// CheckpointInterval is the longest time between checkpoints while
	// the volume changes. 0: 30 s.
	CheckpointInterval time.Duration
	// CacheBytes is the memory budget: it bounds the metadata caches, the
	// dirty metadata a checkpoint has yet to write and the units waiting
	// for the device, together (memory.go). 0: DefaultCacheBytes (64
	// MiB); less than MinCacheBytes (4 MiB) counts as that.
	CacheBytes int64
	// NoAtime: reads never update access times. Otherwise they follow
	// relatime (atime.go).
	NoAtime bool
	// LogDamage says what to do with a log that is damaged, not merely
	// torn by a power cut (damage.go). By default a read-write Open
	// refuses it.
	LogDamage LogPolicy
	// Log, if set, is told every decision recovery takes: the checkpoint it
	// starts from, each unit it replays or skips, and why the log ends.
	Log func(format string, args ...any)
	// OnStop, if set, is told once why the volume stopped writing: a
	// device error, corruption (with where it was found), an operation
	// that failed halfway. It runs with the volume's lock held: it must
	// not call the volume.
	OnStop func(err error)
	// Cleaner sets the segment cleaner (clean.go).
	Cleaner CleanerOptions
}

func (v *Volume) logf(format string, args ...any) {
	if v.opts.Log != nil {
		v.opts.Log(format, args...)
	}
}

const (
	maxUnitBytes     = segment.MaxPooledUnit
	defaultCkptBytes = 32 << 20
)

// Volume is an open txfs volume. All methods are safe for concurrent use.
type Volume struct {
	dev      segment.Device
	sb       *segment.Superblock
	sbSlot   int
	geo      segment.Geometry
	bs       int
	compress bool
	ro       bool
	opts     Options
	mem      budget // the shares of Options.CacheBytes

	mu      sync.Mutex
	changed *sync.Cond // durable progress, queue space, checkpoint done
	wake    *sync.Cond // wakes the writer

	tree    *btree.Tree
	dat     *cow.DAT
	sut     *segment.Usage
	blocks  *cow.Blocks // block accounting: DAT entries and live bytes change only through it
	nextIno uint64
	ckptNo  uint64

	log *journal.Log // the log head, the writer and the free segments

	lastCkpt time.Time
	// ckptInflight bounds what the checkpoint being written would cost
	// recovery to write again (space.go).
	ckptInflight int64
	// stopping: Close is taking its last checkpoint; no transaction may
	// follow it, so that the superblock can say the volume closed cleanly.
	stopping bool

	inoSeq map[Ino]uint64 // newest unit that changed an inode, until durable
	opens  map[Ino]int
	// deferred are orphans and interrupted truncates left for lack of
	// space, finished after a later checkpoint (retryDeferred).
	deferred map[Ino]bool

	err       error // first device or corruption error: the volume stops writing
	closed    bool
	done      chan struct{}
	ckptMu    sync.Mutex
	clean     cleanState // the segment cleaner (clean.go)
	closeDev  bool       // Close closes the device (OpenPath opened it)
	warnings  []string   // damage Open found and worked around, for the checker
	damage    *LogDamage // damage in the log Open found and left in place (read-only)
	accepted  bool       // Open dropped or salvaged damage: checkpoint at once
	ckptFreed []uint64   // tree nodes the running checkpoint dropped, freed once it is durable
	opened    []string   // what Open repaired: orphans freed, truncates finished
	changes   int64      // transactions committed since the last checkpoint began
	scratch   []byte     // one block, for building blocks under the lock
	packed    []byte     // one block, for compressing blocks under the lock

	// snaps are the snapshots (snapshot.go); snapTable the blocks of
	// their table in the last checkpoint; snapDirty: the next checkpoint
	// writes the table.
	snaps      []snapshot
	snapTable  []uint64
	snapDirty  bool
	frozen     bool                     // a snapshot operation's checkpoint is on its way: no transaction begins
	views      map[string]*SnapshotView // the snapshots opened for reading (snapview.go)
	onSnapshot func(op, name string)    // told of snapshots deleted and restored

	readRetries atomic.Int64 // reads redone under the lock (errMoved)
	ckpter      checkpointerState
	metrics     *volumeMetrics // its Prometheus registry (metrics.go)
}

// Format writes an empty volume onto dev: an empty root directory, its
// first checkpoint and both superblocks.
func Format(dev segment.Device, o FormatOptions) error {
	geo, err := segment.GeometryFor(dev.Size(), o.BlockSize, o.SegmentSize)
	if err != nil {
		return err
	}
	if len(o.Label) > segment.LabelSize {
		return fmt.Errorf("%w: label longer than %d bytes", ErrInvalid, segment.LabelSize)
	}
	sb := &segment.Superblock{Version: segment.FormatVersion, Label: o.Label, Geometry: geo,
		DeviceSize: uint64(dev.Size()), Created: time.Now().UnixNano()}
	if !o.NoCompress {
		sb.Flags |= segment.SuperCompress
	}
	if _, err := rand.Read(sb.UUID[:]); err != nil {
		return err
	}
	sb.UUID[6] = sb.UUID[6]&0x0f | 0x40 // version 4
	sb.UUID[8] = sb.UUID[8]&0x3f | 0x80 // RFC 4122 variant
	// Invalidate any older superblocks first (slot 1 of a volume with any
	// block size), so a failed format never leaves an older volume that
	// looks whole.
	zero := make([]byte, segment.MaxBlockSize+segment.CopyOffset+segment.SuperSize)
	if _, err := dev.WriteAt(zero, 0); err != nil {
		return err
	}
	v := newVolume(dev, sb, 1, Options{})
	v.tree = btree.NewTree(v, btree.NilNode, v.bs, v.mem.tree)
	v.dat = cow.Open(cow.State{}, v.bs, v.log.ReadRaw, v.mem.tables)
	v.sut = segment.OpenUsage(geo.Segments, v.bs, segment.BlockPtr{}, 0, v.log.ReadRaw)
	v.blocks = cow.NewBlocks(geo, v.dat, v.sut)
	v.nextIno = RootIno + 1
	for s := geo.Segments; s > 2; s-- {
		v.log.Free = append(v.log.Free, s-1)
	}
	v.log.CurSeg, v.log.NextSeg = 0, 1
	v.log.Seq = 1
	v.log.Cur = v.log.NewUnit(segment.UnitOps, uint64(geo.SegmentOffset(0)))
	now := nowSpec()
	root := &inode.Record{Mode: syscall.S_IFDIR | 0o755, Nlink: 2, Atime: now, Mtime: now, Ctime: now}
	if err := v.tree.Put(inode.InodeKey(RootIno), root.Encode()); err != nil {
		return err
	}
	go v.log.Run(v.done)
	v.stopping = true // nothing follows the first checkpoint: the volume is clean
	v.changes = 1
	if err := v.checkpoint(); err != nil {
		v.stop()
		return err
	}
	v.stop()
	// The first checkpoint went to slot 0 (newVolume started at slot 1, so
	// the next slot is 0); write slot 1 as well so both slots are valid.
	sb2 := *v.sb
	sb2.Generation--
	if err := segment.WriteSuperblock(dev, &sb2, 1); err != nil {
		return err
	}
	return dev.Sync()
}

func newVolume(dev segment.Device, sb *segment.Superblock, slot int, o Options) *Volume {
	if o.CheckpointBytes == 0 {
		o.CheckpointBytes = defaultCkptBytes
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = 30 * time.Second
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	v := &Volume{dev: dev, sb: sb, sbSlot: slot, geo: sb.Geometry, bs: int(sb.Geometry.BlockSize),
		compress: sb.Flags&segment.SuperCompress != 0, ro: o.ReadOnly, opts: o,
		inoSeq: map[Ino]uint64{}, opens: map[Ino]int{}, deferred: map[Ino]bool{}, done: make(chan struct{}), lastCkpt: time.Now()}
	v.mem = newBudget(o.CacheBytes)
	v.ckpter.kick = make(chan struct{}, 1)
	v.changed = sync.NewCond(&v.mu)
	v.wake = sync.NewCond(&v.mu)
	v.metrics = newVolumeMetrics(v)
	v.log = v.newLog()
	v.log.KeepForCleaner = !o.ReadOnly
	v.setupCleaner()
	return v
}

// Open opens the volume on dev and recovers it: the newest checkpoint, then
// every whole log unit after it. Orphans (inodes unlinked while open) are
// freed. A read-only open recovers in memory and writes nothing.
func Open(dev segment.Device, o Options) (*Volume, error) {
	start := time.Now()
	sb, slot, err := segment.ReadSuperblock(dev)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIO, err)
	}
	if err := sb.CheckFeatures(o.ReadOnly); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotSupported, err)
	}
	if need := sb.Geometry.DeviceBytes(); dev.Size() < need {
		return nil, fmt.Errorf("%w: the device has %d bytes, the volume needs %d (truncated image?)", ErrIO, dev.Size(), need)
	}
	if err := checkCleanerOptions(o.Cleaner); err != nil {
		return nil, err
	}
	v := newVolume(dev, sb, slot, o)
	v.warnings = append(v.warnings, superblockWarnings(dev, sb.Geometry.BlockSize)...)
	replayed, err := v.recover()
	if err != nil {
		return nil, err
	}
	if v.damage != nil && !v.ro {
		return nil, fmt.Errorf("%w: %s; mount read-only to see the state before the damage, or repair it with fsck.txfs --repair",
			ErrLogDamaged, v.damage)
	}
	v.metrics.replayedUnits = replayed
	if v.ro {
		close(v.done)
		v.metrics.recoverySeconds = time.Since(start).Seconds()
		return v, nil
	}
	if err := v.markInUse(); err != nil {
		return nil, fmt.Errorf("%w: superblock: %v", ErrIO, err)
	}
	if v.accepted {
		v.changes++ // before the checkpointer runs: it reads changes
	}
	go v.log.Run(v.done)
	go v.checkpointer()
	if replayed > 0 || v.accepted {
		// First make what was replayed the checkpoint: it always fits
		// (space.go), and it gives back what the replayed deletes freed.
		if err := v.checkpoint(); err != nil {
			v.stop()
			return nil, err
		}
	}
	v.mu.Lock()
	did, err := v.freeOrphans()
	v.opened = append(v.opened, did...)
	v.mu.Unlock()
	if err != nil {
		v.stop()
		return nil, err
	}
	v.metrics.recoverySeconds = time.Since(start).Seconds()
	v.clean.started = true
	go v.cleanerLoop()
	return v, nil
}

// Close frees the orphans that open references still keep, takes a final
// checkpoint and stops the volume. Nothing can use those orphans once the
// volume is closed, and the references need not all come back (the kernel
// may drop its FORGETs at unmount), so a clean close leaves none behind
// for the next Open.
func (v *Volume) Close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return ErrClosed
	}
	var err error
	if v.writable() == nil {
		clear(v.opens)
		_, err = v.freeOrphans()
	}
	// No transaction may follow the last checkpoint, which tells the next
	// Open that nothing follows it in the log.
	v.stopping = true
	v.mu.Unlock()
	v.stopCleaner()
	if !v.ro {
		if cerr := v.checkpoint(); err == nil {
			err = cerr
		}
	}
	v.stop()
	if v.closeDev {
		if cerr := v.dev.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// stop ends the background goroutines after the queue is written.
func (v *Volume) stop() {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return
	}
	v.closed, v.log.Closing = true, true
	v.wake.Broadcast()
	v.changed.Broadcast()
	v.mu.Unlock()
	if !v.ro {
		<-v.done
	}
}

// fail records the first fatal error; later writes are refused.
func (v *Volume) fail(err error) error {
	if v.err == nil {
		v.err = fmt.Errorf("%w: %w", ErrIO, err)
		v.logf("the volume stops writing: %v", err)
		if v.opts.OnStop != nil {
			v.opts.OnStop(err)
		}
		v.changed.Broadcast()
		v.wake.Broadcast()
	}
	return v.err
}

func (v *Volume) usable() error {
	if v.closed {
		return ErrClosed
	}
	return v.err
}

func (v *Volume) writable() error {
	if err := v.usable(); err != nil {
		return err
	}
	if v.ro {
		return ErrReadOnly
	}
	return nil
}

// readBlock returns the raw content of virtual block vb, verified.
func (v *Volume) readBlock(vb uint64, dst []byte) ([]byte, error) {
	e, err := v.storedEntry(vb)
	if err != nil {
		return nil, err
	}
	stored := make([]byte, e.Len)
	if err := v.log.ReadRaw(e.Addr, stored); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIO, err)
	}
	raw, err := segment.DecodeBlock(stored, uint8(e.Flags), e.Sum, v.bs, dst)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIO, corrupt.Locate(err, corrupt.Location{Addr: e.Addr, Block: vb}))
	}
	return raw, nil
}

// LoadNode gives the metadata tree its nodes (btree.Store).
func (v *Volume) LoadNode(id btree.NodeID) ([]byte, error) {
	return v.readBlock(uint64(id), nil)
}

// --- transactions ------------------------------------------------------

// tx is one atomic operation being built. It mutates the in-memory state
// as it goes and appends its blocks to cur; its records join cur when it
// commits. begin reserved the room, so nothing else enters cur meanwhile
// (the volume lock is held from begin to commit).
type tx struct {
	v       *Volume
	rec     journal.Writer
	touched []Ino
	changed bool // the in-memory state holds some of its changes
}

// Operation codes in Op records (for tools; replay does not need them).
// Part of the on-disk format (docs/FORMAT.md): explicit numbers, never
// renumbered.
const (
	opCreate        = 1 // O_TMPFILE uses it too
	opMkdir         = 2
	opMknod         = 3
	opSymlink       = 4
	opLink          = 5
	opUnlink        = 6
	opRmdir         = 7
	opRename        = 8
	opWrite         = 9
	opSetAttr       = 10 // setting inode flags too
	opSetXattr      = 11
	opRemoveXattr   = 12
	opFreeInode     = 13
	opPunch         = 14
	opCopyRange     = 15
	opRepair        = 16
	opZeroRange     = 17
	opCollapseRange = 18
	opInsertRange   = 19
	opRangeStep     = 20 // a later transaction of a range operation (rangeop.go)
)

// begin starts a transaction of footprint f, once the log has room for it
// and for everything it leaves to the next checkpoint (space.go). When it
// does not, a checkpoint may make room: it writes the dirty metadata for
// less than its bound and gives back the segments deletes emptied; then
// the cleaner may, by emptying segments that still hold live blocks.
func (v *Volume) begin(op int, f footprint) (*tx, error) {
	if err := v.writable(); err != nil {
		return nil, err
	}
	if v.stopping {
		return nil, ErrClosed
	}
	for v.frozen && v.err == nil && !v.closed {
		v.changed.Wait()
	}
	if err := v.writable(); err != nil {
		return nil, err
	}
	if err := v.relieveMemory(); err != nil {
		return nil, err
	}
	best, stalled := int64(math.MinInt64), 0
	for tries := 0; !v.admits(f); tries++ {
		// First a checkpoint, if one can help; then the cleaner, for as
		// long as it empties segments.
		var err error
		if tries == 0 && v.checkpointHelps() {
			v.mu.Unlock()
			err = v.checkpoint()
			v.mu.Lock()
		} else if v.stopping {
			return nil, ErrNoSpace
		} else {
			// Only while the cleaner makes room: near full, passes may
			// spend on copies and their checkpoints what they give back,
			// and the room goes up and down without getting anywhere.
			var cleaned bool
			cleaned, err = v.cleanForSpace()
			if room := v.log.Room() - v.ckptCost(); room > best {
				best, stalled = room, 0
			} else {
				stalled++
			}
			if err == nil && (!cleaned || stalled == 3) {
				return nil, ErrNoSpace
			}
		}
		if err != nil {
			return nil, err
		}
		if err := v.writable(); err != nil {
			return nil, err
		}
	}
	for v.log.Queued > v.mem.queue && v.err == nil && !v.closed {
		v.changed.Wait()
	}
	if err := v.writable(); err != nil {
		return nil, err
	}
	if err := v.log.Ensure(segment.UnitOps, f.blockBytes, f.nblocks, f.recBytes+64); err != nil {
		return nil, err
	}
	t := &tx{v: v}
	t.rec.Op(uint64(op))
	return t, nil
}

func (t *tx) touch(inos ...Ino) { t.touched = append(t.touched, inos...) }

func (t *tx) put(k btree.Key, val []byte) error {
	t.changed = true
	if err := t.v.applyPut(k, val); err != nil {
		return err
	}
	var kb [btree.KeySize]byte
	k.Encode(kb[:])
	t.rec.Put(kb[:], val)
	return nil
}

func (t *tx) del(k btree.Key) error {
	t.changed = true
	if _, err := t.v.tree.Delete(k); err != nil {
		return t.v.fail(err)
	}
	var kb [btree.KeySize]byte
	k.Encode(kb[:])
	t.rec.Del(kb[:])
	return nil
}

// allocBlock takes a new virtual block.
func (t *tx) allocBlock() (uint64, error) {
	t.changed = true
	vb, err := t.v.blocks.Alloc()
	if err != nil {
		return 0, t.v.fail(err)
	}
	t.rec.Alloc(vb)
	return vb, nil
}

// writeBlock stores raw (one block) as the new content of vb.
func (t *tx) writeBlock(vb uint64, raw []byte, owner Ino, fileBlock uint64) error {
	t.changed = true
	v := t.v
	stored, flags := v.encodeBlock(raw, v.compress)
	e := segment.SummaryEntry{Kind: segment.SumData, Flags: flags, ID: vb, Owner: owner, Offset: fileBlock, Sum: segment.Checksum(stored)}
	_, addr := v.log.Cur.AddBlock(e, stored)
	if err := v.applyWrite(vb, addr, uint32(len(stored)), uint16(flags), e.Sum); err != nil {
		return err
	}
	t.rec.Write(vb)
	return nil
}

// ref changes a block's reference count; at zero its space is dead.
func (t *tx) ref(vb uint64, delta int64) error {
	t.changed = true
	if err := t.v.applyRef(vb, delta); err != nil {
		return err
	}
	t.rec.Ref(vb, delta)
	return nil
}

// mustCopy reports whether vb, block b of ino, is shared, so that its new
// content must go to a block of this file's own: vb has more than one
// reference, or a tree node on the way to its block map item has (a
// snapshot shares the item, and with it the block).
func (t *tx) mustCopy(ino Ino, b, vb uint64) (bool, error) {
	path := cow.OwnPath
	if len(t.v.snaps) == 0 {
		// Nothing is shared without a snapshot: no descent of the tree
		// for every block an overwrite rewrites.
	} else if shared, err := t.v.tree.PathShared(inode.BlockKey(ino, b)); err != nil {
		return false, t.v.fail(err)
	} else if shared {
		path = cow.SharedPath
	}
	shared, err := t.v.blocks.MustCopy(vb, path)
	return shared, t.v.failIf(err)
}

// commit hands the records to cur. The operation is then atomic: it is in
// the log with its blocks, and reaches the device with the unit.
func (t *tx) commit() {
	v := t.v
	v.log.Commit(t.rec.Buf)
	v.changes++
	for _, ino := range t.touched {
		v.inoSeq[ino] = v.log.Seq
	}
	v.logChanged()
}

// The state changes shared by live transactions and replay.

func (v *Volume) applyPut(k btree.Key, val []byte) error {
	if err := v.tree.Put(k, val); err != nil {
		return v.fail(err)
	}
	if k.Type == inode.TypeInode && k.Ino >= v.nextIno {
		v.nextIno = k.Ino + 1
	}
	return nil
}

func (v *Volume) applyWrite(vb, addr uint64, length uint32, flags uint16, sum uint64) error {
	return v.failIf(v.blocks.Write(vb, addr, length, flags, sum))
}

func (v *Volume) applyRef(vb uint64, delta int64) error {
	return v.failIf(v.blocks.Ref(vb, delta))
}

func nowSpec() Timespec {
	t := time.Now()
	return Timespec{Sec: t.Unix(), Nsec: uint32(t.Nanosecond())}
}
