package txfs

import (
	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/inode"
	"github.com/txfs/txfs/segment"
)

// Writes: a file's block map (items (ino, block, file block)) and writing
// data, in transactions of at most writeChunkBlocks blocks.

// blockMap returns the virtual blocks of ino's file blocks [first, last].
func (v *Volume) blockMap(ino Ino, first, last uint64) (map[uint64]uint64, error) {
	m := make(map[uint64]uint64, min(last-first+1, 256))
	if first == last {
		val, ok, err := v.tree.Get(inode.BlockKey(ino, first))
		if ok {
			m[first] = inode.DecodeBlockItem(val)
		}
		return m, v.failIf(err)
	}
	err := v.tree.Ascend(inode.BlockKey(ino, first), func(k btree.Key, val []byte) bool {
		if k.Ino != ino || k.Type != inode.TypeBlock || k.Off > last {
			return false
		}
		m[k.Off] = inode.DecodeBlockItem(val)
		return true
	})
	return m, v.failIf(err)
}

// fileInode returns the record of ino for an operation on its data, which
// directories have none of.
func (v *Volume) fileInode(ino Ino) (*inode.Record, error) {
	r, err := v.getInode(ino)
	if err == nil && isDir(r.Mode) {
		err = ErrIsDir
	}
	return r, err
}

// testHookChunk, when set by a test, is told after each transaction but
// the last of a write, punch or copy that takes several, how many bytes of
// it are done: each such transaction is a state a power cut may leave.
var testHookChunk func(done int64)

// writeChunkBlocks bounds the blocks of one write transaction so that it
// always fits one log unit: at most 1 MiB, less with small segments.
func (v *Volume) writeChunkBlocks() int64 {
	unit := int64(v.unitPayload() - v.metaRecBytes())
	per := int64(v.bs) + 64 + segment.SummarySize + 48
	return max(1, min(1<<20/int64(v.bs), unit/per))
}

// Write writes data at off, extending the file as needed. A write of more
// than writeChunkBlocks blocks is split into several transactions, each
// atomic. data must not change while Write runs: its whole blocks are
// hashed and stored from it as they are.
func (v *Volume) Write(ino Ino, data []byte, off int64) (int, error) {
	if off < 0 || uint64(off)+uint64(len(data)) > MaxFileSize {
		if off >= 0 {
			return 0, ErrFileTooBig
		}
		return 0, ErrInvalid
	}
	bs := int64(v.bs)
	done := 0
	for done < len(data) || len(data) == 0 {
		pos := off + int64(done)
		end := min(off+int64(len(data)), (pos/bs+v.writeChunkBlocks())*bs)
		if err := v.writeChunk(ino, data[done:end-off], pos); err != nil {
			return done, err
		}
		done = int(end - off)
		if len(data) == 0 {
			break
		}
		if testHookChunk != nil && done < len(data) {
			testHookChunk(int64(done))
		}
	}
	return done, nil
}

func (v *Volume) writeChunk(ino Ino, data []byte, off int64) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	bs := uint64(v.bs)
	first, last := uint64(off)/bs, (uint64(off)+uint64(len(data))+bs-1)/bs
	nb := int(last - first)
	// A truncate that had to wait for space while freeing is finished
	// first, so it cannot free blocks this write is about to map; so is a
	// range operation, whose block map is half moved.
	f := footprint{blockBytes: nb * (v.bs + 64), nblocks: nb, recBytes: nb*48 + v.metaRecBytes(),
		items: nb + 4, runs: 4, dat: 2 * nb}
	return v.updateSettled(opWrite, f, []Ino{ino}, func(t *tx) error { return t.write(ino, data, off, first, last) })
}

// write writes data at off, file blocks [first, last), in t.
func (t *tx) write(ino Ino, data []byte, off int64, first, last uint64) error {
	v := t.v
	bs := uint64(v.bs)
	r, err := v.fileInode(ino)
	if err != nil {
		return err
	}
	if err := checkWrite(r, off, len(data)); err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	if err := t.dropCapabilities(ino); err != nil {
		return err
	}
	m, err := v.blockMap(ino, first, last-1)
	if err != nil {
		return err
	}
	// The unit copies every block: a whole block goes from data straight
	// into it, a partial one through one scratch buffer.
	for b := first; b < last; b++ {
		bstart := b * bs
		lo := max(bstart, uint64(off))
		hi := min(bstart+bs, uint64(off)+uint64(len(data)))
		vb, mapped := m[b]
		block := data[lo-uint64(off) : hi-uint64(off)]
		if hi-lo < bs {
			// A partial block keeps the rest of its old content.
			if len(v.scratch) != v.bs {
				v.scratch = make([]byte, v.bs)
			}
			block = v.scratch
			clear(block)
			if mapped {
				old, err := v.readBlock(vb, nil)
				if err != nil {
					return err
				}
				copy(block, old)
			}
			copy(block[lo-bstart:], data[lo-uint64(off):hi-uint64(off)])
		}
		if mapped {
			err = t.rewriteBlock(ino, b, vb, block)
		} else {
			err = t.newBlock(ino, b, block)
			r.NBlocks++
		}
		if err != nil {
			return err
		}
	}
	now := nowSpec()
	r.Size = max(r.Size, uint64(off)+uint64(len(data)))
	r.Mtime, r.Ctime = now, now
	return t.putInode(ino, r)
}

// rewriteBlock stores new content for file block b, which maps to vb: in
// place when vb is the file's own, in a new block when vb is shared.
func (t *tx) rewriteBlock(ino Ino, b, vb uint64, block []byte) error {
	shared, err := t.mustCopy(ino, b, vb)
	if err != nil {
		return err
	}
	if !shared {
		return t.writeBlock(vb, block, ino, b)
	}
	// Shared with a snapshot or a clone: this file gets its own copy. The
	// old block loses this file's reference once the item names the new
	// one: changing the item may copy a leaf a snapshot shares, and the
	// copy refers to the old block too (lazy counts).
	if err := t.newBlock(ino, b, block); err != nil {
		return err
	}
	return t.ref(vb, -1)
}

// newBlock stores block as file block b of ino in a new virtual block,
// which the block map item of b then names.
func (t *tx) newBlock(ino Ino, b uint64, block []byte) error {
	vb, err := t.allocBlock()
	if err != nil {
		return err
	}
	if err := t.put(inode.BlockKey(ino, b), inode.EncodeBlockItem(vb)); err != nil {
		return err
	}
	return t.writeBlock(vb, block, ino, b)
}
