package fuse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/internal/falloctab"
	"github.com/txfs/txfs/segment"
)

// fallocChildEnv carries the job of a child process that runs the cases of
// testdata/fallocate.txt through system calls, as JSON (fallocJob).
const fallocChildEnv = "TXFS_FALLOCATE_CHILD"

func init() {
	if job := os.Getenv(fallocChildEnv); job != "" {
		os.Exit(fallocChildMain(job))
	}
}

// fallocJob says where the child runs the table, for which filesystem.
type fallocJob struct {
	Dir        string
	Block, Max int64
}

// fallocResult is what the child saw of one case.
type fallocResult struct {
	Errno         syscall.Errno
	Before, After falloctab.State
}

// forwarded reports whether the kernel passes a fallocate mode on to a
// FUSE daemon (fuse_file_fallocate: KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE
// only; it answers EOPNOTSUPP to the others itself).
func forwarded(mode uint32) bool {
	return mode&^(falloctab.KeepSize|falloctab.PunchHole|falloctab.ZeroRange) == 0
}

// fallocChildMain runs every case of the table in its own file in
// job.Dir and prints the results as JSON.
func fallocChildMain(job string) int {
	var j fallocJob
	if err := json.Unmarshal([]byte(job), &j); err != nil {
		fmt.Fprintln(os.Stderr, "bad job:", err)
		return 2
	}
	cases, err := falloctab.Load(j.Block, j.Max)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	res := make([]fallocResult, len(cases))
	for i, c := range cases {
		if res[i], err = fallocCase(filepath.Join(j.Dir, fmt.Sprint(i)), c, j.Block); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", c.Name, err)
			return 2
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 2
	}
	return 0
}

// fallocCase makes the file of case c at p and runs its fallocate.
func fallocCase(p string, c falloctab.Case, bs int64) (fallocResult, error) {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return fallocResult{}, err
	}
	defer f.Close()
	if content := falloctab.Content(c, bs); content != nil {
		_, err = f.Write(content)
	} else {
		err = f.Truncate(c.Size)
	}
	if err != nil {
		return fallocResult{}, err
	}
	if err := unix.Fchmod(int(f.Fd()), 0o6755); err != nil {
		return fallocResult{}, err
	}
	old := time.Unix(1000000, 0)
	if err := os.Chtimes(p, old, old); err != nil {
		return fallocResult{}, err
	}
	var r fallocResult
	if r.Before, err = fileState(f, !c.Sparse(bs)); err != nil {
		return r, err
	}
	if err := unix.Fallocate(int(f.Fd()), c.Mode, c.Off, c.Len); err != nil {
		r.Errno = err.(syscall.Errno)
	}
	r.After, err = fileState(f, !c.Sparse(bs))
	return r, err
}

func fileState(f *os.File, content bool) (falloctab.State, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return falloctab.State{}, err
	}
	return falloctab.StateOf(st.Size, st.Mode, [2]int64{st.Mtim.Sec, st.Mtim.Nsec}, [2]int64{st.Ctim.Sec, st.Ctim.Nsec},
		content, func(b []byte) (int, error) { return f.ReadAt(b, 0) })
}

// fallocTableUID is who runs the table: not root, so that the set-ID bits
// are cleared.
const fallocTableUID = 1000

// runFallocTable runs the table in dir as fallocTableUID in a child
// process and returns the results by case.
func runFallocTable(t *testing.T, dir string, job fallocJob) []fallocResult {
	t.Helper()
	if err := os.Chown(dir, fallocTableUID, fallocTableUID); err != nil {
		t.Fatal(err)
	}
	job.Dir = dir
	js, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), fallocChildEnv+"="+string(js))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: fallocTableUID, Gid: fallocTableUID}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.Bytes())
	}
	var res []fallocResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("child output: %v\n%s", err, stderr.Bytes())
	}
	return res
}

// ext4MaxFileSize is ext4's largest file with 4 KiB blocks and extents.
const ext4MaxFileSize = 16<<40 - 4096

// mountExt4 makes an ext4 image with 4 KiB blocks and mounts it, for
// checking the table against the real thing; it skips when it cannot.
func mountExt4(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting an ext4 image needs root")
	}
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("no mkfs.ext4")
	}
	img := filepath.Join(t.TempDir(), "ext4.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-q", "-F", "-b", "4096", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v %s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount an ext4 image here: %v %s", err, out)
	}
	openUp(t, mnt)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	})
	return mnt
}

