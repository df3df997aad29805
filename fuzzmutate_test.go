package txfs

import (
	"encoding/binary"
	"sort"
	"syscall"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/cow"
	"github.com/txfs/txfs/inode"
	"github.com/txfs/txfs/journal"
	"github.com/txfs/txfs/segment"
)

// fuzzInput hands out the fuzzer's bytes as choices; past the end every
// choice is 0.
type fuzzInput struct{ b []byte }

func (f *fuzzInput) byte() byte {
	if len(f.b) == 0 {
		return 0
	}
	c := f.b[0]
	f.b = f.b[1:]
	return c
}

func (f *fuzzInput) u16() int { return int(f.byte()) | int(f.byte())<<8 }

func (f *fuzzInput) u64() uint64 {
	var b [8]byte
	for i := range b {
		b[i] = f.byte()
	}
	return binary.LittleEndian.Uint64(b[:])
}

// intn picks one of n choices.
func (f *fuzzInput) intn(n int) int {
	switch {
	case n <= 1:
		return 0
	case n <= 256:
		return int(f.byte()) % n
	}
	return f.u16() % n
}

// value derives a new value for a field from its old one: an edge value, a
// neighbour, a value from pool (numbers that mean something in this
// image: inodes, virtual blocks, segments...), a flipped bit or anything.
func (f *fuzzInput) value(old uint64, pool []uint64) uint64 {
	switch f.byte() % 8 {
	case 0:
		return 0
	case 1:
		return old + 1
	case 2:
		return old - 1
	case 3:
		if len(pool) > 0 {
			return pool[f.intn(len(pool))]
		}
		return old + 2
	case 4:
		return ^uint64(0)
	case 5:
		return []uint64{1 << 31, 1 << 32, 1 << 62, 1 << 63}[f.byte()%4]
	case 6:
		return old ^ 1<<(f.byte()%64)
	}
	return f.u64()
}

// fuzzPools are the numbers of the base image that make mutations land on
// something real.
type fuzzPools struct {
	inos, vbs, nodes, segs, addrs, types []uint64
	tables                               []uint64 // addresses of table blocks
	keys                                 []btree.Key
	seqs                                 []uint64 // sequence numbers of the log after the checkpoint and around it
	freeSegs                             []uint32 // segments no unit lies in
}

func (m *imageModel) pools() *fuzzPools {
	p := &fuzzPools{types: []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 255}}
	seen := map[btree.Key]bool{}
	addKey := func(k btree.Key) {
		if !seen[k] {
			seen[k] = true
			p.keys = append(p.keys, k)
			if k.Type == inode.TypeInode {
				p.inos = append(p.inos, k.Ino)
			}
		}
	}
	for _, n := range m.nodes {
		p.nodes = append(p.nodes, n.vb)
		if _, items, ok := parseNodeItems(n.raw); ok {
			for _, it := range items {
				addKey(it.key)
			}
		}
	}
	for _, u := range m.unitsAfterCheckpoint() {
		rs, _ := u.decodeRecords()
		for _, r := range rs {
			if r.Type == journal.RecPut || r.Type == journal.RecDel {
				addKey(btree.DecodeKey(r.Key[:]))
			}
		}
	}
	ckptSeq := m.ckpts[0].unit.hdr.Seq
	p.seqs = append(p.seqs, ckptSeq, ckptSeq+1)
	for _, u := range m.unitsAfterCheckpoint() {
		p.seqs = append(p.seqs, u.hdr.Seq, u.hdr.Seq+1)
	}
	p.seqs = append(p.seqs, p.seqs[len(p.seqs)-1]+100)
	used := map[uint32]bool{}
	for _, u := range m.units {
		for _, pc := range u.place.Pieces(u.hdr.Length) {
			s, _ := m.geo.SegmentOf(pc.Addr)
			used[s] = true
		}
	}
	for s := uint32(0); s < m.geo.Segments; s++ {
		if !used[s] {
			p.freeSegs = append(p.freeSegs, s)
		}
	}
	c := m.ckpts[0].rec
	p.inos = append(p.inos, c.NextIno, c.NextIno+1)
	for vb := uint64(1); vb <= c.DAT.Count; vb++ {
		p.vbs = append(p.vbs, vb)
	}
	for s := uint64(0); s <= uint64(m.geo.Segments); s++ {
		p.segs = append(p.segs, s)
	}
	for a := range m.byAddr {
		p.addrs = append(p.addrs, a)
	}
	sort.Slice(p.addrs, func(i, j int) bool { return p.addrs[i] < p.addrs[j] })
	for _, a := range p.addrs {
		if m.byAddr[a].table {
			p.tables = append(p.tables, a)
		}
	}
	return p
}

