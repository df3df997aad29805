package txfs

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/inode"
)

// Limits of the namespace.
const (
	maxLinks    = 65000
	MaxFileSize = 1 << 50 // bytes
)

// metaRecBytes bounds the records of one metadata operation: a few items
// of at most the tree's largest value each.
func (v *Volume) metaRecBytes() int { return 8 * (v.maxValue() + 64) }

// unitPayload is what one transaction may put in a unit.
func (v *Volume) unitPayload() int {
	return int(min(int64(v.geo.SegmentSize), maxUnitBytes)) - 6*v.bs
}

func (v *Volume) maxValue() int { return btree.MaxValueSize(v.bs) }

func checkName(name string) error {
	if len(name) == 0 || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%w: name %q", ErrInvalid, name)
	}
	if len(name) > MaxNameLen {
		return ErrNameTooLong
	}
	return nil
}

func (v *Volume) getInode(ino Ino) (*inode.Record, error) {
	b, ok, err := v.tree.Get(inode.InodeKey(ino))
	if err != nil {
		return nil, v.fail(err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: inode %d", ErrNotExist, ino)
	}
	r, err := inode.DecodeRecord(ino, b)
	return r, asErrIO(err, ino)
}

func (v *Volume) getDir(ino Ino) (*inode.Record, error) {
	r, err := v.getInode(ino)
	if err != nil {
		return nil, err
	}
	if r.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, ErrNotDir
	}
	return r, nil
}

func (v *Volume) lookupEntry(dir Ino, name string) (inode.Dirent, bool, error) {
	b, ok, err := v.tree.Get(inode.DirentKey(dir, inode.NameHash(name)))
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

func (v *Volume) failIf(err error) error {
	if err == nil {
		return nil
	}
	return v.fail(err)
}

func (t *tx) putInode(ino Ino, r *inode.Record) error { return t.put(inode.InodeKey(ino), r.Encode()) }

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

func attrOf(r *inode.Record, ino Ino, bs int) Attr {
	return Attr{Ino: ino, Gen: 1, Mode: r.Mode, Nlink: r.Nlink, Uid: r.Uid, Gid: r.Gid, Size: r.Size,
		Blocks: r.NBlocks * uint64(bs) / 512, Rdev: r.Rdev, Atime: r.Atime, Mtime: r.Mtime, Ctime: r.Ctime, Flags: r.Flags}
}

func isDir(mode uint32) bool { return mode&syscall.S_IFMT == syscall.S_IFDIR }

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
	if _, err := v.getDir(dir); err != nil {
		return Attr{}, err
	}
	e, ok, err := v.lookupEntry(dir, name)
	if err != nil {
		return Attr{}, err
	}
	if !ok {
		return Attr{}, ErrNotExist
	}
	r, err := v.getInode(e.Ino)
	if err != nil {
		return Attr{}, v.fail(fmt.Errorf("entry %q of directory %d names missing inode %d", name, dir, e.Ino))
	}
	return attrOf(r, e.Ino, v.bs), nil
}

