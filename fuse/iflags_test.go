package fuse

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/txfs/txfs"
)

// Linux's inode flags (FS_*_FL) that package unix lacks: the four txfs
// keeps and some it does not.
const (
	fsImmutableFl = txfs.FlagImmutable
	fsAppendFl    = txfs.FlagAppend
	fsNodumpFl    = txfs.FlagNoDump
	fsNoatimeFl   = txfs.FlagNoAtime
	fsComprFl     = 0x4
	fsSyncFl      = 0x8
	fsDirsyncFl   = 0x10000
	fsExtentFl    = 0x80000

	fsIocGetVersion = 0x80087601 // FS_IOC_GETVERSION, _IOR('v', 1, long)
)

// getFlags returns the inode flags of p (FS_IOC_GETFLAGS).
func getFlags(p string) (uint32, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
}

// setFlags sets the inode flags of p (FS_IOC_SETFLAGS).
func setFlags(p string, flags uint32) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags))
}

// fsxattr reads p's struct fsxattr (FS_IOC_FSGETXATTR), lets change
// modify it and, when change returns true, writes it back
// (FS_IOC_FSSETXATTR), as xfs_io chattr does. Its first 4 bytes are the
// FS_XFLAG_* flags.
func fsxattr(p string, change func(x []byte) bool) ([]byte, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	x := make([]byte, fsxattrSize)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsIocFSGetXattr, uintptr(unsafe.Pointer(&x[0]))); e != 0 {
		return nil, e
	}
	if change == nil || !change(x) {
		return x, nil
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsIocFSSetXattr, uintptr(unsafe.Pointer(&x[0]))); e != 0 {
		return nil, e
	}
	return x, nil
}

// chflags changes the flags of p as chattr does: it reads them, adds and
// removes some, and writes them back (ext4 shows flags of its own, such
// as extents, which it must get back).
func chflags(p string, add, remove uint32) error {
	old, err := getFlags(p)
	if err != nil {
		return err
	}
	return setFlags(p, old&^remove|add)
}

func TestInodeFlags(t *testing.T) {
	dir := sharedMount(t)
	checkInodeFlags(t, dir)

	// Flags txfs does not keep: EOPNOTSUPP (ext4 keeps some of these).
	p := filepath.Join(dir, "other")
	writeFile(t, p, "")
	for _, fl := range []uint32{fsSyncFl, fsComprFl, fsExtentFl, fsNodumpFl | fsDirsyncFl} {
		if err := setFlags(p, fl); err != syscall.EOPNOTSUPP {
			t.Errorf("set flags %#x: %v, want EOPNOTSUPP", fl, err)
		}
	}
	for _, c := range []struct {
		what string
		off  int
		val  uint32
	}{{"FS_XFLAG_REALTIME", 0, 0x1}, {"FS_XFLAG_SYNC", 0, 0x20}, {"an extent size hint", 4, 4096}, {"a project ID", 12, 7}} {
		_, err := fsxattr(p, func(x []byte) bool {
			binary.NativeEndian.PutUint32(x[c.off:], c.val)
			return true
		})
		if err != syscall.EOPNOTSUPP {
			t.Errorf("FS_IOC_FSSETXATTR of %s: %v, want EOPNOTSUPP", c.what, err)
		}
	}
	// An ioctl txfs does not know.
	fd, err := unix.Open(p, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.IoctlGetUint32(fd, fsIocGetVersion); err != syscall.ENOTTY {
		t.Errorf("FS_IOC_GETVERSION: %v, want ENOTTY", err)
	}
	// A write through a descriptor opened before chattr +a must be at
	// the end (ext4 checks only at open and lets it write anywhere).
	writeFile(t, p, "abc")
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mustOK(t, chflags(p, fsAppendFl, 0))
	if _, err := f.WriteAt([]byte("Z"), 0); !errors.Is(err, syscall.EPERM) {
		t.Errorf("write at 0 of an append-only file: %v, want EPERM", err)
	}
	if _, err := f.WriteAt([]byte("d"), 3); err != nil {
		t.Errorf("write at the end of an append-only file: %v", err)
	}
	mustOK(t, chflags(p, 0, fsAppendFl))
	if got := readFile(t, p); got != "abcd" {
		t.Errorf("content %q, want abcd", got)
	}

	// chattr and lsattr themselves.
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("skipping the rest: no chattr")
	}
	if out, err := exec.Command("chattr", "+ia", p).CombinedOutput(); err != nil {
		t.Fatalf("chattr +ia: %v\n%s", err, out)
	}
	out, err := exec.Command("lsattr", "-d", p).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "----ia") {
		t.Errorf("lsattr after chattr +ia: %q %v", out, err)
	}
	if err := os.Remove(p); !errors.Is(err, syscall.EPERM) {
		t.Errorf("rm after chattr +ia: %v", err)
	}
	if out, err := exec.Command("chattr", "-ia", p).CombinedOutput(); err != nil {
		t.Fatalf("chattr -ia: %v\n%s", err, out)
	}
	if out, err := exec.Command("chattr", "+S", p).CombinedOutput(); err == nil {
		t.Errorf("chattr +S succeeded: %s", out)
	}
}

