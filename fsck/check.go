package fsck

import (
	"errors"
	"fmt"
	"sort"
	"syscall"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/inode"
)

// Check verifies the whole volume as it is now (after recovery): every
// tree node and data block is read and its checksum verified; every
// reference count in the DAT equals the references that exist; the free
// list is whole; the segment usage table equals the live blocks; link
// counts, directory entries, parents and block counts agree; every inode is
// reachable or an orphan. It returns an error when it finds a problem.
func Check(v Volume) error {
	r, err := CheckWithProgress(v, nil)
	if err != nil {
		return err
	}
	return r.Err()
}

// CheckWithProgress runs the checks of Check, reporting its progress to p
// (nil: none), and returns everything found. The error is for the checker
// itself failing (a closed volume).
func CheckWithProgress(vol Volume, p Progress) (*Report, error) {
	if p == nil {
		p = func(int, uint64, uint64) {}
	}
	var rep *Report
	err := vol.Inspect(false, func(v View) error {
		rep = check(v, p)
		return nil
	})
	return rep, err
}

// CheckDurable runs the checks of Check on the volume as of its last
// durable checkpoint (what a crash now would recover, less the log after
// it), without stopping the volume's operations for the scan. Problems
// found while a later checkpoint reused segments the scan read are checked
// again; a volume that keeps moving under every try is checked as it is
// now, under its lock (CheckWithProgress).
func CheckDurable(vol Volume, p Progress) (*Report, error) {
	if p == nil {
		p = func(int, uint64, uint64) {}
	}
	for range durableTries {
		var rep *Report
		moved, err := vol.InspectDurable(func(v View) error {
			rep = check(v, p)
			return nil
		})
		if err != nil && !moved {
			if errors.Is(err, ErrCheckpoint) {
				rep = &Report{}
				rep.addf("%v", err)
				return rep, nil
			}
			return nil, err
		}
		// Every block is verified by its checksum: a reused segment can
		// make a sound volume look damaged, never a damaged one sound.
		if err == nil && (!moved || len(rep.Problems) == 0) {
			return rep, nil
		}
	}
	return CheckWithProgress(vol, p)
}

// durableTries is how many scans CheckDurable makes before it checks
// under the lock.
const durableTries = 3

func check(v View, p Progress) *Report {
	rep := &Report{Warnings: append([]string(nil), v.Warnings()...)}
	if d := v.Damage(); d != "" {
		rep.addf("the log is damaged: %s", d)
	}
	refs := map[uint64]uint32{} // references that exist to each virtual block
	live := map[btree.NodeID]bool{}
	count := v.Blocks().DAT().Count()
	p(1, 0, count)
	// Tree structure and nodes.
	err := v.Tree().Walk(func(id btree.NodeID, level int) error {
		if uint64(id)&(1<<63) != 0 {
			return nil // new in memory, not yet in the DAT
		}
		live[id] = true
		rep.Nodes++
		if rep.Nodes%256 == 0 {
			p(1, rep.Nodes, count)
		}
		refs[uint64(id)]++
		if err := v.ReadBlock(uint64(id)); err != nil {
			rep.addf("tree node %d: %v", id, err)
		}
		return nil
	})
	if err != nil {
		rep.addf("metadata tree: %v", err)
		return rep
	}
	for _, id := range v.DroppedNodes() {
		refs[id]++ // dropped from the tree, freed at a checkpoint
	}
	checkSnapshots(v, rep, refs, live)
	// Each stored block is read once, whichever trees share it.
	read := onceView{View: v, read: map[uint64]bool{}}
	checkNamespace(read, rep, refs, func(done uint64) { p(2, done, count) })
	for _, root := range v.Snapshots() {
		// The snapshot's namespace, as the live one's; its references
		// are counted already (checkSnapshots).
		sub := &Report{}
		checkNamespace(snapshotView{read, v.SnapshotTree(root)}, sub, map[uint64]uint32{}, func(uint64) {})
		for _, p := range sub.Problems {
			rep.addf("snapshot at node %d: %s", root, p)
		}
	}
	checkDAT(v, rep, refs, func(done uint64) { p(3, done, count) })
	checkUsage(v, rep, func(done uint64) { p(4, done, count) })
	return rep
}

type inodeInfo struct {
	rec      *inode.Record
	names    uint32 // directory entries naming it
	subdirs  uint32
	parents  []inode.Ino
	blocks   uint64
	symBytes uint64
	orphan   bool
}

