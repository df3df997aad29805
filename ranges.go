package txfs

import (
	"fmt"
	"math"

	"github.com/txfs/txfs/inode"
)

// Seek finds data or holes, as lseek(2) SEEK_DATA (hole false) and
// SEEK_HOLE (hole true) do: the first offset at or after off that is data
// (a mapped block) or a hole (an unmapped block, or the end of the file).
// ErrNoData (ENXIO) when off is at or past the end, or no data follows.
func (v *Volume) Seek(ino Ino, off int64, hole bool) (int64, error) {
	if off < 0 {
		return 0, ErrNoData
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return 0, err
	}
	view, _, err := v.readView(ino)
	if err != nil {
		return 0, err
	}
	r, err := v.fileInode(ino)
	if err != nil {
		return 0, err
	}
	size := int64(r.Size)
	if off >= size {
		return 0, ErrNoData
	}
	bs := int64(v.bs)
	next := off / bs // the block a hole search expects mapped next
	found := int64(-1)
	err = v.mappedBlocks(ino, view, uint64(off/bs), math.MaxUint64, func(b, _ uint64) bool {
		if !hole {
			found = max(off, int64(b)*bs)
			return false
		}
		if int64(b) != next {
			return false // a gap before this block
		}
		next++
		return next*bs < size
	})
	if err != nil {
		return 0, err
	}
	if hole {
		return min(max(off, next*bs), size), nil
	}
	if found < 0 || found >= size {
		return 0, ErrNoData
	}
	return found, nil
}

// PunchHole makes [off, off+length) of a regular file read as zeros and
// frees the whole blocks inside it; the size does not change. It is
// ZeroRange with keepSize.
func (v *Volume) PunchHole(ino Ino, off, length int64) error {
	return v.zeroRange(opPunch, ino, off, length, true)
}

// ZeroRange makes [off, off+length) of a regular file read as zeros, as
// fallocate(2) FALLOC_FL_ZERO_RANGE does: the whole blocks inside are
// freed (a hole reads as zeros, and txfs reserves no space ahead), the
// partial blocks at the edges are zeroed, and unless keepSize the file
// grows to off+length. Like every fallocate mode it sets mtime and ctime,
// also when nothing else changes. One atomic operation, however long the
// range (see rangeop.go).
func (v *Volume) ZeroRange(ino Ino, off, length int64, keepSize bool) error {
	return v.zeroRange(opZeroRange, ino, off, length, keepSize)
}

func (v *Volume) zeroRange(op int, ino Ino, off, length int64, keepSize bool) error {
	if err := checkRange(off, length); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	chunk := v.rangeChunk()
	f := v.rangeStepOp(chunk)
	f.blockBytes, f.nblocks = 2*(v.bs+64), 2
	var done bool
	err := v.updateChange(op, ino, f, false, func(t *tx, r *inode.Record) error {
		bs := int64(v.bs)
		end := off + length
		// What lies past the size is zero already; so is the rest of the
		// last block, which can go whole.
		zend := end
		if zend >= int64(r.Size) {
			zend = (int64(r.Size) + bs - 1) / bs * bs
		}
		o := inode.RangeOp{Kind: inode.RangeFree}
		if off < zend {
			first, last := (off+bs-1)/bs, zend/bs // the whole blocks: [first, last)
			if first > last {
				// Inside one block.
				if err := t.zeroPart(ino, off/bs, off%bs, zend-off/bs*bs); err != nil {
					return err
				}
			} else {
				if off%bs != 0 {
					if err := t.zeroPart(ino, off/bs, off%bs, bs); err != nil {
						return err
					}
				}
				if zend%bs != 0 {
					if err := t.zeroPart(ino, last, 0, zend%bs); err != nil {
						return err
					}
				}
			}
			if first < last {
				o = inode.RangeOp{Kind: inode.RangeFree, First: uint64(first), Count: uint64(last - first), Cursor: uint64(first)}
			}
		}
		if !keepSize && end > int64(r.Size) {
			r.Size = uint64(end)
		}
		now := nowSpec()
		r.Mtime, r.Ctime = now, now
		var err error
		done, err = t.runRange(ino, r, o, chunk)
		return err
	})
	return v.finishRest(ino, done, err)
}

