package txfs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/txfs/txfs/segment"
)

func TestBasicNamespace(t *testing.T) {
	v, dev := newTestVolume(t, 32<<20, Options{})
	d, err := v.Mkdir(RootIno, "dir", 0o750, Owner{Uid: 5, Gid: 6})
	if err != nil {
		t.Fatal(err)
	}
	if d.Mode != syscall.S_IFDIR|0o750 || d.Nlink != 2 || d.Uid != 5 || d.Gid != 6 {
		t.Fatalf("mkdir attr %+v", d)
	}
	f, err := v.Create(d.Ino, "file", 0o640, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Create(d.Ino, "file", 0o640, Owner{}); !errors.Is(err, ErrExist) {
		t.Fatalf("create twice: %v", err)
	}
	if _, err := v.Lookup(d.Ino, "nope"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("lookup missing: %v", err)
	}
	if _, err := v.Lookup(f.Ino, "x"); !errors.Is(err, ErrNotDir) {
		t.Fatalf("lookup in file: %v", err)
	}
	if _, err := v.Create(d.Ino, strings.Repeat("x", 256), 0o644, Owner{}); !errors.Is(err, ErrNameTooLong) {
		t.Fatalf("long name: %v", err)
	}
	if _, err := v.Create(d.Ino, strings.Repeat("x", 255), 0o644, Owner{}); err != nil {
		t.Fatalf("255-byte name: %v", err)
	}
	for _, bad := range []string{"", "a/b", "a\x00b", ".", ".."} {
		if _, err := v.Create(d.Ino, bad, 0o644, Owner{}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("name %q: %v", bad, err)
		}
	}
	if _, err := v.Link(f.Ino, RootIno, "hard"); err != nil {
		t.Fatal(err)
	}
	if a, _ := v.GetAttr(f.Ino); a.Nlink != 2 {
		t.Fatalf("nlink after link %d", a.Nlink)
	}
	if _, err := v.Link(d.Ino, RootIno, "dirlink"); !errors.Is(err, ErrPermission) {
		t.Fatalf("link of a directory: %v", err)
	}
	if err := v.Rmdir(RootIno, "dir"); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("rmdir non-empty: %v", err)
	}
	if err := v.Unlink(RootIno, "dir"); !errors.Is(err, ErrIsDir) {
		t.Fatalf("unlink dir: %v", err)
	}
	if err := v.Rmdir(RootIno, "hard"); !errors.Is(err, ErrNotDir) {
		t.Fatalf("rmdir file: %v", err)
	}
	s, err := v.Symlink(RootIno, "sym", strings.Repeat("/long/target", 300), Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.Readlink(s.Ino); err != nil || got != strings.Repeat("/long/target", 300) {
		t.Fatalf("readlink: %v", err)
	}
	fifo, err := v.Mknod(RootIno, "fifo", syscall.S_IFIFO|0o600, 0, Owner{})
	if err != nil || fifo.Mode != syscall.S_IFIFO|0o600 {
		t.Fatalf("mknod fifo: %+v %v", fifo, err)
	}
	dev2, err := v.Mknod(RootIno, "null", syscall.S_IFCHR|0o666, 0x103, Owner{})
	if err != nil || dev2.Rdev != 0x103 {
		t.Fatalf("mknod chr: %+v %v", dev2, err)
	}
	before, _ := dump(v)
	v = reopen(t, v, dev)
	after, _ := dump(v)
	if before != after {
		t.Fatalf("after reopen:\n%s\nwant:\n%s", after, before)
	}
	v.Close()
}

func TestRenameSemantics(t *testing.T) {
	v, _ := newTestVolume(t, 32<<20, Options{})
	a, _ := v.Mkdir(RootIno, "a", 0o755, Owner{})
	b, _ := v.Mkdir(a.Ino, "b", 0o755, Owner{})
	f, _ := v.Create(RootIno, "f", 0o644, Owner{})
	g, _ := v.Create(RootIno, "g", 0o644, Owner{})
	mustErr(t, v.Rename(RootIno, "a", b.Ino, "x", 0), ErrInvalid)
	mustErr(t, v.Rename(RootIno, "a", a.Ino, "x", 0), ErrInvalid)
	mustErr(t, v.Rename(RootIno, "f", RootIno, "g", RenameNoReplace), ErrExist)
	mustErr(t, v.Rename(RootIno, "f", RootIno, "nope", RenameExchange), ErrNotExist)
	mustErr(t, v.Rename(RootIno, "f", RootIno, "g", 8), ErrInvalid)
	mustErr(t, v.Rename(RootIno, "f", RootIno, "a", 0), ErrIsDir)
	mustErr(t, v.Rename(RootIno, "a", RootIno, "f", 0), ErrNotDir)
	if err := v.Rename(RootIno, "f", RootIno, "g", RenameExchange); err != nil {
		t.Fatal(err)
	}
	if x, _ := v.Lookup(RootIno, "g"); x.Ino != f.Ino {
		t.Fatal("exchange did not swap")
	}
	if err := v.Rename(RootIno, "g", RootIno, "f", 0); err != nil { // over g's old inode
		t.Fatal(err)
	}
	if _, err := v.GetAttr(g.Ino); !errors.Is(err, ErrNotExist) {
		t.Fatalf("replaced file still exists: %v", err)
	}
	// Moving a directory fixes both parents' link counts.
	if err := v.Rename(a.Ino, "b", RootIno, "b", 0); err != nil {
		t.Fatal(err)
	}
	ra, _ := v.GetAttr(RootIno)
	aa, _ := v.GetAttr(a.Ino)
	if ra.Nlink != 4 || aa.Nlink != 2 {
		t.Fatalf("nlink root %d a %d", ra.Nlink, aa.Nlink)
	}
	// Over an empty directory.
	if err := v.Rename(RootIno, "b", RootIno, "a", 0); err != nil {
		t.Fatal(err)
	}
	if ra, _ := v.GetAttr(RootIno); ra.Nlink != 3 {
		t.Fatalf("root nlink %d", ra.Nlink)
	}
}

func TestSparseWriteReadTruncate(t *testing.T) {
	v, dev := newTestVolume(t, 64<<20, Options{})
	f, _ := v.Create(RootIno, "sparse", 0o644, Owner{})
	data := bytes.Repeat([]byte("0123456789"), 1000)
	const far = 5<<20 + 123
	if _, err := v.Write(f.Ino, data, far); err != nil {
		t.Fatal(err)
	}
	a, _ := v.GetAttr(f.Ino)
	if a.Size != far+uint64(len(data)) || a.Blocks > 8*4 {
		t.Fatalf("size %d blocks %d", a.Size, a.Blocks)
	}
	buf := make([]byte, 20000)
	n, err := v.Read(f.Ino, buf, far-5000)
	if err != nil || n != 15000 || !bytes.Equal(buf[:5000], make([]byte, 5000)) || !bytes.Equal(buf[5000:n], data) {
		t.Fatalf("read across hole: %d %v", n, err)
	}
	if _, err := v.SetAttr(f.Ino, &SetAttrIn{Valid: SetSize, Size: far + 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.SetAttr(f.Ino, &SetAttrIn{Valid: SetSize, Size: far + 100}); err != nil {
		t.Fatal(err)
	}
	n, _ = v.Read(f.Ino, buf, far)
	if n != 100 || !bytes.Equal(buf[:10], data[:10]) || !bytes.Equal(buf[10:100], make([]byte, 90)) {
		t.Fatalf("truncate then extend: %q", buf[:n])
	}
	v = reopen(t, v, dev)
	n, _ = v.Read(f.Ino, buf, far)
	if n != 100 || !bytes.Equal(buf[:10], data[:10]) {
		t.Fatal("after reopen")
	}
	v.Close()
}

func TestLargeFileAcrossUnitsAndTruncateChunks(t *testing.T) {
	v, dev := newTestVolume(t, 256<<20, Options{})
	f, _ := v.Create(RootIno, "big", 0o644, Owner{})
	data := make([]byte, 40<<20) // more than one free chunk of blocks
	rand.New(rand.NewSource(3)).Read(data)
	if n, err := v.Write(f.Ino, data, 0); err != nil || n != len(data) {
		t.Fatalf("write: %d %v", n, err)
	}
	v = reopen(t, v, dev)
	got := make([]byte, len(data))
	if n, err := v.Read(f.Ino, got, 0); err != nil || n != len(data) || !bytes.Equal(got, data) {
		t.Fatalf("read back: %d %v", n, err)
	}
	if _, err := v.SetAttr(f.Ino, &SetAttrIn{Valid: SetSize, Size: 1000}); err != nil {
		t.Fatal(err)
	}
	if a, _ := v.GetAttr(f.Ino); a.Blocks != 8 {
		t.Fatalf("blocks after truncate: %d", a.Blocks)
	}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
	if err := v.Unlink(RootIno, "big"); err != nil {
		t.Fatal(err)
	}
	v.Close()
}

func TestOrphanFreedAtRecovery(t *testing.T) {
	v, dev := newTestVolume(t, 32<<20, Options{})
	f, _ := v.Create(RootIno, "f", 0o644, Owner{})
	v.Write(f.Ino, make([]byte, 100000), 0)
	v.OpenFile(f.Ino)
	if err := v.Unlink(RootIno, "f"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if n, err := v.Read(f.Ino, buf, 0); n != 10 || err != nil {
		t.Fatalf("read unlinked open file: %d %v", n, err)
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	// Power cut while the file is open: the orphan is freed at open.
	img := dev.Crash(segment.CrashOptions{KeepPrefix: 0}, rand.New(rand.NewSource(1)))
	v2, err := Open(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v2.GetAttr(f.Ino); !errors.Is(err, ErrNotExist) {
		t.Fatalf("orphan survived recovery: %v", err)
	}
	rep, _ := v2.CheckReport()
	if rep.Orphans != 0 || rep.Err() != nil {
		t.Fatalf("check: %+v", rep)
	}
	v2.Close()
	v.Release(f.Ino)
}

// TestOrphanFreedAtClose: Close frees the orphans that open references
// still keep (a file unlinked while open, a removed directory, an unnamed
// tmpfile), so the next Open finds none to free; files that keep a name
// stay.
func TestOrphanFreedAtClose(t *testing.T) {
	v, dev := newTestVolume(t, 32<<20, Options{})
	data := bytes.Repeat([]byte("orphan "), 30000)
	f, _ := v.Create(RootIno, "f", 0o644, Owner{})
	if _, err := v.Write(f.Ino, data, 0); err != nil {
		t.Fatal(err)
	}
	d, _ := v.Mkdir(RootIno, "d", 0o755, Owner{})
	kept, _ := v.Create(RootIno, "kept", 0o644, Owner{})
	if _, err := v.Write(kept.Ino, data, 0); err != nil {
		t.Fatal(err)
	}
	for _, ino := range []Ino{f.Ino, d.Ino, kept.Ino} {
		if err := v.OpenFile(ino); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Unlink(RootIno, "f"); err != nil {
		t.Fatal(err)
	}
	if err := v.Rmdir(RootIno, "d"); err != nil {
		t.Fatal(err)
	}
	tmp, err := v.Tmpfile(RootIno, 0o600, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(tmp.Ino, data, 0); err != nil {
		t.Fatal(err)
	}
	if rep, _ := v.CheckReport(); rep.Orphans != 3 || rep.Err() != nil {
		t.Fatalf("check before close: %d orphans, %v", rep.Orphans, rep.Err())
	}
	want, _ := dump(v)

	// Closed with all four still open.
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Release(f.Ino); !errors.Is(err, ErrClosed) {
		t.Fatalf("release after close: %v, want ErrClosed", err)
	}
	v, err = Open(dev, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if len(v.opened) != 0 {
		t.Fatalf("open after a clean close freed: %q", v.opened)
	}
	rep, err := v.CheckReport()
	if err != nil || rep.Err() != nil || rep.Orphans != 0 {
		t.Fatalf("check after reopen: %v %v, %d orphans", err, rep.Err(), rep.Orphans)
	}
	for _, ino := range []Ino{f.Ino, d.Ino, tmp.Ino} {
		if _, err := v.GetAttr(ino); !errors.Is(err, ErrNotExist) {
			t.Fatalf("orphan %d survived close: %v", ino, err)
		}
	}
	if got, _ := dump(v); got != want {
		t.Fatalf("after reopen:\n%s\nwant:\n%s", got, want)
	}
}

func TestXattrs(t *testing.T) {
	v, _ := newTestVolume(t, 32<<20, Options{})
	f, _ := v.Create(RootIno, "f", 0o644, Owner{})
	mustErr(t, v.SetXattr(f.Ino, "user.a", []byte("1"), XattrReplace), ErrNoAttr)
	if err := v.SetXattr(f.Ino, "user.a", []byte("1"), XattrCreate); err != nil {
		t.Fatal(err)
	}
	mustErr(t, v.SetXattr(f.Ino, "user.a", []byte("2"), XattrCreate), ErrExist)
	mustErr(t, v.SetXattr(f.Ino, "bogus.a", []byte("2"), 0), ErrNotSupported)
	mustErr(t, v.SetXattr(f.Ino, "user.big", make([]byte, v.MaxXattrValue("user.big")+1), 0), ErrAttrTooBig)
	if err := v.SetXattr(f.Ino, "user.max", make([]byte, v.MaxXattrValue("user.max")), 0); err != nil {
		t.Fatal(err)
	}
	names, _ := v.ListXattr(f.Ino)
	if fmt.Sprint(names) != "[user.a user.max]" {
		t.Fatalf("list %v", names)
	}
	if val, _ := v.GetXattr(f.Ino, "user.a"); string(val) != "1" {
		t.Fatalf("get %q", val)
	}
	mustErr(t, v.RemoveXattr(f.Ino, "user.nope"), ErrNoAttr)
	if err := v.RemoveXattr(f.Ino, "user.a"); err != nil {
		t.Fatal(err)
	}
	_, err := v.GetXattr(f.Ino, "user.a")
	mustErr(t, err, ErrNoAttr)
}

// TestCapabilitiesDropped checks that every change of a file's content or
// owner removes its security.capability attribute, and nothing else: a
// program changed after setcap must not keep the capabilities.
func TestCapabilitiesDropped(t *testing.T) {
	v, dev := newTestVolume(t, 32<<20, Options{})
	src, _ := v.Create(RootIno, "src", 0o644, Owner{})
	if _, err := v.Write(src.Ino, make([]byte, 8192), 0); err != nil {
		t.Fatal(err)
	}
	d, _ := v.Mkdir(RootIno, "d", 0o755, Owner{})
	ops := []struct {
		name string
		fn   func(ino Ino) error
	}{
		{"write", func(ino Ino) error { _, err := v.Write(ino, []byte("x"), 3); return err }},
		{"truncate", func(ino Ino) error { _, err := v.SetAttr(ino, &SetAttrIn{Valid: SetSize, Size: 1}); return err }},
		{"chown", func(ino Ino) error { _, err := v.SetAttr(ino, &SetAttrIn{Valid: SetUid, Uid: 7}); return err }},
		{"chgrp", func(ino Ino) error { _, err := v.SetAttr(ino, &SetAttrIn{Valid: SetGid, Gid: 7}); return err }},
		{"punch", func(ino Ino) error { return v.PunchHole(ino, 0, 4096) }},
		// Every fallocate mode, even one that changes no byte (ext4's
		// file_modified removes it first).
		{"punch past the end", func(ino Ino) error { return v.PunchHole(ino, 1<<20, 4096) }},
		{"zero range", func(ino Ino) error { return v.ZeroRange(ino, 100, 10, false) }},
		{"collapse range", func(ino Ino) error { return v.CollapseRange(ino, 0, 4096) }},
		{"insert range", func(ino Ino) error { return v.InsertRange(ino, 0, 4096) }},
		{"clone", func(ino Ino) error { _, err := v.CopyRange(src.Ino, 0, ino, 0, 8192); return err }},
		{"copy", func(ino Ino) error { _, err := v.CopyRange(src.Ino, 1, ino, 0, 100); return err }},
	}
	capValue := []byte("capability bytes")
	for _, op := range ops {
		f, err := v.Create(RootIno, op.name, 0o755, Owner{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Write(f.Ino, make([]byte, 8192), 0); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{capabilityXattr, "security.other", "user.a"} {
			if err := v.SetXattr(f.Ino, name, capValue, 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := op.fn(f.Ino); err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
		if _, err := v.GetXattr(f.Ino, capabilityXattr); !errors.Is(err, ErrNoAttr) {
			t.Errorf("%s kept %s: %v", op.name, capabilityXattr, err)
		}
		if names, _ := v.ListXattr(f.Ino); fmt.Sprint(names) != "[security.other user.a]" {
			t.Errorf("%s: attributes %v, want the others kept", op.name, names)
		}
	}
	// Reading, chmod and a directory's change of owner keep it.
	f, _ := v.Create(RootIno, "kept", 0o755, Owner{})
	if err := v.SetXattr(f.Ino, capabilityXattr, capValue, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.SetXattr(d.Ino, capabilityXattr, capValue, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Read(f.Ino, make([]byte, 10), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := v.SetAttr(f.Ino, &SetAttrIn{Valid: SetMode | SetMtimeNow, Mode: 0o700}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.SetAttr(d.Ino, &SetAttrIn{Valid: SetUid, Uid: 7}); err != nil {
		t.Fatal(err)
	}
	for _, ino := range []Ino{f.Ino, d.Ino} {
		if val, err := v.GetXattr(ino, capabilityXattr); err != nil || string(val) != string(capValue) {
			t.Errorf("inode %d: %s = %q, %v after read, chmod or a directory's chown", ino, capabilityXattr, val, err)
		}
	}
	v = reopen(t, v, dev)
	if _, err := v.GetXattr(f.Ino, capabilityXattr); err != nil {
		t.Errorf("after reopen: %v", err)
	}
	v.Close()
}

func TestBigDirectoryAndStableReaddir(t *testing.T) {
	n := 100000
	if testing.Short() {
		n = 10000
	}
	v, dev := newTestVolume(t, 512<<20, Options{})
	d, _ := v.Mkdir(RootIno, "big", 0o755, Owner{})
	for i := 0; i < n; i++ {
		if _, err := v.Create(d.Ino, fmt.Sprintf("file-%06d", i), 0o644, Owner{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i += 997 {
		if _, err := v.Lookup(d.Ino, fmt.Sprintf("file-%06d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// List while other names come and go: every name that exists throughout
	// shows exactly once.
	seen := map[string]int{}
	i := 0
	err := v.Readdir(d.Ino, 0, func(e DirEntry) bool {
		seen[e.Name]++
		if i%10 == 0 {
			v.Create(d.Ino, fmt.Sprintf("new-%d", i), 0o644, Owner{})
			v.Unlink(d.Ino, fmt.Sprintf("new-%d", i-10))
		}
		i++
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	for j := 0; j < n; j++ {
		if c := seen[fmt.Sprintf("file-%06d", j)]; c != 1 {
			t.Fatalf("file-%06d listed %d times", j, c)
		}
	}
	for name, c := range seen {
		if c != 1 {
			t.Fatalf("%s listed %d times", name, c)
		}
	}
	// Resuming from a cookie continues after that entry.
	var first []DirEntry
	v.Readdir(d.Ino, 0, func(e DirEntry) bool { first = append(first, e); return len(first) < 3 })
	var resumed DirEntry
	v.Readdir(d.Ino, first[1].Next, func(e DirEntry) bool { resumed = e; return false })
	if resumed.Name != first[2].Name {
		t.Fatalf("resume gave %q, want %q", resumed.Name, first[2].Name)
	}
	v = reopen(t, v, dev)
	v.Close()
}

// TestConcurrentFsync runs many writers with fsync and crashes the device
// afterwards: every fsynced write must be there.
func TestConcurrentFsync(t *testing.T) {
	v, dev := newTestVolume(t, 64<<20, Options{})
	const workers, writes = 16, 40
	inos := make([]Ino, workers)
	for w := range inos {
		a, err := v.Create(RootIno, fmt.Sprintf("w%d", w), 0o644, Owner{})
		if err != nil {
			t.Fatal(err)
		}
		inos[w] = a.Ino
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := bytes.Repeat([]byte{byte(w)}, 4096)
			for i := 0; i < writes; i++ {
				if _, err := v.Write(inos[w], buf, int64(i)*4096); err != nil {
					t.Error(err)
					return
				}
				if err := v.Fsync(inos[w]); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	img := dev.Crash(segment.CrashOptions{KeepPrefix: 0}, rand.New(rand.NewSource(1)))
	v2, err := Open(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if err := v2.Check(); err != nil {
		t.Fatal(err)
	}
	for w, ino := range inos {
		a, err := v2.GetAttr(ino)
		if err != nil || a.Size != writes*4096 {
			t.Fatalf("worker %d: size %d %v", w, a.Size, err)
		}
		buf := make([]byte, a.Size)
		v2.Read(ino, buf, 0)
		if !bytes.Equal(buf, bytes.Repeat([]byte{byte(w)}, len(buf))) {
			t.Fatalf("worker %d data wrong", w)
		}
	}
}

func TestFullVolumeGivesENOSPCAndRecovers(t *testing.T) {
	v, dev := newTestVolume(t, 16<<20, Options{})
	f, _ := v.Create(RootIno, "fill", 0o644, Owner{})
	buf := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(buf)
	var err error
	var off int64
	for i := 0; i < 100; i++ {
		if _, err = v.Write(f.Ino, buf, off); err != nil {
			break
		}
		off += int64(len(buf))
	}
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("filling the volume: %v after %d bytes", err, off)
	}
	st, _ := v.Statfs()
	if st.Bavail > 256 {
		t.Fatalf("statfs says %d blocks free on a full volume", st.Bavail)
	}
	// A full volume can always be emptied, and the space comes back.
	if err := v.Unlink(RootIno, "fill"); err != nil {
		t.Fatal(err)
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	g, _ := v.Create(RootIno, "again", 0o644, Owner{})
	for i := int64(0); i < off/int64(len(buf))-1; i++ {
		if _, err := v.Write(g.Ino, buf, i*int64(len(buf))); err != nil {
			t.Fatalf("rewrite after delete, MiB %d: %v", i, err)
		}
	}
	v = reopen(t, v, dev)
	v.Close()
}

func TestCorruptionIsReportedNeverReturned(t *testing.T) {
	v, dev := newTestVolume(t, 32<<20, Options{})
	f, _ := v.Create(RootIno, "f", 0o644, Owner{})
	data := make([]byte, 256<<10)
	rand.New(rand.NewSource(5)).Read(data)
	v.Write(f.Ino, data, 0)
	v.Close()
	img := dev.Bytes()
	rng := rand.New(rand.NewSource(9))
	for i := 0; i < 200; i++ {
		c := append([]byte(nil), img...)
		// Flip bits in the written part of the image.
		for j := 0; j < 1+rng.Intn(4); j++ {
			pos := rng.Intn(2 << 20)
			c[pos] ^= 1 << rng.Intn(8)
		}
		d := segment.NewMemDevice(int64(len(c)))
		d.WriteAt(c, 0)
		v2, err := Open(d, Options{ReadOnly: true})
		if err != nil {
			continue // refused with an error: fine
		}
		got := make([]byte, len(data))
		n, err := v2.Read(f.Ino, got, 0)
		if err == nil && (n != len(data) || !bytes.Equal(got, data)) {
			t.Fatalf("trial %d: damaged image returned wrong data without an error", i)
		}
		v2.CheckReport()
		v2.Close()
	}
}

func FuzzOpen(f *testing.F) {
	dev := segment.NewMemDevice(2 << 20)
	if err := Format(dev, FormatOptions{SegmentSize: 64 << 10}); err == nil {
		b := dev.Bytes()
		f.Add(b[:64<<10])
	}
	f.Add([]byte("TXFSSUPR"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := segment.NewMemDevice(2 << 20)
		d.WriteAt(b[:min(len(b), 2<<20)], 0)
		v, err := Open(d, Options{ReadOnly: true})
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		v.Readdir(RootIno, 0, func(e DirEntry) bool {
			v.Read(e.Ino, buf, 0)
			return true
		})
		v.CheckReport()
		v.Close()
	})
}

// TestBoundedMetadataCache: a volume with far more metadata than its cache
// works, and after a checkpoint the tree's cache holds no more than its
// share of the budget, counted in memory.
func TestBoundedMetadataCache(t *testing.T) {
	n := 60000
	if testing.Short() {
		n = 10000
	}
	v, dev := newTestVolume(t, 256<<20, Options{CacheBytes: MinCacheBytes})
	bound := v.mem.tree
	d, _ := v.Mkdir(RootIno, "d", 0o755, Owner{})
	for i := 0; i < n; i++ {
		if _, err := v.Create(d.Ino, fmt.Sprintf("f%d", i), 0o644, Owner{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	st := v.tree.Stats()
	if st.CachedBytes > bound+int64(v.bs)*int64(st.Height) {
		t.Fatalf("after a checkpoint the tree cache holds %d bytes, bound %d", st.CachedBytes, bound)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	v, err := Open(dev, Options{CacheBytes: MinCacheBytes})
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	v.Readdir(d.Ino, 0, func(e DirEntry) bool {
		if _, err := v.GetAttr(e.Ino); err != nil {
			t.Fatal(err)
		}
		count++
		return true
	})
	if count != n {
		t.Fatalf("listed %d of %d", count, n)
	}
	if st := v.tree.Stats(); st.CachedBytes > bound+int64(v.bs)*int64(st.Height) {
		t.Fatalf("reading everything grew the cache to %d bytes, bound %d", st.CachedBytes, bound)
	}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
	v.Close()
}

func TestFileOfOneTebibyte(t *testing.T) {
	v, dev := newTestVolume(t, 32<<20, Options{})
	f, _ := v.Create(RootIno, "huge", 0o644, Owner{})
	const off = 1<<40 - 4096
	if _, err := v.Write(f.Ino, []byte("end of a tebibyte"), off); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(f.Ino, []byte("x"), MaxFileSize); !errors.Is(err, ErrFileTooBig) {
		t.Fatalf("write past the largest size: %v", err)
	}
	v = reopen(t, v, dev)
	a, _ := v.GetAttr(f.Ino)
	buf := make([]byte, 17)
	if n, err := v.Read(f.Ino, buf, off); err != nil || n != 17 || string(buf) != "end of a tebibyte" || a.Size != off+17 {
		t.Fatalf("read %q (%d, %v), size %d", buf, n, err, a.Size)
	}
	if n, _ := v.Read(f.Ino, buf, 1<<39); n != 17 || !bytes.Equal(buf, make([]byte, 17)) {
		t.Fatal("a hole in the middle does not read as zeros")
	}
	if _, err := v.SetAttr(f.Ino, &SetAttrIn{Valid: SetSize, Size: 0}); err != nil {
		t.Fatal(err)
	}
	v.Close()
}

// TestConcurrentOperations runs random operations from several goroutines
// at once, with checkpoints in between, then checks the volume and opens
// it again. The race detector watches.
func TestConcurrentOperations(t *testing.T) {
	v, dev := newTestVolume(t, 64<<20, Options{CheckpointBytes: 256 << 10})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			mine, _ := v.Mkdir(RootIno, fmt.Sprintf("w%d", w), 0o755, Owner{})
			dirs := []Ino{RootIno, mine.Ino}
			buf := make([]byte, 20000)
			for i := 0; i < 300; i++ {
				d := dirs[rng.Intn(len(dirs))]
				name := fmt.Sprintf("n%d", rng.Intn(8))
				switch rng.Intn(9) {
				case 0:
					v.Create(d, name, 0o644, Owner{})
				case 1:
					if a, err := v.Mkdir(d, name, 0o755, Owner{}); err == nil {
						dirs = append(dirs, a.Ino)
					}
				case 2:
					v.Unlink(d, name)
				case 3:
					v.Rmdir(d, name)
				case 4:
					v.Rename(d, name, dirs[rng.Intn(len(dirs))], fmt.Sprintf("n%d", rng.Intn(8)), uint32(rng.Intn(3)))
				case 5, 6:
					if a, err := v.Lookup(d, name); err == nil && !a.IsDir() {
						v.Write(a.Ino, buf[:rng.Intn(len(buf))], int64(rng.Intn(50000)))
						if rng.Intn(4) == 0 {
							v.Fsync(a.Ino)
						}
					}
				case 7:
					if a, err := v.Lookup(d, name); err == nil && !a.IsDir() {
						v.SetAttr(a.Ino, &SetAttrIn{Valid: SetSize, Size: uint64(rng.Intn(30000))})
					}
				case 8:
					v.Readdir(d, 0, func(e DirEntry) bool { v.GetAttr(e.Ino); return true })
				}
			}
		}(w)
	}
	wg.Wait()
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
	before, _ := dump(v)
	v = reopen(t, v, dev)
	if after, _ := dump(v); after != before {
		t.Fatal("the volume changed across close and open")
	}
	v.Close()
}

// An operation that fails halfway through its transaction (here a write
// whose second block cannot be read back) has already changed some of the
// in-memory state. Nothing may make that half durable: the volume stops
// writing there and then, saying which operation failed and why, and the
// next Open finds the file as the last commit left it.
func TestHalfDoneTransactionStopsVolume(t *testing.T) {
	v, dev, ino, old := volumeWithDamage(t)
	var stops []string
	v.opts.OnStop = func(err error) { stops = append(stops, err.Error()) }
	// Block 0 is rewritten in memory, then block 1 fails to read.
	_, err := v.Write(ino, bytes.Repeat([]byte("new!"), 1500), 100)
	mustErr(t, err, ErrIO)
	if !strings.Contains(err.Error(), "write failed halfway") || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("error %q does not say which operation failed halfway and why", err)
	}
	if werr := v.writableNow(); werr == nil || !strings.Contains(werr.Error(), "write failed halfway") {
		t.Fatalf("right after the failed write the volume says %v; want it stopped with the reason", werr)
	}
	if _, err := v.Create(RootIno, "g", 0o644, Owner{}); err == nil {
		t.Fatal("the volume took another operation after one failed halfway")
	}
	if len(stops) != 1 || !strings.Contains(stops[0], "write failed halfway") {
		t.Fatalf("OnStop heard %q; want the one reason", stops)
	}
	v.Close()
	v2, err := Open(dev, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	got := make([]byte, 4096)
	if _, err := v2.Read(ino, got, 0); err != nil || !bytes.Equal(got, old[:4096]) {
		t.Fatalf("block 0 after reopen: %q, %v; want the old content", got[:16], err)
	}
}
