package txfs

import (
	"fmt"

	"github.com/txfs/txfs/inode"
)

// Rename: a name moves, replacing another or trading places with it,
// atomically (docs/DESIGN.md, "Rename").

// Rename moves oldName in oldDir to newName in newDir, atomically. With
// RenameNoReplace an existing target is an error; with RenameExchange both
// must exist and trade places; with RenameWhiteout (alone or with
// RenameNoReplace) oldName is left naming a new whiteout, owned by root
// (RenameAs names another owner).
func (v *Volume) Rename(oldDir Ino, oldName string, newDir Ino, newName string, flags uint32) error {
	return v.RenameAs(oldDir, oldName, newDir, newName, flags, Owner{})
}

// RenameAs is Rename by o, who owns the whiteout RenameWhiteout leaves.
func (v *Volume) RenameAs(oldDir Ino, oldName string, newDir Ino, newName string, flags uint32, o Owner) error {
	if flags&^(RenameNoReplace|RenameExchange|RenameWhiteout) != 0 ||
		flags&RenameExchange != 0 && flags != RenameExchange {
		return fmt.Errorf("%w: rename flags %#x", ErrInvalid, flags)
	}
	if err := checkName(oldName); err != nil {
		return err
	}
	if err := checkName(newName); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	var unlinked Ino // the inode a replaced name left with none
	err := v.update(opRename, v.renameOp(), func(t *tx) error {
		op, err := v.getDir(oldDir)
		if err != nil {
			return err
		}
		np := op
		if newDir != oldDir {
			if np, err = v.getDir(newDir); err != nil {
				return err
			}
		}
		src, ok, err := v.lookupEntry(oldDir, oldName)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotExist
		}
		dst, dstOK, err := v.lookupEntry(newDir, newName)
		if err != nil {
			return err
		}
		if flags&RenameExchange != 0 && !dstOK {
			return ErrNotExist
		}
		if flags&RenameNoReplace != 0 && dstOK {
			return ErrExist
		}
		if dstOK && dst.Ino == src.Ino {
			return nil // two names of one inode: nothing to do
		}
		sr, err := v.getInode(src.Ino)
		if err != nil {
			return err
		}
		// A directory may not move under itself.
		if isDir(sr.Mode) && newDir != oldDir {
			if err := v.checkNotAncestor(src.Ino, newDir); err != nil {
				return err
			}
		}
		var dr *inode.Record
		if dstOK {
			if dr, err = v.getInode(dst.Ino); err != nil {
				return err
			}
			if flags&RenameExchange != 0 && isDir(dr.Mode) && newDir != oldDir {
				if err := v.checkNotAncestor(dst.Ino, oldDir); err != nil {
					return err
				}
			}
		}
		if err := checkRenameFlags(op, sr, np, dr); err != nil {
			return err
		}
		now := nowSpec()
		op.Mtime, op.Ctime = now, now
		np.Mtime, np.Ctime = now, now
		sr.Ctime = now
		if flags&RenameExchange != 0 {
			dr.Ctime = now
			if err := t.removeEntry(oldDir, oldName); err != nil {
				return err
			}
			if err := t.removeEntry(newDir, newName); err != nil {
				return err
			}
			if err := t.addEntry(oldDir, inode.Dirent{Name: oldName, Ino: dst.Ino, Type: dst.Type}); err != nil {
				return err
			}
			if err := t.addEntry(newDir, inode.Dirent{Name: newName, Ino: src.Ino, Type: src.Type}); err != nil {
				return err
			}
			if newDir != oldDir {
				if isDir(sr.Mode) {
					sr.Parent = newDir
					op.Nlink--
					np.Nlink++
				}
				if isDir(dr.Mode) {
					dr.Parent = oldDir
					np.Nlink--
					op.Nlink++
				}
			}
			if err := t.putInode(dst.Ino, dr); err != nil {
				return err
			}
		} else {
			if dstOK {
				switch {
				case isDir(dr.Mode) && !isDir(sr.Mode):
					return ErrIsDir
				case !isDir(dr.Mode) && isDir(sr.Mode):
					return ErrNotDir
				case isDir(dr.Mode):
					empty, err := v.dirEmpty(dst.Ino)
					if err != nil {
						return err
					}
					if !empty {
						return ErrNotEmpty
					}
					np.Nlink--
				}
				if err := t.removeEntry(newDir, newName); err != nil {
					return err
				}
				if err := t.dropLink(dst.Ino, dr, now); err != nil {
					return err
				}
			}
			if err := t.removeEntry(oldDir, oldName); err != nil {
				return err
			}
			if err := t.addEntry(newDir, inode.Dirent{Name: newName, Ino: src.Ino, Type: src.Type}); err != nil {
				return err
			}
			if isDir(sr.Mode) && newDir != oldDir {
				sr.Parent = newDir
				op.Nlink--
				np.Nlink++
			}
			if flags&RenameWhiteout != 0 {
				if err := t.addWhiteout(oldDir, oldName, o, now); err != nil {
					return err
				}
			}
		}
		if err := t.putInode(src.Ino, sr); err != nil {
			return err
		}
		if err := t.putInode(oldDir, op); err != nil {
			return err
		}
		if newDir != oldDir {
			if err := t.putInode(newDir, np); err != nil {
				return err
			}
		}
		if dstOK {
			if dr.Nlink == 0 {
				unlinked = dst.Ino
			}
		}
		return nil
	})
	if err != nil || unlinked == 0 {
		return err
	}
	return v.deferFree(unlinked, v.finishFree(unlinked))
}

// checkNotAncestor fails with ErrInvalid if dir is inside (or is) anc.
func (v *Volume) checkNotAncestor(anc, dir Ino) error {
	for d := dir; d != 0; {
		if d == anc {
			return fmt.Errorf("%w: a directory cannot move into itself", ErrInvalid)
		}
		if d == RootIno {
			return nil
		}
		r, err := v.getInode(d)
		if err != nil {
			return err
		}
		d = r.Parent
	}
	return nil
}