// --- metadata tree nodes ---------------------------------------------------

type nodeItem struct {
	key btree.Key
	val []byte
	kid uint64
}

// parseNodeItems reads a node as inode/btree_node.go writes it, without
// its checks; ok is false if the items do not fit.
func parseNodeItems(raw []byte) (level int, items []nodeItem, ok bool) {
	le := binary.LittleEndian
	level, count := int(raw[2]), int(le.Uint16(raw[4:]))
	p := 8
	for i := 0; i < count; i++ {
		if p+btree.KeySize+2 > len(raw) {
			return level, items, false
		}
		it := nodeItem{key: btree.DecodeKey(raw[p:])}
		p += btree.KeySize
		if level == 0 {
			n := int(le.Uint16(raw[p:]))
			p += 2
			if p+n > len(raw) {
				return level, items, false
			}
			it.val = append([]byte(nil), raw[p:p+n]...)
			p += n
		} else {
			if p+8 > len(raw) {
				return level, items, false
			}
			it.kid = le.Uint64(raw[p:])
			p += 8
		}
		items = append(items, it)
	}
	return level, items, true
}

// encodeNodeItems writes a node of bs bytes; false if it does not fit.
func encodeNodeItems(bs int, level int, items []nodeItem) ([]byte, bool) {
	le := binary.LittleEndian
	b := make([]byte, 8, bs)
	le.PutUint16(b, 0x544E)
	b[2] = byte(level)
	le.PutUint16(b[4:], uint16(len(items)))
	var kb [btree.KeySize]byte
	for _, it := range items {
		it.key.Encode(kb[:])
		b = append(b, kb[:]...)
		if level == 0 {
			b = le.AppendUint16(b, uint16(len(it.val)))
			b = append(b, it.val...)
		} else {
			b = le.AppendUint64(b, it.kid)
		}
	}
	if len(b) > bs {
		return nil, false
	}
	return b[:bs], true
}

func sortItems(items []nodeItem) {
	sort.SliceStable(items, func(i, j int) bool { return items[i].key.Less(items[j].key) })
}

// mutateKey changes one field of a key.
func (f *fuzzInput) mutateKey(k btree.Key, p *fuzzPools) btree.Key {
	switch f.byte() % 4 {
	case 0:
		k.Ino = f.value(k.Ino, p.inos)
	case 1:
		k.Type = uint8(f.value(uint64(k.Type), p.types))
	case 2:
		k.Off = f.value(k.Off, append(p.inos, p.vbs...))
	default:
		if len(p.keys) > 0 {
			k = p.keys[f.intn(len(p.keys))]
		}
	}
	return k
}

// inodeFields are the fields of an inode record worth changing: offset,
// size, and the values that mean something.
var inodeFields = []struct {
	off, size int
	pool      []uint64
}{
	{0, 4, []uint64{syscall.S_IFREG | 0o644, syscall.S_IFDIR | 0o755, syscall.S_IFLNK | 0o777, syscall.S_IFIFO, syscall.S_IFCHR, syscall.S_IFSOCK, 0, syscall.S_IFMT}},
	{4, 4, []uint64{0, 1, 2, 3, 1 << 31}},
	{8, 4, nil},
	{16, 8, []uint64{0, 1, 4095, 4096, 4097, 1 << 40, MaxFileSize, MaxFileSize + 1}},
	{24, 8, []uint64{0, 1, 2, 150}},
	{32, 8, nil},
	{40, 8, nil},
	{80, 8, nil},
}

