package txfs

import (
	"fmt"
	"sort"
	"strings"
	"syscall"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/inode"
	"github.com/txfs/txfs/segment"
)

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
// atomic.
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
	// The unit copies every block, so one buffer serves the whole write.
	if len(v.scratch) != v.bs {
		v.scratch = make([]byte, v.bs)
	}
	block := v.scratch
	for b := first; b < last; b++ {
		bstart := b * bs
		lo := max(bstart, uint64(off))
		hi := min(bstart+bs, uint64(off)+uint64(len(data)))
		vb, mapped := m[b]
		if hi-lo < bs {
			// A partial block keeps the rest of its old content.
			clear(block)
			if mapped {
				old, err := v.readBlock(vb, nil)
				if err != nil {
					return err
				}
				copy(block, old)
			}
		}
		copy(block[lo-bstart:], data[lo-uint64(off):hi-uint64(off)])
		if mapped {
			shared, err := t.mustCopy(vb)
			if err != nil {
				return err
			}
			if shared {
				// Shared with a snapshot or a clone: this file gets its own copy.
				if err := t.ref(vb, -1); err != nil {
					return err
				}
				mapped = false
			}
		}
		if !mapped {
			if vb, err = t.allocBlock(); err != nil {
				return err
			}
			if err := t.put(inode.BlockKey(ino, b), inode.EncodeBlockItem(vb)); err != nil {
				return err
			}
			if _, had := m[b]; !had {
				r.NBlocks++
			}
		}
		if err := t.writeBlock(vb, block, ino, b); err != nil {
			return err
		}
	}
	now := nowSpec()
	r.Size = max(r.Size, uint64(off)+uint64(len(data)))
	r.Mtime, r.Ctime = now, now
	if err := t.putInode(ino, r); err != nil {
		return err
	}
	t.touch(ino)
	return nil
}