// CollapseRange removes [off, off+length) from a regular file, as
// fallocate(2) FALLOC_FL_COLLAPSE_RANGE does: what follows moves down by
// length and the file shrinks by length. off and length must be multiples
// of the block size and the range must end before the end of the file,
// else ErrInvalid. The blocks that follow move by a change of their block
// map items, not a copy; blocks shared with other files stay shared. One
// atomic operation, however big the file (see rangeop.go).
func (v *Volume) CollapseRange(ino Ino, off, length int64) error {
	return v.shiftRange(opCollapseRange, inode.RangeCollapse, ino, off, length)
}

// InsertRange inserts a hole of length bytes at off into a regular file,
// as fallocate(2) FALLOC_FL_INSERT_RANGE does: what follows off moves up
// by length and the file grows by length. off and length must be
// multiples of the block size and off must be before the end of the file,
// else ErrInvalid; a file that would grow past MaxFileSize is
// ErrFileTooBig. Blocks move by a change of their block map items, not a
// copy. One atomic operation, however big the file (see rangeop.go).
func (v *Volume) InsertRange(ino Ino, off, length int64) error {
	return v.shiftRange(opInsertRange, inode.RangeInsert, ino, off, length)
}

// shiftRange collapses (kind inode.RangeCollapse) or inserts (inode.RangeInsert)
// [off, off+length), checking the arguments in ext4's order.
func (v *Volume) shiftRange(op int, kind uint8, ino Ino, off, length int64) error {
	if err := checkRange(off, length); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	chunk := v.rangeChunk()
	f := v.rangeStepOp(chunk)
	f.frees = kind == inode.RangeCollapse
	var done bool
	err := v.updateSettled(op, f, []Ino{ino}, func(t *tx) error {
		r, err := v.regularInode(ino)
		if err != nil {
			return err
		}
		if err := checkChange(r); err != nil {
			return err
		}
		bs := int64(v.bs)
		size := int64(r.Size)
		if off%bs != 0 || length%bs != 0 {
			return fmt.Errorf("%w: range [%d, +%d) is not aligned to the block size %d", ErrInvalid, off, length, bs)
		}
		o := inode.RangeOp{Kind: kind, First: uint64(off / bs), Count: uint64(length / bs)}
		if kind == inode.RangeCollapse {
			if off+length >= size {
				return fmt.Errorf("%w: collapse of [%d, +%d) reaches the end of the file (%d)", ErrInvalid, off, length, size)
			}
			o.Cursor = o.First
			r.Size -= uint64(length)
		} else {
			if length > MaxFileSize-size {
				return ErrFileTooBig
			}
			if off >= size {
				return fmt.Errorf("%w: insert at %d, at or past the end of the file (%d)", ErrInvalid, off, size)
			}
			o.Cursor = uint64((size + bs - 1) / bs)
			r.Size += uint64(length)
		}
		if err := t.dropCapabilities(ino); err != nil {
			return err
		}
		now := nowSpec()
		r.Mtime, r.Ctime = now, now
		done, err = t.runRange(ino, r, o, chunk)
		return err
	})
	return v.finishRest(ino, done, err)
}

// Allocate is fallocate(2) mode 0, and KEEP_SIZE with keepSize: txfs
// reserves no space ahead (a log-structured volume writes every block
// anew), so it only extends the file to off+length unless keepSize. Like
// every fallocate mode it counts as a change of the file (MarkModified).
func (v *Volume) Allocate(ino Ino, off, length int64, keepSize bool) error {
	if err := checkRange(off, length); err != nil {
		return err
	}
	if keepSize {
		return v.markModified(ino, 0)
	}
	return v.markModified(ino, off+length)
}

// MarkModified does to a regular file what fallocate(2) does before it
// looks at the range (the kernel's file_modified): it sets mtime and
// ctime and removes security.capability. ext4 does so also when the range
// then turns out not to suit the file.
func (v *Volume) MarkModified(ino Ino) error { return v.markModified(ino, 0) }