// mutateValue changes an item value the way its type makes interesting:
// the fields of inode records and directory entries, the virtual block of
// a block map item, or any byte and the length.
func (f *fuzzInput) mutateValue(typ uint8, val []byte, p *fuzzPools) []byte {
	val = append([]byte(nil), val...)
	le := binary.LittleEndian
	switch sel := f.byte() % 8; {
	case sel < 4 && typ == inode.TypeInode && len(val) == inode.RecordSize:
		fl := inodeFields[f.intn(len(inodeFields))]
		pool := fl.pool
		if fl.off == 80 {
			pool = p.inos
		}
		if fl.size == 4 {
			le.PutUint32(val[fl.off:], uint32(f.value(uint64(le.Uint32(val[fl.off:])), pool)))
		} else {
			le.PutUint64(val[fl.off:], f.value(le.Uint64(val[fl.off:]), pool))
		}
	case sel < 4 && typ == inode.TypeDirent:
		es, err := inode.DecodeDirents(val)
		if err != nil || len(es) == 0 {
			break
		}
		i := f.intn(len(es))
		switch f.byte() % 6 {
		case 0:
			es[i].Ino = f.value(es[i].Ino, p.inos)
		case 1:
			es[i].Type = uint8(f.value(uint64(es[i].Type), []uint64{1, 2, 4, 8, 10, 12, 0, 15}))
		case 2:
			es[i].Name = []string{"", ".", "..", "a/b", "x\x00", es[i].Name + "x", string(make([]byte, 256))}[f.byte()%7]
		case 3:
			es = append(es, es[i])
		case 4:
			es = append(es[:i], es[i+1:]...)
		default:
			es = append(es, inode.Dirent{Name: "added", Ino: f.value(0, p.inos), Type: uint8(f.byte() % 16)})
		}
		return inode.EncodeDirents(es)
	case sel < 4 && (typ == inode.TypeBlock || typ == inode.TypeTrunc) && len(val) == 8:
		le.PutUint64(val, f.value(le.Uint64(val), append(p.vbs, p.nodes...)))
	case sel == 4:
		return val[:f.intn(len(val)+1)]
	case sel == 5:
		return append(val, make([]byte, 1+f.intn(100))...)
	default:
		if len(val) > 0 {
			val[f.intn(len(val))] = f.byte()
		}
	}
	return val
}

// mutateNode changes one node of the checkpoint's tree.
func (f *fuzzInput) mutateNode(m *imageModel, p *fuzzPools) {
	n := m.nodes[f.intn(len(m.nodes))]
	n.dirty = true
	bs := int(m.geo.BlockSize)
	op := f.byte() % 12
	if op == 0 {
		// Any byte of the header or the items.
		n.raw[f.intn(min(bs, 8+f.u16()%2048))] = f.byte()
		return
	}
	level, items, ok := parseNodeItems(n.raw)
	if !ok || len(items) == 0 {
		n.raw[f.intn(bs)] = f.byte()
		return
	}
	i := f.intn(len(items))
	resort := false
	switch op {
	case 1:
		items[i].key = f.mutateKey(items[i].key, p)
		resort = f.byte()%2 == 0
	case 2:
		if level == 0 {
			items[i].val = f.mutateValue(items[i].key.Type, items[i].val, p)
		} else {
			items[i].kid = f.value(items[i].kid, append(p.nodes, p.vbs...))
		}
	case 3:
		items = append(items[:i], items[i+1:]...)
	case 4:
		dup := items[i]
		if f.byte()%2 == 0 {
			dup.key.Off++
		}
		items = append(items[:i+1], append([]nodeItem{dup}, items[i+1:]...)...)
	case 5:
		j := f.intn(len(items))
		items[i], items[j] = items[j], items[i]
	case 6:
		level = int(f.value(uint64(level), []uint64{0, 1, 2, 31, 32}) % 256)
	case 7:
		// An item moves to another node: out of that node's key range.
		o := m.nodes[f.intn(len(m.nodes))]
		if ol, oitems, ok := parseNodeItems(o.raw); ok && o != n && ol == level {
			oitems = append(oitems, items[i])
			sortItems(oitems)
			if raw, ok := encodeNodeItems(bs, ol, oitems); ok {
				o.raw, o.dirty = raw, true
				items = append(items[:i], items[i+1:]...)
			}
		}
	case 8, 9:
		// A new item: an inode, an orphan or truncate mark, an entry...
		k := btree.Key{Ino: f.value(0, p.inos), Type: uint8(1 + f.byte()%7)}
		switch k.Type {
		case inode.TypeOrphan, inode.TypeTrunc:
			k.Ino, k.Off = 0, f.value(0, p.inos)
		case inode.TypeBlock:
			k.Off = uint64(f.byte())
		}
		it := nodeItem{key: k, val: items[f.intn(len(items))].val, kid: f.value(0, p.nodes)}
		if level == 0 {
			it.val = f.mutateValue(k.Type, it.val, p)
		}
		items = append(items, it)
		resort = true
	case 10:
		for j := range items {
			items[j].key.Ino += uint64(int8(f.byte()))
		}
	default:
		binary.LittleEndian.PutUint16(n.raw[4:], uint16(f.value(uint64(len(items)), []uint64{0, 1, 255, 65535})))
		return
	}
	if resort {
		sortItems(items)
	}
	if raw, ok := encodeNodeItems(bs, level, items); ok {
		n.raw = raw
	}
}

