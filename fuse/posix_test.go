package fuse

// POSIX behaviour of the mount, checked as ext4 behaves. Each check is a
// function of a directory, so the same expectations can be run against
// any filesystem; the tests run them on a fresh mount.
//
// Other users act through a child process: the test binary runs itself
// again (through /proc/self/exe, which needs no access to the build
// directory) with the credentials of the user and a list of operations in
// the environment, and reports one errno per operation.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childOpsEnv carries the operations of a child process, as JSON.
const childOpsEnv = "TXFS_POSIX_CHILD_OPS"

func init() {
	if ops := os.Getenv(childOpsEnv); ops != "" {
		os.Exit(childMain(ops))
	}
}

// childMain runs the operations in ops (a JSON list of argument lists) and
// prints one errno per operation (0 for success) as a JSON list.
func childMain(ops string) int {
	var list [][]string
	if err := json.Unmarshal([]byte(ops), &list); err != nil {
		fmt.Fprintln(os.Stderr, "bad operations:", err)
		return 2
	}
	syscall.Umask(0)
	res := make([]int, len(list))
	for i, op := range list {
		err := childOp(op)
		var en syscall.Errno
		switch {
		case err == nil:
		case errors.As(err, &en):
			res[i] = int(en)
		default:
			fmt.Fprintf(os.Stderr, "%q: %v\n", op, err)
			return 2
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 2
	}
	return 0
}

// parseMode parses an octal mode.
func parseMode(s string) uint32 {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		panic(err)
	}
	return uint32(m)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// parseTime parses a utimensat time: "now", "omit", or seconds.
func parseTime(s string) unix.Timespec {
	switch s {
	case "now":
		return unix.Timespec{Nsec: unix.UTIME_NOW}
	case "omit":
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		panic(err)
	}
	return unix.Timespec{Sec: sec, Nsec: 1234}
}

// childOp performs one operation and returns its errno.
func childOp(op []string) error {
	arg := func(i int) string { return op[i] }
	switch op[0] {
	case "read": // open for reading and read
		fd, err := syscall.Open(arg(1), syscall.O_RDONLY, 0)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		_, err = syscall.Read(fd, make([]byte, 16))
		return err
	case "write": // open for writing and append a byte
		fd, err := syscall.Open(arg(1), syscall.O_WRONLY|syscall.O_APPEND, 0)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		_, err = syscall.Write(fd, []byte("w"))
		return err
	case "exec": // execute, and wait for a successful exit
		pid, err := syscall.ForkExec(arg(1), []string{arg(1)}, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
		if err != nil {
			return err
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			return err
		}
		if ws.ExitStatus() != 0 {
			return fmt.Errorf("%s exited with %v", arg(1), ws)
		}
		return nil
	case "lstat":
		var st syscall.Stat_t
		return syscall.Lstat(arg(1), &st)
	case "statsync": // statx that asks the filesystem, not a cache
		var st unix.Statx_t
		return unix.Statx(unix.AT_FDCWD, arg(1), unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_FORCE_SYNC, unix.STATX_BASIC_STATS, &st)
	case "chdir":
		return syscall.Chdir(arg(1))
	case "readdir":
		fd, err := syscall.Open(arg(1), syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		_, err = syscall.Getdents(fd, make([]byte, 4096))
		return err
	case "create": // create exclusively with a mode
		fd, err := syscall.Open(arg(1), syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY, parseMode(arg(2)))
		if err != nil {
			return err
		}
		return syscall.Close(fd)
	case "mkdir":
		return syscall.Mkdir(arg(1), parseMode(arg(2)))
	case "mkfifo":
		return syscall.Mkfifo(arg(1), parseMode(arg(2)))
	case "symlink":
		return syscall.Symlink(arg(1), arg(2))
	case "link":
		return syscall.Link(arg(1), arg(2))
	case "unlink":
		return syscall.Unlink(arg(1))
	case "rmdir":
		return syscall.Rmdir(arg(1))
	case "rename":
		return syscall.Rename(arg(1), arg(2))
	case "chattr": // path, + or -, letters of i, a, d, A
		return chattrOp(arg(1), arg(2), arg(3))
	case "renameat2": // with flags
		return renameat2(arg(1), arg(2), uint(atoi(arg(3))))
	case "chmod":
		return syscall.Chmod(arg(1), parseMode(arg(2)))
	case "chown": // uid and gid, -1 to leave one alone
		return syscall.Lchown(arg(1), atoi(arg(2)), atoi(arg(3)))
	case "truncate":
		return syscall.Truncate(arg(1), int64(atoi(arg(2))))
	case "utimens": // atime and mtime: now, omit, or seconds
		return unix.UtimesNanoAt(unix.AT_FDCWD, arg(1), []unix.Timespec{parseTime(arg(2)), parseTime(arg(3))}, 0)
	case "touch": // utimensat with no times
		return unix.Utimes(arg(1), nil)
	}
	return fmt.Errorf("unknown operation %q", op[0])
}

// user is who a child process runs as.
type user struct {
	uid, gid uint32
	groups   []uint32
}

var (
	alice = user{uid: 1000, gid: 1000}
	bob   = user{uid: 1001, gid: 1001}
	carol = user{uid: 1002, gid: 1002}
)

// runAs runs ops in a child process as u and returns their errnos.
func runAs(t *testing.T, u user, ops ...[]string) []syscall.Errno {
	t.Helper()
	js, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), childOpsEnv+"="+string(js))
	if u.uid != uint32(os.Geteuid()) || u.gid != uint32(os.Getegid()) || u.groups != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
			Uid: u.uid, Gid: u.gid, Groups: u.groups}}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child as %d:%d: %v\n%s", u.uid, u.gid, err, stderr.Bytes())
	}
	var res []int
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || len(res) != len(ops) {
		t.Fatalf("child as %d:%d: output %q: %v\n%s", u.uid, u.gid, stdout.Bytes(), err, stderr.Bytes())
	}
	errnos := make([]syscall.Errno, len(res))
	for i, r := range res {
		errnos[i] = syscall.Errno(r)
	}
	return errnos
}

// expectOp is an operation and the errno it must give (0: success).
type expectOp struct {
	op   []string
	want syscall.Errno
}

// op builds an operation.
func op(args ...string) []string { return args }

// expectAs runs the operations as u, in order in one child, and reports
// every one whose result differs.
func expectAs(t *testing.T, u user, exps ...expectOp) {
	t.Helper()
	ops := make([][]string, len(exps))
	for i, e := range exps {
		ops[i] = e.op
	}
	got := runAs(t, u, ops...)
	for i, e := range exps {
		if got[i] != e.want {
			t.Errorf("as uid %d gid %d: %q: %s, want %s", u.uid, u.gid, e.op, errName(got[i]), errName(e.want))
		}
	}
}

func errName(e syscall.Errno) string {
	if e == 0 {
		return "success"
	}
	return unix.ErrnoName(e)
}

// sharedMount mounts a fresh volume that other users can use: allow_other,
// and the temporary directories above it opened up. The mount's root is
// 0755, owned by root.
func sharedMount(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to act as other users")
	}
	mnt := testMountConfig(t, MountConfig{AllowOther: true})
	openUp(t, mnt)
	return mnt
}