func checkNamespace(v View, rep *Report, refs map[uint64]uint32, progress func(uint64)) {
	inodes := map[inode.Ino]*inodeInfo{}
	get := func(ino inode.Ino) *inodeInfo {
		i := inodes[ino]
		if i == nil {
			i = &inodeInfo{}
			inodes[ino] = i
		}
		return i
	}
	type entry struct {
		dir inode.Ino
		e   inode.Dirent
	}
	var entries []entry
	var blocks []struct {
		ino inode.Ino
		off uint64
		vb  uint64
	}
	truncs := map[inode.Ino]uint64{}
	ranges := map[inode.Ino]inode.RangeOp{}
	var rangeInos []inode.Ino // in key order, for a stable report
	err := v.Tree().Ascend(btree.Key{}, func(k btree.Key, val []byte) bool {
		switch k.Type {
		case inode.TypeInode:
			if k.Off != 0 {
				// Every lookup of an inode uses offset 0.
				rep.addf("inode item %v is not at offset 0", k)
				return true
			}
			r, err := inode.DecodeRecord(k.Ino, val)
			if err != nil {
				rep.addf("inode %d: %v", k.Ino, err)
				return true
			}
			get(k.Ino).rec = r
			if r.Flags&^v.KnownFlags() != 0 {
				rep.addf("inode %d has inode flags %#x, which txfs does not define", k.Ino, r.Flags&^v.KnownFlags())
			}
			if k.Ino >= v.NextIno() {
				rep.addf("inode %d at or above the next inode number %d", k.Ino, v.NextIno())
			}
		case inode.TypeDirent:
			es, err := inode.DecodeDirents(val)
			if err != nil {
				rep.addf("directory %d entry item %d: %v", k.Ino, k.Off, err)
				return true
			}
			names := map[string]bool{}
			for _, e := range es {
				if inode.NameHash(e.Name) != k.Off {
					rep.addf("directory %d: entry %q filed under the wrong hash", k.Ino, e.Name)
				}
				if err := v.NameError(e.Name); err != nil {
					rep.addf("directory %d: entry %q: %v", k.Ino, e.Name, err)
				}
				if names[e.Name] {
					rep.addf("directory %d has two entries named %q", k.Ino, e.Name)
				}
				names[e.Name] = true
				entries = append(entries, entry{k.Ino, e})
			}
		case inode.TypeXattr:
			es, err := inode.DecodeXattrs(val)
			if err != nil {
				rep.addf("inode %d xattr item: %v", k.Ino, err)
			}
			names := map[string]bool{}
			for _, e := range es {
				if inode.NameHash(e.Name) != k.Off {
					rep.addf("inode %d: attribute %q filed under the wrong hash", k.Ino, e.Name)
				}
				if err := v.XattrNameError(e.Name); err != nil {
					rep.addf("inode %d: attribute %q: %v", k.Ino, e.Name, err)
				}
				if names[e.Name] {
					rep.addf("inode %d has two attributes named %q", k.Ino, e.Name)
				}
				names[e.Name] = true
			}
			get(k.Ino)
		case inode.TypeSymlink:
			get(k.Ino).symBytes += uint64(len(val))
		case inode.TypeBlock:
			if len(val) != 8 {
				rep.addf("inode %d block %d: mapping of %d bytes", k.Ino, k.Off, len(val))
				return true
			}
			blocks = append(blocks, struct {
				ino inode.Ino
				off uint64
				vb  uint64
			}{k.Ino, k.Off, inode.DecodeBlockItem(val)})
			get(k.Ino).blocks++
		case inode.TypeOrphan, inode.TypeTrunc:
			// Open finds these marks among the items of inode 0 only.
			if k.Ino != 0 {
				rep.addf("%s mark %v outside the list of inode 0", map[uint8]string{inode.TypeOrphan: "orphan", inode.TypeTrunc: "truncate"}[k.Type], k)
				return true
			}
			i := get(k.Off) // a mark of an inode that does not exist is a problem
			if k.Type == inode.TypeOrphan {
				i.orphan = true
			} else if size, err := inode.DecodeTruncItem(val); err != nil {
				rep.addf("truncate mark of inode %d: %v", k.Off, err)
			} else {
				truncs[k.Off] = size
			}
		case inode.TypeRange:
			o, err := inode.DecodeRangeOp(val)
			if err != nil {
				rep.addf("range operation of inode %d: %v", k.Off, err)
				return true
			}
			ranges[k.Off] = o
			rangeInos = append(rangeInos, k.Off)
		default:
			rep.addf("item of unknown type %d (inode %d)", k.Type, k.Ino)
		}
		return true
	})
	if err != nil {
		rep.addf("metadata tree: %v", err)
		return
	}
	for _, en := range entries {
		d := inodes[en.dir]
		if d == nil || d.rec == nil || !isDir(d.rec.Mode) {
			rep.addf("entry %q in %d, which is not a directory", en.e.Name, en.dir)
			continue
		}
		t := inodes[en.e.Ino]
		if t == nil || t.rec == nil {
			rep.addf("entry %q in directory %d names missing inode %d", en.e.Name, en.dir, en.e.Ino)
			continue
		}
		t.names++
		t.parents = append(t.parents, en.dir)
		if uint32(en.e.Type) != t.rec.Mode>>12 {
			rep.addf("entry %q in directory %d has type %d, inode %d has mode %#o", en.e.Name, en.dir, en.e.Type, en.e.Ino, t.rec.Mode)
		}
		if isDir(t.rec.Mode) {
			d.subdirs++
		}
	}
	for _, b := range blocks {
		refs[b.vb]++
		rep.DataBlocks++
		if rep.DataBlocks%1024 == 0 {
			progress(rep.DataBlocks)
		}
		i := inodes[b.ino]
		if i == nil || i.rec == nil {
			rep.addf("block %d of missing inode %d", b.off, b.ino)
			continue
		}
		limit := i.rec.Size
		if t, ok := truncs[b.ino]; ok {
			limit = max(limit, t)
		}
		if o, ok := ranges[b.ino]; ok && o.Kind == inode.RangeCollapse {
			// The blocks not yet moved down lie past the new size.
			limit += o.Count * uint64(v.BlockSize())
		}
		if _, ok := truncs[b.ino]; !ok && b.off*uint64(v.BlockSize()) >= limit {
			rep.addf("inode %d maps block %d past its size %d", b.ino, b.off, i.rec.Size)
		}
		if err := v.ReadBlock(b.vb); err != nil {
			rep.addf("inode %d block %d: %v", b.ino, b.off, err)
		}
	}
	for _, ino := range rangeInos {
		if i := inodes[ino]; i == nil || i.rec == nil || i.rec.Mode&syscall.S_IFMT != syscall.S_IFREG {
			rep.addf("range operation of inode %d, which is not a regular file", ino)
		}
	}
	if r := inodes[RootIno]; r == nil || r.rec == nil {
		rep.addf("the root directory (inode %d) does not exist", RootIno)
	} else if !isDir(r.rec.Mode) {
		rep.addf("the root directory (inode %d) has mode %#o", RootIno, r.rec.Mode)
	}
	inos := make([]inode.Ino, 0, len(inodes))
	for ino := range inodes {
		inos = append(inos, ino)
	}
	sort.Slice(inos, func(a, b int) bool { return inos[a] < inos[b] })
	for _, ino := range inos {
		i := inodes[ino]
		if i.rec == nil {
			rep.addf("items of inode %d, which does not exist", ino)
			continue
		}
		rep.Inodes++
		r := i.rec
		want := i.names
		if isDir(r.Mode) {
			rep.Directories++
			if i.names > 1 {
				rep.addf("directory %d has %d names", ino, i.names)
			}
			want = 2 + i.subdirs
			if ino != RootIno && i.names == 0 {
				want = 0
			}
			if i.names == 1 && r.Parent != i.parents[0] {
				rep.addf("directory %d records parent %d, is in %d", ino, r.Parent, i.parents[0])
			}
		}
		if ino == RootIno && i.names != 0 {
			rep.addf("the root directory has a name")
		}
		if r.Nlink != want {
			rep.addf("inode %d has link count %d, want %d", ino, r.Nlink, want)
		}
		if i.orphan {
			rep.Orphans++
			if r.Nlink != 0 {
				rep.addf("orphan inode %d has link count %d", ino, r.Nlink)
			}
		} else if ino != RootIno && i.names == 0 {
			rep.addf("inode %d is not reachable and not an orphan", ino)
		}
		if r.NBlocks != i.blocks {
			rep.addf("inode %d counts %d blocks, maps %d", ino, r.NBlocks, i.blocks)
		}
		if r.Mode&syscall.S_IFMT == syscall.S_IFLNK && i.symBytes != r.Size {
			rep.addf("symlink %d has %d target bytes, size %d", ino, i.symBytes, r.Size)
		}
	}
}

