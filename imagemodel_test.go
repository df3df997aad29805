package txfs

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/pierrec/lz4/v4"
	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/cow"
	"github.com/txfs/txfs/journal"
	"github.com/txfs/txfs/segment"
)

// An imageModel is a volume image decoded into the structures FORMAT.md
// describes: superblocks, log units with their blocks, summaries and
// records, the checkpoints' tables and metadata trees. Tests change the
// decoded structures and call seal, which encodes the image again and
// recomputes every checksum and address that covers a change: block
// checksums in DAT entries and summaries, table pointers up to the
// checkpoint record, unit checksums and the hash chain, and the
// superblocks. The result is valid on the outside and as wrong inside as
// the change made it, which is what the structure-aware fuzz targets
// feed to Open, the checker and Repair. Changes that a bad medium makes
// (damage) are applied to the sealed bytes, checksums left as they were.
// It reads format versions 1 and 2: units that continue in the next
// segment keep their place and are written in their two pieces.
type imageModel struct {
	raw []byte
	geo segment.Geometry
	// supers are the superblocks by slot and copy (at the start of the
	// slot and segment.CopyOffset into it); nil: that copy did not decode.
	supers [2][2]*segment.Superblock
	units  []*modelUnit           // every unit found, by sequence number
	byAddr map[uint64]*modelBlock // blocks by their address before seal
	ckpts  []*modelCheckpoint     // current first, then the other slot's
	nodes  []*modelNode           // the current checkpoint's tree, parents first
	byVB   map[uint64]*modelNode
	damage []func(img []byte) // applied to the sealed image, in order
}

type modelUnit struct {
	addr      uint64
	place     segment.UnitPlace // Next is 0 unless the unit continues in the next segment
	hdr       segment.UnitHeader
	blocks    []*modelBlock // padding entries included
	records   []byte        // decompressed
	chained   bool          // its Prev was the checksum of the unit before it
	ckpt      *modelCheckpoint
	copyOf    *modelCheckpoint // the unit holds the copy of this checkpoint's record
	keepPads  bool             // padding entries stay as they are, else seal lays them out as UnitBuilder does
	newSum    uint64
	sumFields map[int]func(*segment.SummaryEntry) // applied to entries as encoded
}

// spans reports whether the unit continues in the next segment.
func (u *modelUnit) spans() bool { return u.place.Next != 0 }

type modelBlock struct {
	sum     segment.SummaryEntry
	stored  []byte
	oldAddr uint64
	oldLen  uint32
	oldSum  uint64
	newAddr uint64
	table   bool // a table block of a modelled checkpoint
}

type modelTableBlock struct {
	blk   *modelBlock
	level int
	kids  map[int]*modelTableBlock // interior: slot -> child
}

type modelTable struct {
	root  *modelTableBlock // nil: the root pointer names no block
	depth int
	esize int // bytes per entry
}

type modelCheckpoint struct {
	unit *modelUnit
	rec  *checkpointRec
	dat  modelTable
	sut  modelTable
	// keepRoots: the record's root pointers are left as a change set them.
	keepRoots bool
	// copy is the unit after it that holds the copy of the record (version
	// 2), nil if none; it holds what rec says unless copyDiffers.
	copy        *modelUnit
	copyDiffers bool
}

type modelNode struct {
	vb    uint64
	blk   *modelBlock
	raw   []byte // decoded node, block size bytes
	dirty bool
}

var errModelDoesNotFit = errors.New("the changed unit does not fit in its length")

