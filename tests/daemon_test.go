package tests

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/txfs/txfs/control"
	"golang.org/x/sys/unix"
)

// Tests of txfs as a service: txfs mount --daemon (a supervisor that
// restarts the server), the systemd notification protocol of the
// foreground mount, mount -t fuse.txfs (mount.fuse3 running "txfs IMAGE
// DIR -o OPTIONS") and the systemd unit.

// becomeSubreaper makes this process the parent of the orphans of its
// descendants: the supervisor of txfs mount --daemon, whose parent exits
// once the mount is ready, so that the tests can wait for it and see its
// exit status.
var becomeSubreaper = sync.OnceValue(func() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
})

// supervisor is the supervisor process of a txfs mount --daemon.
type supervisor struct {
	t        *testing.T
	pid      int
	dir, img string
	log      string
	done     chan struct{} // closed once it has exited
	status   syscall.WaitStatus
}

// adoptSupervisor waits in the background for the supervisor whose pid is
// in pidFile (a child of this process, as it is a subreaper), and stops it
// at the end of the test if it still runs, failing the test if it leaves
// a mount.
func adoptSupervisor(t *testing.T, pidFile, logFile, img, dir string) *supervisor {
	t.Helper()
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("the pid file holds %q", data)
	}
	s := &supervisor{t: t, pid: pid, img: img, dir: dir, log: logFile, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			_, err := syscall.Wait4(pid, &s.status, 0, nil)
			if err != syscall.EINTR {
				return
			}
		}
	}()
	t.Cleanup(func() {
		if !s.exited(0) {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			if !s.exited(exitTimeout) {
				for _, c := range children(pid) {
					_ = syscall.Kill(c, syscall.SIGKILL)
				}
				_ = syscall.Kill(pid, syscall.SIGKILL)
				<-s.done
				_ = detach(dir)
				t.Errorf("the supervisor %d did not exit within %v of SIGTERM", pid, exitTimeout)
			}
		}
		if len(mountinfoOn(t, dir)) > 0 {
			_ = detach(dir)
			t.Errorf("%s is still mounted after the supervisor exited", dir)
		}
		if t.Failed() {
			data, _ := os.ReadFile(logFile)
			t.Logf("log of the daemon (%s):\n%s", logFile, data)
		}
	})
	return s
}