// SetAttr changes the attributes in.Valid names. Changing the size
// truncates or extends the file (extension reads as zeros).
func (v *Volume) SetAttr(ino Ino, in *SetAttrIn) (Attr, error) {
	if in.Valid&SetSize != 0 && in.Size > MaxFileSize {
		return Attr{}, ErrFileTooBig
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	f := footprint{blockBytes: v.bs + 64, nblocks: 1, recBytes: v.metaRecBytes(),
		items: 4, runs: 4, dat: 2, frees: in.Valid&SetSize != 0}
	var a Attr
	shrink := false
	err := v.updateSettled(opSetAttr, f, []Ino{ino}, func(t *tx) error {
		r, err := v.getInode(ino)
		if err != nil {
			return err
		}
		if err := checkSetAttr(r, in); err != nil {
			return err
		}
		now := nowSpec()
		if in.Valid&SetSize != 0 {
			if isDir(r.Mode) {
				return ErrIsDir
			}
			if r.Mode&syscall.S_IFMT != syscall.S_IFREG {
				return ErrInvalid
			}
			if in.Size < r.Size {
				shrink = true
				if err := t.zeroTail(ino, in.Size); err != nil {
					return err
				}
				if err := t.put(inode.TruncKey(ino), inode.EncodeTruncItem(in.Size)); err != nil {
					return err
				}
			}
			r.Size = in.Size
			r.Mtime = now
		}
		if in.Valid&(SetSize|SetUid|SetGid) != 0 && !isDir(r.Mode) {
			if err := t.dropCapabilities(ino); err != nil {
				return err
			}
		}
		if in.Valid&SetMode != 0 {
			r.Mode = r.Mode&syscall.S_IFMT | in.Mode&^syscall.S_IFMT
		}
		if in.Valid&SetUid != 0 {
			r.Uid = in.Uid
		}
		if in.Valid&SetGid != 0 {
			r.Gid = in.Gid
		}
		if in.Valid&SetAtime != 0 {
			r.Atime = in.Atime
		}
		if in.Valid&SetAtimeNow != 0 {
			r.Atime = now
		}
		if in.Valid&SetMtime != 0 {
			r.Mtime = in.Mtime
		}
		if in.Valid&SetMtimeNow != 0 {
			r.Mtime = now
		}
		r.Ctime = now
		if in.Valid&SetCtime != 0 {
			r.Ctime = in.Ctime
		}
		if err := t.putInode(ino, r); err != nil {
			return err
		}
		t.touch(ino)
		a = attrOf(r, ino, v.bs)
		return nil
	})
	if err != nil {
		return Attr{}, err
	}
	if shrink {
		if err := v.deferFree(ino, v.finishTruncate(ino)); err != nil {
			return Attr{}, err
		}
	}
	return a, nil
}

// zeroTail clears the bytes of the block that holds size past size, so a
// later extension reads zeros there.
func (t *tx) zeroTail(ino Ino, size uint64) error {
	bs := int64(t.v.bs)
	if int64(size)%bs == 0 {
		return nil
	}
	return t.zeroPart(ino, int64(size)/bs, int64(size)%bs, bs)
}

// finishTruncate frees the blocks past the size the truncate item records,
// in bounded transactions; the last one removes the item. It finishes a
// range operation in progress first, so that what follows sees the
// block map whole. Lock held.
func (v *Volume) finishTruncate(ino Ino) error {
	if err := v.finishRange(ino); err != nil {
		return err
	}
	for {
		val, ok, err := v.tree.Get(inode.TruncKey(ino))
		if err != nil || !ok {
			return v.failIf(err)
		}
		size, err := inode.DecodeTruncItem(val)
		if err != nil {
			return asErrIO(err, ino)
		}
		from := (size + uint64(v.bs) - 1) / uint64(v.bs)
		done, err := v.freeChunk(ino, from, false)
		if err != nil || done {
			return err
		}
	}
}

// Extended attributes.

// xattrPrefixes are the namespaces stored. "system." holds POSIX ACLs,
// which txfs does not implement: refusing them makes cp and tar fall back
// to chmod, where storing them would silently lose the mode change.
var xattrPrefixes = []string{"user.", "trusted.", "security."}

func (v *Volume) checkXattrName(name string) error {
	if len(name) == 0 || len(name) > 255 {
		return fmt.Errorf("%w: attribute name of %d bytes", ErrInvalid, len(name))
	}
	for _, p := range xattrPrefixes {
		if strings.HasPrefix(name, p) && len(name) > len(p) {
			return nil
		}
	}
	return ErrNotSupported
}

func (v *Volume) xattrItem(ino Ino, name string) ([]inode.Xattr, error) {
	b, _, err := v.tree.Get(inode.XattrKey(ino, inode.NameHash(name)))
	if err != nil {
		return nil, v.fail(err)
	}
	es, err := inode.DecodeXattrs(b)
	return es, asErrIO(err, ino)
}

// updateXattr is update for a change of ino's attribute name: fn gets
// the inode and the attributes sharing name's item. Lock held.
func (v *Volume) updateXattr(op int, ino Ino, name string, freesSpace bool, fn func(t *tx, r *inode.Record, es []inode.Xattr) error) error {
	return v.update(op, v.metaOp(2, freesSpace), func(t *tx) error {
		r, err := v.getInode(ino)
		if err != nil {
			return err
		}
		es, err := v.xattrItem(ino, name)
		if err != nil {
			return err
		}
		return fn(t, r, es)
	})
}

// GetXattr returns the value of attribute name.
func (v *Volume) GetXattr(ino Ino, name string) ([]byte, error) {
	if err := v.checkXattrName(name); err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return nil, err
	}
	if _, err := v.getInode(ino); err != nil {
		return nil, err
	}
	es, err := v.xattrItem(ino, name)
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		if e.Name == name {
			return e.Value, nil
		}
	}
	return nil, ErrNoAttr
}

// MaxXattrValue is the largest value an attribute called name can have:
// the name and value share one tree item (about 1000 bytes with 4 KiB
// blocks, 16 KiB with 64 KiB blocks).
func (v *Volume) MaxXattrValue(name string) int { return v.maxValue() - 3 - len(name) }

