package txfs

import (
	"fmt"
	"syscall"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/inode"
)

// Inode records and their attributes: reading and writing a record, GetAttr,
// and SetAttr, whose change of size starts a truncate.

func (v *Volume) getInode(ino Ino) (*inode.Record, error) { return v.inodeIn(v.tree, ino) }

// inodeIn reads ino's record in tree: the live one, or a snapshot's.
func (v *Volume) inodeIn(tree *btree.Tree, ino Ino) (*inode.Record, error) {
	b, ok, err := tree.Get(inode.InodeKey(ino))
	if err != nil {
		return nil, v.fail(err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: inode %d", ErrNotExist, ino)
	}
	r, err := inode.DecodeRecord(ino, b)
	return r, asErrIO(err, ino)
}

// putInode stores ino's record, and notes that ino changed in this
// transaction: an fsync of ino waits for the unit that holds it.
func (t *tx) putInode(ino Ino, r *inode.Record) error {
	t.touch(ino)
	return t.put(inode.InodeKey(ino), r.Encode())
}

func attrOf(r *inode.Record, ino Ino, bs int) Attr {
	return Attr{Ino: ino, Gen: 1, Mode: r.Mode, Nlink: r.Nlink, Uid: r.Uid, Gid: r.Gid, Size: r.Size,
		Blocks: r.NBlocks * uint64(bs) / 512, Rdev: r.Rdev, Atime: r.Atime, Mtime: r.Mtime, Ctime: r.Ctime, Flags: r.Flags}
}

func isDir(mode uint32) bool { return mode&syscall.S_IFMT == syscall.S_IFDIR }

// GetAttr returns the attributes of ino.
func (v *Volume) GetAttr(ino Ino) (Attr, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.getAttrIn(nil, ino)
}

// getAttrIn is GetAttr in the tree of s (nil: the live one). Lock held.
func (v *Volume) getAttrIn(s *SnapshotView, ino Ino) (Attr, error) {
	tree, err := v.treeOf(s)
	if err != nil {
		return Attr{}, err
	}
	r, err := v.inodeIn(tree, ino)
	if err != nil {
		return Attr{}, err
	}
	return attrOf(r, ino, v.bs), nil
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
