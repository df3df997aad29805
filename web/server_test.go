package web

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/control"
	"github.com/txfs/txfs/segment"
)

// served is a volume on a memory device served on the control socket of
// a plain directory (its socket in a directory of the test's), and a
// console of it.
type served struct {
	dir     string
	vol     *txfs.Volume
	console *Server
	http    *httptest.Server
}

func serve(t *testing.T, cfg Config) *served {
	t.Helper()
	t.Setenv(control.RunDirEnv, t.TempDir())
	dev := segment.NewMemDevice(16 << 20)
	if err := txfs.Format(dev, txfs.FormatOptions{SegmentSize: 256 << 10}); err != nil {
		t.Fatal(err)
	}
	v, err := txfs.Open(dev, txfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sock, err := control.Serve(dir, v, control.Options{Owner: os.Getuid()})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dirs = append([]string{dir}, cfg.Dirs...)
	s := &served{dir: dir, vol: v, console: New(cfg)}
	s.http = httptest.NewServer(s.console)
	t.Cleanup(func() {
		s.http.Close()
		s.console.Close()
		sock.Close()
		if err := v.Check(); err != nil {
			t.Error(err)
		}
		v.Close()
	})
	return s
}

// do sends a request with the console's header and returns the status
// and the body.
func (s *served) do(t *testing.T, method, path string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.http.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Txfs-Console", "1")
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *served) q(kv ...string) string {
	v := url.Values{"dir": {s.dir}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return "?" + v.Encode()
}

// TestSnapshotRace: two deletes (and two creates) of one snapshot at once
// through the console: one is done, the other is refused in words.
func TestSnapshotRace(t *testing.T) {
	s := serve(t, Config{})
	for _, op := range []string{"create", "delete"} {
		codes := make([]int, 2)
		bodies := make([]string, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i], bodies[i] = s.do(t, "POST", "/api/snapshot"+s.q("op", op, "name", "x"))
			}()
		}
		wg.Wait()
		if codes[0] == codes[1] || codes[0] != 200 && codes[1] != 200 {
			t.Fatalf("%s twice: %d %s, %d %s", op, codes[0], bodies[0], codes[1], bodies[1])
		}
		refused := bodies[0]
		if codes[0] == 200 {
			refused = bodies[1]
		}
		want := map[string]string{"create": `a snapshot \"x\" exists already`, "delete": `there is no snapshot \"x\"`}[op]
		if !strings.Contains(refused, want) {
			t.Errorf("%s twice: the refusal says %s, want %s", op, refused, want)
		}
	}
	if code, body := s.do(t, "POST", "/api/snapshot"+s.q("op", "create", "name", "no/good")); code != 400 || !strings.Contains(body, "snapshot name") {
		t.Errorf("an invalid name: %d %s", code, body)
	}
	if code, body := s.do(t, "POST", "/api/snapshot"+s.q("op", "rename", "name", "x")); code != 400 || !strings.Contains(body, "create, restore or delete") {
		t.Errorf("an unknown operation: %d %s", code, body)
	}
	if code, body := s.do(t, "POST", "/api/clean?dir=/elsewhere"); code != 404 || !strings.Contains(body, "does not serve") {
		t.Errorf("a directory not served: %d %s", code, body)
	}
}

