// Package fuse serves a txfs volume to the kernel through go-fuse v2.
//
// It is a thin adapter: every request becomes one or a few calls on
// *txfs.Volume, and every txfs error becomes an errno in exactly one place
// (toErrno, below). The adapter keeps no file data and no directory
// contents of its own; the engine copies whatever it keeps, so the
// request buffers go-fuse reuses are safe.
//
// Permission checks are the kernel's (the mount uses default_permissions).
// What ext4 does in the filesystem itself rather than in the VFS, the
// adapter does here:
//
//   - write, truncate and chown clear S_ISUID, and S_ISGID when group
//     execute is set or the caller is not in the file's group (writes and
//     truncates by root keep them); the kernel's own request to clear
//     them comes as a chmod from a caller who may not be the owner, and
//     chown(path, -1, -1) comes as a SETATTR that names nothing;
//   - a new inode in a set-group-ID directory takes the directory's group,
//     and a new subdirectory is set-group-ID too;
//   - only root changes the owner; the owner changes the group only to a
//     group it belongs to (the caller's groups are read from
//     /proc/PID/status);
//   - chmod by a caller that is not in the file's group drops S_ISGID.
//
// The kernel applied the caller's umask before a create reaches us; the
// daemon applies none of its own.
//
// Inode flags (chattr +i, +a, +d, +A) are the engine's: it keeps them and
// refuses what they forbid, since the kernel does not know a FUSE inode's
// flags and so checks none. ioctl.go answers the flag ioctls the kernel
// sends, and Open passes its flags to the engine, which refuses writing to
// an immutable file and writing to an append-only one without O_APPEND.
//
// What keeps an inode with no name: an open file or directory holds an
// engine open reference until RELEASE. A directory removed by rmdir or
// rename while the kernel still has its inode (a process's current
// directory holds no descriptor) is held by its Node until the kernel
// forgets it (OnForget). References still held when the mount ends are
// freed by Volume.Close.
//
// Locks: the daemon keeps POSIX (fcntl, OFD) and BSD (flock) locks
// itself, in memory per inode (locks.go), and the mount sets EnableLocks
// so that the kernel forwards them. Closing a descriptor drops the
// process's POSIX locks on the file (FLUSH), and the last close of an
// open file drops its OFD locks and its flock (RELEASE). Locks live as
// long as the mount; they are never written to the image.
package fuse

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/txfs/txfs"
)

// Linux constants that package syscall does not have.
const (
	seekData = 3 // SEEK_DATA
	seekHole = 4 // SEEK_HOLE

	fallocKeepSize      = 0x01 // FALLOC_FL_KEEP_SIZE
	fallocPunchHole     = 0x02 // FALLOC_FL_PUNCH_HOLE
	fallocCollapseRange = 0x08 // FALLOC_FL_COLLAPSE_RANGE
	fallocZeroRange     = 0x10 // FALLOC_FL_ZERO_RANGE
	fallocInsertRange   = 0x20 // FALLOC_FL_INSERT_RANGE

	renameNoReplace = 1 << 0 // RENAME_NOREPLACE
	renameExchange  = 1 << 1 // RENAME_EXCHANGE
	renameWhiteout  = 1 << 2 // RENAME_WHITEOUT
)

// blockSize is what stat reports as st_blksize, the preferred I/O size.
// stdio and cp size their buffers by it; every request costs a round trip
// to the daemon, so bigger than a page is cheaper.
const blockSize = 128 << 10

// readdirBatch is how many entries a directory handle fetches from the
// engine at a time.
const readdirBatch = 256

// toErrno is the one place where txfs errors become errnos.
func toErrno(err error) syscall.Errno {
	return txfs.ToErrno(err)
}

// filesystem is what all nodes of one mount share.
type filesystem struct {
	v     *txfs.Volume
	locks lockTable
	views views      // the snapshots shown in SnapshotsDir
	known knownNodes // every inode the kernel has (invalidate.go)
}

// Node is one txfs inode as go-fuse sees it. go-fuse keeps one Node per
// inode number (StableAttr.Ino), so hard links share their Node.
type Node struct {
	fs.Inode

	fsys *filesystem

	// mode is the last mode this adapter saw for the inode. Every mode
	// change goes through this Node (Setattr), so it is exact; Write uses
	// it to skip a GetAttr when no set-ID bit can need clearing.
	mode atomic.Uint32

	// held says that the Node holds an engine open reference on its
	// directory, which Rmdir or Rename removed while the kernel still had
	// it; OnForget drops it.
	held atomic.Bool

	// changedBehind says that the file's bytes changed behind the
	// kernel's back since its last open (invalidate.go): the next open
	// does not keep the kernel's pages.
	changedBehind atomic.Bool
}

func newRoot(v *txfs.Volume) *Node {
	return &Node{fsys: &filesystem{v: v}}
}

func (n *Node) vol() *txfs.Volume { return n.fsys.v }

func (n *Node) ino() txfs.Ino { return n.StableAttr().Ino }

