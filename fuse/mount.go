package fuse

import (
	"errors"
	"fmt"
	"log"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/txfs/txfs"
)

// DefaultTimeout is the entry and attribute timeout when MountConfig
// leaves them zero.
const DefaultTimeout = time.Second

// MountConfig says how to mount a volume.
type MountConfig struct {
	// ReadOnly mounts read-only ("ro"). Open the volume read-only too.
	ReadOnly bool
	// AllowOther lets users other than the one who mounted use the mount
	// (needs user_allow_other in /etc/fuse.conf when not root).
	AllowOther bool
	// DefaultPermissions makes the kernel check permissions from the
	// mode, owner and group of each inode. nil means true; only turn it
	// off for a single-user mount, as the adapter checks almost nothing
	// itself.
	DefaultPermissions *bool
	// NoAtime mounts with noatime. Open the volume with
	// txfs.Options{NoAtime: true} too: the engine is what updates atime on
	// reads (the kernel leaves it to a FUSE daemon).
	NoAtime bool
	// NoExec mounts with noexec: no program on the mount may be run.
	NoExec bool
	// FsName is shown as the source in /proc/mounts and df: the image path.
	FsName string
	// Debug logs every FUSE request and reply.
	Debug bool
	// ReadAheadKB is the kernel readahead of the mount in KiB ("readahead=").
	// 0 means DefaultReadAheadKB; a negative value leaves the kernel's
	// default (128 KiB).
	ReadAheadKB int
	// EntryTimeout and AttrTimeout are how long the kernel may cache
	// names and attributes. 0 means DefaultTimeout; a negative value
	// means no caching.
	EntryTimeout time.Duration
	AttrTimeout  time.Duration

	// panicHandler, if set, is called when a request handler panics
	// (tests fail on it).
	panicHandler func(any) fuse.Status
	// wrapRaw, if set, wraps the raw filesystem the server calls (tests
	// count requests with it).
	wrapRaw func(fuse.RawFileSystem) fuse.RawFileSystem
}

func timeout(d time.Duration) *time.Duration {
	switch {
	case d == 0:
		d = DefaultTimeout
	case d < 0:
		d = 0
	}
	return &d
}

// Mount serves v on dir and returns once the kernel has the mount. A change
// to v that does not come through the mount must be followed by one of the
// server's Invalidate methods. The caller unmounts with the server's
// Unmount (which fails with EBUSY while files are open) and waits for the
// end with Wait; then it closes v.
//
// Mount first calls mount(2) itself, which needs root; when that is not
// permitted it falls back to fusermount3. When it fails, it has left no
// mount on dir, also when the failure came after the kernel made the mount
// (a mount point that is not a directory, the readahead setting).
func Mount(v *txfs.Volume, dir string, o MountConfig) (*Server, error) {
	server, err := mount(v, dir, o)
	if err != nil {
		return nil, err
	}
	kb := o.ReadAheadKB
	if kb == 0 {
		kb = DefaultReadAheadKB
	}
	if kb > 0 {
		// Only root may tune it; other mounts keep the kernel's 128 KiB.
		if err := setReadAhead(dir, kb); err != nil && !errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EROFS) {
			if rerr := Release(server, dir); rerr != nil {
				return nil, fmt.Errorf("%w (and the mount stays: %v)", err, rerr)
			}
			return nil, err
		}
	}
	return server, nil
}

// setReadAhead is SetReadAhead; tests make it fail.
var setReadAhead = SetReadAhead

