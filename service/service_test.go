package service

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a datagram socket at addr (a path, or @name) as systemd
// does for NOTIFY_SOCKET, and points the variable at it.
func listen(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv(NotifySocketEnv, addr)
	return conn
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	for _, addr := range []string{
		filepath.Join(t.TempDir(), "notify"),
		"@txfs-test-notify-" + strconv.Itoa(os.Getpid()), // abstract
	} {
		conn := listen(t, addr)
		sent, err := Notify("READY=1\nSTATUS=serving")
		if !sent || err != nil {
			t.Fatalf("Notify to %s: %v, %v", addr, sent, err)
		}
		if got := receive(t, conn); got != "READY=1\nSTATUS=serving" {
			t.Errorf("%s received %q", addr, got)
		}
	}
}

func TestNotifyWithoutSocket(t *testing.T) {
	t.Setenv(NotifySocketEnv, "")
	if sent, err := Notify("READY=1"); sent || err != nil {
		t.Errorf("without NOTIFY_SOCKET: %v, %v; want nothing sent, no error", sent, err)
	}
	t.Setenv(NotifySocketEnv, "relative/path")
	if _, err := Notify("READY=1"); err == nil {
		t.Errorf("a relative NOTIFY_SOCKET is accepted")
	}
	t.Setenv(NotifySocketEnv, filepath.Join(t.TempDir(), "nobody-listens"))
	if sent, err := Notify("READY=1"); !sent || err == nil {
		t.Errorf("a socket nobody listens on: %v, %v; want an error", sent, err)
	}
}

func TestRestarts(t *testing.T) {
	p := RestartPolicy{FirstDelay: 100 * time.Millisecond, MaxDelay: time.Second, Limit: 5, Window: time.Minute}
	r := NewRestarts(p)
	now := time.Unix(1000, 0)
	var delays []time.Duration
	for {
		d, ok := r.Crashed(now)
		if !ok {
			break
		}
		delays = append(delays, d)
		now = now.Add(d + time.Second) // the restarted server runs a second
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second}
	if len(delays) != len(want) {
		t.Fatalf("delays %v, want %v then giving up", delays, want)
	}
	for i := range want {
		if delays[i] != want[i] {
			t.Errorf("delays %v, want %v", delays, want)
			break
		}
	}
	// A minute after the first restart, one more is allowed, with the
	// delay for the four restarts still in the window (1.6 s, capped).
	first := time.Unix(1000, 0).Add(100 * time.Millisecond)
	if d, ok := r.Crashed(first.Add(time.Minute)); !ok || d != p.MaxDelay {
		t.Errorf("a minute after the first restart: %v, %v; want a restart after %v", d, ok, p.MaxDelay)
	}
	// A server that ran for longer than the window starts afresh.
	if d, ok := r.Crashed(first.Add(10 * time.Minute)); !ok || d != p.FirstDelay {
		t.Errorf("after 10 quiet minutes: %v, %v; want %v", d, ok, p.FirstDelay)
	}
	if n := r.Recent(first.Add(10 * time.Minute)); n != 1 {
		t.Errorf("Recent = %d, want 1", n)
	}
}

func TestPidFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "x.pid")
	p, err := CreatePidFile(path, 1234)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "1234\n" {
		t.Errorf("pid file holds %q", data)
	}
	// A second holder is refused, naming the first.
	if _, err := CreatePidFile(path, 99); !errors.Is(err, ErrRunning) || !strings.Contains(err.Error(), "1234") {
		t.Errorf("second CreatePidFile: %v, want ErrRunning naming 1234", err)
	}
	if err := p.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file still there after Remove: %v", err)
	}
	// A file left by a process that died (no lock) is taken over.
	if err := os.WriteFile(path, []byte("777777\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err = CreatePidFile(path, 42)
	if err != nil {
		t.Fatalf("taking over a stale pid file: %v", err)
	}
	defer p.Remove()
	if data, _ := os.ReadFile(path); string(data) != "42\n" {
		t.Errorf("pid file holds %q after the takeover", data)
	}
}
