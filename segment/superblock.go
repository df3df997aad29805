package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Superblock layout (256 bytes, stored twice in each of the two slots: at the
// start of the slot and CopyOffset bytes into it, so that damage to one copy
// leaves the other; slot i is the block at byte offset i*BlockSize; all
// integers little-endian):
//
//	off  size field
//	  0     8 magic "TXFSSUPR"
//	  8     4 format version (FormatVersion)
//	 12     4 flags (SuperCompress: compress new blocks with LZ4)
//	 16    16 volume UUID
//	 32    32 label, NUL-padded
//	 64     4 block size
//	 68     4 segment size
//	 72     4 segment count
//	 76     4 reserved (0)
//	 80     8 device bytes at mkfs time
//	 88     8 creation time, Unix nanoseconds
//	 96     8 generation: +1 on every superblock write; the valid slot
//	          with the higher generation is current
//	104     8 byte address of the current checkpoint unit
//	112     4 length of that unit in bytes
//	116     4 state: 1 = closed cleanly, nothing follows the checkpoint
//	          in the log; 0 = in use, or not closed cleanly (version 2)
//	120     8 sequence number of that unit
//	128     8 checksum of that unit (its header checksum field)
//	136     4 the next segment that unit names, where it and the unit
//	          after it continue when they pass its segment's end (version 2)
//	140     4 compatible features: a reader that does not know one may
//	          still read and write the volume
//	144     4 read-only compatible features: a reader that does not know
//	          one may only read the volume
//	148     4 incompatible features: a reader that does not know one must
//	          refuse the volume
//	152    96 reserved (0)
//	248     8 xxhash64 of bytes 0..247
//
// These constants are part of the on-disk format.
const (
	SuperMagic = "TXFSSUPR"
	SuperSize  = 256
	// SuperCompress asks that new blocks be stored LZ4-compressed when that
	// saves space.
	SuperCompress = 1 << 0
	LabelSize     = 32
	// CopyOffset is where the second copy of a superblock starts in its slot.
	CopyOffset = 2048
)

// Feature bits this code knows, by the promise each class makes to a
// reader that does not know a bit (as ext4's and pebble's format
// versions). Part of the on-disk format.
const (
	KnownCompat   = 0
	KnownROCompat = 0
	KnownIncompat = IncompatSnapshots

	// IncompatSnapshots: the checkpoint names a snapshot table, and tree
	// nodes and blocks may be shared (counted lazily). A txfs that does
	// not know it would free what snapshots hold.
	IncompatSnapshots = 1 << 0
)

// ErrFeatures reports a volume that uses features this code does not know.
var ErrFeatures = errors.New("segment: unknown features")

// ErrNoSuperblock reports a device that holds no valid txfs superblock.
var ErrNoSuperblock = errors.New("segment: no valid txfs superblock")

// ErrVersion reports a format version this code cannot read.
var ErrVersion = errors.New("segment: unsupported format version")

// Superblock is the root of a volume: its geometry and where its newest
// checkpoint is.
type Superblock struct {
	Version    uint32
	Flags      uint32
	UUID       [16]byte
	Label      string
	Geometry   Geometry
	DeviceSize uint64
	Created    int64
	Generation uint64
	Checkpoint UnitRef
	// Clean says the volume was closed right after this checkpoint, so
	// nothing follows it in the log.
	Clean bool
	// Feature bits (KnownCompat...).
	Compat, ROCompat, Incompat uint32
}

// CheckFeatures says whether this code may open the volume: not at all
// with an incompatible feature it does not know, read-only with a
// read-only compatible one.
func (s *Superblock) CheckFeatures(readOnly bool) error {
	if f := s.Incompat &^ KnownIncompat; f != 0 {
		return fmt.Errorf("%w: the volume uses incompatible features %#x that this txfs does not know; a newer txfs is needed", ErrFeatures, f)
	}
	if f := s.ROCompat &^ KnownROCompat; f != 0 && !readOnly {
		return fmt.Errorf("%w: the volume uses features %#x that this txfs can only read; open it read-only", ErrFeatures, f)
	}
	return nil
}

// UnitRef names one log unit exactly: where it is, how long, its sequence
// number and its checksum.
type UnitRef struct {
	Addr uint64
	Len  uint32
	Seq  uint64
	Sum  uint64
	// NextSeg is the next segment the unit names: where it, and the
	// units after it, continue past the end of its segment.
	NextSeg uint32
}

// VolumeID is the first 8 bytes of the UUID, stamped on every log unit so
// that units of an earlier volume on the same device are never replayed.
func (s *Superblock) VolumeID() uint64 { return binary.LittleEndian.Uint64(s.UUID[:8]) }

// Encode returns the 256-byte encoding.
func (s *Superblock) Encode() []byte {
	b := make([]byte, SuperSize)
	copy(b[0:8], SuperMagic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], s.Version)
	le.PutUint32(b[12:], s.Flags)
	copy(b[16:32], s.UUID[:])
	copy(b[32:64], s.Label)
	le.PutUint32(b[64:], s.Geometry.BlockSize)
	le.PutUint32(b[68:], s.Geometry.SegmentSize)
	le.PutUint32(b[72:], s.Geometry.Segments)
	le.PutUint64(b[80:], s.DeviceSize)
	le.PutUint64(b[88:], uint64(s.Created))
	le.PutUint64(b[96:], s.Generation)
	le.PutUint64(b[104:], s.Checkpoint.Addr)
	le.PutUint32(b[112:], s.Checkpoint.Len)
	le.PutUint64(b[120:], s.Checkpoint.Seq)
	le.PutUint64(b[128:], s.Checkpoint.Sum)
	if s.Version >= 2 {
		if s.Clean {
			le.PutUint32(b[116:], 1)
		}
		le.PutUint32(b[136:], s.Checkpoint.NextSeg)
		le.PutUint32(b[140:], s.Compat)
		le.PutUint32(b[144:], s.ROCompat)
		le.PutUint32(b[148:], s.Incompat)
	}
	le.PutUint64(b[248:], Checksum(b[:248]))
	return b
}

