package txfs

import (
	"fmt"

	"github.com/txfs/txfs/inode"
)

// The fallocate modes: punching holes, zeroing, collapsing and inserting
// ranges (as range operations, rangeop.go), allocating (which extends the
// file only) and marking a file modified; and the partial blocks at the
// edges of a range.

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
		return t.putInode(ino, r)
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