// --- log units after the checkpoint -------------------------------------------

// mutateReplay changes a unit that Open replays: its records, summary,
// blocks or header.
func (f *fuzzInput) mutateReplay(m *imageModel, p *fuzzPools) {
	units := m.unitsAfterCheckpoint()
	if len(units) == 0 {
		return
	}
	u := units[f.intn(len(units))]
	if u.copyOf != nil {
		// The copy of the checkpoint record: a change to it stays.
		u.copyOf.copyDiffers = true
	}
	rs, err := u.decodeRecords()
	if err != nil || len(rs) == 0 {
		rs = []journal.Record{{Type: journal.RecOp, Op: 1}}
	}
	i := f.intn(len(rs))
	vbPool := append(append([]uint64(nil), p.vbs...), p.nodes...)
	op := f.byte()
	if op >= 160 {
		// What version 2 adds (the values below 160 keep their meaning).
		f.mutateLogV2(m, p, units, u, rs, op-160)
		return
	}
	switch op % 16 {
	case 0, 1, 2:
		r := &rs[i]
		switch r.Type {
		case journal.RecPut:
			k := btree.DecodeKey(r.Key[:])
			if f.byte()%2 == 0 {
				r.Value = f.mutateValue(k.Type, r.Value, p)
				break
			}
			f.mutateKey(k, p).Encode(r.Key[:])
		case journal.RecDel:
			f.mutateKey(btree.DecodeKey(r.Key[:]), p).Encode(r.Key[:])
		case journal.RecAlloc, journal.RecWrite:
			r.V = f.value(r.V, vbPool)
		case journal.RecRef:
			if f.byte()%2 == 0 {
				r.V = f.value(r.V, vbPool)
			} else {
				r.Delta = int64(f.value(uint64(r.Delta), []uint64{1, 2, ^uint64(0), ^uint64(1), 1 << 32}))
			}
		case journal.RecOp:
			r.Op = f.value(r.Op, nil)
		}
	case 3:
		rs[i].Type = 1 + f.byte()%6
	case 4:
		rs = append(rs[:i], rs[i+1:]...)
	case 5:
		rs = append(rs[:i+1], rs[i:]...)
	case 6:
		j := f.intn(len(rs))
		rs[i], rs[j] = rs[j], rs[i]
	case 7, 8:
		r := journal.Record{Type: 1 + f.byte()%5}
		if len(p.keys) > 0 {
			k := p.keys[f.intn(len(p.keys))]
			if f.byte()%2 == 0 {
				k = f.mutateKey(k, p)
			}
			k.Encode(r.Key[:])
			r.Value = f.mutateValue(k.Type, nil, p)
		}
		r.V = f.value(0, vbPool)
		r.Delta = int64(f.value(^uint64(0), []uint64{1, ^uint64(0)}))
		rs = append(rs[:i], append([]journal.Record{r}, rs[i:]...)...)
	case 9:
		// A record moves to another unit.
		o := units[f.intn(len(units))]
		if ors, err := o.decodeRecords(); err == nil && o != u {
			j := f.intn(len(ors) + 1)
			o.setRecords(append(ors[:j], append([]journal.Record{rs[i]}, ors[j:]...)...))
			rs = append(rs[:i], rs[i+1:]...)
		}
	case 10:
		// Bytes of the record section itself.
		u.setRecords(rs)
		if len(u.records) > 0 {
			switch f.byte() % 3 {
			case 0:
				u.records = u.records[:f.intn(len(u.records))]
			default:
				u.records[f.intn(len(u.records))] = f.byte()
			}
		}
		return
	case 11:
		if len(u.blocks) > 0 {
			f.changeSummaryEntry(u, f.intn(len(u.blocks)), vbPool)
		}
	case 12:
		if len(u.blocks) > 0 {
			b := u.blocks[f.intn(len(u.blocks))]
			b.stored = append([]byte(nil), b.stored...)
			switch f.byte() % 3 {
			case 0:
				b.sum.Flags ^= segment.BlockLZ4
			case 1:
				b.stored = b.stored[:f.intn(len(b.stored))]
			default:
				if len(b.stored) > 0 {
					b.stored[f.intn(len(b.stored))] = f.byte()
				}
			}
		}
	case 13:
		if len(u.blocks) > 0 {
			j := f.intn(len(u.blocks))
			u.blocks = append(u.blocks[:j], u.blocks[j+1:]...)
		}
	case 14:
		switch f.byte() % 3 {
		case 0:
			u.hdr.Kind = uint16(f.value(uint64(u.hdr.Kind), []uint64{1, 2, 3}))
		case 1:
			u.hdr.NextSeg = uint32(f.value(uint64(u.hdr.NextSeg), p.segs))
		default:
			u.hdr.Seq = f.value(u.hdr.Seq, nil)
		}
	default:
		rs = rs[:0]
	}
	u.setRecords(rs)
}