// DecodeSuperblock parses and validates one slot.
func DecodeSuperblock(b []byte) (*Superblock, error) {
	if len(b) < SuperSize {
		return nil, fmt.Errorf("%w: slot is %d bytes", ErrNoSuperblock, len(b))
	}
	if string(b[0:8]) != SuperMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrNoSuperblock)
	}
	le := binary.LittleEndian
	if got, want := Checksum(b[:248]), le.Uint64(b[248:]); got != want {
		return nil, fmt.Errorf("%w: superblock checksum %x, computed %x", ErrChecksum, want, got)
	}
	s := &Superblock{Version: le.Uint32(b[8:])}
	if s.Version < MinFormatVersion || s.Version > FormatVersion {
		return nil, fmt.Errorf("%w: %d (this txfs reads versions %d to %d)", ErrVersion, s.Version, MinFormatVersion, FormatVersion)
	}
	s.Flags = le.Uint32(b[12:])
	copy(s.UUID[:], b[16:32])
	s.Label = string(bytes.TrimRight(b[32:64], "\x00"))
	s.Geometry = Geometry{BlockSize: le.Uint32(b[64:]), SegmentSize: le.Uint32(b[68:]), Segments: le.Uint32(b[72:])}
	s.DeviceSize = le.Uint64(b[80:])
	s.Created = int64(le.Uint64(b[88:]))
	s.Generation = le.Uint64(b[96:])
	s.Checkpoint = UnitRef{Addr: le.Uint64(b[104:]), Len: le.Uint32(b[112:]), Seq: le.Uint64(b[120:]), Sum: le.Uint64(b[128:])}
	if s.Version >= 2 {
		s.Clean = le.Uint32(b[116:]) == 1
		s.Checkpoint.NextSeg = le.Uint32(b[136:])
		s.Compat, s.ROCompat, s.Incompat = le.Uint32(b[140:]), le.Uint32(b[144:]), le.Uint32(b[148:])
	} else {
		s.Checkpoint.NextSeg = noSegment
	}
	if err := s.Geometry.Validate(int64(s.DeviceSize)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return s, nil
}

// noSegment stands for "unknown" where a segment number is expected.
const noSegment = 1<<32 - 1

// ReadSuperblock reads both slots and returns the valid copy with the
// highest generation, and which slot it was in. Each slot holds two copies;
// a torn write or damage may leave one of them, or the other slot. Slot 1
// sits one block in; when slot 0 is valid its block size says where, and
// slot 1 counts only if it belongs to the same volume (an older volume's
// slot may survive at another block size). The error of each bad slot is
// kept so a user can be told what is damaged.
func ReadSuperblock(dev Device) (*Superblock, int, error) {
	// readSlot returns the newer valid copy of the slot at off.
	readSlot := func(off int64) (*Superblock, error) {
		buf := make([]byte, CopyOffset+SuperSize)
		if n, err := dev.ReadAt(buf, off); n < SuperSize && err != nil {
			return nil, err
		}
		a, errA := DecodeSuperblock(buf)
		b, errB := DecodeSuperblock(buf[CopyOffset:])
		switch {
		case errA == nil && errB == nil && b.UUID == a.UUID && b.Generation > a.Generation:
			return b, nil
		case errA == nil:
			return a, nil
		case errB == nil:
			return b, nil
		}
		return nil, errA
	}
	var errs []error
	s0, err := readSlot(0)
	if err != nil {
		errs = append(errs, fmt.Errorf("slot 0: %w", err))
	}
	var s1 *Superblock
	for bs := int64(MinBlockSize); bs <= MaxBlockSize; bs *= 2 {
		if s0 != nil && bs != int64(s0.Geometry.BlockSize) {
			continue
		}
		s, err := readSlot(bs)
		if err == nil && int64(s.Geometry.BlockSize) == bs && (s0 == nil || s.UUID == s0.UUID) {
			s1 = s
			break
		}
	}
	if s1 == nil {
		errs = append(errs, fmt.Errorf("slot 1: %w", ErrNoSuperblock))
	}
	switch {
	case s0 != nil && (s1 == nil || s0.Generation >= s1.Generation):
		return s0, 0, nil
	case s1 != nil:
		return s1, 1, nil
	}
	return nil, -1, fmt.Errorf("%w (%v)", ErrNoSuperblock, errors.Join(errs...))
}

// WriteSuperblock writes s, both copies, into slot (0 or 1).
func WriteSuperblock(dev Device, s *Superblock, slot int) error {
	b := make([]byte, s.Geometry.BlockSize)
	enc := s.Encode()
	copy(b, enc)
	copy(b[CopyOffset:], enc)
	_, err := dev.WriteAt(b, int64(slot)*int64(s.Geometry.BlockSize))
	return err
}
