package txfs

import (
	"fmt"
	"strings"
	"syscall"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/inode"
)

// Names: directory entries (items (dir, dirent, hash(name))) and the
// operations that make, link, remove, look up and list them.

// Limits of the namespace.
const (
	maxLinks    = 65000
	MaxFileSize = 1 << 50 // bytes
)

func checkName(name string) error {
	if len(name) == 0 || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%w: name %q", ErrInvalid, name)
	}
	if len(name) > MaxNameLen {
		return ErrNameTooLong
	}
	return nil
}

func (v *Volume) getDir(ino Ino) (*inode.Record, error) { return v.dirIn(v.tree, ino) }

func (v *Volume) dirIn(tree *btree.Tree, ino Ino) (*inode.Record, error) {
	r, err := v.inodeIn(tree, ino)
	if err != nil {
		return nil, err
	}
	if r.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, ErrNotDir
	}
	return r, nil
}

func (v *Volume) lookupEntry(dir Ino, name string) (inode.Dirent, bool, error) {
	return v.lookupEntryIn(v.tree, dir, name)
}

func (v *Volume) lookupEntryIn(tree *btree.Tree, dir Ino, name string) (inode.Dirent, bool, error) {
	b, ok, err := tree.Get(inode.DirentKey(dir, inode.NameHash(name)))
	if err != nil || !ok {
		return inode.Dirent{}, false, v.failIf(err)
	}
	es, err := inode.DecodeDirents(b)
	if err != nil {
		return inode.Dirent{}, false, asErrIO(err, dir)
	}
	for _, e := range es {
		if e.Name == name {
			return e, true, nil
		}
	}
	return inode.Dirent{}, false, nil
}

func (t *tx) addEntry(dir Ino, e inode.Dirent) error {
	k := inode.DirentKey(dir, inode.NameHash(e.Name))
	b, _, err := t.v.tree.Get(k)
	if err != nil {
		return t.v.fail(err)
	}
	es, err := inode.DecodeDirents(b)
	if err != nil {
		return asErrIO(err, k.Ino)
	}
	return t.put(k, inode.EncodeDirents(append(es, e)))
}

// enter gives inode ino, whose record is now r, the name name in dir,
// whose record is now parent, and stores both records.
func (t *tx) enter(dir Ino, parent *inode.Record, name string, ino Ino, r *inode.Record) error {
	if err := t.addEntry(dir, inode.Dirent{Name: name, Ino: ino, Type: uint8(r.Mode >> 12)}); err != nil {
		return err
	}
	if err := t.putInode(ino, r); err != nil {
		return err
	}
	return t.putInode(dir, parent)
}