func mount(v *txfs.Volume, dir string, o MountConfig) (*Server, error) {
	mo := fuse.MountOptions{
		// "fuse.txfs" in /proc/mounts and df -T.
		Name: "txfs",
		// The image path as the source, so mount, df and findmnt show
		// which image is mounted where.
		FsName: o.FsName,
		// The largest request the kernel takes (256 pages). Each write
		// request is one engine call and one round trip: big writes
		// cost a quarter of the round trips of the 128 KiB default and
		// fill whole segments. Practices item 19.
		MaxWrite: 1 << 20,
		// Requests the kernel keeps in flight for readahead and async
		// I/O (default 12): the engine serves concurrent reads, so let
		// the kernel queue more. Practices item 19.
		MaxBackground: 64,
		// Replies carry data the engine has verified in memory, never a
		// file descriptor to splice from. With splicing on, go-fuse
		// first writes each read reply's header into a pipe, finds it
		// cannot splice a byte slice, drains the pipe and then writes
		// the reply anyway: three wasted syscalls per read.
		DisableSplice: true,
		// HANDLE_KILLPRIV_V2: txfs clears the set-ID bits and the
		// security.capability attribute itself on write, truncate and
		// chown, so the kernel need not ask for security.capability
		// before every write (GETXATTR, a round trip per write: a third
		// of a 4 KiB write with fsync) and marks inodes it has checked
		// once (SB_NOSEC). go-fuse does not offer the capability by
		// itself.
		//
		// READDIRPLUS_AUTO: the kernel asks for READDIRPLUS (entries
		// with their attributes) for the start of a listing and then
		// only while the program stats what it lists, plain READDIR
		// otherwise. With plain READDIR, ls -l of 100,000 names made
		// 100,000 LOOKUP round trips (docs/PERFORMANCE.md); with
		// READDIRPLUS every time, a listing that stats nothing would
		// instantiate an inode per name (gocryptfs issue 1026,
		// practices item 18). go-fuse offers neither flag by itself.
		ExtraCapabilities: fuse.CAP_HANDLE_KILLPRIV_V2 | fuse.CAP_READDIRPLUS_AUTO,
		// The kernel forwards fcntl and flock locks to the daemon, which
		// keeps them (locks.go): the locks on the volume live in the
		// process that serves it. Node implements GETLK, SETLK and
		// SETLKW; without them go-fuse would answer ENOTSUP.
		EnableLocks: true,
		// The kernel keeps the pages it has of a file across opens
		// (FOPEN_KEEP_CACHE, node.go) and does not drop them when a
		// file's mtime moves (AUTO_INVAL_DATA, go-fuse's default, would:
		// after one 4 KiB write to a 4 MiB file, the next read fetched
		// all 4 MiB again). Every change to a file's bytes through the
		// mount passes through the kernel, which keeps its cache right;
		// a change behind its back calls Server.InvalidateFile or
		// InvalidateAll (invalidate.go).
		ExplicitDataCacheControl: true,
		// A symlink target changes only with its inode (a restore drops
		// it with InvalidateAll): the kernel may keep it.
		EnableSymlinkCaching: true,
		AllowOther:           o.AllowOther,
		Debug:                o.Debug,
		// Only root can mount(2) directly; DirectMountStrict because the
		// fallback below is ours (it needs other options).
		DirectMountStrict: true,
		// nosuid and nodev as fusermount3 sets them for users: set-ID
		// bits and device nodes on an image are not to be trusted.
		// noatime and ro are mount flags, not FUSE options, for mount(2).
		DirectMountFlags: syscall.MS_NOSUID | syscall.MS_NODEV,
	}
	if o.DefaultPermissions == nil || *o.DefaultPermissions {
		// The kernel checks permissions from the attributes we report;
		// without it any user could read any file on an allow_other
		// mount.
		mo.Options = append(mo.Options, "default_permissions")
	}
	if o.ReadOnly {
		mo.DirectMountFlags |= syscall.MS_RDONLY
	}
	if o.NoAtime {
		mo.DirectMountFlags |= syscall.MS_NOATIME
	}
	if o.NoExec {
		mo.DirectMountFlags |= syscall.MS_NOEXEC
	}
	if o.panicHandler != nil {
		mo.PanicHandler = o.panicHandler
	}

	rootAttr := fs.StableAttr{Mode: syscall.S_IFDIR, Ino: txfs.RootIno, Gen: 1}
	opts := fs.Options{
		MountOptions: mo,
		// 1 s by default: txfs is the only writer of the image, so
		// caching is safe; the timeouts bound how long a future snapshot
		// restore may show stale names before its invalidations arrive.
		EntryTimeout: timeout(o.EntryTimeout),
		AttrTimeout:  timeout(o.AttrTimeout),
		// The root's real inode number, so stat shows 1 and not a
		// number go-fuse made up. Practices item 14.
		RootStableAttr: &rootAttr,
		// Report modes exactly as stored: without this go-fuse shows a
		// mode with no permission bits as 0644 (0755 for directories), and
		// with default_permissions the kernel would then let everyone read
		// a file chmodded to 000.
		NullPermissions: true,
	}

	server, err := serve(dir, v, &opts, o.wrapRaw)
	if err == nil || !(errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES)) {
		return server, err
	}

	// Not root (mount(2) is not permitted, or /dev/fuse is root's only):
	// let the setuid fusermount3 mount, with ro and noatime as options.
	opts.DirectMountStrict = false
	opts.DirectMountFlags = 0
	if o.ReadOnly {
		opts.Options = append(opts.Options, "ro")
	}
	if o.NoAtime {
		opts.Options = append(opts.Options, "noatime")
	}
	if o.NoExec {
		opts.Options = append(opts.Options, "noexec")
	}
	server, err2 := serve(dir, v, &opts, o.wrapRaw)
	if err2 != nil {
		return nil, fmt.Errorf("mount %s: %w (as non-root via fusermount3: %v)", dir, err, err2)
	}
	return server, nil
}

