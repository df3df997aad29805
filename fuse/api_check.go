package fuse

import "github.com/hanwen/go-fuse/v2/fs"

// Every go-fuse interface the adapter implements, checked at compile time.
// go-fuse finds the operations by type assertion, so a method with a wrong
// signature is silently not called: an unimplemented Unlink or Rmdir
// succeeds without doing anything, a missing Open fails every open.
//
// Deliberately not implemented:
//   - NodeAccesser: the mount uses default_permissions, so the kernel
//     never sends ACCESS.
//   - NodeStatxer: go-fuse answers STATX with ENOSYS, and the kernel
//     then uses GETATTR (Getattr) for the rest of the mount.
//   - NodeReaddirer, NodeOpendirer: OpendirHandle supersedes both.
var (
	_ = (fs.InodeEmbedder)((*Node)(nil))
	_ = (fs.NodeLookuper)((*Node)(nil))
	_ = (fs.NodeGetattrer)((*Node)(nil))
	_ = (fs.NodeSetattrer)((*Node)(nil))
	_ = (fs.NodeOpener)((*Node)(nil))
	_ = (fs.NodeCreater)((*Node)(nil))
	_ = (fs.NodeTmpfiler)((*Node)(nil))
	_ = (fs.NodeReleaser)((*Node)(nil))
	_ = (fs.NodeGetlker)((*Node)(nil))
	_ = (fs.NodeSetlker)((*Node)(nil))
	_ = (fs.NodeSetlkwer)((*Node)(nil))
	_ = (fs.NodeReader)((*Node)(nil))
	_ = (fs.NodeWriter)((*Node)(nil))
	_ = (fs.NodeFlusher)((*Node)(nil))
	_ = (fs.NodeFsyncer)((*Node)(nil))
	_ = (fs.NodeLseeker)((*Node)(nil))
	_ = (fs.NodeAllocater)((*Node)(nil))
	_ = (fs.NodeCopyFileRanger)((*Node)(nil))
	_ = (fs.NodeMkdirer)((*Node)(nil))
	_ = (fs.NodeMknoder)((*Node)(nil))
	_ = (fs.NodeSymlinker)((*Node)(nil))
	_ = (fs.NodeReadlinker)((*Node)(nil))
	_ = (fs.NodeLinker)((*Node)(nil))
	_ = (fs.NodeUnlinker)((*Node)(nil))
	_ = (fs.NodeRmdirer)((*Node)(nil))
	_ = (fs.NodeRenamer)((*Node)(nil))
	_ = (fs.NodeOpendirHandler)((*Node)(nil))
	_ = (fs.NodeGetxattrer)((*Node)(nil))
	_ = (fs.NodeSetxattrer)((*Node)(nil))
	_ = (fs.NodeListxattrer)((*Node)(nil))
	_ = (fs.NodeRemovexattrer)((*Node)(nil))
	_ = (fs.NodeStatfser)((*Node)(nil))
	_ = (fs.NodeOnForgetter)((*Node)(nil))
	_ = (fs.NodeIoctler)((*Node)(nil))

	_ = (fs.FileReaddirenter)((*dirHandle)(nil))
	_ = (fs.FileSeekdirer)((*dirHandle)(nil))
	_ = (fs.FileFsyncdirer)((*dirHandle)(nil))
	_ = (fs.FileReleasedirer)((*dirHandle)(nil))
)
