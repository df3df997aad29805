package txfs

import (
	"github.com/txfs/txfs/inode"
	"math"
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
	err = v.tree.Ascend(blockKey(ino, uint64(off/bs)), func(k inode.Key, _ []byte) bool {
		if k.Ino != ino || k.Type != itemBlock {
			return false
		}
		if !hole {
			found = max(off, int64(k.Off)*bs)
			return false
		}
		if int64(k.Off) != next {
			return false // a gap before this block
		}
		next++
		return next*bs < size
	})
	if err != nil {
		return 0, v.fail(err)
	}
	if hole {
		return min(max(off, next*bs), size), nil
	}
	if found < 0 || found >= size {
		return 0, ErrNoData
	}
	return found, nil
}

// PunchHole makes [off, off+length) of a file read as zeros and frees the
// whole blocks inside it; the size does not change. A range of up to
// chunkBlocks blocks is one transaction; a larger one is punched in steps
// of that size, each atomic.
func (v *Volume) PunchHole(ino Ino, off, length int64) error {
	if off < 0 || length <= 0 {
		return ErrInvalid
	}
	end := off + length
	if end < off {
		return ErrFileTooBig
	}
	start := off
	for off < end {
		next, err := v.punchChunk(ino, off, end)
		if err != nil {
			return err
		}
		off = next
		if testHookChunk != nil && off < end {
			testHookChunk(off - start)
		}
	}
	return nil
}

// punchOp is the footprint of punching blocks blocks: two edge blocks
// rewritten, the others' items deleted and their references dropped.
func (v *Volume) punchOp(blocks int) footprint {
	return footprint{blockBytes: 2 * (v.bs + 64), nblocks: 2, recBytes: blocks*40 + v.metaRecBytes(),
		items: blocks + 4, runs: 4, dat: blocks + 4, frees: true}
}

// punchChunk punches [off, end) as far as one transaction may and returns
// where it stopped.
func (v *Volume) punchChunk(ino Ino, off, end int64) (int64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.finishTruncate(ino); err != nil {
		return off, err
	}
	chunk := v.chunkBlocks(v.freeChunkLimit(), v.punchOp)
	bs := int64(v.bs)
	end = min(end, (off/bs+int64(chunk))*bs)
	t, err := v.begin(opPunch, v.punchOp(chunk))
	if err != nil {
		return off, err
	}
	next := end
	r, err := v.fileInode(ino)
	if err != nil {
		return off, err
	}
	if err := checkChange(r); err != nil {
		return off, err
	}
	end = min(end, int64(r.Size))
	if off >= end {
		return math.MaxInt64, nil // nothing of the file is left in the range
	}
	if err := t.dropCapabilities(ino); err != nil {
		return off, err
	}
	first, last := off/bs, (end-1)/bs
	m, err := v.blockMap(ino, uint64(first), uint64(last))
	if err != nil {
		return off, err
	}
	for b := first; b <= last; b++ {
		vb, ok := m[uint64(b)]
		if !ok {
			continue
		}
		lo, hi := max(off, b*bs), min(end, (b+1)*bs)
		if hi-lo == bs {
			if err := t.del(blockKey(ino, uint64(b))); err != nil {
				return off, err
			}
			if err := t.ref(vb, -1); err != nil {
				return off, err
			}
			r.NBlocks--
			continue
		}
		// An edge block keeps the bytes outside the range.
		raw, err := v.readBlock(vb, nil)
		if err != nil {
			return off, err
		}
		block := append([]byte(nil), raw...)
		clear(block[lo-b*bs : hi-b*bs])
		if err := t.rewriteBlock(ino, uint64(b), vb, block); err != nil {
			return off, err
		}
	}
	now := nowSpec()
	r.Mtime, r.Ctime = now, now
	if err := t.putInode(ino, r); err != nil {
		return off, err
	}
	t.touch(ino)
	t.commit()
	return next, nil
}

// rewriteBlock stores new content for file block b, which maps to vb: in
// place when vb is the file's own, in a new block when vb is shared.
func (t *tx) rewriteBlock(ino Ino, b, vb uint64, block []byte) error {
	e, err := t.v.dat.Live(vb)
	if err != nil {
		return t.v.fail(err)
	}
	if e.Refs > 1 {
		if err := t.ref(vb, -1); err != nil {
			return err
		}
		if vb, err = t.allocBlock(); err != nil {
			return err
		}
		if err := t.put(blockKey(ino, b), le64(vb)); err != nil {
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
	if err := v.finishTruncate(dst); err != nil {
		return 0, err
	}
	bs := int64(v.bs)
	bytes = min(bytes, int64(v.chunkBlocks(v.freeChunkLimit(), v.shareOp))*bs)
	nb := (bytes + bs - 1) / bs
	t, err := v.begin(opCopyRange, v.shareOp(int(nb)))
	if err != nil {
		return 0, err
	}
	sr, err := v.getInode(src)
	if err != nil {
		return 0, err
	}
	dr, err := v.fileInode(dst)
	if err != nil {
		return 0, err
	}
	if err := checkWrite(dr, dstOff, int(bytes)); err != nil {
		return 0, err
	}
	bytes = min(bytes, max(0, int64(sr.Size)-srcOff))
	if bytes == 0 {
		return 0, nil
	}
	if err := t.dropCapabilities(dst); err != nil {
		return 0, err
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
		return 0, err
	}
	dm, err := v.blockMap(dst, db, db+uint64(nb)-1)
	if err != nil {
		return 0, err
	}
	for i := uint64(0); i < uint64(shared); i++ {
		svb, sok := sm[sb+i]
		dvb, dok := dm[db+i]
		if sok && dok && svb == dvb {
			continue
		}
		if dok {
			if err := t.ref(dvb, -1); err != nil {
				return 0, err
			}
			dr.NBlocks--
		}
		if !sok {
			if dok {
				if err := t.del(blockKey(dst, db+i)); err != nil {
					return 0, err
				}
			}
			continue
		}
		if err := t.ref(svb, 1); err != nil {
			return 0, err
		}
		if err := t.put(blockKey(dst, db+i), le64(svb)); err != nil {
			return 0, err
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
				return 0, err
			}
			copy(block, raw[:tail])
		}
		if dvb, ok := dm[db+i]; ok {
			raw, err := v.readBlock(dvb, nil)
			if err != nil {
				return 0, err
			}
			copy(block[tail:], raw[tail:])
			err = t.rewriteBlock(dst, db+i, dvb, block)
			if err != nil {
				return 0, err
			}
		} else {
			vb, err := t.allocBlock()
			if err != nil {
				return 0, err
			}
			if err := t.put(blockKey(dst, db+i), le64(vb)); err != nil {
				return 0, err
			}
			if err := t.writeBlock(vb, block, dst, db+i); err != nil {
				return 0, err
			}
			dr.NBlocks++
		}
	}
	now := nowSpec()
	dr.Size = max(dr.Size, uint64(dstOff+bytes))
	dr.Mtime, dr.Ctime = now, now
	if err := t.putInode(dst, dr); err != nil {
		return 0, err
	}
	t.touch(dst)
	t.commit()
	return bytes, nil
}
