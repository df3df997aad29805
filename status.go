package txfs

// What a volume says of itself for the control socket and `txfs status`.

// Status is a volume's space and its cleaner's state.
type Status struct {
	BlockSize       uint32
	SegmentSize     uint32
	Segments        int   // segments of the volume
	FreeSegments    int   // segments the log may take now
	ReserveSegments int   // free segments kept from ordinary writers
	SizeBytes       int64 // the segments' bytes
	LiveBytes       int64 // stored bytes of the blocks the volume uses (data and metadata)
	// FreeBytes is what ordinary writers can still put on the volume, as
	// statfs counts it (in bytes, before the per-block overhead).
	FreeBytes int64
	// ReclaimableBytes is the dead space in segments that still hold live
	// blocks: the cleaner gives it back by moving those blocks.
	ReclaimableBytes int64
	// Snapshots is the number of snapshots, and SnapshotBytes the stored
	// bytes only they hold: what deleting every one of them frees (-1:
	// unknown, a snapshot's metadata is damaged).
	Snapshots     int
	SnapshotBytes int64
	ReadOnly      bool
	Cleaner       CleanerStatus
}

// CleanerStatus is what the segment cleaner has done since the volume was
// opened, and how it is set.
type CleanerStatus struct {
	Policy string // victim selection: "greedy", "cost-benefit" or "age-threshold"
	State  string // "idle", "cleaning", or "off" (read-only volume)
	// LowWatermark and HighWatermark are in free segments: cleaning starts
	// below the low one and goes on up to the high one.
	LowWatermark, HighWatermark int
	Passes                      uint64 // cleaning passes run
	SegmentsCleaned             uint64 // victims emptied
	BytesMoved                  int64  // live bytes copied to the cold head
	// UserBytes is what operations wrote to the log (their blocks and
	// records); DeviceBytes everything written to the device: the log,
	// checkpoints and the cleaner's copies. WriteAmplification is their
	// ratio (0 before anything was written).
	UserBytes          int64
	DeviceBytes        int64
	WriteAmplification float64
}

// CleanResult is what one cleaning pass did.
type CleanResult struct {
	Segments   int   // victims emptied (their space is free once a checkpoint is durable)
	BytesMoved int64 // live bytes copied
	BytesFreed int64 // bytes of the victims given back
}

// Status reports the volume's space and its cleaner's state.
func (v *Volume) Status() (Status, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return Status{}, err
	}
	st := Status{BlockSize: uint32(v.bs), SegmentSize: v.geo.SegmentSize, Segments: int(v.geo.Segments),
		ReserveSegments: v.log.Reserve, SizeBytes: int64(v.geo.Segments) * int64(v.geo.SegmentSize),
		ReadOnly: v.opts.ReadOnly}
	if v.log.Cur != nil {
		st.FreeSegments = len(v.log.Free)
		st.FreeBytes = max(v.availableBytes(), 0)
		st.ReclaimableBytes = v.reclaimableBytes()
	}
	for s := range v.geo.Segments {
		e, err := v.sut.Get(s)
		if err != nil {
			return st, err
		}
		st.LiveBytes += int64(e.Live) + int64(e.Tables)*int64(v.bs)
	}
	st.Snapshots = len(v.snaps)
	var err error
	if st.SnapshotBytes, err = v.exclusiveBytes(v.snapshotRoots()...); err != nil {
		// A snapshot's metadata does not read back: the status still
		// says everything else.
		v.logf("status: the space only snapshots hold: %v", err)
		st.SnapshotBytes = -1
	}
	c := &v.clean
	st.Cleaner = CleanerStatus{Policy: c.policy.Name(), State: "idle", LowWatermark: c.low, HighWatermark: c.high,
		Passes: c.passes, SegmentsCleaned: c.cleaned, BytesMoved: c.moved,
		UserBytes: v.log.OpsBytes, DeviceBytes: v.log.LogBytes + c.written}
	switch {
	case v.ro:
		st.Cleaner.State = "off"
	case c.running:
		st.Cleaner.State = "cleaning"
	}
	if st.Cleaner.UserBytes > 0 {
		st.Cleaner.WriteAmplification = float64(st.Cleaner.DeviceBytes) / float64(st.Cleaner.UserBytes)
	}
	return st, nil
}
