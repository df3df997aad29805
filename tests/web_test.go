package tests

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/txfs/txfs/control"
)

// webTimeout bounds each browser test.
const webTimeout = 20 * time.Second

// console is one "txfs web" process.
type console struct {
	t       *testing.T
	cmd     *exec.Cmd
	url     string // http://127.0.0.1:PORT
	pidFile string
	stderr  *lockedBuffer
	done    chan struct{}
}

var servingRE = regexp.MustCompile(`serving (https?://[^/ ]+)/`)

// startWeb starts "txfs web --listen 127.0.0.1:0 --pid-file ... ARGS" and
// waits until it says where it serves. Cleanup stops it (SIGTERM) and
// fails the test unless it exits 0, unless the test killed it.
func startWeb(t *testing.T, args ...string) *console {
	t.Helper()
	return startWebAt(t, filepath.Join(t.TempDir(), "web.pid"), args...)
}

// startWebAt is startWeb with the pid file at pidFile.
func startWebAt(t *testing.T, pidFile string, args ...string) *console {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	c := &console{t: t, pidFile: pidFile, stderr: &lockedBuffer{}, done: make(chan struct{})}
	flags := []string{"web", "--pid-file", c.pidFile}
	if !slices.Contains(args, "--listen") {
		flags = append(flags, "--listen", "127.0.0.1:0")
	}
	c.cmd = exec.Command(bin("txfs"), append(flags, args...)...)
	c.cmd.Stderr = c.stderr
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	select {
	case line := <-lines:
		m := servingRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("txfs web said %q", line)
		}
		c.url = m[1]
	case <-c.done:
		t.Fatalf("txfs web exited at once: %v\n%s", c.cmd.ProcessState, c.stderr)
	case <-time.After(readyTimeout):
		t.Fatalf("txfs web did not start\n%s", c.stderr)
	}
	t.Cleanup(func() {
		select {
		case <-c.done:
			return
		default:
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(exitTimeout):
			_ = c.cmd.Process.Kill()
			t.Errorf("txfs web did not stop on SIGTERM\n%s", c.stderr)
			return
		}
		if code := c.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("txfs web exited %d on SIGTERM\n%s", code, c.stderr)
		}
	})
	return c
}

// request sends a request to the console and returns the status and the
// body.
func (c *console) request(method, path string, header ...string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// browser starts chromium (headless) and returns a context of its first
// tab, and a function that opens another tab in a browser context of its
// own (its own cookies and storage: another user's browser).
func browser(t *testing.T) (context.Context, func() context.Context) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: the console is tested in a real browser; install it (apt-get install chromium, as .ci/run does)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), webTimeout)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	first, cancelFirst := chromedp.NewContext(alloc)
	t.Cleanup(cancelFirst)
	if err := chromedp.Do(first); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	another := func() context.Context {
		c, cancel := chromedp.NewContext(first, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		return c
	}
	return first, another
}

// do runs browser actions and fails the test with what went wrong.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// waitFor waits until the JavaScript expression is true in the page.
func waitFor(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(8*time.Second))(ctx, t)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", expr, err)
		}
		return nil
	})
}

// messages is what the page told the user, newest first.
func messages(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#messages").innerText`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// screenshot saves the page as docs/console-NAME.png when
// TXFS_WEB_SCREENSHOTS=1 (README: "Screenshots"), else in a temporary
// directory: the capture is tested either way.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := t.TempDir()
	if os.Getenv("TXFS_WEB_SCREENSHOTS") == "1" {
		root, err := repoRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, "docs")
	}
	if err := os.WriteFile(filepath.Join(dir, "console-"+name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeRandom writes n random bytes to path.
func writeRandom(t *testing.T, path string, n int) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Error(err)
		return
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Error(err)
	}
}

// snapshotsOf lists the snapshots of the mount on dir through its socket.
func snapshotsOf(t *testing.T, dir string) []string {
	t.Helper()
	c, err := control.Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	list, err := c.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range list.Snapshots {
		names = append(names, s.Name)
	}
	return names
}

