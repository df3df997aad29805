package tests

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestCopyTreeAndDiff copies a real source tree onto the mount with cp -a
// and compares it with diff -r and a metadata walk, before and after a
// remount.
func TestCopyTreeAndDiff(t *testing.T) {
	m := newMount(t)
	src := sourceTree(t)
	dst := filepath.Join(m.dir, "src")

	m.run(m.dir, "cp", "-a", src, dst)
	m.run(m.dir, "diff", "-r", "--no-dereference", src, dst)
	compareTrees(t, src, dst, m)

	// Unmount (checking the exit status and fsck), mount again, compare
	// again: this time everything comes from the image.
	m.remount()
	m.run(m.dir, "diff", "-r", "--no-dereference", src, dst)
	compareTrees(t, src, dst, m)
}

// TestTarRoundTrip archives a tree on the mount into a tar on the mount,
// extracts it elsewhere on the mount and compares.
func TestTarRoundTrip(t *testing.T) {
	m := newMount(t)
	src := filepath.Join(m.dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	// Part written by this process straight onto the mount, part by cp.
	makeEdgeTree(t, filepath.Join(src, "edge"))
	m.run(m.dir, "cp", "-a", repoSnapshot(t), filepath.Join(src, "repo"))

	tarball := filepath.Join(m.dir, "tree.tar")
	// POSIX format: nanosecond times, long names.
	m.run(m.dir, "tar", "--format=posix", "-cf", tarball, "src")
	// tar --compare reads the archive back against the tree.
	m.run(m.dir, "tar", "-df", tarball)
	out := filepath.Join(m.dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	m.run(out, "tar", "-xpf", tarball)
	m.run(m.dir, "diff", "-r", "--no-dereference", src, filepath.Join(out, "src"))
	compareTrees(t, src, filepath.Join(out, "src"), m)

	m.remount()
	m.run(m.dir, "tar", "-df", tarball)
	m.run(m.dir, "diff", "-r", "--no-dereference", src, filepath.Join(out, "src"))
	compareTrees(t, src, filepath.Join(out, "src"), m)
}

// TestGit makes a repository on the mount, commits, repacks, clones and
// runs git fsck, before and after a remount.
func TestGit(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("skipping: git is not installed (apt-get install git)")
	}
	m := newMount(t)
	home := t.TempDir()
	env := []string{"HOME=" + home, "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_DATE=2024-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2024-01-02T03:04:05Z"}
	git := func(dir string, args ...string) string {
		t.Helper()
		args = append([]string{"-c", "user.name=txfs test", "-c", "user.email=txfs@example.com",
			"-c", "init.defaultBranch=main", "-c", "safe.directory=*", "-c", "gc.auto=0"}, args...)
		out, err := m.runEnv(dir, env, gitBin, args...)
		if err != nil {
			t.Fatalf("git %s (in %s): %v\n%s\ntxfs stderr:\n%s", strings.Join(args[10:], " "), dir, err, out, m.stderr())
		}
		return out
	}

	repo := filepath.Join(m.dir, "repo")
	m.run(m.dir, "cp", "-a", repoSnapshot(t), repo)
	makeEdgeTree(t, filepath.Join(repo, "edge"))
	git(repo, "init", "-q")
	git(repo, "add", "-A")
	git(repo, "commit", "-q", "-m", "first")
	git(repo, "fsck", "--full", "--strict")
	if st := git(repo, "status", "--porcelain"); st != "" {
		t.Fatalf("git status after the commit is not clean:\n%s", st)
	}

	// A second commit that changes, removes and renames files.
	if err := os.WriteFile(filepath.Join(repo, "edge", "empty"), []byte("not empty any more\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(repo, "rm", "-q", "-r", "edge/deep")
	git(repo, "mv", "edge/big", "edge/big-renamed")
	git(repo, "commit", "-q", "-a", "-m", "second")
	// gc packs the objects (and reads the packs through mmap).
	git(repo, "gc", "-q", "--prune=now")
	git(repo, "fsck", "--full", "--strict")

	clone := filepath.Join(m.dir, "clone")
	git(m.dir, "clone", "-q", repo, clone)
	// Files the snapshot's .gitignore names (build output of the working
	// tree it was taken from) are not in the clone.
	git(repo, "clean", "-fdXq")
	if n := strings.Count(git(clone, "log", "--oneline"), "\n"); n != 2 {
		t.Errorf("the clone has %d commits, want 2", n)
	}
	// git keeps no empty directories.
	gitDiff := []string{"-r", "--no-dereference", "--exclude=.git", "--exclude=emptydir", "--exclude=sticky", repo, clone}
	m.run(m.dir, "diff", gitDiff...)
	if a, b := git(repo, "rev-parse", "HEAD^{tree}"), git(clone, "rev-parse", "HEAD^{tree}"); a != b {
		t.Errorf("tree of HEAD: %s in the repository, %s in the clone", a, b)
	}

	m.remount()
	git(repo, "fsck", "--full", "--strict")
	git(clone, "fsck", "--full", "--strict")
	if st := git(repo, "status", "--porcelain"); st != "" {
		t.Errorf("git status after the remount is not clean:\n%s", st)
	}
	m.run(m.dir, "diff", gitDiff...)
}

// TestSqlite runs 500 separate transactions in sqlite3 (rollback journal)
// and more in WAL mode (mmap of the -shm file), then integrity checks.
func TestSqlite(t *testing.T) {
	sqlite, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("skipping: sqlite3 is not installed (apt-get install sqlite3)")
	}
	m := newMount(t)
	scripts := t.TempDir()
	sql := func(dir, db, script string) string {
		t.Helper()
		f := filepath.Join(scripts, fmt.Sprintf("s%d.sql", time.Now().UnixNano()))
		if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := m.runErr(dir, sqlite, "-bail", db, ".read "+f)
		if err != nil {
			t.Fatalf("sqlite3 %s: %v\n%s\ntxfs stderr:\n%s", db, err, out, m.stderr())
		}
		return strings.TrimSpace(out)
	}
	inserts := func(mode string, n int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "PRAGMA journal_mode=%s;\n", mode)
		b.WriteString("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL, b BLOB NOT NULL);\n")
		b.WriteString("CREATE INDEX tv ON t(v);\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "BEGIN; INSERT INTO t(v, b) VALUES('row %d', randomblob(%d)); COMMIT;\n", i, 100+i*7%3000)
		}
		return b.String()
	}
	check := "PRAGMA integrity_check;\nSELECT count(*) FROM t;\n"
	lastLines := func(out string, n int) string {
		ls := strings.Split(out, "\n")
		if len(ls) > n {
			ls = ls[len(ls)-n:]
		}
		return strings.Join(ls, "\n")
	}
	want := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s: sqlite3 printed\n%s\nwant\n%s\ntxfs stderr:\n%s", what, got, want, m.stderr())
		}
	}

	db := filepath.Join(m.dir, "rollback.db")
	start := time.Now()
	out := sql(m.dir, db, inserts("DELETE", 500)+check)
	t.Logf("500 transactions (rollback journal) in %v", time.Since(start))
	want("rollback journal", lastLines(out, 2), "ok\n500")

	wal := filepath.Join(m.dir, "wal.db")
	out = sql(m.dir, wal, inserts("WAL", 300)+check)
	want("WAL", lastLines(out, 2), "ok\n300")

	// Delete a third of the rows and rewrite the whole file.
	out = sql(m.dir, db, "DELETE FROM t WHERE id % 3 = 0;\nVACUUM;\n"+check)
	want("after VACUUM", lastLines(out, 2), "ok\n334")

	m.remount()
	want("rollback journal after the remount", lastLines(sql(m.dir, db, check), 2), "ok\n334")
	want("WAL after the remount", lastLines(sql(m.dir, wal, check), 2), "ok\n300")
}

