package txfs

import (
	"github.com/txfs/txfs/inode"
)

// copy_file_range: whole blocks are shared (reference counted in the DAT),
// the rest copied, in transactions of bounded size (docs/DESIGN.md, "Holes,
// seeking and copies").

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
			// The old block loses its reference after its item changed:
			// the change may copy a leaf that a snapshot shares, and the
			// copy refers to it too (lazy counts).
			switch {
			case sok:
				if err := t.ref(svb, 1); err != nil {
					return err
				}
				if err := t.put(inode.BlockKey(dst, db+i), inode.EncodeBlockItem(svb)); err != nil {
					return err
				}
				dr.NBlocks++
			case dok:
				if err := t.del(inode.BlockKey(dst, db+i)); err != nil {
					return err
				}
			}
			if dok {
				if err := t.ref(dvb, -1); err != nil {
					return err
				}
				dr.NBlocks--
			}
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
		copied = bytes
		return nil
	})
	return copied, err
}