func checkDAT(v View, rep *Report, refs map[uint64]uint32, progress func(uint64)) {
	st := v.Blocks().DAT().State()
	var free uint64
	for vb := uint64(1); vb < st.Count; vb++ {
		if vb%4096 == 0 {
			progress(vb)
		}
		e, err := v.Blocks().DAT().Get(vb)
		if err != nil {
			rep.addf("DAT entry %d: %v", vb, err)
			return
		}
		if e.Free() {
			free++
			if refs[vb] != 0 {
				rep.addf("virtual block %d is free but referenced %d times", vb, refs[vb])
			}
			continue
		}
		if e.Refs != refs[vb] {
			rep.addf("virtual block %d has reference count %d, referenced %d times", vb, e.Refs, refs[vb])
		} else if e.Refs == 0 {
			rep.addf("virtual block %d is in use with reference count 0", vb) // 0 frees a block
		}
		delete(refs, vb)
	}
	for vb, n := range refs {
		if vb >= st.Count {
			rep.addf("virtual block %d referenced %d times is beyond the DAT (%d)", vb, n, st.Count)
		}
	}
	if free != st.FreeCount {
		rep.addf("DAT has %d free entries, records %d", free, st.FreeCount)
	}
	// The free list must link every free entry once, both ways.
	var n, prev uint64
	for vb := st.FreeHead; vb != 0; n++ {
		if n > st.FreeCount {
			rep.addf("DAT free list is longer than the free count (a cycle?)")
			return
		}
		e, err := v.Blocks().DAT().Get(vb)
		if err != nil || !e.Free() {
			rep.addf("DAT free list reaches virtual block %d, which is not free", vb)
			return
		}
		if e.Sum != prev {
			rep.addf("DAT free entry %d links back to %d, not %d", vb, e.Sum, prev)
		}
		prev, vb = vb, e.Addr
	}
	if n != st.FreeCount {
		rep.addf("DAT free list has %d entries, free count %d", n, st.FreeCount)
	}
}

