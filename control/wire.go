package control

import (
	"errors"
	"time"

	"github.com/txfs/txfs"
)

// The JSON the API speaks. Field names are part of API version 1: fields
// may be added, none renamed, removed or given another meaning.

// Status is the answer to GET /v1/status: the volume's space and its
// cleaner's state (txfs.Status).
type Status struct {
	BlockSize        uint32        `json:"block_size"`        // bytes
	SegmentSize      uint32        `json:"segment_size"`      // bytes
	Segments         int           `json:"segments"`          // segments of the volume
	FreeSegments     int           `json:"free_segments"`     // segments the log may take now
	ReserveSegments  int           `json:"reserve_segments"`  // free segments kept from ordinary writers
	SizeBytes        int64         `json:"size_bytes"`        // the segments' bytes
	LiveBytes        int64         `json:"live_bytes"`        // stored bytes of the blocks in use
	FreeBytes        int64         `json:"free_bytes"`        // what ordinary writers can still write, as statfs counts it
	ReclaimableBytes int64         `json:"reclaimable_bytes"` // dead bytes in segments that still hold live blocks
	Snapshots        int           `json:"snapshots"`         // snapshots of the volume
	SnapshotBytes    int64         `json:"snapshot_bytes"`    // bytes only snapshots hold: what deleting all of them frees
	ReadOnly         bool          `json:"read_only"`
	Cleaner          CleanerStatus `json:"cleaner"`
}

// CleanerStatus is the segment cleaner's part of Status
// (txfs.CleanerStatus): how it is set and what it has done since the
// volume was opened.
type CleanerStatus struct {
	Policy             string  `json:"policy"`              // "greedy", "cost-benefit" or "age-threshold"
	State              string  `json:"state"`               // "idle", "cleaning" or "off"
	LowWatermark       int     `json:"low_watermark"`       // free segments below which cleaning starts
	HighWatermark      int     `json:"high_watermark"`      // free segments up to which it goes on
	Passes             uint64  `json:"passes"`              // cleaning passes run
	SegmentsCleaned    uint64  `json:"segments_cleaned"`    // victims emptied
	BytesMoved         int64   `json:"bytes_moved"`         // live bytes copied
	UserBytes          int64   `json:"user_bytes"`          // bytes operations wrote to the log
	DeviceBytes        int64   `json:"device_bytes"`        // bytes written to the device
	WriteAmplification float64 `json:"write_amplification"` // device_bytes / user_bytes (0 before any write)
}

// CleanResult is the answer to POST /v1/clean: what one cleaning pass
// did (txfs.CleanResult).
type CleanResult struct {
	SegmentsCleaned int   `json:"segments_cleaned"` // victims emptied
	BytesMoved      int64 `json:"bytes_moved"`      // live bytes copied
	BytesFreed      int64 `json:"bytes_freed"`      // bytes of the victims given back
}

// errorBody is the answer to every request that fails.
type errorBody struct {
	Error string `json:"error"`
	// Code says which error it is, for clients: "snapshot-exists",
	// "no-snapshot", "invalid" or "" for any other.
	Code string `json:"code,omitempty"`
}

// The codes of errorBody, and the errors they stand for.
var errorCodes = []struct {
	code string
	err  error
}{
	{"snapshot-exists", txfs.ErrSnapshotExists},
	{"no-snapshot", txfs.ErrNoSnapshot},
	{"invalid", txfs.ErrInvalid},
}

func codeOf(err error) string {
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

// ReloadResult is the answer to POST /v1/reload?o=OPTIONS: the options
// applied.
type ReloadResult struct {
	Applied []string `json:"applied"`
}

// Snapshot is one snapshot in the answer to GET /v1/snapshots.
type Snapshot struct {
	Name           string    `json:"name"`
	Created        time.Time `json:"created"`
	ExclusiveBytes int64     `json:"exclusive_bytes"` // what deleting it frees
	SharedBytes    int64     `json:"shared_bytes"`    // what it holds that the live tree or another snapshot holds too
}

// SnapshotList is the answer to GET /v1/snapshots: every snapshot, oldest
// first.
type SnapshotList struct {
	Snapshots []Snapshot `json:"snapshots"`
}

// SnapshotResult is the answer to POST /v1/snapshots/NAME/create,
// .../restore and .../delete.
type SnapshotResult struct {
	Name string `json:"name"`
	Done string `json:"done"` // "created", "restored" or "deleted"
}

// SnapshotListOf is the wire form of a volume's snapshots.
func SnapshotListOf(list []txfs.SnapshotInfo) SnapshotList {
	out := SnapshotList{Snapshots: []Snapshot{}}
	for _, s := range list {
		out.Snapshots = append(out.Snapshots, Snapshot{Name: s.Name, Created: s.Created, ExclusiveBytes: s.Exclusive, SharedBytes: s.Shared})
	}
	return out
}

// StatusOf is the wire form of a volume's status.
func StatusOf(s txfs.Status) Status {
	c := s.Cleaner
	return Status{
		BlockSize: s.BlockSize, SegmentSize: s.SegmentSize, Segments: s.Segments,
		FreeSegments: s.FreeSegments, ReserveSegments: s.ReserveSegments,
		SizeBytes: s.SizeBytes, LiveBytes: s.LiveBytes, FreeBytes: s.FreeBytes,
		ReclaimableBytes: s.ReclaimableBytes, Snapshots: s.Snapshots, SnapshotBytes: s.SnapshotBytes, ReadOnly: s.ReadOnly,
		Cleaner: CleanerStatus{
			Policy: c.Policy, State: c.State, LowWatermark: c.LowWatermark, HighWatermark: c.HighWatermark,
			Passes: c.Passes, SegmentsCleaned: c.SegmentsCleaned, BytesMoved: c.BytesMoved,
			UserBytes: c.UserBytes, DeviceBytes: c.DeviceBytes, WriteAmplification: c.WriteAmplification,
		},
	}
}

// CleanResultOf is the wire form of a cleaning pass's result.
func CleanResultOf(r txfs.CleanResult) CleanResult {
	return CleanResult{SegmentsCleaned: r.Segments, BytesMoved: r.BytesMoved, BytesFreed: r.BytesFreed}
}

// Segments is the answer to GET /v1/segments: how full each segment is.
type Segments struct {
	SegmentSize uint32  `json:"segment_size"` // bytes
	LiveBytes   []int64 `json:"live_bytes"`   // segment i's bytes in use, segment 0 first
	Free        []int   `json:"free"`         // the free segments (the log may take them), ascending
}

// segmentReporter is a Filesystem that can also say how full each of its
// segments is (*txfs.Volume can).
type segmentReporter interface {
	Segments() ([]txfs.SegmentUsage, error)
}

// SegmentsOf is the wire form of a volume's segments.
func SegmentsOf(size uint32, segs []txfs.SegmentUsage) Segments {
	out := Segments{SegmentSize: size, LiveBytes: make([]int64, len(segs)), Free: []int{}}
	for i, s := range segs {
		out.LiveBytes[i] = s.Live
		if s.Free {
			out.Free = append(out.Free, i)
		}
	}
	return out
}