// markModified is MarkModified that also extends the file to size.
func (v *Volume) markModified(ino Ino, size int64) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.updateChange(opSetAttr, ino, v.metaOp(2, false), true, func(t *tx, r *inode.Record) error {
		r.Size = max(r.Size, uint64(size))
		now := nowSpec()
		r.Mtime, r.Ctime = now, now
		if err := t.putInode(ino, r); err != nil {
			return err
		}
		t.touch(ino)
		return nil
	})
}

// checkRange checks the range of a fallocate mode as the VFS does before
// any filesystem sees it, with MaxFileSize as the largest file.
func checkRange(off, length int64) error {
	if off < 0 || length <= 0 {
		return ErrInvalid
	}
	if length > MaxFileSize || off > MaxFileSize-length {
		return ErrFileTooBig
	}
	return nil
}

// zeroPart zeroes bytes [from, to) of file block b, if it is mapped.
func (t *tx) zeroPart(ino Ino, b, from, to int64) error {
	v := t.v
	val, ok, err := v.tree.Get(inode.BlockKey(ino, uint64(b)))
	if err != nil || !ok {
		return v.failIf(err)
	}
	vb := inode.DecodeBlockItem(val)
	raw, err := v.readBlock(vb, nil)
	if err != nil {
		return err
	}
	block := append([]byte(nil), raw...)
	clear(block[from:to])
	return t.rewriteBlock(ino, uint64(b), vb, block)
}

// rewriteBlock stores new content for file block b, which maps to vb: in
// place when vb is the file's own, in a new block when vb is shared.
func (t *tx) rewriteBlock(ino Ino, b, vb uint64, block []byte) error {
	shared, err := t.mustCopy(vb)
	if err != nil {
		return err
	}
	if shared {
		if err := t.ref(vb, -1); err != nil {
			return err
		}
		if vb, err = t.allocBlock(); err != nil {
			return err
		}
		if err := t.put(inode.BlockKey(ino, b), inode.EncodeBlockItem(vb)); err != nil {
			return err
		}
	}
	return t.writeBlock(vb, block, ino, b)
}

// CopyRange copies n bytes from src at srcOff to dst at dstOff, as
// copy_file_range(2), and returns how many were copied (fewer at the end
// of src). Whole blocks at matching alignment are shared, not copied: both
// files then point at the same virtual block, whose reference count says
// so, and the first write to either gives that file its own copy. A copy
// of up to chunkBlocks blocks (aligned) or one write chunk (unaligned)
// is one transaction; a larger one is several, each atomic.
func (v *Volume) CopyRange(src Ino, srcOff int64, dst Ino, dstOff int64, n int64) (int64, error) {
	if srcOff < 0 || dstOff < 0 || n < 0 {
		return 0, ErrInvalid
	}
	if uint64(dstOff)+uint64(n) > MaxFileSize {
		return 0, ErrFileTooBig
	}
	if err := v.checkCopyDest(dst, dstOff, n); err != nil {
		return 0, err
	}
	bs := int64(v.bs)
	var done int64
	var buf []byte
	for done < n {
		so, do := srcOff+done, dstOff+done
		a, err := v.GetAttr(src)
		if err != nil {
			return done, err
		}
		if a.IsDir() {
			return done, ErrIsDir
		}
		if so >= int64(a.Size) {
			return done, nil
		}
		left := min(n-done, int64(a.Size)-so)
		if so%bs == 0 && do%bs == 0 && src != dst {
			copied, err := v.shareBlocks(src, so, dst, do, left)
			done += copied
			if err != nil || copied == 0 {
				return done, err
			}
			if testHookChunk != nil && done < n && copied < left {
				testHookChunk(done)
			}
			continue
		}
		// Unaligned: read, then write what one write transaction holds.
		c := min(left, v.writeChunkBlocks()*bs-do%bs)
		if int64(len(buf)) < c {
			buf = make([]byte, c)
		}
		r, err := v.Read(src, buf[:c], so)
		if err != nil {
			return done, err
		}
		if r == 0 {
			return done, nil
		}
		w, err := v.Write(dst, buf[:r], do)
		done += int64(w)
		if err != nil {
			return done, err
		}
		if testHookChunk != nil && done < n && int64(r) < left {
			testHookChunk(done)
		}
	}
	return done, nil
}