func (t *tx) removeEntry(dir Ino, name string) error {
	k := inode.DirentKey(dir, inode.NameHash(name))
	b, _, err := t.v.tree.Get(k)
	if err != nil {
		return t.v.fail(err)
	}
	es, err := inode.DecodeDirents(b)
	if err != nil {
		return asErrIO(err, k.Ino)
	}
	out := es[:0]
	for _, e := range es {
		if e.Name != name {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return t.del(k)
	}
	return t.put(k, inode.EncodeDirents(out))
}

// Lookup finds name in directory dir.
func (v *Volume) Lookup(dir Ino, name string) (Attr, error) {
	if len(name) > MaxNameLen {
		return Attr{}, ErrNameTooLong
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return Attr{}, err
	}
	return v.lookupIn(nil, dir, name)
}

// lookupIn is Lookup in the tree of s (nil: the live one). Lock held.
func (v *Volume) lookupIn(s *SnapshotView, dir Ino, name string) (Attr, error) {
	tree, err := v.treeOf(s)
	if err != nil {
		return Attr{}, err
	}
	if _, err := v.dirIn(tree, dir); err != nil {
		return Attr{}, err
	}
	e, ok, err := v.lookupEntryIn(tree, dir, name)
	if err != nil {
		return Attr{}, err
	}
	if !ok {
		return Attr{}, ErrNotExist
	}
	r, err := v.inodeIn(tree, e.Ino)
	if err != nil {
		return Attr{}, v.fail(fmt.Errorf("entry %q of directory %d names missing inode %d", name, dir, e.Ino))
	}
	return attrOf(r, e.Ino, v.bs), nil
}

// Create makes a regular file.
func (v *Volume) Create(dir Ino, name string, mode uint32, o Owner) (Attr, error) {
	return v.mknod(opCreate, dir, name, syscall.S_IFREG|mode&^syscall.S_IFMT, 0, o, "")
}

// Tmpfile makes a regular file with no name in dir, as open(2) with
// O_TMPFILE does, and opens it (Release drops the reference). It is an
// orphan from the start, in the same transaction, so after a crash the next
// Open frees it like any unlinked open file; Link gives it a name. dir only
// has to exist: no entry is added and its times do not change.
func (v *Volume) Tmpfile(dir Ino, mode uint32, o Owner) (Attr, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var a Attr
	err := v.update(opCreate, v.metaOp(4, false), func(t *tx) error {
		parent, err := v.getDir(dir)
		if err != nil {
			return err
		}
		if parent.Nlink == 0 {
			return ErrNotExist // as mknod: the directory was removed
		}
		if err := checkAddName(parent); err != nil {
			return err // ext4 refuses O_TMPFILE there too
		}
		ino := v.nextIno
		now := nowSpec()
		// Parent stays 0: only directories record theirs.
		r := &inode.Record{Mode: syscall.S_IFREG | mode&^syscall.S_IFMT, Uid: o.Uid, Gid: o.Gid, Atime: now, Mtime: now, Ctime: now}
		if err := t.putInode(ino, r); err != nil {
			return err
		}
		if err := t.put(inode.OrphanKey(ino), nil); err != nil {
			return err
		}
		a = attrOf(r, ino, v.bs)
		return nil
	})
	if err != nil {
		return Attr{}, err
	}
	// Counted under the same lock as the commit, so no Release or
	// finishFree can see the orphan unopened.
	v.opens[a.Ino]++
	return a, nil
}

// Mkdir makes a directory.
func (v *Volume) Mkdir(dir Ino, name string, mode uint32, o Owner) (Attr, error) {
	return v.mknod(opMkdir, dir, name, syscall.S_IFDIR|mode&^syscall.S_IFMT, 0, o, "")
}

// Mknod makes a regular file, fifo, socket, or device node.
func (v *Volume) Mknod(dir Ino, name string, mode uint32, rdev uint64, o Owner) (Attr, error) {
	switch mode & syscall.S_IFMT {
	case 0:
		mode |= syscall.S_IFREG
	case syscall.S_IFREG, syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
	default:
		return Attr{}, fmt.Errorf("%w: mknod of file type %#o", ErrInvalid, mode&syscall.S_IFMT)
	}
	return v.mknod(opMknod, dir, name, mode, rdev, o, "")
}

// Symlink makes a symbolic link to target.
func (v *Volume) Symlink(dir Ino, name, target string, o Owner) (Attr, error) {
	if len(target) == 0 || len(target) > 4095 {
		return Attr{}, fmt.Errorf("%w: symlink target of %d bytes", ErrInvalid, len(target))
	}
	return v.mknod(opSymlink, dir, name, syscall.S_IFLNK|0o777, 0, o, target)
}

func (v *Volume) mknod(op int, dir Ino, name string, mode uint32, rdev uint64, o Owner, target string) (Attr, error) {
	if err := checkName(name); err != nil {
		return Attr{}, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	var a Attr
	err := v.update(op, v.symlinkOp(len(target)), func(t *tx) error {
		parent, err := v.getDir(dir)
		if err != nil {
			return err
		}
		if parent.Nlink == 0 {
			return ErrNotExist // a directory that was removed while in use
		}
		if _, ok, err := v.lookupEntry(dir, name); err != nil || ok {
			if err == nil {
				err = ErrExist
			}
			return err
		}
		if err := checkAddName(parent); err != nil && op != opRepair {
			return err
		}
		if isDir(mode) && parent.Nlink >= maxLinks {
			return ErrTooManyLinks
		}
		ino := v.nextIno
		now := nowSpec()
		r := &inode.Record{Mode: mode, Nlink: 1, Uid: o.Uid, Gid: o.Gid, Rdev: rdev, Atime: now, Mtime: now, Ctime: now}
		if isDir(mode) {
			r.Nlink, r.Parent = 2, dir
			parent.Nlink++
		}
		if target != "" {
			r.Size = uint64(len(target))
			for c, piece := range inode.SplitSymlink(target, v.maxValue()) {
				if err := t.put(inode.SymlinkKey(ino, uint64(c)), piece); err != nil {
					return err
				}
			}
		}
		parent.Mtime, parent.Ctime = now, now
		if err := t.enter(dir, parent, name, ino, r); err != nil {
			return err
		}
		a = attrOf(r, ino, v.bs)
		return nil
	})
	return a, err
}

// Readlink returns the target of a symbolic link.
func (v *Volume) Readlink(ino Ino) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return "", err
	}
	return v.readlinkIn(nil, ino)
}