// setAttrOut fills out from a, and remembers the mode.
func (n *Node) setAttrOut(out *fuse.Attr, a *txfs.Attr) {
	n.mode.Store(a.Mode)
	fillAttr(out, a)
}

func fillAttr(out *fuse.Attr, a *txfs.Attr) {
	out.Ino = a.Ino
	out.Size = a.Size
	out.Blocks = a.Blocks
	out.Atime = uint64(a.Atime.Sec)
	out.Atimensec = a.Atime.Nsec
	out.Mtime = uint64(a.Mtime.Sec)
	out.Mtimensec = a.Mtime.Nsec
	out.Ctime = uint64(a.Ctime.Sec)
	out.Ctimensec = a.Ctime.Nsec
	out.Mode = a.Mode
	out.Nlink = a.Nlink
	out.Uid = a.Uid
	out.Gid = a.Gid
	// The kernel encodes rdev for FUSE as new_encode_dev, which equals
	// the low 32 bits of the glibc dev_t for every device number that
	// fits; Mknod stores what the kernel sent.
	out.Rdev = uint32(a.Rdev)
	out.Blksize = blockSize
}

// newChild returns the go-fuse Inode for a, which the engine just looked
// up or made in n, and fills out.
func (n *Node) newChild(ctx context.Context, a *txfs.Attr, out *fuse.EntryOut) *fs.Inode {
	child := n.NewInode(ctx, &Node{fsys: n.fsys}, fs.StableAttr{
		Mode: a.Mode & syscall.S_IFMT,
		Ino:  a.Ino,
		Gen:  1, // txfs never reuses inode numbers
	})
	// NewInode returns the existing Inode if go-fuse knows a.Ino already
	// (a hard link, or a lookup racing another): fill that one.
	cn := child.Operations().(*Node)
	cn.setAttrOut(&out.Attr, a)
	n.fsys.known.add(cn)
	return child
}

// caller returns who sent the request. Requests the kernel makes on its
// own behalf have no caller; they are treated as root's.
func caller(ctx context.Context) *fuse.Caller {
	if c, ok := fuse.FromContext(ctx); ok {
		return c
	}
	return &fuse.Caller{}
}

// inGroup reports whether the caller belongs to gid: its fsgid, or one of
// the supplementary groups in /proc/PID/status.
func inGroup(c *fuse.Caller, gid uint32) bool {
	if c.Gid == gid {
		return true
	}
	if c.Pid == 0 {
		return false
	}
	groups, err := procGroups(c.Pid)
	if err != nil {
		return false
	}
	for _, g := range groups {
		if g == gid {
			return true
		}
	}
	return false
}

// procGroups reads the supplementary groups of pid from /proc.
func procGroups(pid uint32) ([]uint32, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "Groups:")
		if !ok {
			continue
		}
		var groups []uint32
		for _, f := range strings.Fields(line) {
			g, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return nil, err
			}
			groups = append(groups, uint32(g))
		}
		return groups, nil
	}
	return nil, fmt.Errorf("no Groups line in /proc/%d/status", pid)
}

// mayWrite reports whether c may write the file a by its permission bits.
func mayWrite(c *fuse.Caller, a *txfs.Attr) bool {
	switch {
	case c.Uid == 0:
		return true
	case c.Uid == a.Uid:
		return a.Mode&syscall.S_IWUSR != 0
	case inGroup(c, a.Gid):
		return a.Mode&syscall.S_IWGRP != 0
	}
	return a.Mode&syscall.S_IWOTH != 0
}

// killPriv returns mode without the set-ID bits that a write, truncate or
// chown by c clears on a file of group gid: S_ISUID always; S_ISGID when
// group execute is set, or when c is neither root nor in the group
// (without group execute S_ISGID is a mandatory-locking mark, which the
// group's members keep: setattr_should_drop_sgid in the kernel).
func killPriv(mode uint32, c *fuse.Caller, gid uint32) uint32 {
	mode &^= syscall.S_ISUID
	if mode&syscall.S_ISGID != 0 && (mode&syscall.S_IXGRP != 0 || (c.Uid != 0 && !inGroup(c, gid))) {
		mode &^= syscall.S_ISGID
	}
	return mode
}

// newOwner returns the owner of an inode the caller makes in n, and
// whether n is a set-group-ID directory.
func (n *Node) newOwner(ctx context.Context) (txfs.Owner, bool, syscall.Errno) {
	c := caller(ctx)
	o := txfs.Owner{Uid: c.Uid, Gid: c.Gid}
	dir, err := n.vol().GetAttr(n.ino())
	if err != nil {
		return o, false, toErrno(err)
	}
	if dir.Mode&syscall.S_ISGID != 0 {
		o.Gid = dir.Gid
		return o, true, 0
	}
	return o, false, 0
}

// Lookup implements fs.NodeLookuper.
func (n *Node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if reservedName(n.ino(), name) {
		return n.lookupSnapshots(ctx, out), 0
	}
	a, err := n.vol().Lookup(n.ino(), name)
	if err != nil {
		return nil, toErrno(err)
	}
	return n.newChild(ctx, &a, out), 0
}