// TestAccess: loopback names only without a token; a token by header or
// by the login cookie; changes only with the console's header.
func TestAccess(t *testing.T) {
	s := serve(t, Config{LoopbackOnly: true})
	if code, body := s.do(t, "GET", "/api/state", "Host", "rebound.example:80"); code != 403 || !strings.Contains(body, "localhost") {
		t.Errorf("a foreign Host: %d %s", code, body)
	}
	if code, _ := s.do(t, "GET", "/api/state", "Host", "localhost:1"); code != 200 {
		t.Errorf("Host localhost: %d", code)
	}
	resp, err := http.Post(s.http.URL+"/api/clean"+s.q(), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("a change without the console's header: %d", resp.StatusCode)
	}

	const token = "0123456789abcdef-token"
	s.console.Reload(Config{Dirs: []string{s.dir}, Token: token})
	if code, body := s.do(t, "GET", "/api/state"); code != 401 || !strings.Contains(body, "token") {
		t.Errorf("no token: %d %s", code, body)
	}
	if code, _ := s.do(t, "GET", "/api/state", "Authorization", "Bearer wrong"); code != 401 {
		t.Errorf("a wrong token: %d", code)
	}
	if code, _ := s.do(t, "GET", "/api/state", "Authorization", "Bearer "+token); code != 200 {
		t.Errorf("the token: %d", code)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.Get(s.http.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/login" {
		t.Errorf("the page without the token: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, try := range []struct {
		token, to string
		cookie    bool
	}{{"wrong", "/login#wrong", false}, {token, "/", true}} {
		resp, err := noRedirect.PostForm(s.http.URL+"/login", url.Values{"token": {try.token}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cookies := resp.Cookies()
		if resp.Header.Get("Location") != try.to || (len(cookies) == 1) != try.cookie {
			t.Fatalf("log in with %q: to %q, cookies %v", try.token, resp.Header.Get("Location"), cookies)
		}
		if try.cookie {
			c := cookies[0]
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("login cookie %v", c)
			}
			if code, _ := s.do(t, "GET", "/api/state", "Cookie", c.Name+"="+c.Value); code != 200 {
				t.Errorf("with the login cookie: %d", code)
			}
		}
	}
}

// TestFiles: the browser lists and reads inside the tree only; a symlink
// out of it, or .., is refused; text is shown, binary is not; a download
// is the file.
func TestFiles(t *testing.T) {
	s := serve(t, Config{})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(s.dir, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(s.dir, "sub", "a.txt"), []byte("hello, été\n"), 0o644))
	must(os.WriteFile(filepath.Join(s.dir, "bin"), []byte{0, 1, 2, 255}, 0o644))
	outside := filepath.Join(t.TempDir(), "secret")
	must(os.WriteFile(outside, []byte("secret"), 0o644))
	must(os.Symlink(outside, filepath.Join(s.dir, "escape")))

	code, body := s.do(t, "GET", "/api/files"+s.q("path", "/"))
	var l Listing
	if code != 200 || json.Unmarshal([]byte(body), &l) != nil || l.Kind != "dir" || len(l.Entries) != 3 || l.Entries[0].Name != "sub" {
		t.Fatalf("the top: %d %s", code, body)
	}
	code, body = s.do(t, "GET", "/api/files"+s.q("path", "/sub/a.txt"))
	if code != 200 || json.Unmarshal([]byte(body), &l) != nil || l.Preview == nil || *l.Preview != "hello, été\n" || l.File.Size != 13 {
		t.Fatalf("a text file: %d %s", code, body)
	}
	code, body = s.do(t, "GET", "/api/files"+s.q("path", "/bin"))
	if l = (Listing{}); code != 200 || json.Unmarshal([]byte(body), &l) != nil || l.Preview != nil {
		t.Fatalf("a binary file: %d %s", code, body)
	}
	for _, p := range []string{"/escape", "/../" + filepath.Base(filepath.Dir(outside)) + "/secret"} {
		code, body = s.do(t, "GET", "/api/download"+s.q("path", p))
		if code == 200 || strings.Contains(body, "secret\"") || body == "secret" {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
	code, body = s.do(t, "GET", "/api/files"+s.q("path", "/", "snap", "../x"))
	if code != 400 {
		t.Errorf("snapshot ../x: %d %s", code, body)
	}
	code, body = s.do(t, "GET", "/api/files"+s.q("path", "/", "snap", "nosuch"))
	if code != 404 || !strings.Contains(body, "no such file") {
		t.Errorf("a snapshot that is not there: %d %s", code, body)
	}
	resp, err := http.Get(s.http.URL + "/api/download" + s.q("path", "/sub/a.txt"))
	must(err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello, été\n" || resp.Header.Get("Content-Disposition") != `attachment; filename=a.txt` {
		t.Errorf("download: %q, %q", b, resp.Header.Get("Content-Disposition"))
	}
}

// TestEvents: the stream sends the state at once and after a change made
// through the console, and ends when the console closes.
func TestEvents(t *testing.T) {
	s := serve(t, Config{})
	resp, err := http.Get(s.http.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan State, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var st State
				if json.Unmarshal([]byte(data), &st) == nil {
					events <- st
				}
			}
		}
	}()
	next := func() State {
		t.Helper()
		select {
		case st, ok := <-events:
			if !ok {
				t.Fatal("the stream ended")
			}
			return st
		case <-time.After(5 * time.Second):
			t.Fatal("no event in 5 s")
		}
		return State{}
	}
	st := next()
	if len(st.Volumes) != 1 || st.Volumes[0].Status == nil || st.Volumes[0].Segments == nil || st.Volumes[0].Metrics == nil {
		t.Fatalf("first event: %+v", st)
	}
	if code, body := s.do(t, "POST", "/api/snapshot"+s.q("op", "create", "name", "e")); code != 200 {
		t.Fatal(code, body)
	}
	for st = next(); len(st.Volumes[0].Snapshots) == 0; st = next() {
	}
	s.console.Close()
	for range events {
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP txfs_write_bytes_total Bytes written.
# TYPE txfs_write_bytes_total counter
txfs_write_bytes_total{op="write"} 100
txfs_write_bytes_total{op="fallocate",path="a \"q\" \\ b"} 50
# TYPE txfs_op_seconds histogram
txfs_op_seconds_bucket{op="read",le="0.001"} 3
txfs_op_seconds_bucket{op="write",le="0.001"} 1
txfs_op_seconds_bucket{op="read",le="+Inf"} 4
txfs_op_seconds_sum{op="read"} 0.01
txfs_op_seconds_count{op="read"} 4
txfs_op_seconds_count{op="write"} 1
# TYPE txfs_free_bytes gauge
txfs_free_bytes 1e6 1700000000000
untyped_total 7
garbage line {
broken{le="1 2
nan_value NaN
`
	m := ParseMetrics(strings.NewReader(text))
	if m.Counters["txfs_write_bytes_total"] != 150 || m.Counters["untyped_total"] != 7 || len(m.Counters) != 2 {
		t.Errorf("counters %v", m.Counters)
	}
	if m.Gauges["txfs_free_bytes"] != 1e6 || len(m.Gauges) != 1 {
		t.Errorf("gauges %v", m.Gauges)
	}
	h := m.Histograms["txfs_op_seconds"]
	if h == nil || h.Count != 5 || h.Sum != 0.01 || len(h.Buckets) != 1 || h.Buckets[0] != (Bucket{LE: 0.001, Count: 4}) {
		t.Errorf("histogram %+v", h)
	}
}
