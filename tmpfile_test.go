package txfs

import (
	"bytes"
	"errors"
	"math/rand"
	"strings"
	"syscall"
	"testing"

	"github.com/txfs/txfs/segment"
)

func TestTmpfile(t *testing.T) {
	v, dev := newTestVolume(t, 32<<20, Options{})
	d, _ := v.Mkdir(RootIno, "d", 0o755, Owner{})
	f, _ := v.Create(RootIno, "f", 0o644, Owner{})
	if _, err := v.Tmpfile(f.Ino, 0o600, Owner{}); !errors.Is(err, ErrNotDir) {
		t.Fatalf("tmpfile in a file: %v, want ErrNotDir", err)
	}
	if _, err := v.Tmpfile(9999, 0o600, Owner{}); !errors.Is(err, ErrNotExist) {
		t.Fatalf("tmpfile in a missing directory: %v, want ErrNotExist", err)
	}
	before, _ := v.GetAttr(d.Ino)
	a, err := v.Tmpfile(d.Ino, 0o640, Owner{Uid: 7, Gid: 8})
	if err != nil {
		t.Fatal(err)
	}
	if a.Mode != syscall.S_IFREG|0o640 || a.Nlink != 0 || a.Uid != 7 || a.Gid != 8 || a.Size != 0 {
		t.Fatalf("tmpfile attr %+v", a)
	}
	if after, _ := v.GetAttr(d.Ino); after != before {
		t.Fatalf("the directory changed: %+v, was %+v", after, before)
	}
	var names []string
	v.Readdir(d.Ino, 0, func(e DirEntry) bool { names = append(names, e.Name); return true })
	if len(names) != 0 {
		t.Fatalf("directory lists %v", names)
	}
	data := bytes.Repeat([]byte("tmpfile "), 20000)
	if _, err := v.Write(a.Ino, data, 0); err != nil {
		t.Fatal(err)
	}
	if rep, _ := v.CheckReport(); rep.Orphans != 1 || rep.Err() != nil {
		t.Fatalf("check of an open tmpfile: %d orphans, %v", rep.Orphans, rep.Err())
	}
	l, err := v.Link(a.Ino, d.Ino, "named")
	if err != nil {
		t.Fatal(err)
	}
	if l.Nlink != 1 {
		t.Fatalf("nlink after link %d, want 1", l.Nlink)
	}
	if rep, _ := v.CheckReport(); rep.Orphans != 0 || rep.Err() != nil {
		t.Fatalf("check after link: %d orphans, %v", rep.Orphans, rep.Err())
	}
	if err := v.Release(a.Ino); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data)+1)
	if e, err := v.Lookup(d.Ino, "named"); err != nil || e.Ino != a.Ino {
		t.Fatalf("lookup of the linked tmpfile: %+v %v", e, err)
	}
	if n, err := v.Read(a.Ino, got, 0); err != nil || !bytes.Equal(got[:n], data) {
		t.Fatalf("read after link and release: %d %v", n, err)
	}

	// Closed without a name: freed at once, and no longer linkable.
	b, _ := v.Tmpfile(RootIno, 0o600, Owner{})
	v.Write(b.Ino, data, 0)
	if err := v.Release(b.Ino); err != nil {
		t.Fatal(err)
	}
	if _, err := v.GetAttr(b.Ino); !errors.Is(err, ErrNotExist) {
		t.Fatalf("closed tmpfile still exists: %v", err)
	}
	if _, err := v.Link(b.Ino, RootIno, "late"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("link of a freed tmpfile: %v, want ErrNotExist", err)
	}

	// Linked, then unlinked again while open: an orphan again, freed at
	// the last release.
	c, _ := v.Tmpfile(RootIno, 0o600, Owner{})
	if _, err := v.Link(c.Ino, RootIno, "c"); err != nil {
		t.Fatal(err)
	}
	if err := v.Unlink(RootIno, "c"); err != nil {
		t.Fatal(err)
	}
	if rep, _ := v.CheckReport(); rep.Orphans != 1 || rep.Err() != nil {
		t.Fatalf("check of an unlinked open tmpfile: %d orphans, %v", rep.Orphans, rep.Err())
	}
	v.Release(c.Ino)
	if _, err := v.GetAttr(c.Ino); !errors.Is(err, ErrNotExist) {
		t.Fatalf("unlinked tmpfile still exists after release: %v", err)
	}
	if rep, _ := v.CheckReport(); rep.Orphans != 0 || rep.Err() != nil {
		t.Fatalf("check at the end: %d orphans, %v", rep.Orphans, rep.Err())
	}
	want, _ := dump(v)
	v = reopen(t, v, dev)
	if got, _ := dump(v); got != want {
		t.Fatalf("after reopen:\n%s\nwant:\n%s", got, want)
	}
	v.Close()
}

