package txfs

import (
	"fmt"
	"sort"
	"strings"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/inode"
	"github.com/txfs/txfs/journal"
	"github.com/txfs/txfs/segment"
)

// Telling damage from a torn tail. The log ends at the first place where no
// unit continues the chain. After a power cut that is the torn tail: units
// written since the last flush, lost or half written, and nothing that was
// ever durable. A unit that was durable and is now unreadable (a bad block,
// a bit flipped on the medium) also ends the chain, and what follows it
// would be dropped silently. Every unit carries a durable mark: the highest
// sequence number known durable when it was sealed. A whole unit of this
// volume found past the end of the log, whose mark reaches the unit that
// ends the chain, proves that unit was durable: the log is damaged there.
// Recovery looks for such units in the rest of the segment where the log
// ends and in the segment it names as next, and follows their chain.
// Units left from before an earlier power cut never prove anything: their
// marks are older than anything recovered since.
//
// After a clean close (the superblock says so) nothing follows the last
// checkpoint, and recovery does not look.

// LogDamage says where the log is damaged and what lies beyond.
type LogDamage struct {
	Seq    uint64 // the first unit that cannot be read
	Addr   uint64 // where it should be
	Resume uint64 // the first whole unit after the damage
	At     uint64 // its address
	Last   uint64 // the last unit of the chain that goes on from Resume
	Proof  uint64 // a unit whose durable mark reaches Seq
	// Beyond describes the operations of units Resume..Last.
	Beyond string

	resume *segment.Unit
}

func (d *LogDamage) String() string {
	lost := fmt.Sprintf("unit %d at byte %d cannot be read", d.Seq, d.Addr)
	if d.Resume > d.Seq+1 {
		lost = fmt.Sprintf("units %d to %d from byte %d cannot be read", d.Seq, d.Resume-1, d.Addr)
	}
	return fmt.Sprintf("%s, although unit %d, written later, says it was durable; "+
		"units %d to %d follow (%s) and cannot be replayed without it",
		lost, d.Proof, d.Resume, d.Last, d.Beyond)
}

// LogPolicy says what Open does with a damaged log.
type LogPolicy int

const (
	// RefuseDamage: a read-write Open fails with ErrLogDamaged; a
	// read-only one recovers the state before the damage.
	RefuseDamage LogPolicy = iota
	// TruncateDamage accepts the loss: the log ends at the damage and
	// what follows it is dropped for good.
	TruncateDamage
	// SalvageDamage replays the units that follow the damage as well, on
	// the state before it; Open fails if one of them needs what the lost
	// units held (a record that does not apply). Repair then fixes the
	// namespace.
	SalvageDamage
)

// findDamage looks past the end of the log (the unit seq expected at pos)
// for proof that it was durable, and returns what it found, or nil for a
// torn tail.
func (v *Volume) findDamage(pos, seq uint64) *LogDamage {
	if v.sb.Clean {
		return nil
	}
	var cands []*segment.Unit
	scan := func(from, to uint64) {
		if from >= to {
			return
		}
		area := make([]byte, to-from)
		if _, err := v.dev.ReadAt(area, int64(from)); err != nil {
			return
		}
		for at := from; at+segment.UnitHeaderSize <= to; at += uint64(v.bs) {
			h, err := segment.ParseUnitHeader(area[at-from:], 2*v.geo.SegmentSize)
			if err != nil || h.VolumeID != v.sb.VolumeID() || h.Seq <= seq {
				continue
			}
			if u, err := v.log.ReadUnit(at, 0); err == nil {
				cands = append(cands, u)
			}
		}
	}
	scan(pos, v.log.SegEnd(v.log.CurSeg))
	if v.log.NextSeg != journal.NoSeg {
		scan(uint64(v.geo.SegmentOffset(v.log.NextSeg)), v.log.SegEnd(v.log.NextSeg))
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].Header.Seq < cands[j].Header.Seq })
	for _, c := range cands {
		chain, proof := v.chainFrom(c, seq)
		if proof == 0 {
			continue
		}
		last := chain[len(chain)-1]
		return &LogDamage{Seq: seq, Addr: pos, Resume: c.Header.Seq, At: c.Addr, Last: last.Header.Seq,
			Proof: proof, Beyond: describeUnits(chain), resume: c}
	}
	return nil
}

// lostOnlyCopy reports whether damage d lost nothing but the copy of the
// checkpoint record that recovery read from unit ckpt (decoded as c), the
// one ref names: the unit right after a record of version 2 is its copy.
func (d *LogDamage) lostOnlyCopy(ref segment.UnitRef, ckpt *segment.Unit, c *checkpointRec) bool {
	return c.Version >= 2 && ckpt.Header.Seq == ref.Seq && d.Seq == ref.Seq+1 && d.Resume == d.Seq+1
}

