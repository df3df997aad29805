package txfs

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/txfs/txfs/btree"
)

// Item types of the metadata tree: every piece of metadata is an item keyed
// by (inode, type, offset). Part of the on-disk format (docs/FORMAT.md).
const (
	itemInode   = 1 // (ino, 1, 0): the inode record
	itemDirent  = 2 // (dir, 2, name hash): the entries whose name has that hash
	itemXattr   = 3 // (ino, 3, name hash): the attributes whose name has that hash
	itemSymlink = 4 // (ino, 4, chunk): the symlink target, in chunks
	itemBlock   = 5 // (ino, 5, file block): the virtual block holding it
	itemOrphan  = 6 // (0, 6, ino): an inode with no names, freed when closed or at recovery
	itemTrunc   = 7 // (0, 7, ino): blocks past the size still to be freed (truncate in progress)
	itemRange   = 8 // (0, 8, ino): what a range operation still has to do (rangeop.go)
)

// inodeSize is the encoded size of an inode record.
const inodeSize = 96

// inodeRec is the inode record (96 bytes, little-endian):
//
//	 0 4 mode      4 4 nlink     8 4 uid     12 4 gid
//	16 8 size     24 8 data blocks (virtual blocks mapped)
//	32 8 rdev     40 8 atime s  48 4 atime ns
//	52 4 mtime ns 56 8 mtime s  64 8 ctime s  72 4 ctime ns
//	76 4 inode flags (FlagImmutable...: Linux's FS_*_FL values)
//	80 8 parent directory (directories only; 0 otherwise)  88 8 reserved
type inodeRec struct {
	Mode, Nlink, Uid, Gid uint32
	Size, NBlocks, Rdev   uint64
	Atime, Mtime, Ctime   Timespec
	Flags                 uint32
	Parent                Ino
}

func (r *inodeRec) encode() []byte {
	b := make([]byte, inodeSize)
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

func decodeInode(ino Ino, b []byte) (*inodeRec, error) {
	if len(b) != inodeSize {
		return nil, fmt.Errorf("%w: inode %d record of %d bytes", ErrIO, ino, len(b))
	}
	le := binary.LittleEndian
	return &inodeRec{
		Mode: le.Uint32(b[0:]), Nlink: le.Uint32(b[4:]), Uid: le.Uint32(b[8:]), Gid: le.Uint32(b[12:]),
		Size: le.Uint64(b[16:]), NBlocks: le.Uint64(b[24:]), Rdev: le.Uint64(b[32:]),
		Atime:  Timespec{int64(le.Uint64(b[40:])), le.Uint32(b[48:])},
		Mtime:  Timespec{int64(le.Uint64(b[56:])), le.Uint32(b[52:])},
		Ctime:  Timespec{int64(le.Uint64(b[64:])), le.Uint32(b[72:])},
		Flags:  le.Uint32(b[76:]),
		Parent: le.Uint64(b[80:]),
	}, nil
}

// nameHash places a name in its directory or attribute list: 62 bits of
// xxhash64, so that readdir cookies (hash+1) stay below 1<<62.
func nameHash(name string) uint64 { return xxhash.Sum64String(name) >> 2 }

func inodeKey(ino Ino) btree.Key             { return btree.Key{Ino: ino, Type: itemInode} }
func direntKey(dir Ino, h uint64) btree.Key  { return btree.Key{Ino: dir, Type: itemDirent, Off: h} }
func xattrKey(ino Ino, h uint64) btree.Key   { return btree.Key{Ino: ino, Type: itemXattr, Off: h} }
func blockKey(ino Ino, b uint64) btree.Key   { return btree.Key{Ino: ino, Type: itemBlock, Off: b} }
func orphanKey(ino Ino) btree.Key            { return btree.Key{Ino: 0, Type: itemOrphan, Off: ino} }
func truncKey(ino Ino) btree.Key             { return btree.Key{Ino: 0, Type: itemTrunc, Off: ino} }
func symlinkKey(ino Ino, c uint64) btree.Key { return btree.Key{Ino: ino, Type: itemSymlink, Off: c} }

// dirent is one directory entry. A dirent item holds every entry whose name
// has the item's hash (almost always one), each as:
//
//	8 inode  1 file type (mode>>12)  1 name length  name
type dirent struct {
	Name string
	Ino  Ino
	Type uint8
}

func encodeDirents(es []dirent) []byte {
	var b []byte
	for _, e := range es {
		b = binary.LittleEndian.AppendUint64(b, e.Ino)
		b = append(b, e.Type, uint8(len(e.Name)))
		b = append(b, e.Name...)
	}
	return b
}

func decodeDirents(b []byte) ([]dirent, error) {
	var es []dirent
	for len(b) > 0 {
		if len(b) < 10 || len(b) < 10+int(b[9]) || b[9] == 0 {
			return nil, fmt.Errorf("%w: bad directory entry", ErrIO)
		}
		n := int(b[9])
		es = append(es, dirent{Ino: binary.LittleEndian.Uint64(b), Type: b[8], Name: string(b[10 : 10+n])})
		b = b[10+n:]
	}
	return es, nil
}

// xattrEntry is one extended attribute. An xattr item holds every attribute
// whose name has the item's hash, each as:
//
//	1 name length  2 value length  name  value
type xattrEntry struct {
	Name  string
	Value []byte
}

func encodeXattrs(es []xattrEntry) []byte {
	var b []byte
	for _, e := range es {
		b = append(b, uint8(len(e.Name)))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(e.Value)))
		b = append(b, e.Name...)
		b = append(b, e.Value...)
	}
	return b
}

func decodeXattrs(b []byte) ([]xattrEntry, error) {
	var es []xattrEntry
	for len(b) > 0 {
		if len(b) < 3 {
			return nil, fmt.Errorf("%w: bad xattr entry", ErrIO)
		}
		n, vl := int(b[0]), int(binary.LittleEndian.Uint16(b[1:]))
		if n == 0 || len(b) < 3+n+vl {
			return nil, fmt.Errorf("%w: bad xattr entry", ErrIO)
		}
		es = append(es, xattrEntry{Name: string(b[3 : 3+n]), Value: append([]byte(nil), b[3+n:3+n+vl]...)})
		b = b[3+n+vl:]
	}
	return es, nil
}