// TestInodeFlagsExt4 holds the same check to ext4.
func TestInodeFlagsExt4(t *testing.T) {
	dir := ext4Dir(t)
	openUp(t, dir)
	checkInodeFlags(t, dir)
}

// checkInodeFlags: what chattr +i, +a and +A do, and who may set them,
// as on ext4.
func checkInodeFlags(t *testing.T, dir string) {
	j := func(name string) string { return filepath.Join(dir, name) }
	must := func(err error) { t.Helper(); mustOK(t, err) }
	wantErr := func(what string, err, want error) { t.Helper(); wantErrIs(t, what, err, want) }
	flags := func(p string) uint32 {
		t.Helper()
		fl, err := getFlags(p)
		must(err)
		return fl & txfs.SupportedFlags
	}

	// Who may set what.
	mkfile(t, j("f"), "F", int(alice.uid), int(alice.gid), 0o644)
	if fl := flags(j("f")); fl != 0 {
		t.Errorf("a new file has flags %#x", fl)
	}
	expectAs(t, alice,
		expectOp{op("chattr", j("f"), "+", "d"), 0},
		expectOp{op("chattr", j("f"), "+", "i"), syscall.EPERM},
		expectOp{op("chattr", j("f"), "+", "a"), syscall.EPERM})
	expectAs(t, bob, expectOp{op("chattr", j("f"), "-", "d"), syscall.EPERM})
	if fl := flags(j("f")); fl != fsNodumpFl {
		t.Errorf("flags %#x after the owner's chattr +d, want nodump", fl)
	}
	must(chflags(j("f"), fsImmutableFl, 0))
	expectAs(t, alice,
		expectOp{op("chattr", j("f"), "-", "i"), syscall.EPERM},
		expectOp{op("chattr", j("f"), "-", "d"), syscall.EPERM})
	wantErr("root: another flag while immutable", chflags(j("f"), fsNoatimeFl, 0), syscall.EPERM)
	wantErr("a flag nobody knows", chflags(j("f"), 0x01000000, 0), syscall.EOPNOTSUPP)
	if fl := flags(j("f")); fl != fsNodumpFl|fsImmutableFl {
		t.Errorf("flags %#x after refused changes", fl)
	}
	must(chflags(j("f"), 0, fsImmutableFl|fsNodumpFl))

	// The other form of the same flags (FS_XFLAG_*, xfs_io chattr).
	must(chflags(j("f"), fsNoatimeFl, 0))
	const xflagAppend, xflagNoatime = 0x10, 0x40
	x, err := fsxattr(j("f"), nil)
	must(err)
	if xf := binary.NativeEndian.Uint32(x); xf != xflagNoatime {
		t.Errorf("FS_IOC_FSGETXATTR: xflags %#x, want noatime", xf)
	}
	_, err = fsxattr(j("f"), func(x []byte) bool {
		binary.NativeEndian.PutUint32(x, xflagAppend)
		return true
	})
	must(err)
	if fl := flags(j("f")); fl != fsAppendFl {
		t.Errorf("flags %#x after FS_IOC_FSSETXATTR of append, want append", fl)
	}
	must(chflags(j("f"), 0, fsAppendFl))

	for _, c := range []struct {
		name string
		flag uint32
	}{{"immutable", fsImmutableFl}, {"append", fsAppendFl}} {
		t.Run(c.name, func(t *testing.T) {
			checkFlaggedFile(t, j(c.name), c.flag)
			checkFlaggedDir(t, j(c.name+"dir"), c.flag)
		})
	}

	// noatime: a read leaves atime alone where relatime would move it.
	writeFile(t, j("na"), "abc")
	must(os.Mkdir(j("nadir"), 0o755))
	for _, p := range []string{j("na"), j("nadir")} {
		must(os.Chtimes(p, time1000, time2000))
		must(chflags(p, fsNoatimeFl, 0))
	}
	readFile(t, j("na"))
	if _, err := os.ReadDir(j("nadir")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{j("na"), j("nadir")} {
		if st := statxSync(t, p); st.Atime.Sec != 1000 {
			t.Errorf("%s with noatime: a read moved atime to %d", p, st.Atime.Sec)
		}
	}
}

var time1000, time2000 = time.Unix(1000, 0), time.Unix(2000, 0)

// chattrOp is the child operation "chattr PATH +|- LETTERS" (i, a, d, A).
func chattrOp(p, sign, letters string) error {
	var fl uint32
	for _, l := range letters {
		fl |= map[rune]uint32{'i': fsImmutableFl, 'a': fsAppendFl, 'd': fsNodumpFl, 'A': fsNoatimeFl}[l]
	}
	if sign == "+" {
		return chflags(p, fl, 0)
	}
	return chflags(p, 0, fl)
}

// flagCheck is an operation's result and the errno it must be.
type flagCheck struct {
	what string
	err  error
	want error
}

func checkResults(t *testing.T, cs []flagCheck) {
	t.Helper()
	for _, c := range cs {
		if !errors.Is(c.err, c.want) && !(c.err == nil && c.want == nil) {
			t.Errorf("%s: %v, want %v", c.what, c.err, c.want)
		}
	}
}

func openClose(p string, flags int) error {
	fd, err := unix.Open(p, flags|unix.O_NONBLOCK, 0o644)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

func ignoreN(_ int, err error) error { return err }

// checkFlaggedFile: the file p with flag (FS_IMMUTABLE_FL or
// FS_APPEND_FL) keeps its names, attributes and content, and an
// append-only one grows at its end through descriptors opened with
// O_APPEND.
func checkFlaggedFile(t *testing.T, p string, flag uint32) {
	immutable := flag == fsImmutableFl
	appendOK := error(nil)
	if immutable {
		appendOK = syscall.EPERM
	}
	eperm := syscall.EPERM
	g := p + ".g"
	writeFile(t, p, "hello")
	writeFile(t, g, "src")
	mustOK(t, unix.Setxattr(p, "user.x", []byte("1"), 0))
	old, err := unix.Open(p, unix.O_WRONLY, 0) // opened before the flag
	mustOK(t, err)
	defer unix.Close(old)
	src, err := unix.Open(g, unix.O_RDONLY, 0)
	mustOK(t, err)
	defer unix.Close(src)
	mustOK(t, chflags(p, flag, 0))
	defer func() { mustOK(t, chflags(p, 0, flag)) }()

	cs := []flagCheck{
		{"open O_RDONLY", openClose(p, unix.O_RDONLY), nil},
		{"open O_WRONLY", openClose(p, unix.O_WRONLY), eperm},
		{"open O_RDWR", openClose(p, unix.O_RDWR), eperm},
		{"open O_WRONLY|O_APPEND", openClose(p, unix.O_WRONLY|unix.O_APPEND), appendOK},
		{"open O_RDONLY|O_TRUNC", openClose(p, unix.O_RDONLY|unix.O_TRUNC), eperm},
		{"open O_WRONLY|O_APPEND|O_TRUNC", openClose(p, unix.O_WRONLY|unix.O_APPEND|unix.O_TRUNC), eperm},
		{"truncate", unix.Truncate(p, 1), eperm},
		{"truncate up", unix.Truncate(p, 100), eperm},
		{"ftruncate", unix.Ftruncate(old, 2), eperm},
		{"punch a hole", unix.Fallocate(old, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 1), eperm},
		{"chmod", unix.Chmod(p, 0o600), eperm},
		{"chown", unix.Chown(p, 0, 0), eperm},
		{"utimes", unix.UtimesNano(p, []unix.Timespec{{Sec: 1}, {Sec: 1}}), eperm},
		{"utimensat now, omit", unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_OMIT}}, 0), eperm},
		{"touch", unix.Utimes(p, nil), appendOK},
		{"setxattr", unix.Setxattr(p, "user.y", []byte("2"), 0), eperm},
		{"removexattr", unix.Removexattr(p, "user.x"), eperm},
		{"link", unix.Link(p, p+".l"), eperm},
		{"link onto a name", unix.Link(p, g), syscall.EEXIST},
		{"rename", unix.Rename(p, p+".r"), eperm},
		{"rename over", unix.Rename(g, p), eperm},
		{"rename onto itself", unix.Rename(p, p), nil},
		{"exchange", renameat2(g, p, renameExchange), eperm},
		{"rename with a whiteout", renameat2(p, p+".w", renameWhiteout), eperm},
		{"unlink", unix.Unlink(p), eperm},
	}
	if immutable {
		cs = append(cs,
			flagCheck{"write through a descriptor opened before", ignoreN(unix.Pwrite(old, []byte("Z"), 0)), eperm},
			flagCheck{"copy_file_range into it", ignoreN(unix.CopyFileRange(src, nil, old, nil, 3, 0)), eperm},
			flagCheck{"fallocate", unix.Fallocate(old, 0, 0, 8192), eperm},
			flagCheck{"fallocate KEEP_SIZE", unix.Fallocate(old, unix.FALLOC_FL_KEEP_SIZE, 0, 8192), eperm})
	} else {
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_APPEND, 0)
		mustOK(t, err)
		cs = append(cs,
			flagCheck{"append", ignoreN(unix.Write(fd, []byte("!"))), nil},
			flagCheck{"copy_file_range into an O_APPEND descriptor", ignoreN(unix.CopyFileRange(src, nil, fd, nil, 3, 0)), syscall.EBADF})
		unix.Close(fd)
	}
	checkResults(t, cs)
	want := "hello"
	if !immutable {
		want += "!"
	}
	if got := readFile(t, p); got != want {
		t.Errorf("content %q, want %q", got, want)
	}
	if v, err := unix.Getxattr(p, "user.x", make([]byte, 8)); err != nil || v != 1 {
		t.Errorf("user.x: %d %v", v, err)
	}
}