// openUp makes dir and the temporary directories above it 0755, so that
// other users can reach dir.
func openUp(t *testing.T, dir string) {
	t.Helper()
	for p := filepath.Dir(dir); p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// withUmask runs fn with the process umask set to mask.
func withUmask(mask int, fn func()) {
	old := syscall.Umask(mask)
	defer syscall.Umask(old)
	fn()
}

// mkfile creates p with the data, then sets its owner and exact mode.
func mkfile(t *testing.T, p, data string, uid, gid int, mode uint32) {
	t.Helper()
	writeFile(t, p, data)
	setOwnerMode(t, p, uid, gid, mode)
}

// mkdirAs makes directory p, then sets its owner and exact mode.
func mkdirAs(t *testing.T, p string, uid, gid int, mode uint32) {
	t.Helper()
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	setOwnerMode(t, p, uid, gid, mode)
}

func setOwnerMode(t *testing.T, p string, uid, gid int, mode uint32) {
	t.Helper()
	if err := os.Lchown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

const script = "#!/bin/sh\nexit 0\n"

func TestPermissions(t *testing.T) {
	checkPermissions(t, sharedMount(t))
}

// checkPermissions: owner, group and other classes for files and
// directories, for a user who is not root; root bypasses all but execute.
func checkPermissions(t *testing.T, dir string) {
	j := func(name string) string { return filepath.Join(dir, name) }
	alice1234 := user{uid: 1000, gid: 1000, groups: []uint32{1234}}

	// Files: the first class that matches decides, even when a later one
	// would allow more.
	mkfile(t, j("owner-rw"), "x", 1000, 1234, 0o600)
	mkfile(t, j("owner-none"), "x", 1000, 1234, 0o077)
	mkfile(t, j("group-r"), "x", 0, 1234, 0o640)
	mkfile(t, j("group-none"), "x", 0, 1234, 0o606)
	mkfile(t, j("other-r"), "x", 0, 0, 0o604)
	mkfile(t, j("other-w"), "x", 0, 0, 0o602)
	mkfile(t, j("exec-owner"), script, 1000, 1000, 0o500)
	mkfile(t, j("exec-group"), script, 0, 1234, 0o050)
	mkfile(t, j("exec-other"), script, 0, 0, 0o750)
	mkfile(t, j("noexec"), script, 1000, 1000, 0o644)
	mkfile(t, j("exec-no-read"), script, 1000, 1000, 0o100)
	expectAs(t, alice1234,
		expectOp{op("read", j("owner-rw")), 0},
		expectOp{op("write", j("owner-rw")), 0},
		expectOp{op("read", j("owner-none")), syscall.EACCES},
		expectOp{op("write", j("owner-none")), syscall.EACCES},
		expectOp{op("read", j("group-r")), 0},
		expectOp{op("write", j("group-r")), syscall.EACCES},
		expectOp{op("read", j("group-none")), syscall.EACCES},
		expectOp{op("write", j("group-none")), syscall.EACCES},
		expectOp{op("read", j("other-r")), 0},
		expectOp{op("write", j("other-r")), syscall.EACCES},
		expectOp{op("read", j("other-w")), syscall.EACCES},
		expectOp{op("write", j("other-w")), 0},
		expectOp{op("exec", j("exec-owner")), 0},
		expectOp{op("exec", j("exec-group")), 0},
		expectOp{op("exec", j("exec-other")), syscall.EACCES},
		expectOp{op("exec", j("noexec")), syscall.EACCES},
	)
	// Without the supplementary group alice is "other".
	expectAs(t, alice,
		expectOp{op("read", j("group-r")), syscall.EACCES},
		expectOp{op("read", j("group-none")), 0},
		expectOp{op("exec", j("exec-group")), syscall.EACCES},
	)

	// Directories: read lists, write (with search) changes entries,
	// search reaches what is inside.
	for _, d := range []struct {
		name string
		mode uint32
	}{{"d-rwx", 0o700}, {"d-rw", 0o600}, {"d-rx", 0o500}, {"d-x", 0o100}, {"d-wx", 0o300}, {"d-none", 0o077}} {
		mkdirAs(t, j(d.name), 0, 0, 0o755)
		mkfile(t, j(d.name+"/f"), "x", 1000, 1000, 0o644)
		setOwnerMode(t, j(d.name), 1000, 1000, d.mode)
	}
	expectAs(t, alice,
		expectOp{op("readdir", j("d-rwx")), 0},
		expectOp{op("lstat", j("d-rwx/f")), 0},
		expectOp{op("create", j("d-rwx/new"), "644"), 0},
		expectOp{op("unlink", j("d-rwx/new")), 0},

		expectOp{op("readdir", j("d-rw")), 0},
		expectOp{op("lstat", j("d-rw/f")), syscall.EACCES},
		expectOp{op("read", j("d-rw/f")), syscall.EACCES},
		expectOp{op("create", j("d-rw/new"), "644"), syscall.EACCES},
		expectOp{op("unlink", j("d-rw/f")), syscall.EACCES},

		expectOp{op("readdir", j("d-rx")), 0},
		expectOp{op("read", j("d-rx/f")), 0},
		expectOp{op("create", j("d-rx/new"), "644"), syscall.EACCES},
		expectOp{op("unlink", j("d-rx/f")), syscall.EACCES},
		expectOp{op("mkdir", j("d-rx/sub"), "755"), syscall.EACCES},

		expectOp{op("readdir", j("d-x")), syscall.EACCES},
		expectOp{op("read", j("d-x/f")), 0},
		expectOp{op("lstat", j("d-x/missing")), syscall.ENOENT},

		expectOp{op("readdir", j("d-wx")), syscall.EACCES},
		expectOp{op("create", j("d-wx/new"), "644"), 0},
		expectOp{op("rename", j("d-wx/new"), j("d-wx/new2")), 0},
		expectOp{op("unlink", j("d-wx/new2")), 0},

		expectOp{op("readdir", j("d-none")), syscall.EACCES},
		expectOp{op("lstat", j("d-none/f")), syscall.EACCES},
	)
	// Another user is "other" for all of them.
	expectAs(t, bob,
		expectOp{op("readdir", j("d-none")), 0},
		expectOp{op("read", j("d-none/f")), 0},
		expectOp{op("create", j("d-none/bob"), "644"), 0},
		expectOp{op("readdir", j("d-rwx")), syscall.EACCES},
		expectOp{op("lstat", j("d-rwx/f")), syscall.EACCES},
	)

	// Root reads and writes without permission bits, lists and changes
	// directories without them, and executes a file that has any
	// execute bit (the interpreter then reads the script as root).
	mkfile(t, j("nobits"), "secret", 1000, 1000, 0)
	if got := readFile(t, j("nobits")); got != "secret" {
		t.Errorf("root read of a mode 0 file: %q", got)
	}
	if err := os.WriteFile(j("nobits"), []byte("root"), 0); err != nil {
		t.Errorf("root write of a mode 0 file: %v", err)
	}
	mkdirAs(t, j("d-zero"), 1000, 1000, 0o755)
	writeFile(t, j("d-zero/f"), "z")
	setOwnerMode(t, j("d-zero"), 1000, 1000, 0)
	if _, err := os.ReadDir(j("d-zero")); err != nil {
		t.Errorf("root listing a mode 0 directory: %v", err)
	}
	if err := os.Remove(j("d-zero/f")); err != nil {
		t.Errorf("root unlinking in a mode 0 directory: %v", err)
	}
	// Executed from a child: a fork of this process, which serves the
	// mount, must not itself wait on the mount before it has exec'd.
	root := user{uid: uint32(os.Geteuid()), gid: uint32(os.Getegid())}
	got := runAs(t, root, op("exec", j("exec-no-read")), op("exec", j("noexec")))
	if got[0] != 0 {
		t.Errorf("root executing a mode 0100 script: %v", got[0])
	}
	if got[1] != syscall.EACCES {
		t.Errorf("root executing a mode 0644 file: %v, want EACCES", got[1])
	}
}

func TestStickyDir(t *testing.T) {
	checkStickyDir(t, sharedMount(t))
}

// checkStickyDir: in a 1777 directory only the owner of a file, the owner
// of the directory and root remove or rename it.
func checkStickyDir(t *testing.T, dir string) {
	j := func(name string) string { return filepath.Join(dir, "tmp", name) }
	mkdirAs(t, filepath.Join(dir, "tmp"), 1002, 1002, 0o1777)
	expectAs(t, alice,
		expectOp{op("create", j("a1"), "644"), 0},
		expectOp{op("create", j("a2"), "666"), 0},
		expectOp{op("create", j("a3"), "666"), 0},
		expectOp{op("create", j("a4"), "644"), 0},
		expectOp{op("mkdir", j("adir"), "777"), 0},
	)
	expectAs(t, bob,
		expectOp{op("create", j("b1"), "666"), 0},
		expectOp{op("unlink", j("a1")), syscall.EPERM},
		expectOp{op("rename", j("a2"), j("bob-took-it")), syscall.EPERM},
		expectOp{op("rename", j("b1"), j("a2")), syscall.EPERM}, // nor replace it
		expectOp{op("rmdir", j("adir")), syscall.EPERM},
		expectOp{op("write", j("a2")), 0}, // the file's own mode still applies
		expectOp{op("rename", j("b1"), j("b2")), 0},
		expectOp{op("unlink", j("b2")), 0},
	)
	for _, n := range []string{"a1", "a2", "adir"} {
		if _, err := os.Lstat(j(n)); err != nil {
			t.Errorf("%s after bob's attempts: %v", n, err)
		}
	}
	expectAs(t, alice,
		expectOp{op("rename", j("a2"), j("a2-renamed")), 0},
		expectOp{op("unlink", j("a1")), 0},
	)
	// The owner of the directory may remove anything in it.
	expectAs(t, carol,
		expectOp{op("unlink", j("a2-renamed")), 0},
		expectOp{op("rmdir", j("adir")), 0},
		expectOp{op("rename", j("a3"), j("carols")), 0},
	)
	if err := os.Remove(j("a4")); err != nil {
		t.Errorf("root unlinking in a sticky directory: %v", err)
	}
	// Without the sticky bit bob may remove alice's file.
	if err := syscall.Chmod(filepath.Join(dir, "tmp"), 0o777); err != nil {
		t.Fatal(err)
	}
	expectAs(t, bob, expectOp{op("unlink", j("carols")), 0})
}

func TestSetgidDirOtherUser(t *testing.T) {
	checkSetgidDirOtherUser(t, sharedMount(t))
}

// checkSetgidDirOtherUser: what a user outside the group of a set-group-ID
// directory makes in it takes the directory's group; a new directory is
// set-group-ID too; a set-group-ID bit the user asks for on a file is
// dropped. (TestSetID covers root.)
func checkSetgidDirOtherUser(t *testing.T, dir string) {
	d := filepath.Join(dir, "sgid")
	j := func(name string) string { return filepath.Join(d, name) }
	mkdirAs(t, d, 0, 1234, 0o2777)
	expectAs(t, alice,
		expectOp{op("create", j("f"), "644"), 0},
		expectOp{op("create", j("f-sgid"), "2755"), 0},
		expectOp{op("mkdir", j("sub"), "755"), 0},
		expectOp{op("mkfifo", j("fifo"), "600"), 0},
		expectOp{op("symlink", "f", j("l")), 0},
		expectOp{op("create", j("sub/g"), "640"), 0},
	)
	for _, c := range []struct {
		name string
		mode uint32
	}{
		{"f", syscall.S_IFREG | 0o644},
		{"f-sgid", syscall.S_IFREG | 0o755},
		{"sub", syscall.S_IFDIR | syscall.S_ISGID | 0o755},
		{"fifo", syscall.S_IFIFO | 0o600},
		{"l", syscall.S_IFLNK | 0o777},
		{"sub/g", syscall.S_IFREG | 0o640},
	} {
		st := statxSync(t, j(c.name))
		if st.Uid != 1000 || st.Gid != 1234 || uint32(st.Mode) != c.mode {
			t.Errorf("%s: owner %d:%d mode %#o, want 1000:1234 mode %#o", c.name, st.Uid, st.Gid, st.Mode, c.mode)
		}
	}
	// A member of the group keeps the bit.
	expectAs(t, user{uid: 1001, gid: 1001, groups: []uint32{1234}},
		expectOp{op("create", j("member-sgid"), "2755"), 0})
	if st := statxSync(t, j("member-sgid")); st.Mode&07777 != 0o2755 || st.Gid != 1234 {
		t.Errorf("member's set-group-ID file: gid %d mode %#o, want 1234 and 02755", st.Gid, st.Mode)
	}
}

func TestChmodChownRules(t *testing.T) {
	checkChmodChownRules(t, sharedMount(t))
}

// checkChmodChownRules adds to TestSetID and TestChownChecks, with the
// kernel checking permissions as mounted: who may chmod and chgrp, and
// which changes clear the set-ID bits.
func checkChmodChownRules(t *testing.T, dir string) {
	j := func(name string) string { return filepath.Join(dir, name) }
	aliceG := user{uid: 1000, gid: 1000, groups: []uint32{555}}
	mode := func(p string) uint32 { t.Helper(); return uint32(statxSync(t, p).Mode) & 07777 }

	mkfile(t, j("f"), "x", 1000, 1000, 0o644)
	expectAs(t, bob,
		expectOp{op("chmod", j("f"), "666"), syscall.EPERM},
		expectOp{op("chown", j("f"), "-1", "1001"), syscall.EPERM},
		expectOp{op("chown", j("f"), "1001", "-1"), syscall.EPERM},
	)
	expectAs(t, aliceG,
		expectOp{op("chmod", j("f"), "4755"), 0},
		expectOp{op("chown", j("f"), "-1", "556"), syscall.EPERM},
		expectOp{op("chown", j("f"), "1001", "-1"), syscall.EPERM},
		// chgrp by the owner clears S_ISUID.
		expectOp{op("chown", j("f"), "-1", "555"), 0},
	)
	if st := statxSync(t, j("f")); st.Uid != 1000 || st.Gid != 555 || st.Mode&07777 != 0o755 {
		t.Errorf("after chgrp by the owner: %d:%d mode %#o, want 1000:555 mode 0755", st.Uid, st.Gid, st.Mode&07777)
	}

	// chmod g+s by an owner outside the file's group drops S_ISGID.
	mkfile(t, j("g"), "x", 1000, 1234, 0o644)
	expectAs(t, alice, expectOp{op("chmod", j("g"), "2755"), 0})
	if m := mode(j("g")); m != 0o755 {
		t.Errorf("chmod 2755 by an owner outside the group: %#o, want 0755", m)
	}
	expectAs(t, aliceG, expectOp{op("chown", j("g"), "-1", "555"), 0}, expectOp{op("chmod", j("g"), "2755"), 0})
	if m := mode(j("g")); m != 0o2755 {
		t.Errorf("chmod 2755 by an owner in the group: %#o, want 02755", m)
	}

	// A write, truncate or chgrp by a user who is not root clears S_ISUID,
	// and S_ISGID when group execute is set. Without group execute
	// S_ISGID goes too when the user is not in the file's group, and
	// stays when it is (the kernel's setattr_should_drop_sgid).
	member := user{uid: 1001, gid: 1001, groups: []uint32{1000}}
	for _, c := range []struct {
		name   string
		gid    int
		mode   uint32
		as     user
		action []string // an operation without its path
		want   uint32
	}{
		{"w", 1000, 0o6777, bob, op("write"), 0o777},
		{"w-nogx", 1000, 0o6767, bob, op("write"), 0o767},
		{"w-nogx-member", 1000, 0o6767, member, op("write"), 0o2767},
		{"w-member", 1000, 0o6777, member, op("write"), 0o777},
		{"w-sgid", 1000, 0o2777, bob, op("write"), 0o777},
		{"w-sgid-nogx", 1000, 0o2767, bob, op("write"), 0o767},
		{"w-sgid-nogx-member", 1000, 0o2767, member, op("write"), 0o2767},
		{"t", 1000, 0o6777, bob, op("truncate", "1"), 0o777},
		{"t-sgid-nogx", 1000, 0o2767, bob, op("truncate", "1"), 0o767},
		{"t-sgid-nogx-member", 1000, 0o2767, member, op("truncate", "1"), 0o2767},
		{"c", 1000, 0o6755, aliceG, op("chown", "-1", "555"), 0o755},
		{"c-nogx", 1000, 0o6745, aliceG, op("chown", "-1", "555"), 0o2745},
		{"c-nogx-outside", 1234, 0o2745, aliceG, op("chown", "-1", "555"), 0o745},
		// chown(path, -1, -1) changes no ID and is a chown all the
		// same: by the owner, by root, and by another user when there
		// is nothing to clear.
		{"n", 1000, 0o6755, alice, op("chown", "-1", "-1"), 0o755},
		{"n-nogx", 1000, 0o6745, alice, op("chown", "-1", "-1"), 0o2745},
		{"n-nogx-outside", 1234, 0o2745, alice, op("chown", "-1", "-1"), 0o745},
		{"n-root", 1000, 0o6755, self(), op("chown", "-1", "-1"), 0o755},
		{"n-root-nogx", 1234, 0o6745, self(), op("chown", "-1", "-1"), 0o2745},
		{"n-other-nothing", 1000, 0o755, bob, op("chown", "-1", "-1"), 0o755},
		{"n-other-nogx-member", 1000, 0o2745, member, op("chown", "-1", "-1"), 0o2745},
	} {
		mkfile(t, j(c.name), "xyz", 1000, c.gid, c.mode)
		action := append([]string{c.action[0], j(c.name)}, c.action[1:]...)
		expectAs(t, c.as, expectOp{action, 0})
		if m := mode(j(c.name)); m != c.want {
			t.Errorf("%s, mode %#o, group %d: %q by %d: mode %#o, want %#o", c.name, c.mode, c.gid, c.action[0], c.as.uid, m, c.want)
		}
	}
	// Not by root.
	mkfile(t, j("t"), "xyz", 1000, 1000, 0o6777)
	if err := syscall.Chmod(j("t"), 0o6777); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(j("t"), 0); err != nil {
		t.Fatal(err)
	}
	if m := mode(j("t")); m != 0o6777 {
		t.Errorf("after truncate by root: %#o, want 06777", m)
	}

	// chown by root: S_ISGID without group execute stays; a directory
	// keeps both bits.
	mkfile(t, j("c"), "x", 1000, 1000, 0o6745)
	if err := os.Chown(j("c"), 1001, 1001); err != nil {
		t.Fatal(err)
	}
	if m := mode(j("c")); m != 0o2745 {
		t.Errorf("chown of 06745 by root: %#o, want 02745", m)
	}
	mkdirAs(t, j("cd"), 1000, 1000, 0o6755)
	if err := os.Chown(j("cd"), 1001, 1001); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(j("cd"), -1, -1); err != nil {
		t.Fatal(err)
	}
	if m := mode(j("cd")); m != 0o6755 {
		t.Errorf("chown of a 06755 directory by root: %#o, want 06755", m)
	}

	// Clearing set-ID bits by chown(path, -1, -1) is a change of mode:
	// only the owner's, as for chmod. (A user who may write the file
	// clears them on txfs: the request is the one a write sends.)
	mkfile(t, j("n-other"), "x", 1000, 1000, 0o6755)
	expectAs(t, bob, expectOp{op("chown", j("n-other"), "-1", "-1"), syscall.EPERM})
	if m := mode(j("n-other")); m != 0o6755 {
		t.Errorf("refused chown -1 -1 by another user: %#o, want 06755", m)
	}
}

func TestCapabilityXattr(t *testing.T) {
	checkCapabilityXattr(t, sharedMount(t))
}

// checkCapabilityXattr: file capabilities (setcap) are kept and read back,
// and every write, truncate and chown removes them, also by root and also
// when the kernel has seen the file unchanged before.
func checkCapabilityXattr(t *testing.T, dir string) {
	j := func(name string) string { return filepath.Join(dir, name) }
	// struct vfs_cap_data, revision 2: CAP_NET_RAW (13) permitted and
	// effective.
	capData := make([]byte, 20)
	binary.LittleEndian.PutUint32(capData[0:], 0x02000000|1)
	binary.LittleEndian.PutUint32(capData[4:], 1<<13)
	const name = "security.capability"
	setcap := func(p string) {
		t.Helper()
		if err := unix.Setxattr(p, name, capData, 0); err != nil {
			t.Fatalf("setxattr %s: %v", p, err)
		}
		buf := make([]byte, 64)
		n, err := unix.Getxattr(p, name, buf)
		if err != nil || !bytes.Equal(buf[:n], capData) {
			t.Fatalf("getxattr %s after setxattr: %x, %v", p, buf[:max(n, 0)], err)
		}
	}
	hasCap := func(p string) bool {
		t.Helper()
		_, err := unix.Getxattr(p, name, make([]byte, 64))
		if err != nil && err != unix.ENODATA {
			t.Fatalf("getxattr %s: %v", p, err)
		}
		return err == nil
	}
	for _, c := range []struct {
		name   string
		as     user
		action []string // an operation without its path
	}{
		{"write-root", self(), op("write")},
		{"write-other", bob, op("write")},
		{"truncate-root", self(), op("truncate", "1")},
		{"chown-root", self(), op("chown", "1001", "-1")},
		{"chgrp-owner", alice, op("chown", "-1", "1000")},
		{"chown-nothing-root", self(), op("chown", "-1", "-1")},
		// Also by a user who may neither write nor chmod the file.
		{"chown-nothing-other", bob, op("chown", "-1", "-1")},
	} {
		p := j(c.name)
		mkfile(t, p, "xyz", 1000, 1000, 0o757)
		// The kernel has written and checked the file once before.
		expectAs(t, self(), expectOp{op("write", p), 0})
		setcap(p)
		expectAs(t, c.as, expectOp{append([]string{c.action[0], p}, c.action[1:]...), 0})
		if hasCap(p) {
			t.Errorf("%s: %s kept", c.name, name)
		}
	}
	// Reading and chmod keep it.
	mkfile(t, j("kept"), "xyz", 1000, 1000, 0o755)
	setcap(j("kept"))
	expectAs(t, bob, expectOp{op("read", j("kept")), 0})
	if err := syscall.Chmod(j("kept"), 0o750); err != nil {
		t.Fatal(err)
	}
	if !hasCap(j("kept")) {
		t.Errorf("read or chmod removed %s", name)
	}
}

func TestExactModes(t *testing.T) {
	checkExactModes(t, testMount(t))
}

// checkExactModes: with umask 0 every mode comes back as asked; with a
// umask the kernel applies it and the daemon nothing more.
func checkExactModes(t *testing.T, dir string) {
	j := func(name string) string { return filepath.Join(dir, name) }
	modes := []uint32{0o777, 0o640, 0o1777, 0, 0o4755, 0o2755, 0o6711, 0o7777}
	withUmask(0, func() {
		for _, m := range modes {
			f, d, p := j(fmt.Sprintf("f%o", m)), j(fmt.Sprintf("d%o", m)), j(fmt.Sprintf("p%o", m))
			fd, err := syscall.Open(f, syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY, m)
			if err != nil {
				t.Fatalf("create %#o: %v", m, err)
			}
			syscall.Close(fd)
			if err := syscall.Mkdir(d, m); err != nil {
				t.Fatalf("mkdir %#o: %v", m, err)
			}
			if err := syscall.Mknod(p, syscall.S_IFIFO|m, 0); err != nil {
				t.Fatalf("mknod %#o: %v", m, err)
			}
			// mkdir(2) keeps only the permission and sticky bits.
			dm := m & (0o777 | syscall.S_ISVTX)
			for _, c := range []struct {
				p    string
				want uint32
			}{{f, syscall.S_IFREG | m}, {d, syscall.S_IFDIR | dm}, {p, syscall.S_IFIFO | m}} {
				if st := statxSync(t, c.p); uint32(st.Mode) != c.want {
					t.Errorf("%s: mode %#o, want %#o", filepath.Base(c.p), st.Mode, c.want)
				}
				if st := stat(t, c.p); st.Mode != c.want {
					t.Errorf("%s: lstat mode %#o, want %#o", filepath.Base(c.p), st.Mode, c.want)
				}
			}
			// And chmod sets exactly what it is given.
			if err := syscall.Chmod(f, m^0o7777); err != nil {
				t.Fatal(err)
			}
			if st := statxSync(t, f); uint32(st.Mode) != syscall.S_IFREG|(m^0o7777) {
				t.Errorf("chmod %#o: mode %#o", m^0o7777, st.Mode)
			}
		}
	})
	withUmask(0o027, func() {
		fd, err := syscall.Open(j("masked"), syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY, 0o777)
		if err != nil {
			t.Fatal(err)
		}
		syscall.Close(fd)
		if err := syscall.Mkdir(j("masked-dir"), 0o1777); err != nil {
			t.Fatal(err)
		}
	})
	if st := statxSync(t, j("masked")); st.Mode&07777 != 0o750 {
		t.Errorf("create 0777 with umask 027: %#o, want 0750", st.Mode&07777)
	}
	if st := statxSync(t, j("masked-dir")); st.Mode&07777 != 0o1750 {
		t.Errorf("mkdir 01777 with umask 027: %#o, want 01750", st.Mode&07777)
	}
}

// statx returns p's attributes (not following a symlink). With sync it
// makes the kernel ask the daemon; otherwise it answers as stat does,
// from its cache while that is valid.
func statx(t *testing.T, p string, sync bool) unix.Statx_t {
	t.Helper()
	flags := unix.AT_SYMLINK_NOFOLLOW
	if sync {
		flags |= unix.AT_STATX_FORCE_SYNC
	}
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, flags, unix.STATX_BASIC_STATS, &st); err != nil {
		t.Fatalf("statx %s: %v", p, err)
	}
	return st
}

func statxSync(t *testing.T, p string) unix.Statx_t {
	t.Helper()
	return statx(t, p, true)
}

func nsec(ts unix.StatxTimestamp) int64 { return ts.Sec*1e9 + int64(ts.Nsec) }

// timeCheck says whether an operation must change the mtime and ctime of
// path (true) or leave them alone (false). The inode is found at after
// once the operation is done, when that is set.
type timeCheck struct {
	path         string
	mtime, ctime bool
	after        string
}

// stamp waits long enough for any clock (ext4's coarse one included) to
// move on.
func stamp() { time.Sleep(10 * time.Millisecond) }

// checkTimes runs fn and checks the times it must change and keep, both
// as stat shows them and as the daemon has them.
func checkTimes(t *testing.T, what string, fn func() error, checks ...timeCheck) {
	t.Helper()
	before := make([]unix.Statx_t, len(checks))
	for i, c := range checks {
		before[i] = statxSync(t, c.path)
	}
	stamp()
	if err := fn(); err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	now := time.Now().UnixNano()
	for i, c := range checks {
		p := c.path
		if c.after != "" {
			p = c.after
		}
		for _, sync := range []bool{false, true} {
			st := statx(t, p, sync)
			if st.Ino != before[i].Ino {
				t.Fatalf("%s: %s is another inode after the operation", what, p)
			}
			for _, x := range []struct {
				name    string
				change  bool
				was, is int64
			}{
				{"mtime", c.mtime, nsec(before[i].Mtime), nsec(st.Mtime)},
				{"ctime", c.ctime, nsec(before[i].Ctime), nsec(st.Ctime)},
			} {
				switch {
				case x.change && (x.is <= x.was || x.is > now):
					t.Errorf("%s: %s of %s went from %d to %d (now %d), want it changed to now (sync %v)",
						what, x.name, filepath.Base(p), x.was, x.is, now, sync)
				case !x.change && x.is != x.was:
					t.Errorf("%s: %s of %s changed from %d to %d, want it kept (sync %v)",
						what, x.name, filepath.Base(p), x.was, x.is, sync)
				}
			}
		}
	}
}

func TestTimestamps(t *testing.T) {
	checkTimestamps(t, testMount(t))
}

// checkTimestamps: which operations change the mtime and ctime of a file
// and of the directories involved.
func checkTimestamps(t *testing.T, dir string) {
	j := func(name string) string { return filepath.Join(dir, name) }
	d, e := j("d"), j("e")
	for _, p := range []string{d, e} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f := filepath.Join(d, "f")
	writeFile(t, f, "data")
	changed := func(p string) timeCheck { return timeCheck{path: p, mtime: true, ctime: true} }
	ctimeOnly := func(p string) timeCheck { return timeCheck{path: p, ctime: true} }
	kept := func(p string) timeCheck { return timeCheck{path: p} }
	// A renamed inode's ctime changes, its mtime does not.
	moved := func(from, to string) timeCheck { return timeCheck{path: from, ctime: true, after: to} }

	// withOpen opens f with flags, runs fn on it (if any), and closes it.
	withOpen := func(flags int, fn func(*os.File) error) func() error {
		return func() error {
			fh, err := os.OpenFile(f, flags, 0)
			if err != nil {
				return err
			}
			defer fh.Close()
			if fn == nil {
				return nil
			}
			return fn(fh)
		}
	}
	ftruncate := func(size int64) func(*os.File) error {
		return func(fh *os.File) error { return fh.Truncate(size) }
	}

	// The file.
	checkTimes(t, "write", withOpen(os.O_WRONLY, func(fh *os.File) error {
		_, err := fh.WriteAt([]byte("more"), 2)
		return err
	}), changed(f), kept(d))
	checkTimes(t, "truncate", func() error { return os.Truncate(f, 1) }, changed(f), kept(d))
	checkTimes(t, "truncate to extend", func() error { return os.Truncate(f, 100) }, changed(f))
	checkTimes(t, "ftruncate", withOpen(os.O_WRONLY, ftruncate(3)), changed(f))
	// To the size the file has: the times change all the same.
	checkTimes(t, "truncate to the same size", func() error { return os.Truncate(f, 3) }, changed(f))
	checkTimes(t, "ftruncate to the same size", withOpen(os.O_WRONLY, ftruncate(3)), changed(f))
	checkTimes(t, "open O_TRUNC", withOpen(os.O_WRONLY|os.O_TRUNC, nil), changed(f))
	checkTimes(t, "open O_TRUNC of an empty file", withOpen(os.O_WRONLY|os.O_TRUNC, nil), changed(f))
	writeFile(t, f, "data")
	// fallocate changes the times in every mode, also when it changes
	// nothing (file_modified in the kernel).
	fallocate := func(mode uint32, off, n int64) func(*os.File) error {
		return func(fh *os.File) error { return unix.Fallocate(int(fh.Fd()), mode, off, n) }
	}
	checkTimes(t, "fallocate to extend", withOpen(os.O_WRONLY, fallocate(0, 0, 8192)), changed(f))
	checkTimes(t, "fallocate inside the file", withOpen(os.O_WRONLY, fallocate(0, 0, 100)), changed(f))
	checkTimes(t, "fallocate KEEP_SIZE", withOpen(os.O_WRONLY, fallocate(unix.FALLOC_FL_KEEP_SIZE, 0, 1<<20)), changed(f))
	checkTimes(t, "fallocate PUNCH_HOLE", withOpen(os.O_WRONLY, fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 4096)), changed(f))
	checkTimes(t, "fallocate PUNCH_HOLE past the end", withOpen(os.O_WRONLY, fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 1<<20, 4096)), changed(f))
	writeFile(t, f, "data")
	checkTimes(t, "read", func() error { _, err := os.ReadFile(f); return err }, kept(f), kept(d))
	checkTimes(t, "chmod", func() error { return os.Chmod(f, 0o600) }, ctimeOnly(f), kept(d))
	if os.Geteuid() == 0 {
		checkTimes(t, "chown", func() error { return os.Chown(f, 1000, 1000) }, ctimeOnly(f), kept(d))
	}
	st := statxSync(t, f)
	checkTimes(t, "chown to the same owner", func() error { return os.Chown(f, int(st.Uid), int(st.Gid)) }, ctimeOnly(f), kept(d))
	checkTimes(t, "chown -1 -1", func() error { return os.Chown(f, -1, -1) }, ctimeOnly(f), kept(d))
	checkTimes(t, "chown -1 -1 of a directory", func() error { return os.Chown(d, -1, -1) }, ctimeOnly(d), kept(f))
	checkTimes(t, "setxattr", func() error { return syscall.Setxattr(f, "user.x", []byte("1"), 0) }, ctimeOnly(f))

	// Entries of a directory.
	g := filepath.Join(d, "g")
	checkTimes(t, "link", func() error { return os.Link(f, filepath.Join(e, "f2")) },
		ctimeOnly(f), changed(e), kept(d))
	checkTimes(t, "unlink one of two links", func() error { return os.Remove(filepath.Join(e, "f2")) },
		ctimeOnly(f), changed(e), kept(d))
	checkTimes(t, "create", func() error { return os.WriteFile(g, nil, 0o644) }, changed(d), kept(e))
	g2 := filepath.Join(d, "g2")
	checkTimes(t, "rename within a directory", func() error { return syscall.Rename(g, g2) },
		changed(d), kept(e), kept(f), moved(g, g2))
	checkTimes(t, "rename out of a directory", func() error { return syscall.Rename(f, filepath.Join(e, "f")) },
		changed(d), changed(e), moved(f, filepath.Join(e, "f")))
	checkTimes(t, "rename into a directory", func() error { return syscall.Rename(filepath.Join(e, "f"), f) },
		changed(e), changed(d), moved(filepath.Join(e, "f"), f), kept(g2))
	// Rename over a file that has another name: the replaced inode loses
	// a link, so its ctime changes.
	writeFile(t, filepath.Join(e, "victim"), "v")
	if err := os.Link(filepath.Join(e, "victim"), filepath.Join(e, "victim2")); err != nil {
		t.Fatal(err)
	}
	checkTimes(t, "rename over a file", func() error { return syscall.Rename(g2, filepath.Join(e, "victim")) },
		ctimeOnly(filepath.Join(e, "victim2")), changed(d), changed(e), kept(f), moved(g2, filepath.Join(e, "victim")))
	checkTimes(t, "mkdir", func() error { return os.Mkdir(filepath.Join(d, "sub"), 0o755) }, changed(d), kept(e))
	checkTimes(t, "rename a directory across", func() error { return syscall.Rename(filepath.Join(d, "sub"), filepath.Join(e, "sub")) },
		changed(d), changed(e), moved(filepath.Join(d, "sub"), filepath.Join(e, "sub")))
	checkTimes(t, "rmdir", func() error { return os.Remove(filepath.Join(e, "sub")) }, changed(e), kept(d))
	checkTimes(t, "symlink", func() error { return os.Symlink("f", filepath.Join(d, "l")) }, changed(d))
	checkTimes(t, "mknod", func() error { return syscall.Mkfifo(filepath.Join(d, "p"), 0o644) }, changed(d))
	checkTimes(t, "unlink", func() error { return os.Remove(filepath.Join(d, "l")) }, changed(d), kept(f))
	p, v2 := filepath.Join(d, "p"), filepath.Join(e, "victim2")
	checkTimes(t, "rename exchange", func() error { return renameat2(p, v2, renameExchange) },
		changed(d), changed(e), moved(p, v2), moved(v2, p))
	checkTimes(t, "chmod of a directory", func() error { return os.Chmod(d, 0o700) }, ctimeOnly(d), kept(f))
}