// TestWebConsole drives the console in chromium: the overview shows the
// volume, a snapshot is taken, the file changes through the mount, the
// snapshot is restored (after the page asks), the file view shows the old
// content, live and in the snapshot, and the snapshot is deleted.
func TestWebConsole(t *testing.T) {
	m := newMount(t)
	file := filepath.Join(m.dir, "notes", "today.txt")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("the old words\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Data that a snapshot taken from the command line alone keeps, so
	// that the overview has every kind of space to show.
	data := filepath.Join(m.dir, "data.bin")
	writeRandom(t, data, 24<<20)
	txfsOK(t, "snapshot", "create", m.dir, "monday")
	writeRandom(t, data, 8<<20)
	c := startWeb(t, m.dir)
	ctx, _ := browser(t)

	// A writer for the throughput chart.
	stopWriting := make(chan struct{})
	written := make(chan struct{})
	go func() {
		defer close(written)
		for i := 0; ; i++ {
			select {
			case <-stopWriting:
				return
			case <-time.After(100 * time.Millisecond):
			}
			writeRandom(t, filepath.Join(m.dir, "log.bin"), (1+i%4)<<19)
		}
	}()
	do(t, ctx, "overview",
		chromedp.Navigate(c.url+"/#overview"),
		waitFor(`document.querySelector("#space dd") !== null`),
		waitFor(`document.querySelector("#segments-caption").textContent.includes("segments")`),
		// Samples make a chart line.
		waitFor(`document.querySelector("#legend-throughput").textContent.includes("written by operations")`),
		chromedp.Sleep(3*time.Second))
	close(stopWriting)
	<-written
	screenshot(t, ctx, "overview")

	do(t, ctx, "take a snapshot",
		chromedp.Navigate(c.url+"/#snapshots"),
		chromedp.SendKeys(chromedp.CSS("#snapshot-name"), "before"),
		chromedp.Click(chromedp.CSS(`#create button[type=submit]`)),
		waitFor(`document.querySelector('tr[data-snapshot="before"]') !== null`),
		waitFor(`document.querySelector("#messages").innerText.includes("Snapshot before taken")`))
	if got := snapshotsOf(t, m.dir); len(got) != 2 || got[1] != "before" {
		t.Fatalf("snapshots after the page took one: %v", got)
	}
	screenshot(t, ctx, "snapshots")

	if err := os.WriteFile(file, []byte("new words, written later\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "restore, cancelled first",
		chromedp.Click(chromedp.CSS(`tr[data-snapshot="before"] button[data-op="restore"]`)),
		waitFor(`document.querySelector("#confirm").open`),
		chromedp.Click(chromedp.CSS("#confirm-cancel")),
		waitFor(`!document.querySelector("#confirm").open`))
	if b, _ := os.ReadFile(file); string(b) != "new words, written later\n" {
		t.Fatalf("a cancelled restore changed the file: %q", b)
	}
	do(t, ctx, "restore",
		chromedp.Click(chromedp.CSS(`tr[data-snapshot="before"] button[data-op="restore"]`)),
		waitFor(`document.querySelector("#confirm").open`),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		waitFor(`document.querySelector("#messages").innerText.includes("Snapshot before restored")`))
	if b, _ := os.ReadFile(file); string(b) != "the old words\n" {
		t.Fatalf("after the restore the mount has %q", b)
	}

	do(t, ctx, "the file view",
		chromedp.Navigate(c.url+"/#files"),
		waitFor(`document.querySelector('#file-table tr[data-name="notes"] a') !== null`),
		chromedp.Click(chromedp.CSS(`#file-table tr[data-name="notes"] a`)),
		waitFor(`document.querySelector('#file-table tr[data-name="today.txt"] a') !== null`),
		chromedp.Click(chromedp.CSS(`#file-table tr[data-name="today.txt"] a`)),
		waitFor(`document.querySelector("#file-preview").textContent === "the old words\n"`))
	screenshot(t, ctx, "files")
	// The download link gives the file.
	href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#file-download").href`))
	if err != nil {
		t.Fatal(err)
	}
	code, body := c.request("GET", strings.TrimPrefix(href, c.url))
	if code != 200 || body != "the old words\n" {
		t.Fatalf("download %s: %d %q", href, code, body)
	}
	do(t, ctx, "the snapshot's tree",
		chromedp.SetValue(chromedp.CSS("#tree"), "before"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#tree").dispatchEvent(new Event("change"))`),
		waitFor(`document.querySelector("#crumbs").textContent.includes("snapshot before")`),
		waitFor(`document.querySelector('#file-table tr[data-name="data.bin"]') !== null`))

	do(t, ctx, "delete",
		chromedp.Navigate(c.url+"/#snapshots"),
		waitFor(`document.querySelector('tr[data-snapshot="before"]') !== null`),
		chromedp.Click(chromedp.CSS(`tr[data-snapshot="before"] button[data-op="delete"]`)),
		waitFor(`document.querySelector("#confirm").open`),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		waitFor(`document.querySelector("#messages").innerText.includes("Snapshot before deleted")`),
		waitFor(`document.querySelector('tr[data-snapshot="before"]') === null`))
	if got := snapshotsOf(t, m.dir); len(got) != 1 || got[0] != "monday" {
		t.Fatalf("snapshots after the page deleted its one: %v", got)
	}
}

// TestWebTwoBrowsers: two browsers (browser contexts of their own) on one
// console see each other's snapshots within seconds, and when both delete
// the same snapshot at once one is told it is done and the other, in
// words, that it does not exist any more.
func TestWebTwoBrowsers(t *testing.T) {
	m := newMount(t)
	c := startWeb(t, m.dir)
	_, another := browser(t)
	a, b := another(), another()
	for _, ctx := range []context.Context{a, b} {
		do(t, ctx, "open", chromedp.Navigate(c.url+"/#snapshots"), waitFor(`document.querySelector("#link").textContent === "live"`))
	}
	do(t, a, "A takes x", chromedp.SendKeys(chromedp.CSS("#snapshot-name"), "x"), chromedp.Click(chromedp.CSS(`#create button[type=submit]`)))
	do(t, b, "B sees x", waitFor(`document.querySelector('tr[data-snapshot="x"]') !== null`))
	// A change from the command line shows too.
	txfsOK(t, "snapshot", "create", m.dir, "y")
	for _, ctx := range []context.Context{a, b} {
		do(t, ctx, "sees y", waitFor(`document.querySelector('tr[data-snapshot="y"]') !== null`))
	}

	// Both ask to delete x, then both confirm at once.
	for _, ctx := range []context.Context{a, b} {
		do(t, ctx, "ask to delete x",
			chromedp.Click(chromedp.CSS(`tr[data-snapshot="x"] button[data-op="delete"]`)),
			waitFor(`document.querySelector("#confirm").open`))
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, ctx := range []context.Context{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The answer to this delete, not an earlier message about x.
			errs[i] = chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#confirm-ok")),
				waitFor(`(t => t.includes("Snapshot x deleted.") || t.includes("Could not delete snapshot x:"))(document.querySelector("#messages").innerText)`))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	said := []string{messages(t, a), messages(t, b)}
	done, refused := 0, 0
	for _, s := range said {
		switch {
		case strings.Contains(s, "Snapshot x deleted."):
			done++
		case strings.Contains(s, "Could not delete snapshot x:") && strings.Contains(s, `there is no snapshot "x"`):
			refused++
		}
	}
	if done != 1 || refused != 1 {
		t.Fatalf("two deletes of one snapshot: want one done and one refused in words; the pages said:\nA: %s\nB: %s", said[0], said[1])
	}
	if got := snapshotsOf(t, m.dir); len(got) != 1 || got[0] != "y" {
		t.Fatalf("snapshots: %v, want [y]", got)
	}
	for _, ctx := range []context.Context{a, b} {
		do(t, ctx, "x is gone", waitFor(`document.querySelector('tr[data-snapshot="x"]') === null`))
	}
}

// TestWebKilledDuringSnapshot: the console is killed with SIGKILL while
// it asks for a snapshot, again and again at other moments: the mount
// goes on serving, its files are intact, and each snapshot exists whole
// (every file, every byte) or not at all. The image checks out at the
// end (newMount's cleanup).
func TestWebKilledDuringSnapshot(t *testing.T) {
	m := newMount(t)
	want := map[string]string{}
	for i := range 200 {
		name := fmt.Sprintf("f%03d", i)
		want[name] = strings.Repeat(name, 1000+i)
		if err := os.WriteFile(filepath.Join(m.dir, name), []byte(want[name]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	checkTree := func(dir string) {
		t.Helper()
		for name, content := range want {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || string(b) != content {
				t.Fatalf("%s/%s: %d bytes, %v (want %d bytes)", dir, name, len(b), err, len(content))
			}
		}
	}
	pidFile := filepath.Join(t.TempDir(), "web.pid")
	for i := range 6 {
		// The pid file a killed console left is taken over.
		c := startWebAt(t, pidFile, m.dir)
		name := fmt.Sprintf("k%d", i)
		answered := make(chan struct{})
		go func() {
			defer close(answered)
			q := url.Values{"dir": {m.dir}, "op": {"create"}, "name": {name}}
			req, _ := http.NewRequest("POST", c.url+"/api/snapshot?"+q.Encode(), nil)
			req.Header.Set("X-Txfs-Console", "1")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		time.Sleep(time.Duration(i*4) * time.Millisecond)
		if err := c.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-c.done
		<-answered
		checkTree(m.dir)
	}
	// A request the daemon had begun ends as if the console were there:
	// a snapshot is taken whole, once every request is answered.
	time.Sleep(200 * time.Millisecond)
	txfsOK(t, "snapshot", "create", m.dir, "last")
	taken := 0
	for _, name := range snapshotsOf(t, m.dir) {
		if name != "last" {
			checkTree(filepath.Join(m.dir, ".snapshots", name))
			taken++
		}
	}
	t.Logf("%d of 6 snapshots taken before the console was killed", taken)
	checkTree(m.dir)
	if st := txfsOK(t, "status", "--json", m.dir); !json.Valid([]byte(st)) {
		t.Fatalf("status after the kills: %s", st)
	}
}

// TestWebAccess: off localhost the console refuses to start without a
// token and encryption (TLS, or a proxy that serves it), and a token file
// others can read; with them, a request without the token is refused and
// one with it answered.
func TestWebAccess(t *testing.T) {
	m := newMount(t)
	tmp := t.TempDir()
	token := filepath.Join(tmp, "token")
	if err := os.WriteFile(token, []byte("s3cret-s3cret-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pid := filepath.Join(tmp, "web.pid")
	for _, try := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"--listen", "0.0.0.0:0"}, 2, "refusing to listen on 0.0.0.0:0"},
		{[]string{"--listen", ":0", "--token-file", token}, 2, "not a loopback address"},
		{[]string{"--listen", "0.0.0.0:0", "--tls-cert", token}, 2, "--tls-cert and --tls-key go together"},
	} {
		code, _, errOut := txfsCmd(t, bin("txfs"), nil, append(append([]string{"web", "--pid-file", pid}, try.args...), m.dir)...)
		if code != try.code || !strings.Contains(errOut, try.says) {
			t.Errorf("txfs web %s: exit %d, %q; want %d and %q", strings.Join(try.args, " "), code, errOut, try.code, try.says)
		}
	}
	if err := os.Chmod(token, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := txfsCmd(t, bin("txfs"), nil, "web", "--pid-file", pid, "--listen", "0.0.0.0:0", "--token-file", token, "--behind-proxy", m.dir)
	if code != 1 || !strings.Contains(errOut, "chmod 600") {
		t.Errorf("a token file others can read: exit %d, %q", code, errOut)
	}
	if err := os.Chmod(token, 0o600); err != nil {
		t.Fatal(err)
	}
	c := startWeb(t, "--listen", "0.0.0.0:0", "--token-file", token, "--behind-proxy", m.dir)
	c.url = strings.Replace(c.url, "0.0.0.0", "127.0.0.1", 1)
	if code, body := c.request("GET", "/api/state"); code != 401 || !strings.Contains(body, "token") {
		t.Errorf("no token: %d %s", code, body)
	}
	if code, body := c.request("GET", "/api/state", "Authorization", "Bearer s3cret-s3cret-s3cret"); code != 200 || !strings.Contains(body, m.dir) {
		t.Errorf("the token: %d %s", code, body)
	}
}

// TestWebStopReload: txfs web -s reload reads the config file again
// while a page's event stream goes on; txfs web -s stop lets a request
// already sent finish (the snapshot is taken and answered), ends the
// stream, removes the pid file, and the console exits 0.
func TestWebStopReload(t *testing.T) {
	m := newMount(t)
	conf := filepath.Join(t.TempDir(), "web.conf")
	if err := os.WriteFile(conf, []byte("# mounts\n"+m.dir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startWeb(t, "--config", conf)
	stream, err := http.Get(c.url + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	events := bufio.NewScanner(stream.Body)
	events.Buffer(nil, 1<<20)
	nextEvent := func() string {
		t.Helper()
		for events.Scan() {
			if data, ok := strings.CutPrefix(events.Text(), "data: "); ok {
				return data
			}
		}
		return ""
	}
	if ev := nextEvent(); !strings.Contains(ev, m.dir) {
		t.Fatalf("first event: %s", ev)
	}

	if err := os.WriteFile(conf, []byte(m.dir+"\n/nonexistent/mnt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	txfsOK(t, "web", "-s", "reload", "--pid-file", c.pidFile)
	deadline := time.Now().Add(5 * time.Second)
	for ev := nextEvent(); !strings.Contains(ev, "/nonexistent/mnt"); ev = nextEvent() {
		if ev == "" || time.Now().After(deadline) {
			t.Fatalf("the stream after the reload: %q\n%s", ev, c.stderr)
		}
	}
	_, body := c.request("GET", "/api/state")
	if !strings.Contains(body, `"dir":"/nonexistent/mnt","error":"/nonexistent/mnt is not a mounted txfs volume`) {
		t.Errorf("state after the reload: %s", body)
	}

	// A request sent before the stop is answered.
	conn, err := net.Dial("tcp", strings.TrimPrefix(c.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	q := url.Values{"dir": {m.dir}, "op": {"create"}, "name": {"late"}}
	fmt.Fprintf(conn, "POST /api/snapshot?%s HTTP/1.1\r\nHost: localhost\r\nX-Txfs-Console: 1\r\nContent-Length: 0\r\n\r\n", q.Encode())
	time.Sleep(100 * time.Millisecond)
	txfsOK(t, "web", "-s", "stop", "--pid-file", c.pidFile)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the request sent before the stop: %v", err)
	}
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(answer), `"done":"created"`) {
		t.Errorf("the request sent before the stop: %d %s", resp.StatusCode, answer)
	}
	if got := snapshotsOf(t, m.dir); !slices.Contains(got, "late") {
		t.Errorf("snapshots after the stop: %v", got)
	}
	<-c.done
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("txfs web exited %d on -s stop\n%s", code, c.stderr)
	}
	for events.Scan() {
	}
	if _, err := os.Stat(c.pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file after the stop: %v", err)
	}
	code, _, errOut := txfsCmd(t, bin("txfs"), nil, "web", "-s", "stop", "--pid-file", c.pidFile)
	if code != 1 || !strings.Contains(errOut, "no txfs web is running") {
		t.Errorf("-s stop with no console: exit %d, %q", code, errOut)
	}
}

// TestWebDaemonStops: SIGTERM to the daemon of a mount that a console is
// watching (its event stream open, a snapshot just taken through it)
// unmounts and checkpoints as without it; the console goes on and says
// the mount is gone, in words.
func TestWebDaemonStops(t *testing.T) {
	m := newMount(t)
	c := startWeb(t, m.dir)
	stream, err := http.Get(c.url + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	q := url.Values{"dir": {m.dir}, "op": {"create"}, "name": {"watched"}}
	if code, body := c.request("POST", "/api/snapshot?"+q.Encode(), "X-Txfs-Console", "1"); code != 200 {
		t.Fatalf("snapshot through the console: %d %s", code, body)
	}
	d := m.d
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !d.waitExit(exitTimeout) || d.err != nil {
		t.Fatalf("txfs mount after SIGTERM with a console attached: %v\n%s", d.err, d.stderr.String())
	}
	m.record()
	m.d = nil
	m.fsck()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := c.request("GET", "/api/state")
		if strings.Contains(body, `"error":"`+m.dir+` is not a mounted txfs volume`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the console's state after the unmount: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.start()
	if got := snapshotsOf(t, m.dir); !slices.Contains(got, "watched") {
		t.Errorf("snapshots after the daemon's SIGTERM: %v", got)
	}
}