// serve mounts v on dir and serves it, as fs.Mount does, with the raw
// filesystem wrapped so that FLUSH releases locks (lockingFS) and the
// requests are counted (meteredFS), and then by wrap if it is set. When
// it fails, it leaves no mount on dir.
func serve(dir string, v *txfs.Volume, opts *fs.Options, wrap func(fuse.RawFileSystem) fuse.RawFileSystem) (*Server, error) {
	root := newRoot(v)
	var raw fuse.RawFileSystem = &lockingFS{RawFileSystem: fs.NewNodeFS(root, opts), locks: &root.fsys.locks}
	root.fsys.known.add(root)
	ops, err := newOpMetrics(v.Metrics())
	if err != nil {
		return nil, err
	}
	raw = &meteredFS{RawFileSystem: raw, m: ops}
	if wrap != nil {
		raw = wrap(raw)
	}
	before, beforeErr := MountsOn(dir)
	server, err := fuse.NewServer(raw, dir, &opts.MountOptions)
	if err != nil {
		// NewServer can fail after mount(2) succeeded (the INIT
		// handshake), and then leaves a mount that nothing serves.
		if beforeErr != nil {
			return nil, err
		}
		if derr := detachNewMounts(dir, before); derr != nil {
			return nil, fmt.Errorf("%w (%v)", err, derr)
		}
		return nil, err
	}
	go server.Serve()
	s := &Server{Server: server, fsys: root.fsys}
	if err := server.WaitMount(); err != nil {
		// The kernel has the mount (NewServer returns only then on
		// Linux), but the first request failed: on a mount point that
		// is not a directory, go-fuse's first lookup fails ENOTDIR.
		if rerr := Release(s, dir); rerr != nil {
			return nil, fmt.Errorf("%w (and the mount stays: %v)", err, rerr)
		}
		return nil, err
	}
	v.OnSnapshotChange(func(op, name string) {
		switch op {
		case "delete":
			root.fsys.snapshotDeleted(name)
		case "restore":
			// The whole tree changed behind the kernel's back.
			if err := s.InvalidateAll(); err != nil {
				log.Printf("txfs: %s: after restoring snapshot %s, some of the kernel's caches may be stale: %v", dir, name, err)
			}
		}
	})
	return s, nil
}