// Getattr implements fs.NodeGetattrer.
func (n *Node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	a, err := n.vol().GetAttr(n.ino())
	if err != nil {
		return toErrno(err)
	}
	n.setAttrOut(&out.Attr, &a)
	return 0
}

// Setattr implements fs.NodeSetattrer: chmod, chown, truncate, utimes.
// The engine sets ctime.
func (n *Node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	c := caller(ctx)
	root := c.Uid == 0
	var sa txfs.SetAttrIn

	// chown(path, -1, -1) arrives naming nothing to set: the kernel
	// drops the mode change it computed (txfs clears set-ID bits
	// itself, HANDLE_KILLPRIV_V2) and sends ctime only with writeback
	// caching. On ext4 it is still a chown: ctime moves and the set-ID
	// bits go (the kernel removes security.capability itself, with
	// REMOVEXATTR, before). A write by a caller who must clear
	// privileges sends the same request first (file_remove_privs).
	chownNothing := in.Valid&^(fuse.FATTR_FH|fuse.FATTR_LOCKOWNER) == 0

	var cur txfs.Attr
	if chownNothing || in.Valid&(fuse.FATTR_MODE|fuse.FATTR_UID|fuse.FATTR_GID|fuse.FATTR_SIZE|fuse.FATTR_KILL_SUIDGID) != 0 {
		var err error
		if cur, err = n.vol().GetAttr(n.ino()); err != nil {
			return toErrno(err)
		}
	}
	isDir := cur.Mode&syscall.S_IFMT == syscall.S_IFDIR
	gid := cur.Gid // the group after this call

	if in.Valid&fuse.FATTR_UID != 0 {
		// Only root gives a file away; the owner may "change" it to
		// itself (chown_ok in the kernel).
		if !root && (c.Uid != cur.Uid || in.Uid != cur.Uid) {
			return syscall.EPERM
		}
		sa.Valid |= txfs.SetUid
		sa.Uid = in.Uid
	}
	if in.Valid&fuse.FATTR_GID != 0 {
		if !root && (c.Uid != cur.Uid || (in.Gid != cur.Gid && !inGroup(c, in.Gid))) {
			return syscall.EPERM
		}
		sa.Valid |= txfs.SetGid
		sa.Gid = in.Gid
		gid = in.Gid
	}
	if in.Valid&fuse.FATTR_MODE != 0 {
		mode := in.Mode & 07777
		// Only the owner changes the mode. From anyone else a mode is
		// the kernel clearing set-ID bits before a write or truncate
		// (file_remove_privs), which anyone may: the current mode less
		// some of them.
		const setID = syscall.S_ISUID | syscall.S_ISGID
		if !root && c.Uid != cur.Uid && ((mode|setID) != (cur.Mode&07777)|setID || mode&^cur.Mode != 0) {
			return syscall.EPERM
		}
		// S_ISGID stays only for a member of the file's group, and on a
		// chown of its old group too.
		if !root && mode&syscall.S_ISGID != 0 && (!inGroup(c, gid) || (gid != cur.Gid && !inGroup(c, cur.Gid))) {
			mode &^= syscall.S_ISGID
		}
		sa.Valid |= txfs.SetMode
		sa.Mode = mode
	} else {
		// chown clears the set-ID bits of everything but directories,
		// even for root; truncate by anyone but root clears them. (The
		// kernel usually sends the mode change itself; doing it here too
		// covers the requests where it does not.)
		kill := ((in.Valid&(fuse.FATTR_UID|fuse.FATTR_GID) != 0 || chownNothing) && !isDir) ||
			(in.Valid&(fuse.FATTR_SIZE|fuse.FATTR_KILL_SUIDGID) != 0 && !root)
		if kill {
			if m := killPriv(cur.Mode, c, cur.Gid); m != cur.Mode {
				// Clearing them is a change of mode, which
				// chown leaves to the owner (EPERM on ext4);
				// a caller that may write the file could
				// clear them by writing anyway.
				if chownNothing && !root && c.Uid != cur.Uid && !mayWrite(c, &cur) {
					return syscall.EPERM
				}
				sa.Valid |= txfs.SetMode
				sa.Mode = m & 07777
			}
		}
	}

	if in.Valid&fuse.FATTR_SIZE != 0 {
		sa.Valid |= txfs.SetSize
		sa.Size = in.Size
	}
	// UTIME_NOW arrives as FATTR_ATIME|FATTR_ATIME_NOW, UTIME_OMIT as
	// neither bit.
	if in.Valid&fuse.FATTR_ATIME_NOW != 0 {
		sa.Valid |= txfs.SetAtimeNow
	} else if in.Valid&fuse.FATTR_ATIME != 0 {
		sa.Valid |= txfs.SetAtime
		sa.Atime = txfs.Timespec{Sec: int64(in.Atime), Nsec: in.Atimensec}
	}
	if in.Valid&fuse.FATTR_MTIME_NOW != 0 {
		sa.Valid |= txfs.SetMtimeNow
	} else if in.Valid&fuse.FATTR_MTIME != 0 {
		sa.Valid |= txfs.SetMtime
		sa.Mtime = txfs.Timespec{Sec: int64(in.Mtime), Nsec: in.Mtimensec}
	}

	var a txfs.Attr
	var err error
	if sa.Valid == 0 && !chownNothing {
		a, err = n.vol().GetAttr(n.ino())
	} else {
		a, err = n.vol().SetAttr(n.ino(), &sa)
	}
	if err != nil {
		return toErrno(err)
	}
	n.setAttrOut(&out.Attr, &a)
	return 0
}