// checkFlaggedDir: the directory d with flag takes no new names when
// immutable, and loses none either way.
func checkFlaggedDir(t *testing.T, d string, flag uint32) {
	addOK := error(nil)
	if flag == fsImmutableFl {
		addOK = syscall.EPERM
	}
	eperm := syscall.EPERM
	j := func(name string) string { return filepath.Join(d, name) }
	out := func(name string) string { return d + "." + name }
	mustOK(t, os.MkdirAll(j("sub"), 0o755))
	mustOK(t, os.MkdirAll(j("nonempty"), 0o755))
	writeFile(t, j("nonempty/y"), "")
	writeFile(t, j("x"), "x")
	for _, n := range []string{"o1", "o2", "o3", "o4"} {
		writeFile(t, out(n), n)
	}
	mustOK(t, chflags(d, flag, 0))
	defer func() { mustOK(t, chflags(d, 0, flag)) }()

	checkResults(t, []flagCheck{
		{"create", openClose(j("new"), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY), addOK},
		{"open O_CREAT of a name there", openClose(j("x"), unix.O_CREAT|unix.O_WRONLY), nil},
		{"mkdir", unix.Mkdir(j("nd"), 0o755), addOK},
		{"mkdir of a name there", unix.Mkdir(j("sub"), 0o755), syscall.EEXIST},
		{"symlink", unix.Symlink("t", j("sl")), addOK},
		{"mkfifo", unix.Mkfifo(j("ff"), 0o644), addOK},
		{"O_TMPFILE", openClose(d, unix.O_TMPFILE|unix.O_WRONLY), addOK},
		{"link into", unix.Link(out("o1"), j("l")), addOK},
		{"rename into", unix.Rename(out("o2"), j("o2")), addOK},
		{"rename into with a whiteout", renameat2(out("o3"), j("o3"), renameWhiteout), addOK},
		{"rename over a name there", unix.Rename(out("o4"), j("x")), eperm},
		{"rename within", unix.Rename(j("x"), j("x3")), eperm},
		{"rename out", unix.Rename(j("x"), out("x")), eperm},
		{"rename out with a whiteout", renameat2(j("x"), out("x"), renameWhiteout), eperm},
		{"unlink", unix.Unlink(j("x")), eperm},
		{"unlink of nothing", unix.Unlink(j("none")), syscall.ENOENT},
		{"rmdir", unix.Rmdir(j("sub")), eperm},
		{"rmdir of a non-empty directory", unix.Rmdir(j("nonempty")), eperm},
		{"rmdir of it", unix.Rmdir(d), eperm},
		// unlink(2) of the directory itself is EPERM on ext4 and EISDIR
		// on the mount: the kernel answers EISDIR before it asks, as it
		// does not know a FUSE inode's flags.
		{"chmod", unix.Chmod(d, 0o700), eperm},
		{"setxattr", unix.Setxattr(d, "user.a", []byte("1"), 0), eperm},
		{"touch", unix.Utimes(d, nil), addOK},
		{"change a file in it", os.WriteFile(j("x"), []byte("X"), 0o644), nil},
		{"remove in a subdirectory", unix.Unlink(j("nonempty/y")), nil},
	})
}