// TestFallocateTableIsExt4 checks testdata/fallocate.txt against a real
// ext4, so that the table the engine and the mount are held to is what
// ext4 does on this kernel.
func TestFallocateTableIsExt4(t *testing.T) {
	mnt := mountExt4(t)
	cases, err := falloctab.Load(4096, ext4MaxFileSize)
	if err != nil {
		t.Fatal(err)
	}
	res := runFallocTable(t, mnt, fallocJob{Block: 4096, Max: ext4MaxFileSize})
	for i, c := range cases {
		r := res[i]
		if bad := falloctab.Check(c, 4096, r.Errno, r.Before, r.After, c.Modified, true); len(bad) > 0 {
			t.Errorf("ext4, %s: %s", c.Name, strings.Join(bad, "; "))
		}
	}
}

// TestFallocateLikeExt4 runs the table through the mount, as a user who
// is not root. The kernel forwards only some modes to FUSE (forwarded);
// it answers EOPNOTSUPP to the others itself, which this test requires so
// that a kernel that forwards them gets noticed. The adapter answers
// those as ext4 does when called as the kernel would call it
// (TestFallocateAdapterLikeExt4).
func TestFallocateLikeExt4(t *testing.T) {
	mnt := sharedMount(t)
	dir := filepath.Join(mnt, "table")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cases, err := falloctab.Load(4096, txfs.MaxFileSize)
	if err != nil {
		t.Fatal(err)
	}
	res := runFallocTable(t, dir, fallocJob{Block: 4096, Max: txfs.MaxFileSize})
	checked := 0
	for i, c := range cases {
		r := res[i]
		if !forwarded(c.Mode) && c.Len > 0 { // length 0 is the VFS's EINVAL
			if r.Errno != syscall.EOPNOTSUPP {
				t.Errorf("%s: errno %v; the kernel was expected to refuse mode %#x itself (if it forwards it now, check these cases through the mount)", c.Name, r.Errno, c.Mode)
			}
			continue
		}
		checked++
		// Past txfs's largest file (EFBIG), the kernel has already asked
		// the daemon to clear the set-ID bits (file_modified, before it
		// forwards the fallocate): ext4 refuses the range first.
		setID := c.Errno != syscall.EFBIG
		if bad := falloctab.Check(c, 4096, r.Errno, r.Before, r.After, c.Modified, setID); len(bad) > 0 {
			t.Errorf("%s: %s", c.Name, strings.Join(bad, "; "))
		}
	}
	if checked < 15 {
		t.Fatalf("only %d cases went through the mount", checked)
	}
}

// TestFallocateAdapterLikeExt4 runs the table through the adapter as the
// kernel would send it (go-fuse's raw filesystem, with a caller that is
// not root), for every mode, including those the kernel keeps from FUSE
// today, and looks at the engine for the outcome. Cases of length 0 are
// the kernel's to refuse and never reach a daemon.
func TestFallocateAdapterLikeExt4(t *testing.T) {
	v, raw := rawFS(t)
	caller := fuse.Caller{Owner: fuse.Owner{Uid: fallocTableUID, Gid: fallocTableUID}}
	cases, err := falloctab.Load(4096, txfs.MaxFileSize)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		if c.Len == 0 {
			continue
		}
		a, err := v.Create(txfs.RootIno, fmt.Sprint(i), 0o6755, txfs.Owner{Uid: fallocTableUID, Gid: fallocTableUID})
		if err != nil {
			t.Fatal(err)
		}
		if content := falloctab.Content(c, 4096); content != nil {
			_, err = v.Write(a.Ino, content, 0)
		} else {
			_, err = v.SetAttr(a.Ino, &txfs.SetAttrIn{Valid: txfs.SetSize, Size: uint64(c.Size)})
		}
		if err != nil {
			t.Fatal(err)
		}
		old := txfs.Timespec{Sec: 1000000}
		if _, err := v.SetAttr(a.Ino, &txfs.SetAttrIn{Valid: txfs.SetMtime | txfs.SetCtime, Mtime: old, Ctime: old}); err != nil {
			t.Fatal(err)
		}
		before := volumeState(t, v, a.Ino, !c.Sparse(4096))
		errno := rawFallocate(t, raw, caller, fmt.Sprint(i), c.Mode, c.Off, c.Len)
		after := volumeState(t, v, a.Ino, !c.Sparse(4096))
		if bad := falloctab.Check(c, 4096, errno, before, after, c.Modified, true); len(bad) > 0 {
			t.Errorf("%s: %s", c.Name, strings.Join(bad, "; "))
		}
	}
}