// mutateLogV2 makes the changes to the log after the checkpoint that reach
// what version 2 adds: durable marks, damage (to tell from a torn tail),
// units that continue in the next segment and their padding.
func (f *fuzzInput) mutateLogV2(m *imageModel, p *fuzzPools, units []*modelUnit, u *modelUnit, rs []journal.Record, op byte) {
	// mark returns the index of the unit's Mark record, adding one.
	mark := func(rs []journal.Record) ([]journal.Record, int) {
		for i := len(rs) - 1; i >= 0; i-- {
			if rs[i].Type == journal.RecMark {
				return rs, i
			}
		}
		return append(rs, journal.Record{Type: journal.RecMark}), len(rs)
	}
	switch op % 8 {
	case 0:
		// A unit claims another unit was durable, or less than it did.
		rs, i := mark(rs)
		rs[i].V = f.value(rs[i].V, p.seqs)
		u.setRecords(rs)
	case 1:
		// The Mark record goes, comes twice, or moves to the front.
		rs, i := mark(rs)
		switch f.byte() % 3 {
		case 0:
			rs = append(rs[:i], rs[i+1:]...)
		case 1:
			rs = append(rs, journal.Record{Type: journal.RecMark, V: f.value(rs[i].V, p.seqs)})
		default:
			rs = append(append([]journal.Record{rs[i]}, rs[:i]...), rs[i+1:]...)
		}
		u.setRecords(rs)
	case 2:
		m.damageUnit(f, u)
	case 3:
		// A unit is damaged, and the units after it claim that it was
		// durable (so the log is damaged), or that it was not (a torn
		// tail).
		m.damageUnit(f, u)
		claim := f.byte()%2 == 0
		for _, o := range units {
			if o.hdr.Seq <= u.hdr.Seq || o.ckpt != nil || o.copyOf != nil {
				continue
			}
			ors, err := o.decodeRecords()
			if err != nil {
				continue
			}
			ors, j := mark(ors)
			if claim {
				ors[j].V = max(ors[j].V, u.hdr.Seq)
			} else {
				ors[j].V = min(ors[j].V, u.hdr.Seq-1)
			}
			o.setRecords(ors)
		}
	case 4:
		f.mutatePads(u)
	case 5:
		// The unit continues in another segment than the one it did: its
		// second piece moves there, and its header names it (or not).
		if !u.spans() || len(p.freeSegs) == 0 {
			m.damageUnit(f, u)
			return
		}
		s := p.freeSegs[f.intn(len(p.freeSegs))]
		u.place.Next = uint64(m.geo.SegmentOffset(s))
		if f.byte()%4 != 0 {
			u.hdr.NextSeg = s
		}
	case 6:
		u.hdr.Version = uint16(f.value(uint64(u.hdr.Version), []uint64{1, 2, 3}))
	default:
		// The log goes on at the start of the next segment, or right after
		// a unit, from some unit on: a stale unit's sequence number.
		u.hdr.Seq = f.value(u.hdr.Seq, p.seqs)
		u.chained = f.byte()%2 == 0
	}
}

// damageUnit changes bytes of a unit after sealing, as a bad medium does:
// a block zeroed, or one bit flipped.
func (m *imageModel) damageUnit(f *fuzzInput, u *modelUnit) {
	bs := m.geo.BlockSize
	if f.byte()%2 == 0 {
		at := u.place.DevAddr(uint32(f.intn(int(u.hdr.Length/bs))) * bs)
		m.damage = append(m.damage, func(img []byte) { clear(img[at : at+uint64(bs)]) })
		return
	}
	at, bit := u.place.DevAddr(uint32(f.intn(int(u.hdr.Length)))), f.byte()%8
	m.damage = append(m.damage, func(img []byte) { img[at] ^= 1 << bit })
}