// exited waits up to timeout for the supervisor to exit.
func (s *supervisor) exited(timeout time.Duration) bool {
	select {
	case <-s.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// waitExit waits for the supervisor to exit and returns its exit status
// (-1 if killed by a signal).
func (s *supervisor) waitExit() int {
	s.t.Helper()
	if !s.exited(exitTimeout) {
		s.t.Fatalf("the supervisor %d did not exit within %v", s.pid, exitTimeout)
	}
	if s.status.Exited() {
		return s.status.ExitStatus()
	}
	return -1
}

// stop sends SIGTERM to the supervisor; it must exit 0 and leave no mount.
func (s *supervisor) stop() {
	s.t.Helper()
	if err := syscall.Kill(s.pid, syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	if code := s.waitExit(); code != 0 {
		s.t.Errorf("the supervisor exited %d after SIGTERM, want 0", code)
	}
	if on := mountinfoOn(s.t, s.dir); len(on) > 0 {
		s.t.Errorf("the supervisor exited and left mounts on %s:\n%s", s.dir, strings.Join(on, "\n"))
	}
}

// children lists the child processes of pid (of all its threads).
func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var kids []int
	for _, f := range tasks {
		data, _ := os.ReadFile(f)
		for _, p := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(p); err == nil {
				kids = append(kids, n)
			}
		}
	}
	return kids
}

// server is the serving process of the supervisor: its only child. It
// waits for one other than not (a restart), serving a usable mount.
func (s *supervisor) server(not int) int {
	s.t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if s.exited(0) {
			s.t.Fatalf("the supervisor exited (%v) while waiting for its server", s.status)
		}
		if kids := children(s.pid); len(kids) == 1 && kids[0] != not && usable(s.dir) == nil {
			return kids[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("no server serves %s after %v (children of the supervisor: %v; %v)", s.dir, readyTimeout, children(s.pid), usable(s.dir))
	return 0
}

// usable checks that dir is a txfs mount that answers.
func usable(dir string) error {
	e, ok := findMount(dir)
	if !ok || e.Type != "fuse.txfs" {
		return fmt.Errorf("%s is not a txfs mount point", dir)
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Readdirnames(-1)
	return err
}

// daemonSetup formats an image and makes a mount point, a log and a pid
// file path in a temporary directory.
type daemonSetup struct {
	img, dir, log, pid string
}

func newDaemonSetup(t *testing.T) daemonSetup {
	t.Helper()
	if skipReason != "" {
		t.Skip("skipping: " + skipReason)
	}
	if err := becomeSubreaper(); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	base := t.TempDir()
	d := daemonSetup{
		img: filepath.Join(base, "txfs.img"),
		dir: filepath.Join(base, "mnt"),
		log: filepath.Join(base, "log", "txfs.log"),
		pid: filepath.Join(base, "run", "txfs.pid"),
	}
	if err := os.Mkdir(d.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mountDirsMu.Lock()
	mountDirs[d.dir] = true
	mountDirsMu.Unlock()
	mkfs(t, d.img, "64M")
	return d
}

// start runs txfs mount --daemon, which must exit 0 with the mount
// usable, and returns its supervisor.
func (d daemonSetup) start(t *testing.T, opts ...string) *supervisor {
	t.Helper()
	args := append([]string{"mount", "--daemon", "--log", d.log, "--pid-file", d.pid}, opts...)
	args = append(args, d.img, d.dir)
	code, out := runTimeout(t, readyTimeout, bin("txfs"), args...)
	if code != 0 {
		log, _ := os.ReadFile(d.log)
		t.Fatalf("txfs %s: exit %d\n%s\nlog:\n%s", strings.Join(args, " "), code, out, log)
	}
	// Usable at once: no waiting.
	if err := usable(d.dir); err != nil {
		t.Errorf("txfs mount --daemon returned, but: %v", err)
	}
	return adoptSupervisor(t, d.pid, d.log, d.img, d.dir)
}

// TestDaemon: txfs mount --daemon returns once the mount is usable (with
// the options given: noexec here), with a
// supervisor in a session of its own, its input /dev/null, its output in
// the log, its pid in the pid file; SIGTERM to the supervisor unmounts
// (the server writes its checkpoint) and ends it with status 0, leaving no
// mount and no pid file.
func TestDaemon(t *testing.T) {
	d := newDaemonSetup(t)
	s := d.start(t, "-o", "noexec")
	if err := os.WriteFile(filepath.Join(d.dir, "f"), []byte("data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if e, _ := findMount(d.dir); !strings.Contains(","+e.Options+",", ",noexec,") {
		t.Errorf("mounted with %s, want noexec", e.Options)
	}
	if sid, err := unix.Getsid(s.pid); err != nil || sid != s.pid {
		t.Errorf("the supervisor's session is %d (%v), want its own (%d)", sid, err, s.pid)
	}
	for fd, want := range map[int]string{0: os.DevNull, 1: d.log, 2: d.log} {
		if got, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", s.pid, fd)); err != nil || got != want {
			t.Errorf("the supervisor's descriptor %d is %q (%v), want %s", fd, got, err, want)
		}
	}
	server := s.server(0)
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", server)); string(comm) != "txfs\n" {
		t.Errorf("the server's name is %q, want txfs", comm)
	}
	s.stop()
	if _, err := os.Stat(d.pid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the pid file is still there: %v", err)
	}
	log, _ := os.ReadFile(d.log)
	if !strings.Contains(string(log), "exited after the unmount") {
		t.Errorf("the log does not say the server exited after the unmount:\n%s", log)
	}
	fsck(t, d.img)
}

// TestDaemonRestartsAfterCrash: kill -9 of the server; the supervisor
// unmounts the dead mount and starts a server again, which recovers the
// image: what was synced before the crash is there. An unmount (txfs
// umount) ends the supervisor with status 0.
func TestDaemonRestartsAfterCrash(t *testing.T) {
	d := newDaemonSetup(t)
	s := d.start(t)
	f, err := os.Create(filepath.Join(d.dir, "synced"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("synced before the crash\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	first := s.server(0)
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	second := s.server(first)
	// The supervisor checks the new mount before it logs that it serves:
	// an unmount while its check waits for an answer finds the mount busy.
	serves := fmt.Sprintf("server %d serves", second)
	for deadline := time.Now().Add(readyTimeout); ; time.Sleep(20 * time.Millisecond) {
		if log, _ := os.ReadFile(d.log); strings.Contains(string(log), serves) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the supervisor's log never says %q", serves)
		}
	}
	data, err := os.ReadFile(filepath.Join(d.dir, "synced"))
	if err != nil || string(data) != "synced before the crash\n" {
		t.Errorf("after the restart: %q, %v", data, err)
	}
	if code, out := runTimeout(t, exitTimeout, bin("txfs"), "umount", d.dir); code != 0 {
		t.Fatalf("txfs umount: exit %d: %s", code, out)
	}
	if code := s.waitExit(); code != 0 {
		t.Errorf("the supervisor exited %d after the unmount, want 0", code)
	}
	if on := mountinfoOn(t, d.dir); len(on) > 0 {
		t.Errorf("mounts left on %s:\n%s", d.dir, strings.Join(on, "\n"))
	}
	log, _ := os.ReadFile(d.log)
	for _, want := range []string{fmt.Sprintf("server %d exited: signal: killed", first), "unmounted the dead mount", fmt.Sprintf("server %d serves", second)} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}
	fsck(t, d.img)
}

// TestDaemonRestartLimit: a server that crashes again and again is
// restarted 5 times (after 0.1, 0.2, 0.4, 0.8 and 1.6 s); at the sixth
// crash within a minute the supervisor gives up: it exits 1 and leaves no
// mount.
func TestDaemonRestartLimit(t *testing.T) {
	d := newDaemonSetup(t)
	s := d.start(t)
	server := 0
	for kill := 1; kill <= 6; kill++ {
		server = s.server(server)
		if err := syscall.Kill(server, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	if code := s.waitExit(); code != 1 {
		t.Errorf("the supervisor exited %d after the sixth crash, want 1", code)
	}
	if on := mountinfoOn(t, d.dir); len(on) > 0 {
		t.Errorf("mounts left on %s:\n%s", d.dir, strings.Join(on, "\n"))
	}
	log, _ := os.ReadFile(d.log)
	if got := strings.Count(string(log), "restarting in"); got != 5 || !strings.Contains(string(log), "giving up: 5 restarts within 1m0s") {
		t.Errorf("the log shows %d restarts, want 5, then giving up:\n%s", got, log)
	}
	fsck(t, d.img)
}

// TestOneInstancePerImage: while txfs mount --daemon serves an image, a
// mount of the same image on another directory, in the foreground or as
// a daemon, fails at once with exit status 3 naming the process that has
// the image, and leaves no mount and no process; the same once a
// foreground mount has the image. A daemon whose server cannot open the
// image reports why, with the server's exit status.
func TestOneInstancePerImage(t *testing.T) {
	d := newDaemonSetup(t)
	other := filepath.Join(filepath.Dir(d.dir), "other")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	otherPid := filepath.Join(filepath.Dir(d.pid), "other.pid")
	daemonArgs := []string{"mount", "--daemon", "--log", d.log, "--pid-file", otherPid, d.img, other}
	inUse := []string{"in use: " + d.img, "held by process"}

	s := d.start(t)
	refused(t, other, 3, inUse, nil, "mount", d.img, other)
	refused(t, other, 3, inUse, nil, daemonArgs...)
	if _, err := os.Stat(otherPid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused daemon left its pid file: %v", err)
	}
	// A second daemon on the same directory.
	refused(t, d.dir, 1, []string{"already mounted there"}, nil, "mount", "--daemon", "--log", d.log, "--pid-file", otherPid, d.img, d.dir)
	s.stop()
	if kids := children(os.Getpid()); len(kids) > 0 {
		for _, k := range kids {
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", k))
			if strings.Contains(string(cmd), other) {
				t.Errorf("a refused daemon still runs: %d %q", k, cmd)
			}
		}
	}

	// A foreground mount, then a daemon.
	m := mountExisting(t, d.img, d.dir)
	refused(t, other, 3, inUse, nil, daemonArgs...)
	m.stop()

	refused(t, other, 1, []string{"open " + d.img + ".missing", "no such file"}, nil,
		"mount", "--daemon", "--log", d.log, "--pid-file", otherPid, d.img+".missing", other)
}

// TestNotifySocket: with $NOTIFY_SOCKET set (a systemd unit of
// Type=notify), the foreground txfs mount sends READY=1 once the mount
// answers, and STOPPING=1 once SIGTERM has unmounted it; then it exits 0.
func TestNotifySocket(t *testing.T) {
	d := newDaemonSetup(t)
	sock := filepath.Join(filepath.Dir(d.pid), "notify")
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	receive := func() string {
		buf := make([]byte, 4096)
		_ = conn.SetReadDeadline(time.Now().Add(readyTimeout))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("waiting for a notification: %v", err)
		}
		return string(buf[:n])
	}

	cmd := exec.Command(bin("txfs"), "mount", d.img, d.dir)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	defer func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
			_ = detach(d.dir)
		}
	}()

	msg := receive()
	// The mount must answer as the message arrives.
	if err := usable(d.dir); err != nil {
		t.Errorf("READY=1 came before the mount was usable: %v", err)
	}
	if !strings.Contains("\n"+msg+"\n", "\nREADY=1\n") {
		t.Errorf("the first notification is %q, want READY=1", msg)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if msg := receive(); !strings.Contains("\n"+msg+"\n", "\nSTOPPING=1\n") {
		t.Errorf("the notification after SIGTERM is %q, want STOPPING=1", msg)
	}
	select {
	case <-done:
		if waitErr != nil {
			t.Errorf("txfs mount exited with %v after SIGTERM; output:\n%s", waitErr, out.String())
		}
	case <-time.After(exitTimeout):
		t.Fatalf("txfs mount did not exit within %v of SIGTERM", exitTimeout)
	}
	if on := mountinfoOn(t, d.dir); len(on) > 0 {
		t.Errorf("mounts left on %s:\n%s", d.dir, strings.Join(on, "\n"))
	}
	fsck(t, d.img)
}

// TestUmountDead: txfs umount --dead (run by the systemd unit before each
// start and after each stop) lazily unmounts a txfs mount whose daemon was
// killed, and leaves a live mount and an empty directory as they are.
func TestUmountDead(t *testing.T) {
	m := newMount(t)
	for _, what := range []string{"live mount", "dead mount", "directory"} {
		if what == "dead mount" {
			m.killOnly()
		}
		if code, out := runTimeout(t, exitTimeout, bin("txfs"), "umount", "--dead", m.dir); code != 0 {
			t.Errorf("txfs umount --dead on a %s: exit %d: %s", what, code, out)
		}
		if mounted := len(mountinfoOn(t, m.dir)) > 0; mounted != (what == "live mount") {
			t.Errorf("txfs umount --dead on a %s: mounted afterwards: %v", what, mounted)
		}
	}
	m.fsck()
}

// installMountHelper makes "txfs" the binary under test for mount(8):
// mount.fuse3 runs it through /bin/sh, and mount(8) clears PATH, so it
// must be in the shell's default PATH. A machine without mount(8) or
// mount.fuse3, or with a txfs installed there already, skips the test.
func installMountHelper(t *testing.T) {
	t.Helper()
	for _, p := range []string{"mount", "umount"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("skipping: no %s: %v", p, err)
		}
	}
	if _, err := os.Stat("/sbin/mount.fuse3"); err != nil {
		if _, err := os.Stat("/usr/sbin/mount.fuse3"); err != nil {
			t.Skip("skipping: no mount.fuse3 (apt-get install fuse3)")
		}
	}
	if err := linkMountHelper(t, bin("txfs")); err != nil {
		t.Skipf("skipping: %v", err)
	}
}

// mountHelperLink is where the tests put the txfs that mount.fuse3 runs:
// first in the shell's default PATH.
const mountHelperLink = "/usr/local/sbin/txfs"

// linkMountHelper links mountHelperLink to target for the test, holding a
// lock so that two test runs do not share it. It fails if a txfs that is
// not a link of these tests is there already.
func linkMountHelper(t *testing.T, target string) error {
	t.Helper()
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "txfs-mount-helper-test.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		return err
	}
	if old, err := os.Readlink(mountHelperLink); err == nil && (strings.Contains(old, "txfs-e2e-bin-") || strings.Contains(old, "TestInstallManual")) {
		os.Remove(mountHelperLink) // left by a run that was killed
	}
	if err := os.Symlink(target, mountHelperLink); err != nil {
		lock.Close()
		return fmt.Errorf("cannot link %s to the txfs under test: %v", mountHelperLink, err)
	}
	t.Cleanup(func() {
		os.Remove(mountHelperLink)
		lock.Close()
	})
	return nil
}

// TestMountHelper: "mount -t fuse.txfs IMAGE DIR" and an fstab line "IMAGE
// DIR fuse.txfs OPTIONS" mount through mount.fuse3, which runs "txfs IMAGE
// DIR -o OPTIONS": txfs serves as a daemon and returns once the mount is
// usable; options pass through, those of fstab alone are dropped; umount
// ends the daemon with status 0.
func TestMountHelper(t *testing.T) {
	d := newDaemonSetup(t)
	installMountHelper(t)
	runDir, logDir := t.TempDir(), t.TempDir()
	run := func(name string, args ...string) (int, string) {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "TXFS_RUN_DIR="+runDir, "TXFS_LOG_DIR="+logDir)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return 0, string(out)
	}
	name := control.EscapePath(d.dir)
	pidFile, logFile := filepath.Join(runDir, name+".pid"), filepath.Join(logDir, name+".log")

	args := []string{"-t", "fuse.txfs", "-o", "ro,clean_policy=greedy,defaults,noauto,nofail,_netdev,x-systemd.automount", d.img, d.dir}
	if code, out := run("mount", args...); code != 0 {
		t.Fatalf("mount %s: exit %d: %s", strings.Join(args, " "), code, out)
	}
	if err := usable(d.dir); err != nil {
		t.Fatalf("mount returned, but %v", err)
	}
	s := adoptSupervisor(t, pidFile, logFile, d.img, d.dir)
	if e, _ := findMount(d.dir); !strings.HasPrefix(e.Options, "ro,") {
		t.Errorf("mounted with %s, want ro", e.Options)
	}
	if code, out := run(bin("txfs"), "status", d.dir); code != 0 || !strings.Contains(out, "greedy") {
		t.Errorf("txfs status: exit %d, want the greedy cleaner:\n%s", code, out)
	}
	// The image is taken: a daemon on another directory is refused.
	other := filepath.Join(filepath.Dir(d.dir), "other")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if code, out := run(bin("txfs"), "mount", "--daemon", d.img, other); code != 3 || !strings.Contains(out, "in use") {
		t.Errorf("txfs mount --daemon of the mounted image: exit %d, want 3 (in use): %s", code, out)
	}
	if code, out := run("umount", d.dir); code != 0 {
		t.Fatalf("umount: exit %d: %s", code, out)
	}
	if code := s.waitExit(); code != 0 {
		t.Errorf("the daemon exited %d after umount, want 0", code)
	}

	// The same from an fstab line.
	fstab := filepath.Join(t.TempDir(), "fstab")
	line := fmt.Sprintf("%s %s fuse.txfs defaults,noclean 0 0\n", d.img, d.dir)
	if err := os.WriteFile(fstab, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := run("mount", "--fstab", fstab, d.dir); code != 0 {
		t.Fatalf("mount --fstab with %q: exit %d: %s", line, code, out)
	}
	s = adoptSupervisor(t, pidFile, logFile, d.img, d.dir)
	if err := os.WriteFile(filepath.Join(d.dir, "f"), []byte("x"), 0o644); err != nil {
		t.Errorf("writing on the fstab mount: %v", err)
	}
	if code, out := run("umount", d.dir); code != 0 {
		t.Fatalf("umount: exit %d: %s", code, out)
	}
	if code := s.waitExit(); code != 0 {
		t.Errorf("the daemon exited %d after umount, want 0", code)
	}
	fsck(t, d.img)
}

// TestSystemdUnit: systemd-analyze verify finds nothing to say about the
// unit (run with the txfs under test in ExecStart, which it checks).
func TestSystemdUnit(t *testing.T) {
	if skipReason != "" {
		t.Skip("skipping: " + skipReason)
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("skipping: no systemd-analyze (apt-get install systemd)")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(filepath.Join(root, "dist", "systemd", "txfs@.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "Restart=on-failure", "ExecStart=/usr/local/bin/txfs mount "} {
		if !strings.Contains(string(unit), "\n"+want) {
			t.Errorf("the unit has no %q", want)
		}
	}
	dir := t.TempDir()
	local := strings.ReplaceAll(string(unit), "/usr/local/bin/txfs", bin("txfs"))
	if err := os.WriteFile(filepath.Join(dir, "txfs@.service"), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", filepath.Join(dir, "txfs@mnt-data.service")).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
