package tests

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/txfs/txfs/control"
)

// The installation manual, docs/INSTALL.md, is tested by running it: every
// ```sh block, in order, in one bash (set -euo pipefail), with the
// variables of its first block pointing into a sandbox. A block that cannot
// run here begins with notRunMarker and says why.

const notRunMarker = "# not run by the install test:"

// manualBlock is one ```sh block of the manual.
type manualBlock struct {
	line int    // of its opening fence, from 1
	text string // its lines, without the fences
	run  bool   // false: it begins with notRunMarker
}

// readManualBlocks returns the ```sh blocks of the manual. It fails on
// shell blocks fenced under another name, which the test would not run.
func readManualBlocks(path string) ([]manualBlock, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var blocks []manualBlock
	var cur *manualBlock // the ```sh block being read
	inOther := false     // in a block of output or of a file's contents
	for i, line := range strings.Split(string(data), "\n") {
		closing := strings.TrimSpace(line) == "```"
		switch {
		case inOther:
			inOther = !closing
		case cur != nil && closing:
			first, _, _ := strings.Cut(cur.text, "\n")
			cur.run = !strings.HasPrefix(first, notRunMarker)
			if !cur.run && strings.TrimSpace(first) == notRunMarker {
				return nil, fmt.Errorf("%s:%d: %q without a reason", path, cur.line, notRunMarker)
			}
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		default:
			info, fence := strings.CutPrefix(strings.TrimSpace(line), "```")
			if !fence {
				continue
			}
			switch strings.TrimSpace(info) {
			case "sh":
				cur = &manualBlock{line: i + 1}
			case "bash", "shell", "console", "sh-session", "zsh":
				return nil, fmt.Errorf("%s:%d: a shell block fenced as %q: fence it as sh, so that it is run", path, i+1, info)
			default:
				inOther = true
			}
		}
	}
	if cur != nil || inOther {
		return nil, fmt.Errorf("%s: a block that is never closed", path)
	}
	return blocks, nil
}

// manualShell is the bash that runs the manual's blocks one after another,
// keeping its variables from one to the next.
type manualShell struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	out     *os.File // its output, shared by every block
	done    chan struct{}
	markers chan string
	dir     string // where the blocks are written
	n       int
}

func startManualShell(t *testing.T, workDir, scratch string, env []string) *manualShell {
	t.Helper()
	out, err := os.Create(filepath.Join(scratch, "shell.out"))
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &manualShell{t: t, out: out, done: make(chan struct{}), markers: make(chan string, 1), dir: scratch}
	s.cmd = exec.Command("bash", "--noprofile", "--norc", "-euo", "pipefail")
	s.cmd.Dir = workDir
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.ExtraFiles = []*os.File{w}                        // fd 3: one line after each block
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its background jobs too
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			s.markers <- sc.Text()
		}
		r.Close()
	}()
	t.Cleanup(func() {
		s.stdin.Close()
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
		}
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
		out.Close()
	})
	return s
}

// output is what the shell printed from offset on.
func (s *manualShell) output(from int64) string {
	data, _ := os.ReadFile(s.out.Name())
	if from > int64(len(data)) {
		return ""
	}
	return string(data[from:])
}

// run runs one block in the shell and fails the test if a command of it
// fails (set -e ends the shell) or it takes longer than a minute. It
// returns where the block's output begins.
func (s *manualShell) run(b manualBlock) int64 {
	t := s.t
	t.Helper()
	s.n++
	file := filepath.Join(s.dir, fmt.Sprintf("block%02d.sh", s.n))
	if err := os.WriteFile(file, []byte(b.text), 0o644); err != nil {
		t.Fatal(err)
	}
	start, _ := s.out.Seek(0, io.SeekCurrent)
	want := fmt.Sprintf("done %d", s.n)
	// The block's commands (and what they leave in the background) get
	// neither fd 3 nor the shell's input.
	if _, err := fmt.Fprintf(s.stdin, "source %s 3>&- </dev/null; echo '%s' >&3\n", file, want); err != nil {
		t.Fatalf("the block at docs/INSTALL.md:%d: the shell is gone: %v\n%s\noutput:\n%s", b.line, err, b.text, s.output(start))
	}
	select {
	case got := <-s.markers:
		if got != want {
			t.Fatalf("the shell said %q, want %q", got, want)
		}
		t.Logf("docs/INSTALL.md:%d:\n%s--- output:\n%s", b.line, b.text, s.output(start))
		return start
	case <-s.done:
		t.Fatalf("the block at docs/INSTALL.md:%d failed (%v):\n%s--- output:\n%s", b.line, s.cmd.ProcessState, b.text, s.output(start))
	case <-time.After(time.Minute):
		t.Fatalf("the block at docs/INSTALL.md:%d did not finish within a minute:\n%s--- output:\n%s", b.line, b.text, s.output(start))
	}
	panic("unreachable")
}

