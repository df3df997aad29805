package segment

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/pierrec/lz4/v4"
	"github.com/txfs/txfs/internal/corrupt"
)

// Log unit layout. A unit starts on a block boundary and is a whole number of
// blocks long. It lies in one segment, or, when it is longer than the rest
// of its segment, continues at the start of the segment its header names as
// next (version 2; UnitPlace): the log leaves no segment's end unused. All
// integers little-endian:
//
//	header (64 bytes)
//	  0  4 magic "TXLU"
//	  4  2 format version
//	  6  2 kind (UnitOps, UnitMeta, UnitCheckpoint, UnitMoved)
//	  8  8 volume ID (first 8 bytes of the UUID)
//	 16  8 sequence number: previous unit's + 1
//	 24  8 checksum of the previous unit (a hash chain: a stale unit left
//	       behind a torn one never links to a newer unit)
//	 32  4 length of the whole unit in bytes (a multiple of the block size)
//	 36  4 bytes of stored blocks that follow the header
//	 40  4 number of summary entries
//	 44  4 stored length of the record section
//	 48  4 raw length of the record section if it is LZ4-compressed, else 0
//	 52  4 next segment: where the log goes on when this segment is full
//	 56  8 xxhash64 of the whole unit with this field zero
//	blocks     the stored bytes of every block, back to back, in summary order
//	summary    one 40-byte entry per block (SummaryEntry)
//	records    the record section (journal records or a checkpoint record)
//	padding    zeros up to the length
//
// Blocks come first so that a block's address is known the moment it is
// added to a unit being built. A block never straddles the end of a
// segment: where the next block would, the builder puts a padding entry
// (SumPad, zeros) up to the segment's end. The header, summary and records
// may lie across it.
const (
	UnitMagic      = "TXLU"
	UnitHeaderSize = 64
	SummarySize    = 40

	UnitOps        = 1 // journal records of operations and the blocks they wrote
	UnitMeta       = 2 // blocks written by a checkpoint, no records
	UnitCheckpoint = 3 // a checkpoint record; superblocks point at these
	// UnitMoved holds blocks the cleaner copied, no records. It is not part
	// of the chain: sequence number and previous checksum 0, no next
	// segment; it never leaves its segment. Only DAT entries (made durable
	// by a checkpoint) point at its blocks.
	UnitMoved = 4
)

// Summary entry kinds: what a stored block is. Part of the on-disk format.
const (
	SumData  = 1 // file data: ID = virtual block, Owner = inode, Offset = file block index
	SumNode  = 2 // metadata tree node: ID = virtual block
	SumTable = 3 // table block: Owner = table (TableDAT, TableSUT), Offset = level (0 = leaf), ID = index in level
	SumPad   = 4 // zeros up to the end of a segment, so that no block straddles it; every other field 0
)

// MinFormatVersion is the oldest unit and superblock version this code
// reads. Version 1 units never leave their segment.
const MinFormatVersion = 1

// SummaryEntry describes one block of a unit (40 bytes):
//
//	 0 1 kind
//	 1 1 flags (BlockLZ4)
//	 2 2 reserved
//	 4 4 stored length
//	 8 8 id
//	16 8 owner
//	24 8 offset
//	32 8 xxhash64 of the stored bytes
type SummaryEntry struct {
	Kind   uint8
	Flags  uint8
	Len    uint32
	ID     uint64
	Owner  uint64
	Offset uint64
	Sum    uint64
}

// UnitHeader is the decoded fixed header of a unit.
type UnitHeader struct {
	Version   uint16
	Kind      uint16
	VolumeID  uint64
	Seq       uint64
	Prev      uint64
	Length    uint32
	BlocksLen uint32
	NSum      uint32
	RecStored uint32
	RecRaw    uint32
	NextSeg   uint32
	Sum       uint64
}

