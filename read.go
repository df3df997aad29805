package txfs

import (
	"errors"
	"fmt"
	"sync"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/cow"
	"github.com/txfs/txfs/inode"
	"github.com/txfs/txfs/internal/corrupt"
	"github.com/txfs/txfs/segment"
)

// Reads resolve the block map under the volume lock and then read the
// device without it, so that reads overlap each other's device waits and
// never wait behind a write. While a read is outside the lock its blocks
// may be freed and their segment written again; the checksum of every
// block is verified, so such a read fails its check and is redone under
// the lock (errMoved), where the map cannot change. A genuinely damaged
// block fails under the lock too and is reported as ErrIO.

// errMoved says a read done outside the lock did not verify.
var errMoved = errors.New("block moved while read outside the lock")

// testHookReadUnlocked, when set by a test, runs between planning a read
// and reading the device, to widen the window in which blocks can move.
var testHookReadUnlocked func()

// readPiece is one file block to fill from one stored block.
type readPiece struct {
	vb      uint64
	e       cow.Entry
	ino     Ino
	block   uint64 // the file block
	at, len int    // the part of the caller's buffer this block fills
	off     int    // where that part starts within the raw block
}

// spanPool holds buffers for runs that cannot be read in place (compressed
// blocks, partial blocks): a read of 1 MiB would otherwise allocate and
// clear 1 MiB per request.
var spanPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20+64<<10); return &b }}

// Read reads up to len(buf) bytes at off. Holes read as zeros.
func (v *Volume) Read(ino Ino, buf []byte, off int64) (int, error) {
	return v.readIn(nil, ino, buf, off)
}

// readIn is Read in the tree of s (nil: the live one).
func (v *Volume) readIn(s *SnapshotView, ino Ino, buf []byte, off int64) (int, error) {
	n, err := v.read(s, ino, buf, off, false)
	if errors.Is(err, errMoved) {
		v.readRetries.Add(1)
		n, err = v.read(s, ino, buf, off, true)
	}
	return n, err
}

// read plans the read under the lock, copies what is still in memory, and
// reads the rest from the device: after unlocking unless hold is set. A
// snapshot's file (s not nil) keeps its access time, and a range operation
// it was taken in the middle of is read as finished.
func (v *Volume) read(s *SnapshotView, ino Ino, buf []byte, off int64, hold bool) (int, error) {
	if off < 0 {
		return 0, ErrInvalid
	}
	v.mu.Lock()
	locked := true
	defer func() {
		if locked {
			v.mu.Unlock()
		}
	}()
	if err := v.usable(); err != nil {
		return 0, err
	}
	tree, err := v.treeOf(s)
	if err != nil {
		return 0, err
	}
	var r *inode.Record
	var view fileView
	if s == nil {
		r, view, err = v.liveFile(ino, len(buf) > 0 && !hold)
	} else {
		r, view, err = v.snapshotFile(tree, ino)
	}
	if err != nil {
		return 0, err
	}
	if uint64(off) >= r.Size || len(buf) == 0 {
		return 0, nil
	}
	n := int(min(uint64(len(buf)), r.Size-uint64(off)))
	runs, err := v.planRead(tree, ino, view, buf[:n], uint64(off))
	if err != nil {
		return 0, err
	}
	// Runs the writer has not written yet are copied now, under the lock.
	device := runs[:0]
	for _, run := range runs {
		if v.log.InMemory(run[0].e.Addr, run[len(run)-1].e.Addr+uint64(run[len(run)-1].e.Len)) {
			if err := v.fetchRun(buf, run, v.log.ReadRaw); err != nil {
				return 0, err
			}
			continue
		}
		device = append(device, run)
	}
	if !hold {
		v.mu.Unlock()
		locked = false
		if testHookReadUnlocked != nil {
			testHookReadUnlocked()
		}
	}
	for _, run := range device {
		if err := v.fetchRun(buf, run, v.readDevice); err != nil {
			if !hold {
				return 0, errMoved
			}
			return 0, err
		}
	}
	return n, nil
}

// liveFile is the record of ino in the live tree for a read, which
// updates its access time if atime says so, and the view to read its
// blocks through. Lock held; it may release it (readView).
func (v *Volume) liveFile(ino Ino, atime bool) (*inode.Record, fileView, error) {
	r, err := v.fileInode(ino)
	if err != nil {
		return nil, nil, err
	}
	if now := nowSpec(); atime && v.wantAtime(r, now) {
		v.touchAtime(ino, now)
		if r, err = v.fileInode(ino); err != nil {
			return nil, nil, err
		}
	}
	// A range operation in progress would show its block map half
	// changed: finish it first, or read through it.
	view, had, err := v.readView(ino)
	if err != nil {
		return nil, nil, err
	}
	if had {
		if r, err = v.fileInode(ino); err != nil {
			return nil, nil, err
		}
	}
	return r, view, nil
}

// snapshotFile is liveFile in a snapshot's tree, which never changes: a
// range operation it was taken in the middle of is read as finished.
func (v *Volume) snapshotFile(tree *btree.Tree, ino Ino) (*inode.Record, fileView, error) {
	r, err := v.inodeIn(tree, ino)
	if err == nil && isDir(r.Mode) {
		err = ErrIsDir
	}
	if err != nil {
		return nil, nil, err
	}
	o, pending, err := v.pendingRangeIn(tree, ino)
	if err != nil || !pending {
		return r, plainView, err
	}
	return r, rangeView(o), nil
}

