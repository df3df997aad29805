package txfs

import (
	"testing"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/inode"
)

// An item that does not decode is ErrIO to the caller, as all corruption
// is, and a read that meets one does not stop the volume: the rest of it
// stays usable.
func TestUndecodableItemIsErrIO(t *testing.T) {
	v, _ := newTestVolume(t, 32<<20, Options{})
	d, err := v.Mkdir(RootIno, "d", 0o755, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := v.Create(d.Ino, "f", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.SetXattr(f.Ino, "user.a", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	breakItems := func(items map[btree.Key][]byte) (restore func()) {
		v.mu.Lock()
		defer v.mu.Unlock()
		old := map[btree.Key][]byte{}
		for k, val := range items {
			o, _, err := v.tree.Get(k)
			if err != nil {
				t.Fatal(err)
			}
			old[k] = o
			if err := v.tree.Put(k, val); err != nil {
				t.Fatal(err)
			}
		}
		return func() {
			v.mu.Lock()
			defer v.mu.Unlock()
			for k, val := range old {
				if err := v.tree.Put(k, val); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	restore := breakItems(map[btree.Key][]byte{
		inode.DirentKey(d.Ino, inode.NameHash("f")):     {1, 2, 3},
		inode.XattrKey(f.Ino, inode.NameHash("user.a")): {1},
	})
	_, err = v.Lookup(d.Ino, "f")
	mustErr(t, err, ErrIO)
	mustErr(t, v.Readdir(d.Ino, 0, func(DirEntry) bool { return true }), ErrIO)
	_, err = v.GetXattr(f.Ino, "user.a")
	mustErr(t, err, ErrIO)
	_, err = v.ListXattr(f.Ino)
	mustErr(t, err, ErrIO)
	mustErr(t, v.RemoveXattr(f.Ino, "user.a"), ErrIO)
	mustErr(t, v.Unlink(d.Ino, "f"), ErrIO)
	if _, err := v.Create(RootIno, "g", 0o644, Owner{}); err != nil {
		t.Fatalf("the volume stopped: %v", err)
	}
	restore()

	restore = breakItems(map[btree.Key][]byte{inode.InodeKey(f.Ino): make([]byte, inode.RecordSize-1)})
	_, err = v.GetAttr(f.Ino)
	mustErr(t, err, ErrIO)
	if _, err := v.Create(RootIno, "h", 0o644, Owner{}); err != nil {
		t.Fatalf("the volume stopped: %v", err)
	}
	restore()

	// A truncate item that does not decode frees nothing: as size 0 it
	// would free the whole file.
	if _, err := v.Write(f.Ino, make([]byte, 3*4096), 0); err != nil {
		t.Fatal(err)
	}
	breakItems(map[btree.Key][]byte{inode.TruncKey(f.Ino): {1, 2, 3}})
	_, err = v.Write(f.Ino, []byte("x"), 0)
	mustErr(t, err, ErrIO)
	v.mu.Lock()
	_, err = v.tree.Delete(inode.TruncKey(f.Ino)) // restore would put an empty value
	v.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if a, err := v.GetAttr(f.Ino); err != nil || a.Blocks == 0 {
		t.Fatalf("after the bad truncate item: %+v %v", a, err)
	}
}