// checkUsage compares every segment's usage with what the DAT says it
// holds: the invariant of block accounting (cow.Blocks).
func checkUsage(v View, rep *Report, progress func(uint64)) {
	live, err := v.Blocks().LiveBySegment(progress, func(vb, addr uint64) {
		rep.addf("virtual block %d at %d is outside the segments", vb, addr)
	})
	if err != nil {
		return // checkDAT reported it
	}
	tables, err := v.Blocks().TablesBySegment(func(level int, index uint64, addr uint64) {
		rep.addf("DAT block %d/%d at %d is outside the segments", level, index, addr)
	})
	if err != nil {
		rep.addf("DAT table: %v", err)
	}
	bad, err := v.Blocks().Mismatches(nil, live, tables)
	for _, m := range bad {
		rep.addf("%s", m)
	}
	if err != nil {
		rep.addf("%v", err)
		return
	}
	for _, s := range v.FreeSegments() {
		if live[s] != 0 || tables[s] != 0 {
			rep.addf("free segment %d holds %d live bytes and %d table blocks", s, live[s], tables[s])
		}
	}
}

// checkSnapshots counts the references the snapshots hold (countSnapshots)
// and reads the blocks of their table.
func checkSnapshots(v View, rep *Report, refs map[uint64]uint32, live map[btree.NodeID]bool) {
	for _, vb := range v.SnapshotTable() {
		refs[vb]++
		if err := v.ReadBlock(vb); err != nil {
			rep.addf("snapshot table block %d: %v", vb, err)
		}
	}
	if err := countSnapshots(v, refs, live); err != nil {
		rep.addf("%v", err)
	}
}

// countSnapshots counts the references the snapshots hold, lazily as
// they are counted: one to each snapshot's root, and, for each node no
// tree walked yet, one from it to each of its children or of the blocks
// its items name. The live tree's references are counted already (its
// nodes are in live, which the walk extends).
func countSnapshots(v View, refs map[uint64]uint32, live map[btree.NodeID]bool) error {
	seen := live
	var walk func(id btree.NodeID, depth int) error
	walk = func(id btree.NodeID, depth int) error {
		refs[uint64(id)]++
		if seen[id] {
			return nil
		}
		seen[id] = true
		if depth > 32 {
			return fmt.Errorf("node %d is deeper than any tree", id)
		}
		b, err := v.LoadNode(id)
		if err != nil {
			return err
		}
		r, err := btree.DecodeRefs(id, b, v.BlockSize())
		if err != nil {
			return err
		}
		for _, k := range r.Kids {
			if err := walk(k, depth+1); err != nil {
				return err
			}
		}
		for i, k := range r.Keys {
			if k.Type == inode.TypeBlock {
				if vb := inode.DecodeBlockItem(r.Vals[i]); vb != 0 {
					refs[vb]++
				}
			}
		}
		return nil
	}
	for _, root := range v.Snapshots() {
		if err := walk(btree.NodeID(root), 0); err != nil {
			return fmt.Errorf("snapshot tree at node %d: %w", root, err)
		}
	}
	return nil
}

// onceView reads each virtual block once: the checker of a volume with
// snapshots meets shared blocks in several trees.
type onceView struct {
	View
	read map[uint64]bool
}

func (o onceView) ReadBlock(vb uint64) error {
	if o.read[vb] {
		return nil
	}
	o.read[vb] = true
	return o.View.ReadBlock(vb)
}

// snapshotView is a volume seen through a snapshot's tree.
type snapshotView struct {
	onceView
	tree *btree.Tree
}

func (s snapshotView) Tree() *btree.Tree { return s.tree }