// planRead maps buf (file bytes from off) to runs of stored blocks that lie
// next to each other in the log, so that each run is one device read.
// Holes are zeroed here. Blocks still in memory form runs of their own.
// The file's blocks are seen through view.
func (v *Volume) planRead(tree *btree.Tree, ino Ino, view fileView, buf []byte, off uint64) ([][]readPiece, error) {
	bs := uint64(v.bs)
	first, last := off/bs, (off+uint64(len(buf))-1)/bs
	var runs [][]readPiece
	var run []readPiece
	end := off // file offset up to which buf is planned or zeroed
	var walkErr error
	visit := func(b, vb uint64) bool {
		lo := max(b*bs, off)
		hi := min(b*bs+bs, off+uint64(len(buf)))
		clear(buf[end-off : lo-off]) // a hole before this block
		end = hi
		e, err := v.storedEntry(vb)
		if err != nil {
			walkErr = err
			return false
		}
		if len(run) > 0 {
			prev := run[len(run)-1].e
			if prev.Addr+uint64(prev.Len) != e.Addr || v.log.InMemory(run[0].e.Addr, e.Addr+uint64(e.Len)) {
				runs = append(runs, run)
				run = nil
			}
		}
		run = append(run, readPiece{vb: vb, e: e, ino: ino, block: b, at: int(lo - off), len: int(hi - lo), off: int(lo - b*bs)})
		return true
	}
	if err := v.mappedBlocksIn(tree, ino, view, first, last, visit); err != nil {
		return nil, err
	}
	if walkErr != nil {
		return nil, walkErr
	}
	clear(buf[end-off:]) // a hole at the end
	if len(run) > 0 {
		runs = append(runs, run)
	}
	return runs, nil
}

// storedEntry returns the DAT entry of a virtual block whose content is
// to be read: live, written, and stored in at most one block's bytes
// inside one segment, as every stored block is, so that a damaged length
// is an error and not a read (and buffer) of up to 4 GiB.
func (v *Volume) storedEntry(vb uint64) (cow.Entry, error) {
	e, err := v.dat.Live(vb)
	if err != nil {
		return e, fmt.Errorf("%w: %v", ErrIO, err)
	}
	if e.Addr == 0 {
		return e, fmt.Errorf("%w: virtual block %d has no content", ErrIO, vb)
	}
	if e.Len == 0 || e.Len > uint32(v.bs) {
		return e, fmt.Errorf("%w: virtual block %d is stored in %d bytes, a block has %d", ErrIO, vb, e.Len, v.bs)
	}
	// Inside one segment, as every stored block is (so no address sum wraps).
	if s, ok := v.geo.SegmentOf(e.Addr); !ok || e.Addr+uint64(e.Len) > uint64(v.geo.SegmentOffset(s+1)) {
		return e, fmt.Errorf("%w: virtual block %d at %d is not inside a segment", ErrIO, vb, e.Addr)
	}
	return e, nil
}

// readDevice reads stored bytes from the device only; it needs no lock.
func (v *Volume) readDevice(addr uint64, buf []byte) error {
	if _, err := v.dev.ReadAt(buf, int64(addr)); err != nil {
		return fmt.Errorf("read at %d: %w", addr, err)
	}
	return nil
}

// fetchRun reads one run with one call of readAt and decodes its blocks
// into their places in buf. A run of whole raw blocks whose places follow
// each other is read straight into buf and only verified there.
func (v *Volume) fetchRun(buf []byte, run []readPiece, readAt func(uint64, []byte) error) error {
	start := run[0].e.Addr
	end := run[len(run)-1].e.Addr + uint64(run[len(run)-1].e.Len)
	if inPlace(run, v.bs) {
		if err := readAt(start, buf[run[0].at:run[0].at+len(run)*v.bs]); err != nil {
			return fmt.Errorf("%w: %v", ErrIO, err)
		}
		for _, p := range run {
			if got := segment.Checksum(buf[p.at : p.at+p.len]); got != p.e.Sum {
				return v.badPiece(p, fmt.Errorf("%w: stored %x, computed %x", segment.ErrChecksum, p.e.Sum, got))
			}
		}
		return nil
	}
	bp := spanPool.Get().(*[]byte)
	defer spanPool.Put(bp)
	if uint64(cap(*bp)) < end-start {
		*bp = make([]byte, end-start)
	}
	span := (*bp)[:end-start]
	if err := readAt(start, span); err != nil {
		return fmt.Errorf("%w: %v", ErrIO, err)
	}
	var scratch []byte
	for _, p := range run {
		stored := span[p.e.Addr-start : p.e.Addr-start+uint64(p.e.Len)]
		dst := buf[p.at : p.at+p.len]
		if p.len == v.bs {
			// A whole block decodes straight into the caller's buffer.
			if _, err := segment.DecodeBlock(stored, uint8(p.e.Flags), p.e.Sum, v.bs, dst); err != nil {
				return v.badPiece(p, err)
			}
			continue
		}
		raw, err := segment.DecodeBlock(stored, uint8(p.e.Flags), p.e.Sum, v.bs, scratch)
		if err != nil {
			return v.badPiece(p, err)
		}
		scratch = raw
		copy(dst, raw[p.off:])
	}
	return nil
}

// inPlace reports whether run is whole uncompressed blocks filling one
// contiguous stretch of the caller's buffer.
func inPlace(run []readPiece, bs int) bool {
	for i, p := range run {
		if p.e.Flags&segment.BlockLZ4 != 0 || int(p.e.Len) != bs || p.len != bs {
			return false
		}
		if i > 0 && p.at != run[i-1].at+bs {
			return false
		}
	}
	return true
}

// badPiece is the error for the stored bytes of p that do not decode:
// corruption, at the block's place and the file's block.
func (v *Volume) badPiece(p readPiece, err error) error {
	return fmt.Errorf("%w: %w", ErrIO, corrupt.Locate(err, corrupt.Location{
		Addr: p.e.Addr, Block: p.vb, Ino: uint64(p.ino), Off: p.block * uint64(v.bs), HasOff: true}))
}
