package txfs

import (
	"math/rand"
	"testing"
	"time"

	"github.com/txfs/txfs/internal/metricstest"
)

// The engine's metrics move with what the volume does: transactions and
// their bytes, a flush for an fsync, a checkpoint for a sync, the caches,
// the segments, the snapshots; and recovery says what Open replayed.
func TestMetricsFollowTheVolume(t *testing.T) {
	v, dev := newTestVolume(t, 64<<20, Options{CheckpointBytes: 1 << 40, CheckpointInterval: time.Hour})
	reg := v.Metrics()
	value := func(name string, labels ...string) float64 {
		return metricstest.Value(t, reg, name, labels...)
	}
	flushes, txns := value("txfs_log_flush_duration_seconds"), value("txfs_transactions_total")
	opsBytes, devBytes := value("txfs_log_operation_bytes_total"), value("txfs_device_written_bytes_total")
	ckpts := value("txfs_checkpoint_duration_seconds")

	f, err := v.Create(RootIno, "f", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(data) // incompressible
	if _, err := v.Write(f.Ino, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Fsync(f.Ino); err != nil {
		t.Fatal(err)
	}
	if got := value("txfs_log_flush_duration_seconds"); got < flushes+1 {
		t.Errorf("flushes %v after an fsync, %v before", got, flushes)
	}
	if got := value("txfs_log_flush_transactions"); got != value("txfs_log_flush_duration_seconds") {
		t.Errorf("%v observations of transactions per flush for %v flushes", got, value("txfs_log_flush_duration_seconds"))
	}
	if got := value("txfs_transactions_total"); got < txns+2 {
		t.Errorf("transactions %v after a create and a write, %v before", got, txns)
	}
	if got := value("txfs_log_operation_bytes_total"); got < opsBytes+1<<20 {
		t.Errorf("log bytes of operations %v after writing 1 MiB, %v before", got, opsBytes)
	}
	if got := value("txfs_device_written_bytes_total"); got < devBytes+1<<20 {
		t.Errorf("device bytes %v after writing 1 MiB, %v before", got, devBytes)
	}

	// A crash now: the recovery of the copy replays the units after
	// the checkpoint of the format.
	crashed := dev.Snapshot()
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := value("txfs_checkpoint_duration_seconds"); got != ckpts+1 {
		t.Errorf("checkpoints %v after a sync, %v before", got, ckpts)
	}
	if got := value("txfs_checkpoint_written_bytes_total"); got <= 0 {
		t.Errorf("checkpoint bytes %v after a checkpoint", got)
	}
	if got := value("txfs_metadata_cache_lookups_total", "cache", "tree"); got <= 0 {
		t.Errorf("tree cache lookups %v after operations", got)
	}
	st, err := v.Status()
	if err != nil {
		t.Fatal(err)
	}
	if got := value("txfs_segment_fullness"); got != float64(st.Segments) {
		t.Errorf("fullness of %v segments, the volume has %d", got, st.Segments)
	}
	if got := value("txfs_free_segments"); got != float64(st.FreeSegments) {
		t.Errorf("free segments %v, status says %d", got, st.FreeSegments)
	}
	if err := v.CreateSnapshot("s"); err != nil {
		t.Fatal(err)
	}
	if got := value("txfs_snapshots"); got != 1 {
		t.Errorf("snapshots %v after creating one", got)
	}

	r, err := Open(crashed, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := metricstest.Value(t, r.Metrics(), "txfs_recovery_replayed_units"); got < 1 {
		t.Errorf("recovery replayed %v units of a log with a create and a write after its checkpoint", got)
	}
	if got := metricstest.Value(t, r.Metrics(), "txfs_recovery_duration_seconds"); got <= 0 {
		t.Errorf("recovery took %v s", got)
	}
}

// Every volume has its registry: what one does does not show in the
// other's.
func TestMetricsPerVolume(t *testing.T) {
	a, _ := newTestVolume(t, 32<<20, Options{})
	b, _ := newTestVolume(t, 32<<20, Options{})
	if a.Metrics() == b.Metrics() {
		t.Fatal("two volumes share a registry")
	}
	before := metricstest.Value(t, b.Metrics(), "txfs_transactions_total")
	if _, err := a.Create(RootIno, "f", 0o644, Owner{}); err != nil {
		t.Fatal(err)
	}
	if got := metricstest.Value(t, a.Metrics(), "txfs_transactions_total"); got < 1 {
		t.Errorf("transactions of a %v after a create", got)
	}
	if got := metricstest.Value(t, b.Metrics(), "txfs_transactions_total"); got != before {
		t.Errorf("transactions of b went from %v to %v with a create on a", before, got)
	}
}
