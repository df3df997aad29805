package txfs

import (
	"fmt"
	"sort"
	"strings"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/inode"
)

// Extended attributes: items (ino, xattr, hash(name)) holding the attributes
// whose names share the hash, in the namespaces txfs stores.

// xattrPrefixes are the namespaces stored. "system." holds POSIX ACLs,
// which txfs does not implement: refusing them makes cp and tar fall back
// to chmod, where storing them would silently lose the mode change.
var xattrPrefixes = []string{"user.", "trusted.", "security."}

func (v *Volume) checkXattrName(name string) error {
	if len(name) == 0 || len(name) > 255 {
		return fmt.Errorf("%w: attribute name of %d bytes", ErrInvalid, len(name))
	}
	for _, p := range xattrPrefixes {
		if strings.HasPrefix(name, p) && len(name) > len(p) {
			return nil
		}
	}
	return ErrNotSupported
}

func (v *Volume) xattrItem(ino Ino, name string) ([]inode.Xattr, error) {
	return v.xattrItemIn(v.tree, ino, name)
}

func (v *Volume) xattrItemIn(tree *btree.Tree, ino Ino, name string) ([]inode.Xattr, error) {
	b, _, err := tree.Get(inode.XattrKey(ino, inode.NameHash(name)))
	if err != nil {
		return nil, v.fail(err)
	}
	es, err := inode.DecodeXattrs(b)
	return es, asErrIO(err, ino)
}

// updateXattr is update for a change of ino's attribute name: fn gets
// the inode and the attributes sharing name's item. Lock held.
func (v *Volume) updateXattr(op int, ino Ino, name string, freesSpace bool, fn func(t *tx, r *inode.Record, es []inode.Xattr) error) error {
	return v.update(op, v.metaOp(2, freesSpace), func(t *tx) error {
		r, err := v.getInode(ino)
		if err != nil {
			return err
		}
		es, err := v.xattrItem(ino, name)
		if err != nil {
			return err
		}
		return fn(t, r, es)
	})
}

// GetXattr returns the value of attribute name.
func (v *Volume) GetXattr(ino Ino, name string) ([]byte, error) {
	if err := v.checkXattrName(name); err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return nil, err
	}
	return v.getXattrIn(nil, ino, name)
}

// getXattrIn is GetXattr in the tree of s (nil: the live one). Lock held.
func (v *Volume) getXattrIn(s *SnapshotView, ino Ino, name string) ([]byte, error) {
	tree, err := v.treeOf(s)
	if err != nil {
		return nil, err
	}
	if _, err := v.inodeIn(tree, ino); err != nil {
		return nil, err
	}
	es, err := v.xattrItemIn(tree, ino, name)
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		if e.Name == name {
			return e.Value, nil
		}
	}
	return nil, ErrNoAttr
}

// MaxXattrValue is the largest value an attribute called name can have:
// the name and value share one tree item (about 1000 bytes with 4 KiB
// blocks, 16 KiB with 64 KiB blocks).
func (v *Volume) MaxXattrValue(name string) int { return v.maxValue() - 3 - len(name) }

// SetXattr sets attribute name. XattrCreate fails if it exists,
// XattrReplace if it does not.
func (v *Volume) SetXattr(ino Ino, name string, value []byte, flags uint32) error {
	if err := v.checkXattrName(name); err != nil {
		return err
	}
	if flags&^(XattrCreate|XattrReplace) != 0 {
		return ErrInvalid
	}
	if len(value) > v.MaxXattrValue(name) {
		return ErrAttrTooBig
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.updateXattr(opSetXattr, ino, name, false, func(t *tx, r *inode.Record, es []inode.Xattr) error {
		if err := checkChange(r); err != nil {
			return err
		}
		found := -1
		for i, e := range es {
			if e.Name == name {
				found = i
			}
		}
		if found >= 0 && flags&XattrCreate != 0 {
			return ErrExist
		}
		if found < 0 && flags&XattrReplace != 0 {
			return ErrNoAttr
		}
		e := inode.Xattr{Name: name, Value: append([]byte(nil), value...)}
		if found >= 0 {
			es[found] = e
		} else {
			es = append(es, e)
		}
		enc := inode.EncodeXattrs(es)
		if len(enc) > v.maxValue() {
			return ErrNoSpace // names colliding on one hash filled the item
		}
		if err := t.put(inode.XattrKey(ino, inode.NameHash(name)), enc); err != nil {
			return err
		}
		r.Ctime = nowSpec()
		return t.putInode(ino, r)
	})
}

// ListXattr returns the attribute names, sorted.
func (v *Volume) ListXattr(ino Ino) ([]string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return nil, err
	}
	return v.listXattrIn(nil, ino)
}

// listXattrIn is ListXattr in the tree of s (nil: the live one). Lock
// held.
func (v *Volume) listXattrIn(s *SnapshotView, ino Ino) ([]string, error) {
	tree, err := v.treeOf(s)
	if err != nil {
		return nil, err
	}
	if _, err := v.inodeIn(tree, ino); err != nil {
		return nil, err
	}
	var names []string
	var derr error
	err = tree.Ascend(inode.XattrKey(ino, 0), func(k btree.Key, val []byte) bool {
		if k.Ino != ino || k.Type != inode.TypeXattr {
			return false
		}
		es, err := inode.DecodeXattrs(val)
		if err != nil {
			derr = asErrIO(err, ino)
			return false
		}
		for _, e := range es {
			names = append(names, e.Name)
		}
		return true
	})
	if err != nil {
		return nil, v.fail(err)
	}
	sort.Strings(names)
	return names, derr
}

// RemoveXattr removes attribute name.
func (v *Volume) RemoveXattr(ino Ino, name string) error {
	if err := v.checkXattrName(name); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.update(opRemoveXattr, v.metaOp(2, true), func(t *tx) error {
		r, err := v.getInode(ino)
		if err != nil {
			return err
		}
		if err := checkChange(r); err != nil {
			return err
		}
		found, err := t.removeXattr(ino, name)
		if err != nil {
			return err
		}
		if !found {
			return ErrNoAttr
		}
		r.Ctime = nowSpec()
		return t.putInode(ino, r)
	})
}

// removeXattr removes ino's attribute name in t and says whether it was
// there.
func (t *tx) removeXattr(ino Ino, name string) (bool, error) {
	v := t.v
	k := inode.XattrKey(ino, inode.NameHash(name))
	b, ok, err := v.tree.Get(k)
	if err != nil || !ok {
		return false, v.failIf(err)
	}
	es, err := inode.DecodeXattrs(b)
	if err != nil {
		return false, asErrIO(err, k.Ino)
	}
	out := es[:0]
	for _, e := range es {
		if e.Name != name {
			out = append(out, e)
		}
	}
	if len(out) == len(es) {
		return false, nil
	}
	if len(out) == 0 {
		return true, t.del(k)
	}
	return true, t.put(k, inode.EncodeXattrs(out))
}

// capabilityXattr holds a program's file capabilities (setcap). Linux
// removes it on every write, truncate and change of owner, whoever makes
// them, so that a changed program never keeps what was granted to the old
// one; the mount leaves this to txfs (FUSE's HANDLE_KILLPRIV_V2).
const capabilityXattr = "security.capability"

// dropCapabilities removes ino's capabilityXattr, if it has one, in t.
func (t *tx) dropCapabilities(ino Ino) error {
	_, err := t.removeXattr(ino, capabilityXattr)
	return err
}
