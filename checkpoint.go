package txfs

import (
	"encoding/binary"
	"fmt"

	"github.com/txfs/txfs/cow"
	"github.com/txfs/txfs/segment"
)

// The checkpoint record is the record section of a UnitCheckpoint unit
// (160 bytes and a list, little-endian):
//
//	  0 4 magic "TXCK"
//	  4 4 format version
//	  8 8 checkpoint number
//	 16 8 root node of the metadata tree (virtual block, 0 = empty)
//	 24 8 next inode number
//	 32 8 DAT entry count
//	 40 8 DAT free list head
//	 48 8 DAT free count
//	 56 16 DAT root pointer      72 4 DAT depth
//	 76 4 usage table depth
//	 80 16 usage table root pointer
//	 96 8 creation time of the checkpoint (Unix ns)
//	104 4 number n of tree nodes this checkpoint dropped
//	108 52 reserved (0)
//	160 8n the dropped nodes' virtual blocks: freed once this checkpoint is
//	       durable (and by recovery starting from it), not before, since
//	       the previous checkpoint still uses them
//
// These constants are part of the on-disk format.
const (
	checkpointMagic = "TXCK"
	checkpointSize  = 160
)

type checkpointRec struct {
	Number   uint64
	TreeRoot uint64
	NextIno  uint64
	DAT      cow.State
	SUTRoot  segment.BlockPtr
	SUTDepth int
	Time     int64
	// FreedNodes are tree nodes the checkpoint's tree no longer uses.
	FreedNodes []uint64
}

func (c *checkpointRec) encode() []byte {
	b := make([]byte, checkpointSize)
	le := binary.LittleEndian
	copy(b, checkpointMagic)
	le.PutUint32(b[4:], segment.FormatVersion)
	le.PutUint64(b[8:], c.Number)
	le.PutUint64(b[16:], c.TreeRoot)
	le.PutUint64(b[24:], c.NextIno)
	le.PutUint64(b[32:], c.DAT.Count)
	le.PutUint64(b[40:], c.DAT.FreeHead)
	le.PutUint64(b[48:], c.DAT.FreeCount)
	segment.PutBlockPtr(b[56:], c.DAT.Root)
	le.PutUint32(b[72:], uint32(c.DAT.Depth))
	le.PutUint32(b[76:], uint32(c.SUTDepth))
	segment.PutBlockPtr(b[80:], c.SUTRoot)
	le.PutUint64(b[96:], uint64(c.Time))
	le.PutUint32(b[104:], uint32(len(c.FreedNodes)))
	for _, id := range c.FreedNodes {
		b = le.AppendUint64(b, id)
	}
	return b
}

func decodeCheckpoint(b []byte) (*checkpointRec, error) {
	le := binary.LittleEndian
	if len(b) < checkpointSize || string(b[:4]) != checkpointMagic ||
		uint64(len(b)) != checkpointSize+8*uint64(le.Uint32(b[104:])) {
		return nil, fmt.Errorf("%w: checkpoint record damaged", ErrIO)
	}
	if v := le.Uint32(b[4:]); v != segment.FormatVersion {
		return nil, fmt.Errorf("%w: checkpoint version %d", ErrIO, v)
	}
	c := &checkpointRec{
		Number: le.Uint64(b[8:]), TreeRoot: le.Uint64(b[16:]), NextIno: le.Uint64(b[24:]),
		DAT: cow.State{Count: le.Uint64(b[32:]), FreeHead: le.Uint64(b[40:]), FreeCount: le.Uint64(b[48:]),
			Root: segment.GetBlockPtr(b[56:]), Depth: int(le.Uint32(b[72:]))},
		SUTDepth: int(le.Uint32(b[76:])), SUTRoot: segment.GetBlockPtr(b[80:]), Time: int64(le.Uint64(b[96:])),
	}
	for o := checkpointSize; o < len(b); o += 8 {
		c.FreedNodes = append(c.FreedNodes, le.Uint64(b[o:]))
	}
	if c.DAT.Depth > 8 || c.SUTDepth > 8 || c.TreeRoot >= 1<<63 || c.DAT.FreeCount >= c.DAT.Count && c.DAT.Count > 0 {
		return nil, fmt.Errorf("%w: checkpoint %d has impossible values", ErrIO, c.Number)
	}
	return c, nil
}
