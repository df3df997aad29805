package txfs

// Statfs: what the volume says of its space.

// Statfs reports the volume's space. Free space is what ordinary writers
// can still put in the log (space.go: the log's room and the segments
// deletes emptied, less the next checkpoint and the reserve), counted in
// blocks of file data with what each costs in the log beside itself, so
// that a file can take all of it. Used is the rest: live data, metadata,
// and dead blocks in segments that still hold live ones.
func (v *Volume) Statfs() (Statfs, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return Statfs{}, err
	}
	bs := uint64(v.bs)
	total := uint64(int(v.geo.Segments)-v.log.Reserve) * uint64(v.geo.SegmentSize) / bs
	free := uint64(0)
	if v.log.Cur != nil {
		free = uint64(max(v.availableBytes(), 0)) / (bs + uint64(v.blockOverhead()))
	}
	free = min(free, total)
	used := v.nextIno - RootIno
	return Statfs{BlockSize: uint32(bs), Blocks: total, Bfree: free, Bavail: free,
		Files: used + free, Ffree: free, NameLen: MaxNameLen}, nil
}

// LogHead is the device address where the next unit of the log goes (for
// tools and tests that look at the log on the device).
func (v *Volume) LogHead() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return int64(v.log.Cur.Addr)
}