// TestFallocateDropsCapability: every fallocate the adapter takes
// removes security.capability, as on ext4 (measured with setcap and
// fallocate(1) on a loop mounted ext4), also one that changes no byte or
// whose range does not suit the file, and whoever calls.
func TestFallocateDropsCapability(t *testing.T) {
	v, raw := rawFS(t)
	const capName = "security.capability"
	caller := fuse.Caller{} // root
	for i, c := range []struct {
		mode      uint32
		off, len_ int64
		errno     syscall.Errno
	}{
		{0, 0, 4096, 0},
		{falloctab.KeepSize, 1 << 20, 4096, 0},
		{falloctab.PunchHole | falloctab.KeepSize, 1 << 20, 4096, 0},
		{falloctab.ZeroRange, 100, 10, 0},
		{falloctab.CollapseRange, 0, 1 << 20, syscall.EINVAL},
		{falloctab.InsertRange, 4096, 4096, 0},
	} {
		name := fmt.Sprint(i)
		a, err := v.Create(txfs.RootIno, name, 0o755, txfs.Owner{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Write(a.Ino, make([]byte, 3*4096), 0); err != nil {
			t.Fatal(err)
		}
		for _, x := range []string{capName, "user.kept"} {
			if err := v.SetXattr(a.Ino, x, []byte("value"), 0); err != nil {
				t.Fatal(err)
			}
		}
		if errno := rawFallocate(t, raw, caller, name, c.mode, c.off, c.len_); errno != c.errno {
			t.Errorf("mode %#x: errno %v, want %v", c.mode, errno, c.errno)
		}
		if names, _ := v.ListXattr(a.Ino); fmt.Sprint(names) != "[user.kept]" {
			t.Errorf("mode %#x: attributes %v, want %s removed and the other kept", c.mode, names, capName)
		}
	}
}

// rawFS returns a fresh volume and the adapter over it as go-fuse's raw
// filesystem, which the tests call as the kernel would; the checker runs
// at the end of the test.
func rawFS(t *testing.T) (*txfs.Volume, fuse.RawFileSystem) {
	t.Helper()
	dev := segment.NewMemDevice(64 << 20)
	if err := txfs.Format(dev, txfs.FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := txfs.Open(dev, txfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Check(); err != nil {
			t.Errorf("check: %v", err)
		}
		v.Close()
	})
	rootAttr := fs.StableAttr{Mode: syscall.S_IFDIR, Ino: txfs.RootIno, Gen: 1}
	return v, fs.NewNodeFS(newRoot(v), &fs.Options{RootStableAttr: &rootAttr, NullPermissions: true})
}

// rawFallocate looks name up in the root and sends it a FALLOCATE from
// caller.
func rawFallocate(t *testing.T, raw fuse.RawFileSystem, caller fuse.Caller, name string, mode uint32, off, n int64) syscall.Errno {
	t.Helper()
	var out fuse.EntryOut
	if st := raw.Lookup(nil, &fuse.InHeader{NodeId: fuse.FUSE_ROOT_ID, Caller: caller}, name, &out); !st.Ok() {
		t.Fatalf("lookup %s: %v", name, st)
	}
	return syscall.Errno(raw.Fallocate(nil, &fuse.FallocateIn{InHeader: fuse.InHeader{NodeId: out.NodeId, Caller: caller},
		Offset: uint64(off), Length: uint64(n), Mode: mode}))
}

// volumeState reads what falloctab.Check compares from the engine.
func volumeState(t *testing.T, v *txfs.Volume, ino txfs.Ino, content bool) falloctab.State {
	t.Helper()
	a, err := v.GetAttr(ino)
	if err != nil {
		t.Fatal(err)
	}
	s, err := falloctab.StateOf(int64(a.Size), a.Mode, [2]int64{a.Mtime.Sec, int64(a.Mtime.Nsec)},
		[2]int64{a.Ctime.Sec, int64(a.Ctime.Nsec)}, content, func(b []byte) (int, error) { return v.Read(ino, b, 0) })
	if err != nil {
		t.Fatal(err)
	}
	return s
}
