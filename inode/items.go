package inode

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/internal/corrupt"
)

// Ino is an inode number. Inode numbers are never reused, so the
// generation of every inode is 1.
type Ino = uint64

// RootIno is the inode of the root directory.
const RootIno Ino = 1

// ErrCorrupt is wrapped by every error about an item value that does not
// decode.
var ErrCorrupt = corrupt.Kind("inode: corrupt item")

// Item types: the Type of a key (docs/FORMAT.md, "Item types").
const (
	TypeInode   = 1 // (ino, 1, 0): the inode record
	TypeDirent  = 2 // (dir, 2, name hash): the entries whose name has that hash
	TypeXattr   = 3 // (ino, 3, name hash): the attributes whose name has that hash
	TypeSymlink = 4 // (ino, 4, chunk): the symlink target, in chunks
	TypeBlock   = 5 // (ino, 5, file block): the virtual block holding it
	TypeOrphan  = 6 // (0, 6, ino): an inode with no names, freed when closed or at recovery
	TypeTrunc   = 7 // (0, 7, ino): blocks past the size still to be freed (truncate in progress)
	TypeRange   = 8 // (0, 8, ino): what a range operation still has to do
)

// InodeKey is the key of ino's inode record (Record).
func InodeKey(ino Ino) btree.Key { return btree.Key{Ino: ino, Type: TypeInode} }

// DirentKey is the key of the entries of directory dir whose name hashes
// to h (NameHash); its value is EncodeDirents.
func DirentKey(dir Ino, h uint64) btree.Key { return btree.Key{Ino: dir, Type: TypeDirent, Off: h} }

// XattrKey is the key of the extended attributes of ino whose name hashes
// to h (NameHash); its value is EncodeXattrs.
func XattrKey(ino Ino, h uint64) btree.Key { return btree.Key{Ino: ino, Type: TypeXattr, Off: h} }

// SymlinkKey is the key of chunk c of the target of symlink ino
// (SplitSymlink).
func SymlinkKey(ino Ino, c uint64) btree.Key { return btree.Key{Ino: ino, Type: TypeSymlink, Off: c} }

// BlockKey is the key of the block map item of file block b of ino; its
// value is EncodeBlockItem. A file block with no item is a hole.
func BlockKey(ino Ino, b uint64) btree.Key { return btree.Key{Ino: ino, Type: TypeBlock, Off: b} }

// OrphanKey is the key of the mark of ino as an orphan: an inode with no
// name, freed when closed or at the next open. Its value is empty.
func OrphanKey(ino Ino) btree.Key { return btree.Key{Ino: 0, Type: TypeOrphan, Off: ino} }

// TruncKey is the key of the mark of a truncate of ino in progress; its
// value is EncodeTruncItem.
func TruncKey(ino Ino) btree.Key { return btree.Key{Ino: 0, Type: TypeTrunc, Off: ino} }

// RangeKey is the key of the range operation in progress on ino; its value
// is RangeOp.Encode.
func RangeKey(ino Ino) btree.Key { return btree.Key{Ino: 0, Type: TypeRange, Off: ino} }

// NameHash places a name in its directory or attribute list (the offset of
// DirentKey and XattrKey): 62 bits of xxhash64, so that readdir cookies
// (hash+1) stay below 1<<62 (docs/FORMAT.md, "Item types").
func NameHash(name string) uint64 { return xxhash.Sum64String(name) >> 2 }

// EncodeBlockItem is the value of a block map item: the virtual block
// that holds the file block, 8 bytes little-endian (docs/FORMAT.md, "Item
// types").
func EncodeBlockItem(vb uint64) []byte { return binary.LittleEndian.AppendUint64(nil, vb) }

// DecodeBlockItem returns the virtual block a block map item names. A
// value that is not 8 bytes names block 0, which is never a block: whoever
// follows it gets an error from the DAT, and the checker reports the item.
func DecodeBlockItem(b []byte) uint64 { return decodeU64(b) }

// EncodeTruncItem is the value of a truncate item: the new size in bytes,
// 8 bytes little-endian; blocks past it are still being freed
// (docs/FORMAT.md, "Item types").
func EncodeTruncItem(size uint64) []byte { return binary.LittleEndian.AppendUint64(nil, size) }

// DecodeTruncItem returns the size a truncate item records. A value that
// is not 8 bytes is ErrCorrupt: taken as 0, it would free the whole file.
func DecodeTruncItem(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: truncate item of %d bytes", ErrCorrupt, len(b))
	}
	return binary.LittleEndian.Uint64(b), nil
}

func decodeU64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

// SplitSymlink cuts a symlink target into the values of its symlink items
// (SymlinkKey chunk 0, 1, ...): pieces of chunk bytes, the last one
// shorter. The target is their concatenation, as long as the inode's size
// (docs/FORMAT.md, "Item types").
func SplitSymlink(target string, chunk int) [][]byte {
	var out [][]byte
	for c := 0; c*chunk < len(target); c++ {
		out = append(out, []byte(target[c*chunk:min(len(target), (c+1)*chunk)]))
	}
	return out
}
