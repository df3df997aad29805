package txfs

import (
	"errors"
	"syscall"
	"testing"

	"github.com/txfs/txfs/inode"
)

// TestSetFlags: who may set which inode flags, as on ext4, and that they
// are kept across a reopen.
func TestSetFlags(t *testing.T) {
	v, dev := newTestVolume(t, 32<<20, Options{})
	alice, bob := Owner{Uid: 1000, Gid: 1000}, Owner{Uid: 1001, Gid: 1001}
	f, _ := v.Create(RootIno, "f", 0o644, alice)
	fifo, _ := v.Mknod(RootIno, "p", syscall.S_IFIFO|0o644, 0, Owner{})
	flags := func(ino Ino) uint32 {
		t.Helper()
		a, err := v.GetAttr(ino)
		if err != nil {
			t.Fatal(err)
		}
		return a.Flags
	}
	if flags(f.Ino) != 0 {
		t.Fatalf("a new file has flags %#x", flags(f.Ino))
	}
	// Flags txfs does not keep: EOPNOTSUPP, nothing changes.
	for _, fl := range []uint32{0x1, 0x4, 0x8 | FlagNoDump, 0x1000, 0x80000, 0x80000000} {
		mustErr(t, v.SetFlags(f.Ino, fl, Owner{}), ErrNotSupported)
	}
	mustErr(t, v.SetFlags(fifo.Ino, FlagImmutable, Owner{}), ErrNotSupported)
	if err := v.SetFlags(fifo.Ino, FlagNoDump|FlagNoAtime, Owner{}); err != nil {
		t.Fatal(err)
	}
	// The owner sets nodump and noatime, nobody else but root does.
	mustErr(t, v.SetFlags(f.Ino, FlagNoDump, bob), ErrPermission)
	before, _ := v.GetAttr(f.Ino)
	if err := v.SetFlags(f.Ino, FlagNoDump|FlagNoAtime, alice); err != nil {
		t.Fatal(err)
	}
	if a, _ := v.GetAttr(f.Ino); a.Flags != FlagNoDump|FlagNoAtime || !after(a.Ctime, before.Ctime) {
		t.Fatalf("after chattr +dA: flags %#x, ctime %v (was %v)", a.Flags, a.Ctime, before.Ctime)
	}
	// Only root sets or clears i and a.
	mustErr(t, v.SetFlags(f.Ino, FlagImmutable, alice), ErrPermission)
	mustErr(t, v.SetFlags(f.Ino, FlagAppend|FlagNoDump, alice), ErrPermission)
	if err := v.SetFlags(f.Ino, FlagAppend, Owner{}); err != nil {
		t.Fatal(err)
	}
	mustErr(t, v.SetFlags(f.Ino, 0, alice), ErrPermission)
	if err := v.SetFlags(f.Ino, FlagAppend|FlagNoDump, alice); err != nil {
		t.Fatalf("the owner changes nodump of an append-only file: %v", err)
	}
	if err := v.SetFlags(f.Ino, FlagImmutable|FlagAppend, Owner{}); err != nil {
		t.Fatal(err)
	}
	// While it stays immutable no flag changes, even by root.
	mustErr(t, v.SetFlags(f.Ino, FlagImmutable, Owner{}), ErrPermission)
	mustErr(t, v.SetFlags(f.Ino, FlagImmutable|FlagAppend|FlagNoDump, Owner{}), ErrPermission)
	if flags(f.Ino) != FlagImmutable|FlagAppend {
		t.Fatalf("flags %#x after refused changes", flags(f.Ino))
	}
	v = reopen(t, v, dev)
	defer v.Close()
	if flags(f.Ino) != FlagImmutable|FlagAppend || flags(fifo.Ino) != FlagNoDump|FlagNoAtime {
		t.Fatalf("after reopen: flags %#x and %#x", flags(f.Ino), flags(fifo.Ino))
	}
	if err := v.SetFlags(f.Ino, 0, Owner{}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(f.Ino, []byte("x"), 0); err != nil {
		t.Fatalf("write after the flags were cleared: %v", err)
	}
}

// flagFixture is a volume with a directory d holding the file f ("hello",
// with an attribute) and the empty directory sub, and the files g and h
// at the root.
type flagFixture struct {
	v         *Volume
	d, f, sub Attr
	g, h      Attr
}

func newFlagFixture(t *testing.T) *flagFixture {
	v, _ := newTestVolume(t, 32<<20, Options{})
	x := &flagFixture{v: v}
	x.d, _ = v.Mkdir(RootIno, "d", 0o755, Owner{})
	x.f, _ = v.Create(x.d.Ino, "f", 0o644, Owner{})
	x.sub, _ = v.Mkdir(x.d.Ino, "sub", 0o755, Owner{})
	x.g, _ = v.Create(RootIno, "g", 0o644, Owner{})
	x.h, _ = v.Create(RootIno, "h", 0o644, Owner{})
	if _, err := v.Write(x.f.Ino, []byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if err := v.SetXattr(x.f.Ino, "user.x", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	return x
}

// expect runs each operation and requires want from it, and requires the
// tree not to change for any that fails.
func (x *flagFixture) expect(t *testing.T, ops []flagOp) {
	t.Helper()
	for _, o := range ops {
		before, err := dump(x.v)
		if err != nil {
			t.Fatal(err)
		}
		err = o.do()
		if !errors.Is(err, o.want) && !(o.want == nil && err == nil) {
			t.Errorf("%s: %v, want %v", o.what, err, o.want)
			continue
		}
		if after, _ := dump(x.v); err != nil && after != before {
			t.Errorf("%s failed and changed the tree:\n%s", o.what, lineDiff(after, before))
		}
	}
}

type flagOp struct {
	what string
	do   func() error
	want error
}

func ignore[T any](_ T, err error) error { return err }

// fileOps are the operations that change a file f in directory d, and
// what each must answer when f is immutable (immutable) or append-only.
func (x *flagFixture) fileOps(immutable bool) []flagOp {
	v, f, d := x.v, x.f.Ino, x.d.Ino
	eperm := ErrPermission
	appendOK := error(nil)
	if immutable {
		appendOK = eperm
	}
	return []flagOp{
		{"write at 0", func() error { return ignore(v.Write(f, []byte("Z"), 0)) }, eperm},
		{"write past the end", func() error { return ignore(v.Write(f, []byte("Z"), 100)) }, eperm},
		{"write of nothing", func() error { return ignore(v.Write(f, nil, 0)) }, appendOK},
		{"truncate", func() error { return ignore(v.SetAttr(f, &SetAttrIn{Valid: SetSize, Size: 1})) }, eperm},
		{"truncate up", func() error { return ignore(v.SetAttr(f, &SetAttrIn{Valid: SetSize, Size: 100})) }, eperm},
		{"chmod", func() error { return ignore(v.SetAttr(f, &SetAttrIn{Valid: SetMode, Mode: 0o600})) }, eperm},
		{"chown", func() error { return ignore(v.SetAttr(f, &SetAttrIn{Valid: SetUid | SetGid})) }, eperm},
		{"utimes", func() error {
			return ignore(v.SetAttr(f, &SetAttrIn{Valid: SetAtime | SetMtime, Atime: Timespec{Sec: 1}}))
		}, eperm},
		{"utimes now, omit", func() error { return ignore(v.SetAttr(f, &SetAttrIn{Valid: SetMtimeNow})) }, eperm},
		{"setxattr", func() error { return v.SetXattr(f, "user.y", []byte("2"), 0) }, eperm},
		{"replace an xattr", func() error { return v.SetXattr(f, "user.x", []byte("2"), 0) }, eperm},
		{"removexattr", func() error { return v.RemoveXattr(f, "user.x") }, eperm},
		{"removexattr of nothing", func() error { return v.RemoveXattr(f, "user.none") }, eperm},
		{"punch", func() error { return v.PunchHole(f, 0, 1) }, eperm},
		{"copy into", func() error { return ignore(v.CopyRange(x.g.Ino, 0, f, 0, 1)) }, eperm},
		{"link", func() error { return ignore(v.Link(f, d, "f2")) }, eperm},
		{"link onto a name", func() error { return ignore(v.Link(f, d, "sub")) }, ErrExist},
		{"rename", func() error { return v.Rename(d, "f", d, "f3", 0) }, eperm},
		{"rename with whiteout", func() error { return v.Rename(d, "f", RootIno, "f3", RenameWhiteout) }, eperm},
		{"rename over", func() error { return v.Rename(RootIno, "g", d, "f", 0) }, eperm},
		{"exchange", func() error { return v.Rename(RootIno, "g", d, "f", RenameExchange) }, eperm},
		{"unlink", func() error { return v.Unlink(d, "f") }, eperm},
		{"rmdir of it", func() error { return v.Rmdir(d, "f") }, eperm},
		{"open to write", func() error { return v.OpenFileFlags(f, syscall.O_WRONLY) }, eperm},
		{"open to append", func() error { return v.OpenFileFlags(f, syscall.O_WRONLY|syscall.O_APPEND) }, appendOK},
		{"open with O_TRUNC", func() error { return v.OpenFileFlags(f, syscall.O_RDONLY|syscall.O_TRUNC) }, eperm},
		{"touch", func() error { return ignore(v.SetAttr(f, &SetAttrIn{Valid: SetAtimeNow | SetMtimeNow})) }, appendOK},
		{"append", func() error { return ignore(v.Write(f, []byte("!"), 5)) }, appendOK},
	}
}

// TestImmutableFile: an immutable file cannot change in any way, nor
// lose or gain a name; it can be read and opened for reading.
func TestImmutableFile(t *testing.T) {
	x := newFlagFixture(t)
	if err := x.v.SetFlags(x.f.Ino, FlagImmutable, Owner{}); err != nil {
		t.Fatal(err)
	}
	x.expect(t, x.fileOps(true))
	buf := make([]byte, 5)
	if n, err := x.v.Read(x.f.Ino, buf, 0); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read: %q %v", buf[:n], err)
	}
	if err := x.v.OpenFileFlags(x.f.Ino, syscall.O_RDONLY); err != nil {
		t.Fatal(err)
	}
	x.v.Release(x.f.Ino)
}

// TestAppendOnlyFile: an append-only file only grows at its end (and can
// be touched); it cannot lose or gain a name.
func TestAppendOnlyFile(t *testing.T) {
	x := newFlagFixture(t)
	if err := x.v.SetFlags(x.f.Ino, FlagAppend, Owner{}); err != nil {
		t.Fatal(err)
	}
	x.expect(t, x.fileOps(false))
	x.v.Release(x.f.Ino) // the open to append
	// Appends by copy_file_range too, and a copy that grows it by whole
	// shared blocks.
	a, _ := x.v.GetAttr(x.f.Ino)
	if n, err := x.v.CopyRange(x.g.Ino, 0, x.f.Ino, int64(a.Size), 1); err != nil || n != 0 {
		t.Fatalf("copy of an empty file onto the end: %d %v", n, err)
	}
	if _, err := x.v.Write(x.g.Ino, make([]byte, 8192), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := x.v.SetAttr(x.f.Ino, &SetAttrIn{}); err != nil {
		t.Fatalf("setattr of nothing: %v", err)
	}
	if err := x.v.SetFlags(x.f.Ino, 0, Owner{}); err != nil {
		t.Fatal(err)
	}
	if err := x.v.PunchHole(x.f.Ino, 0, 4096); err != nil {
		t.Fatal(err)
	}
	if _, err := x.v.SetAttr(x.f.Ino, &SetAttrIn{Valid: SetSize, Size: 4096}); err != nil {
		t.Fatal(err)
	}
	if err := x.v.SetFlags(x.f.Ino, FlagAppend, Owner{}); err != nil {
		t.Fatal(err)
	}
	if n, err := x.v.CopyRange(x.g.Ino, 0, x.f.Ino, 4096, 8192); err != nil || n != 8192 {
		t.Fatalf("block-sharing copy onto the end: %d %v", n, err)
	}
	mustErr(t, ignore(x.v.CopyRange(x.g.Ino, 0, x.f.Ino, 0, 4096)), ErrPermission)
	if a, _ := x.v.GetAttr(x.f.Ino); a.Size != 12288 {
		t.Fatalf("size %d after appends, want 12288", a.Size)
	}
}

// dirOps are the operations on the names of directory d, and what each
// must answer when d is immutable (immutable) or append-only.
func (x *flagFixture) dirOps(immutable bool) []flagOp {
	v, d := x.v, x.d.Ino
	eperm := ErrPermission
	addOK := error(nil)
	if immutable {
		addOK = eperm
	}
	return []flagOp{
		{"create", func() error { return ignore(v.Create(d, "new", 0o644, Owner{})) }, addOK},
		{"create over a name", func() error { return ignore(v.Create(d, "f", 0o644, Owner{})) }, ErrExist},
		{"mkdir", func() error { return ignore(v.Mkdir(d, "nd", 0o755, Owner{})) }, addOK},
		{"symlink", func() error { return ignore(v.Symlink(d, "sl", "t", Owner{})) }, addOK},
		{"mknod", func() error { return ignore(v.Mknod(d, "p", syscall.S_IFIFO|0o644, 0, Owner{})) }, addOK},
		{"link into", func() error { return ignore(v.Link(x.g.Ino, d, "g2")) }, addOK},
		{"rename into", func() error { return v.Rename(RootIno, "g", d, "g3", 0) }, addOK},
		{"rename over an entry", func() error { return v.Rename(RootIno, "h", d, "f", 0) }, eperm},
		{"rename within", func() error { return v.Rename(d, "f", d, "f4", 0) }, eperm},
		{"rename out", func() error { return v.Rename(d, "f", RootIno, "f5", 0) }, eperm},
		{"unlink", func() error { return v.Unlink(d, "f") }, eperm},
		{"unlink of nothing", func() error { return v.Unlink(d, "none") }, ErrNotExist},
		{"rmdir", func() error { return v.Rmdir(d, "sub") }, eperm},
		{"rmdir of it", func() error { return v.Rmdir(RootIno, "d") }, eperm},
		{"unlink of it", func() error { return v.Unlink(RootIno, "d") }, eperm},
		{"chmod", func() error { return ignore(v.SetAttr(d, &SetAttrIn{Valid: SetMode, Mode: 0o700})) }, eperm},
		{"setxattr", func() error { return v.SetXattr(d, "user.a", []byte("1"), 0) }, eperm},
		{"the files in it change", func() error { return ignore(v.Write(x.f.Ino, []byte("Z"), 0)) }, nil},
	}
}

func TestImmutableDir(t *testing.T) {
	x := newFlagFixture(t)
	if err := x.v.SetFlags(x.d.Ino, FlagImmutable, Owner{}); err != nil {
		t.Fatal(err)
	}
	x.expect(t, x.dirOps(true))
	_, err := x.v.Tmpfile(x.d.Ino, 0o600, Owner{})
	mustErr(t, err, ErrPermission)
}

func TestAppendOnlyDir(t *testing.T) {
	x := newFlagFixture(t)
	if err := x.v.SetFlags(x.d.Ino, FlagAppend, Owner{}); err != nil {
		t.Fatal(err)
	}
	x.expect(t, x.dirOps(false))
	a, err := x.v.Tmpfile(x.d.Ino, 0o600, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	x.v.Release(a.Ino)
}

// TestNoAtimeFlag: reads of a file or listings of a directory with
// FlagNoAtime leave atime alone where relatime would move it.
func TestNoAtimeFlag(t *testing.T) {
	v, _ := newTestVolume(t, 16<<20, Options{})
	f, _ := v.Create(RootIno, "f", 0o644, Owner{})
	d, _ := v.Mkdir(RootIno, "d", 0o755, Owner{})
	if _, err := v.Write(f.Ino, []byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	old := &SetAttrIn{Valid: SetAtime | SetMtime, Atime: Timespec{Sec: 1000}, Mtime: Timespec{Sec: 2000}}
	for _, ino := range []Ino{f.Ino, d.Ino} {
		if _, err := v.SetAttr(ino, old); err != nil {
			t.Fatal(err)
		}
		if err := v.SetFlags(ino, FlagNoAtime, Owner{}); err != nil {
			t.Fatal(err)
		}
	}
	read := func() {
		t.Helper()
		if _, err := v.Read(f.Ino, make([]byte, 8), 0); err != nil {
			t.Fatal(err)
		}
		if err := v.Readdir(d.Ino, 0, func(DirEntry) bool { return true }); err != nil {
			t.Fatal(err)
		}
	}
	read()
	for _, ino := range []Ino{f.Ino, d.Ino} {
		if a, _ := v.GetAttr(ino); a.Atime.Sec != 1000 {
			t.Errorf("inode %d with noatime: a read moved atime to %v", ino, a.Atime)
		}
	}
	for _, ino := range []Ino{f.Ino, d.Ino} {
		if err := v.SetFlags(ino, 0, Owner{}); err != nil {
			t.Fatal(err)
		}
	}
	read()
	for _, ino := range []Ino{f.Ino, d.Ino} {
		if a, _ := v.GetAttr(ino); a.Atime.Sec == 1000 {
			t.Errorf("inode %d without noatime: a read left atime at %v", ino, a.Atime)
		}
	}
}

// TestCheckUnknownFlags: the checker reports inode flags txfs does not
// define.
func TestCheckUnknownFlags(t *testing.T) {
	v, _ := newTestVolume(t, 16<<20, Options{})
	f, _ := v.Create(RootIno, "f", 0o644, Owner{})
	v.mu.Lock()
	r, err := v.getInode(f.Ino)
	if err == nil {
		r.Flags = 0x1000
		err = v.tree.Put(inode.InodeKey(f.Ino), r.Encode())
	}
	v.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := v.CheckReport()
	if err != nil || len(rep.Problems) != 1 {
		t.Fatalf("check: %v %q", err, rep.Problems)
	}
	v.mu.Lock()
	r.Flags = 0
	err = v.tree.Put(inode.InodeKey(f.Ino), r.Encode())
	v.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
}