// ParseUnitHeader decodes the first 64 bytes of a unit. It checks what can
// be checked without the rest: magic, version, kind and that the parts fit.
func ParseUnitHeader(b []byte, maxLen uint32) (UnitHeader, error) {
	var h UnitHeader
	if len(b) < UnitHeaderSize || string(b[0:4]) != UnitMagic {
		return h, fmt.Errorf("%w: no unit header", ErrCorrupt)
	}
	le := binary.LittleEndian
	version := le.Uint16(b[4:])
	if version < MinFormatVersion || version > FormatVersion {
		return h, fmt.Errorf("%w: unit version %d", ErrVersion, version)
	}
	h = UnitHeader{Version: version,
		Kind: le.Uint16(b[6:]), VolumeID: le.Uint64(b[8:]), Seq: le.Uint64(b[16:]), Prev: le.Uint64(b[24:]),
		Length: le.Uint32(b[32:]), BlocksLen: le.Uint32(b[36:]), NSum: le.Uint32(b[40:]),
		RecStored: le.Uint32(b[44:]), RecRaw: le.Uint32(b[48:]), NextSeg: le.Uint32(b[52:]), Sum: le.Uint64(b[56:]),
	}
	if h.Kind < UnitOps || h.Kind > UnitMoved {
		return h, fmt.Errorf("%w: unit kind %d", ErrCorrupt, h.Kind)
	}
	need := uint64(UnitHeaderSize) + uint64(h.BlocksLen) + uint64(h.NSum)*SummarySize + uint64(h.RecStored)
	if h.Length < UnitHeaderSize || h.Length > maxLen || need > uint64(h.Length) {
		return h, fmt.Errorf("%w: unit length %d cannot hold its %d bytes (limit %d)", ErrCorrupt, h.Length, need, maxLen)
	}
	return h, nil
}

// UnitPlace is where a unit lies on the device. It starts at Addr; its
// first Split bytes lie there, up to the end of Addr's segment, and the
// rest, if any, at Next: the start of the segment the unit names as next (0
// when it has none, and then the unit must end within Split).
type UnitPlace struct {
	Addr  uint64
	Split uint32
	Next  uint64
}

// DevAddr is the device address of byte off of the unit.
func (p UnitPlace) DevAddr(off uint32) uint64 {
	if off < p.Split || p.Next == 0 {
		return p.Addr + uint64(off)
	}
	return p.Next + uint64(off-p.Split)
}

// Offset is the byte of the unit (of length n) at device address addr,
// and whether the unit covers that address.
func (p UnitPlace) Offset(addr uint64, n uint32) (uint32, bool) {
	switch {
	case addr >= p.Addr && addr < p.Addr+uint64(min(n, p.Split)):
		return uint32(addr - p.Addr), true
	case n > p.Split && addr >= p.Next && addr < p.Next+uint64(n-p.Split):
		return p.Split + uint32(addr-p.Next), true
	}
	return 0, false
}

// Piece is a stretch of a unit that is contiguous on the device.
type Piece struct {
	Addr       uint64 // device address
	Start, End uint32 // bytes [Start, End) of the unit
}

// Pieces lists where the n bytes of a unit lie: one piece, or two when it
// continues in the next segment.
func (p UnitPlace) Pieces(n uint32) []Piece {
	if n <= p.Split {
		return []Piece{{p.Addr, 0, n}}
	}
	return []Piece{{p.Addr, 0, p.Split}, {p.Next, p.Split, n}}
}

// Overlaps reports whether any byte of the unit (of length n) lies in the
// device range [start, end).
func (p UnitPlace) Overlaps(n uint32, start, end uint64) bool {
	for _, pc := range p.Pieces(n) {
		a := pc.Addr + uint64(pc.End-pc.Start)
		if start < a && pc.Addr < end {
			return true
		}
	}
	return false
}