// mutatePads changes a unit's padding entries: they go (blocks then
// straddle the segment's end), change, or appear where no segment ends.
func (f *fuzzInput) mutatePads(u *modelUnit) {
	var pads []int
	for i, b := range u.blocks {
		if b.sum.Kind == segment.SumPad {
			pads = append(pads, i)
		}
	}
	u.keepPads = true
	switch sel := f.byte() % 4; {
	case sel == 0 && len(pads) > 0:
		j := pads[f.intn(len(pads))]
		u.blocks = append(u.blocks[:j], u.blocks[j+1:]...)
	case sel == 1 && len(pads) > 0:
		f.changeSummaryEntry(u, pads[f.intn(len(pads))], nil)
	case sel == 2 && len(pads) > 0:
		// A longer or shorter pad: the blocks after it move.
		j := pads[f.intn(len(pads))]
		n := max(0, len(u.blocks[j].stored)+int(int8(f.byte())))
		u.blocks[j] = &modelBlock{sum: u.blocks[j].sum, stored: make([]byte, n)}
	default:
		j := f.intn(len(u.blocks) + 1)
		pad := &modelBlock{sum: segment.SummaryEntry{Kind: segment.SumPad}, stored: make([]byte, f.intn(4097))}
		u.blocks = append(u.blocks[:j], append([]*modelBlock{pad}, u.blocks[j:]...)...)
	}
}

// changeSummaryEntry changes one field of summary entry j of u as it is
// encoded (the block stays as it is).
func (f *fuzzInput) changeSummaryEntry(u *modelUnit, j int, pool []uint64) {
	if u.sumFields == nil {
		u.sumFields = map[int]func(*segment.SummaryEntry){}
	}
	field, val := f.byte()%7, f.value(0, pool)
	flip := f.byte()
	u.sumFields[j] = func(s *segment.SummaryEntry) {
		switch field {
		case 0:
			s.ID = val
		case 1:
			s.Kind = uint8(val)
		case 2:
			s.Owner = val
		case 3:
			s.Offset = val
		case 4:
			s.Flags ^= flip
		case 5:
			s.Len = uint32(val)
		default:
			s.Sum ^= 1
		}
	}
}

// --- tables, checkpoint record and superblocks -------------------------------

