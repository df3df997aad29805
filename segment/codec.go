package segment

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/pierrec/lz4/v4"
	"github.com/txfs/txfs/internal/corrupt"
)

// Block flags, stored in summary entries and DAT entries. Part of the
// on-disk format.
const (
	// BlockLZ4 marks a block stored as one LZ4 block (no frame).
	BlockLZ4 = 1 << 0
)

// ErrChecksum reports stored bytes whose xxhash64 does not match the one
// recorded for them.
var ErrChecksum = corrupt.Kind("segment: checksum mismatch")

// ErrCorrupt reports a structure that cannot be decoded.
var ErrCorrupt = corrupt.Kind("segment: corrupt structure")

var compressors = sync.Pool{New: func() any { return new(lz4.Compressor) }}

// Checksum is the checksum of every stored byte sequence: xxhash64.
func Checksum(b []byte) uint64 { return xxhash.Sum64(b) }

// EncodeBlock returns the bytes to store for raw and their flags. With
// compress it tries LZ4 into dst and keeps the result only when it saves at
// least one eighth: LZ4 gives up quickly on incompressible input (it skips
// ahead faster the longer it finds no match), so random data costs little.
// The returned slice is either raw itself or a prefix of dst.
func EncodeBlock(raw, dst []byte, compress bool) (stored []byte, flags uint8) {
	if !compress || len(raw) < 512 || looksRandom(raw) {
		return raw, 0
	}
	limit := len(raw) - len(raw)/8
	if cap(dst) < limit {
		dst = make([]byte, limit)
	}
	dst = dst[:limit]
	c := compressors.Get().(*lz4.Compressor)
	n, err := c.CompressBlock(raw, dst)
	compressors.Put(c)
	if err != nil || n == 0 || n >= limit {
		return raw, 0
	}
	return dst[:n], BlockLZ4
}

// looksRandom is the early test for incompressible data: in its first 256
// bytes, random (or already compressed) data shows about 160 distinct byte
// values, text and structured data far fewer. Saying "random" costs a
// 256-byte scan instead of an LZ4 attempt over the whole block.
func looksRandom(b []byte) bool {
	// One byte per value, set by independent stores (a bitset's
	// read-modify-writes wait on each other), then summed eight at a time.
	var seen [256]byte
	for _, c := range b[:256] {
		seen[c] = 1
	}
	n := uint64(0)
	for i := 0; i < len(seen); i += 8 {
		n += binary.LittleEndian.Uint64(seen[i:]) * 0x0101010101010101 >> 56
	}
	return n > 128
}

// DecodeBlock verifies stored against sum and returns the raw bytes, which
// must be exactly rawLen long, in dst (reallocated if too small).
func DecodeBlock(stored []byte, flags uint8, sum uint64, rawLen int, dst []byte) ([]byte, error) {
	if got := Checksum(stored); got != sum {
		return nil, fmt.Errorf("%w: stored %x, computed %x", ErrChecksum, sum, got)
	}
	if flags&BlockLZ4 == 0 {
		if len(stored) != rawLen {
			return nil, fmt.Errorf("%w: raw block of %d bytes, want %d", ErrCorrupt, len(stored), rawLen)
		}
		if cap(dst) < rawLen {
			dst = make([]byte, rawLen)
		}
		dst = dst[:rawLen]
		copy(dst, stored)
		return dst, nil
	}
	if cap(dst) < rawLen {
		dst = make([]byte, rawLen)
	}
	dst = dst[:rawLen]
	n, err := lz4.UncompressBlock(stored, dst)
	if err != nil || n != rawLen {
		return nil, fmt.Errorf("%w: lz4 block decodes to %d bytes (%v), want %d", ErrCorrupt, n, err, rawLen)
	}
	return dst, nil
}