// TestKill9 kills the daemon with SIGKILL at a random moment of a workload
// that writes and fsyncs files, remounts and checks that every file whose
// fsync returned is there, whole, and that nothing else holds wrong bytes.
func TestKill9(t *testing.T) {
	iters := 10
	if os.Getenv("CI") != "" {
		iters = 50
	}
	if s := os.Getenv("TXFS_E2E_ITERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("TXFS_E2E_ITERS=%q: %v", s, err)
		}
		iters = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TXFS_E2E_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("TXFS_E2E_SEED=%q: %v", s, err)
		}
		seed = n
	}
	t.Logf("TestKill9: seed %d, %d iterations (repeat with TXFS_E2E_SEED=%d)", seed, iters, seed)
	fmt.Printf("TestKill9: seed %d (TXFS_E2E_SEED=%d repeats it)\n", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x7478_6673))

	// The same image is crashed perImage times in a row (each crash is
	// recovered from a recovered image, and the files of the earlier
	// rounds are checked again each time), then a fresh one is made.
	const perImage = 5
	var m *mounted
	var rounds []*kill9Round
	for it := 0; it < iters; it++ {
		if it%perImage == 0 {
			if m != nil {
				m.stop()
				if t.Failed() {
					t.FailNow()
				}
				os.Remove(m.img)
			}
			m = newMount(t)
			rounds = nil
		}
		r := &kill9Round{iter: it, dir: filepath.Join(m.dir, fmt.Sprintf("round%03d", it))}
		delay := time.Duration(50+rng.IntN(451)) * time.Millisecond
		r.run(t, m, rng.Uint64(), delay)
		if t.Failed() {
			t.FailNow()
		}
		rounds = append(rounds, r)
		// The crashed image, as fsck recovers it: consistent already.
		fsck(t, m.img)
		m.start()
		for _, old := range rounds {
			old.verify(t, m)
		}
		if t.Failed() {
			t.Fatalf("round %d (seed %d): files are wrong after the crash and remount; txfs stderr:\n%s", it, seed, m.stderr())
		}
		t.Logf("round %d: SIGKILL after %v: %d files fsynced, file %d had %d of %d bytes on disk",
			it, delay, r.synced, r.synced, r.partial, len(r.content(r.synced)))
		if (it+1)%perImage != 0 && it+1 < iters {
			// Unmount cleanly, fsck, mount again for the next round.
			m.remount()
		}
	}
}