// GetAttr returns the attributes of ino.
func (v *Volume) GetAttr(ino Ino) (Attr, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return Attr{}, err
	}
	r, err := v.getInode(ino)
	if err != nil {
		return Attr{}, err
	}
	return attrOf(r, ino, v.bs), nil
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
		t.touch(ino)
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
		if err := t.putInode(ino, r); err != nil {
			return err
		}
		if err := t.addEntry(dir, inode.Dirent{Name: name, Ino: ino, Type: uint8(mode >> 12)}); err != nil {
			return err
		}
		if err := t.putInode(dir, parent); err != nil {
			return err
		}
		t.touch(ino, dir)
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
	r, err := v.getInode(ino)
	if err != nil {
		return "", err
	}
	if r.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		return "", ErrInvalid
	}
	var sb strings.Builder
	err = v.tree.Ascend(inode.SymlinkKey(ino, 0), func(k btree.Key, val []byte) bool {
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
		if err := t.addEntry(newDir, inode.Dirent{Name: newName, Ino: ino, Type: uint8(r.Mode >> 12)}); err != nil {
			return err
		}
		if err := t.putInode(ino, r); err != nil {
			return err
		}
		if err := t.putInode(newDir, parent); err != nil {
			return err
		}
		t.touch(ino, newDir)
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
		t.touch(dir, e.Ino)
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

// finishFree frees an orphan that nobody has open, in transactions of
// bounded size. Called with the lock held.
func (v *Volume) finishFree(ino Ino) error {
	if v.opens[ino] > 0 {
		return nil
	}
	if _, ok, err := v.tree.Get(inode.OrphanKey(ino)); err != nil || !ok {
		return v.failIf(err)
	}
	for {
		done, err := v.freeChunk(ino, 0, true)
		if err != nil || done {
			return err
		}
	}
}

// freeChunkLimit bounds the blocks one transaction frees, punches or
// shares: 4096, fewer with small segments (a freed block costs two
// records).
func (v *Volume) freeChunkLimit() int {
	return max(1, min(4096, (v.unitPayload()-v.metaRecBytes())/40))
}

// chunkBlocks is the most blocks, up to limit, that one transaction of
// footprint fp(blocks) may take so that the metadata it dirties stays
// within half the reserve and within the room the log has now (space.go):
// large frees, punches and copies are done in transactions of this size,
// so that they progress on a full volume without a checkpoint for each.
// Lock held.
func (v *Volume) chunkBlocks(limit int, fp func(blocks int) footprint) int {
	budget := min(v.reserveBytes(false)/2, v.log.Room()-v.ckptCost()-fp(limit).need(v.bs))
	lo, hi := 1, max(1, limit)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if v.growth(fp(mid)) <= budget {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// freeOp is the footprint of freeing blocks blocks of one inode, with its
// other items when it is the last chunk.
func (v *Volume) freeOp(blocks int) footprint {
	return footprint{recBytes: blocks*40 + v.metaRecBytes(), items: blocks + 8, runs: 2, dat: blocks, frees: true}
}

// freeChunk frees up to chunkBlocks blocks of ino at or after block from
// in one transaction. With whole, the last chunk also removes the inode and
// everything else it owns, its orphan item and any truncate or range item;
// otherwise the last chunk removes the truncate item.
func (v *Volume) freeChunk(ino Ino, from uint64, whole bool) (bool, error) {
	chunk := v.chunkBlocks(v.freeChunkLimit(), v.freeOp)
	more := false
	err := v.update(opFreeInode, v.freeOp(chunk), func(t *tx) error {
		r, err := v.getInode(ino)
		if err != nil {
			return err
		}
		type item struct {
			k  btree.Key
			vb uint64
		}
		var items []item
		err = v.tree.Ascend(inode.BlockKey(ino, from), func(k btree.Key, val []byte) bool {
			if k.Ino != ino || k.Type != inode.TypeBlock {
				return false
			}
			if len(items) == chunk {
				more = true
				return false
			}
			items = append(items, item{k, inode.DecodeBlockItem(val)})
			return true
		})
		if err != nil {
			return v.fail(err)
		}
		for _, it := range items {
			if err := t.del(it.k); err != nil {
				return err
			}
			if err := t.ref(it.vb, -1); err != nil {
				return err
			}
		}
		r.NBlocks -= min(r.NBlocks, uint64(len(items)))
		t.touch(ino)
		if more {
			return t.putInode(ino, r)
		}
		if !whole {
			if err := t.putInode(ino, r); err != nil {
				return err
			}
			return t.del(inode.TruncKey(ino))
		}
		var rest []btree.Key
		err = v.tree.Ascend(btree.Key{Ino: ino}, func(k btree.Key, _ []byte) bool {
			if k.Ino != ino {
				return false
			}
			rest = append(rest, k)
			return true
		})
		if err != nil {
			return v.fail(err)
		}
		for _, k := range rest {
			if err := t.del(k); err != nil {
				return err
			}
		}
		// A truncate left for lack of space goes with the inode.
		if _, ok, err := v.tree.Get(inode.TruncKey(ino)); err != nil {
			return v.fail(err)
		} else if ok {
			if err := t.del(inode.TruncKey(ino)); err != nil {
				return err
			}
		}
		if err := t.del(inode.OrphanKey(ino)); err != nil {
			return err
		}
		return t.dropRange(ino)
	})
	return err == nil && !more, err
}

// freeOrphans finishes interrupted range operations and truncates and
// frees the orphans nobody
// has open, and says what it did. At Open nothing is open yet, so that is
// every orphan a crash left; Close calls it once it has dropped the open
// references still held. Called with the lock held.
func (v *Volume) freeOrphans() ([]string, error) {
	var orphans, truncs, ranges []Ino
	err := v.tree.Ascend(btree.Key{Ino: 0, Type: inode.TypeOrphan}, func(k btree.Key, _ []byte) bool {
		switch {
		case k.Ino != 0:
			return false
		case k.Type == inode.TypeOrphan:
			orphans = append(orphans, k.Off)
		case k.Type == inode.TypeTrunc:
			truncs = append(truncs, k.Off)
		case k.Type == inode.TypeRange:
			ranges = append(ranges, k.Off)
		}
		return true
	})
	if err != nil {
		return nil, v.fail(err)
	}
	var did []string
	for _, ino := range ranges {
		if err := v.finishRange(ino); errors.Is(err, ErrNoSpace) {
			v.deferred[ino] = true
			did = append(did, fmt.Sprintf("left the interrupted range operation of inode %d for later: no space yet", ino))
			continue
		} else if err != nil {
			return did, err
		}
		did = append(did, fmt.Sprintf("finished the interrupted range operation (hole punch, zero, collapse or insert) of inode %d", ino))
	}
	for _, ino := range truncs {
		if err := v.finishTruncate(ino); errors.Is(err, ErrNoSpace) {
			v.deferred[ino] = true
			did = append(did, fmt.Sprintf("left the interrupted truncate of inode %d for later: no space yet", ino))
			continue
		} else if err != nil {
			return did, err
		}
		did = append(did, fmt.Sprintf("finished the interrupted truncate of inode %d", ino))
	}
	for _, ino := range orphans {
		if v.opens[ino] > 0 {
			continue
		}
		if err := v.finishFree(ino); errors.Is(err, ErrNoSpace) {
			v.deferred[ino] = true
			did = append(did, fmt.Sprintf("left orphan inode %d for later: no space yet", ino))
			continue
		} else if err != nil {
			return did, err
		}
		did = append(did, fmt.Sprintf("freed orphan inode %d (open with no name: unlinked, or never linked)", ino))
	}
	return did, nil
}

// deferFree keeps an orphan, an interrupted truncate or a range operation
// that err says could not be finished for lack of space: its item stays,
// so nothing is lost (the operation is done for whoever looks: every
// access finishes it first), and it is finished once a checkpoint makes
// room (retryDeferred), at Close, or at the next Open. Other errors are
// returned. Lock held.
func (v *Volume) deferFree(ino Ino, err error) error {
	if errors.Is(err, ErrNoSpace) {
		v.deferred[ino] = true
		return nil
	}
	return err
}

// retryDeferred finishes what deferFree kept, while there is room. Lock
// held.
func (v *Volume) retryDeferred() error {
	for ino := range v.deferred {
		err := v.finishTruncate(ino) // finishes a range operation first
		if err == nil {
			err = v.finishFree(ino)
		}
		if errors.Is(err, ErrNoSpace) {
			return nil
		}
		if err != nil {
			return err
		}
		delete(v.deferred, ino)
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

// OpenFile takes a reference on ino: if its last name goes, its data stays
// until Release. OpenFileFlags is the same for an open(2) with flags.
func (v *Volume) OpenFile(ino Ino) error { return v.OpenFileFlags(ino, syscall.O_RDONLY) }

// Release drops a reference taken by OpenFile.
func (v *Volume) Release(ino Ino) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return ErrClosed // Close dropped every reference
	}
	if v.opens[ino] == 0 {
		return ErrInvalid
	}
	v.opens[ino]--
	if v.opens[ino] > 0 {
		return nil
	}
	delete(v.opens, ino)
	if v.writable() != nil {
		return nil
	}
	return v.deferFree(ino, v.finishFree(ino))
}

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
		t.touch(oldDir, newDir, src.Ino)
		if dstOK {
			t.touch(dst.Ino)
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

// Readdir calls fn for the entries of dir from cookie on (0: the start),
// until fn returns false. Entries come in hash order, so a listing that
// goes on while others add and remove names returns every name that exists
// throughout exactly once. fn runs without the volume lock.
func (v *Volume) Readdir(dir Ino, cookie uint64, fn func(e DirEntry) bool) error {
	for {
		var batch []DirEntry
		v.mu.Lock()
		err := v.usable()
		var r *inode.Record
		if err == nil {
			r, err = v.getDir(dir)
		}
		if now := nowSpec(); err == nil && cookie == 0 && v.wantAtime(r, now) {
			v.touchAtime(dir, now) // a listing from the start reads the directory
		}
		if err == nil {
			var bad error // an entry that does not decode
			err = v.tree.Ascend(inode.DirentKey(dir, cookie), func(k btree.Key, val []byte) bool {
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

// Statfs reports the volume's space. Free space is what ordinary writers
// can still put in the log (space.go: the log's room and the segments
// deletes emptied, less the next checkpoint and the reserve), counted in
// blocks of file data with what each costs in the log beside itself, so
// that a file can take all of it. Used is the rest: live data, metadata,
// and dead blocks in segments that still hold live ones.
func (v *Volume) Statfs() (Statfs, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return Statfs{}, err
	}
	bs := uint64(v.bs)
	total := uint64(int(v.geo.Segments)-v.log.Reserve) * uint64(v.geo.SegmentSize) / bs
	free := uint64(0)
	if v.log.Cur != nil {
		free = uint64(max(v.availableBytes(), 0)) / (bs + uint64(v.blockOverhead()))
	}
	free = min(free, total)
	used := v.nextIno - RootIno
	return Statfs{BlockSize: uint32(bs), Blocks: total, Bfree: free, Bavail: free,
		Files: used + free, Ffree: free, NameLen: MaxNameLen}, nil
}

// LogHead is the device address where the next unit of the log goes (for
// tools and tests that look at the log on the device).
func (v *Volume) LogHead() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return int64(v.log.Cur.Addr)
}

// Fsync returns when every change to ino made so far is durable.
func (v *Volume) Fsync(ino Ino) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return err
	}
	seq, ok := v.inoSeq[ino]
	if !ok {
		return nil
	}
	return v.waitDurable(seq)
}

// Sync makes everything durable and takes a checkpoint.
func (v *Volume) Sync() error {
	if v.ro {
		return nil
	}
	return v.checkpoint()
}
