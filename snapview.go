package txfs

import (
	"fmt"

	"github.com/txfs/txfs/btree"
)

// SnapshotView reads the files of one snapshot, as they were when it was
// taken. It has its own tree and node cache, so its reads do not disturb
// the live tree's; like every read it holds the volume lock only to find
// blocks, never while it waits for the device. Once the snapshot is
// deleted every call fails with ErrNotExist.
type SnapshotView struct {
	name    string
	tree    *btree.Tree
	deleted bool // the snapshot was deleted: lock held to read or set
}

// snapshotViewCache is the node cache of a view: small, since a view
// is read by people looking for a file, and there may be many (100 views
// read through take 25 MiB at most, beside the volume's budget).
const snapshotViewCache = 256 << 10

// OpenSnapshot returns the view of snapshot name. Views are kept: the
// same snapshot gives the same view.
func (v *Volume) OpenSnapshot(name string) (*SnapshotView, error) {
	if err := CheckSnapshotName(name); err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return nil, err
	}
	i := v.findSnapshot(name)
	if i < 0 {
		return nil, fmt.Errorf("%w: %q", ErrNoSnapshot, name)
	}
	if s := v.views[name]; s != nil {
		return s, nil
	}
	s := &SnapshotView{name: name, tree: btree.NewTree(v, btree.NodeID(v.snaps[i].root), v.bs, snapshotViewCache)}
	if v.views == nil {
		v.views = map[string]*SnapshotView{}
	}
	v.views[name] = s
	return s, nil
}

// dropView ends the view of a snapshot being deleted. Lock held.
func (v *Volume) dropView(name string) {
	if s := v.views[name]; s != nil {
		s.deleted = true
		delete(v.views, name)
	}
}

// treeOf is the tree that s reads: the live one for nil. Lock held.
func (v *Volume) treeOf(s *SnapshotView) (*btree.Tree, error) {
	switch {
	case s == nil:
		return v.tree, nil
	case s.deleted:
		return nil, fmt.Errorf("%w: snapshot %q was deleted", ErrNotExist, s.name)
	}
	return s.tree, nil
}

// Name is the snapshot's name.
func (s *SnapshotView) Name() string { return s.name }

// The reads of a snapshot, as the volume's of the live tree.

func (v *Volume) SnapshotLookup(s *SnapshotView, dir Ino, name string) (Attr, error) {
	if len(name) > MaxNameLen {
		return Attr{}, ErrNameTooLong
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return Attr{}, err
	}
	return v.lookupIn(s, dir, name)
}

func (v *Volume) SnapshotGetAttr(s *SnapshotView, ino Ino) (Attr, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return Attr{}, err
	}
	return v.getAttrIn(s, ino)
}

func (v *Volume) SnapshotReaddir(s *SnapshotView, dir Ino, cookie uint64, fn func(e DirEntry) bool) error {
	return v.readdirIn(s, dir, cookie, fn)
}

func (v *Volume) SnapshotRead(s *SnapshotView, ino Ino, buf []byte, off int64) (int, error) {
	return v.readIn(s, ino, buf, off)
}

func (v *Volume) SnapshotReadlink(s *SnapshotView, ino Ino) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return "", err
	}
	return v.readlinkIn(s, ino)
}

func (v *Volume) SnapshotGetXattr(s *SnapshotView, ino Ino, name string) ([]byte, error) {
	if err := v.checkXattrName(name); err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return nil, err
	}
	return v.getXattrIn(s, ino, name)
}

func (v *Volume) SnapshotListXattr(s *SnapshotView, ino Ino) ([]string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return nil, err
	}
	return v.listXattrIn(s, ino)
}