// decodeImage builds the model of a well-formed image.
func decodeImage(raw []byte) (*imageModel, error) {
	m := &imageModel{raw: raw, byAddr: map[uint64]*modelBlock{}, byVB: map[uint64]*modelNode{}}
	if err := m.decodeSuperblocks(); err != nil {
		return nil, err
	}
	m.decodeUnits()
	sort.Slice(m.units, func(i, j int) bool { return m.units[i].hdr.Seq < m.units[j].hdr.Seq })
	for i, u := range m.units {
		u.chained = i > 0 && m.units[i-1].hdr.Seq+1 == u.hdr.Seq && m.units[i-1].hdr.Sum == u.hdr.Prev
	}
	// The checkpoints the superblocks name, newest generation first.
	var sbs []*segment.Superblock
	for _, copies := range m.supers {
		for _, sb := range copies {
			if sb != nil {
				sbs = append(sbs, sb)
			}
		}
	}
	sort.SliceStable(sbs, func(i, j int) bool { return sbs[i].Generation > sbs[j].Generation })
	for _, sb := range sbs {
		u := m.unitAt(sb.Checkpoint.Addr)
		if u == nil || u.hdr.Sum != sb.Checkpoint.Sum || u.ckpt != nil {
			continue
		}
		c, err := decodeCheckpoint(u.records)
		if err != nil {
			return nil, err
		}
		mc := &modelCheckpoint{unit: u, rec: c}
		u.ckpt = mc
		if mc.dat, err = m.decodeTable(c.DAT.Root, c.DAT.Depth, cow.EntrySize); err != nil {
			return nil, fmt.Errorf("DAT: %w", err)
		}
		if mc.sut, err = m.decodeTable(c.SUTRoot, c.SUTDepth, segment.UsageEntrySize); err != nil {
			return nil, fmt.Errorf("usage table: %w", err)
		}
		for _, o := range m.units {
			if o.hdr.Seq == u.hdr.Seq+1 && o.hdr.Prev == u.hdr.Sum && o.hdr.Kind == segment.UnitCheckpoint &&
				o.ckpt == nil && o.copyOf == nil && bytes.Equal(o.records, u.records) {
				mc.copy, o.copyOf = o, mc
			}
		}
		m.ckpts = append(m.ckpts, mc)
	}
	if len(m.ckpts) == 0 {
		return nil, errors.New("no checkpoint named by a superblock")
	}
	if root := m.ckpts[0].rec.TreeRoot; root != 0 {
		if err := m.decodeNodes(root, -1); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// decodeSuperblocks decodes every copy of both slots; the first valid copy
// of slot 0 gives the geometry.
func (m *imageModel) decodeSuperblocks() error {
	var first error
	for c := 0; c < 2; c++ {
		off := c * segment.CopyOffset
		sb, err := segment.DecodeSuperblock(m.raw[off : off+segment.SuperSize])
		if err != nil {
			first = cmp.Or(first, err)
			continue
		}
		m.supers[0][c] = sb
		if m.geo.BlockSize == 0 {
			m.geo = sb.Geometry
		}
	}
	if m.geo.BlockSize == 0 {
		return first
	}
	for c := 0; c < 2; c++ {
		off := int(m.geo.BlockSize) + c*segment.CopyOffset
		if sb, err := segment.DecodeSuperblock(m.raw[off : off+segment.SuperSize]); err == nil {
			m.supers[1][c] = sb
		}
	}
	return nil
}

// superblocks lists the copies that decoded.
func (m *imageModel) superblocks() []*segment.Superblock {
	var out []*segment.Superblock
	for _, copies := range m.supers {
		for _, sb := range copies {
			if sb != nil {
				out = append(out, sb)
			}
		}
	}
	return out
}

// decodeUnits finds the units of every segment: from its start, one after
// the other, and after the piece of a unit that continues into it.
func (m *imageModel) decodeUnits() {
	seen := map[uint64]bool{}
	var starts []uint64
	for s := uint32(0); s < m.geo.Segments; s++ {
		starts = append(starts, uint64(m.geo.SegmentOffset(s)))
	}
	for len(starts) > 0 {
		pos := starts[0]
		starts = starts[1:]
		s, _ := m.geo.SegmentOf(pos)
		end := m.segEnd(s)
		for pos+segment.UnitHeaderSize <= end && !seen[pos] {
			u, err := m.decodeUnitAt(pos)
			if err != nil {
				break
			}
			seen[pos] = true
			mu := &modelUnit{addr: pos, place: u.Place, hdr: u.Header, records: append([]byte(nil), u.Records...)}
			for i, e := range u.Summary {
				b := &modelBlock{sum: e, stored: append([]byte(nil), u.Block(i)...), oldAddr: u.BlockAddr(i), oldLen: e.Len, oldSum: segment.Checksum(u.Block(i))}
				mu.blocks = append(mu.blocks, b)
				if e.Kind != segment.SumPad {
					m.byAddr[b.oldAddr] = b
				}
			}
			m.units = append(m.units, mu)
			if mu.spans() {
				starts = append(starts, u.Place.DevAddr(u.Header.Length))
				break
			}
			pos += uint64(u.Header.Length)
		}
	}
}

func (m *imageModel) segEnd(s uint32) uint64 {
	return uint64(m.geo.SegmentOffset(s)) + uint64(m.geo.SegmentSize)
}

// decodeUnitAt decodes the unit at pos, put together from its two pieces
// when it continues in the segment its header names as next.
func (m *imageModel) decodeUnitAt(pos uint64) (*segment.Unit, error) {
	s, _ := m.geo.SegmentOf(pos)
	end := m.segEnd(s)
	place := segment.UnitPlace{Addr: pos, Split: uint32(end - pos)}
	maxLen := place.Split + m.geo.SegmentSize
	h, err := segment.ParseUnitHeader(m.raw[pos:end], maxLen)
	if err != nil {
		return nil, err
	}
	buf := m.raw[pos : pos+uint64(min(h.Length, place.Split))]
	if h.Length > place.Split {
		if h.NextSeg >= m.geo.Segments || h.NextSeg == s {
			return nil, errors.New("the unit runs past its segment")
		}
		place.Next = uint64(m.geo.SegmentOffset(h.NextSeg))
		buf = append(append([]byte(nil), buf...), m.raw[place.Next:place.Next+uint64(h.Length-place.Split)]...)
	}
	return segment.DecodeUnit(buf, place, maxLen)
}

func (m *imageModel) unitAt(addr uint64) *modelUnit {
	for _, u := range m.units {
		if u.addr == addr {
			return u
		}
	}
	return nil
}

func (m *imageModel) decodeTable(root segment.BlockPtr, depth, esize int) (modelTable, error) {
	t := modelTable{depth: depth, esize: esize}
	var walk func(p segment.BlockPtr, level int) (*modelTableBlock, error)
	walk = func(p segment.BlockPtr, level int) (*modelTableBlock, error) {
		if p.Addr == 0 {
			return nil, nil
		}
		b := m.byAddr[p.Addr]
		if b == nil || len(b.stored) != int(m.geo.BlockSize) || segment.Checksum(b.stored) != p.Sum {
			return nil, fmt.Errorf("table block at %d is not a stored block", p.Addr)
		}
		b.table = true
		tb := &modelTableBlock{blk: b, level: level}
		if level > 0 {
			tb.kids = map[int]*modelTableBlock{}
			for i := 0; i < len(b.stored)/segment.BlockPtrSize; i++ {
				k, err := walk(segment.GetBlockPtr(b.stored[i*segment.BlockPtrSize:]), level-1)
				if err != nil {
					return nil, err
				}
				if k != nil {
					tb.kids[i] = k
				}
			}
		}
		return tb, nil
	}
	var err error
	t.root, err = walk(root, depth)
	return t, err
}

// tableEntry returns the bytes of entry i of the table, or nil if its leaf was
// never written.
func (m *imageModel) tableEntry(t *modelTable, i uint64) []byte {
	bs := uint64(m.geo.BlockSize)
	perLeaf, fanout := bs/uint64(t.esize), bs/segment.BlockPtrSize
	leaf := i / perLeaf
	tb := t.root
	for level := t.depth; tb != nil && level > 0; level-- {
		span := uint64(1)
		for l := 1; l < level; l++ {
			span *= fanout
		}
		if leaf/span >= fanout {
			return nil
		}
		tb = tb.kids[int(leaf/span)]
		leaf %= span
	}
	if tb == nil || (t.depth == 0 && leaf != 0) {
		return nil
	}
	o := (i % perLeaf) * uint64(t.esize)
	return tb.blk.stored[o : o+uint64(t.esize)]
}

// datEntry returns the current checkpoint's DAT entry v (nil if not stored).
func (m *imageModel) datEntry(v uint64) []byte { return m.tableEntry(&m.ckpts[0].dat, v) }

func (m *imageModel) decodeNodes(vb uint64, want int) error {
	if m.byVB[vb] != nil {
		return fmt.Errorf("node %d twice in the tree", vb)
	}
	e := m.datEntry(vb)
	if e == nil {
		return fmt.Errorf("node %d has no DAT entry", vb)
	}
	le := binary.LittleEndian
	b := m.byAddr[le.Uint64(e)]
	if b == nil {
		return fmt.Errorf("node %d is not a stored block", vb)
	}
	raw, err := segment.DecodeBlock(b.stored, uint8(le.Uint16(e[12:])), le.Uint64(e[16:]), int(m.geo.BlockSize), nil)
	if err != nil {
		return fmt.Errorf("node %d: %w", vb, err)
	}
	n := &modelNode{vb: vb, blk: b, raw: raw}
	m.nodes = append(m.nodes, n)
	m.byVB[vb] = n
	level, count := int(raw[2]), int(le.Uint16(raw[4:]))
	if want >= 0 && level != want {
		return fmt.Errorf("node %d at level %d, want %d", vb, level, want)
	}
	if level == 0 {
		return nil
	}
	for i := 0; i < count; i++ {
		o := 8 + i*(btree.KeySize+8) + btree.KeySize
		if err := m.decodeNodes(le.Uint64(raw[o:]), level-1); err != nil {
			return err
		}
	}
	return nil
}

// unitsAfterCheckpoint returns the units after the current checkpoint, the
// ones Open replays.
func (m *imageModel) unitsAfterCheckpoint() []*modelUnit {
	seq := m.ckpts[0].unit.hdr.Seq
	var out []*modelUnit
	for _, u := range m.units {
		if u.hdr.Seq > seq {
			out = append(out, u)
		}
	}
	return out
}

// seal encodes the model into a new image.
func (m *imageModel) seal() ([]byte, error) {
	out := append([]byte(nil), m.raw...)
	bs := int(m.geo.BlockSize)
	// Changed nodes are stored as the engine stores them.
	for _, n := range m.nodes {
		if n.dirty {
			stored, flags := segment.EncodeBlock(n.raw, nil, true)
			n.blk.stored = append([]byte(nil), stored...)
			n.blk.sum.Flags = flags
		}
	}
	// Where every block goes now; record sections as they will be stored.
	for _, u := range m.units {
		u.setCheckpointRecords()
		u.layOutPads()
		rec, _ := storedRecords(u.records)
		off := uint32(segment.UnitHeaderSize)
		for _, b := range u.blocks {
			b.newAddr = u.place.DevAddr(off)
			off += uint32(len(b.stored))
		}
		if uint64(off)+uint64(len(u.blocks))*segment.SummarySize+uint64(len(rec)) > uint64(u.hdr.Length) {
			return nil, errModelDoesNotFit
		}
	}
	// DAT entries follow their blocks, and the usage table the stored
	// lengths; then the table pointers bottom-up.
	le := binary.LittleEndian
	seen := map[*modelBlock]bool{}
	for ci, c := range m.ckpts {
		var leaves []*modelTableBlock
		collectLeaves(c.dat.root, &leaves)
		for _, l := range leaves {
			if seen[l.blk] {
				continue
			}
			seen[l.blk] = true
			for o := 0; o+cow.EntrySize <= bs; o += cow.EntrySize {
				e := l.blk.stored[o : o+cow.EntrySize]
				if le.Uint16(e[12:])&cow.FlagFree != 0 {
					continue
				}
				b := m.byAddr[le.Uint64(e)]
				if b == nil {
					continue
				}
				le.PutUint64(e, b.newAddr)
				if le.Uint32(e[8:]) == b.oldLen && le.Uint64(e[16:]) == b.oldSum {
					if d := int64(len(b.stored)) - int64(b.oldLen); d != 0 && ci == 0 {
						seg, _ := m.geo.SegmentOf(b.newAddr)
						if su := m.tableEntry(&c.sut, uint64(seg)); su != nil {
							le.PutUint32(su, uint32(int64(le.Uint32(su))+d))
						}
					}
					le.PutUint32(e[8:], uint32(len(b.stored)))
					le.PutUint16(e[12:], le.Uint16(e[12:])&^cow.FlagLZ4|uint16(b.sum.Flags&segment.BlockLZ4))
					le.PutUint64(e[16:], segment.Checksum(b.stored))
				}
			}
		}
	}
	sealed := map[*modelTableBlock]segment.BlockPtr{}
	var sealTable func(tb *modelTableBlock) segment.BlockPtr
	sealTable = func(tb *modelTableBlock) segment.BlockPtr {
		if p, ok := sealed[tb]; ok {
			return p
		}
		for i, k := range tb.kids {
			segment.PutBlockPtr(tb.blk.stored[i*segment.BlockPtrSize:], sealTable(k))
		}
		p := segment.BlockPtr{Addr: tb.blk.newAddr, Sum: segment.Checksum(tb.blk.stored)}
		sealed[tb] = p
		return p
	}
	for _, c := range m.ckpts {
		if c.dat.root != nil {
			p := sealTable(c.dat.root)
			if !c.keepRoots {
				c.rec.DAT.Root = p
			}
		}
		if c.sut.root != nil {
			p := sealTable(c.sut.root)
			if !c.keepRoots {
				c.rec.SUTRoot = p
			}
		}
	}
	// Root pointers a change set still follow their block.
	for _, c := range m.ckpts {
		for _, ptr := range []*segment.BlockPtr{&c.rec.DAT.Root, &c.rec.SUTRoot} {
			if b := m.byAddr[ptr.Addr]; c.keepRoots && b != nil && ptr.Sum == b.oldSum {
				*ptr = segment.BlockPtr{Addr: b.newAddr, Sum: segment.Checksum(b.stored)}
			}
		}
	}
	// Units in log order, each chained to the one before as it was.
	oldSums := map[uint64]uint64{}
	var prev *modelUnit
	for _, u := range m.units {
		u.setCheckpointRecords()
		if u.chained && prev != nil {
			u.hdr.Prev = prev.newSum
		}
		buf, err := encodeModelUnit(u)
		if err != nil {
			return nil, err
		}
		oldSums[u.addr] = u.hdr.Sum
		u.newSum = le.Uint64(buf[56:])
		for _, p := range u.place.Pieces(uint32(len(buf))) {
			copy(out[p.Addr:], buf[p.Start:p.End])
		}
		prev = u
	}
	for slot, copies := range m.supers {
		for c, sb := range copies {
			if sb == nil {
				continue
			}
			s := *sb
			if u := m.unitAt(s.Checkpoint.Addr); u != nil && oldSums[u.addr] == s.Checkpoint.Sum {
				s.Checkpoint.Sum = u.newSum
			}
			copy(out[slot*bs+c*segment.CopyOffset:], s.Encode())
		}
	}
	for _, d := range m.damage {
		d(out)
	}
	return out, nil
}

// setCheckpointRecords makes the record section of a checkpoint unit, and
// of its copy, what the decoded record says.
func (u *modelUnit) setCheckpointRecords() {
	switch {
	case u.ckpt != nil:
		u.records = u.ckpt.rec.encode()
	case u.copyOf != nil && !u.copyOf.copyDiffers:
		u.records = u.copyOf.rec.encode()
	}
}

// layOutPads puts the padding entries of a unit that continues in the next
// segment where UnitBuilder puts them: before the block that would
// straddle the segment's end, up to it.
func (u *modelUnit) layOutPads() {
	if u.keepPads || !u.spans() {
		return
	}
	var blocks []*modelBlock
	off := uint32(segment.UnitHeaderSize)
	for _, b := range u.blocks {
		if b.sum.Kind == segment.SumPad {
			continue
		}
		if end := off + uint32(len(b.stored)); off < u.place.Split && end > u.place.Split {
			pad := u.place.Split - off
			blocks = append(blocks, &modelBlock{sum: segment.SummaryEntry{Kind: segment.SumPad, Len: pad}, stored: make([]byte, pad)})
			off = u.place.Split
		}
		blocks = append(blocks, b)
		off += uint32(len(b.stored))
	}
	u.blocks = blocks
}

// durableMark returns the durable mark the unit carries, as recovery reads it.
func (u *modelUnit) durableMark() (uint64, bool) {
	return durableMark(&segment.Unit{Header: u.hdr, Records: u.records})
}

// tableBlocks appends tb and the blocks under it, in table order.
func tableBlocks(tb *modelTableBlock, out []*modelTableBlock) []*modelTableBlock {
	if tb == nil {
		return out
	}
	out = append(out, tb)
	for _, i := range slices.Sorted(maps.Keys(tb.kids)) {
		out = tableBlocks(tb.kids[i], out)
	}
	return out
}

// collectLeaves appends the leaves of the table under tb, in order.
func collectLeaves(tb *modelTableBlock, out *[]*modelTableBlock) {
	for _, b := range tableBlocks(tb, nil) {
		if b.level == 0 {
			*out = append(*out, b)
		}
	}
}

// storedRecords returns the record section as Seal stores it: compressed
// when that saves a sixteenth.
func storedRecords(rec []byte) ([]byte, uint32) {
	if len(rec) < 256 {
		return rec, 0
	}
	dst := make([]byte, lz4.CompressBlockBound(len(rec)))
	var c lz4.Compressor
	n, err := c.CompressBlock(rec, dst)
	if err != nil || n == 0 || n >= len(rec)-len(rec)/16 {
		return rec, 0
	}
	return dst[:n], uint32(len(rec))
}

// encodeModelUnit lays out a unit at its old length, as Seal does, as one
// buffer (seal writes it in its pieces).
func encodeModelUnit(u *modelUnit) ([]byte, error) {
	rec, recRaw := storedRecords(u.records)
	buf := make([]byte, u.hdr.Length)
	le := binary.LittleEndian
	off := segment.UnitHeaderSize
	for _, b := range u.blocks {
		off += copy(buf[off:], b.stored)
	}
	blocksLen := off - segment.UnitHeaderSize
	for i, b := range u.blocks {
		s := b.sum
		s.Len = uint32(len(b.stored))
		if s.Kind != segment.SumPad {
			s.Sum = segment.Checksum(b.stored)
		}
		if f := u.sumFields[i]; f != nil {
			f(&s)
		}
		e := buf[off : off+segment.SummarySize]
		e[0], e[1] = s.Kind, s.Flags
		le.PutUint32(e[4:], s.Len)
		le.PutUint64(e[8:], s.ID)
		le.PutUint64(e[16:], s.Owner)
		le.PutUint64(e[24:], s.Offset)
		le.PutUint64(e[32:], s.Sum)
		off += segment.SummarySize
	}
	if off+len(rec) > len(buf) {
		return nil, errModelDoesNotFit
	}
	copy(buf[off:], rec)
	h := buf[:segment.UnitHeaderSize]
	copy(h, segment.UnitMagic)
	le.PutUint16(h[4:], u.hdr.Version)
	le.PutUint16(h[6:], u.hdr.Kind)
	le.PutUint64(h[8:], u.hdr.VolumeID)
	le.PutUint64(h[16:], u.hdr.Seq)
	le.PutUint64(h[24:], u.hdr.Prev)
	le.PutUint32(h[32:], u.hdr.Length)
	le.PutUint32(h[36:], uint32(blocksLen))
	le.PutUint32(h[40:], uint32(len(u.blocks)))
	le.PutUint32(h[44:], uint32(len(rec)))
	le.PutUint32(h[48:], recRaw)
	le.PutUint32(h[52:], u.hdr.NextSeg)
	le.PutUint64(h[56:], segment.Checksum(buf))
	return buf, nil
}

// decodeRecords decodes the record section of u into copies.
func (u *modelUnit) decodeRecords() ([]journal.Record, error) {
	var out []journal.Record
	err := journal.Decode(u.records, func(r *journal.Record) error {
		c := *r
		c.Value = append([]byte(nil), r.Value...)
		out = append(out, c)
		return nil
	})
	return out, err
}

// setRecords encodes rs as the record section of u.
func (u *modelUnit) setRecords(rs []journal.Record) {
	var w journal.Writer
	for _, r := range rs {
		switch r.Type {
		case journal.RecPut:
			w.Put(r.Key[:], r.Value)
		case journal.RecDel:
			w.Del(r.Key[:])
		case journal.RecAlloc:
			w.Alloc(r.V)
		case journal.RecWrite:
			w.Write(r.V)
		case journal.RecRef:
			w.Ref(r.V, r.Delta)
		case journal.RecOp:
			w.Op(r.Op)
		case journal.RecMark:
			w.Mark(r.V)
		}
	}
	u.records = w.Buf
}