// resumeAfter makes the log go on at the first whole unit after damage d,
// and returns where, as follow does.
func (v *Volume) resumeAfter(d *LogDamage) (pos, seq, prev uint64) {
	v.log.CurSeg, _ = v.geo.SegmentOf(d.At)
	v.log.NextSeg = journal.NoSeg
	return d.At, d.Resume, d.resume.Header.Prev
}

// cutSeq is the sequence number the log goes on with when it is cut at
// damage d: past every unit that can be left beyond it. The chain that
// follows the damage may break again, leaving units that no scan finds;
// but every unit written since the checkpoint (sequence number ckpt)
// takes at least a block of the segments.
func (v *Volume) cutSeq(d *LogDamage, ckpt uint64) uint64 {
	blocks := uint64(v.geo.Segments) * uint64(v.geo.SegmentSize) / uint64(v.bs)
	return max(d.Last, ckpt+blocks) + 1
}

// chainFrom follows the chain from unit u and returns its units and the
// first whose durable mark reaches seq (0: none).
func (v *Volume) chainFrom(u *segment.Unit, seq uint64) ([]*segment.Unit, uint64) {
	saveCur, saveNext, saveWarnings := v.log.CurSeg, v.log.NextSeg, len(v.warnings)
	defer func() { v.log.CurSeg, v.log.NextSeg, v.warnings = saveCur, saveNext, v.warnings[:saveWarnings] }()
	v.log.CurSeg, _ = v.geo.SegmentOf(u.Addr)
	var chain []*segment.Unit
	var proof uint64
	used := map[uint32]bool{}
	for u != nil && len(chain) < 1<<16 {
		chain = append(chain, u)
		if m, ok := durableMark(u); ok && m >= seq && proof == 0 {
			proof = u.Header.Seq
		}
		pos, next, prev := v.log.Follow(u, used)
		u = v.log.NextUnit(pos, next, prev)
	}
	return chain, proof
}

// durableMark returns the durable mark a unit carries (version 2).
func durableMark(u *segment.Unit) (uint64, bool) {
	if u.Header.Kind == segment.UnitCheckpoint {
		c, err := decodeCheckpoint(u.Records)
		if err != nil {
			return 0, false
		}
		return c.Durable, c.Durable > 0
	}
	var mark uint64
	found := false
	journal.Decode(u.Records, func(r *journal.Record) error {
		if r.Type == journal.RecMark {
			mark, found = r.V, true
		}
		return nil
	})
	return mark, found
}

// opNames names the operation codes of Op records.
var opNames = map[uint64]string{opCreate: "create", opMkdir: "mkdir", opMknod: "mknod", opSymlink: "symlink",
	opLink: "link", opUnlink: "unlink", opRmdir: "rmdir", opRename: "rename", opWrite: "write", opSetAttr: "setattr",
	opSetXattr: "setxattr", opRemoveXattr: "removexattr", opFreeInode: "free", opPunch: "punch",
	opCopyRange: "copy", opRepair: "repair", opZeroRange: "zero range", opCollapseRange: "collapse range",
	opInsertRange: "insert range", opRangeStep: "range step"}

// describeUnits says what the operations of units hold: how many of each
// kind, and which inodes they change.
func describeUnits(units []*segment.Unit) string {
	ops := map[string]int{}
	inos := map[uint64]bool{}
	for _, u := range units {
		if u.Header.Kind != segment.UnitOps {
			continue
		}
		journal.Decode(u.Records, func(r *journal.Record) error {
			switch r.Type {
			case journal.RecOp:
				name := opNames[r.Op]
				if name == "" {
					name = fmt.Sprintf("op %d", r.Op)
				}
				ops[name]++
			case journal.RecPut, journal.RecDel:
				if k := btree.DecodeKey(r.Key[:]); k.Type == inode.TypeInode {
					inos[k.Ino] = true
				}
			}
			return nil
		})
	}
	if len(ops) == 0 {
		return "no operations"
	}
	var parts []string
	for name, n := range ops {
		parts = append(parts, fmt.Sprintf("%d %s", n, name))
	}
	sort.Strings(parts)
	list := make([]uint64, 0, len(inos))
	for ino := range inos {
		list = append(list, ino)
	}
	sort.Slice(list, func(i, j int) bool { return list[i] < list[j] })
	var names []string
	for i, ino := range list {
		if i == 20 {
			names = append(names, fmt.Sprintf("and %d more", len(list)-20))
			break
		}
		names = append(names, fmt.Sprint(ino))
	}
	return fmt.Sprintf("%s, on inodes %s", strings.Join(parts, ", "), strings.Join(names, " "))
}