// mutateTables changes the DAT, the usage table, a checkpoint record or a
// superblock.
func (f *fuzzInput) mutateTables(m *imageModel, p *fuzzPools) {
	le := binary.LittleEndian
	c := m.ckpts[0]
	if f.byte()%4 == 0 && len(m.ckpts) > 1 {
		c = m.ckpts[1]
	}
	op := f.byte()
	if op >= 160 {
		// What version 2 adds (the values below 160 keep their meaning).
		f.mutateCheckpointV2(m, p, c, op-160)
		return
	}
	switch op % 10 {
	case 0, 1, 2:
		e := m.tableEntry(&c.dat, f.value(0, append(p.vbs, p.nodes...)))
		if e == nil {
			return
		}
		switch f.byte() % 7 {
		case 0:
			// Another block, with its length and checksum: a valid
			// entry naming the wrong content.
			if len(p.addrs) > 0 {
				b := m.byAddr[p.addrs[f.intn(len(p.addrs))]]
				le.PutUint64(e, b.oldAddr)
				le.PutUint32(e[8:], b.oldLen)
				le.PutUint16(e[12:], le.Uint16(e[12:])&^cow.FlagLZ4|uint16(b.sum.Flags))
				le.PutUint64(e[16:], b.oldSum)
			}
		case 1:
			le.PutUint64(e, f.value(le.Uint64(e), p.addrs))
		case 2:
			le.PutUint32(e[8:], uint32(f.value(uint64(le.Uint32(e[8:])), []uint64{0, 4096, 4097})))
		case 3:
			le.PutUint16(e[12:], le.Uint16(e[12:])^uint16(f.value(0, []uint64{cow.FlagFree, cow.FlagLZ4})))
		case 4:
			le.PutUint64(e[16:], f.value(le.Uint64(e[16:]), p.vbs))
		case 5:
			le.PutUint32(e[24:], uint32(f.value(uint64(le.Uint32(e[24:])), []uint64{0, 1, 2, 1<<32 - 1})))
		default:
			e[f.intn(len(e))] = f.byte()
		}
	case 3:
		e := m.tableEntry(&c.sut, f.value(0, p.segs))
		if e == nil {
			return
		}
		switch f.byte() % 3 {
		case 0:
			le.PutUint32(e, uint32(f.value(uint64(le.Uint32(e)), []uint64{0, fuzzSegSize})))
		case 1:
			le.PutUint32(e[4:], uint32(f.value(uint64(le.Uint32(e[4:])), []uint64{0, 1, 2})))
		default:
			le.PutUint64(e[8:], f.value(le.Uint64(e[8:]), nil))
		}
	case 4, 5:
		r := c.rec
		switch f.byte() % 10 {
		case 0:
			r.TreeRoot = f.value(r.TreeRoot, append(p.nodes, p.vbs...))
		case 1:
			r.NextIno = f.value(r.NextIno, p.inos)
		case 2:
			r.DAT.Count = f.value(r.DAT.Count, p.vbs)
		case 3:
			r.DAT.FreeHead = f.value(r.DAT.FreeHead, p.vbs)
		case 4:
			r.DAT.FreeCount = f.value(r.DAT.FreeCount, []uint64{0, 1, 2})
		case 5:
			r.DAT.Depth = int(f.value(uint64(r.DAT.Depth), []uint64{0, 1, 2, 8}) % 16)
		case 6:
			r.SUTDepth = int(f.value(uint64(r.SUTDepth), []uint64{0, 1, 2, 8}) % 16)
		case 7:
			r.FreedNodes = append(r.FreedNodes, f.value(0, append(p.nodes, p.vbs...)))
		case 8:
			r.Number = f.value(r.Number, nil)
		default:
			// A root pointer names another table block.
			c.keepRoots = true
			ptr := &r.DAT.Root
			if f.byte()%2 == 0 {
				ptr = &r.SUTRoot
			}
			if a := f.value(0, p.tables); m.byAddr[a] != nil {
				*ptr = segment.BlockPtr{Addr: a, Sum: m.byAddr[a].oldSum}
			} else {
				ptr.Addr = a
			}
		}
	case 6, 7:
		slot := f.intn(2)
		sb := m.supers[slot][0]
		if sb == nil {
			return
		}
		var change func(*segment.Superblock)
		switch f.byte() % 8 {
		case 0:
			g := f.value(sb.Generation, []uint64{0, 1, 2})
			change = func(sb *segment.Superblock) { sb.Generation = g }
		case 1:
			// The checkpoint of the other slot, or another unit.
			u := m.units[f.intn(len(m.units))]
			ref := segment.UnitRef{Addr: u.addr, Len: u.hdr.Length, Seq: u.hdr.Seq, Sum: u.hdr.Sum, NextSeg: u.hdr.NextSeg}
			if o := m.supers[1-slot][0]; o != nil && f.byte()%2 == 0 {
				ref = o.Checkpoint
			}
			change = func(sb *segment.Superblock) { sb.Checkpoint = ref }
		case 2:
			n := uint32(f.value(uint64(sb.Checkpoint.Len), []uint64{4096, 8192, 64}))
			change = func(sb *segment.Superblock) { sb.Checkpoint.Len = n }
		case 3:
			n := f.value(sb.Checkpoint.Seq, nil)
			change = func(sb *segment.Superblock) { sb.Checkpoint.Seq = n }
		case 4:
			n := uint32(f.value(uint64(sb.Geometry.Segments), []uint64{7, 8, 15, 17}))
			change = func(sb *segment.Superblock) { sb.Geometry.Segments = n }
		case 5:
			n := uint32(f.value(uint64(sb.Geometry.SegmentSize), []uint64{32 << 10, 128 << 10}))
			change = func(sb *segment.Superblock) { sb.Geometry.SegmentSize = n }
		case 6:
			n := uint32(f.value(uint64(sb.Flags), nil))
			change = func(sb *segment.Superblock) { sb.Flags = n }
		default:
			i, bit := f.intn(16), f.byte()%8
			change = func(sb *segment.Superblock) { sb.UUID[i] ^= 1 << bit }
		}
		f.changeSuperblock(m, slot, change)
	case 8:
		// A table pointer names another table block (with its checksum)
		// or nothing.
		t := &c.dat
		if f.byte()%2 == 0 {
			t = &c.sut
		}
		if t.root == nil || t.root.kids == nil {
			return
		}
		all := tableBlocks(t.root, nil)
		slot := f.intn(4)
		if o := all[f.intn(len(all))]; f.byte()%2 == 0 && o.level == t.root.level-1 {
			t.root.kids[slot] = o
		} else {
			// Any block with its checksum, or any address.
			delete(t.root.kids, slot)
			ptr := segment.BlockPtr{Addr: f.value(0, p.addrs)}
			if b := m.byAddr[ptr.Addr]; b != nil {
				ptr.Sum = b.oldSum
			}
			segment.PutBlockPtr(t.root.blk.stored[slot*segment.BlockPtrSize:], ptr)
		}
	default:
		// Any byte of a table leaf.
		var leaves []*modelTableBlock
		collectLeaves(c.dat.root, &leaves)
		collectLeaves(c.sut.root, &leaves)
		if len(leaves) > 0 {
			l := leaves[f.intn(len(leaves))]
			l.blk.stored[f.intn(len(l.blk.stored))] = f.byte()
		}
	}
}