// Unit is a verified, decoded unit.
type Unit struct {
	Header  UnitHeader
	Place   UnitPlace
	Addr    uint64         // byte address of the unit on the device (Place.Addr)
	Summary []SummaryEntry // one per block, padding entries included
	Offsets []uint32       // offset of each block's stored bytes within Raw
	Records []byte         // the record section, decompressed
	Raw     []byte         // the whole unit as read
}

// Block returns the stored bytes of block i.
func (u *Unit) Block(i int) []byte {
	o := u.Offsets[i]
	return u.Raw[o : o+u.Summary[i].Len]
}

// BlockAddr is the device address of block i.
func (u *Unit) BlockAddr(i int) uint64 { return u.Place.DevAddr(u.Offsets[i]) }

// DecodeUnit verifies and decodes a whole unit read from place (its pieces
// put back together in b). It never trusts a length before the checksum
// has covered it.
// Its errors say where the unit is.
func DecodeUnit(b []byte, place UnitPlace, maxLen uint32) (*Unit, error) {
	u, err := decodeUnit(b, place, maxLen)
	return u, corrupt.Locate(err, corrupt.Location{Addr: place.Addr})
}

func decodeUnit(b []byte, place UnitPlace, maxLen uint32) (*Unit, error) {
	addr := place.Addr
	h, err := ParseUnitHeader(b, maxLen)
	if err != nil {
		return nil, err
	}
	if uint32(len(b)) < h.Length {
		return nil, fmt.Errorf("%w: unit of %d bytes, have %d", ErrCorrupt, h.Length, len(b))
	}
	b = b[:h.Length]
	if got := unitChecksum(b); got != h.Sum {
		return nil, fmt.Errorf("%w: unit seq %d: stored %x, computed %x", ErrChecksum, h.Seq, h.Sum, got)
	}
	if h.Length > place.Split && place.Next == 0 {
		return nil, fmt.Errorf("%w: unit seq %d runs past its segment", ErrCorrupt, h.Seq)
	}
	u := &Unit{Header: h, Place: place, Addr: addr, Raw: b}
	le := binary.LittleEndian
	off := uint32(UnitHeaderSize)
	sumOff := UnitHeaderSize + h.BlocksLen
	var total uint64
	for i := uint32(0); i < h.NSum; i++ {
		e := b[sumOff+i*SummarySize:]
		s := SummaryEntry{Kind: e[0], Flags: e[1], Len: le.Uint32(e[4:]), ID: le.Uint64(e[8:]),
			Owner: le.Uint64(e[16:]), Offset: le.Uint64(e[24:]), Sum: le.Uint64(e[32:])}
		total += uint64(s.Len)
		if total > uint64(h.BlocksLen) {
			return nil, fmt.Errorf("%w: unit seq %d: summary lengths exceed the block area", ErrCorrupt, h.Seq)
		}
		if s.Kind != SumPad && off < place.Split && off+s.Len > place.Split {
			return nil, fmt.Errorf("%w: unit seq %d: block %d straddles the end of its segment", ErrCorrupt, h.Seq, i)
		}
		u.Summary = append(u.Summary, s)
		u.Offsets = append(u.Offsets, off)
		off += s.Len
	}
	recOff := sumOff + h.NSum*SummarySize
	rec := b[recOff : recOff+h.RecStored]
	if h.RecRaw == 0 {
		u.Records = rec
	} else {
		if h.RecRaw > maxLen*4 {
			return nil, fmt.Errorf("%w: unit seq %d: record section of %d bytes", ErrCorrupt, h.Seq, h.RecRaw)
		}
		u.Records = make([]byte, h.RecRaw)
		n, err := lz4.UncompressBlock(rec, u.Records)
		if err != nil || n != int(h.RecRaw) {
			return nil, fmt.Errorf("%w: unit seq %d: records do not decompress", ErrCorrupt, h.Seq)
		}
	}
	return u, nil
}

func unitChecksum(b []byte) uint64 {
	var saved [8]byte
	copy(saved[:], b[56:64])
	clear(b[56:64])
	s := Checksum(b)
	copy(b[56:64], saved[:])
	return s
}