// kill9Round is one workload killed by SIGKILL.
type kill9Round struct {
	iter int
	dir  string
	seed uint64
	// synced is the number of files, from file 0, whose Sync returned nil.
	synced int
	// partial is the length seen on the first remount of file synced (the
	// one being written at the kill), or -1 if it did not exist.
	partial  int
	verified bool
}

// content is what file i holds: deterministic, different for every round
// and file, from 0 to 192 KiB long.
func (r *kill9Round) content(i int) []byte {
	g := rand.New(rand.NewPCG(r.seed, uint64(i)))
	n := g.IntN(64 << 10)
	if g.IntN(8) == 0 {
		n += 128 << 10
	}
	b := make([]byte, n)
	for j := 0; j+8 <= n; j += 8 {
		v := g.Uint64()
		for k := 0; k < 8; k++ {
			b[j+k] = byte(v >> (8 * k))
		}
	}
	for j := n &^ 7; j < n; j++ {
		b[j] = byte(g.Uint32())
	}
	return b
}

func (r *kill9Round) name(i int) string { return filepath.Join(r.dir, fmt.Sprintf("f%05d", i)) }

// run starts the workload, kills the daemon after delay and unmounts the
// dead mount.
func (r *kill9Round) run(t *testing.T, m *mounted, seed uint64, delay time.Duration) {
	t.Helper()
	r.seed = seed
	chunks := rand.New(rand.NewPCG(seed, 1))
	var werr error
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := os.Mkdir(r.dir, 0o755); err != nil {
			werr = err
			return
		}
		for i := 0; i < 100000 && !stop.Load(); i++ {
			want := r.content(i)
			f, err := os.OpenFile(r.name(i), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				werr = err
				return
			}
			for off := 0; off < len(want); {
				n := min(len(want)-off, 1+chunks.IntN(48<<10))
				if _, err := f.Write(want[off : off+n]); err != nil {
					f.Close()
					werr = err
					return
				}
				off += n
			}
			if err := f.Sync(); err != nil {
				f.Close()
				werr = err
				return
			}
			r.synced = i + 1
			if err := f.Close(); err != nil {
				werr = err
				return
			}
		}
	}()
	time.Sleep(delay)
	stop.Store(true)
	m.killOnly()
	// Let the workload see the dead mount (ENOTCONN) or the stop flag
	// before the mount goes: after the unmount its paths would name the
	// empty directory underneath.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(exitTimeout):
		_ = detach(m.dir)
		t.Fatalf("round %d: the workload is still blocked %v after the daemon died", r.iter, exitTimeout)
	}
	m.detachDead()
	// The workload must have been stopped by the kill, not by an error of
	// its own before it.
	if werr != nil && !isDeadMountErr(werr) {
		t.Fatalf("round %d: the workload failed before the kill: %v\ntxfs stderr:\n%s", r.iter, werr, strings.Join(m.logs, "\n"))
	}
	if werr == nil {
		t.Logf("round %d: the workload finished before the kill", r.iter)
	}
}