// fileHandle is an open regular file. All I/O goes through the Node; the
// handle only marks the open reference the engine holds until Release,
// and names the open file whose locks Release drops.
type fileHandle struct {
	_ byte // not zero-sized, so that every handle has its own address
}

// open takes the engine's open reference and applies O_TRUNC. The engine
// refuses what the inode flags forbid (writing to an immutable file,
// writing to an append-only one without O_APPEND): the kernel checks
// those flags only where it knows them, and it does not know a FUSE
// file's.
func (n *Node) open(ctx context.Context, flags uint32) (fs.FileHandle, syscall.Errno) {
	ino := n.ino()
	if err := n.vol().OpenFileFlags(ino, int(flags)); err != nil {
		return nil, toErrno(err)
	}
	// Without FUSE_ATOMIC_O_TRUNC (go-fuse does not ask for it) the
	// kernel truncates with SETATTR before OPEN; handle it here anyway in
	// case a kernel passes it.
	if flags&syscall.O_TRUNC != 0 && flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		var out fuse.AttrOut
		in := fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{Valid: fuse.FATTR_SIZE}}
		if errno := n.Setattr(ctx, nil, &in, &out); errno != 0 {
			releaseLogged(n.vol(), ino)
			return nil, errno
		}
	}
	return &fileHandle{}, 0
}

// Open implements fs.NodeOpener. FOPEN_KEEP_CACHE keeps the pages the
// kernel has cached of the file: they are what txfs holds, since every
// change to a file's bytes through the mount passes through the kernel
// (writes fill its cache; truncate, hole punches, zeroed ranges and
// copy_file_range drop the pages they change), and the mount asks for no
// invalidation on mtime changes (ExplicitDataCacheControl, mount.go).
// Without it every open would read the whole file again. After a change
// behind the kernel's back (Server.InvalidateFile, InvalidateAll) the
// open drops the file's pages, as well as the notification did.
func (n *Node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	changed := n.changedBehind.Swap(false)
	fh, errno := n.open(ctx, flags)
	switch {
	case errno != 0:
		if changed {
			n.changedBehind.Store(true)
		}
		return nil, 0, errno
	case changed:
		return fh, 0, 0
	}
	return fh, fuse.FOPEN_KEEP_CACHE, 0
}

// Release implements fs.NodeReleaser: the engine drops the open reference,
// and the data of an unlinked file with it when it was the last.
func (n *Node) Release(ctx context.Context, f fs.FileHandle) syscall.Errno {
	n.fsys.locks.releaseHandle(n.ino(), f)
	return toErrno(n.vol().Release(n.ino()))
}

// Getlk implements fs.NodeGetlker (locks.go).
func (n *Node) Getlk(ctx context.Context, f fs.FileHandle, owner uint64, lk *fuse.FileLock, flags uint32, out *fuse.FileLock) syscall.Errno {
	return n.fsys.locks.getlk(n.ino(), owner, lk, flags, out)
}

// Setlk implements fs.NodeSetlker (locks.go).
func (n *Node) Setlk(ctx context.Context, f fs.FileHandle, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return n.fsys.locks.setlk(ctx, n.ino(), f, owner, lk, flags, false)
}

// Setlkw implements fs.NodeSetlkwer (locks.go): it waits for the lock.
func (n *Node) Setlkw(ctx context.Context, f fs.FileHandle, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return n.fsys.locks.setlk(ctx, n.ino(), f, owner, lk, flags, true)
}

// Create implements fs.NodeCreater: a new regular file, opened.
func (n *Node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	o, _, errno := n.newOwner(ctx)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	// The kernel looks a name up before it creates it and holds the
	// directory lock meanwhile, so EEXIST here is a real race: report
	// it rather than open a file whose permissions the kernel did not
	// check.
	a, err := n.vol().Create(n.ino(), name, mode&07777, o)
	if err != nil {
		return nil, nil, 0, toErrno(err)
	}
	child := n.newChild(ctx, &a, out)
	cn := child.Operations().(*Node)
	fh, errno := cn.open(ctx, flags&^syscall.O_TRUNC)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return child, fh, fuse.FOPEN_KEEP_CACHE, 0
}

// Tmpfile implements fs.NodeTmpfiler: open(dir, O_TMPFILE) makes a regular
// file with no name, opened, owned as Create's files are. The engine keeps
// it as an orphan until linkat names it (Link), so it is freed at the last
// close, or at the next mount after a crash.
func (n *Node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	o, _, errno := n.newOwner(ctx)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	a, err := n.vol().Tmpfile(n.ino(), mode&07777, o)
	if err != nil {
		return nil, nil, 0, toErrno(err)
	}
	// The engine took the open reference Release drops; O_TRUNC means
	// nothing for an empty file.
	return n.newChild(ctx, &a, out), &fileHandle{}, 0, 0
}