// UnitBuilder assembles a unit whose address is fixed before the first block
// is added, so every block's address is known at once. Blocks are stored
// straight into the buffer that is finally written: sealing adds the
// summary and records behind them and fills in the header, copying no block.
type UnitBuilder struct {
	Addr      uint64
	Place     UnitPlace
	Kind      uint16
	blockSize uint32
	maxLen    uint32
	padded    bool   // the block area already reaches past Place.Split
	buf       []byte // header space, then the blocks
	summary   []SummaryEntry
	records   []byte
}

// Unit buffers come in sizes of 8 and 12 KiB times powers of two, up to
// MaxPooledUnit: a unit's buffer is at most half as long again as the
// unit (or 8 KiB), whatever its size. Buffers given back are kept for the
// next units, up to MaxFreeUnitBytes in all.
const (
	MaxPooledUnit    = 4 << 20
	MaxFreeUnitBytes = 4 << 20
	minPooledUnit    = 8 << 10
)

// unitSizes are the sizes of unit buffers, ascending.
var unitSizes = func() []int {
	var s []int
	for size := minPooledUnit; size <= MaxPooledUnit; size *= 2 {
		s = append(s, size)
		if size*3/2 < MaxPooledUnit {
			s = append(s, size*3/2)
		}
	}
	return s
}()

// freeUnits keeps the buffers given back, the newest last; the oldest go
// when they hold more than MaxFreeUnitBytes.
var freeUnits struct {
	sync.Mutex
	bufs  [][]byte
	bytes int
}

// unitClass is the index of the smallest size of buffer that holds n
// bytes, -1 if none does.
func unitClass(n int) int {
	for c, size := range unitSizes {
		if size >= n {
			return c
		}
	}
	return -1
}

// unitBuffer returns an empty buffer that holds at least n bytes: a
// recycled one of its class if there is one.
func unitBuffer(n int) []byte {
	c := unitClass(n)
	if c < 0 {
		return make([]byte, 0, n)
	}
	f := &freeUnits
	f.Lock()
	defer f.Unlock()
	for i := len(f.bufs) - 1; i >= 0; i-- {
		if b := f.bufs[i]; cap(b) == unitSizes[c] {
			f.bufs = slices.Delete(f.bufs, i, i+1)
			f.bytes -= cap(b)
			return b
		}
	}
	return make([]byte, 0, unitSizes[c])
}

// NewUnitBuilder starts a unit at place that may grow to maxLen bytes; a
// unit longer than place.Split continues at place.Next.
func NewUnitBuilder(place UnitPlace, kind uint16, blockSize, maxLen uint32) *UnitBuilder {
	if place.Next == 0 {
		maxLen = min(maxLen, place.Split)
	}
	return &UnitBuilder{Addr: place.Addr, Place: place, Kind: kind, blockSize: blockSize, maxLen: maxLen}
}

// padRoom is what a padding entry may still cost: up to one block of zeros
// and its summary entry, while the block area has not reached the split.
func (u *UnitBuilder) padRoom() int {
	if u.padded || u.maxLen <= u.Place.Split {
		return 0
	}
	return int(u.blockSize) + SummarySize
}

// ReleaseUnitBuffer gives the buffer of a sealed unit back once it has been
// written and nothing reads it any more.
func ReleaseUnitBuffer(b []byte) {
	c := unitClass(cap(b))
	if c < 0 || cap(b) != unitSizes[c] {
		return
	}
	f := &freeUnits
	f.Lock()
	defer f.Unlock()
	f.bufs = append(f.bufs, b[:0])
	f.bytes += cap(b)
	for f.bytes > MaxFreeUnitBytes {
		f.bytes -= cap(f.bufs[0])
		f.bufs = slices.Delete(f.bufs, 0, 1)
	}
}