// isDeadMountErr is an error of a call on a mount whose daemon died.
func isDeadMountErr(err error) bool {
	return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EINTR)
}

// verify checks the round's files on the mount: files before synced
// whole; file synced absent or a prefix of its content (and, on later
// checks, as it was on the first); no other file.
func (r *kill9Round) verify(t *testing.T, m *mounted) {
	t.Helper()
	ents, err := os.ReadDir(r.dir)
	if errors.Is(err, fs.ErrNotExist) && r.synced == 0 {
		if r.verified && r.partial >= 0 {
			t.Errorf("round %d: %s disappeared; it held file %d", r.iter, r.dir, r.synced)
		}
		r.partial, r.verified = -1, true
		return
	}
	if err != nil {
		t.Errorf("round %d: %d files were fsynced, but: %v", r.iter, r.synced, err)
		return
	}
	seen := map[int]bool{}
	for _, e := range ents {
		var i int
		if _, err := fmt.Sscanf(e.Name(), "f%05d", &i); err != nil || r.name(i) != filepath.Join(r.dir, e.Name()) {
			t.Errorf("round %d: unexpected entry %q", r.iter, e.Name())
			continue
		}
		seen[i] = true
		if i > r.synced {
			t.Errorf("round %d: file %d exists, but only files 0..%d were fsynced and %d was being written",
				r.iter, i, r.synced-1, r.synced)
		}
	}
	for i := 0; i < r.synced; i++ {
		got, err := os.ReadFile(r.name(i))
		if err != nil {
			t.Errorf("round %d: file %d was fsynced, but: %v", r.iter, i, err)
			continue
		}
		if want := r.content(i); !bytes.Equal(got, want) {
			t.Errorf("round %d: file %d was fsynced with %d bytes, now it has %d: %s",
				r.iter, i, len(want), len(got), firstDiff(got, want))
		}
	}
	// The file being written at the kill.
	got, err := os.ReadFile(r.name(r.synced))
	n := -1
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		t.Errorf("round %d: reading file %d (being written at the kill): %v", r.iter, r.synced, err)
		return
	default:
		n = len(got)
		want := r.content(r.synced)
		if len(got) > len(want) || !bytes.Equal(got, want[:len(got)]) {
			t.Errorf("round %d: file %d (being written at the kill) is not a prefix of its content: %d of %d bytes, %s",
				r.iter, r.synced, len(got), len(want), firstDiff(got, want))
		}
	}
	if r.verified && n != r.partial {
		t.Errorf("round %d: file %d (being written at the first kill) had %d bytes after that crash, now %d",
			r.iter, r.synced, r.partial, n)
	}
	r.partial, r.verified = n, true
}