// Read implements fs.NodeReader.
func (n *Node) Read(ctx context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	nr, err := n.vol().Read(n.ino(), dest, off)
	if err != nil {
		return nil, toErrno(err)
	}
	return fuse.ReadResultData(dest[:nr]), 0
}

// Write implements fs.NodeWriter. A write by anyone but root clears the
// set-ID bits first, as ext4 does. The engine copies data before it
// returns.
func (n *Node) Write(ctx context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	ino := n.ino()
	if caller(ctx).Uid != 0 {
		if m := n.mode.Load(); m&(syscall.S_ISUID|syscall.S_ISGID) != 0 {
			if errno := n.clearSetID(ctx, ino); errno != 0 {
				return 0, errno
			}
		}
	}
	nw, err := n.vol().Write(ino, data, off)
	if err != nil && nw == 0 {
		return 0, toErrno(err)
	}
	// A write that stopped partway (ENOSPC after its first chunks) is a
	// short write: the caller learns how much was written, and meets the
	// error on its next write.
	return uint32(nw), 0
}

// clearSetID clears the bits killPriv clears for the caller, after
// checking the mode the engine has.
func (n *Node) clearSetID(ctx context.Context, ino txfs.Ino) syscall.Errno {
	a, err := n.vol().GetAttr(ino)
	if err != nil {
		return toErrno(err)
	}
	m := killPriv(a.Mode, caller(ctx), a.Gid)
	if m == a.Mode {
		n.mode.Store(a.Mode)
		return 0
	}
	a, err = n.vol().SetAttr(ino, &txfs.SetAttrIn{Valid: txfs.SetMode, Mode: m & 07777})
	if err != nil {
		return toErrno(err)
	}
	n.mode.Store(a.Mode)
	return 0
}

// Flush implements fs.NodeFlusher. close(2) has nothing to write back:
// the engine has every write already.
func (n *Node) Flush(ctx context.Context, f fs.FileHandle) syscall.Errno {
	return 0
}

// Fsync implements fs.NodeFsyncer, for files and directories alike.
func (n *Node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	return toErrno(n.vol().Fsync(n.ino()))
}

// Lseek implements fs.NodeLseeker for SEEK_DATA and SEEK_HOLE (the kernel
// handles the other whences). The whole file counts as data.
func (n *Node) Lseek(ctx context.Context, f fs.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	if whence != seekData && whence != seekHole {
		return 0, syscall.EINVAL
	}
	pos, err := n.vol().Seek(n.ino(), int64(off), whence == seekHole)
	if err != nil {
		return 0, toErrno(err)
	}
	return uint64(pos), 0
}

// CopyFileRange implements fs.NodeCopyFileRanger: block-aligned ranges
// share blocks (copy on write later) instead of copying bytes.
func (n *Node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	if flags != 0 {
		return 0, syscall.EINVAL
	}
	dst, ok := out.Operations().(*Node)
	if !ok {
		return 0, syscall.EXDEV
	}
	if caller(ctx).Uid != 0 {
		if errno := dst.clearSetID(ctx, dst.ino()); errno != 0 {
			return 0, errno
		}
	}
	length = min(length, 1<<30) // the reply counts in 32 bits
	copied, err := n.vol().CopyRange(n.ino(), int64(offIn), dst.ino(), int64(offOut), int64(length))
	if err != nil && copied == 0 {
		return 0, toErrno(err)
	}
	return uint32(copied), 0
}

// Allocate implements fs.NodeAllocater: fallocate(2) with the modes ext4
// has, and its errors. txfs does not preallocate: mode 0 only extends the
// size and KEEP_SIZE changes nothing stored. PUNCH_HOLE and ZERO_RANGE
// free the whole blocks in the range and zero the rest of it
// (ZERO_RANGE without KEEP_SIZE also extends the size); COLLAPSE_RANGE
// and INSERT_RANGE move the blocks after the range down or up. The kernel
// forwards only KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE to a FUSE daemon
// (fuse_file_fallocate) and answers EOPNOTSUPP to the others itself, but
// the adapter takes them all.
//
// Whatever a mode changes, the call counts as a change of the file, as on
// ext4 (file_modified in the kernel): mtime and ctime are set,
// security.capability goes (the engine), and a caller other than root
// clears the set-ID bits. ext4 does this before it
// checks the range against the file, so it happens for those errors too;
// the checks the VFS makes first (the mode, the length, the largest file
// size) change nothing.
func (n *Node) Allocate(ctx context.Context, f fs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	ino := n.ino()
	end := off + size
	// The VFS compares with the mount's largest file size, which for
	// FUSE is 2^63-1: txfs's own is smaller.
	if end < off || end > txfs.MaxFileSize {
		return syscall.EFBIG
	}
	switch mode {
	case 0, fallocKeepSize, fallocPunchHole | fallocKeepSize, fallocZeroRange, fallocZeroRange | fallocKeepSize,
		fallocCollapseRange, fallocInsertRange:
	default:
		return syscall.EOPNOTSUPP
	}
	if caller(ctx).Uid != 0 {
		if errno := n.clearSetID(ctx, ino); errno != 0 {
			return errno
		}
	}
	v, o, l := n.vol(), int64(off), int64(size)
	var err error
	switch mode {
	case 0, fallocKeepSize:
		err = v.Allocate(ino, o, l, mode == fallocKeepSize)
	case fallocPunchHole | fallocKeepSize:
		err = v.PunchHole(ino, o, l)
	case fallocZeroRange, fallocZeroRange | fallocKeepSize:
		err = v.ZeroRange(ino, o, l, mode&fallocKeepSize != 0)
	case fallocCollapseRange:
		err = v.CollapseRange(ino, o, l)
	case fallocInsertRange:
		err = v.InsertRange(ino, o, l)
	}
	if errors.Is(err, txfs.ErrInvalid) || errors.Is(err, txfs.ErrFileTooBig) {
		// The range did not suit the file: the engine changed nothing,
		// ext4 had marked the file changed already.
		if err := v.MarkModified(ino); err != nil {
			return toErrno(err)
		}
	}
	return toErrno(err)
}

