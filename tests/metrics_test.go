package tests

import (
	"bufio"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/txfs/txfs/control"
	"github.com/txfs/txfs/internal/metricstest"
)

// TestMetricsOfAMount: the daemon serves its metrics on the control
// socket, and on TCP with "-o metrics=ADDR", and they move with what
// users do: 1 MiB written is at least 1 MiB more on the written-bytes
// counter, an fsync is one more fsync request and one more flush.
func TestMetricsOfAMount(t *testing.T) {
	addr := freeAddr(t)
	m := newMount(t, "metrics="+addr)
	if ports := tcpListeners(t, m.pid()); len(ports) != 1 || ports[0] != addr[strings.LastIndex(addr, ":")+1:] {
		t.Errorf("the daemon listens on TCP ports %v, want the one of %s", ports, addr)
	}
	c := control.DialSocket(socketOf(t, m.dir))
	defer c.Close()
	scrape := func() func(name string, labels ...string) float64 { return metricstest.Scrape(t, c.Metrics) }
	before := scrape()

	data := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(data)
	f, err := os.Create(filepath.Join(m.dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	after := scrape()
	for _, c := range []struct {
		name   string
		labels []string
		more   float64
	}{
		{"txfs_written_bytes_total", nil, 1 << 20},
		{"txfs_operations_total", []string{"op", "fsync"}, 1},
		{"txfs_operations_total", []string{"op", "create"}, 1},
		{"txfs_log_flush_duration_seconds", nil, 1},
		{"txfs_log_operation_bytes_total", nil, 1 << 20},
		{"txfs_device_written_bytes_total", nil, 1 << 20},
	} {
		if got, was := after(c.name, c.labels...), before(c.name, c.labels...); got < was+c.more {
			t.Errorf("%s%v: %v after, %v before; want at least %v more", c.name, c.labels, got, was, c.more)
		}
	}

	resp, err := http.Get("http://" + addr + control.MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s over TCP: %d, %v", addr, resp.StatusCode, err)
	}
	if got := metricstest.Value(t, metricstest.Text(t, body), "txfs_written_bytes_total"); got < 1<<20 {
		t.Errorf("written bytes over TCP: %v, want at least 1 MiB", got)
	}

	m.stop()
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Errorf("%s still answers after the unmount", addr)
	}
}

// Without "-o metrics" the daemon listens on no TCP port.
func TestMetricsNoListenerUnlessAsked(t *testing.T) {
	m := newMount(t)
	if ports := tcpListeners(t, m.pid()); len(ports) != 0 {
		t.Errorf("the daemon listens on TCP ports %v without -o metrics", ports)
	}
	c := control.DialSocket(socketOf(t, m.dir))
	defer c.Close()
	if _, err := c.Metrics(); err != nil {
		t.Errorf("the socket's /metrics: %v", err)
	}
}

// A metrics address that is not HOST:PORT is a usage error, and one that
// cannot be listened on fails the mount; both before anything is mounted.
func TestMetricsBadAddress(t *testing.T) {
	if skipReason != "" {
		t.Skip("skipping: " + skipReason)
	}
	base := t.TempDir()
	img := filepath.Join(base, "a.img")
	mkfs(t, img, "64M")
	dir := filepath.Join(base, "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"127.0.0.1", "9567", "127.0.0.1:0", "127.0.0.1:70000", "localhost:http"} {
		refused(t, dir, 2, []string{"metrics=" + bad + ": want HOST:PORT"}, nil, "mount", "-o", "metrics="+bad, img, dir)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	refused(t, dir, 1, []string{"metrics=" + addr, "address already in use"}, nil, "mount", "-o", "metrics="+addr, img, dir)
	refused(t, dir, 1, []string{"metrics=192.0.2.1:9567", "cannot assign requested address"}, nil,
		"mount", "-o", "metrics=192.0.2.1:9567", img, dir)
	fsck(t, img)
}

// freeAddr is a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// tcpListeners are the TCP ports (in decimal) process pid listens on: its
// sockets that /proc/net/tcp and tcp6 list in state LISTEN.
func tcpListeners(t *testing.T, pid int) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	sockets := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name())
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			sockets[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var ports []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" || !sockets[fields[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			port, err := strconv.ParseUint(hexPort, 16, 16)
			if err != nil {
				t.Fatalf("%s: %q", table, sc.Text())
			}
			ports = append(ports, strconv.FormatUint(port, 10))
		}
		f.Close()
	}
	return ports
}