func TestUtimensat(t *testing.T) {
	checkUtimensat(t, sharedMount(t))
}

// checkUtimensat: explicit times, UTIME_NOW and UTIME_OMIT, and who may
// set which.
func checkUtimensat(t *testing.T, dir string) {
	f := filepath.Join(dir, "f")
	mkfile(t, f, "x", 1000, 1000, 0o666)
	set := func(at, mt unix.Timespec) error {
		return unix.UtimesNanoAt(unix.AT_FDCWD, f, []unix.Timespec{at, mt}, 0)
	}
	now := unix.Timespec{Nsec: unix.UTIME_NOW}
	omit := unix.Timespec{Nsec: unix.UTIME_OMIT}
	atime := unix.Timespec{Sec: 1_000_000_000, Nsec: 123456789}
	mtime := unix.Timespec{Sec: 1_100_000_000, Nsec: 987654321}

	want := func(what string, at, mt int64) {
		t.Helper()
		for _, sync := range []bool{false, true} {
			st := statx(t, f, sync)
			if at != 0 && nsec(st.Atime) != at {
				t.Errorf("%s: atime %d, want %d (sync %v)", what, nsec(st.Atime), at, sync)
			}
			if mt != 0 && nsec(st.Mtime) != mt {
				t.Errorf("%s: mtime %d, want %d (sync %v)", what, nsec(st.Mtime), mt, sync)
			}
		}
	}
	ts := func(x unix.Timespec) int64 { return x.Sec*1e9 + x.Nsec }
	// Explicit times are stored to the nanosecond; ctime becomes now.
	ctime := nsec(statxSync(t, f).Ctime)
	stamp()
	if err := set(atime, mtime); err != nil {
		t.Fatal(err)
	}
	want("explicit times", ts(atime), ts(mtime))
	if c := nsec(statxSync(t, f).Ctime); c <= ctime || c > time.Now().UnixNano() {
		t.Errorf("explicit times: ctime went from %d to %d, want now", ctime, c)
	}

	// UTIME_OMIT keeps one, UTIME_NOW sets one to the current time.
	before := time.Now().UnixNano()
	stamp()
	if err := set(omit, now); err != nil {
		t.Fatal(err)
	}
	st := statxSync(t, f)
	if nsec(st.Atime) != ts(atime) || nsec(st.Mtime) <= before || nsec(st.Ctime) <= before {
		t.Errorf("UTIME_OMIT, UTIME_NOW: atime %d mtime %d ctime %d, want atime %d and the others after %d",
			nsec(st.Atime), nsec(st.Mtime), nsec(st.Ctime), ts(atime), before)
	}
	if err := set(now, omit); err != nil {
		t.Fatal(err)
	}
	st2 := statxSync(t, f)
	if nsec(st2.Atime) <= before || nsec(st2.Mtime) != nsec(st.Mtime) {
		t.Errorf("UTIME_NOW, UTIME_OMIT: atime %d mtime %d, want atime after %d and mtime %d",
			nsec(st2.Atime), nsec(st2.Mtime), before, nsec(st.Mtime))
	}
	if err := set(omit, mtime); err != nil {
		t.Fatal(err)
	}
	want("UTIME_OMIT, explicit mtime", nsec(st2.Atime), ts(mtime))
	// Both omitted: nothing changes, not even ctime.
	checkTimes(t, "UTIME_OMIT twice", func() error { return set(omit, omit) }, timeCheck{path: f})
	checkTimes(t, "UTIME_NOW twice", func() error { return set(now, now) }, timeCheck{path: f, mtime: true, ctime: true})
	// Times before 1970 and with all nanosecond digits.
	old := unix.Timespec{Sec: -1_000_000, Nsec: 999_999_999}
	if err := set(old, old); err != nil {
		t.Fatal(err)
	}
	want("times before 1970", ts(old), ts(old))

	// Permissions: a user with write permission who is not the owner may
	// set both times to now, and nothing else; a user without write
	// permission may do neither; the owner may do everything.
	expectAs(t, bob,
		expectOp{op("touch", f), 0},
		expectOp{op("utimens", f, "now", "now"), 0},
		expectOp{op("utimens", f, "1000", "1000"), syscall.EPERM},
		expectOp{op("utimens", f, "now", "omit"), syscall.EPERM},
		expectOp{op("utimens", f, "omit", "1000"), syscall.EPERM},
	)
	if err := syscall.Chmod(f, 0o644); err != nil {
		t.Fatal(err)
	}
	expectAs(t, bob,
		expectOp{op("touch", f), syscall.EACCES},
		expectOp{op("utimens", f, "now", "now"), syscall.EACCES},
		expectOp{op("utimens", f, "1000", "1000"), syscall.EPERM},
	)
	if err := syscall.Chmod(f, 0o444); err != nil {
		t.Fatal(err)
	}
	expectAs(t, alice,
		expectOp{op("touch", f), 0},
		expectOp{op("utimens", f, "2000", "3000"), 0},
	)
	want("explicit times by the owner", 2000e9+1234, 3000e9+1234)
}