// Mkdir implements fs.NodeMkdirer.
func (n *Node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	o, sgid, errno := n.newOwner(ctx)
	if errno != 0 {
		return nil, errno
	}
	mode &= 07777
	if sgid {
		mode |= syscall.S_ISGID
	}
	a, err := n.vol().Mkdir(n.ino(), name, mode, o)
	if err != nil {
		return nil, toErrno(err)
	}
	if sgid && a.Mode&syscall.S_ISGID == 0 {
		// The engine dropped the bit: set it explicitly.
		a, err = n.vol().SetAttr(a.Ino, &txfs.SetAttrIn{Valid: txfs.SetMode, Mode: mode})
		if err != nil {
			return nil, toErrno(err)
		}
	}
	return n.newChild(ctx, &a, out), 0
}

// Mknod implements fs.NodeMknoder: fifos, sockets, device nodes, and
// regular files.
func (n *Node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	o, _, errno := n.newOwner(ctx)
	if errno != 0 {
		return nil, errno
	}
	a, err := n.vol().Mknod(n.ino(), name, mode, uint64(dev), o)
	if err != nil {
		return nil, toErrno(err)
	}
	return n.newChild(ctx, &a, out), 0
}

// Symlink implements fs.NodeSymlinker.
func (n *Node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	o, _, errno := n.newOwner(ctx)
	if errno != 0 {
		return nil, errno
	}
	a, err := n.vol().Symlink(n.ino(), name, target, o)
	if err != nil {
		return nil, toErrno(err)
	}
	return n.newChild(ctx, &a, out), 0
}

// Readlink implements fs.NodeReadlinker.
func (n *Node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	t, err := n.vol().Readlink(n.ino())
	if err != nil {
		return nil, toErrno(err)
	}
	return []byte(t), 0
}

// Link implements fs.NodeLinker. go-fuse hands back the target's Node for
// the new name, since both have the same StableAttr.
func (n *Node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	tn, ok := target.(*Node)
	if !ok {
		return nil, syscall.EXDEV
	}
	a, err := n.vol().Link(tn.ino(), n.ino(), name)
	if err != nil {
		return nil, toErrno(err)
	}
	return n.newChild(ctx, &a, out), 0
}

// Unlink implements fs.NodeUnlinker.
func (n *Node) Unlink(ctx context.Context, name string) syscall.Errno {
	if reservedName(n.ino(), name) {
		return syscall.EPERM
	}
	return toErrno(n.vol().Unlink(n.ino(), name))
}

// Rmdir implements fs.NodeRmdirer. The directory stays in the engine,
// with no links, until the kernel forgets it (holdDir).
func (n *Node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if reservedName(n.ino(), name) {
		return syscall.EPERM
	}
	c := n.holdDir(name)
	err := n.vol().Rmdir(n.ino(), name)
	if err != nil {
		c.unhold()
	}
	return toErrno(err)
}

// holdDir takes an engine open reference on the directory name in n, which
// the caller is about to remove, if the kernel still has its inode. A
// process whose current directory it is holds no descriptor, yet can still
// stat and chmod it, as on ext4; without the reference the engine would
// free it at once. It returns the Node that holds it, or nil.
func (n *Node) holdDir(name string) *Node {
	ch := n.GetChild(name)
	if ch == nil || !ch.IsDir() {
		return nil
	}
	c, ok := ch.Operations().(*Node)
	if !ok || !c.held.CompareAndSwap(false, true) {
		return nil
	}
	if c.vol().OpenFile(c.ino()) != nil {
		c.held.Store(false)
		return nil
	}
	return c
}

// unhold drops the reference holdDir took, when the removal failed.
func (n *Node) unhold() {
	if n != nil && n.held.CompareAndSwap(true, false) {
		releaseLogged(n.vol(), n.ino())
	}
}

