// Package corrupt is the error for damage found in what was read from the
// device: bytes whose checksum does not match, a structure that does not
// decode, or one that contradicts another. It is distinct from a device
// error (the read itself failed) and from an invalid request: a caller can
// tell them apart with errors.Is(err, ErrAny), and find where the damage
// lies with LocationOf.
//
// Each package that decodes on-disk structures has its own kind of
// corruption (segment.ErrCorrupt, btree.ErrCorrupt, ...), made with Kind:
// every error that wraps one is corruption. Errorf adds where it was
// found; the layers above add what they know (Locate): the device address
// and virtual block where the engine read a block, the inode and file
// offset where a file's block was being read.
package corrupt

import (
	"errors"
	"fmt"
	"strings"
)

// ErrAny matches every corruption error: errors.Is(err, ErrAny).
var ErrAny = errors.New("corrupt")

// kind is one package's kind of corruption.
type kind struct{ msg string }

func (k *kind) Error() string        { return k.msg }
func (k *kind) Is(target error) bool { return target == ErrAny }

// Kind makes the sentinel of a kind of corruption, whose message names
// the structure ("btree: corrupt tree node"). Errors wrapping it match
// ErrAny.
func Kind(msg string) error { return &kind{msg} }

// Location says where damage was found. Zero fields are unknown.
type Location struct {
	Addr  uint64 // device byte address of the stored block or unit
	Block uint64 // virtual block (a file block, a tree node)
	Ino   uint64 // the inode whose data or items were read
	// Off is the file offset in bytes of the block read, when HasOff.
	Off    uint64
	HasOff bool
}

// missing is the fields of m that l does not know.
func (l Location) missing(m Location) Location {
	var d Location
	if l.Addr == 0 {
		d.Addr = m.Addr
	}
	if l.Block == 0 {
		d.Block = m.Block
	}
	if l.Ino == 0 {
		d.Ino = m.Ino
	}
	if !l.HasOff {
		d.Off, d.HasOff = m.Off, m.HasOff
	}
	return d
}

// merge is l with the fields it does not know taken from m.
func (l Location) merge(m Location) Location {
	d := l.missing(m)
	if d.Addr != 0 {
		l.Addr = d.Addr
	}
	if d.Block != 0 {
		l.Block = d.Block
	}
	if d.Ino != 0 {
		l.Ino = d.Ino
	}
	if d.HasOff {
		l.Off, l.HasOff = d.Off, true
	}
	return l
}

func (l Location) String() string {
	var parts []string
	if l.Addr != 0 {
		parts = append(parts, fmt.Sprintf("device byte %d", l.Addr))
	}
	if l.Block != 0 {
		parts = append(parts, fmt.Sprintf("virtual block %d", l.Block))
	}
	if l.Ino != 0 {
		parts = append(parts, fmt.Sprintf("inode %d", l.Ino))
	}
	if l.HasOff {
		parts = append(parts, fmt.Sprintf("offset %d", l.Off))
	}
	return strings.Join(parts, ", ")
}

// Error is corruption with where it was found.
type Error struct {
	At    Location // all that is known of where
	shown Location // what its message adds to the one it wraps
	err   error    // wraps the kind
}

func (e *Error) Error() string {
	if at := e.shown.String(); at != "" {
		return fmt.Sprintf("%v (at %s)", e.err, at)
	}
	return e.err.Error()
}

func (e *Error) Unwrap() error { return e.err }

// Errorf is an error of kind k found at at: its message is k's, then the
// formatted detail.
func Errorf(k error, at Location, format string, args ...any) error {
	return &Error{At: at, shown: at, err: fmt.Errorf("%w: %s", k, fmt.Sprintf(format, args...))}
}

// Locate adds at to a corruption error: the fields its location does not
// know yet. A corruption error without a location gets one; any other
// error (nil, a device error) is returned as it is. err is not changed (it
// may be shared): the result wraps it.
func Locate(err error, at Location) error {
	if err == nil || !errors.Is(err, ErrAny) {
		return err
	}
	var e *Error
	if !errors.As(err, &e) {
		return &Error{At: at, shown: at, err: err}
	}
	if err == error(e) {
		merged := e.At.merge(at)
		return &Error{At: merged, shown: merged, err: e.err}
	}
	return &Error{At: e.At.merge(at), shown: e.At.missing(at), err: err}
}

// LocationOf returns where the corruption err reports was found, if it
// is corruption with a location.
func LocationOf(err error) (Location, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.At, true
	}
	return Location{}, false
}
