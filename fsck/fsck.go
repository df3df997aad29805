// Package fsck is the checker and the repair of a txfs volume.
//
// The checker reads a volume's metadata (the tree, the DAT and the segment
// usage through cow.Blocks, the free segments) and verifies every checksum,
// reference count, link count, directory, orphan and the usage table.
// Repair decides what ordinary transactions can fix and asks the volume to
// run them. Neither knows the volume's internals: the volume gives them a
// Volume (txfs.Volume.Fsck), which says how they may read it and runs their
// changes. Check reads the volume as it is now, under the volume lock;
// CheckDurable reads its last durable checkpoint from the device while the
// volume goes on. The root package's Check and Repair, which the tests use
// everywhere, are this package's functions on that access; so fsck sits
// below the root package and imports only the layers under it.
package fsck

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/cow"
	"github.com/txfs/txfs/inode"
)

// RootIno is the inode of the root directory.
const RootIno = inode.RootIno

// LostFound is the directory Repair puts inodes that have no name into.
const LostFound = "lost+found"

// Volume is what the checker and repair need of a volume.
type Volume interface {
	// Inspect runs fn with read access to the volume's metadata, which
	// does not change while fn runs. With forRepair the volume must be
	// writable, and an error from fn (an item that does not decode) stops
	// the volume, as corruption met by any operation does.
	Inspect(forRepair bool, fn func(View) error) error
	// InspectDurable runs fn with read access to the metadata of the
	// volume's last durable checkpoint, read from the device, while the
	// volume goes on with its operations. Copy-on-write never writes over
	// what a checkpoint uses, but once a later checkpoint is durable the
	// segments it shows empty are reused: moved says that happened while
	// fn ran, so a block fn found damaged may have been sound.
	InspectDurable(fn func(View) error) (moved bool, err error)
	// Fix runs fn as one transaction.
	Fix(fn func(Tx) error) error
	// LostFound returns the directory name in the root directory, made
	// (as a repair) if it does not exist.
	LostFound(name string) (inode.Ino, error)
	// FixCounts sets every reference count in the DAT to what refs says
	// of the metadata as fn saw it (cow.Blocks.Repair), with nothing
	// changing in between, and writes the tables with a checkpoint when
	// something changed. It returns what changed.
	FixCounts(fn func(View) (refs func(vb uint64) uint32, err error)) ([]string, error)
	// OpenRepairs returns, once, what Open fixed: orphans freed and
	// truncates finished.
	OpenRepairs() []string
}

// View is read access to a volume's metadata.
type View interface {
	BlockSize() int
	Tree() *btree.Tree
	Blocks() *cow.Blocks
	// NextIno is the inode number the next new inode gets.
	NextIno() inode.Ino
	// FreeSegments are the segments the log may write next.
	FreeSegments() []uint32
	// DroppedNodes are tree nodes out of the tree whose virtual blocks
	// are not freed yet (until the next checkpoint, or until the one
	// that dropped them is durable): they still hold a reference.
	DroppedNodes() []uint64
	// ReadBlock reads virtual block vb and verifies its checksum.
	ReadBlock(vb uint64) error
	// NameError and XattrNameError say why the volume would refuse a
	// name of a directory entry or of an extended attribute (nil: none).
	NameError(name string) error
	XattrNameError(name string) error
	// KnownFlags are the inode flags the volume defines.
	KnownFlags() uint32
	// Warnings are damage recovery worked around (a superblock copy).
	Warnings() []string
	// Damage describes the damage recovery found in the log ("": none).
	Damage() string
	// Snapshots are the tree roots the snapshots hold, and SnapshotTable
	// the virtual blocks of their table.
	Snapshots() []uint64
	SnapshotTable() []uint64
	// LoadNode reads tree node id, verified.
	LoadNode(id btree.NodeID) ([]byte, error)
	// SnapshotTree is the tree of the snapshot whose root is root, for
	// reading.
	SnapshotTree(root uint64) *btree.Tree
}

// Tx is the transaction Fix runs: the changes a repair makes.
type Tx interface {
	PutInode(ino inode.Ino, r *inode.Record) error
	AddEntry(dir inode.Ino, e inode.Dirent) error
	RemoveEntry(dir inode.Ino, name string) error
	Delete(k btree.Key) error
}

// ErrCheckpoint is wrapped by the error of InspectDurable when the
// checkpoint cannot be read: damage CheckDurable reports.
var ErrCheckpoint = errors.New("the last durable checkpoint cannot be read")

// ErrCheck is wrapped by every problem Check finds.
var ErrCheck = errors.New("txfs: check found problems")

// Report is what the checker found.
type Report struct {
	Inodes      uint64
	Directories uint64
	DataBlocks  uint64 // virtual blocks of file data
	Nodes       uint64 // metadata tree nodes
	Orphans     uint64
	Problems    []string
	// Warnings are damage that recovery works around and the next
	// checkpoint repairs: one superblock slot unreadable, as a power cut
	// during its write leaves it.
	Warnings []string
}

func (r *Report) addf(format string, a ...any) {
	if len(r.Problems) < 1000 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
	}
}

// Err returns nil for a clean report, else an error listing the problems.
func (r *Report) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	n := min(len(r.Problems), 10)
	return fmt.Errorf("%w: %d problems, first: %v", ErrCheck, len(r.Problems), r.Problems[:n])
}

// Progress is told, now and then, how far the checker is: which of its
// four passes (1 tree, 2 names, 3 virtual blocks, 4 segments) and how far
// through it, as done of total.
type Progress func(pass int, done, total uint64)

func isDir(mode uint32) bool { return mode&syscall.S_IFMT == syscall.S_IFDIR }
