package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Superblock layout (256 bytes at the start of each of the two slots; slot i
// is the block at byte offset i*BlockSize; all integers little-endian):
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
//	116     4 reserved (0)
//	120     8 sequence number of that unit
//	128     8 checksum of that unit (its header checksum field)
//	136   112 reserved (0)
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
)

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
}

// UnitRef names one log unit exactly: where it is, how long, its sequence
// number and its checksum.
type UnitRef struct {
	Addr uint64
	Len  uint32
	Seq  uint64
	Sum  uint64
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
	if s.Version != FormatVersion {
		return nil, fmt.Errorf("%w: %d (this txfs reads version %d)", ErrVersion, s.Version, FormatVersion)
	}
	s.Flags = le.Uint32(b[12:])
	copy(s.UUID[:], b[16:32])
	s.Label = string(bytes.TrimRight(b[32:64], "\x00"))
	s.Geometry = Geometry{BlockSize: le.Uint32(b[64:]), SegmentSize: le.Uint32(b[68:]), Segments: le.Uint32(b[72:])}
	s.DeviceSize = le.Uint64(b[80:])
	s.Created = int64(le.Uint64(b[88:]))
	s.Generation = le.Uint64(b[96:])
	s.Checkpoint = UnitRef{Addr: le.Uint64(b[104:]), Len: le.Uint32(b[112:]), Seq: le.Uint64(b[120:]), Sum: le.Uint64(b[128:])}
	if err := s.Geometry.Validate(int64(s.DeviceSize)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return s, nil
}

// ReadSuperblock reads both slots and returns the valid one with the highest
// generation, and which slot it was. Slot 1 sits one block in; when slot 0
// is valid its block size says where, and slot 1 counts only if it belongs
// to the same volume (an older volume's slot may survive at another block
// size). The error of each bad slot is kept so a user can be told what is
// damaged.
func ReadSuperblock(dev Device) (*Superblock, int, error) {
	read := func(off int64) (*Superblock, error) {
		buf := make([]byte, SuperSize)
		if _, err := dev.ReadAt(buf, off); err != nil {
			return nil, err
		}
		return DecodeSuperblock(buf)
	}
	var errs []error
	s0, err := read(0)
	if err != nil {
		errs = append(errs, fmt.Errorf("slot 0: %w", err))
	}
	var s1 *Superblock
	for bs := int64(MinBlockSize); bs <= MaxBlockSize; bs *= 2 {
		if s0 != nil && bs != int64(s0.Geometry.BlockSize) {
			continue
		}
		s, err := read(bs)
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

// WriteSuperblock writes s into slot (0 or 1).
func WriteSuperblock(dev Device, s *Superblock, slot int) error {
	b := make([]byte, s.Geometry.BlockSize)
	copy(b, s.Encode())
	_, err := dev.WriteAt(b, int64(slot)*int64(s.Geometry.BlockSize))
	return err
}
