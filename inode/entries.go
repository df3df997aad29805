package inode

import (
	"encoding/binary"
	"fmt"
)

// Dirent is one directory entry. A directory entries item (DirentKey)
// holds every entry whose name has the item's hash (almost always one),
// each as (docs/FORMAT.md, "Directory entry"):
//
//	8 inode  1 file type (mode>>12)  1 name length  name
type Dirent struct {
	Name string
	Ino  Ino
	Type uint8
}

// EncodeDirents returns the value of a directory entries item holding es.
func EncodeDirents(es []Dirent) []byte {
	var b []byte
	for _, e := range es {
		b = binary.LittleEndian.AppendUint64(b, e.Ino)
		b = append(b, e.Type, uint8(len(e.Name)))
		b = append(b, e.Name...)
	}
	return b
}

// DecodeDirents decodes a directory entries item; an entry that is cut
// short or has an empty name is ErrCorrupt. An empty value decodes to no
// entries.
func DecodeDirents(b []byte) ([]Dirent, error) {
	var es []Dirent
	for len(b) > 0 {
		if len(b) < 10 || len(b) < 10+int(b[9]) || b[9] == 0 {
			return nil, fmt.Errorf("%w: bad directory entry", ErrCorrupt)
		}
		n := int(b[9])
		es = append(es, Dirent{Ino: binary.LittleEndian.Uint64(b), Type: b[8], Name: string(b[10 : 10+n])})
		b = b[10+n:]
	}
	return es, nil
}

// Xattr is one extended attribute. An attributes item (XattrKey) holds
// every attribute whose name has the item's hash, each as (docs/FORMAT.md,
// "Extended attribute"):
//
//	1 name length  2 value length  name  value
type Xattr struct {
	Name  string
	Value []byte
}

// EncodeXattrs returns the value of an attributes item holding es.
func EncodeXattrs(es []Xattr) []byte {
	var b []byte
	for _, e := range es {
		b = append(b, uint8(len(e.Name)))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(e.Value)))
		b = append(b, e.Name...)
		b = append(b, e.Value...)
	}
	return b
}

// DecodeXattrs decodes an attributes item; an attribute that is cut short
// or has an empty name is ErrCorrupt. An empty value decodes to no
// attributes. The values do not share b.
func DecodeXattrs(b []byte) ([]Xattr, error) {
	var es []Xattr
	for len(b) > 0 {
		if len(b) < 3 {
			return nil, fmt.Errorf("%w: bad xattr entry", ErrCorrupt)
		}
		n, vl := int(b[0]), int(binary.LittleEndian.Uint16(b[1:]))
		if n == 0 || len(b) < 3+n+vl {
			return nil, fmt.Errorf("%w: bad xattr entry", ErrCorrupt)
		}
		es = append(es, Xattr{Name: string(b[3 : 3+n]), Value: append([]byte(nil), b[3+n:3+n+vl]...)})
		b = b[3+n+vl:]
	}
	return es, nil
}