// firstDiff describes where got and want first differ.
func firstDiff(got, want []byte) string {
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			zero := len(bytes.Trim(got[i:min(len(got), i+4096)], "\x00")) == 0
			return fmt.Sprintf("first difference at byte %d (got %#02x, want %#02x; zeros from there: %v)", i, got[i], want[i], zero)
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("same bytes up to the shorter length %d", min(len(got), len(want)))
	}
	return "identical"
}

// TestSecondMountRefused checks that the image lock keeps a second txfs
// mount (and mkfs.txfs, and fsck.txfs) off a mounted image, at once and
// naming the holder.
func TestSecondMountRefused(t *testing.T) {
	m := newMount(t)
	if err := os.WriteFile(filepath.Join(m.dir, "canary"), []byte("still here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	holder := fmt.Sprintf("held by process %d", m.pid())

	dir2 := filepath.Join(t.TempDir(), "mnt2")
	if err := os.Mkdir(dir2, 0o755); err != nil {
		t.Fatal(err)
	}
	mountDirsMu.Lock()
	mountDirs[dir2] = true
	mountDirsMu.Unlock()
	start := time.Now()
	code, out := runTimeout(t, 10*time.Second, bin("txfs"), "mount", m.img, dir2)
	took := time.Since(start)
	if e, ok := findMount(dir2); ok {
		_ = detach(dir2)
		t.Errorf("the second mount mounted the image: %+v", e)
	}
	switch {
	case code == 0 || code == -1:
		t.Errorf("second txfs mount of %s: exit %d (want 3), output:\n%s", m.img, code, out)
	case code != 3:
		t.Errorf("second txfs mount of %s: exit %d, want 3 (documented for an image in use); output:\n%s", m.img, code, out)
	}
	if took > 5*time.Second {
		t.Errorf("second txfs mount took %v to fail, want at once", took)
	}
	if !strings.Contains(out, holder) {
		t.Errorf("second txfs mount: message does not name the holder (want %q):\n%s", holder, out)
	}

	// fsck.txfs refuses a mounted image: exit 8 (cannot be opened).
	code, out = runTimeout(t, 20*time.Second, bin("fsck.txfs"), m.img)
	if code != 8 {
		t.Errorf("fsck.txfs of the mounted image: exit %d, want 8; output:\n%s", code, out)
	}
	if !strings.Contains(out, holder) {
		t.Errorf("fsck.txfs of the mounted image: message does not name the holder (want %q):\n%s", holder, out)
	}

	// Not even mkfs.txfs --force may format it under the mount.
	code, out = runTimeout(t, 20*time.Second, bin("mkfs.txfs"), "--force", "--size", "256M", m.img)
	if code == 0 {
		t.Errorf("mkfs.txfs --force formatted the mounted image; output:\n%s", out)
	} else if !strings.Contains(out, holder) {
		t.Errorf("mkfs.txfs --force of the mounted image: message does not name the holder (want %q):\n%s", holder, out)
	}

	// The first mount is unharmed.
	got, err := os.ReadFile(filepath.Join(m.dir, "canary"))
	if err != nil || string(got) != "still here\n" {
		t.Errorf("the first mount after the refused ones: canary %q, %v", got, err)
	}
	if m.d.exited() {
		t.Fatalf("the first txfs mount exited: %v; stderr:\n%s", m.d.err, m.stderr())
	}
	m.remount()
	if got, err := os.ReadFile(filepath.Join(m.dir, "canary")); err != nil || string(got) != "still here\n" {
		t.Errorf("after a remount: canary %q, %v", got, err)
	}
}

// runTimeout runs a program and returns its exit status (-1 when killed)
// and combined output.
func runTimeout(t *testing.T, timeout time.Duration, name string, args ...string) (int, string) {
	t.Helper()
	return runFiles(t, timeout, nil, name, args...)
}

// runFiles is runTimeout with extra open files for the program, its
// descriptors 3, 4, ...
func runFiles(t *testing.T, timeout time.Duration, files []*os.File, name string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out lockedBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.ExtraFiles = files
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err == nil {
			return 0, out.String()
		} else if errors.As(err, &ee) {
			return ee.ExitCode(), out.String()
		}
		t.Fatalf("%s: %v", name, err)
	case <-time.After(timeout):
		// A Go program prints its goroutines on SIGQUIT.
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		return -1, out.String() + fmt.Sprintf("\n(%s %s: killed after %v)", name, strings.Join(args, " "), timeout)
	}
	return -1, ""
}

// TestSigtermClean checks /proc/mounts while mounted, that SIGTERM with a
// file open leaves the mount serving, and that SIGTERM then unmounts,
// exits 0 and leaves a clean image with the data in it.
func TestSigtermClean(t *testing.T) {
	m := newMount(t)
	e, ok := findMount(m.dir)
	if !ok {
		t.Fatalf("%s is not in /proc/mounts after \"ready\"", m.dir)
	}
	if e.Type != "fuse.txfs" || e.Source != m.img {
		t.Errorf("/proc/mounts: %s type %s source %q; want type fuse.txfs source %q", m.dir, e.Type, e.Source, m.img)
	}

	data := bytes.Repeat([]byte("sigterm\n"), 100000)
	if err := os.WriteFile(filepath.Join(m.dir, "data"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	// Busy: a file is open, so SIGTERM is refused and txfs keeps serving.
	f, err := os.Open(filepath.Join(m.dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(m.stderr(), "busy") && time.Now().Before(deadline) && !m.d.exited() {
		time.Sleep(20 * time.Millisecond)
	}
	if m.d.exited() {
		f.Close()
		t.Fatalf("SIGTERM with a file open: txfs exited (%v), want it to keep serving; stderr:\n%s", m.d.err, m.stderr())
	}
	if !strings.Contains(m.stderr(), "busy") {
		t.Errorf("SIGTERM with a file open: txfs did not say the mount is busy; stderr:\n%s", m.stderr())
	}
	buf := make([]byte, 8)
	if _, err := f.ReadAt(buf, 8); err != nil || string(buf) != "sigterm\n" {
		t.Errorf("reading the open file after the refused SIGTERM: %q, %v", buf, err)
	}
	f.Close()
	if _, ok := findMount(m.dir); !ok {
		t.Fatalf("%s vanished from /proc/mounts after the refused SIGTERM", m.dir)
	}

	// Now SIGTERM unmounts, checkpoints and exits 0.
	d := m.d
	var exitErr error
	exited := false
	for try := 0; try < 50 && !exited; try++ {
		// The kernel may release the file a moment after Close.
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			break
		}
		exited = d.waitExit(200 * time.Millisecond)
	}
	if !exited && !d.waitExit(exitTimeout) {
		t.Fatalf("txfs did not exit within %v of SIGTERM; stderr:\n%s", exitTimeout, d.stderr.String())
	}
	exitErr = d.err
	if exitErr != nil {
		t.Errorf("txfs after SIGTERM: %v, want exit 0; stderr:\n%s", exitErr, d.stderr.String())
	}
	if e, ok := findMount(m.dir); ok {
		_ = detach(m.dir)
		t.Errorf("%s is still in /proc/mounts after txfs exited: %+v", m.dir, e)
	}
	m.record()
	m.d = nil
	m.fsck()

	m.start()
	got, err := os.ReadFile(filepath.Join(m.dir, "data"))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("after SIGTERM and a remount: data has %d bytes (want %d), %v", len(got), len(data), err)
	}
}

// repoSnapshot copies the repository, without .git, into a temporary
// directory once per test (the tree changes under other people's hands;
// the copy does not). Files that vanish during the copy are left out.
func repoSnapshot(t *testing.T) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "repo")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == ".git" {
			continue
		}
		if out, err := exec.Command("cp", "-a", filepath.Join(root, e.Name()), dst).CombinedOutput(); err != nil {
			t.Logf("snapshot of the repository: cp -a %s: %v: %s (continuing)", e.Name(), err, out)
		}
	}
	return dst
}