// releaseLogged drops an open reference where no caller can be told of a
// failure (the kernel does not wait for the answer to a release, nor to a
// forget): a failure other than the volume being closed already (Close
// dropped every reference) goes to the daemon's log.
func releaseLogged(v *txfs.Volume, ino txfs.Ino) {
	if err := v.Release(ino); err != nil && !errors.Is(err, txfs.ErrClosed) {
		log.Printf("txfs: release of inode %d: %v", ino, err)
	}
}

// OnForget implements fs.NodeOnForgetter: the kernel has forgotten the
// inode, so nothing can reach a removed directory any more. FORGETs lost
// at unmount leave the reference to Volume.Close, which frees the orphan.
func (n *Node) OnForget() {
	n.fsys.known.remove(n)
	n.unhold()
}

// Rename implements fs.NodeRenamer, with RENAME_NOREPLACE,
// RENAME_EXCHANGE and RENAME_WHITEOUT (which overlayfs uses in its upper
// directory). Other flags and combinations get EINVAL, never ENOSYS: the
// kernel would remember ENOSYS and fail every renameat2 with flags.
func (n *Node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if flags&^(renameNoReplace|renameExchange|renameWhiteout) != 0 ||
		flags&renameExchange != 0 && flags != renameExchange {
		return syscall.EINVAL
	}
	np, ok := newParent.(*Node)
	if !ok {
		return syscall.EXDEV
	}
	if reservedName(n.ino(), name) || reservedName(np.ino(), newName) {
		return syscall.EPERM // the mount's directory of snapshots
	}
	var tflags uint32
	if flags&renameNoReplace != 0 {
		tflags |= txfs.RenameNoReplace
	}
	// The whiteout is a new inode in n, owned as mknod by the caller
	// would own it.
	var o txfs.Owner
	if flags&renameWhiteout != 0 {
		tflags |= txfs.RenameWhiteout
		var errno syscall.Errno
		if o, _, errno = n.newOwner(ctx); errno != 0 {
			return errno
		}
	}
	var c *Node
	if flags&renameExchange != 0 {
		tflags |= txfs.RenameExchange
	} else {
		c = np.holdDir(newName) // an empty directory it may replace
	}
	err := n.vol().RenameAs(n.ino(), name, np.ino(), newName, tflags, o)
	if err != nil {
		c.unhold()
	}
	return toErrno(err)
}

// OpendirHandle implements fs.NodeOpendirHandler: a handle that reads the
// directory from the engine in batches.
func (n *Node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	a, err := n.vol().GetAttr(n.ino())
	if err != nil {
		return nil, 0, toErrno(err)
	}
	if !a.IsDir() {
		return nil, 0, syscall.ENOTDIR
	}
	// An open reference, as a file's: a directory removed while open
	// stays for fstat and fchmod until Releasedir, as on ext4.
	if err := n.vol().OpenFile(n.ino()); err != nil {
		return nil, 0, toErrno(err)
	}
	parent := n.ino()
	if _, p := n.Parent(); p != nil {
		parent = p.StableAttr().Ino
	}
	return &dirHandle{v: n.vol(), node: n, ino: n.ino(), parent: parent}, 0, 0
}

// dirHandle is an open directory.
//
// Offsets, which the kernel hands back to resume a listing: 0 is the
// start, 1 is after ".", and 2+c is where the engine's cookie c resumes
// (2 is cookie 0, the first real entry). Engine cookies are stable across
// changes to the directory and below 1<<62, so the offsets are too, and
// the listing is deterministic.
//
// READDIRPLUS (which the kernel uses when a program stats what it lists,
// FUSE_READDIRPLUS_AUTO) answers each entry with its attributes, so the
// kernel needs no LOOKUP per name. The kernel holds the directory's lock
// while the request runs, so no name can come or go in it meanwhile; the
// entries are therefore fetched anew for every request (buf holds only
// entries read during req), and an entry read during the request needs
// no second lookup by name (Lookup).
type dirHandle struct {
	v      *txfs.Volume
	node   *Node
	ino    txfs.Ino
	parent txfs.Ino

	mu   sync.Mutex
	off  uint64          // offset of the next entry
	buf  []fuse.DirEntry // fetched entries from off on
	req  *fuse.Context   // the request buf and last were read in
	last fuse.DirEntry   // the entry Readdirent returned last
}

// request identifies the request of ctx: go-fuse makes a *fuse.Context
// for each. nil means unknown.
func request(ctx context.Context) *fuse.Context {
	c, _ := ctx.(*fuse.Context)
	return c
}

const dirOffEntries = 2 // offset of the first entry after "." and ".."

