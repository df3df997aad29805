package txfs

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// The volume's Prometheus metrics (docs/DESIGN.md, "Metrics"). Every
// volume has a registry of its own, so that one process may hold several.
// What happens on the way of an operation is counted where it happens,
// with an atomic add or a histogram observe and no lock of its own: log
// flushes in the log writer, checkpoints when they are durable, cache
// lookups in the caches. The state of the volume (space, segments,
// snapshots, the cleaner) is read when the registry is gathered, under the
// volume's lock, as Status reads it. The FUSE adapter adds the operations
// and the bytes users read and write (package fuse).

// volumeMetrics are the metrics a volume observes as it goes.
type volumeMetrics struct {
	registry *prometheus.Registry

	flushSeconds      prometheus.Histogram // each flush of the device by the log writer
	flushTxns         prometheus.Histogram // the transactions each flush made durable
	checkpointSeconds prometheus.Histogram // each checkpoint, from its start until it is named by the superblock
	checkpointBytes   prometheus.Counter   // the bytes of the checkpoints' units

	// Set by Open before the volume is returned, read only after.
	recoverySeconds float64
	replayedUnits   int
}

// LatencyBuckets are the upper bounds, in seconds, of the latency
// histograms: from 10 µs (an operation the caches answer) to 10 s.
var LatencyBuckets = []float64{10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 10}

func newVolumeMetrics(v *Volume) *volumeMetrics {
	m := &volumeMetrics{registry: prometheus.NewRegistry()}
	m.flushSeconds = newHistogram("txfs_log_flush_duration_seconds",
		"Time of each flush (device sync) of the log writer; the count is the number of flushes.", LatencyBuckets)
	m.flushTxns = newHistogram("txfs_log_flush_transactions",
		"Transactions each flush of the log made durable (group commit).", prometheus.ExponentialBuckets(1, 2, 12))
	m.checkpointSeconds = newHistogram("txfs_checkpoint_duration_seconds",
		"Time of each checkpoint until it is durable and named by the superblock; the count is the number of checkpoints.", LatencyBuckets)
	m.checkpointBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "txfs_checkpoint_written_bytes_total",
		Help: "Bytes of the units checkpoints wrote to the log (metadata blocks, tables, records).",
	})
	m.registry.MustRegister(m.flushSeconds, m.flushTxns, m.checkpointSeconds, m.checkpointBytes,
		&stateCollector{v: v},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func newHistogram(name, help string, buckets []float64) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
}

// flushed is the log writer's Flushed.
func (m *volumeMetrics) flushed(txns int, took time.Duration) {
	m.flushSeconds.Observe(took.Seconds())
	m.flushTxns.Observe(float64(txns))
}

// checkpointed counts a checkpoint that began at start and wrote bytes.
func (m *volumeMetrics) checkpointed(start time.Time, bytes int64) {
	m.checkpointSeconds.Observe(time.Since(start).Seconds())
	m.checkpointBytes.Add(float64(bytes))
}

// Metrics is the volume's registry of Prometheus metrics: what the
// engine counts, the volume's state read when it is gathered, and the Go
// runtime and process collectors. The FUSE adapter registers its own in
// it; GET /metrics on the control socket serves it.
func (v *Volume) Metrics() *prometheus.Registry { return v.metrics.registry }

// stateCollector reads the state of the volume each time the registry is
// gathered: nothing of it costs the operations anything.
type stateCollector struct{ v *Volume }

func newDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// The metrics of stateCollector.
var (
	descSize            = newDesc("txfs_size_bytes", "Bytes of the volume's segments.")
	descSegments        = newDesc("txfs_segments", "Segments of the volume.")
	descFreeSegments    = newDesc("txfs_free_segments", "Segments the log may take now.")
	descReserveSegments = newDesc("txfs_reserve_segments", "Free segments kept from ordinary writers.")
	descLive            = newDesc("txfs_live_bytes", "Stored bytes of the blocks in use (data and metadata).")
	descFree            = newDesc("txfs_free_bytes", "Bytes ordinary writers can still write, as statfs counts them.")
	descReclaimable     = newDesc("txfs_reclaimable_bytes", "Dead bytes in segments that still hold live blocks: what the cleaner can give back.")
	descFullness        = newDesc("txfs_segment_fullness", "Segments by the share of their bytes that are live (0: empty, 1: full).")
	descSnapshots       = newDesc("txfs_snapshots", "Snapshots of the volume.")
	descSnapshotBytes   = newDesc("txfs_snapshot_bytes", "Stored bytes only snapshots hold: what deleting all of them frees.")
	descReadOnly        = newDesc("txfs_read_only", "1 if the volume is read-only.")
	descTransactions    = newDesc("txfs_transactions_total", "Transactions committed since the volume was opened.")
	descLogOps          = newDesc("txfs_log_operation_bytes_total", "Bytes of the log units of operations (their records and blocks).")
	descDevice          = newDesc("txfs_device_written_bytes_total", "Bytes written to the device: the log, checkpoints and the cleaner's copies.")
	descAmplification   = newDesc("txfs_write_amplification", "Bytes written to the device per byte of operations in the log (0 before any write).")
	descPasses          = newDesc("txfs_cleaner_passes_total", "Cleaning passes run.")
	descCleaned         = newDesc("txfs_cleaner_segments_cleaned_total", "Segments the cleaner emptied.")
	descMoved           = newDesc("txfs_cleaner_moved_bytes_total", "Live bytes the cleaner copied.")
	descCleaning        = newDesc("txfs_cleaner_running", "1 while a cleaning pass runs.")
	descCache           = newDesc("txfs_metadata_cache_lookups_total", "Lookups of metadata blocks by cache (tree: the metadata tree's nodes; dat, sut: the blocks of the block address and segment usage tables) and result (hit: in memory; miss: read from the device).", "cache", "result")
	descRecovery        = newDesc("txfs_recovery_duration_seconds", "Time Open took to recover the volume: the checkpoint, the log replayed after it, orphans freed.")
	descReplayed        = newDesc("txfs_recovery_replayed_units", "Log units Open replayed after the newest checkpoint.")
)

