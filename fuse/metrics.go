package fuse

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/txfs/txfs"
)

// The operations users make, counted where the kernel's requests arrive:
// each request is one operation, whatever the engine calls it takes.
// Every request adds one to its kind's count (two atomic adds); one in
// sampleEvery of each kind is timed into the latency histogram, since two
// clock reads and an observe cost about 300 ns on a loaded VM, a few per
// cent of a small request's own work in the daemon. No lock. Reads the
// kernel answers from its page cache never reach the daemon and are not
// counted.

// opKind is an operation kind, the "op" label of the metrics.
type opKind int

const (
	opLookup opKind = iota
	opGetattr
	opSetattr
	opMknod
	opMkdir
	opUnlink
	opRmdir
	opRename
	opLink
	opSymlink
	opReadlink
	opAccess
	opGetxattr
	opListxattr
	opSetxattr
	opRemovexattr
	opCreate
	opTmpfile
	opOpen
	opRead
	opLseek
	opGetlk
	opSetlk
	opSetlkw
	opRelease
	opWrite
	opCopyFileRange
	opIoctl
	opFlush
	opFsync
	opFallocate
	opOpendir
	opReaddir
	opReaddirplus
	opReleasedir
	opFsyncdir
	opStatfs
	opStatx
	numOps
)

// opNames are the "op" labels, by kind: the FUSE requests' names.
var opNames = [numOps]string{"lookup", "getattr", "setattr", "mknod", "mkdir", "unlink", "rmdir", "rename",
	"link", "symlink", "readlink", "access", "getxattr", "listxattr", "setxattr", "removexattr", "create",
	"tmpfile", "open", "read", "lseek", "getlk", "setlk", "setlkw", "release", "write", "copy_file_range",
	"ioctl", "flush", "fsync", "fallocate", "opendir", "readdir", "readdirplus", "releasedir", "fsyncdir",
	"statfs", "statx"}

// sampleEvery is how many requests of a kind go by for each one timed.
const sampleEvery = 16

// opMetrics are the metrics of the requests of one volume's mounts.
type opMetrics struct {
	latency [numOps]prometheus.Observer // resolved once: no label lookup per request
	count   [numOps]prometheus.Counter
	tick    [numOps]atomic.Uint32 // which requests are timed
	errors  *prometheus.CounterVec
	read    prometheus.Counter
	written prometheus.Counter
}

// newOpMetrics registers the request metrics in reg, or takes those a
// mount of the same volume registered before.
func newOpMetrics(reg prometheus.Registerer) (*opMetrics, error) {
	latency, err := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "txfs_operation_duration_seconds",
		Help:    "Time the daemon took to answer a request of the kernel, by operation: one request in 16 of each operation is timed.",
		Buckets: txfs.LatencyBuckets,
	}, []string{"op"}))
	if err != nil {
		return nil, err
	}
	count, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "txfs_operations_total",
		Help: "Requests of the kernel the daemon answered, by operation.",
	}, []string{"op"}))
	if err != nil {
		return nil, err
	}
	errs, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "txfs_operation_errors_total",
		Help: "Requests answered with an error, by operation (a lookup of a missing name is one).",
	}, []string{"op"}))
	if err != nil {
		return nil, err
	}
	read, err := register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "txfs_read_bytes_total",
		Help: "Bytes the daemon returned to read requests.",
	}))
	if err != nil {
		return nil, err
	}
	written, err := register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "txfs_written_bytes_total",
		Help: "Bytes write requests wrote.",
	}))
	if err != nil {
		return nil, err
	}
	m := &opMetrics{errors: errs, read: read, written: written}
	for k := range numOps {
		m.latency[k] = latency.WithLabelValues(opNames[k])
		m.count[k] = count.WithLabelValues(opNames[k])
	}
	return m, nil
}

// register registers c in reg, or returns the collector of that name
// registered before.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var dup prometheus.AlreadyRegisteredError
	if errors.As(err, &dup) {
		if old, ok := dup.ExistingCollector.(C); ok {
			return old, nil
		}
	}
	return c, err
}

// begin counts a request of kind k, and returns when it began if it is
// one to time (the zero time otherwise).
func (m *opMetrics) begin(k opKind) time.Time {
	m.count[k].Inc()
	if m.tick[k].Add(1)%sampleEvery != 0 {
		return time.Time{}
	}
	return time.Now()
}

// done ends a request of kind k that began (begin) at start and was
// answered with *st.
func (m *opMetrics) done(k opKind, start time.Time, st *fuse.Status) {
	if !start.IsZero() {
		m.latency[k].Observe(time.Since(start).Seconds())
	}
	if !st.Ok() {
		m.errors.WithLabelValues(opNames[k]).Inc()
	}
}

