package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/txfs/txfs"
	txfuse "github.com/txfs/txfs/fuse"
)

// hangHelperEnv makes TestHangingServerHelper the server that hangs.
const hangHelperEnv = "TXFS_TEST_HANGING_SERVER"

// TestHangingServerHelper is not a test: run by TestAbortHungServer in a
// process of its own, it mounts the image in $TXFS_TEST_HANGING_SERVER on
// the directory in $TXFS_TEST_DIR, opens a file on its own mount, says
// "ready" and waits to be killed. Dying, it closes the file, and the
// kernel sends the FLUSH to the mount, which nobody is left to answer.
func TestHangingServerHelper(t *testing.T) {
	img := os.Getenv(hangHelperEnv)
	if img == "" {
		t.Skip("run by TestAbortHungServer")
	}
	dir := os.Getenv("TXFS_TEST_DIR")
	v, err := txfs.OpenPath(img, txfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := txfuse.Mount(v, dir, txfuse.MountConfig{FsName: img}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "held"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	os.Stdout.WriteString("ready\n")
	time.Sleep(time.Hour)
}

// TestAbortHungServer: a server killed while it has a file open on its
// own mount cannot exit (its last thread waits for the FLUSH of that file
// forever). The supervisor sees the SIGKILL pending (killedButAlive) and
// aborts the mount's FUSE connection (abortConnection) without looking at
// the mount point; the server then exits and the dead mount is detached.
func TestAbortHungServer(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil || os.Geteuid() != 0 {
		t.Skipf("skipping: needs root and /dev/fuse (%v)", err)
	}
	img := newImage(t)
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHangingServerHelper$")
	cmd.Env = append(os.Environ(), hangHelperEnv+"="+img, "TXFS_TEST_DIR="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	defer func() {
		select {
		case <-done:
		default:
			_ = syscall.Unmount(dir, syscall.MNT_FORCE)
			<-done
		}
		_ = syscall.Unmount(dir, syscall.MNT_DETACH)
	}()
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("the hanging server said %q", line)
	}
	pid := cmd.Process.Pid
	if killedButAlive(pid) {
		t.Fatalf("a server that runs counts as killed")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	hung := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !hung; time.Sleep(50 * time.Millisecond) {
		hung = killedButAlive(pid)
	}
	if !hung {
		t.Fatalf("the killed server is not seen as killed but alive")
	}
	select {
	case <-done:
		t.Fatalf("the server exited: it was meant to hang on its own mount")
	case <-time.After(time.Second):
	}
	if err := abortConnection(dir, img); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("the server still hangs after the abort")
	}
	if dead, err := detachDeadMount(dir); !dead || err != nil {
		t.Errorf("detachDeadMount after the abort: %v, %v", dead, err)
	}
	if on := mountsOn(t, dir); len(on) > 0 {
		t.Errorf("mounts left on %s: %v", dir, on)
	}
}
