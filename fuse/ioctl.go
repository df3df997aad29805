package fuse

import (
	"context"
	"encoding/binary"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"

	"github.com/txfs/txfs"
)

// The inode flags ioctls (chattr, lsattr, xfs_io chattr). The kernel never
// forwards them as the caller made them: the VFS answers FS_IOC_GETFLAGS,
// FS_IOC_SETFLAGS, FS_IOC_FSGETXATTR and FS_IOC_FSSETXATTR itself
// (fileattr_get, fileattr_set), and FUSE implements those by opening the
// inode (OPEN or OPENDIR, read-only) and sending an IOCTL of its own with
// the native command, FUSE_IOCTL_DIR for a directory, and the data as the
// kernel holds it (fuse_priv_ioctl): an int of 4 bytes for the flags,
// although the command numbers say long. So no FUSE_IOCTL_* flag or
// capability is needed for them, only regular files and directories get
// them, and 32-bit callers' FS_IOC32_* arrive as these. Two things follow
// that are easy to miss:
//
//   - FS_IOC_SETFLAGS first reads the current attributes with
//     FS_IOC_FSGETXATTR, not FS_IOC_GETFLAGS (vfs_fileattr_set asks for
//     neither form, and FUSE then sends the xattr one): without it chattr
//     fails with ENOTTY;
//   - the VFS has checked that the caller owns the inode and, to change
//     the immutable or append-only flag, has CAP_LINUX_IMMUTABLE, from the
//     flags that read returned.
//
// The engine checks the rules again and keeps the flags (txfs.SetFlags).
const (
	fsIocGetFlags   = 0x80086601 // FS_IOC_GETFLAGS, _IOR('f', 1, long)
	fsIocSetFlags   = 0x40086602 // FS_IOC_SETFLAGS, _IOW('f', 2, long)
	fsIocFSGetXattr = 0x801c581f // FS_IOC_FSGETXATTR, _IOR('X', 31, struct fsxattr)
	fsIocFSSetXattr = 0x401c5820 // FS_IOC_FSSETXATTR, _IOW('X', 32, struct fsxattr)

	// fsxattrSize is the size of struct fsxattr: xflags, extent size,
	// extent count, project ID, CoW extent size (4 bytes each), 8 bytes
	// of padding.
	fsxattrSize = 28
)

// xflags pairs each inode flag txfs keeps with its FS_XFLAG_* bit.
var xflags = [...]struct{ flag, xflag uint32 }{
	{txfs.FlagImmutable, 0x08}, // FS_XFLAG_IMMUTABLE
	{txfs.FlagAppend, 0x10},    // FS_XFLAG_APPEND
	{txfs.FlagNoAtime, 0x40},   // FS_XFLAG_NOATIME
	{txfs.FlagNoDump, 0x80},    // FS_XFLAG_NODUMP
}

// Ioctl implements fs.NodeIoctler for the inode flags ioctls. Every other
// command is ENOTTY, as for a filesystem that does not know it (and as the
// kernel makes of ENOSYS).
func (n *Node) Ioctl(ctx context.Context, f fs.FileHandle, cmd uint32, arg uint64, input []byte, output []byte) (int32, syscall.Errno) {
	ne := binary.NativeEndian
	switch cmd {
	case fsIocGetFlags, fsIocFSGetXattr:
		a, err := n.vol().GetAttr(n.ino())
		if err != nil {
			return 0, toErrno(err)
		}
		if (cmd == fsIocGetFlags && len(output) < 4) || (cmd == fsIocFSGetXattr && len(output) < fsxattrSize) {
			return 0, syscall.EINVAL
		}
		clear(output)
		if cmd == fsIocGetFlags {
			ne.PutUint32(output, a.Flags)
			return 0, 0
		}
		var x uint32
		for _, p := range xflags {
			if a.Flags&p.flag != 0 {
				x |= p.xflag
			}
		}
		ne.PutUint32(output, x)
		return 0, 0
	case fsIocSetFlags, fsIocFSSetXattr:
		var flags uint32
		switch {
		case cmd == fsIocSetFlags && len(input) >= 4:
			flags = ne.Uint32(input)
		case cmd == fsIocFSSetXattr && len(input) >= fsxattrSize:
			x := ne.Uint32(input)
			for _, p := range xflags {
				if x&p.xflag != 0 {
					flags |= p.flag
					x &^= p.xflag
				}
			}
			// Other flags, extent size hints and project IDs are not
			// kept; the extent count (offset 8) is only reported.
			if x != 0 || ne.Uint32(input[4:]) != 0 || ne.Uint32(input[12:]) != 0 || ne.Uint32(input[16:]) != 0 {
				return 0, syscall.EOPNOTSUPP
			}
		default:
			return 0, syscall.EINVAL
		}
		c := caller(ctx)
		return 0, toErrno(n.vol().SetFlags(n.ino(), flags, txfs.Owner{Uid: c.Uid, Gid: c.Gid}))
	}
	return 0, syscall.ENOTTY
}
