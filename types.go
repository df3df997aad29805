package txfs

import (
	"syscall"

	"github.com/txfs/txfs/inode"
)

// Ino is an inode number. Inode numbers are never reused, so the
// generation of every inode is 1.
type Ino = inode.Ino

// RootIno is the inode of the root directory.
const RootIno = inode.RootIno

// MaxNameLen is the longest name of a directory entry, in bytes.
const MaxNameLen = 255

// Timespec is a timestamp with nanoseconds, as the inode record keeps it.
type Timespec = inode.Timespec

// Attr is what GetAttr reports of an inode. Mode holds the Linux file type
// bits (syscall.S_IFREG...) and the permission bits.
type Attr struct {
	Ino    Ino
	Gen    uint64
	Mode   uint32
	Nlink  uint32
	Uid    uint32
	Gid    uint32
	Size   uint64
	Blocks uint64 // 512-byte units of stored data
	Rdev   uint64
	Atime  Timespec
	Mtime  Timespec
	Ctime  Timespec
	Flags  uint32 // inode flags: FlagImmutable, FlagAppend, FlagNoDump, FlagNoAtime
}

// IsDir reports whether the inode is a directory.
func (a *Attr) IsDir() bool { return a.Mode&syscall.S_IFMT == syscall.S_IFDIR }

// SetAttr fields; Valid says which are set.
const (
	SetMode = 1 << iota
	SetUid
	SetGid
	SetSize
	SetAtime
	SetMtime
	SetCtime
	SetAtimeNow
	SetMtimeNow
)

// SetAttrIn is the argument of SetAttr.
type SetAttrIn struct {
	Valid uint32
	Mode  uint32 // permission bits and S_ISUID/S_ISGID/S_ISVTX; the type bits are ignored
	Uid   uint32
	Gid   uint32
	Size  uint64
	Atime Timespec
	Mtime Timespec
	Ctime Timespec
}

// Rename flags, as renameat2(2). RenameWhiteout leaves a whiteout (a
// character device 0/0 with mode 0, which overlayfs reads as "deleted
// here") at the source name, in the same transaction.
const (
	RenameNoReplace = 1 << 0
	RenameExchange  = 1 << 1
	RenameWhiteout  = 1 << 2
)

// Xattr flags, as setxattr(2).
const (
	XattrCreate  = 1
	XattrReplace = 2
)

// DirEntry is one entry that Readdir returns. Next is the cookie that
// resumes the listing right after this entry.
type DirEntry struct {
	Name string
	Ino  Ino
	Mode uint32 // file type bits only
	Next uint64
}

// Statfs describes the volume's space.
type Statfs struct {
	BlockSize uint32
	Blocks    uint64 // total data blocks
	Bfree     uint64
	Bavail    uint64
	Files     uint64 // inodes in use plus those that could still be made
	Ffree     uint64
	NameLen   uint32
}

// Owner is who creates an inode, or who asks for a change only some may
// make (SetFlags).
type Owner struct {
	Uid uint32
	Gid uint32
}