func TestDirLinkCounts(t *testing.T) {
	checkDirLinkCounts(t, testMount(t))
}

// checkDirLinkCounts adds to TestHardLinks: a directory has 2 + its
// subdirectories links, through every operation that adds or takes one.
func checkDirLinkCounts(t *testing.T, dir string) {
	j := func(name string) string { return filepath.Join(dir, name) }
	mkdir := func(p string) func() error { return func() error { return os.Mkdir(j(p), 0o755) } }
	rename := func(from, to string) func() error { return func() error { return syscall.Rename(j(from), j(to)) } }
	exchange := func(a, b string) func() error { return func() error { return renameat2(j(a), j(b), renameExchange) } }
	root := statxSync(t, dir).Nlink
	for _, step := range []struct {
		what string
		op   func() error
		want map[string]uint32 // path: nlink after the step
	}{
		{"mkdir a", mkdir("a"), map[string]uint32{"": root + 1, "a": 2}},
		{"mkdir b", mkdir("b"), map[string]uint32{"": root + 2, "b": 2}},
		{"mkdir a/s0", mkdir("a/s0"), map[string]uint32{"a": 3, "a/s0": 2}},
		{"mkdir a/s1", mkdir("a/s1"), map[string]uint32{"a": 4}},
		{"mkdir a/s2", mkdir("a/s2"), map[string]uint32{"a": 5}},
		{"mkdir a/s3", mkdir("a/s3"), map[string]uint32{"a": 6}},
		{"mkdir a/s4", mkdir("a/s4"), map[string]uint32{"a": 7}},
		{"other types do not count", func() error {
			if err := os.WriteFile(j("a/file"), nil, 0o644); err != nil {
				return err
			}
			if err := syscall.Mkfifo(j("a/fifo"), 0o644); err != nil {
				return err
			}
			return os.Symlink("s0", j("a/link"))
		}, map[string]uint32{"a": 7}},
		{"rmdir", func() error { return os.Remove(j("a/s4")) }, map[string]uint32{"a": 6}},
		// Across parents a directory moves its ".." link.
		{"rename a directory across", rename("a/s3", "b/s3"), map[string]uint32{"a": 5, "b": 3, "b/s3": 2}},
		{"rename a directory within", rename("a/s2", "a/s2b"), map[string]uint32{"a": 5}},
		{"mkdir b/empty", mkdir("b/empty"), map[string]uint32{"b": 4}},
		{"rename over an empty directory across", rename("a/s2b", "b/empty"), map[string]uint32{"a": 4, "b": 4}},
		{"rename over an empty directory within", rename("a/s1", "a/s0"), map[string]uint32{"a": 3}},
		{"rename a file across", rename("a/file", "b/file"), map[string]uint32{"a": 3, "b": 4}},
		{"exchange a directory and a file across", exchange("a/s0", "b/file"), map[string]uint32{"a": 2, "b": 5}},
		{"mkdir a/x", mkdir("a/x"), map[string]uint32{"a": 3}},
		{"exchange two directories across", exchange("a/x", "b/file"), map[string]uint32{"a": 3, "b": 5}},
		{"rmdir b/s3", func() error { return os.Remove(j("b/s3")) }, map[string]uint32{"b": 4, "": root + 2}},
	} {
		if err := step.op(); err != nil {
			t.Fatalf("%s: %v", step.what, err)
		}
		for p, want := range step.want {
			for _, sync := range []bool{false, true} {
				if st := statx(t, j(p), sync); st.Nlink != want {
					t.Errorf("%s: nlink of /%s %d, want %d (sync %v)", step.what, p, st.Nlink, want, sync)
				}
			}
		}
	}
}

