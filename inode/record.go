package inode

import (
	"encoding/binary"
	"fmt"
)

// Timespec is a timestamp with nanoseconds.
type Timespec struct {
	Sec  int64
	Nsec uint32
}

// RecordSize is the encoded size of an inode record.
const RecordSize = 96

// Record is the inode record, the value of InodeKey (96 bytes,
// little-endian; docs/FORMAT.md, "Inode record"):
//
//	 0 4 mode      4 4 nlink     8 4 uid     12 4 gid
//	16 8 size     24 8 data blocks (virtual blocks mapped)
//	32 8 rdev     40 8 atime s  48 4 atime ns
//	52 4 mtime ns 56 8 mtime s  64 8 ctime s  72 4 ctime ns
//	76 4 inode flags (Linux's FS_*_FL values)
//	80 8 parent directory (directories only; 0 otherwise)  88 8 reserved
type Record struct {
	Mode, Nlink, Uid, Gid uint32
	Size, NBlocks, Rdev   uint64
	Atime, Mtime, Ctime   Timespec
	Flags                 uint32
	Parent                Ino
}

// Encode returns the RecordSize bytes of r.
func (r *Record) Encode() []byte {
	b := make([]byte, RecordSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], r.Mode)
	le.PutUint32(b[4:], r.Nlink)
	le.PutUint32(b[8:], r.Uid)
	le.PutUint32(b[12:], r.Gid)
	le.PutUint64(b[16:], r.Size)
	le.PutUint64(b[24:], r.NBlocks)
	le.PutUint64(b[32:], r.Rdev)
	le.PutUint64(b[40:], uint64(r.Atime.Sec))
	le.PutUint32(b[48:], r.Atime.Nsec)
	le.PutUint32(b[52:], r.Mtime.Nsec)
	le.PutUint64(b[56:], uint64(r.Mtime.Sec))
	le.PutUint64(b[64:], uint64(r.Ctime.Sec))
	le.PutUint32(b[72:], r.Ctime.Nsec)
	le.PutUint32(b[76:], r.Flags)
	le.PutUint64(b[80:], r.Parent)
	return b
}

// DecodeRecord decodes the inode record of ino; a value that is not
// RecordSize bytes is ErrCorrupt. The fields are not checked: that is the
// checker's job.
func DecodeRecord(ino Ino, b []byte) (*Record, error) {
	if len(b) != RecordSize {
		return nil, fmt.Errorf("%w: inode %d record of %d bytes", ErrCorrupt, ino, len(b))
	}
	le := binary.LittleEndian
	return &Record{
		Mode: le.Uint32(b[0:]), Nlink: le.Uint32(b[4:]), Uid: le.Uint32(b[8:]), Gid: le.Uint32(b[12:]),
		Size: le.Uint64(b[16:]), NBlocks: le.Uint64(b[24:]), Rdev: le.Uint64(b[32:]),
		Atime:  Timespec{int64(le.Uint64(b[40:])), le.Uint32(b[48:])},
		Mtime:  Timespec{int64(le.Uint64(b[56:])), le.Uint32(b[52:])},
		Ctime:  Timespec{int64(le.Uint64(b[64:])), le.Uint32(b[72:])},
		Flags:  le.Uint32(b[76:]),
		Parent: le.Uint64(b[80:]),
	}, nil
}
