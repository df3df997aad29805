package txfs

import (
	"fmt"
	"syscall"

	"github.com/txfs/txfs/inode"
)

// Inode flags, as chattr(1) and lsattr(1) see them through the
// FS_IOC_GETFLAGS and FS_IOC_SETFLAGS ioctls. The values are Linux's
// FS_*_FL, stored as they are in the inode record (docs/FORMAT.md), so
// they are part of the on-disk format.
const (
	FlagImmutable = 0x10 // FS_IMMUTABLE_FL, chattr +i: no change at all, no new or removed names in a directory
	FlagAppend    = 0x20 // FS_APPEND_FL, chattr +a: data only added at the end; in a directory, names only added
	FlagNoDump    = 0x40 // FS_NODUMP_FL, chattr +d: kept for dump(8), which skips the file
	FlagNoAtime   = 0x80 // FS_NOATIME_FL, chattr +A: reads do not update atime

	// SupportedFlags are the flags txfs keeps. SetFlags refuses every
	// other one with ErrNotSupported, as tmpfs does and as ext4 does for
	// the flags it does not know.
	SupportedFlags = FlagImmutable | FlagAppend | FlagNoDump | FlagNoAtime

	// otherTypeFlags are the flags an inode that is neither a regular file
	// nor a directory may have (ext4's EXT4_OTHER_FLMASK).
	otherTypeFlags = FlagNoDump | FlagNoAtime
)

// Enforcement follows ext4 and the VFS (may_open, may_delete, may_create,
// vfs_link, may_setattr, xattr_permission, vfs_fallocate), so that it
// holds for every user of the engine, not only through the kernel: the
// kernel checks these flags only on the inodes of filesystems that show
// them to it, and a FUSE filesystem does not.

// immutable reports whether r may not change at all.
func immutable(r *inode.Record) bool { return r.Flags&FlagImmutable != 0 }

// fixed reports whether r may neither lose a name nor change its content
// or attributes other than by appending: immutable or append-only.
func fixed(r *inode.Record) bool { return r.Flags&(FlagImmutable|FlagAppend) != 0 }

// checkWrite refuses a write of n bytes at off to r: none to an
// immutable file (even of nothing, as ext4), and only at the end of an
// append-only one.
func checkWrite(r *inode.Record, off int64, n int) error {
	if immutable(r) {
		return fmt.Errorf("%w: the file is immutable", ErrPermission)
	}
	if r.Flags&FlagAppend != 0 && n > 0 && uint64(off) != r.Size {
		return fmt.Errorf("%w: the file is append-only; a write at %d is not at its end (%d)", ErrPermission, off, r.Size)
	}
	return nil
}

// checkChange refuses any change to r but an append: hole punches,
// truncates, xattr changes.
func checkChange(r *inode.Record) error {
	if fixed(r) {
		return fmt.Errorf("%w: the inode is immutable or append-only", ErrPermission)
	}
	return nil
}

// checkSetAttr refuses what ext4_setattr refuses: everything on an
// immutable inode; on an append-only one everything but setting both
// times to now (touch, utimes with no times), which the VFS tells apart
// from explicit times.
func checkSetAttr(r *inode.Record, in *SetAttrIn) error {
	if immutable(r) {
		return fmt.Errorf("%w: the inode is immutable", ErrPermission)
	}
	const touch = SetAtimeNow | SetMtimeNow
	if r.Flags&FlagAppend != 0 && in.Valid != 0 && in.Valid != touch {
		return fmt.Errorf("%w: the inode is append-only", ErrPermission)
	}
	return nil
}

// checkAddName refuses a new name in directory dir, which is immutable.
func checkAddName(dir *inode.Record) error {
	if immutable(dir) {
		return fmt.Errorf("%w: the directory is immutable", ErrPermission)
	}
	return nil
}

// checkRemoveName refuses to take the name of r away from dir: neither
// may be immutable or append-only.
func checkRemoveName(dir, r *inode.Record) error {
	if fixed(dir) {
		return fmt.Errorf("%w: the directory is immutable or append-only", ErrPermission)
	}
	if fixed(r) {
		return fmt.Errorf("%w: the inode is immutable or append-only", ErrPermission)
	}
	return nil
}