// getUntil asks url with client until it answers, for up to 10 s, and
// returns the status and body.
func getUntil(t *testing.T, client *http.Client, url, token string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				return resp.StatusCode, string(body)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestInstallManual runs docs/INSTALL.md: build and install into a prefix
// in the sandbox, mkfs.txfs, a mount in daemon mode, status, the web
// console (fetched here, local and with a token over TLS, then stopped),
// metrics from the control socket, a snapshot backed up with tar and
// deleted, fsck after the unmount, the systemd units checked by
// systemd-analyze verify, mount -t fuse.txfs with metrics on TCP, an
// fstab line, reload, an upgrade and the uninstall. It fails if a block
// fails, or if a command it must run is in no block it runs.
func TestInstallManual(t *testing.T) {
	if skipReason != "" {
		t.Skip("skipping: " + skipReason)
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readManualBlocks(filepath.Join(root, "docs", "INSTALL.md"))
	if err != nil {
		t.Fatal(err)
	}

	box := t.TempDir()
	v := map[string]string{
		"PREFIX":       filepath.Join(box, "usr"),
		"CONF":         filepath.Join(box, "etc", "txfs"),
		"UNITS":        filepath.Join(box, "etc", "systemd"),
		"FSTAB":        filepath.Join(box, "etc", "fstab"),
		"IMAGE":        filepath.Join(box, "var", "lib", "txfs", "data.img"),
		"MNT":          filepath.Join(box, "mnt", "data"),
		"BACKUP":       filepath.Join(box, "backups"),
		"WEB":          freeAddr(t),
		"WEB_REMOTE":   freeAddr(t),
		"METRICS":      freeAddr(t),
		"TXFS_RUN_DIR": filepath.Join(box, "run"),
		"TXFS_LOG_DIR": filepath.Join(box, "log"),
	}
	for _, d := range []string{"UNITS", "TXFS_RUN_DIR"} {
		if err := os.MkdirAll(v[d], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(v["FSTAB"], nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + filepath.Join(v["PREFIX"], "bin") + ":" + os.Getenv("PATH"), "LC_ALL=C"}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if _, ours := v[name]; !ours && name != "PATH" && name != "LC_ALL" && name != "NAME" && name != "RUN" {
			env = append(env, kv)
		}
	}
	for name, val := range v {
		env = append(env, name+"="+val)
	}
	mnt, prefixBin, runDir := v["MNT"], filepath.Join(v["PREFIX"], "bin"), v["TXFS_RUN_DIR"]
	mountDirsMu.Lock()
	mountDirs[mnt] = true
	mountDirsMu.Unlock()
	name := control.EscapePath(mnt)
	pidFile := filepath.Join(runDir, name+".pid")

	// mount.fuse3 runs "txfs" from the shell's default PATH: the txfs the
	// manual installs.
	if err := linkMountHelper(t, filepath.Join(prefixBin, "txfs")); err != nil {
		t.Fatal(err)
	}
	// Whatever a failed block leaves: no console, no mount.
	t.Cleanup(func() {
		cmd := exec.Command(bin("txfs"), "web", "-s", "stop")
		cmd.Env = env
		_ = cmd.Run()
		if e, ok := findMount(mnt); ok && e.Type == "fuse.txfs" {
			_ = exec.Command(bin("txfs"), "umount", mnt).Run()
			for i := 0; i < 200 && fileExists(pidFile); i++ {
				time.Sleep(100 * time.Millisecond)
			}
			if e, ok := findMount(mnt); ok && e.Type == "fuse.txfs" {
				_ = detach(mnt)
			}
		}
	})

	mounted := func(want bool) {
		t.Helper()
		e, ok := findMount(mnt)
		if got := ok && e.Type == "fuse.txfs"; got != want {
			t.Fatalf("%s: a txfs mount: %v, want %v (%+v)", mnt, got, want, e)
		}
	}
	txfsStatus := func() control.Status {
		t.Helper()
		cmd := exec.Command(bin("txfs"), "status", "--json", mnt)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("txfs status --json %s: %v\n%s", mnt, err, out)
		}
		var st control.Status
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("txfs status --json: %v\n%s", err, out)
		}
		return st
	}
	local := &http.Client{Timeout: 5 * time.Second}
	tlsClient := &http.Client{Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // the manual's certificate is self-signed

	// What the manual must run, each with what the test checks after the
	// block that has it.
	steps := []struct {
		has   string
		check func()
	}{
		{`go build -o bin/ ./cmd/txfs ./cmd/mkfs.txfs ./cmd/fsck.txfs`, func() {
			for _, b := range []string{"txfs", "mkfs.txfs", "fsck.txfs"} {
				if fi, err := os.Stat(filepath.Join(prefixBin, b)); err != nil || fi.Mode()&0o111 == 0 {
					t.Fatalf("%s/%s is not installed: %v", prefixBin, b, err)
				}
			}
		}},
		{`mkfs.txfs --size 10G "$IMAGE"`, func() {
			if !fileExists(v["IMAGE"]) {
				t.Fatalf("no image %s", v["IMAGE"])
			}
		}},
		{`txfs mount --daemon "$IMAGE" "$MNT"`, func() {
			mounted(true)
			if data, err := os.ReadFile(filepath.Join(mnt, "hello.txt")); err != nil || string(data) != "hello\n" {
				t.Fatalf("hello.txt: %q, %v", data, err)
			}
		}},
		{`txfs web --listen "$WEB" "$MNT" &`, func() {
			code, body := getUntil(t, local, "http://"+v["WEB"]+"/", "")
			if code != 200 || !strings.Contains(body, "<title>txfs console</title>") {
				t.Fatalf("GET http://%s/: %d\n%.300s", v["WEB"], code, body)
			}
			code, body = getUntil(t, local, "http://"+v["WEB"]+"/api/state", "")
			if code != 200 || !strings.Contains(body, mnt) {
				t.Fatalf("GET /api/state: %d, want 200 naming %s:\n%.500s", code, mnt, body)
			}
		}},
		{`txfs web -s stop`, func() {
			if fileExists(filepath.Join(runDir, "web.pid")) {
				t.Fatal("txfs web -s stop returned, and the console's pid file is still there")
			}
			for _, a := range []string{v["WEB"], v["WEB_REMOTE"]} {
				if c, err := net.Dial("tcp", a); err == nil {
					c.Close()
					t.Fatalf("txfs web -s stop returned, and %s still answers", a)
				}
			}
		}},
		{`--token-file "$CONF/web.token"`, func() {
			token, err := os.ReadFile(filepath.Join(v["CONF"], "web.token"))
			if err != nil {
				t.Fatal(err)
			}
			url := "https://" + v["WEB_REMOTE"] + "/api/state"
			if code, body := getUntil(t, tlsClient, url, ""); code != http.StatusUnauthorized {
				t.Fatalf("GET %s without the token: %d, want 401\n%.300s", url, code, body)
			}
			if code, body := getUntil(t, tlsClient, url, strings.TrimSpace(string(token))); code != 200 || !strings.Contains(body, mnt) {
				t.Fatalf("GET %s with the token: %d, want 200 naming %s\n%.300s", url, code, mnt, body)
			}
		}},
		{`--unix-socket "$RUN/$NAME.sock" http://txfs/metrics`, nil},
		{`txfs snapshot create "$MNT" backup`, func() {
			tars, _ := filepath.Glob(filepath.Join(v["BACKUP"], "data-*.tar.gz"))
			if len(tars) != 1 {
				t.Fatalf("backups: %v, want one", tars)
			}
			out, err := exec.Command("tar", "-tzf", tars[0]).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "./hello.txt\n") {
				t.Fatalf("tar -tzf %s: %v, want ./hello.txt in:\n%s", tars[0], err, out)
			}
			if st := txfsStatus(); st.Snapshots != 0 {
				t.Fatalf("%d snapshots left, want 0", st.Snapshots)
			}
		}},
		{`fsck.txfs "$IMAGE"`, func() { mounted(false) }},
		{`systemd-analyze verify "$UNITS/txfs@$NAME.service"`, func() {
			unit, err := os.ReadFile(filepath.Join(v["UNITS"], "txfs@.service"))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"ExecStart=" + prefixBin + "/txfs mount ", "EnvironmentFile=" + v["CONF"] + "/%i.conf"} {
				if !strings.Contains(string(unit), "\n"+want) {
					t.Errorf("the installed unit has no %q", want)
				}
			}
			if conf, err := os.ReadFile(filepath.Join(v["CONF"], name+".conf")); err != nil || !strings.Contains(string(conf), "TXFS_IMAGE="+v["IMAGE"]+"\n") {
				t.Errorf("%s.conf: %v\n%s", name, err, conf)
			}
		}},
		{`systemd-analyze verify "$UNITS/txfs-web.service"`, nil},
		{`mount -t fuse.txfs -o metrics="$METRICS" "$IMAGE" "$MNT"`, func() { mounted(false) }},
		{`echo "$IMAGE $MNT fuse.txfs defaults 0 0" >> "$FSTAB"`, func() {
			mounted(true)
			if st := txfsStatus(); st.Cleaner.Policy != "greedy" {
				t.Fatalf("cleaner policy %q after txfs reload, want greedy", st.Cleaner.Policy)
			}
		}},
		{`install -m 755 -t "$PREFIX/bin" bin/txfs`, func() { mounted(true) }},
		{`rm -f "$PREFIX/bin/txfs"`, func() {
			mounted(false)
			if left, _ := os.ReadDir(prefixBin); len(left) > 0 {
				t.Errorf("%s still holds %v", prefixBin, left)
			}
			if fstab, _ := os.ReadFile(v["FSTAB"]); strings.Contains(string(fstab), "fuse.txfs") {
				t.Errorf("the fstab line is still there:\n%s", fstab)
			}
			if fileExists(v["CONF"]) {
				t.Errorf("%s is still there", v["CONF"])
			}
		}},
		{`rm -f "$IMAGE"`, nil},
	}

	sh := startManualShell(t, root, t.TempDir(), env)
	found := make([]bool, len(steps))
	ran, notRun := 0, 0
	for _, b := range blocks {
		if !b.run {
			notRun++
			continue
		}
		start := sh.run(b)
		ran++
		for i, s := range steps {
			if strings.Contains(b.text, s.has) {
				found[i] = true
				if s.check != nil {
					checkBlock(t, s.check, func() string { return sh.output(start) })
				}
			}
		}
	}
	for i, s := range steps {
		if !found[i] {
			t.Errorf("no block of docs/INSTALL.md that the test runs has %q", s.has)
		}
	}
	// A command of a block that is not run must not be one the test has to
	// run: only systemctl, apt-get and the download of Go are exempt.
	exempt := regexp.MustCompile(`^(#.*|systemctl .*|apt-get .*|curl -fLO https://go.dev/.*|rm -rf /usr/local/go && tar .*|export PATH=.*|go version|install -m 755 .*)$`)
	for _, b := range blocks {
		if b.run {
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(b.text), "\n") {
			if !exempt.MatchString(strings.TrimSpace(line)) {
				t.Errorf("docs/INSTALL.md:%d: %q is in a block the test does not run", b.line, line)
			}
		}
	}
	t.Logf("ran %d blocks of docs/INSTALL.md; %d are marked as not run here", ran, notRun)
}

// checkBlock runs check, and shows what the block and the commands it
// left in the background printed when it fails.
func checkBlock(t *testing.T, check func(), output func() string) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("output of the block and of what it started:\n%s", output())
		}
	}()
	check()
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
