package tests

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	txfuse "github.com/txfs/txfs/fuse"
)

// Timeouts.
const (
	readyTimeout = 20 * time.Second // mount until "ready"
	exitTimeout  = 20 * time.Second // unmount or signal until exit
	cmdTimeout   = 3 * time.Minute  // one program run on the mount
	toolTimeout  = 2 * time.Minute  // mkfs.txfs, fsck.txfs
)

var (
	// binDir holds txfs, mkfs.txfs and fsck.txfs, built by TestMain.
	binDir string
	// skipReason is why the mount tests cannot run here, or "".
	skipReason string

	// mountDirs are the mount points of this run, for the leak check at
	// the end of TestMain.
	mountDirsMu sync.Mutex
	mountDirs   = map[string]bool{}
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		skipReason = fmt.Sprintf("no /dev/fuse: %v", err)
	} else if os.Geteuid() != 0 {
		skipReason = fmt.Sprintf("not root (euid %d): the tests mount with mount(2) and kill -9 daemons", os.Geteuid())
	}

	tmp, err := os.MkdirTemp("", "txfs-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if skipReason == "" {
		binDir = filepath.Join(tmp, "bin")
		if err := buildBinaries(binDir); err != nil {
			fmt.Fprintln(os.Stderr, "tests: building the binaries:", err)
			return 1
		}
	} else {
		fmt.Fprintln(os.Stderr, "tests: skipping the mount tests:", skipReason)
	}

	code := m.Run()

	if left := leftMounts(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "tests: FAIL: txfs mounts left behind by this run:\n\t%s\n",
			strings.Join(left, "\n\t"))
		// Do not leave them for the next run either.
		for _, l := range left {
			_ = syscall.Unmount(strings.Fields(l)[1], syscall.MNT_DETACH)
		}
		if code == 0 {
			code = 1
		}
	}
	return code
}

// repoRoot is the module root: the parent of this package's directory
// (go test runs the test binary in the package's directory).
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	root := filepath.Dir(wd)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("no go.mod in %s (the tests must run in the tests directory): %v", root, err)
	}
	return root, nil
}

// buildBinaries builds ./cmd/... (normal builds, not -race) into dir.
func buildBinaries(dir string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/...")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build -o %s/ ./cmd/... in %s: %v\n%s", dir, root, err, out)
	}
	for _, b := range []string{"txfs", "mkfs.txfs", "fsck.txfs"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return fmt.Errorf("go build made no %s: %v", b, err)
		}
	}
	return nil
}

func bin(name string) string { return filepath.Join(binDir, name) }

// mountEntry is one line of /proc/mounts.
type mountEntry struct {
	Source, Dir, Type, Options string
}

func readMounts() ([]mountEntry, error) {
	data, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return nil, err
	}
	var ms []mountEntry
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		ms = append(ms, mountEntry{txfuse.UnescapeMountPath(f[0]), txfuse.UnescapeMountPath(f[1]), f[2], f[3]})
	}
	return ms, nil
}

// findMount returns the last (topmost) mount on dir.
func findMount(dir string) (mountEntry, bool) {
	ms, err := readMounts()
	if err != nil {
		return mountEntry{}, false
	}
	var found mountEntry
	ok := false
	for _, m := range ms {
		if m.Dir == dir {
			found, ok = m, true
		}
	}
	return found, ok
}

// leftMounts lists the fuse.txfs mounts on this run's mount points.
func leftMounts() []string {
	ms, err := readMounts()
	if err != nil {
		return []string{fmt.Sprintf("(cannot read /proc/mounts: %v)", err)}
	}
	mountDirsMu.Lock()
	defer mountDirsMu.Unlock()
	var left []string
	for _, m := range ms {
		if m.Type == "fuse.txfs" && mountDirs[m.Dir] {
			left = append(left, fmt.Sprintf("%s %s %s %s", m.Source, m.Dir, m.Type, m.Options))
		}
	}
	return left
}