// grow makes room in the buffer for n more bytes after the header and
// what is there, moving to the smallest buffer that holds them if needed.
// A unit built block by block is copied at each size on its way to 4 MiB:
// about two and a half times the bytes it holds.
func (u *UnitBuilder) grow(n int) {
	used := max(len(u.buf), UnitHeaderSize)
	if u.buf != nil && used+n <= cap(u.buf) {
		return
	}
	b := unitBuffer(used + n)[:used]
	copy(b, u.buf)
	ReleaseUnitBuffer(u.buf)
	u.buf = b
}

// Reserve makes room for n more bytes of blocks at once, so that the unit
// is not copied as a transaction adds them one by one.
func (u *UnitBuilder) Reserve(n int) { u.grow(n) }

func (u *UnitBuilder) blocksLen() int {
	if u.buf == nil {
		return 0
	}
	return len(u.buf) - UnitHeaderSize
}

// Size is an upper bound of the unit's length if sealed now (records
// counted uncompressed, rounded up to a block).
func (u *UnitBuilder) Size() uint32 { return u.sizeWith(0, 0, 0) }

func (u *UnitBuilder) sizeWith(blocks, sums, rec int) uint32 {
	n := UnitHeaderSize + u.blocksLen() + blocks + (len(u.summary)+sums)*SummarySize + len(u.records) + rec
	return roundUp(uint32(n), u.blockSize)
}

// Room is how many bytes of blocks, summaries and records still fit.
func (u *UnitBuilder) Room() int {
	return int(u.maxLen) - (UnitHeaderSize + u.blocksLen() + len(u.summary)*SummarySize + len(u.records) + u.padRoom())
}

// Fits reports whether blocks of storedBytes bytes in nblocks summary
// entries and rec bytes of records still fit.
func (u *UnitBuilder) Fits(storedBytes, nblocks, rec int) bool {
	return storedBytes+nblocks*SummarySize+rec <= u.Room()
}

// Empty reports whether nothing was added.
func (u *UnitBuilder) Empty() bool { return len(u.summary) == 0 && len(u.records) == 0 }

// NumBlocks is the number of blocks added so far.
func (u *UnitBuilder) NumBlocks() int { return len(u.summary) }

// AddBlock appends a stored block and returns its summary index and device
// address. The caller checked Fits. A block that would straddle the end of
// the first segment is put after a padding entry, at the next segment.
func (u *UnitBuilder) AddBlock(e SummaryEntry, stored []byte) (int, uint64) {
	u.grow(0)
	off := uint32(len(u.buf))
	if end := off + uint32(len(stored)); off < u.Place.Split && end > u.Place.Split {
		pad := u.Place.Split - off
		u.grow(int(pad))
		u.buf = u.buf[:len(u.buf)+int(pad)]
		clear(u.buf[off:])
		u.summary = append(u.summary, SummaryEntry{Kind: SumPad, Len: pad})
		off = u.Place.Split
	}
	u.grow(len(stored))
	if off >= u.Place.Split {
		u.padded = true
	}
	e.Len = uint32(len(stored))
	u.buf = append(u.buf, stored...)
	u.summary = append(u.summary, e)
	return len(u.summary) - 1, u.Place.DevAddr(off)
}

// Summary is the summary of the blocks added so far (not to be changed).
func (u *UnitBuilder) Summary() []SummaryEntry { return u.summary }

// SplitBlocks lists the data and node blocks of a unit's summary that lie
// before byte split of the unit and those past it, each as its kind << 56
// | its id: what a unit that goes on into the next segment put at the end
// of its segment and at the start of the next.
func SplitBlocks(summary []SummaryEntry, split uint32) (before, past []uint64) {
	off := uint64(UnitHeaderSize)
	for _, e := range summary {
		if (e.Kind == SumData || e.Kind == SumNode) && e.ID < 1<<56 {
			if off >= uint64(split) {
				past = append(past, uint64(e.Kind)<<56|e.ID)
			} else {
				before = append(before, uint64(e.Kind)<<56|e.ID)
			}
		}
		off += uint64(e.Len)
	}
	return before, past
}

