package control

import (
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/internal/metricstest"
	"github.com/txfs/txfs/segment"
)

// newVolume is a fresh volume on a memory device, closed at the end.
func newVolume(t *testing.T) *txfs.Volume {
	t.Helper()
	dev := segment.NewMemDevice(64 << 20)
	if err := txfs.Format(dev, txfs.FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := txfs.Open(dev, txfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Check(); err != nil {
			t.Errorf("check: %v", err)
		}
		if err := v.Close(); err != nil {
			t.Error(err)
		}
	})
	return v
}

// The metric families GET /metrics answers for a volume.
var volumeFamilies = []string{
	"txfs_size_bytes", "txfs_segments", "txfs_free_segments", "txfs_reserve_segments", "txfs_live_bytes",
	"txfs_free_bytes", "txfs_reclaimable_bytes", "txfs_segment_fullness", "txfs_snapshots", "txfs_snapshot_bytes",
	"txfs_read_only", "txfs_transactions_total", "txfs_log_operation_bytes_total", "txfs_device_written_bytes_total",
	"txfs_write_amplification", "txfs_cleaner_passes_total", "txfs_cleaner_segments_cleaned_total",
	"txfs_cleaner_moved_bytes_total", "txfs_cleaner_running", "txfs_metadata_cache_lookups_total",
	"txfs_recovery_duration_seconds", "txfs_recovery_replayed_units", "txfs_log_flush_duration_seconds",
	"txfs_log_flush_transactions", "txfs_checkpoint_duration_seconds", "txfs_checkpoint_written_bytes_total",
	"go_goroutines", "process_resident_memory_bytes",
}

// GET /metrics on the socket answers the volume's registry in the
// Prometheus text format, and its values move with the volume.
func TestMetricsOnTheSocket(t *testing.T) {
	v := newVolume(t)
	c := DialSocket(serve(t, v, os.Getuid()))
	defer c.Close()
	scrape := func() func(name string, labels ...string) float64 { return metricstest.Scrape(t, c.Metrics) }
	before := scrape()
	for _, name := range volumeFamilies {
		before(name) // fails the test if it is missing
	}

	f, err := v.Create(txfs.RootIno, "f", 0o644, txfs.Owner{})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(data)
	if _, err := v.Write(f.Ino, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Fsync(f.Ino); err != nil {
		t.Fatal(err)
	}
	after := scrape()
	if got, was := after("txfs_log_operation_bytes_total"), before("txfs_log_operation_bytes_total"); got < was+1<<20 {
		t.Errorf("log bytes of operations %v after writing 1 MiB, %v before", got, was)
	}
	if got, was := after("txfs_log_flush_duration_seconds"), before("txfs_log_flush_duration_seconds"); got < was+1 {
		t.Errorf("flushes %v after an fsync, %v before", got, was)
	}
	if got, was := after("txfs_transactions_total"), before("txfs_transactions_total"); got < was+2 {
		t.Errorf("transactions %v after a create and a write, %v before", got, was)
	}
}

// /metrics wants GET.
func TestMetricsMethod(t *testing.T) {
	path := serve(t, &fakeFS{}, os.Getuid())
	if code, body, h := get(t, path, "POST", MetricsPath); code != http.StatusMethodNotAllowed || h.Get("Allow") != "GET" {
		t.Errorf("POST /metrics: %d (Allow %q) %s, want 405", code, h.Get("Allow"), body)
	}
}

// /metrics is refused to a user who may not use the socket, as the rest
// of it is.
func TestMetricsOtherUserRefused(t *testing.T) {
	needRoot(t)
	dir := sharedDir(t)
	path := filepath.Join(dir, "c.sock")
	s, err := ServeSocket(path, newVolume(t), 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := asUser(t, dir, path, 1000, childMetricsEnv+"=1"); got != "200" {
		t.Errorf("the owner: %q, want 200", got)
	}
	if got := asUser(t, dir, path, 65534, childMetricsEnv+"=1"); !strings.HasPrefix(got, "403 permission denied: uid 65534") {
		t.Errorf("uid 65534: %q, want 403", got)
	}
}

// The TCP listener serves /metrics and nothing else; a bad address is
// refused with the option's name.
func TestMetricsOverTCP(t *testing.T) {
	v := newVolume(t)
	ln, err := ListenMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := ServeMetrics(ln, v.Metrics())
	base := "http://" + ln.Addr().String()
	resp, err := http.Get(base + MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	metricstest.Value(t, metricstest.Text(t, body), "txfs_live_bytes")
	if resp, err := http.Get(base + "/v1/status"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v1/status over TCP: %v, %v; want 404", resp, err)
	} else {
		resp.Body.Close()
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if _, err := http.Get(base + MetricsPath); err == nil {
		t.Error("the listener still answers after Close")
	}

	for _, bad := range []string{"", "9567", "127.0.0.1", "127.0.0.1:http-alt-x", "127.0.0.1:99999", "no.such.host.invalid:9567"} {
		if ln, err := ListenMetrics(bad); err == nil {
			ln.Close()
			t.Errorf("metrics=%s accepted", bad)
		} else if !strings.Contains(err.Error(), "metrics="+bad) {
			t.Errorf("metrics=%s: %v, want an error naming the option", bad, err)
		}
	}
	// An address in use is refused too.
	busy, err := ListenMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if ln, err := ListenMetrics(busy.Addr().String()); err == nil {
		ln.Close()
		t.Errorf("an address in use accepted")
	}
}
