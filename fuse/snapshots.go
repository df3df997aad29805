package fuse

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/txfs/txfs"
)

// SnapshotsDir is the directory at the root of a mount where every
// snapshot can be read: SnapshotsDir/ID/... is the tree of snapshot ID.
// It is not listed in the root directory (as ZFS's .zfs): tools that walk
// the tree do not walk every snapshot too. The name is the mount's: no
// file of that name can be made in the root while mounted.
const SnapshotsDir = ".snapshots"

// Inode numbers the kernel sees for snapshots: the files of the view
// numbered k (from 1, in the order views are first looked up) are
// k<<viewShift | their inode number in the snapshot, and the directory
// SnapshotsDir is snapshotsIno. Live inode numbers stay below 1<<viewShift.
const (
	viewShift    = 48
	maxViews     = 1<<(64-viewShift) - 2
	snapshotsIno = (maxViews + 1) << viewShift
)

// views numbers the snapshot views this mount showed.
type views struct {
	mu  sync.Mutex
	num map[*txfs.SnapshotView]uint64
	dir *fs.Inode // SnapshotsDir, once looked up
}

func (vs *views) number(s *txfs.SnapshotView) (uint64, bool) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if k, ok := vs.num[s]; ok {
		return k, true
	}
	if len(vs.num) >= maxViews {
		return 0, false
	}
	if vs.num == nil {
		vs.num = map[*txfs.SnapshotView]uint64{}
	}
	k := uint64(len(vs.num) + 1)
	vs.num[s] = k
	return k, true
}

// reservedName says whether name in dir is the mount's: SnapshotsDir in
// the root.
func reservedName(dir txfs.Ino, name string) bool {
	return dir == txfs.RootIno && name == SnapshotsDir
}

// snapshotsNode is SnapshotsDir: one directory per snapshot.
type snapshotsNode struct {
	fs.Inode
	fsys *filesystem
}

// lookupSnapshots is the lookup of SnapshotsDir in the root.
func (n *Node) lookupSnapshots(ctx context.Context, out *fuse.EntryOut) *fs.Inode {
	child := n.NewInode(ctx, &snapshotsNode{fsys: n.fsys}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: snapshotsIno, Gen: 1})
	snapshotsAttr(&out.Attr)
	return child
}

// snapshotDeleted drops the kernel's entry of snapshot name in
// SnapshotsDir, if it has one. Called with no lock held, never from a
// request handler.
func (fsys *filesystem) snapshotDeleted(name string) {
	fsys.views.mu.Lock()
	dir := fsys.views.dir
	fsys.views.mu.Unlock()
	if dir != nil {
		dir.NotifyEntry(name) // ENOENT: the kernel had none
	}
}

func snapshotsAttr(out *fuse.Attr) {
	now := uint64(time.Now().Unix())
	out.Ino = snapshotsIno
	out.Mode = syscall.S_IFDIR | 0o555
	out.Nlink = 2
	out.Atime, out.Mtime, out.Ctime = now, now, now
	out.Blksize = blockSize
}

func (n *snapshotsNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	snapshotsAttr(&out.Attr)
	return 0
}

func (n *snapshotsNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	// This is the Inode the kernel knows (go-fuse keeps one per inode
	// number): the one a delete notifies.
	n.fsys.views.mu.Lock()
	n.fsys.views.dir = &n.Inode
	n.fsys.views.mu.Unlock()
	v := n.fsys.v
	s, err := v.OpenSnapshot(name)
	if err != nil {
		return nil, syscall.ENOENT // a name that cannot be a snapshot's is no snapshot
	}
	k, ok := n.fsys.views.number(s)
	if !ok {
		return nil, syscall.ENFILE
	}
	a, err := v.SnapshotGetAttr(s, txfs.RootIno)
	if err != nil {
		return nil, toErrno(err)
	}
	return newSnapNode(ctx, &n.Inode, n.fsys, s, k, &a, out), 0
}