// BlockBytes returns the stored bytes at a device address inside this
// unit, for reads of blocks not yet on the device.
func (u *UnitBuilder) BlockBytes(addr uint64, n uint32) ([]byte, bool) {
	off, ok := u.Place.Offset(addr, uint32(len(u.buf)))
	// In 64 bits so that nothing wraps: addr and n may be anything.
	end := uint64(off) + uint64(n)
	if !ok || off < UnitHeaderSize || end > uint64(len(u.buf)) {
		return nil, false
	}
	if off < u.Place.Split && end > uint64(u.Place.Split) {
		return nil, false // no block straddles the split
	}
	return u.buf[off:end], true
}

// Overlaps reports whether the unit as built so far, or as it may still
// grow, covers any byte of the device range [start, end).
func (u *UnitBuilder) Overlaps(start, end uint64) bool {
	return u.Place.Overlaps(u.maxLen, start, end)
}

// AppendRecords adds bytes to the record section.
func (u *UnitBuilder) AppendRecords(b []byte) { u.records = append(u.records, b...) }

// RecordsLen is the raw length of the record section so far.
func (u *UnitBuilder) RecordsLen() int { return len(u.records) }

// Seal encodes the unit. The record section is stored LZ4-compressed when
// that saves space. The builder must not be used afterwards.
func (u *UnitBuilder) Seal(volumeID, seq, prev uint64, nextSeg uint32) (buf []byte, sum uint64) {
	rec := u.records
	var recRaw uint32
	if len(rec) >= 256 {
		dst := make([]byte, lz4.CompressBlockBound(len(rec)))
		c := compressors.Get().(*lz4.Compressor)
		n, err := c.CompressBlock(rec, dst)
		compressors.Put(c)
		if err == nil && n > 0 && n < len(rec)-len(rec)/16 {
			rec, recRaw = dst[:n], uint32(len(u.records))
		}
	}
	blocksLen := u.blocksLen()
	length := roundUp(uint32(UnitHeaderSize+blocksLen+len(u.summary)*SummarySize+len(rec)), u.blockSize)
	u.grow(int(length) - max(len(u.buf), UnitHeaderSize))
	buf = u.buf
	u.buf = nil
	le := binary.LittleEndian
	var e [SummarySize]byte
	for _, s := range u.summary {
		e[0], e[1], e[2], e[3] = s.Kind, s.Flags, 0, 0
		le.PutUint32(e[4:], s.Len)
		le.PutUint64(e[8:], s.ID)
		le.PutUint64(e[16:], s.Owner)
		le.PutUint64(e[24:], s.Offset)
		le.PutUint64(e[32:], s.Sum)
		buf = append(buf, e[:]...)
	}
	buf = append(buf, rec...)
	pad := int(length) - len(buf)
	buf = buf[:length]
	clear(buf[len(buf)-pad:])
	h := buf[:UnitHeaderSize]
	copy(h[0:4], UnitMagic)
	le.PutUint16(h[4:], FormatVersion)
	le.PutUint16(h[6:], u.Kind)
	le.PutUint64(h[8:], volumeID)
	le.PutUint64(h[16:], seq)
	le.PutUint64(h[24:], prev)
	le.PutUint32(h[32:], length)
	le.PutUint32(h[36:], uint32(blocksLen))
	le.PutUint32(h[40:], uint32(len(u.summary)))
	le.PutUint32(h[44:], uint32(len(rec)))
	le.PutUint32(h[48:], recRaw)
	le.PutUint32(h[52:], nextSeg)
	clear(h[56:64])
	sum = Checksum(buf)
	le.PutUint64(h[56:], sum)
	return buf, sum
}

func roundUp(n, to uint32) uint32 { return (n + to - 1) / to * to }
