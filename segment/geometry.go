package segment

import (
	"errors"
	"fmt"
)

// FormatVersion is the on-disk format version written by this code. Part of
// the on-disk format: a reader refuses versions outside [MinFormatVersion,
// FormatVersion]. Version 2 adds units that continue into the next segment,
// durable marks in units, two copies of the superblock in each slot, the
// clean-close flag and the checkpoint unit's next segment in the
// superblock; a version 1 volume opened read-write becomes version 2.
const FormatVersion = 2

// Limits on the geometry of a volume.
const (
	MinBlockSize   = 4096
	MaxBlockSize   = 65536
	MinSegmentSize = 64 * 1024
	MaxSegmentSize = 256 << 20
	// MinSegments is the smallest number of segments a volume can work
	// with: the log head, the next segment, a checkpoint, and slack so
	// that a checkpoint can always be written when user writes get ENOSPC.
	MinSegments = 8
)

// ErrGeometry reports an invalid block size, segment size or device size.
var ErrGeometry = errors.New("segment: invalid geometry")

// Geometry is the shape of a volume: where segments start and how big they are.
type Geometry struct {
	BlockSize   uint32 // bytes per block, power of two
	SegmentSize uint32 // bytes per segment, a multiple of BlockSize
	Segments    uint32 // number of segments
}

// SegmentAreaStart is the byte offset of segment 0: right after the two
// superblock slots, each one block long.
func (g Geometry) SegmentAreaStart() int64 { return 2 * int64(g.BlockSize) }

// SegmentOffset is the byte address of the start of segment s.
func (g Geometry) SegmentOffset(s uint32) int64 {
	return g.SegmentAreaStart() + int64(s)*int64(g.SegmentSize)
}

// SegmentOf returns the segment that holds byte address addr and whether the
// address is inside the segment area.
func (g Geometry) SegmentOf(addr uint64) (uint32, bool) {
	start := uint64(g.SegmentAreaStart())
	if addr < start {
		return 0, false
	}
	s := (addr - start) / uint64(g.SegmentSize)
	if s >= uint64(g.Segments) {
		return 0, false
	}
	return uint32(s), true
}

// DeviceBytes is the number of bytes of the device the geometry uses.
func (g Geometry) DeviceBytes() int64 { return g.SegmentOffset(g.Segments) }

// Validate checks the geometry against the limits and the device size.
func (g Geometry) Validate(deviceSize int64) error {
	bs := g.BlockSize
	if bs < MinBlockSize || bs > MaxBlockSize || bs&(bs-1) != 0 {
		return fmt.Errorf("%w: block size %d is not a power of two between %d and %d", ErrGeometry, bs, MinBlockSize, MaxBlockSize)
	}
	ss := g.SegmentSize
	if ss < MinSegmentSize || ss > MaxSegmentSize || ss%bs != 0 || ss < 16*bs {
		return fmt.Errorf("%w: segment size %d must be a multiple of the block size between %d and %d holding at least 16 blocks", ErrGeometry, ss, MinSegmentSize, MaxSegmentSize)
	}
	if g.Segments < MinSegments {
		return fmt.Errorf("%w: %d segments, need at least %d", ErrGeometry, g.Segments, MinSegments)
	}
	if g.DeviceBytes() > deviceSize {
		return fmt.Errorf("%w: %d segments of %d bytes need %d bytes, device has %d", ErrGeometry, g.Segments, ss, g.DeviceBytes(), deviceSize)
	}
	return nil
}

// GeometryFor picks the geometry for a device of size bytes with the given
// block and segment sizes (0 means the default).
func GeometryFor(size int64, blockSize, segmentSize uint32) (Geometry, error) {
	if blockSize == 0 {
		blockSize = 4096
	}
	if segmentSize == 0 {
		segmentSize = DefaultSegmentSize(size)
	}
	g := Geometry{BlockSize: blockSize, SegmentSize: segmentSize}
	if size > g.SegmentAreaStart() {
		n := (size - g.SegmentAreaStart()) / int64(segmentSize)
		if n > 1<<31 {
			n = 1 << 31
		}
		g.Segments = uint32(n)
	}
	return g, g.Validate(size)
}

// DefaultSegmentSize is 16 MiB, smaller for small images so that they
// still have enough segments for the log to move on while space is
// reclaimed. A transaction never spans segments, so the end of a segment
// that cannot take the next one stays empty: with writes of 1 MiB (what
// the mount receives) that is up to 1 MiB per segment, a quarter of a
// 4 MiB segment but a sixteenth of a 16 MiB one.
func DefaultSegmentSize(size int64) uint32 {
	s := uint32(16 << 20)
	for s > MinSegmentSize && size/int64(s) < 64 {
		s /= 2
	}
	return s
}