// lockedBuffer is a bytes.Buffer safe for a process's writer and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// daemon is one "txfs mount" process.
type daemon struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // cmd.Wait's result, once done is closed
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// waitExit waits up to timeout for the process to exit.
func (d *daemon) waitExit(timeout time.Duration) bool {
	select {
	case <-d.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// exitCode is the exit status, or -1 (killed by a signal, or not exited).
func (d *daemon) exitCode() int {
	if !d.exited() {
		return -1
	}
	if d.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(d.err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// mounted is an image mounted by a txfs process.
type mounted struct {
	t    *testing.T
	img  string
	dir  string
	opts []string
	d    *daemon

	// logs collects the stderr of every daemon of the image, for failures.
	logs []string
}

// mountImage formats a fresh image, mounts it with "txfs mount" in a
// subprocess and waits until it is ready. Cleanup unmounts it if it still
// is, fails the test if the daemon does not exit cleanly, and runs
// fsck.txfs on the image, failing the test unless it is clean. stop does
// the same at once (and cleanup then nothing more).
func mountImage(t *testing.T, opts ...string) (dir string, img string, stop func()) {
	m := newMount(t, opts...)
	return m.dir, m.img, m.stop
}

// newMount is mountImage returning the whole mount, for the tests that
// signal or kill the daemon.
func newMount(t *testing.T, opts ...string) *mounted {
	t.Helper()
	return newSizedMount(t, "256M", opts...)
}

// newSizedMount is newMount with an image of size bytes (mkfs.txfs --size).
func newSizedMount(t *testing.T, size string, opts ...string) *mounted {
	t.Helper()
	if skipReason != "" {
		t.Skip("skipping: " + skipReason)
	}
	base := t.TempDir()
	dir := filepath.Join(base, "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(base, "txfs.img")
	mkfs(t, img, size)
	return mountExisting(t, img, dir, opts...)
}

// newMountOn is newMount with the image path and an existing mount point.
func newMountOn(t *testing.T, img, dir string, opts ...string) *mounted {
	t.Helper()
	return newMountSized(t, img, dir, "256M", opts...)
}

// newMountSized is newMountOn with an image of size bytes (mkfs.txfs
// --size).
func newMountSized(t *testing.T, img, dir, size string, opts ...string) *mounted {
	t.Helper()
	if skipReason != "" {
		t.Skip("skipping: " + skipReason)
	}
	mkfs(t, img, size)
	return mountExisting(t, img, dir, opts...)
}

// mountExisting mounts an image that is already formatted, with the
// cleanup of mountImage.
func mountExisting(t *testing.T, img, dir string, opts ...string) *mounted {
	t.Helper()
	if skipReason != "" {
		t.Skip("skipping: " + skipReason)
	}
	m := &mounted{t: t, img: img, dir: dir, opts: opts}
	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			m.dumpLogs()
		}
	})
	m.start()
	return m
}

// mkfs formats a fresh image of size bytes at img.
func mkfs(t *testing.T, img, size string) {
	t.Helper()
	if code, out := runTimeout(t, toolTimeout, bin("mkfs.txfs"), "--size", size, img); code != 0 {
		t.Fatalf("mkfs.txfs --size %s %s: exit %d\n%s", size, img, code, out)
	}
}

// startDaemon starts "txfs mount --ready-fd 3 [-o opts] img dir" and waits
// for "ready". It fails the test (with the daemon's stderr) if the daemon
// exits first or is not ready in time, and skips it if the mount is not
// permitted.
func startDaemon(t *testing.T, img, dir string, opts []string) *daemon {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	args := []string{"mount", "--ready-fd", "3"}
	if len(opts) > 0 {
		args = append(args, "-o", strings.Join(opts, ","))
	}
	args = append(args, img, dir)
	d := &daemon{stderr: &lockedBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(bin("txfs"), args...)
	d.cmd.Stdout = d.stderr
	d.cmd.Stderr = d.stderr
	d.cmd.ExtraFiles = []*os.File{w}
	if err := d.cmd.Start(); err != nil {
		w.Close()
		t.Fatalf("starting txfs %s: %v", strings.Join(args, " "), err)
	}
	w.Close()
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		mountDirsMu.Lock()
		mountDirs[real] = true
		mountDirs[dir] = true
		mountDirsMu.Unlock()
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if s == "ready\n" {
			return d
		}
		// The write end closed without "ready": the daemon exited (or
		// closed fd 3 early).
		if !d.waitExit(5 * time.Second) {
			_ = d.cmd.Process.Kill()
			<-d.done
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
			t.Fatalf("txfs %s: fd 3 said %q instead of \"ready\"; stderr:\n%s",
				strings.Join(args, " "), s, d.stderr.String())
		}
		msg := d.stderr.String()
		lower := strings.ToLower(msg)
		if strings.Contains(lower, "operation not permitted") || strings.Contains(lower, "permission denied") {
			t.Skipf("skipping: mounting is not permitted here: txfs %s: %v\n%s",
				strings.Join(args, " "), d.err, msg)
		}
		t.Fatalf("txfs %s exited before it was ready (%v); stderr:\n%s",
			strings.Join(args, " "), d.err, msg)
	case <-time.After(readyTimeout):
		_ = d.cmd.Process.Signal(syscall.SIGQUIT) // goroutine dump
		if !d.waitExit(5 * time.Second) {
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		t.Fatalf("txfs %s: not ready after %v; stderr (with the goroutines):\n%s",
			strings.Join(args, " "), readyTimeout, d.stderr.String())
	}
	panic("unreachable")
}

// start mounts the image (again).
func (m *mounted) start() {
	m.t.Helper()
	if m.d != nil && !m.d.exited() {
		m.t.Fatalf("start: %s is still served by process %d", m.dir, m.d.cmd.Process.Pid)
	}
	m.d = startDaemon(m.t, m.img, m.dir, m.opts)
	m.logs = append(m.logs, "")
}

// record keeps the current daemon's stderr for dumpLogs.
func (m *mounted) record() {
	if m.d != nil && len(m.logs) > 0 {
		m.logs[len(m.logs)-1] = m.d.stderr.String()
	}
}

// stderr is the current daemon's stderr.
func (m *mounted) stderr() string {
	if m.d == nil {
		return ""
	}
	return m.d.stderr.String()
}

func (m *mounted) pid() int { return m.d.cmd.Process.Pid }

func (m *mounted) dumpLogs() {
	m.record()
	for i, l := range m.logs {
		if strings.TrimSpace(l) != "" {
			m.t.Logf("stderr of txfs mount #%d of %s:\n%s", i+1, m.img, l)
		}
	}
}

func (m *mounted) isMounted() bool {
	e, ok := findMount(m.dir)
	return ok && e.Type == "fuse.txfs"
}

// detach lazily unmounts a dead mount: fusermount3 -u -z if there is one,
// else umount2(MNT_DETACH).
func detach(dir string) error {
	if p, err := exec.LookPath("fusermount3"); err == nil {
		err := exec.Command(p, "-u", "-z", dir).Run()
		if _, mounted := findMount(dir); err == nil || !mounted {
			return nil
		}
	}
	err := syscall.Unmount(dir, syscall.MNT_DETACH)
	if err != nil {
		if _, mounted := findMount(dir); !mounted {
			return nil
		}
	}
	return err
}

// unmount unmounts the image (txfs umount, else SIGTERM), waits for the
// daemon to exit and fails the test unless it exits 0. It returns false if
// it failed.
func (m *mounted) unmount() bool {
	t := m.t
	t.Helper()
	d := m.d
	if d == nil {
		return true
	}
	defer m.record()
	if d.exited() {
		if m.isMounted() {
			_ = detach(m.dir)
		}
		if d.exitCode() != 0 {
			t.Errorf("txfs mount %s exited by itself before the unmount: %v; stderr:\n%s", m.img, d.err, d.stderr.String())
			return false
		}
		return true
	}
	if m.isMounted() {
		if code, out := runTimeout(t, exitTimeout, bin("txfs"), "umount", m.dir); code != 0 {
			t.Logf("txfs umount %s: exit %d: %s (sending SIGTERM instead)", m.dir, code, out)
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
		}
	} else {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
	}
	if !d.waitExit(exitTimeout) {
		_ = d.cmd.Process.Signal(syscall.SIGQUIT) // goroutine dump
		if !d.waitExit(5 * time.Second) {
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		_ = detach(m.dir)
		t.Errorf("txfs mount %s did not exit within %v of the unmount; stderr (with the goroutines):\n%s",
			m.img, exitTimeout, d.stderr.String())
		return false
	}
	if m.isMounted() {
		_ = detach(m.dir)
		t.Errorf("txfs mount %s exited (%v) but %s is still mounted; stderr:\n%s", m.img, d.err, m.dir, d.stderr.String())
		return false
	}
	if d.err != nil {
		t.Errorf("txfs mount %s: exit status after the unmount: %v (want 0); stderr:\n%s", m.img, d.err, d.stderr.String())
		return false
	}
	return true
}

// stop unmounts (if still mounted) and checks the image with fsck.txfs.
// It is idempotent.
func (m *mounted) stop() {
	m.t.Helper()
	if m.d == nil {
		return
	}
	ok := m.unmount()
	m.d = nil
	if ok {
		m.fsck()
	}
}

// fsck runs fsck.txfs on the image and fails the test unless it exits 0.
func (m *mounted) fsck() {
	m.t.Helper()
	fsck(m.t, m.img)
}

func fsck(t *testing.T, img string) {
	t.Helper()
	if code, out := runTimeout(t, toolTimeout, bin("fsck.txfs"), img); code != 0 {
		t.Errorf("fsck.txfs %s: exit %d (want 0); output:\n%s", img, code, out)
	}
}

// remount unmounts cleanly (checking the exit and the image) and mounts
// again.
func (m *mounted) remount() {
	m.t.Helper()
	m.stop()
	if m.t.Failed() {
		m.t.FailNow()
	}
	m.start()
}

// kill9 kills the daemon with SIGKILL, waits for it and unmounts the dead
// mount. The image is left as the crash left it.
func (m *mounted) kill9() {
	m.t.Helper()
	m.killOnly()
	m.detachDead()
}

// killOnly kills the daemon with SIGKILL and waits for it to die. The dead
// mount stays: every call on it fails with ENOTCONN (once it is unmounted,
// the same paths would name the empty directory underneath instead).
func (m *mounted) killOnly() {
	t := m.t
	t.Helper()
	d := m.d
	if d.exited() {
		t.Fatalf("kill -9: txfs mount %s had already exited: %v; stderr:\n%s", m.img, d.err, d.stderr.String())
	}
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9 %d: %v", d.cmd.Process.Pid, err)
	}
	if !d.waitExit(exitTimeout) {
		t.Fatalf("txfs mount %s did not die within %v of SIGKILL", m.img, exitTimeout)
	}
	m.record()
	m.d = nil
}

// detachDead lazily unmounts the mount of a killed daemon.
func (m *mounted) detachDead() {
	t := m.t
	t.Helper()
	if err := detach(m.dir); err != nil {
		t.Fatalf("unmounting the dead mount %s: %v", m.dir, err)
	}
	if m.isMounted() {
		t.Fatalf("%s is still mounted after the lazy unmount", m.dir)
	}
}

// crashAndRemount kills the daemon with SIGKILL, unmounts the dead mount
// and mounts the same image again (which recovers it).
func (m *mounted) crashAndRemount() {
	m.t.Helper()
	m.kill9()
	m.start()
}

// run runs a program with its working directory in dir and returns its
// combined output; it fails the test (with the output and the daemon's
// stderr) if the program fails or takes longer than cmdTimeout. On a
// timeout the daemon is sent SIGQUIT first, so its stderr shows where it
// hangs.
func (m *mounted) run(dir string, name string, args ...string) string {
	m.t.Helper()
	out, err := m.runErr(dir, name, args...)
	if err != nil {
		m.t.Fatalf("%s %s (in %s): %v\noutput:\n%s\ntxfs stderr:\n%s",
			name, strings.Join(args, " "), dir, err, out, m.stderr())
	}
	return out
}

// runErr is run without the failure.
func (m *mounted) runErr(dir string, name string, args ...string) (string, error) {
	return m.runEnv(dir, nil, name, args...)
}

// runEnv is runErr with more environment variables.
func (m *mounted) runEnv(dir string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "LC_ALL=C", "TZ=UTC"), env...)
	var out lockedBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	d := m.d
	cmd.Cancel = func() error {
		if d != nil && !d.exited() {
			// Where is the daemon stuck? (This also kills it, and the
			// dead mount then fails the program's pending calls.)
			_ = d.cmd.Process.Signal(syscall.SIGQUIT)
		}
		return cmd.Process.Kill()
	}
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		if d != nil {
			d.waitExit(5 * time.Second)
		}
		err = fmt.Errorf("timed out after %v (%v)", cmdTimeout, err)
	}
	return out.String(), err
}