// changeSuperblock applies change to the copies of a slot: both, or, when
// there are two, one of them.
func (f *fuzzInput) changeSuperblock(m *imageModel, slot int, change func(*segment.Superblock)) {
	copies := m.supers[slot]
	first, last := 0, 1
	if copies[0] != nil && copies[1] != nil {
		switch f.byte() % 3 {
		case 1:
			last = 0
		case 2:
			first = 1
		}
	}
	for c := first; c <= last; c++ {
		if copies[c] != nil {
			change(copies[c])
		}
	}
}

// mutateCheckpointV2 makes the changes to checkpoint c and the
// superblocks that reach what version 2 adds: the durable mark and version
// of the record, the copy of the record, the two copies of each
// superblock slot, the clean flag and the checkpoint's next segment.
func (f *fuzzInput) mutateCheckpointV2(m *imageModel, p *fuzzPools, c *modelCheckpoint, op byte) {
	slot := f.intn(2)
	switch op % 8 {
	case 0:
		c.rec.Durable = f.value(c.rec.Durable, p.seqs)
	case 1:
		c.rec.Version = uint32(f.value(uint64(c.rec.Version), []uint64{1, 2, 3}))
	case 2:
		// The record is damaged, its copy, or both.
		switch f.byte() % 3 {
		case 0:
			m.damageUnit(f, c.unit)
		case 1:
			if c.copy != nil {
				m.damageUnit(f, c.copy)
			}
		default:
			m.damageUnit(f, c.unit)
			if c.copy != nil {
				m.damageUnit(f, c.copy)
			}
		}
	case 3:
		// The copy says something else; the record may be damaged too.
		if c.copy == nil {
			m.damageUnit(f, c.unit)
			return
		}
		r := *c.rec
		switch f.byte() % 5 {
		case 0:
			r.TreeRoot = f.value(r.TreeRoot, p.nodes)
		case 1:
			r.NextIno = f.value(r.NextIno, p.inos)
		case 2:
			r.Number = f.value(r.Number, nil)
		case 3:
			r.DAT.Count = f.value(r.DAT.Count, p.vbs)
		default:
			r.Durable = f.value(r.Durable, p.seqs)
		}
		c.copyDiffers = true
		c.copy.records = r.encode()
		if f.byte()%2 == 0 {
			m.damageUnit(f, c.unit)
		}
	case 4:
		// The next segment the superblock names for the checkpoint, which
		// says where the copy is when the record is damaged.
		n := uint32(f.value(uint64(c.unit.hdr.NextSeg), p.segs))
		f.changeSuperblock(m, slot, func(sb *segment.Superblock) { sb.Checkpoint.NextSeg = n })
		if f.byte()%2 == 0 {
			m.damageUnit(f, c.unit)
		}
	case 5:
		clean := f.byte()%2 == 0
		f.changeSuperblock(m, slot, func(sb *segment.Superblock) { sb.Clean = clean })
	case 6:
		old := uint64(segment.FormatVersion)
		if sb := m.supers[slot][0]; sb != nil {
			old = uint64(sb.Version)
		}
		n := uint32(f.value(old, []uint64{1, 2, 3}))
		f.changeSuperblock(m, slot, func(sb *segment.Superblock) { sb.Version = n })
	default:
		// A copy of a superblock is damaged, or appears where there was
		// none (version 1), newer than the other and naming another
		// checkpoint.
		copies := &m.supers[slot]
		cp := f.intn(2)
		if copies[cp] == nil && copies[1-cp] != nil {
			sb := *copies[1-cp]
			sb.Generation = f.value(sb.Generation, []uint64{sb.Generation + 1, sb.Generation - 1})
			if len(m.ckpts) > 1 && f.byte()%2 == 0 {
				u := m.ckpts[1].unit
				sb.Checkpoint = segment.UnitRef{Addr: u.addr, Len: u.hdr.Length, Seq: u.hdr.Seq, Sum: u.hdr.Sum, NextSeg: u.hdr.NextSeg}
			}
			copies[cp] = &sb
			return
		}
		at := slot*int(m.geo.BlockSize) + cp*segment.CopyOffset + f.intn(segment.SuperSize)
		bit := f.byte() % 8
		m.damage = append(m.damage, func(img []byte) { img[at] ^= 1 << bit })
	}
}
