package txfs

import (
	"errors"
	"syscall"
	"testing"
)

// TestRenameWhiteout: RENAME_WHITEOUT moves the entry and leaves a
// whiteout (S_IFCHR 0/0, mode 0, owned by the caller) at the source name,
// as ext4 does; it combines with RENAME_NOREPLACE and not with
// RENAME_EXCHANGE.
func TestRenameWhiteout(t *testing.T) {
	v, dev := newTestVolume(t, 32<<20, Options{})
	f, _ := v.Create(RootIno, "f", 0o644, Owner{})
	g, _ := v.Create(RootIno, "g", 0o644, Owner{})
	d, _ := v.Mkdir(RootIno, "d", 0o755, Owner{})
	sub, _ := v.Mkdir(RootIno, "sub", 0o755, Owner{})

	mustErr(t, v.Rename(RootIno, "f", RootIno, "g", RenameWhiteout|RenameExchange), ErrInvalid)
	mustErr(t, v.Rename(RootIno, "f", RootIno, "g", RenameWhiteout|RenameNoReplace), ErrExist)
	mustErr(t, v.Rename(RootIno, "nope", RootIno, "x", RenameWhiteout), ErrNotExist)

	o := Owner{Uid: 1000, Gid: 1234}
	if err := v.RenameAs(RootIno, "f", RootIno, "n", RenameWhiteout|RenameNoReplace, o); err != nil {
		t.Fatal(err)
	}
	if a, err := v.Lookup(RootIno, "n"); err != nil || a.Ino != f.Ino {
		t.Fatalf("n: %+v %v", a, err)
	}
	checkWhiteout := func(dir Ino, name string, o Owner) Attr {
		t.Helper()
		w, err := v.Lookup(dir, name)
		if err != nil {
			t.Fatalf("whiteout %s: %v", name, err)
		}
		if w.Mode != syscall.S_IFCHR || w.Rdev != 0 || w.Nlink != 1 || w.Size != 0 || w.Uid != o.Uid || w.Gid != o.Gid {
			t.Fatalf("whiteout %s: %+v", name, w)
		}
		return w
	}
	w := checkWhiteout(RootIno, "f", o)
	if w.Ino == f.Ino || w.Ino == g.Ino {
		t.Fatal("the whiteout reuses an inode")
	}

	// Over an existing target, which goes.
	if err := v.Rename(RootIno, "n", RootIno, "g", RenameWhiteout); err != nil {
		t.Fatal(err)
	}
	checkWhiteout(RootIno, "n", Owner{})
	if _, err := v.GetAttr(g.Ino); !errors.Is(err, ErrNotExist) {
		t.Fatalf("replaced file still exists: %v", err)
	}
	// A directory into another one: link counts as for a plain rename.
	if err := v.Rename(RootIno, "d", sub.Ino, "d", RenameWhiteout); err != nil {
		t.Fatal(err)
	}
	checkWhiteout(RootIno, "d", Owner{})
	ra, _ := v.GetAttr(RootIno)
	sa, _ := v.GetAttr(sub.Ino)
	da, _ := v.GetAttr(d.Ino)
	if ra.Nlink != 3 || sa.Nlink != 3 || da.Nlink != 2 {
		t.Fatalf("nlink root %d sub %d d %d", ra.Nlink, sa.Nlink, da.Nlink)
	}
	// Two names of one inode: nothing happens, no whiteout.
	if _, err := v.Link(f.Ino, RootIno, "f2"); err != nil {
		t.Fatal(err)
	}
	if err := v.Rename(RootIno, "g", RootIno, "f2", RenameWhiteout); err != nil {
		t.Fatal(err)
	}
	if a, _ := v.Lookup(RootIno, "g"); a.Ino != f.Ino {
		t.Fatalf("g is %+v after a rename onto its own other name", a)
	}
	// A whiteout is an ordinary name: it can be renamed over and removed.
	if err := v.Rename(RootIno, "g", RootIno, "n", 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Unlink(RootIno, "f"); err != nil {
		t.Fatal(err)
	}
	want, _ := dump(v)
	v = reopen(t, v, dev)
	defer v.Close()
	if got, _ := dump(v); got != want {
		t.Fatalf("after reopen:\n%s\nwant:\n%s", got, want)
	}
}
