package fsck

import (
	"fmt"
	"sort"
	"syscall"
	"time"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/inode"
)

// Repair fixes the damage to the namespace that ordinary transactions can
// fix, and says what it changed (including the orphans Open freed and the
// truncates it finished): directory entries naming missing inodes
// are removed, entries with the wrong file type are corrected, inodes that
// no directory names go into /lost+found (named by inode number), orphan
// marks on named inodes are dropped, and link counts are set to the names
// that exist. Every change goes through the log and the next checkpoint
// like any operation, so Repair never makes a volume worse. Damage it does
// not fix (checksums, reference counts, space accounting) is left for Check
// to report.
func Repair(v Volume) ([]string, error) {
	changed := v.OpenRepairs()
	say := func(format string, a ...any) { changed = append(changed, fmt.Sprintf(format, a...)) }

	facts, err := namespaceFacts(v)
	if err != nil {
		return nil, err
	}
	// Without the root directory nothing has a path: make an empty one,
	// which gives the entries it still has their names back.
	if r := facts.inodes[RootIno]; r == nil || r.rec == nil {
		t := time.Now()
		now := inode.Timespec{Sec: t.Unix(), Nsec: uint32(t.Nanosecond())}
		root := &inode.Record{Mode: syscall.S_IFDIR | 0o755, Nlink: 2, Atime: now, Mtime: now, Ctime: now}
		if err := v.Fix(func(tx Tx) error { return tx.PutInode(RootIno, root) }); err != nil {
			return changed, err
		}
		say("the root directory was missing: made an empty one")
		if facts, err = namespaceFacts(v); err != nil {
			return changed, err
		}
	}
	// Entries first: what they name decides the link counts.
	for _, e := range facts.entries {
		t := facts.inodes[e.e.Ino]
		switch {
		case t == nil || t.rec == nil:
			if err := v.Fix(func(tx Tx) error { return tx.RemoveEntry(e.dir, e.e.Name) }); err != nil {
				return changed, err
			}
			say("removed entry %q of directory %d: it named missing inode %d", e.e.Name, e.dir, e.e.Ino)
		case uint32(e.e.Type) != t.rec.Mode>>12:
			fixed := inode.Dirent{Name: e.e.Name, Ino: e.e.Ino, Type: uint8(t.rec.Mode >> 12)}
			if err := v.Fix(func(tx Tx) error {
				if err := tx.RemoveEntry(e.dir, e.e.Name); err != nil {
					return err
				}
				return tx.AddEntry(e.dir, fixed)
			}); err != nil {
				return changed, err
			}
			say("corrected the file type of entry %q in directory %d", e.e.Name, e.dir)
		}
	}
	// Inodes no directory names, that are not orphans: into lost+found.
	var lost []inode.Ino
	for ino, i := range facts.inodes {
		if i.rec != nil && ino != RootIno && facts.names[ino] == 0 && !i.orphan {
			lost = append(lost, ino)
		}
	}
	sort.Slice(lost, func(a, b int) bool { return lost[a] < lost[b] })
	if len(lost) > 0 {
		lf, err := v.LostFound(LostFound)
		if err != nil {
			return changed, fmt.Errorf("%s: %w", LostFound, err)
		}
		for _, ino := range lost {
			name := fmt.Sprintf("#%d", ino)
			rec := facts.inodes[ino].rec
			if err := v.Fix(func(tx Tx) error {
				if isDir(rec.Mode) {
					rec.Parent = lf
				}
				if err := tx.PutInode(ino, rec); err != nil {
					return err
				}
				return tx.AddEntry(lf, inode.Dirent{Name: name, Ino: ino, Type: uint8(rec.Mode >> 12)})
			}); err != nil {
				return changed, err
			}
			say("inode %d had no name: now %s/%s", ino, LostFound, name)
		}
	}
	// With the names right, set every link count (and parent) to match.
	if facts, err = namespaceFacts(v); err != nil {
		return changed, err
	}
	for _, ino := range facts.sorted() {
		i := facts.inodes[ino]
		if i.rec == nil {
			continue
		}
		want := facts.names[ino]
		if isDir(i.rec.Mode) {
			want = 2 + i.subdirs
		}
		parent := i.rec.Parent
		if isDir(i.rec.Mode) && len(i.parents) == 1 {
			parent = i.parents[0]
		}
		if i.orphan && facts.names[ino] > 0 {
			if err := v.Fix(func(tx Tx) error { return tx.Delete(inode.OrphanKey(ino)) }); err != nil {
				return changed, err
			}
			say("inode %d is named but was marked as an orphan: mark removed", ino)
		}
		if (i.orphan && facts.names[ino] == 0) || (i.rec.Nlink == want && i.rec.Parent == parent) {
			continue
		}
		old := i.rec.Nlink
		rec := *i.rec
		rec.Nlink, rec.Parent = want, parent
		if err := v.Fix(func(tx Tx) error { return tx.PutInode(ino, &rec) }); err != nil {
			return changed, err
		}
		if old != want {
			say("inode %d: link count %d set to %d", ino, old, want)
		} else {
			say("directory %d: parent set to %d", ino, parent)
		}
	}
	return changed, nil
}