// checkOpen refuses what may_open refuses for open(2) flags: writing to an
// immutable file, writing to an append-only file without O_APPEND, and
// O_TRUNC on either.
func checkOpen(r *inode.Record, flags int) error {
	write := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	switch {
	case immutable(r) && (write || flags&syscall.O_TRUNC != 0):
		return fmt.Errorf("%w: the file is immutable", ErrPermission)
	case r.Flags&FlagAppend != 0 && (write && flags&syscall.O_APPEND == 0 || flags&syscall.O_TRUNC != 0):
		return fmt.Errorf("%w: the file is append-only: open it with O_APPEND, without O_TRUNC", ErrPermission)
	}
	return nil
}

// OpenFileFlags takes a reference on ino as OpenFile does, for an open(2)
// with flags, which the inode's flags may forbid (ErrPermission).
func (v *Volume) OpenFileFlags(ino Ino, flags int) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return err
	}
	r, err := v.getInode(ino)
	if err != nil {
		return err
	}
	if err := checkOpen(r, flags); err != nil {
		return err
	}
	v.opens[ino]++
	return nil
}

// SetFlags sets ino's inode flags (Attr.Flags has them) as
// FS_IOC_SETFLAGS does, asked by by: only the owner or root may, and only
// root (which stands for CAP_LINUX_IMMUTABLE) may set or clear
// FlagImmutable and FlagAppend, and while an inode stays immutable no
// other flag changes, as on ext4 (ErrPermission). Flags outside
// SupportedFlags, and flags other than FlagNoDump and FlagNoAtime on an
// inode that is neither a regular file nor a directory, are
// ErrNotSupported, and nothing changes. ctime changes, as on ext4.
func (v *Volume) SetFlags(ino Ino, flags uint32, by Owner) error {
	if flags&^SupportedFlags != 0 {
		return fmt.Errorf("%w: inode flags %#x", ErrNotSupported, flags&^SupportedFlags)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.update(opSetAttr, v.metaOp(1, false), func(t *tx) error {
		r, err := v.getInode(ino)
		if err != nil {
			return err
		}
		if mt := r.Mode & syscall.S_IFMT; mt != syscall.S_IFREG && mt != syscall.S_IFDIR && flags&^otherTypeFlags != 0 {
			return fmt.Errorf("%w: inode flags %#x on file type %#o", ErrNotSupported, flags, mt)
		}
		if by.Uid != 0 && by.Uid != r.Uid {
			return fmt.Errorf("%w: only the owner changes inode flags", ErrPermission)
		}
		if by.Uid != 0 && (r.Flags^flags)&(FlagImmutable|FlagAppend) != 0 {
			return fmt.Errorf("%w: only root sets or clears the immutable and append-only flags", ErrPermission)
		}
		if immutable(r) && flags&FlagImmutable != 0 && flags != r.Flags {
			return fmt.Errorf("%w: the inode is immutable: clear that flag first", ErrPermission)
		}
		r.Flags = flags
		r.Ctime = nowSpec()
		return t.putInode(ino, r)
	})
}

// checkRenameFlags refuses a rename that takes the name of sr away from
// op, where it is, and gives a name in np (replacing dr's, when dr is
// not nil): as ext4, it may_delete both names and may_create the new one.
func checkRenameFlags(op, sr, np, dr *inode.Record) error {
	if err := checkRemoveName(op, sr); err != nil {
		return err
	}
	if dr != nil {
		return checkRemoveName(np, dr)
	}
	return checkAddName(np)
}

// checkCopyDest refuses a copy_file_range of n bytes into dst at off
// before it starts, even when nothing would be copied, as the kernel
// does. Each transaction of the copy checks again.
func (v *Volume) checkCopyDest(dst Ino, off, n int64) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return err
	}
	r, err := v.getInode(dst)
	if err != nil {
		return err
	}
	return checkWrite(r, off, int(min(n, 1<<30)))
}