// meteredFS counts the requests of the raw filesystem it wraps. FORGET,
// INIT and the requests that only set the server up are not counted.
type meteredFS struct {
	fuse.RawFileSystem
	m *opMetrics
}

// statusOK is the answer of the requests that have none.
var statusOK = fuse.OK

func (f *meteredFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) (st fuse.Status) {
	defer f.m.done(opLookup, f.m.begin(opLookup), &st)
	return f.RawFileSystem.Lookup(cancel, h, name, out)
}

func (f *meteredFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) (st fuse.Status) {
	defer f.m.done(opGetattr, f.m.begin(opGetattr), &st)
	return f.RawFileSystem.GetAttr(cancel, in, out)
}

func (f *meteredFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) (st fuse.Status) {
	defer f.m.done(opSetattr, f.m.begin(opSetattr), &st)
	return f.RawFileSystem.SetAttr(cancel, in, out)
}

func (f *meteredFS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) (st fuse.Status) {
	defer f.m.done(opMknod, f.m.begin(opMknod), &st)
	return f.RawFileSystem.Mknod(cancel, in, name, out)
}

func (f *meteredFS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) (st fuse.Status) {
	defer f.m.done(opMkdir, f.m.begin(opMkdir), &st)
	return f.RawFileSystem.Mkdir(cancel, in, name, out)
}

func (f *meteredFS) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) (st fuse.Status) {
	defer f.m.done(opUnlink, f.m.begin(opUnlink), &st)
	return f.RawFileSystem.Unlink(cancel, h, name)
}

func (f *meteredFS) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) (st fuse.Status) {
	defer f.m.done(opRmdir, f.m.begin(opRmdir), &st)
	return f.RawFileSystem.Rmdir(cancel, h, name)
}

func (f *meteredFS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, from, to string) (st fuse.Status) {
	defer f.m.done(opRename, f.m.begin(opRename), &st)
	return f.RawFileSystem.Rename(cancel, in, from, to)
}

func (f *meteredFS) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) (st fuse.Status) {
	defer f.m.done(opLink, f.m.begin(opLink), &st)
	return f.RawFileSystem.Link(cancel, in, name, out)
}

func (f *meteredFS) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) (st fuse.Status) {
	defer f.m.done(opSymlink, f.m.begin(opSymlink), &st)
	return f.RawFileSystem.Symlink(cancel, h, target, name, out)
}

func (f *meteredFS) Readlink(cancel <-chan struct{}, h *fuse.InHeader) (target []byte, st fuse.Status) {
	defer f.m.done(opReadlink, f.m.begin(opReadlink), &st)
	return f.RawFileSystem.Readlink(cancel, h)
}

func (f *meteredFS) Access(cancel <-chan struct{}, in *fuse.AccessIn) (st fuse.Status) {
	defer f.m.done(opAccess, f.m.begin(opAccess), &st)
	return f.RawFileSystem.Access(cancel, in)
}

func (f *meteredFS) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (n uint32, st fuse.Status) {
	defer f.m.done(opGetxattr, f.m.begin(opGetxattr), &st)
	return f.RawFileSystem.GetXAttr(cancel, h, attr, dest)
}

func (f *meteredFS) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (n uint32, st fuse.Status) {
	defer f.m.done(opListxattr, f.m.begin(opListxattr), &st)
	return f.RawFileSystem.ListXAttr(cancel, h, dest)
}

func (f *meteredFS) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) (st fuse.Status) {
	defer f.m.done(opSetxattr, f.m.begin(opSetxattr), &st)
	return f.RawFileSystem.SetXAttr(cancel, in, attr, data)
}

func (f *meteredFS) RemoveXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string) (st fuse.Status) {
	defer f.m.done(opRemovexattr, f.m.begin(opRemovexattr), &st)
	return f.RawFileSystem.RemoveXAttr(cancel, h, attr)
}

func (f *meteredFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) (st fuse.Status) {
	defer f.m.done(opCreate, f.m.begin(opCreate), &st)
	return f.RawFileSystem.Create(cancel, in, name, out)
}

func (f *meteredFS) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) (st fuse.Status) {
	defer f.m.done(opTmpfile, f.m.begin(opTmpfile), &st)
	return f.RawFileSystem.Tmpfile(cancel, in, out)
}

func (f *meteredFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) (st fuse.Status) {
	defer f.m.done(opOpen, f.m.begin(opOpen), &st)
	return f.RawFileSystem.Open(cancel, in, out)
}

func (f *meteredFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (res fuse.ReadResult, st fuse.Status) {
	defer f.m.done(opRead, f.m.begin(opRead), &st)
	res, st = f.RawFileSystem.Read(cancel, in, buf)
	if st.Ok() && res != nil {
		f.m.read.Add(float64(res.Size()))
	}
	return res, st
}

func (f *meteredFS) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) (st fuse.Status) {
	defer f.m.done(opLseek, f.m.begin(opLseek), &st)
	return f.RawFileSystem.Lseek(cancel, in, out)
}