// Readdirent implements fs.FileReaddirenter.
func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r := request(ctx); r == nil || r != d.req {
		// A new request: what an earlier one fetched may be gone.
		d.req = r
		d.buf = d.buf[:0]
	}
	d.last = fuse.DirEntry{}
	switch d.off {
	case 0:
		d.off = 1
		return &fuse.DirEntry{Name: ".", Ino: d.ino, Mode: syscall.S_IFDIR, Off: 1}, 0
	case 1:
		d.off = dirOffEntries
		return &fuse.DirEntry{Name: "..", Ino: d.parent, Mode: syscall.S_IFDIR, Off: dirOffEntries}, 0
	}
	if len(d.buf) == 0 {
		if errno := d.fill(); errno != 0 {
			return nil, errno
		}
		if len(d.buf) == 0 {
			return nil, 0 // end of directory
		}
	}
	e := d.buf[0]
	d.buf = d.buf[1:]
	d.off = e.Off
	d.last = e
	return &e, 0
}

// Lookup implements fs.FileLookuper: READDIRPLUS asks for the entry
// Readdirent just returned. When that entry was read from the engine
// during this request it names the inode still, and only the attributes
// are read; any other name (go-fuse may hand on an entry from the
// previous request that did not fit) is looked up anew.
func (d *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	d.mu.Lock()
	e := d.last
	r := request(ctx)
	fresh := r != nil && r == d.req && e.Name == name && e.Ino != 0
	d.mu.Unlock()
	if !fresh {
		return d.node.Lookup(ctx, name, out)
	}
	a, err := d.v.GetAttr(e.Ino)
	if err != nil {
		return nil, toErrno(err)
	}
	return d.node.newChild(ctx, &a, out), 0
}

// fill fetches the next batch of entries from the engine.
func (d *dirHandle) fill() syscall.Errno {
	d.buf = d.buf[:0]
	err := d.v.Readdir(d.ino, d.off-dirOffEntries, func(e txfs.DirEntry) bool {
		d.buf = append(d.buf, fuse.DirEntry{
			Name: e.Name,
			Ino:  e.Ino,
			Mode: e.Mode & syscall.S_IFMT,
			Off:  e.Next + dirOffEntries,
		})
		return len(d.buf) < readdirBatch
	})
	if err != nil {
		d.buf = d.buf[:0]
		return toErrno(err)
	}
	return 0
}

// Seekdir implements fs.FileSeekdirer (rewinddir, seekdir, and reads that
// resume at an offset the kernel kept).
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off != d.off {
		d.off = off
		d.buf = d.buf[:0]
	}
	return 0
}

// Fsyncdir implements fs.FileFsyncdirer.
func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return toErrno(d.v.Fsync(d.ino))
}

// Releasedir implements fs.FileReleasedirer: the engine drops the open
// reference, and a removed directory with it when it was the last.
func (d *dirHandle) Releasedir(ctx context.Context, releaseFlags uint32) {
	releaseLogged(d.v, d.ino)
}

// Getxattr implements fs.NodeGetxattrer. With a buffer too small for the
// value it returns the size and ERANGE; go-fuse turns that into the size
// answer when the caller asked with size 0.
func (n *Node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	val, err := n.vol().GetXattr(n.ino(), attr)
	return xattrValue(val, err, dest)
}

// xattrValue answers a getxattr: val into dest, or its size and ERANGE
// if dest is too small.
func xattrValue(val []byte, err error, dest []byte) (uint32, syscall.Errno) {
	if err != nil {
		return 0, toErrno(err)
	}
	if len(val) > len(dest) {
		return uint32(len(val)), syscall.ERANGE
	}
	return uint32(copy(dest, val)), 0
}

// Setxattr implements fs.NodeSetxattrer.
func (n *Node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	// go-fuse reuses data after we return.
	val := bytes.Clone(data)
	if val == nil {
		val = []byte{}
	}
	return toErrno(n.vol().SetXattr(n.ino(), attr, val, flags))
}

// Listxattr implements fs.NodeListxattrer: NUL-terminated names, with the
// same ERANGE convention as Getxattr.
func (n *Node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	names, err := n.vol().ListXattr(n.ino())
	return xattrNames(names, err, dest)
}

// xattrNames answers a listxattr: the names NUL-terminated into dest, or
// their size and ERANGE if dest is too small.
func xattrNames(names []string, err error, dest []byte) (uint32, syscall.Errno) {
	if err != nil {
		return 0, toErrno(err)
	}
	size := 0
	for _, nm := range names {
		size += len(nm) + 1
	}
	if size > len(dest) {
		return uint32(size), syscall.ERANGE
	}
	b := dest[:0]
	for _, nm := range names {
		b = append(b, nm...)
		b = append(b, 0)
	}
	return uint32(len(b)), 0
}

// Removexattr implements fs.NodeRemovexattrer.
func (n *Node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return toErrno(n.vol().RemoveXattr(n.ino(), attr))
}

// Statfs implements fs.NodeStatfser.
func (n *Node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	s, err := n.vol().Statfs()
	if err != nil {
		return toErrno(err)
	}
	out.Blocks = s.Blocks
	out.Bfree = s.Bfree
	out.Bavail = s.Bavail
	out.Files = s.Files
	out.Ffree = s.Ffree
	out.Bsize = s.BlockSize
	out.Frsize = s.BlockSize
	out.NameLen = s.NameLen
	return 0
}
