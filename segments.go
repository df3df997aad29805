package txfs

// What each segment holds, for the picture of the log that the control
// socket serves.

// SegmentUsage is one segment's use: the bytes of the blocks it holds
// that the volume still uses, and whether it is free (the log may take
// it; its bytes are then dead).
type SegmentUsage struct {
	Live int64
	Free bool
}

// Segments reports every segment's use, segment 0 first.
func (v *Volume) Segments() ([]SegmentUsage, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return nil, err
	}
	usageBlocks, err := v.usageBlocksBySegment()
	if err != nil {
		return nil, err
	}
	out := make([]SegmentUsage, v.geo.Segments)
	for s := range v.geo.Segments {
		e, err := v.sut.Get(s)
		if err != nil {
			return nil, err
		}
		out[s].Live = v.segmentUse(e, usageBlocks[s])
	}
	for _, s := range v.log.Free {
		out[s].Free = true
	}
	return out, nil
}