// shareOp is the footprint of sharing blocks blocks: their items in the
// destination, the references of both files' blocks, a partial last block.
func (v *Volume) shareOp(blocks int) footprint {
	return footprint{blockBytes: v.bs + 64, nblocks: 1, recBytes: blocks*64 + v.metaRecBytes(),
		items: blocks + 4, runs: 4, dat: 2*blocks + 2}
}

// shareBlocks copies up to bytes of src at srcOff to dst at dstOff, both
// block-aligned, in one transaction of at most chunkBlocks blocks, and
// returns how many it copied: whole blocks are shared; a partial last
// block is shared too when it is the end of src (past which its bytes are
// zero) and nothing of dst follows, and copied otherwise.
func (v *Volume) shareBlocks(src Ino, srcOff int64, dst Ino, dstOff int64, bytes int64) (int64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	bs := int64(v.bs)
	bytes = min(bytes, int64(v.chunkBlocks(v.freeChunkLimit(), v.shareOp))*bs)
	nb := (bytes + bs - 1) / bs
	copied := int64(0)
	err := v.updateSettled(opCopyRange, v.shareOp(int(nb)), []Ino{dst, src}, func(t *tx) error {
		sr, err := v.getInode(src)
		if err != nil {
			return err
		}
		dr, err := v.fileInode(dst)
		if err != nil {
			return err
		}
		bytes = min(bytes, max(0, int64(sr.Size)-srcOff))
		if bytes == 0 {
			return nil
		}
		if err := t.dropCapabilities(dst); err != nil {
			return err
		}
		nb = (bytes + bs - 1) / bs
		shared := nb
		tail := bytes % bs
		if tail != 0 && (srcOff+bytes != int64(sr.Size) || int64(dr.Size) > dstOff+bytes) {
			shared--
		}
		sb, db := uint64(srcOff/bs), uint64(dstOff/bs)
		sm, err := v.blockMap(src, sb, sb+uint64(nb)-1)
		if err != nil {
			return err
		}
		dm, err := v.blockMap(dst, db, db+uint64(nb)-1)
		if err != nil {
			return err
		}
		for i := uint64(0); i < uint64(shared); i++ {
			svb, sok := sm[sb+i]
			dvb, dok := dm[db+i]
			if sok && dok && svb == dvb {
				continue
			}
			if dok {
				if err := t.ref(dvb, -1); err != nil {
					return err
				}
				dr.NBlocks--
			}
			if !sok {
				if dok {
					if err := t.del(inode.BlockKey(dst, db+i)); err != nil {
						return err
					}
				}
				continue
			}
			if err := t.ref(svb, 1); err != nil {
				return err
			}
			if err := t.put(inode.BlockKey(dst, db+i), inode.EncodeBlockItem(svb)); err != nil {
				return err
			}
			dr.NBlocks++
		}
		if shared < nb {
			// The partial last block: its first tail bytes come from src.
			i := uint64(shared)
			block := make([]byte, bs)
			if svb, ok := sm[sb+i]; ok {
				raw, err := v.readBlock(svb, nil)
				if err != nil {
					return err
				}
				copy(block, raw[:tail])
			}
			if dvb, ok := dm[db+i]; ok {
				raw, err := v.readBlock(dvb, nil)
				if err != nil {
					return err
				}
				copy(block[tail:], raw[tail:])
				err = t.rewriteBlock(dst, db+i, dvb, block)
				if err != nil {
					return err
				}
			} else {
				vb, err := t.allocBlock()
				if err != nil {
					return err
				}
				if err := t.put(inode.BlockKey(dst, db+i), inode.EncodeBlockItem(vb)); err != nil {
					return err
				}
				if err := t.writeBlock(vb, block, dst, db+i); err != nil {
					return err
				}
				dr.NBlocks++
			}
		}
		now := nowSpec()
		dr.Size = max(dr.Size, uint64(dstOff+bytes))
		dr.Mtime, dr.Ctime = now, now
		if err := t.putInode(dst, dr); err != nil {
			return err
		}
		t.touch(dst)
		copied = bytes
		return nil
	})
	return copied, err
}