// readlinkIn is Readlink in the tree of s (nil: the live one). Lock held.
func (v *Volume) readlinkIn(s *SnapshotView, ino Ino) (string, error) {
	tree, err := v.treeOf(s)
	if err != nil {
		return "", err
	}
	r, err := v.inodeIn(tree, ino)
	if err != nil {
		return "", err
	}
	if r.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		return "", ErrInvalid
	}
	var sb strings.Builder
	err = tree.Ascend(inode.SymlinkKey(ino, 0), func(k btree.Key, val []byte) bool {
		if k.Ino != ino || k.Type != inode.TypeSymlink {
			return false
		}
		sb.Write(val)
		return true
	})
	if err != nil {
		return "", v.fail(err)
	}
	if uint64(sb.Len()) != r.Size {
		return "", fmt.Errorf("%w: symlink %d target has %d bytes, inode says %d", ErrIO, ino, sb.Len(), r.Size)
	}
	return sb.String(), nil
}

// Link gives ino one more name. An open file with no name (Tmpfile, or
// unlinked while open) gets its first name back and stops being an orphan,
// in the same transaction; which of them may be linked is the caller's
// decision (the VFS links only O_TMPFILE files opened without O_EXCL). A
// file with no name that nobody has open is being freed: ErrNotExist.
func (v *Volume) Link(ino Ino, newDir Ino, newName string) (Attr, error) {
	if err := checkName(newName); err != nil {
		return Attr{}, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	var a Attr
	err := v.update(opLink, v.metaOp(5, false), func(t *tx) error {
		r, err := v.getInode(ino)
		if err != nil {
			return err
		}
		if isDir(r.Mode) {
			return ErrPermission
		}
		if r.Nlink == 0 && v.opens[ino] == 0 {
			return ErrNotExist
		}
		if r.Nlink >= maxLinks {
			return ErrTooManyLinks
		}
		parent, err := v.getDir(newDir)
		if err != nil {
			return err
		}
		if _, ok, err := v.lookupEntry(newDir, newName); err != nil || ok {
			if err == nil {
				err = ErrExist
			}
			return err
		}
		if err := checkAddName(parent); err != nil {
			return err
		}
		if fixed(r) {
			return fmt.Errorf("%w: an immutable or append-only file gets no new name", ErrPermission)
		}
		if r.Nlink == 0 {
			if err := t.del(inode.OrphanKey(ino)); err != nil {
				return err
			}
		}
		now := nowSpec()
		r.Nlink++
		r.Ctime = now
		parent.Mtime, parent.Ctime = now, now
		if err := t.enter(newDir, parent, newName, ino, r); err != nil {
			return err
		}
		a = attrOf(r, ino, v.bs)
		return nil
	})
	return a, err
}

// Unlink removes a name that is not a directory.
func (v *Volume) Unlink(dir Ino, name string) error { return v.remove(dir, name, false) }

// Rmdir removes an empty directory.
func (v *Volume) Rmdir(dir Ino, name string) error { return v.remove(dir, name, true) }

func (v *Volume) remove(dir Ino, name string, wantDir bool) error {
	if len(name) > MaxNameLen {
		return ErrNameTooLong
	}
	if name == "." || name == ".." {
		return ErrInvalid
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	op := opUnlink
	if wantDir {
		op = opRmdir
	}
	var gone Ino // the inode that lost its name
	err := v.update(op, v.metaOp(6, true), func(t *tx) error {
		parent, err := v.getDir(dir)
		if err != nil {
			return err
		}
		e, ok, err := v.lookupEntry(dir, name)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotExist
		}
		r, err := v.getInode(e.Ino)
		if err != nil {
			return err
		}
		if err := checkRemoveName(parent, r); err != nil {
			return err
		}
		if wantDir && !isDir(r.Mode) {
			return ErrNotDir
		}
		if !wantDir && isDir(r.Mode) {
			return ErrIsDir
		}
		if wantDir {
			empty, err := v.dirEmpty(e.Ino)
			if err != nil {
				return err
			}
			if !empty {
				return ErrNotEmpty
			}
		}
		now := nowSpec()
		parent.Mtime, parent.Ctime = now, now
		if err := t.removeEntry(dir, name); err != nil {
			return err
		}
		if err := t.dropLink(e.Ino, r, now); err != nil {
			return err
		}
		if wantDir {
			parent.Nlink--
		}
		if err := t.putInode(dir, parent); err != nil {
			return err
		}
		gone = e.Ino
		return nil
	})
	if err != nil {
		return err
	}
	return v.deferFree(gone, v.finishFree(gone))
}

// dropLink takes one name away from ino (all of a directory's). An inode
// left with no name becomes an orphan, freed when its last user is gone.
func (t *tx) dropLink(ino Ino, r *inode.Record, now Timespec) error {
	if isDir(r.Mode) {
		r.Nlink = 0
	} else {
		r.Nlink--
	}
	r.Ctime = now
	if err := t.putInode(ino, r); err != nil {
		return err
	}
	if r.Nlink == 0 {
		return t.put(inode.OrphanKey(ino), nil)
	}
	return nil
}

func (v *Volume) dirEmpty(dir Ino) (bool, error) {
	empty := true
	err := v.tree.Ascend(inode.DirentKey(dir, 0), func(k btree.Key, _ []byte) bool {
		empty = !(k.Ino == dir && k.Type == inode.TypeDirent)
		return false
	})
	return empty, v.failIf(err)
}

// Readdir calls fn for the entries of dir from cookie on (0: the start),
// until fn returns false. Entries come in hash order, so a listing that
// goes on while others add and remove names returns every name that exists
// throughout exactly once. fn runs without the volume lock.
func (v *Volume) Readdir(dir Ino, cookie uint64, fn func(e DirEntry) bool) error {
	return v.readdirIn(nil, dir, cookie, fn)
}

// readdirIn is Readdir in the tree of s (nil: the live one, whose
// directories get their access times).
func (v *Volume) readdirIn(s *SnapshotView, dir Ino, cookie uint64, fn func(e DirEntry) bool) error {
	for {
		var batch []DirEntry
		v.mu.Lock()
		err := v.usable()
		var tree *btree.Tree
		if err == nil {
			tree, err = v.treeOf(s)
		}
		var r *inode.Record
		if err == nil {
			r, err = v.dirIn(tree, dir)
		}
		if now := nowSpec(); err == nil && s == nil && cookie == 0 && v.wantAtime(r, now) {
			v.touchAtime(dir, now) // a listing from the start reads the directory
		}
		if err == nil {
			var bad error // an entry that does not decode
			err = tree.Ascend(inode.DirentKey(dir, cookie), func(k btree.Key, val []byte) bool {
				if k.Ino != dir || k.Type != inode.TypeDirent {
					return false
				}
				es, derr := inode.DecodeDirents(val)
				if derr != nil {
					bad = asErrIO(derr, dir)
					return false
				}
				for _, e := range es {
					batch = append(batch, DirEntry{Name: e.Name, Ino: e.Ino, Mode: uint32(e.Type) << 12, Next: k.Off + 1})
				}
				return len(batch) < 256
			})
			if err != nil && !isTxfsErr(err) {
				err = v.fail(err)
			}
			if err == nil {
				err = bad
			}
		}
		v.mu.Unlock()
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		for _, e := range batch {
			if !fn(e) {
				return nil
			}
		}
		cookie = batch[len(batch)-1].Next
	}
}

func isTxfsErr(err error) bool {
	_, ok := err.(*Error)
	if ok {
		return true
	}
	return strings.HasPrefix(err.Error(), "txfs:")
}