func TestRemovedDirInUse(t *testing.T) {
	checkRemovedDirInUse(t, testMount(t))
}

// checkRemovedDirInUse: a directory removed while open, or while it is
// the current directory of a process, is still there for fstat and
// fchmod, with no links, and nothing can be made in it.
func checkRemovedDirInUse(t *testing.T, dir string) {
	d := filepath.Join(dir, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := os.Remove(d); err != nil {
		t.Fatal(err)
	}
	for _, sync := range []int{0, unix.AT_STATX_FORCE_SYNC} {
		var st unix.Statx_t
		if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|sync, unix.STATX_BASIC_STATS, &st); err != nil {
			t.Errorf("fstat of a removed open directory (flags %#x): %v", sync, err)
		} else if st.Nlink != 0 || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			t.Errorf("fstat of a removed open directory: nlink %d mode %#o, want 0 links", st.Nlink, st.Mode)
		}
	}
	if err := unix.Fchmod(fd, 0o700); err != nil {
		t.Errorf("fchmod of a removed open directory: %v", err)
	}
	if _, err := unix.Getdents(fd, make([]byte, 4096)); err != unix.ENOENT {
		t.Errorf("getdents of a removed directory: %v, want ENOENT", err)
	}
	if _, err := unix.Openat(fd, "f", unix.O_CREAT|unix.O_WRONLY, 0o644); err != unix.ENOENT {
		t.Errorf("create in a removed directory: %v, want ENOENT", err)
	}
	if err := unix.Mkdirat(fd, "sub", 0o755); err != unix.ENOENT {
		t.Errorf("mkdir in a removed directory: %v, want ENOENT", err)
	}

}