// SetXattr sets attribute name. XattrCreate fails if it exists,
// XattrReplace if it does not.
func (v *Volume) SetXattr(ino Ino, name string, value []byte, flags uint32) error {
	if err := v.checkXattrName(name); err != nil {
		return err
	}
	if flags&^(XattrCreate|XattrReplace) != 0 {
		return ErrInvalid
	}
	if len(value) > v.MaxXattrValue(name) {
		return ErrAttrTooBig
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.updateXattr(opSetXattr, ino, name, false, func(t *tx, r *inode.Record, es []inode.Xattr) error {
		if err := checkChange(r); err != nil {
			return err
		}
		found := -1
		for i, e := range es {
			if e.Name == name {
				found = i
			}
		}
		if found >= 0 && flags&XattrCreate != 0 {
			return ErrExist
		}
		if found < 0 && flags&XattrReplace != 0 {
			return ErrNoAttr
		}
		e := inode.Xattr{Name: name, Value: append([]byte(nil), value...)}
		if found >= 0 {
			es[found] = e
		} else {
			es = append(es, e)
		}
		enc := inode.EncodeXattrs(es)
		if len(enc) > v.maxValue() {
			return ErrNoSpace // names colliding on one hash filled the item
		}
		if err := t.put(inode.XattrKey(ino, inode.NameHash(name)), enc); err != nil {
			return err
		}
		r.Ctime = nowSpec()
		if err := t.putInode(ino, r); err != nil {
			return err
		}
		t.touch(ino)
		return nil
	})
}

// ListXattr returns the attribute names, sorted.
func (v *Volume) ListXattr(ino Ino) ([]string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return nil, err
	}
	if _, err := v.getInode(ino); err != nil {
		return nil, err
	}
	var names []string
	var derr error
	err := v.tree.Ascend(inode.XattrKey(ino, 0), func(k btree.Key, val []byte) bool {
		if k.Ino != ino || k.Type != inode.TypeXattr {
			return false
		}
		es, err := inode.DecodeXattrs(val)
		if err != nil {
			derr = asErrIO(err, ino)
			return false
		}
		for _, e := range es {
			names = append(names, e.Name)
		}
		return true
	})
	if err != nil {
		return nil, v.fail(err)
	}
	sort.Strings(names)
	return names, derr
}

// RemoveXattr removes attribute name.
func (v *Volume) RemoveXattr(ino Ino, name string) error {
	if err := v.checkXattrName(name); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.update(opRemoveXattr, v.metaOp(2, true), func(t *tx) error {
		r, err := v.getInode(ino)
		if err != nil {
			return err
		}
		if err := checkChange(r); err != nil {
			return err
		}
		found, err := t.removeXattr(ino, name)
		if err != nil {
			return err
		}
		if !found {
			return ErrNoAttr
		}
		r.Ctime = nowSpec()
		if err := t.putInode(ino, r); err != nil {
			return err
		}
		t.touch(ino)
		return nil
	})
}

// removeXattr removes ino's attribute name in t and says whether it was
// there.
func (t *tx) removeXattr(ino Ino, name string) (bool, error) {
	v := t.v
	k := inode.XattrKey(ino, inode.NameHash(name))
	b, ok, err := v.tree.Get(k)
	if err != nil || !ok {
		return false, v.failIf(err)
	}
	es, err := inode.DecodeXattrs(b)
	if err != nil {
		return false, asErrIO(err, k.Ino)
	}
	out := es[:0]
	for _, e := range es {
		if e.Name != name {
			out = append(out, e)
		}
	}
	if len(out) == len(es) {
		return false, nil
	}
	if len(out) == 0 {
		return true, t.del(k)
	}
	return true, t.put(k, inode.EncodeXattrs(out))
}

// capabilityXattr holds a program's file capabilities (setcap). Linux
// removes it on every write, truncate and change of owner, whoever makes
// them, so that a changed program never keeps what was granted to the old
// one; the mount leaves this to txfs (FUSE's HANDLE_KILLPRIV_V2).
const capabilityXattr = "security.capability"

// dropCapabilities removes ino's capabilityXattr, if it has one, in t.
func (t *tx) dropCapabilities(ino Ino) error {
	_, err := t.removeXattr(ino, capabilityXattr)
	return err
}