// fullnessBuckets are the upper bounds of txfs_segment_fullness.
var fullnessBuckets = []float64{0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSize, descSegments, descFreeSegments, descReserveSegments, descLive,
		descFree, descReclaimable, descFullness, descSnapshots, descSnapshotBytes, descReadOnly, descTransactions,
		descLogOps, descDevice, descAmplification, descPasses, descCleaned, descMoved, descCleaning, descCache,
		descRecovery, descReplayed} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.v
	gauge := func(d *prometheus.Desc, x float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, x, labels...)
	}
	counter := func(d *prometheus.Desc, x float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, x, labels...)
	}
	gauge(descRecovery, v.metrics.recoverySeconds)
	gauge(descReplayed, float64(v.metrics.replayedUnits))

	st, err := v.Status()
	if err != nil {
		// A closed or stopped volume: its state is not known.
		ch <- prometheus.NewInvalidMetric(descLive, err)
		return
	}
	gauge(descSize, float64(st.SizeBytes))
	gauge(descSegments, float64(st.Segments))
	gauge(descFreeSegments, float64(st.FreeSegments))
	gauge(descReserveSegments, float64(st.ReserveSegments))
	gauge(descLive, float64(st.LiveBytes))
	gauge(descFree, float64(st.FreeBytes))
	gauge(descReclaimable, float64(st.ReclaimableBytes))
	gauge(descSnapshots, float64(st.Snapshots))
	gauge(descSnapshotBytes, float64(st.SnapshotBytes))
	gauge(descReadOnly, boolValue(st.ReadOnly))
	cl := st.Cleaner
	counter(descLogOps, float64(cl.UserBytes))
	counter(descDevice, float64(cl.DeviceBytes))
	gauge(descAmplification, cl.WriteAmplification)
	counter(descPasses, float64(cl.Passes))
	counter(descCleaned, float64(cl.SegmentsCleaned))
	counter(descMoved, float64(cl.BytesMoved))
	gauge(descCleaning, boolValue(cl.State == "cleaning"))

	s, err := v.metricsState()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descFullness, err)
		return
	}
	counter(descTransactions, float64(s.committed))
	for _, c := range s.caches {
		counter(descCache, float64(c.hits), c.name, "hit")
		counter(descCache, float64(c.misses), c.name, "miss")
	}
	ch <- prometheus.MustNewConstHistogram(descFullness, uint64(len(s.fullness)), s.fullnessSum, s.fullnessBuckets())
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricsState is what the collector reads beside Status.
type metricsState struct {
	committed   uint64
	caches      []cacheCounts
	fullness    []float64 // each segment's share of live bytes
	fullnessSum float64
}

type cacheCounts struct {
	name         string
	hits, misses uint64
}

// fullnessBuckets is the cumulative count of segments at or below each
// bound of fullnessBuckets.
func (s metricsState) fullnessBuckets() map[float64]uint64 {
	b := make(map[float64]uint64, len(fullnessBuckets))
	for _, f := range s.fullness {
		for _, bound := range fullnessBuckets {
			if f <= bound {
				b[bound]++
			}
		}
	}
	return b
}

// metricsState reads the counters the volume's lock guards, the caches'
// counts and the fullness of every segment.
func (v *Volume) metricsState() (metricsState, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return metricsState{}, err
	}
	s := metricsState{committed: v.log.Committed}
	th, tm := v.tree.CacheCounts()
	dh, dm := v.dat.CacheCounts()
	sh, sm := v.sut.CacheCounts()
	s.caches = []cacheCounts{{"tree", th, tm}, {"dat", dh, dm}, {"sut", sh, sm}}
	size := float64(v.geo.SegmentSize)
	s.fullness = make([]float64, v.geo.Segments)
	for seg := range v.geo.Segments {
		e, err := v.sut.Get(seg)
		if err != nil {
			return s, err
		}
		f := min(float64(int64(e.Live)+int64(e.Tables)*int64(v.bs))/size, 1)
		s.fullness[seg] = f
		s.fullnessSum += f
	}
	return s, nil
}