func TestRemovedCwd(t *testing.T) {
	checkRemovedCwd(t, testMount(t))
}

// self is the user the tests run as.
func self() user { return user{uid: uint32(os.Geteuid()), gid: uint32(os.Getegid())} }

// checkRemovedCwd: a directory removed while it is the current directory
// of a process (which holds no open descriptor on it) is still there for
// that process, asked of the filesystem rather than the kernel's cache.
func checkRemovedCwd(t *testing.T, dir string) {
	d := filepath.Join(dir, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	expectAs(t, self(),
		expectOp{op("chdir", d), 0},
		expectOp{op("rmdir", "../d"), 0},
		expectOp{op("statsync", "."), 0},
		expectOp{op("chmod", ".", "700"), 0},
		expectOp{op("create", "f", "644"), syscall.ENOENT},
	)
}

func TestRenamedOverCwd(t *testing.T) {
	checkRenamedOverCwd(t, testMount(t))
}

// checkRenamedOverCwd: an empty directory that rename replaces while it is
// the current directory of a process stays for that process, as one
// removed by rmdir does.
func checkRenamedOverCwd(t *testing.T, dir string) {
	for _, d := range []string{"cwd", "other"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	expectAs(t, self(),
		expectOp{op("chdir", filepath.Join(dir, "cwd")), 0},
		expectOp{op("rename", "../other", "../cwd"), 0},
		expectOp{op("statsync", "."), 0},
		expectOp{op("chmod", ".", "700"), 0},
		expectOp{op("create", "f", "644"), syscall.ENOENT},
	)
}

// TestRemovedCwdForgotten: the engine keeps a directory that rmdir or
// rename removed while a process is in it for as long as the process
// stays, and frees it once the kernel forgets it.
func TestRemovedCwdForgotten(t *testing.T) {
	mnt, v := testMountVolume(t, MountConfig{})
	orphans := func() uint64 {
		t.Helper()
		rep, err := v.CheckReport()
		if err != nil || rep.Err() != nil {
			t.Fatalf("check: %v %v", err, rep.Err())
		}
		return rep.Orphans
	}
	for _, d := range []string{"d", "e", "f"} {
		if err := os.Mkdir(filepath.Join(mnt, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Shells stay in the removed directories until their input closes.
	// They enter the mount only once started: a child that the test
	// process forks must not wait for the daemon before it execs.
	var inputs []io.Closer
	for _, script := range []string{
		`cd "$1/d" && rmdir ../d && echo ok && read x`,
		`cd "$1/e" && mv -T ../f ../e && echo ok && read x`,
	} {
		sh := exec.Command("/bin/sh", "-c", script, "sh", mnt)
		in, err := sh.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := sh.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := sh.Start(); err != nil {
			t.Fatal(err)
		}
		defer sh.Wait()
		defer in.Close()
		if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ok\n" {
			t.Fatalf("%s: %q", script, line)
		}
		inputs = append(inputs, in)
	}
	if n := orphans(); n != 2 {
		t.Errorf("%d directories kept while processes are in them, want 2", n)
	}
	for _, in := range inputs {
		in.Close()
	}
	for deadline := time.Now().Add(5 * time.Second); orphans() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d removed directories still kept after their processes left", orphans())
		}
	}
}

func TestRenameRules(t *testing.T) {
	checkRenameRules(t, testMount(t))
}

// checkRenameRules: what rename replaces and what it refuses.
func checkRenameRules(t *testing.T, dir string) {
	j := func(name string) string { return filepath.Join(dir, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	wantErr := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}
	must(os.Mkdir(j("d"), 0o755))
	must(os.Mkdir(j("empty"), 0o755))
	must(os.Mkdir(j("full"), 0o755))
	writeFile(t, j("full/x"), "x")
	must(os.MkdirAll(j("d/sub/deeper"), 0o755))
	writeFile(t, j("f"), "F")
	writeFile(t, j("g"), "G")

	wantErr("directory over a non-empty directory", syscall.Rename(j("d"), j("full")), syscall.ENOTEMPTY)
	wantErr("directory over a file", syscall.Rename(j("d"), j("f")), syscall.ENOTDIR)
	wantErr("file over a directory", syscall.Rename(j("f"), j("empty")), syscall.EISDIR)
	wantErr("file over a non-empty directory", syscall.Rename(j("f"), j("full")), syscall.EISDIR)
	wantErr("directory into itself", syscall.Rename(j("d"), j("d/inside")), syscall.EINVAL)
	wantErr("directory into its subdirectory", syscall.Rename(j("d"), j("d/sub/deeper/inside")), syscall.EINVAL)
	wantErr("directory onto its subdirectory", syscall.Rename(j("d"), j("d/sub")), syscall.EINVAL)
	wantErr("subdirectory onto its ancestor", syscall.Rename(j("d/sub/deeper"), j("d")), syscall.ENOTEMPTY)
	wantErr("exchange a directory with its subdirectory", renameat2(j("d"), j("d/sub/deeper"), renameExchange), syscall.EINVAL)
	wantErr("missing source", syscall.Rename(j("nothing"), j("h")), syscall.ENOENT)
	wantErr("trailing slash on a file", syscall.Rename(j("f")+"/", j("h")), syscall.ENOTDIR)
	// Nothing above changed anything.
	for _, p := range []string{"d/sub/deeper", "full/x", "empty", "f"} {
		if _, err := os.Lstat(j(p)); err != nil {
			t.Errorf("%s after the failed renames: %v", p, err)
		}
	}

	// Over an empty directory: replaced.
	emptyIno := statxSync(t, j("empty")).Ino
	must(syscall.Rename(j("d"), j("empty")))
	if st := statxSync(t, j("empty/sub/deeper")); st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Errorf("after rename over an empty directory: mode %#o", st.Mode)
	}
	if st := statxSync(t, j("empty")); st.Ino == emptyIno {
		t.Errorf("the empty directory is still there")
	}
	wantErr("the old name", func() error { _, err := os.Lstat(j("d")); return err }(), syscall.ENOENT)

	// Over a file: replaced; the old one is gone.
	must(syscall.Rename(j("f"), j("g")))
	if got := readFile(t, j("g")); got != "F" {
		t.Errorf("g = %q, want F", got)
	}
	// Over a symlink: the link is replaced, not its target.
	writeFile(t, j("target"), "T")
	must(os.Symlink("target", j("l")))
	must(syscall.Rename(j("g"), j("l")))
	if st := statxSync(t, j("l")); st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		t.Errorf("rename over a symlink: mode %#o", st.Mode)
	}
	if got := readFile(t, j("target")); got != "T" {
		t.Errorf("the symlink's target = %q", got)
	}

	// A name onto another name of the same file: nothing happens, both
	// names stay.
	must(os.Link(j("l"), j("l2")))
	before := statxSync(t, dir)
	stamp()
	must(syscall.Rename(j("l"), j("l2")))
	for _, n := range []string{"l", "l2"} {
		if st := statxSync(t, j(n)); st.Nlink != 2 {
			t.Errorf("%s after rename onto its own hard link: nlink %d, want 2", n, st.Nlink)
		}
	}
	if after := statxSync(t, dir); nsec(after.Mtime) != nsec(before.Mtime) {
		t.Errorf("rename onto a hard link changed the directory")
	}
	wantErr("RENAME_NOREPLACE onto its own hard link", renameat2(j("l"), j("l2"), renameNoReplace), syscall.EEXIST)
	must(renameat2(j("l"), j("l2"), renameExchange))
	for _, n := range []string{"l", "l2"} {
		if st := statxSync(t, j(n)); st.Nlink != 2 {
			t.Errorf("%s after exchange with its own hard link: nlink %d, want 2", n, st.Nlink)
		}
	}
}

func TestNameLength(t *testing.T) {
	checkNameLength(t, testMount(t))
}

// checkNameLength: names of up to 255 bytes, for every operation that
// takes one; 256 is ENAMETOOLONG.
func checkNameLength(t *testing.T, dir string) {
	for _, n := range []int{255, 256} {
		name := strings.Repeat("n", n-4) + "\u00e9\u00e9" // multibyte: bytes count, not characters
		if len(name) != n {
			t.Fatalf("name of %d bytes", len(name))
		}
		var want error
		if n > 255 {
			want = syscall.ENAMETOOLONG
		}
		p := filepath.Join(dir, name)
		writeFile(t, filepath.Join(dir, "src"), "x")
		results := []struct {
			what string
			err  error
		}{
			{"create", os.WriteFile(p, []byte("x"), 0o644)},
			{"lstat", func() error { _, err := os.Lstat(p); return err }()},
			{"unlink", os.Remove(p)},
			{"mkdir", os.Mkdir(p, 0o755)},
			{"rmdir", os.Remove(p)},
			{"mknod", syscall.Mkfifo(p, 0o644)},
			{"unlink fifo", os.Remove(p)},
			{"symlink", os.Symlink("src", p)},
			{"unlink symlink", os.Remove(p)},
			{"link", os.Link(filepath.Join(dir, "src"), p)},
			{"unlink link", os.Remove(p)},
			{"rename to", syscall.Rename(filepath.Join(dir, "src"), p)},
			{"rename from", syscall.Rename(p, filepath.Join(dir, "src"))},
		}
		for _, r := range results {
			if (want == nil && r.err != nil) || (want != nil && !errors.Is(r.err, want)) {
				t.Errorf("%s, name of %d bytes: %v, want %v", r.what, n, r.err, want)
			}
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "src" {
		t.Errorf("left behind: %v", ents)
	}
}

func TestLongPath(t *testing.T) {
	checkLongPath(t, testMount(t))
}

// checkLongPath: the filesystem sets no limit on the length of a path,
// only on each name. A tree deeper than PATH_MAX is made and used with
// relative paths from a directory descriptor and from the current
// directory of a process; only one path string is limited, by the kernel.
func checkLongPath(t *testing.T, dir string) {
	const comp = 100                                     // bytes per directory name
	const levels = 60                                    // 60 * 101 bytes: deeper than PATH_MAX
	const relLevels = 40                                 // 40 * 101 = 4040 bytes
	last := strings.Repeat("f", 4095-relLevels*(comp+1)) // a 4,095-byte relative path
	name := func(i int) string { return fmt.Sprintf("%03d", i) + strings.Repeat("d", comp-3) }

	top, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(top)
	fd, err := unix.Dup(top)
	if err != nil {
		t.Fatal(err)
	}
	for i := range levels {
		if err := unix.Mkdirat(fd, name(i), 0o755); err != nil {
			t.Fatalf("mkdirat at depth %d: %v", i, err)
		}
		nfd, err := unix.Openat(fd, name(i), unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatalf("open at depth %d: %v", i, err)
		}
		unix.Close(fd)
		fd = nfd
	}
	// A file at the bottom, more than 6,000 bytes below dir.
	bottom, err := unix.Openat(fd, "bottom", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644)
	unix.Close(fd)
	if err != nil {
		t.Fatalf("create at depth %d: %v", levels, err)
	}
	if _, err := unix.Write(bottom, []byte("deep")); err != nil {
		t.Fatal(err)
	}
	unix.Close(bottom)

	var rel []string
	for i := range relLevels {
		rel = append(rel, name(i))
	}
	relDir := strings.Join(rel, "/")
	relFile := relDir + "/" + last
	if len(relFile) != 4095 {
		t.Fatalf("relative path of %d bytes", len(relFile))
	}
	// 4,095 bytes from a directory descriptor: create, write, read back.
	f, err := unix.Openat(top, relFile, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("openat a 4,095-byte path: %v", err)
	}
	if _, err := unix.Pwrite(f, []byte("long path"), 0); err != nil {
		t.Fatal(err)
	}
	unix.Close(f)
	var st unix.Stat_t
	if err := unix.Fstatat(top, relFile, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Size != 9 {
		t.Errorf("fstatat a 4,095-byte path: size %d, %v", st.Size, err)
	}
	// One byte more is the kernel's PATH_MAX, not the filesystem.
	if _, err := unix.Openat(top, relFile+"x", unix.O_RDONLY, 0); err != unix.ENAMETOOLONG {
		t.Errorf("openat a 4,096-byte path: %v, want ENAMETOOLONG", err)
	}

	// From the current directory of a process: cd down by relative
	// steps, then read the file at the bottom and the 4,095-byte path.
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("no sh: %v", err)
	}
	var script strings.Builder
	for i := range levels {
		fmt.Fprintf(&script, "cd -P %s || exit 1\n", name(i))
	}
	script.WriteString("cat bottom || exit 1\n")
	for range levels - relLevels {
		script.WriteString("cd -P .. || exit 1\n")
	}
	for range relLevels {
		script.WriteString("cd -P .. || exit 1\n")
	}
	fmt.Fprintf(&script, "cat %s\n", relFile)
	cmd := exec.Command(sh, "-c", script.String())
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "deeplong path" {
		t.Errorf("reading the deep tree from a shell: %q, %v", out, err)
	}

	// Rename and remove at depth; then remove the whole tree.
	if err := unix.Renameat(top, relFile, top, relDir+"/moved"); err != nil {
		t.Errorf("renameat at depth: %v", err)
	}
	if err := unix.Unlinkat(top, relDir+"/moved", 0); err != nil {
		t.Errorf("unlinkat at depth: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(dir, name(0))); err != nil {
		t.Errorf("RemoveAll of the deep tree: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("after RemoveAll: %v", ents)
	}
}

func TestOpenFlags(t *testing.T) {
	checkOpenFlags(t, testMount(t))
}

// checkOpenFlags: O_APPEND, O_TRUNC, O_EXCL, O_NOFOLLOW and O_DIRECTORY.
func checkOpenFlags(t *testing.T, dir string) {
	j := func(name string) string { return filepath.Join(dir, name) }
	f := j("f")
	writeFile(t, f, "0123456789")
	if err := os.Mkdir(j("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", j("lf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("d", j("ld")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", j("dangling")); err != nil {
		t.Fatal(err)
	}

	// O_APPEND: every write lands at the end as it is then, even after
	// another descriptor extended or shortened the file, and even with
	// pwrite.
	app, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.OpenFile(f, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error { _, err := app.Write([]byte("a")); return err },
		func() error { _, err := other.WriteAt([]byte("XYZ"), 20); return err },
		func() error { _, err := app.Write([]byte("b")); return err },
		func() error { return other.Truncate(5) },
		func() error { _, err := app.Write([]byte("c")); return err },
		func() error { _, err := unix.Pwrite(int(app.Fd()), []byte("d"), 0); return err },
	}
	for i, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("O_APPEND step %d: %v", i, err)
		}
	}
	if off, err := app.Seek(0, io.SeekCurrent); err != nil || off != 6 {
		t.Errorf("O_APPEND offset after the writes: %d, %v, want 6 (pwrite leaves it)", off, err)
	}
	app.Close()
	other.Close()
	if got := readFile(t, f); got != "01234cd" {
		t.Errorf("after O_APPEND writes: %q, want %q", got, "01234cd")
	}

	// O_TRUNC empties the file, for reading too when the caller may
	// write; on a file it may not write it is EACCES.
	for _, fl := range []int{os.O_WRONLY, os.O_RDWR, os.O_RDONLY} {
		writeFile(t, f, "full")
		h, err := os.OpenFile(f, fl|os.O_TRUNC, 0)
		if err != nil {
			t.Fatalf("O_TRUNC with %#x: %v", fl, err)
		}
		h.Close()
		if st := statxSync(t, f); st.Size != 0 {
			t.Errorf("O_TRUNC with %#x: size %d, want 0", fl, st.Size)
		}
	}
	if err := os.WriteFile(j("d"), nil, 0); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("O_TRUNC of a directory: %v, want EISDIR", err)
	}
	// O_TRUNC of a fifo is ignored.
	if err := syscall.Mkfifo(j("p"), 0o644); err != nil {
		t.Fatal(err)
	}
	if fd, err := syscall.Open(j("p"), syscall.O_RDWR|syscall.O_TRUNC, 0); err != nil {
		t.Errorf("O_TRUNC of a fifo: %v", err)
	} else {
		syscall.Close(fd)
	}

	// O_EXCL: an existing name fails, a symlink is not followed, even a
	// dangling one.
	for _, n := range []string{"f", "d", "lf", "dangling", "p"} {
		if _, err := os.OpenFile(j(n), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !errors.Is(err, syscall.EEXIST) {
			t.Errorf("O_CREAT|O_EXCL on %s: %v, want EEXIST", n, err)
		}
	}
	if _, err := os.Lstat(j("nowhere")); !os.IsNotExist(err) {
		t.Errorf("O_EXCL through a dangling symlink created its target: %v", err)
	}
	// Without O_EXCL, O_CREAT through a dangling symlink creates the target.
	h, err := os.OpenFile(j("dangling"), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("O_CREAT through a dangling symlink: %v", err)
	} else {
		h.Close()
		if st := statxSync(t, j("nowhere")); st.Mode&syscall.S_IFMT != syscall.S_IFREG {
			t.Errorf("target made through a dangling symlink: mode %#o", st.Mode)
		}
	}

	// O_NOFOLLOW: ELOOP on a symlink as the last name, any other file
	// opens. O_DIRECTORY: ENOTDIR on anything but a directory, after
	// following a symlink.
	writeFile(t, j("d/in"), "in")
	const nofollow, directory = syscall.O_NOFOLLOW, syscall.O_DIRECTORY
	for _, c := range []struct {
		name  string
		flags int
		want  error
	}{
		{"lf", nofollow, syscall.ELOOP},
		{"ld", nofollow, syscall.ELOOP},
		{"dangling", nofollow, syscall.ELOOP},
		{"f", nofollow, nil},
		{"d", nofollow, nil},
		{"ld/in", nofollow, nil}, // a symlink before the last name is followed
		{"f", directory, syscall.ENOTDIR},
		{"lf", directory, syscall.ENOTDIR},
		{"p", directory | syscall.O_NONBLOCK, syscall.ENOTDIR},
		{"d", directory, nil},
		{"ld", directory, nil},
		{"ld", directory | nofollow, syscall.ENOTDIR},
	} {
		fd, err := syscall.Open(j(c.name), syscall.O_RDONLY|c.flags, 0)
		if err == nil {
			syscall.Close(fd)
			if c.want != nil {
				t.Errorf("open %s with flags %#x succeeded, want %v", c.name, c.flags, c.want)
			}
		} else if err != c.want {
			t.Errorf("open %s with flags %#x: %v, want %v", c.name, c.flags, err, c.want)
		}
	}
	if _, err := syscall.Open(j("d"), syscall.O_WRONLY, 0); err != syscall.EISDIR {
		t.Errorf("opening a directory for writing: %v, want EISDIR", err)
	}
}

func TestRenameOverOpenFile(t *testing.T) {
	checkRenameOverOpenFile(t, testMount(t))
}

// checkRenameOverOpenFile adds to TestUnlinkedOpenFile: a file replaced
// by rename while open stays readable and writable through its
// descriptor until closed; so does an unlinked file through a second
// descriptor after the first is closed.
func checkRenameOverOpenFile(t *testing.T, dir string) {
	j := func(name string) string { return filepath.Join(dir, name) }
	writeFile(t, j("old"), "old data")
	h, err := os.OpenFile(j("old"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	writeFile(t, j("new"), "new")
	if err := syscall.Rename(j("new"), j("old")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, j("old")); got != "new" {
		t.Errorf("the name after rename: %q", got)
	}
	if _, err := h.WriteAt([]byte("OLD"), 0); err != nil {
		t.Errorf("write to the replaced file: %v", err)
	}
	b := make([]byte, 32)
	n, err := h.ReadAt(b, 0)
	if string(b[:n]) != "OLD data" || (err != nil && err != io.EOF) {
		t.Errorf("read of the replaced file: %q, %v", b[:n], err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(h.Fd()), &st); err != nil || st.Nlink != 0 || st.Size != 8 {
		t.Errorf("fstat of the replaced file: nlink %d size %d, %v", st.Nlink, st.Size, err)
	}
	if got := readFile(t, j("old")); got != "new" {
		t.Errorf("the name after writing the replaced file: %q", got)
	}

	// Two descriptors: the file lives until the last one closes.
	writeFile(t, j("two"), "two")
	h1, err := os.Open(j("two"))
	if err != nil {
		t.Fatal(err)
	}
	h2, err := os.OpenFile(j("two"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if err := os.Remove(j("two")); err != nil {
		t.Fatal(err)
	}
	h1.Close()
	if err := h2.Truncate(1); err != nil {
		t.Errorf("ftruncate of an unlinked file: %v", err)
	}
	if _, err := h2.WriteAt([]byte("wo"), 1); err != nil {
		t.Errorf("write after the other descriptor closed: %v", err)
	}
	n, err = h2.ReadAt(b, 0)
	if string(b[:n]) != "two" || (err != nil && err != io.EOF) {
		t.Errorf("read after the other descriptor closed: %q, %v", b[:n], err)
	}
}

func TestUnixSocket(t *testing.T) {
	checkUnixSocket(t, testMount(t))
}

// checkUnixSocket: a unix socket bound at a path on the mount is a socket
// file there, accepts connections and carries data both ways.
func checkUnixSocket(t *testing.T, dir string) {
	p := filepath.Join(dir, "sock")
	if len(p) >= 108 {
		t.Fatalf("socket path %s is too long for sun_path", p)
	}
	l, err := net.Listen("unix", p)
	if err != nil {
		t.Fatalf("listen on the mount: %v", err)
	}
	defer l.Close()
	if st := statxSync(t, p); st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
		t.Errorf("socket file mode %#o", st.Mode)
	}
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		b := make([]byte, 5)
		if _, err := io.ReadFull(c, b); err != nil {
			done <- err
			return
		}
		_, err = c.Write(append([]byte("re:"), b...))
		done <- err
	}()
	c, err := net.Dial("unix", p)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.LimitReader(c, 8))
	if err != nil || string(got) != "re:hello" {
		t.Errorf("reply %q, %v", got, err)
	}
	if err := <-done; err != nil {
		t.Errorf("server side: %v", err)
	}
	// Connecting to a socket file nobody listens on is refused; the
	// name stays until unlinked.
	q := filepath.Join(dir, "s2")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: q}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	syscall.Close(fd)
	if _, err := net.Dial("unix", q); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("connect to a socket nobody listens on: %v, want ECONNREFUSED", err)
	}
	if err := syscall.Bind(mustSocket(t), &syscall.SockaddrUnix{Name: q}); err != syscall.EADDRINUSE {
		t.Errorf("bind to an existing name: %v, want EADDRINUSE", err)
	}
	if err := os.Remove(q); err != nil {
		t.Errorf("unlink the socket file: %v", err)
	}
}

func mustSocket(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	return fd
}