// sourceTree makes the tree TestCopyTreeAndDiff copies: the repository,
// Go's crypto sources (thousands of files, about 16 MB, with testdata)
// and makeEdgeTree.
func sourceTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", repoSnapshot(t), filepath.Join(src, "repo")).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		crypto := filepath.Join(strings.TrimSpace(string(out)), "src", "crypto")
		if _, err := os.Stat(crypto); err == nil {
			if out, err := exec.Command("cp", "-a", crypto, filepath.Join(src, "crypto")).CombinedOutput(); err != nil {
				t.Fatalf("cp -a %s: %v\n%s", crypto, err, out)
			}
		}
	}
	makeEdgeTree(t, filepath.Join(src, "edge"))
	return src
}

// makeEdgeTree makes a small tree of the unusual: empty files and
// directories, long names, deep paths, hard links, symlinks (dangling
// too), odd modes, old and fine-grained times, a big file and a sparse
// one.
func makeEdgeTree(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("making the edge tree: %v", err)
		}
	}
	p := func(elem ...string) string { return filepath.Join(append([]string{dir}, elem...)...) }
	must(os.MkdirAll(p("emptydir"), 0o755))
	must(os.WriteFile(p("empty"), nil, 0o644))
	long := strings.Repeat("n", 255)
	must(os.WriteFile(p(long), []byte("a name of 255 bytes\n"), 0o644))
	must(os.WriteFile(p("ünïcödé ☃ with spaces"), []byte("utf-8\n"), 0o644))
	deep := p("deep")
	for i := 0; i < 40; i++ {
		deep = filepath.Join(deep, fmt.Sprintf("d%02d", i))
	}
	must(os.MkdirAll(deep, 0o755))
	must(os.WriteFile(filepath.Join(deep, "leaf"), []byte("deep\n"), 0o644))
	many := p("many")
	must(os.Mkdir(many, 0o755))
	for i := 0; i < 600; i++ {
		must(os.WriteFile(filepath.Join(many, fmt.Sprintf("entry-%04d-%s", i, strings.Repeat("x", i%50))), []byte(strconv.Itoa(i)), 0o644))
	}

	g := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 9<<20+12345)
	for i := range big {
		big[i] = byte(g.Uint32())
	}
	must(os.WriteFile(p("big"), big, 0o644))
	sp, err := os.Create(p("sparse"))
	must(err)
	_, err = sp.WriteAt([]byte("start"), 0)
	must(err)
	_, err = sp.WriteAt([]byte("middle"), 3<<20+17)
	must(err)
	must(sp.Truncate(20 << 20))
	must(sp.Close())

	must(os.WriteFile(p("linked"), []byte("two names\n"), 0o644))
	must(os.Link(p("linked"), p("emptydir-sibling-link")))
	must(os.Symlink("linked", p("symlink")))
	must(os.Symlink("../edge/deep/d00", p("dirsymlink")))
	must(os.Symlink("does/not/exist", p("dangling")))
	must(os.Symlink(strings.Repeat("x/", 1000)+"y", p("longsymlink")))

	for name, mode := range map[string]os.FileMode{
		"mode0600": 0o600, "mode0755": 0o755, "mode0444": 0o444, "mode0000": 0,
		"setuid": 0o755 | os.ModeSetuid, "setgid": 0o755 | os.ModeSetgid,
	} {
		must(os.WriteFile(p(name), []byte(name+"\n"), 0o644))
		must(os.Chmod(p(name), mode))
	}
	must(os.Mkdir(p("sticky"), 0o755))
	must(os.Chmod(p("sticky"), 0o777|os.ModeSticky))
	must(os.WriteFile(p("owned"), []byte("owned by 1234:5678\n"), 0o644))
	must(os.Lchown(p("owned"), 1234, 5678))

	must(os.Chtimes(p("empty"), time.Unix(1, 0), time.Unix(1, 0)))
	must(os.Chtimes(p("big"), time.Unix(1700000000, 123456789), time.Unix(1700000000, 123456789)))
	must(os.Chtimes(p("emptydir"), time.Unix(946684800, 999999999), time.Unix(946684800, 999999999)))
}

