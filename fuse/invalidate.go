package fuse

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/txfs/txfs"
)

// Server is a mounted volume: the go-fuse server, and what the kernel
// caches of the volume, which its Invalidate methods drop.
//
// The kernel keeps names (entry timeout), attributes (attribute timeout)
// and file pages (across opens: FOPEN_KEEP_CACHE, and across writes:
// ExplicitDataCacheControl) of the mount. Every change that comes through
// the mount keeps those caches right by itself. Whatever changes the
// volume by another way (the volume's own API, a restore of the tree)
// must call an Invalidate method once the change is complete, or the
// mount shows the old names, attributes and bytes.
//
// The Invalidate methods write notifications to the kernel and wait for
// it to apply them, which takes the locks of the pages and directories
// involved: never call them from a request handler, nor while holding a
// lock that a request handler may wait for (the volume's own locks
// included), or they deadlock.
type Server struct {
	*fuse.Server
	fsys *filesystem
}

// knownNodes is every Node the kernel may have cached something of: each
// Node go-fuse made for an inode, from its LOOKUP (or create) until
// OnForget. go-fuse keeps one Node per inode number.
type knownNodes struct {
	mu    sync.Mutex
	nodes map[txfs.Ino]*Node
}

// add records n, which go-fuse returned for its inode number.
func (k *knownNodes) add(n *Node) {
	k.mu.Lock()
	if k.nodes == nil {
		k.nodes = make(map[txfs.Ino]*Node)
	}
	k.nodes[n.ino()] = n
	k.mu.Unlock()
}

// remove forgets n, unless a newer Node of the same inode replaced it.
func (k *knownNodes) remove(n *Node) {
	k.mu.Lock()
	if k.nodes[n.ino()] == n {
		delete(k.nodes, n.ino())
	}
	k.mu.Unlock()
}

// get returns the Node of ino, or nil when the kernel has none.
func (k *knownNodes) get(ino txfs.Ino) *Node {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.nodes[ino]
}

// all returns every known Node.
func (k *knownNodes) all() []*Node {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]*Node, 0, len(k.nodes))
	for _, n := range k.nodes {
		out = append(out, n)
	}
	return out
}

// notifyErr turns the answer to a notification into an error. ENOENT
// means the kernel no longer has the inode or the name: nothing was
// cached.
func notifyErr(what string, errno syscall.Errno) error {
	if errno == 0 || errno == syscall.ENOENT {
		return nil
	}
	return fmt.Errorf("txfs: invalidating %s in the kernel: %w", what, errno)
}

// dropData drops the kernel's pages of n in [off, off+length) (to the end
// of the file when length <= 0) and its attributes. n's next open drops
// every page the kernel has of it too, so that a notification the kernel
// could not apply leaves no stale page for later readers.
func (n *Node) dropData(off, length int64) error {
	n.changedBehind.Store(true)
	return notifyErr(fmt.Sprintf("the pages of inode %d", n.ino()), n.NotifyContent(off, length))
}

// InvalidateFile tells the kernel that the bytes [off, off+length) of
// inode ino (to the end of the file when length <= 0) and its attributes
// changed behind it. Readers see the new bytes at once, also through
// descriptors they opened before; the kernel keeps the rest of its pages.
func (s *Server) InvalidateFile(ino txfs.Ino, off, length int64) error {
	if off < 0 {
		return fmt.Errorf("txfs: invalidating inode %d: negative offset %d", ino, off)
	}
	n := s.fsys.known.get(ino)
	if n == nil {
		return nil // the kernel has nothing of it
	}
	return n.dropData(off, length)
}

// InvalidateEntry tells the kernel that the name in directory dir changed
// behind it (it was removed, made, or names another inode now): its next
// use looks the name up again.
func (s *Server) InvalidateEntry(dir txfs.Ino, name string) error {
	n := s.fsys.known.get(dir)
	if n == nil {
		return nil
	}
	return notifyErr(fmt.Sprintf("name %q in inode %d", name, dir), n.NotifyEntry(name))
}

// InvalidateAll drops every name, attribute and page the kernel caches of
// the mount, for a change to the whole tree behind the kernel's back (a
// restore). Open files stay open and read the volume's bytes from then
// on; each name is looked up again at its next use. Like any removal of
// a name behind the kernel (NFS has the same), a directory name dropped
// this way takes with it what is mounted on it or below.
//
// Pages written through a shared mapping and not yet written back are
// written to the volume when the kernel drops them: they are changes
// made through the mount, the latest ones.
func (s *Server) InvalidateAll() error {
	var errs []error
	nodes := s.fsys.known.all()
	for _, n := range nodes {
		if !n.IsDir() {
			continue
		}
		for name := range n.Children() {
			errs = append(errs, notifyErr(fmt.Sprintf("name %q in inode %d", name, n.ino()), n.NotifyEntry(name)))
		}
	}
	for _, n := range nodes {
		errs = append(errs, n.dropData(0, 0))
	}
	return errors.Join(errs...)
}