// TestTmpfileCrash cuts the power around the life of an O_TMPFILE file:
// before it has a name it is freed at the next open (from the log and from
// a checkpoint); once linked it is there with all its data or not at all;
// once the link is synced it is there.
func TestTmpfileCrash(t *testing.T) {
	v, dev := newTestVolume(t, 32<<20, Options{})
	data := make([]byte, 300000)
	rand.New(rand.NewSource(1)).Read(data)
	a, err := v.Tmpfile(RootIno, 0o600, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(a.Ino, data, 0); err != nil {
		t.Fatal(err)
	}
	// recoverCrash opens what the disk holds after a power cut now, checks
	// it, and returns the data of the file named "kept" (nil: none).
	recoverCrash := func(what string, opt segment.CrashOptions, rng *rand.Rand) []byte {
		t.Helper()
		v2, err := Open(dev.Crash(opt, rng), Options{})
		if err != nil {
			t.Fatalf("%s: open: %v", what, err)
		}
		defer v2.Close()
		rep, err := v2.CheckReport()
		if err != nil || rep.Err() != nil || rep.Orphans != 0 {
			t.Fatalf("%s: check: %v %v, %d orphans", what, err, rep.Err(), rep.Orphans)
		}
		if _, err := v2.GetAttr(a.Ino); errors.Is(err, ErrNotExist) {
			if _, err := v2.Lookup(RootIno, "kept"); !errors.Is(err, ErrNotExist) {
				t.Fatalf("%s: the inode is gone but its name is there: %v", what, err)
			}
			return nil
		}
		e, err := v2.Lookup(RootIno, "kept")
		if err != nil || e.Ino != a.Ino || e.Nlink != 1 {
			t.Fatalf("%s: inode %d survived without its name: %+v %v", what, a.Ino, e, err)
		}
		got := make([]byte, e.Size)
		n, err := v2.Read(e.Ino, got, 0)
		if err != nil {
			t.Fatalf("%s: read: %v", what, err)
		}
		return got[:n]
	}
	synced := segment.CrashOptions{KeepPrefix: 0}

	// Open and unnamed, its data synced: freed by recovery, which says so.
	if err := v.Fsync(a.Ino); err != nil {
		t.Fatal(err)
	}
	v2, err := Open(dev.Crash(synced, nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v2.GetAttr(a.Ino); !errors.Is(err, ErrNotExist) {
		t.Fatalf("unnamed tmpfile survived recovery: %v", err)
	}
	changed, err := v2.Repair()
	if err != nil || len(changed) != 1 || !strings.Contains(changed[0], "freed orphan inode") {
		t.Fatalf("repair after recovery: %q %v", changed, err)
	}
	if err := v2.Check(); err != nil {
		t.Fatal(err)
	}
	v2.Close()
	// The same with the orphan in a checkpoint rather than the log.
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := recoverCrash("after a checkpoint", synced, nil); got != nil {
		t.Fatal("unnamed tmpfile survived recovery from a checkpoint")
	}

	// Linked but not synced: all or nothing at every crash point.
	if _, err := v.Link(a.Ino, RootIno, "kept"); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 20; i++ {
		opt := segment.CrashOptions{KeepPrefix: -1, TearLast: i%2 == 0, Reorder: i%4 == 1}
		if got := recoverCrash("linked, not synced", opt, rng); got != nil && !bytes.Equal(got, data) {
			t.Fatalf("crash %d (%+v): linked tmpfile has %d bytes, not its data", i, opt, len(got))
		}
	}

	// Linked and synced: there.
	if err := v.Fsync(a.Ino); err != nil {
		t.Fatal(err)
	}
	if got := recoverCrash("linked and synced", synced, nil); !bytes.Equal(got, data) {
		t.Fatalf("synced link: %d bytes, want the data", len(got))
	}
	if err := v.Release(a.Ino); err != nil {
		t.Fatal(err)
	}
}
