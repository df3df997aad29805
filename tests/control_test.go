package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/txfs/txfs/control"
)

// txfsCmd runs bin/txfs with args, as cred's user if cred is set, and
// returns its exit status, standard output and standard error.
func txfsCmd(t *testing.T, exe string, cred *syscall.Credential, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(exe, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Start()
	if err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(cmdTimeout, func() { _ = cmd.Process.Signal(syscall.SIGQUIT) })
	err = cmd.Wait()
	timer.Stop()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("txfs %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	return -1, "", ""
}

// txfsOK runs bin/txfs as this user, fails the test unless it exits 0,
// and returns its standard output.
func txfsOK(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := txfsCmd(t, bin("txfs"), nil, args...)
	if code != 0 || errOut != "" {
		t.Fatalf("txfs %s: exit %d (want 0)\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// socketOf is the control socket the mount on dir should have.
func socketOf(t *testing.T, dir string) string {
	t.Helper()
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	path, err := control.SocketPath(control.RunDir(), real)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// TestControlSocket: a mount serves its control socket from "ready" to
// the unmount; txfs status and txfs clean work on the mount point, on its
// image through the mount, and on the image once it is unmounted; another
// user is refused; the image checks out after all of it.
func TestControlSocket(t *testing.T) {
	m := newMount(t)
	sock := socketOf(t, m.dir)
	// There from the moment the mount says "ready".
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o666 {
		t.Fatalf("control socket %s after ready: %v, %v; want a socket of mode 0666", sock, fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Dir(sock)); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("socket directory: %v, %v; want mode 0755", fi.Mode(), err)
	}
	data := bytes.Repeat([]byte("control socket\n"), 1<<16)
	if err := os.WriteFile(filepath.Join(m.dir, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	m.run(m.dir, "sync")

	out := txfsOK(t, "status", m.dir)
	for _, s := range []string{"volume               " + m.dir + " (image " + m.img + "), mounted read-write\n",
		"\nsize ", "\nlive ", "\nfree ", "\nreclaimable ", "\nfree segments ", "\ncleaner ", "\nwatermarks ",
		"\npasses ", "\nsegments cleaned ", "\nbytes moved ", "\nwrite amplification "} {
		if !strings.Contains(out, s) {
			t.Errorf("txfs status %s does not say %q:\n%s", m.dir, s, out)
		}
	}
	var st control.Status
	out = txfsOK(t, "status", "--json", m.dir)
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("txfs status --json: %v\n%s", err, out)
	}
	if st.BlockSize != 4096 || st.Segments == 0 || st.SizeBytes != int64(st.Segments)*int64(st.SegmentSize) ||
		st.FreeSegments <= 0 || st.FreeSegments > st.Segments || st.ReadOnly || st.FreeBytes <= 0 || st.FreeBytes > st.SizeBytes {
		t.Errorf("txfs status --json %s: %+v", m.dir, st)
	}

	// The image of a mount is asked through the mount.
	out = txfsOK(t, "status", m.img)
	if !strings.Contains(out, m.dir+" (image "+m.img+"), mounted read-write") {
		t.Errorf("txfs status %s while mounted:\n%s", m.img, out)
	}

	out = txfsOK(t, "clean", m.dir)
	if !strings.HasPrefix(out, m.dir+" (image "+m.img+"): ") {
		t.Errorf("txfs clean %s: %q", m.dir, out)
	}
	var res control.CleanResult
	out = txfsOK(t, "clean", "--json", m.img)
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Errorf("txfs clean --json %s: %v\n%s", m.img, err, out)
	}
	if got, err := os.ReadFile(filepath.Join(m.dir, "f")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the file after cleaning: %d bytes, %v", len(got), err)
	}

	// Another user reaches the socket and is refused by its credentials.
	shared := sharedBin(t)
	code, out, errOut := txfsCmd(t, shared, &syscall.Credential{Uid: 65534, Gid: 65534}, "status", m.dir)
	if code != 1 || out != "" || !strings.Contains(errOut, "permission denied: uid 65534 may not use this control socket: only root, who mounted the volume, may") {
		t.Errorf("txfs status %s as uid 65534: exit %d (want 1)\nstdout:\n%s\nstderr:\n%s", m.dir, code, out, errOut)
	}

	m.stop() // unmounts and runs fsck.txfs
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket %s after the unmount: %v, want none", sock, err)
	}
	code, _, errOut = txfsCmd(t, bin("txfs"), nil, "status", m.dir)
	if code != 1 || !strings.Contains(errOut, "status "+m.dir+": not a txfs mount point") {
		t.Errorf("txfs status on the unmounted directory: exit %d: %s", code, errOut)
	}

	// The image alone: opened read-only for status, read-write for clean.
	out = txfsOK(t, "status", m.img)
	if !strings.HasPrefix(out, "volume               "+m.img+" (not mounted)\n") {
		t.Errorf("txfs status %s:\n%s", m.img, out)
	}
	var st2 control.Status
	if err := json.Unmarshal([]byte(txfsOK(t, "status", "--json", m.img)), &st2); err != nil || st2.Segments != st.Segments {
		t.Errorf("txfs status --json %s: %+v, %v", m.img, st2, err)
	}
	out = txfsOK(t, "clean", m.img)
	if !strings.HasPrefix(out, m.img+" (not mounted): ") {
		t.Errorf("txfs clean %s: %q", m.img, out)
	}
	fsck(t, m.img)
	m.start()
	if got, err := os.ReadFile(filepath.Join(m.dir, "f")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the file after cleaning the image: %d bytes, %v", len(got), err)
	}
}

// sharedBin copies bin/txfs where every user can run it.
func sharedBin(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "txfs-shared-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(bin("txfs"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	exe := filepath.Join(dir, "txfs")
	dst, err := os.OpenFile(exe, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return exe
}

// TestControlSocketReadOnly: a read-only mount says so.
func TestControlSocketReadOnly(t *testing.T) {
	m := newMount(t, "ro")
	var st control.Status
	if err := json.Unmarshal([]byte(txfsOK(t, "status", "--json", m.dir)), &st); err != nil || !st.ReadOnly {
		t.Errorf("txfs status --json of a read-only mount: %+v, %v", st, err)
	}
	if out := txfsOK(t, "status", m.dir); !strings.Contains(out, "mounted read-only\n") {
		t.Errorf("txfs status of a read-only mount:\n%s", out)
	}
}

// TestControlSocketStale: after kill -9 the socket is left; txfs status
// on the dead mount says the daemon is gone; the next mount replaces the
// socket and serves it.
func TestControlSocketStale(t *testing.T) {
	m := newMount(t)
	sock := socketOf(t, m.dir)
	m.killOnly()
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("the killed daemon's socket: %v", err)
	}
	code, _, errOut := txfsCmd(t, bin("txfs"), nil, "status", m.dir)
	if code != 1 || !strings.Contains(errOut, "the daemon of this txfs mount is gone (txfs umount "+m.dir+" clears it)") {
		t.Errorf("txfs status on a dead mount: exit %d: %s", code, errOut)
	}
	m.detachDead()
	m.start()
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("control socket after the remount: %v", err)
	}
	txfsOK(t, "status", m.dir)
	if strings.Contains(m.stderr(), "control socket") {
		t.Errorf("the daemon said something of its socket:\n%s", m.stderr())
	}
}

// TestControlSocketMissing: a daemon that cannot open its socket warns
// and serves the mount; txfs status says there is no socket.
func TestControlSocketMissing(t *testing.T) {
	if skipReason != "" {
		t.Skip("skipping: " + skipReason)
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(control.RunDirEnv, notDir)
	m := newMount(t)
	// Said before "ready", but its copy from the pipe may lag.
	warning := "warning: " + m.dir + " has no control socket"
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(m.stderr(), warning); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("daemon stderr does not warn of the socket:\n%s", m.stderr())
			break
		}
	}
	if err := os.WriteFile(filepath.Join(m.dir, "f"), []byte("served\n"), 0o644); err != nil {
		t.Fatalf("the mount without a socket: %v", err)
	}
	code, out, errOut := txfsCmd(t, bin("txfs"), nil, "status", m.dir)
	if code != 1 || out != "" || !strings.Contains(errOut, "no control socket at ") {
		t.Errorf("txfs status of a mount without a socket: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

// TestSnapshotCommands: txfs snapshot on a mount and on its image through
// it, on the image unmounted; errors with their exit codes; another user
// refused; a snapshot survives kill -9 of the daemon.
func TestSnapshotCommands(t *testing.T) {
	m := newMount(t)
	f := filepath.Join(m.dir, "f")
	before := make([]byte, 70000)
	randomBytes(before, 7)
	if err := os.WriteFile(f, before, 0o644); err != nil {
		t.Fatal(err)
	}
	out := txfsOK(t, "snapshot", "create", m.dir, "one")
	if out != m.dir+" (image "+m.img+"): snapshot one created\n" {
		t.Errorf("create: %q", out)
	}
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"snapshot", "create", m.dir, "one"}, 4, "snapshot create " + m.dir + " one: "},
		{[]string{"snapshot", "restore", m.img, "two"}, 5, "snapshot restore " + m.img + " two: "},
		{[]string{"snapshot", "delete", m.dir, "two"}, 5, "snapshot delete " + m.dir + " two: "},
		{[]string{"snapshot", "create", m.dir, "no-dash"}, 2, "a snapshot name has only the letters"},
		{[]string{"snapshot", "create", m.dir}, 2, "snapshot create needs TARGET"},
	} {
		code, out, errOut := txfsCmd(t, bin("txfs"), nil, c.args...)
		if code != c.code || out != "" || !strings.Contains(errOut, c.says) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("txfs %s: exit %d (want %d), stdout %q, stderr %q (want one line with %q)", strings.Join(c.args, " "), code, c.code, out, errOut, c.says)
		}
	}
	var list control.SnapshotList
	if err := json.Unmarshal([]byte(txfsOK(t, "snapshot", "list", "--json", m.dir)), &list); err != nil ||
		len(list.Snapshots) != 1 || list.Snapshots[0].Name != "one" || list.Snapshots[0].SharedBytes < int64(len(before)) {
		t.Errorf("list --json: %+v, %v", list, err)
	}
	code, _, errOut := txfsCmd(t, sharedBin(t), &syscall.Credential{Uid: 65534, Gid: 65534}, "snapshot", "create", m.dir, "other")
	if code != 1 || !strings.Contains(errOut, "permission denied: uid 65534 may not use this control socket") {
		t.Errorf("snapshot create as uid 65534: exit %d: %s", code, errOut)
	}

	// Readable in the mount while the live file changes.
	if err := os.WriteFile(f, []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(m.dir, ".snapshots", "one", "f")); err != nil || !bytes.Equal(got, before) {
		t.Errorf(".snapshots/one/f: %d bytes, %v", len(got), err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, ".snapshots", "one", "f"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("writing into a snapshot: %v, want EROFS", err)
	}

	// Survives SIGTERM and kill -9 of the daemon.
	d := m.d
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !d.waitExit(exitTimeout) || d.err != nil {
		t.Fatalf("txfs after SIGTERM: %v; stderr:\n%s", d.err, d.stderr.String())
	}
	m.record()
	m.d = nil
	m.fsck()
	m.start()
	if out := txfsOK(t, "snapshot", "list", m.dir); !strings.Contains(out, "\none ") {
		t.Errorf("list after SIGTERM:\n%s", out)
	}
	m.crashAndRemount()
	if out := txfsOK(t, "snapshot", "list", m.dir); !strings.Contains(out, "\none ") {
		t.Errorf("list after kill -9:\n%s", out)
	}
	if err := os.WriteFile(f, []byte("after\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m.run(m.dir, "sync")

	// Restore on the image while unmounted.
	m.stop()
	txfsOK(t, "snapshot", "restore", m.img, "one")
	if out := txfsOK(t, "snapshot", "list", m.img); !strings.HasPrefix(out, "NAME ") || !strings.Contains(out, "\none ") {
		t.Errorf("list of the image:\n%s", out)
	}
	fsck(t, m.img)
	m.start()
	if got, err := os.ReadFile(f); err != nil || !bytes.Equal(got, before) {
		t.Errorf("after restoring one: %d bytes, %v", len(got), err)
	}
	txfsOK(t, "snapshot", "delete", m.dir, "one")
	if out := txfsOK(t, "snapshot", "list", m.dir); !strings.HasSuffix(out, ": no snapshots\n") {
		t.Errorf("list after delete: %q", out)
	}
}

// TestSnapshotRestoreMounted: a restore through the mount's socket while
// a file is open and a writer appends to another: every process sees the
// restored tree at once (no page, attribute or name of before stays in
// the kernel's caches), the open file reads the file as the snapshot has
// it, the writer goes on into the restored file, and the image checks
// clean.
func TestSnapshotRestoreMounted(t *testing.T) {
	m := newMount(t)
	f, w := filepath.Join(m.dir, "f"), filepath.Join(m.dir, "w")
	before, after := make([]byte, 100000), make([]byte, 120000)
	randomBytes(before, 1)
	randomBytes(after, 2)
	if err := os.WriteFile(f, before, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	txfsOK(t, "snapshot", "create", m.dir, "one")
	if err := os.WriteFile(f, after, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, "new"), []byte("made after"), 0o644); err != nil {
		t.Fatal(err)
	}
	open, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	// Warm every cache: pages, attributes, names.
	if got, err := io.ReadAll(open); err != nil || !bytes.Equal(got, after) {
		t.Fatalf("before the restore: %d bytes, %v", len(got), err)
	}

	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		out, err := os.OpenFile(w, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			writerDone <- err
			return
		}
		defer out.Close()
		for {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			if _, err := out.Write([]byte("line\n")); err != nil {
				writerDone <- err
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	txfsOK(t, "snapshot", "restore", m.dir, "one")
	time.Sleep(100 * time.Millisecond)
	close(stop)
	if err := <-writerDone; err != nil {
		t.Errorf("the writer during the restore: %v", err)
	}

	if got, err := os.ReadFile(f); err != nil || !bytes.Equal(got, before) {
		t.Errorf("f after the restore: %d bytes, %v; want the snapshot's %d", len(got), err, len(before))
	}
	if fi, err := os.Stat(f); err != nil || fi.Size() != int64(len(before)) || fi.Mode().Perm() != 0o644 {
		t.Errorf("f's attributes after the restore: %v, %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(m.dir, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file made after the snapshot, after the restore: %v", err)
	}
	got := make([]byte, len(before)+10)
	if n, err := open.ReadAt(got, 0); (err != nil && err != io.EOF) || !bytes.Equal(got[:n], before) {
		t.Errorf("the file open at the restore reads %d bytes, %v; want the snapshot's", n, err)
	}
	open.Close()
	m.stop() // fsck
}

// TestReloadCommand: txfs reload changes the cleaner of a mounted volume,
// refuses an option that cannot change (and changes nothing then), and
// needs a mount.
func TestReloadCommand(t *testing.T) {
	m := newMount(t, "clean_policy=greedy")
	policy := func() string {
		var st control.Status
		if err := json.Unmarshal([]byte(txfsOK(t, "status", "--json", m.dir)), &st); err != nil {
			t.Fatal(err)
		}
		return st.Cleaner.Policy
	}
	if p := policy(); p != "greedy" {
		t.Fatalf("policy %q after mounting with clean_policy=greedy", p)
	}
	out := txfsOK(t, "reload", "-o", "clean_policy=age-threshold,clean_pace=5ms", m.dir)
	if !strings.HasSuffix(out, ": applied clean_policy=age-threshold,clean_pace=5ms\n") || policy() != "age-threshold" {
		t.Errorf("reload: %q, policy %q", out, policy())
	}
	code, out, errOut := txfsCmd(t, bin("txfs"), nil, "reload", "-o", "ro,clean_policy=cost-benefit", m.dir)
	if code != 1 || out != "" || !strings.Contains(errOut, "ro cannot change while mounted") || policy() != "age-threshold" {
		t.Errorf("reload -o ro: exit %d, %q %q, policy %q", code, out, errOut, policy())
	}
	code, _, errOut = txfsCmd(t, bin("txfs"), nil, "reload", "-o", "clean_policy=nope", m.dir)
	if code != 2 || !strings.Contains(errOut, "clean_policy=nope") {
		t.Errorf("reload with a bad option: exit %d: %s", code, errOut)
	}
	m.stop()
	code, _, errOut = txfsCmd(t, bin("txfs"), nil, "reload", "-o", "noclean", m.dir)
	if code != 1 || !strings.Contains(errOut, "not a txfs mount point") {
		t.Errorf("reload of an unmounted directory: exit %d: %s", code, errOut)
	}
}

// TestUmountWaitsForTheDaemon: txfs umount returns once the daemon has
// written its last checkpoint and let go of the image, so the image can be
// checked (fsck.txfs takes its lock) at once.
func TestUmountWaitsForTheDaemon(t *testing.T) {
	m := newMount(t)
	data := make([]byte, 4<<20)
	for round := range 3 {
		// Unsynced writes: the last checkpoint has work to do.
		for i := range 4 {
			randomBytes(data, uint64(round*10+i))
			if err := os.WriteFile(filepath.Join(m.dir, fmt.Sprintf("f%d", i)), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		d := m.d
		if code, out := runTimeout(t, exitTimeout, bin("txfs"), "umount", m.dir); code != 0 {
			t.Fatalf("txfs umount: exit %d: %s", code, out)
		}
		if code, out := runTimeout(t, toolTimeout, bin("fsck.txfs"), m.img); code != 0 {
			t.Fatalf("round %d: fsck.txfs right after txfs umount: exit %d (the daemon still had the image?)\n%s", round, code, out)
		}
		if !d.waitExit(exitTimeout) || d.err != nil {
			t.Fatalf("the daemon after the unmount: %v", d.err)
		}
		m.record()
		m.d = nil
		m.start()
	}
}
