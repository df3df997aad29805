package txfs

import (
	"strconv"
	"strings"
	"testing"

	"github.com/txfs/txfs/inode"
)

// damage breaks the namespace behind the transactions' back, as a bug or
// bad memory could: a wrong link count, a file whose only entry is gone,
// an entry naming no inode, an entry with the wrong type.
func damage(t *testing.T, v *Volume) (lost Ino) {
	d, _ := v.Mkdir(RootIno, "d", 0o755, Owner{})
	a, _ := v.Create(d.Ino, "a", 0o644, Owner{})
	b, _ := v.Create(RootIno, "b", 0o644, Owner{})
	v.Write(b.Ino, []byte("keep me"), 0)
	c, _ := v.Create(RootIno, "c", 0o644, Owner{})
	v.mu.Lock()
	defer v.mu.Unlock()
	r, _ := v.getInode(a.Ino)
	r.Nlink = 7
	v.tree.Put(inode.InodeKey(a.Ino), r.Encode())
	k := inode.DirentKey(RootIno, inode.NameHash("b"))
	v.tree.Delete(k)
	v.tree.Put(inode.DirentKey(d.Ino, inode.NameHash("ghost")), inode.EncodeDirents([]inode.Dirent{{Name: "ghost", Ino: 9999, Type: 8}}))
	v.tree.Put(inode.DirentKey(RootIno, inode.NameHash("c")), inode.EncodeDirents([]inode.Dirent{{Name: "c", Ino: c.Ino, Type: 4}}))
	return b.Ino
}

func TestRepair(t *testing.T) {
	v, dev := newTestVolume(t, 32<<20, Options{})
	lost := damage(t, v)
	rep, _ := v.CheckReport()
	if len(rep.Problems) < 4 {
		t.Fatalf("the checker missed damage: %v", rep.Problems)
	}
	changed, err := v.Repair()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("repair:\n%s", strings.Join(changed, "\n"))
	if len(changed) < 4 {
		t.Fatalf("repair changed too little: %v", changed)
	}
	if err := v.Check(); err != nil {
		t.Fatalf("after repair: %v", err)
	}
	v = reopen(t, v, dev)
	lf, err := v.Lookup(RootIno, LostFound)
	if err != nil {
		t.Fatal(err)
	}
	f, err := v.Lookup(lf.Ino, "#"+strconv.FormatUint(lost, 10))
	if err != nil {
		t.Fatalf("the nameless file is not in lost+found: %v", err)
	}
	buf := make([]byte, 7)
	if n, _ := v.Read(f.Ino, buf, 0); string(buf[:n]) != "keep me" {
		t.Fatalf("its data: %q", buf[:n])
	}
	if changed, err := v.Repair(); err != nil || len(changed) != 0 {
		t.Fatalf("a second repair changed %v, %v", changed, err)
	}
	v.Close()
}

func TestRepairCounts(t *testing.T) {
	v, dev := newTestVolume(t, 32<<20, Options{})
	a, _ := v.Create(RootIno, "a", 0o644, Owner{})
	v.Write(a.Ino, make([]byte, 20000), 0)
	v.Sync()
	v.mu.Lock()
	val, _, _ := v.tree.Get(inode.BlockKey(a.Ino, 0))
	v.blocks.Ref(inode.DecodeBlockItem(val), 2) // too many references
	leak, _ := v.blocks.Alloc()                 // a block nothing references
	v.sut.Add(3, 12345, 0)                      // wrong usage
	v.mu.Unlock()
	if err := v.Check(); err == nil {
		t.Fatal("the checker missed the damage")
	}
	changed, err := v.RepairCounts()
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 3 {
		t.Fatalf("changed: %v", changed)
	}
	if e, _ := v.dat.Get(leak); !e.Free() {
		t.Fatal("the leaked block was not freed")
	}
	v = reopen(t, v, dev)
	v.Close()
}

// TestRepairUnderImmutableRoot: inode flags do not stop a repair, which
// makes lost+found in an immutable root.
func TestRepairUnderImmutableRoot(t *testing.T) {
	v, _ := newTestVolume(t, 32<<20, Options{})
	lost := damage(t, v)
	if err := v.SetFlags(RootIno, FlagImmutable, Owner{}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Repair(); err != nil {
		t.Fatal(err)
	}
	lf, err := v.Lookup(RootIno, LostFound)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Lookup(lf.Ino, "#"+strconv.FormatUint(lost, 10)); err != nil {
		t.Fatalf("the nameless file is not in lost+found: %v", err)
	}
	if err := v.SetFlags(RootIno, 0, Owner{}); err != nil {
		t.Fatal(err)
	}
}
