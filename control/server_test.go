package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/txfs/txfs"
	"github.com/txfs/txfs/segment"
)

// The test binary run as another user: it asks the socket in
// $CONTROL_TEST_SOCKET for the status, or for the metrics if
// $CONTROL_TEST_METRICS is set, and prints what it got.
const (
	childSocketEnv  = "CONTROL_TEST_SOCKET"
	childMetricsEnv = "CONTROL_TEST_METRICS"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(childSocketEnv); path != "" {
		c := DialSocket(path)
		var err error
		if os.Getenv(childMetricsEnv) != "" {
			_, err = c.Metrics()
		} else {
			_, err = c.Status()
		}
		var e *Error
		switch {
		case err == nil:
			fmt.Println("200")
		case errors.As(err, &e):
			fmt.Printf("%d %s\n", e.StatusCode, e.Message)
		default:
			fmt.Println("error", err)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeFS is a Filesystem with set answers, counting cleaning passes.
type fakeFS struct {
	mu       sync.Mutex
	status   txfs.Status
	result   txfs.CleanResult
	err      error
	cleans   int
	cleaning chan struct{} // if set, Clean says it began here
	finish   chan struct{} // if set, Clean waits for it
	volume   *txfs.Volume  // if set, serves the snapshot operations
}

// The snapshot operations go to a real volume, if the test gives one.
func (f *fakeFS) vol() (*txfs.Volume, error) {
	if f.volume == nil {
		return nil, txfs.ErrNotSupported
	}
	return f.volume, nil
}

func (f *fakeFS) Snapshots() ([]txfs.SnapshotInfo, error) {
	v, err := f.vol()
	if err != nil {
		return nil, err
	}
	return v.Snapshots()
}

func (f *fakeFS) CreateSnapshot(name string) error { return f.op((*txfs.Volume).CreateSnapshot, name) }
func (f *fakeFS) RestoreSnapshot(name string) error {
	return f.op((*txfs.Volume).RestoreSnapshot, name)
}
func (f *fakeFS) DeleteSnapshot(name string) error { return f.op((*txfs.Volume).DeleteSnapshot, name) }

func (f *fakeFS) op(fn func(*txfs.Volume, string) error, name string) error {
	v, err := f.vol()
	if err != nil {
		return err
	}
	return fn(v, name)
}

func (f *fakeFS) Metrics() *prometheus.Registry { return prometheus.NewRegistry() }

func (f *fakeFS) Status() (txfs.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status, f.err
}

func (f *fakeFS) Clean() (txfs.CleanResult, error) {
	if f.cleaning != nil {
		f.cleaning <- struct{}{}
	}
	if f.finish != nil {
		<-f.finish
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleans++
	return f.result, f.err
}

var testStatus = txfs.Status{
	BlockSize: 4096, SegmentSize: 1 << 20, Segments: 64, FreeSegments: 50, ReserveSegments: 3,
	SizeBytes: 64 << 20, LiveBytes: 5 << 20, FreeBytes: 40 << 20, ReclaimableBytes: 7 << 20, ReadOnly: true,
	Cleaner: txfs.CleanerStatus{Policy: "cost-benefit", State: "idle", LowWatermark: 6, HighWatermark: 12,
		Passes: 4, SegmentsCleaned: 9, BytesMoved: 3 << 20, UserBytes: 100 << 20, DeviceBytes: 150 << 20,
		WriteAmplification: 1.5},
}

// serve serves fs on a socket in a fresh directory and returns the
// socket's path; the server is closed at the end of the test.
func serve(t *testing.T, fs Filesystem, owner int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.sock")
	s, err := ServeSocket(path, fs, owner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return path
}

// get sends a request to the socket at path and returns the status and
// the body.
func get(t *testing.T, path, method, url string) (int, string, http.Header) {
	t.Helper()
	c := DialSocket(path)
	defer c.Close()
	req, err := http.NewRequest(method, "http://txfs"+url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header
}

func TestStatusAndClean(t *testing.T) {
	fs := &fakeFS{status: testStatus, result: txfs.CleanResult{Segments: 3, BytesMoved: 1 << 20, BytesFreed: 3 << 20}}
	path := serve(t, fs, os.Getuid())
	c := DialSocket(path)
	defer c.Close()

	st, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st != StatusOf(testStatus) {
		t.Errorf("status %+v, want %+v", st, StatusOf(testStatus))
	}
	if st.Cleaner.Policy != "cost-benefit" || st.FreeSegments != 50 || st.Cleaner.WriteAmplification != 1.5 || !st.ReadOnly {
		t.Errorf("status %+v does not carry the volume's", st)
	}
	res, err := c.Clean()
	if err != nil {
		t.Fatal(err)
	}
	if want := (CleanResult{SegmentsCleaned: 3, BytesMoved: 1 << 20, BytesFreed: 3 << 20}); res != want || fs.cleans != 1 {
		t.Errorf("clean: %+v after %d passes, want %+v after 1", res, fs.cleans, want)
	}
}

// The wire format: snake_case names, every field, nothing else.
func TestWireFields(t *testing.T) {
	path := serve(t, &fakeFS{status: testStatus, result: txfs.CleanResult{Segments: 1}}, os.Getuid())
	code, body, h := get(t, path, "GET", "/v1/status")
	if code != 200 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/status: %d %s %q", code, h.Get("Content-Type"), body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	cleaner, _ := m["cleaner"].(map[string]any)
	delete(m, "cleaner")
	wantKeys(t, "status", m, "block_size", "segment_size", "segments", "free_segments", "reserve_segments",
		"size_bytes", "live_bytes", "free_bytes", "reclaimable_bytes", "snapshots", "snapshot_bytes", "read_only")
	wantKeys(t, "status.cleaner", cleaner, "policy", "state", "low_watermark", "high_watermark", "passes",
		"segments_cleaned", "bytes_moved", "user_bytes", "device_bytes", "write_amplification")
	if m["reclaimable_bytes"] != float64(7<<20) || cleaner["policy"] != "cost-benefit" || cleaner["write_amplification"] != 1.5 {
		t.Errorf("status body %s", body)
	}

	code, body, _ = get(t, path, "POST", "/v1/clean")
	m = nil
	if err := json.Unmarshal([]byte(body), &m); code != 200 || err != nil {
		t.Fatalf("POST /v1/clean: %d %q %v", code, body, err)
	}
	wantKeys(t, "clean", m, "segments_cleaned", "bytes_moved", "bytes_freed")
	if m["segments_cleaned"] != 1.0 {
		t.Errorf("clean body %s", body)
	}
}

func wantKeys(t *testing.T, what string, m map[string]any, want ...string) {
	t.Helper()
	var got []string
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s fields %q, want %q", what, got, want)
	}
}

func TestErrors(t *testing.T) {
	fs := &fakeFS{}
	path := serve(t, fs, os.Getuid())
	c := DialSocket(path)
	defer c.Close()
	for _, e := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("clean: %w", txfs.ErrReadOnly), http.StatusConflict},
		{txfs.ErrNoSpace, http.StatusInsufficientStorage},
		{txfs.ErrIO, http.StatusInternalServerError},
		{errors.New("something else"), http.StatusInternalServerError},
	} {
		fs.mu.Lock()
		fs.err = e.err
		fs.mu.Unlock()
		_, err := c.Clean()
		var ce *Error
		if !errors.As(err, &ce) || ce.StatusCode != e.code || ce.Message != e.err.Error() {
			t.Errorf("clean failing with %v: %#v, want status %d and the message", e.err, err, e.code)
		}
		_, err = c.Status()
		if !errors.As(err, &ce) || ce.StatusCode != e.code {
			t.Errorf("status failing with %v: %v", e.err, err)
		}
	}
}

func TestUnknownPathAndMethod(t *testing.T) {
	fs := &fakeFS{}
	path := serve(t, fs, os.Getuid())
	for _, r := range []struct {
		method, url string
		code        int
		allow       string
	}{
		{"GET", "/v1/nothing", 404, ""},
		{"GET", "/status", 404, ""},
		{"GET", "/v2/status", 404, ""},
		{"GET", "/v1/status/", 404, ""},
		{"POST", "/v1/status", 405, "GET"},
		{"DELETE", "/v1/status", 405, "GET"},
		{"GET", "/v1/clean", 405, "POST"},
		{"PUT", "/v1/clean", 405, "POST"},
	} {
		code, body, h := get(t, path, r.method, r.url)
		var e errorBody
		if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
			t.Errorf("%s %s: body %q is not a JSON error", r.method, r.url, body)
		}
		if code != r.code || h.Get("Allow") != r.allow {
			t.Errorf("%s %s: %d, Allow %q; want %d, Allow %q", r.method, r.url, code, h.Get("Allow"), r.code, r.allow)
		}
	}
	if fs.cleans != 0 {
		t.Errorf("%d cleaning passes ran on wrong requests", fs.cleans)
	}
}

// sharedDir is a directory every user may search, for a socket and the
// test binary that other users connect with.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "txfs-control-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// asUser runs a copy of the test binary in dir as uid (and gid) to ask the
// socket at path for the status, and returns what it got: "200", or the
// status and the message.
func asUser(t *testing.T, dir, path string, uid int, env ...string) string {
	t.Helper()
	exe := filepath.Join(dir, "control.test")
	if _, err := os.Stat(exe); err != nil {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(exe, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(exe)
	cmd.Dir = dir
	// (A race build sleeps a second at exit unless told not to.)
	cmd.Env = append(os.Environ(), childSocketEnv+"="+path, "GORACE=atexit_sleep_ms=0")
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the client as uid %d: %v\n%s", uid, err, out)
	}
	return strings.TrimSpace(string(out))
}

// needRoot skips a test that must start processes as other users.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: starting processes as other users needs root")
	}
}

// A second user can connect (the socket is 0666) and is refused by the
// peer credentials; root and the owner are served.
func TestOtherUserRefused(t *testing.T) {
	needRoot(t)
	dir := sharedDir(t)
	const owner = 1000
	path := filepath.Join(dir, "c.sock")
	s, err := ServeSocket(path, &fakeFS{status: testStatus}, owner)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o666 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket %v, %v; want a socket of mode 0666", fi.Mode(), err)
	}

	if got := asUser(t, dir, path, 0); got != "200" {
		t.Errorf("root: %q, want 200", got)
	}
	if got := asUser(t, dir, path, owner); got != "200" {
		t.Errorf("the owner, uid %d: %q, want 200", owner, got)
	}
	got := asUser(t, dir, path, 65534)
	if !strings.HasPrefix(got, "403 permission denied: uid 65534") || !strings.Contains(got, "uid 1000, who mounted") {
		t.Errorf("uid 65534: %q, want 403 naming who may", got)
	}
}

