package txfs

import (
	"testing"
	"time"
)

// Reads keep atime as relatime does: the first read after a change moves
// it past mtime and ctime, later reads leave it, and a day-old atime moves
// again. Listing a directory counts as reading it. NoAtime never moves it,
// and the update survives a reopen.
func TestRelatime(t *testing.T) {
	v, dev := newTestVolume(t, 16<<20, Options{})
	f, err := v.Create(RootIno, "f", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(f.Ino, []byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	atime := func(ino Ino) Timespec {
		t.Helper()
		a, err := v.GetAttr(ino)
		if err != nil {
			t.Fatal(err)
		}
		return a.Atime
	}
	written, _ := v.GetAttr(f.Ino)
	if after(written.Atime, written.Mtime) {
		t.Fatalf("atime %v after mtime %v before any read", written.Atime, written.Mtime)
	}
	buf := make([]byte, 16)
	time.Sleep(2 * time.Millisecond)
	if _, err := v.Read(f.Ino, buf, 0); err != nil {
		t.Fatal(err)
	}
	first := atime(f.Ino)
	if !after(first, written.Mtime) || !after(first, written.Ctime) {
		t.Fatalf("first read after a write: atime %v, mtime %v, ctime %v", first, written.Mtime, written.Ctime)
	}
	time.Sleep(2 * time.Millisecond)
	if _, err := v.Read(f.Ino, buf, 0); err != nil {
		t.Fatal(err)
	}
	if again := atime(f.Ino); again != first {
		t.Fatalf("second read moved atime from %v to %v", first, again)
	}
	// A day-old atime moves again.
	old := Timespec{Sec: first.Sec - 25*3600}
	if _, err := v.SetAttr(f.Ino, &SetAttrIn{Valid: SetAtime | SetMtime, Atime: old, Mtime: Timespec{Sec: old.Sec - 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Read(f.Ino, buf, 0); err != nil {
		t.Fatal(err)
	}
	if a := atime(f.Ino); a.Sec < first.Sec {
		t.Fatalf("read of a file with a day-old atime left it at %v", a)
	}
	// Directories: a listing from the start.
	dirBefore := atime(RootIno)
	time.Sleep(2 * time.Millisecond)
	if err := v.Readdir(RootIno, 0, func(DirEntry) bool { return true }); err != nil {
		t.Fatal(err)
	}
	dirAfter := atime(RootIno)
	if !after(dirAfter, dirBefore) {
		t.Fatalf("listing the root after a create left its atime at %v", dirAfter)
	}
	v = reopen(t, v, dev)
	if a, _ := v.GetAttr(RootIno); a.Atime != dirAfter {
		t.Fatalf("after reopen the root's atime is %v, want %v", a.Atime, dirAfter)
	}
	v.Close()

	// NoAtime.
	v, err = Open(dev, Options{NoAtime: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Write(f.Ino, []byte("again"), 0); err != nil {
		t.Fatal(err)
	}
	before, _ := v.GetAttr(f.Ino)
	if _, err := v.Read(f.Ino, buf, 0); err != nil {
		t.Fatal(err)
	}
	if a, _ := v.GetAttr(f.Ino); a.Atime != before.Atime {
		t.Fatalf("NoAtime: a read moved atime from %v to %v", before.Atime, a.Atime)
	}
}