// compareTrees compares what diff -r does not: the names on both sides,
// types, modes, owners, sizes, link counts of files, symlink targets and
// modification times (to the nanosecond).
func compareTrees(t *testing.T, a, b string, m *mounted) {
	t.Helper()
	names := func(root string) map[string]bool {
		set := map[string]bool{}
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			set[rel] = true
			return nil
		})
		if err != nil {
			t.Fatalf("walking %s: %v\ntxfs stderr:\n%s", root, err, m.stderr())
		}
		return set
	}
	na, nb := names(a), names(b)
	var diffs []string
	for rel := range na {
		if !nb[rel] {
			diffs = append(diffs, fmt.Sprintf("%s: missing from %s", rel, b))
		}
	}
	for rel := range nb {
		if !na[rel] {
			diffs = append(diffs, fmt.Sprintf("%s: only in %s", rel, b))
		}
	}
	for rel := range na {
		if !nb[rel] {
			continue
		}
		pa, pb := filepath.Join(a, rel), filepath.Join(b, rel)
		var sa, sb syscall.Stat_t
		if err := syscall.Lstat(pa, &sa); err != nil {
			diffs = append(diffs, fmt.Sprintf("%s: %v", pa, err))
			continue
		}
		if err := syscall.Lstat(pb, &sb); err != nil {
			diffs = append(diffs, fmt.Sprintf("%s: %v", pb, err))
			continue
		}
		isDir := sa.Mode&syscall.S_IFMT == syscall.S_IFDIR
		if sa.Mode != sb.Mode {
			diffs = append(diffs, fmt.Sprintf("%s: mode %#o, want %#o", rel, sb.Mode, sa.Mode))
		}
		if sa.Uid != sb.Uid || sa.Gid != sb.Gid {
			diffs = append(diffs, fmt.Sprintf("%s: owner %d:%d, want %d:%d", rel, sb.Uid, sb.Gid, sa.Uid, sa.Gid))
		}
		if !isDir && sa.Size != sb.Size {
			diffs = append(diffs, fmt.Sprintf("%s: size %d, want %d", rel, sb.Size, sa.Size))
		}
		if !isDir && sa.Nlink != sb.Nlink {
			diffs = append(diffs, fmt.Sprintf("%s: %d links, want %d", rel, sb.Nlink, sa.Nlink))
		}
		if sa.Mtim != sb.Mtim {
			diffs = append(diffs, fmt.Sprintf("%s: mtime %d.%09d, want %d.%09d", rel, sb.Mtim.Sec, sb.Mtim.Nsec, sa.Mtim.Sec, sa.Mtim.Nsec))
		}
		if sa.Mode&syscall.S_IFMT == syscall.S_IFLNK {
			la, _ := os.Readlink(pa)
			lb, err := os.Readlink(pb)
			if la != lb || err != nil {
				diffs = append(diffs, fmt.Sprintf("%s: symlink to %q (%v), want %q", rel, lb, err, la))
			}
		}
	}
	if len(diffs) > 0 {
		// Group the same difference on many names: "what (N names, e.g. path)".
		sort.Strings(diffs)
		count := map[string]int{}
		example := map[string]string{}
		var kinds []string
		for _, d := range diffs {
			path, what, _ := strings.Cut(d, ": ")
			if count[what] == 0 {
				kinds = append(kinds, what)
				example[what] = path
			}
			count[what]++
		}
		var lines []string
		for _, k := range kinds {
			if count[k] == 1 {
				lines = append(lines, example[k]+": "+k)
			} else {
				lines = append(lines, fmt.Sprintf("%s (%d names, e.g. %s)", k, count[k], example[k]))
			}
		}
		if len(lines) > 40 {
			lines = append(lines[:40], fmt.Sprintf("... and %d more", len(lines)-40))
		}
		t.Errorf("%s and %s differ in %d of %d names:\n\t%s", a, b, len(diffs), len(na), strings.Join(lines, "\n\t"))
	}
}