// The owner is the uid that mounted, whoever that is: another uid is
// refused, and root alone is served when root mounted.
func TestOwnerIsTheMountingUser(t *testing.T) {
	needRoot(t)
	dir := sharedDir(t)
	path := filepath.Join(dir, "nobody.sock")
	s, err := ServeSocket(path, &fakeFS{status: testStatus}, 65534)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := asUser(t, dir, path, 65534); got != "200" {
		t.Errorf("uid 65534, who mounted: %q, want 200", got)
	}
	if got := asUser(t, dir, path, 1000); !strings.HasPrefix(got, "403 ") {
		t.Errorf("uid 1000, who did not mount: %q, want 403", got)
	}

	rootPath := filepath.Join(dir, "root.sock")
	s2, err := ServeSocket(rootPath, &fakeFS{status: testStatus}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := asUser(t, dir, rootPath, 0); got != "200" {
		t.Errorf("root, who mounted: %q, want 200", got)
	}
	if got := asUser(t, dir, rootPath, 65534); !strings.HasPrefix(got, "403 ") || !strings.Contains(got, "only root, who mounted") {
		t.Errorf("uid 65534 on root's mount: %q, want 403", got)
	}
}

// A request that did not come through a connection whose credentials
// were read is refused.
func TestUnknownPeerRefused(t *testing.T) {
	h := Handler(&fakeFS{}, 0)
	rec := &recorder{header: http.Header{}}
	req, _ := http.NewRequest("GET", "http://txfs/v1/status", nil)
	h.ServeHTTP(rec, req)
	if rec.code != http.StatusForbidden {
		t.Errorf("no peer: %d, want 403", rec.code)
	}
}

type recorder struct {
	header http.Header
	code   int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(p []byte) (int, error) { return len(p), nil }
func (r *recorder) WriteHeader(code int)        { r.code = code }

// A socket a crashed daemon left is replaced; anything else is not
// touched; Close removes the socket unless another server has replaced
// it.
func TestSocketFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // a crashed daemon's socket: nobody listens

	s, err := ServeSocket(path, &fakeFS{status: testStatus}, 0)
	if err != nil {
		t.Fatalf("replacing a stale socket: %v", err)
	}
	if _, err := DialSocket(path).Status(); err != nil {
		t.Errorf("status through the new socket: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close: %v, want no socket", err)
	}

	// Replaced while serving (a second mount over the same directory):
	// the first server's Close leaves the second's socket.
	s1, err := ServeSocket(path, &fakeFS{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := ServeSocket(path, &fakeFS{status: testStatus}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := DialSocket(path).Status(); err != nil || st.Segments != testStatus.Segments {
		t.Errorf("the second server after the first closed: %+v, %v", st, err)
	}
	s2.Close()

	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := ServeSocket(file, &fakeFS{}, 0); err == nil || !strings.Contains(err.Error(), "not a socket") {
		if s != nil {
			s.Close()
		}
		t.Errorf("a regular file in the way: %v, want a refusal", err)
	}
	if data, _ := os.ReadFile(file); string(data) != "keep" {
		t.Errorf("the regular file now holds %q", data)
	}
}

// Serve finds its socket from the mount point as Dial does, through
// symlinks, and makes the run directory.
func TestServeAndDialByMountPoint(t *testing.T) {
	base := t.TempDir()
	runDir := filepath.Join(base, "run", "txfs")
	t.Setenv(RunDirEnv, runDir)
	mnt := filepath.Join(base, "mnt point")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(mnt, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(mnt); !errors.Is(err, ErrNoSocket) {
		t.Errorf("Dial before Serve: %v, want ErrNoSocket", err)
	}

	s, err := Serve(link, &fakeFS{status: testStatus}, Options{Owner: os.Getuid()})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := SocketPath(runDir, mnt)
	if s.Path() != want {
		t.Errorf("socket at %s, want %s", s.Path(), want)
	}
	if fi, err := os.Stat(runDir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("run directory: %v, %v; want mode 0755", fi.Mode(), err)
	}
	c, err := Dial(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Status(); err != nil || st.Segments != testStatus.Segments {
		t.Errorf("status by the mount point: %+v, %v", st, err)
	}
	c.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(mnt); !errors.Is(err, ErrNoSocket) {
		t.Errorf("Dial after Close: %v, want ErrNoSocket", err)
	}
}

// A run directory others could change is refused.
func TestRunDirRefused(t *testing.T) {
	mnt := t.TempDir()
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if s, err := Serve(mnt, &fakeFS{}, Options{RunDir: open}); err == nil || !strings.Contains(err.Error(), "writable by others") {
		if s != nil {
			s.Close()
		}
		t.Errorf("a world-writable run directory: %v, want a refusal", err)
	}
	// Sticky, as /tmp: allowed.
	if err := os.Chmod(open, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	s, err := Serve(mnt, &fakeFS{}, Options{RunDir: open})
	if err != nil {
		t.Fatalf("a sticky run directory: %v", err)
	}
	s.Close()

	if os.Geteuid() == 0 {
		theirs := filepath.Join(t.TempDir(), "theirs")
		if err := os.Mkdir(theirs, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(theirs, 1000, 1000); err != nil {
			t.Fatal(err)
		}
		if s, err := Serve(mnt, &fakeFS{}, Options{RunDir: theirs}); err == nil || !strings.Contains(err.Error(), "belongs to uid 1000") {
			if s != nil {
				s.Close()
			}
			t.Errorf("another user's run directory: %v, want a refusal", err)
		}
	}
}

// Close waits for a cleaning pass in progress, whose client gets its
// answer, before it returns (the daemon closes the volume after it).
func TestCloseWaitsForClean(t *testing.T) {
	fs := &fakeFS{cleaning: make(chan struct{}), finish: make(chan struct{}), result: txfs.CleanResult{Segments: 2}}
	path := filepath.Join(t.TempDir(), "c.sock")
	s, err := ServeSocket(path, fs, 0)
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		res CleanResult
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		res, err := DialSocket(path).Clean()
		answered <- answer{res, err}
	}()
	<-fs.cleaning
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a cleaning pass ran", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(fs.finish)
	if err := <-closed; err != nil {
		t.Error(err)
	}
	if a := <-answered; a.err != nil || a.res.SegmentsCleaned != 2 {
		t.Errorf("the client of the pass: %+v, %v", a.res, a.err)
	}
	if _, err := DialSocket(path).Status(); err == nil {
		t.Error("status after Close succeeded")
	}
}

// A connection that never finishes its request holds Close for no
// longer than closeGrace (and its reader then sees the connection end).
func TestCloseDoesNotWaitForSilentPeers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.sock")
	s, err := ServeSocket(path, &fakeFS{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	idle, err := net.Dial("unix", path) // says nothing
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	half, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	if _, err := half.Write([]byte("GET /v1/sta")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the server read it
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > closeGrace+time.Second {
		t.Errorf("Close took %v with a silent and a half-sent request, want at most %v", took, closeGrace)
	}
	half.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := half.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the half-sent request's connection after Close: %v, want EOF", err)
	}
}

// A request that arrives once Close has begun is not served: 503.
func TestRequestDuringCloseRefused(t *testing.T) {
	fs := &fakeFS{cleaning: make(chan struct{}), finish: make(chan struct{})}
	path := filepath.Join(t.TempDir(), "c.sock")
	s, err := ServeSocket(path, fs, 0)
	if err != nil {
		t.Fatal(err)
	}
	go DialSocket(path).Clean()
	<-fs.cleaning
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Close waits for the pass; the listener still accepts meanwhile.
	var err2 error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		s.mu.Lock()
		closing := s.closing
		s.mu.Unlock()
		if closing {
			_, err2 = DialSocket(path).Status()
			break
		}
	}
	var e *Error
	if !errors.As(err2, &e) || e.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status while closing: %v, want 503", err2)
	}
	close(fs.finish)
	if err := <-closed; err != nil {
		t.Error(err)
	}
	if fs.cleans != 1 {
		t.Errorf("%d passes, want 1", fs.cleans)
	}
}

// Snapshots through the socket: every operation, and errors that say
// which they are.
func TestSnapshots(t *testing.T) {
	dev := segment.NewMemDevice(16 << 20)
	if err := txfs.Format(dev, txfs.FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := txfs.Open(dev, txfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	c := DialSocket(serve(t, &fakeFS{volume: v}, os.Getuid()))
	defer c.Close()
	for _, op := range []string{"create", "restore", "delete"} {
		if _, err := c.Snapshot(op, "bad-name"); !errors.Is(err, txfs.ErrInvalid) || err.(*Error).StatusCode != 400 {
			t.Errorf("%s bad-name: %v", op, err)
		}
	}
	if res, err := c.Snapshot("create", "one"); err != nil || res != (SnapshotResult{"one", "created"}) {
		t.Fatalf("create: %+v, %v", res, err)
	}
	if _, err := c.Snapshot("create", "one"); !errors.Is(err, txfs.ErrSnapshotExists) || err.(*Error).StatusCode != 409 {
		t.Errorf("create one again: %v", err)
	}
	list, err := c.Snapshots()
	if err != nil || len(list.Snapshots) != 1 || list.Snapshots[0].Name != "one" || time.Since(list.Snapshots[0].Created) > time.Minute {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if res, err := c.Snapshot("restore", "one"); err != nil || res.Done != "restored" {
		t.Fatalf("restore: %+v, %v", res, err)
	}
	if res, err := c.Snapshot("delete", "one"); err != nil || res.Done != "deleted" {
		t.Fatalf("delete: %+v, %v", res, err)
	}
	for _, op := range []string{"restore", "delete"} {
		if _, err := c.Snapshot(op, "one"); !errors.Is(err, txfs.ErrNoSnapshot) || err.(*Error).StatusCode != 404 {
			t.Errorf("%s of a deleted snapshot: %v", op, err)
		}
	}
	if list, err := c.Snapshots(); err != nil || list.Snapshots == nil || len(list.Snapshots) != 0 {
		t.Errorf("list: %+v, %v", list, err)
	}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
}