type nsEntry struct {
	dir inode.Ino
	e   inode.Dirent
}

type nsInode struct {
	rec     *inode.Record
	subdirs uint32
	parents []inode.Ino
	orphan  bool
}

type nsFacts struct {
	inodes  map[inode.Ino]*nsInode
	entries []nsEntry
	names   map[inode.Ino]uint32 // entries that name each inode and point to it validly
}

func (f *nsFacts) sorted() []inode.Ino {
	out := make([]inode.Ino, 0, len(f.inodes))
	for ino := range f.inodes {
		out = append(out, ino)
	}
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out
}

// namespaceFacts reads every inode, entry and orphan mark.
func namespaceFacts(v Volume) (*nsFacts, error) {
	f := &nsFacts{inodes: map[inode.Ino]*nsInode{}, names: map[inode.Ino]uint32{}}
	get := func(ino inode.Ino) *nsInode {
		if f.inodes[ino] == nil {
			f.inodes[ino] = &nsInode{}
		}
		return f.inodes[ino]
	}
	err := v.Inspect(true, func(view View) error {
		var derr error
		err := view.Tree().Ascend(btree.Key{}, func(k btree.Key, val []byte) bool {
			switch k.Type {
			case inode.TypeInode:
				r, err := inode.DecodeRecord(k.Ino, val)
				if err != nil {
					derr = err
					return false
				}
				get(k.Ino).rec = r
			case inode.TypeDirent:
				es, err := inode.DecodeDirents(val)
				if err != nil {
					derr = err
					return false
				}
				for _, e := range es {
					f.entries = append(f.entries, nsEntry{k.Ino, e})
				}
			case inode.TypeOrphan:
				get(k.Off).orphan = true
			}
			return true
		})
		if err == nil {
			err = derr
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, e := range f.entries {
		d, t := f.inodes[e.dir], f.inodes[e.e.Ino]
		if d == nil || d.rec == nil || t == nil || t.rec == nil {
			continue
		}
		f.names[e.e.Ino]++
		t.parents = append(t.parents, e.dir)
		if isDir(t.rec.Mode) {
			d.subdirs++
		}
	}
	return f, nil
}

// RepairCounts sets every reference count in the DAT to the references
// that exist (freeing blocks nothing references) and every segment's usage
// to what the DAT says lives there, then takes a checkpoint, which is how
// these tables reach the disk. A block that is referenced but free cannot
// be repaired here: its content is gone.
func RepairCounts(v Volume) ([]string, error) {
	return v.FixCounts(func(view View) (func(vb uint64) uint32, error) {
		refs, err := references(view)
		if err != nil {
			return nil, err
		}
		return func(vb uint64) uint32 { return refs[vb] }, nil
	})
}

// references counts the references that exist to each virtual block: tree
// nodes, nodes dropped but not yet freed, and the blocks files map.
func references(v View) (map[uint64]uint32, error) {
	refs := map[uint64]uint32{}
	live := map[btree.NodeID]bool{}
	err := v.Tree().Walk(func(id btree.NodeID, level int) error {
		if uint64(id)&(1<<63) == 0 {
			refs[uint64(id)]++
			live[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, id := range v.DroppedNodes() {
		refs[id]++
	}
	err = v.Tree().Ascend(btree.Key{}, func(k btree.Key, val []byte) bool {
		if k.Type == inode.TypeBlock && len(val) == 8 {
			refs[inode.DecodeBlockItem(val)]++
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	// And what the snapshots hold: a repair must not free it.
	for _, vb := range v.SnapshotTable() {
		refs[vb]++
	}
	if err := countSnapshots(v, refs, live); err != nil {
		return nil, err
	}
	return refs, nil
}