func (n *snapshotsNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	list, err := n.fsys.v.Snapshots()
	if err != nil {
		return nil, toErrno(err)
	}
	entries := make([]fuse.DirEntry, 0, len(list))
	for _, s := range list {
		entries = append(entries, fuse.DirEntry{Name: s.Name, Mode: syscall.S_IFDIR})
	}
	return fs.NewListDirStream(entries), 0
}

// snapNode is a file or directory of a snapshot: read-only.
type snapNode struct {
	fs.Inode
	fsys *filesystem
	view *txfs.SnapshotView
	k    uint64   // the view's number
	ino  txfs.Ino // in the snapshot
}

func newSnapNode(ctx context.Context, parent *fs.Inode, fsys *filesystem, s *txfs.SnapshotView, k uint64, a *txfs.Attr, out *fuse.EntryOut) *fs.Inode {
	child := parent.NewInode(ctx, &snapNode{fsys: fsys, view: s, k: k, ino: a.Ino},
		fs.StableAttr{Mode: a.Mode & syscall.S_IFMT, Ino: k<<viewShift | a.Ino, Gen: 1})
	snapAttr(&out.Attr, a, k)
	return child
}

func snapAttr(out *fuse.Attr, a *txfs.Attr, k uint64) {
	fillAttr(out, a)
	out.Ino = k<<viewShift | a.Ino
}

func (n *snapNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	a, err := n.fsys.v.SnapshotLookup(n.view, n.ino, name)
	if err != nil {
		return nil, toErrno(err)
	}
	return newSnapNode(ctx, &n.Inode, n.fsys, n.view, n.k, &a, out), 0
}

func (n *snapNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	a, err := n.fsys.v.SnapshotGetAttr(n.view, n.ino)
	if err != nil {
		return toErrno(err)
	}
	snapAttr(&out.Attr, &a, n.k)
	return 0
}

func (n *snapNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	var entries []fuse.DirEntry
	err := n.fsys.v.SnapshotReaddir(n.view, n.ino, 0, func(e txfs.DirEntry) bool {
		entries = append(entries, fuse.DirEntry{Name: e.Name, Mode: e.Mode, Ino: n.k<<viewShift | e.Ino})
		return true
	})
	if err != nil {
		return nil, toErrno(err)
	}
	return fs.NewListDirStream(entries), 0
}

// Open refuses writing; a snapshot's file never changes, so the kernel
// keeps its pages.
func (n *snapNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *snapNode) Read(ctx context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	nr, err := n.fsys.v.SnapshotRead(n.view, n.ino, dest, off)
	if err != nil {
		return nil, toErrno(err)
	}
	return fuse.ReadResultData(dest[:nr]), 0
}

func (n *snapNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	target, err := n.fsys.v.SnapshotReadlink(n.view, n.ino)
	if err != nil {
		return nil, toErrno(err)
	}
	return []byte(target), 0
}

func (n *snapNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	val, err := n.fsys.v.SnapshotGetXattr(n.view, n.ino, attr)
	return xattrValue(val, err, dest)
}

func (n *snapNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	names, err := n.fsys.v.SnapshotListXattr(n.view, n.ino)
	return xattrNames(names, err, dest)
}

// Every change is refused: a snapshot is read-only.

func (n *snapNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

func (n *snapNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}

func (n *snapNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (n *snapNode) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (n *snapNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (n *snapNode) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (n *snapNode) Unlink(ctx context.Context, name string) syscall.Errno { return syscall.EROFS }
func (n *snapNode) Rmdir(ctx context.Context, name string) syscall.Errno  { return syscall.EROFS }

func (n *snapNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	return syscall.EROFS
}

func (n *snapNode) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.EROFS
}

func (n *snapNode) Removexattr(ctx context.Context, attr string) syscall.Errno { return syscall.EROFS }

// The directory of snapshots refuses changes too.

func (n *snapshotsNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (n *snapshotsNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}

func (n *snapshotsNode) Rmdir(ctx context.Context, name string) syscall.Errno { return syscall.EROFS }