func (f *meteredFS) GetLk(cancel <-chan struct{}, in *fuse.LkIn, out *fuse.LkOut) (st fuse.Status) {
	defer f.m.done(opGetlk, f.m.begin(opGetlk), &st)
	return f.RawFileSystem.GetLk(cancel, in, out)
}

func (f *meteredFS) SetLk(cancel <-chan struct{}, in *fuse.LkIn) (st fuse.Status) {
	defer f.m.done(opSetlk, f.m.begin(opSetlk), &st)
	return f.RawFileSystem.SetLk(cancel, in)
}

func (f *meteredFS) SetLkw(cancel <-chan struct{}, in *fuse.LkIn) (st fuse.Status) {
	defer f.m.done(opSetlkw, f.m.begin(opSetlkw), &st)
	return f.RawFileSystem.SetLkw(cancel, in)
}

func (f *meteredFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	defer f.m.done(opRelease, f.m.begin(opRelease), &statusOK)
	f.RawFileSystem.Release(cancel, in)
}

func (f *meteredFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (n uint32, st fuse.Status) {
	defer f.m.done(opWrite, f.m.begin(opWrite), &st)
	n, st = f.RawFileSystem.Write(cancel, in, data)
	f.m.written.Add(float64(n))
	return n, st
}

// Writev is how the server passes writes on (Write only if Writev
// answers ENOSYS, which is then not counted).
func (f *meteredFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (n uint32, st fuse.Status) {
	var start time.Time
	if f.m.tick[opWrite].Add(1)%sampleEvery == 0 {
		start = time.Now()
	}
	n, st = f.RawFileSystem.Writev(cancel, in, data)
	if st != fuse.ENOSYS {
		f.m.count[opWrite].Inc()
		f.m.done(opWrite, start, &st)
		f.m.written.Add(float64(n))
	}
	return n, st
}

func (f *meteredFS) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (n uint32, st fuse.Status) {
	defer f.m.done(opCopyFileRange, f.m.begin(opCopyFileRange), &st)
	return f.RawFileSystem.CopyFileRange(cancel, in)
}

func (f *meteredFS) Ioctl(cancel <-chan struct{}, in *fuse.IoctlIn, inbuf []byte, out *fuse.IoctlOut, outbuf []byte) (st fuse.Status) {
	defer f.m.done(opIoctl, f.m.begin(opIoctl), &st)
	return f.RawFileSystem.Ioctl(cancel, in, inbuf, out, outbuf)
}

func (f *meteredFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) (st fuse.Status) {
	defer f.m.done(opFlush, f.m.begin(opFlush), &st)
	return f.RawFileSystem.Flush(cancel, in)
}

func (f *meteredFS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) (st fuse.Status) {
	defer f.m.done(opFsync, f.m.begin(opFsync), &st)
	return f.RawFileSystem.Fsync(cancel, in)
}

func (f *meteredFS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) (st fuse.Status) {
	defer f.m.done(opFallocate, f.m.begin(opFallocate), &st)
	return f.RawFileSystem.Fallocate(cancel, in)
}

func (f *meteredFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) (st fuse.Status) {
	defer f.m.done(opOpendir, f.m.begin(opOpendir), &st)
	return f.RawFileSystem.OpenDir(cancel, in, out)
}

func (f *meteredFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) (st fuse.Status) {
	defer f.m.done(opReaddir, f.m.begin(opReaddir), &st)
	return f.RawFileSystem.ReadDir(cancel, in, out)
}

func (f *meteredFS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) (st fuse.Status) {
	defer f.m.done(opReaddirplus, f.m.begin(opReaddirplus), &st)
	return f.RawFileSystem.ReadDirPlus(cancel, in, out)
}

func (f *meteredFS) ReleaseDir(in *fuse.ReleaseIn) {
	defer f.m.done(opReleasedir, f.m.begin(opReleasedir), &statusOK)
	f.RawFileSystem.ReleaseDir(in)
}

func (f *meteredFS) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) (st fuse.Status) {
	defer f.m.done(opFsyncdir, f.m.begin(opFsyncdir), &st)
	return f.RawFileSystem.FsyncDir(cancel, in)
}

func (f *meteredFS) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) (st fuse.Status) {
	defer f.m.done(opStatfs, f.m.begin(opStatfs), &st)
	return f.RawFileSystem.StatFs(cancel, h, out)
}

func (f *meteredFS) Statx(cancel <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) (st fuse.Status) {
	defer f.m.done(opStatx, f.m.begin(opStatx), &st)
	return f.RawFileSystem.Statx(cancel, in, out)
}
