package segment

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Device is where a volume lives: an image file, a block device, or memory
// in tests. All I/O of txfs goes through it, so that crash behaviour can be
// simulated by swapping in a MemDevice.
//
// Implementations must be safe for concurrent use: the volume reads blocks
// while its writer goroutine appends log units.
type Device interface {
	// ReadAt has io.ReaderAt semantics. Reading past Size returns the
	// bytes that exist and io.EOF.
	ReadAt(p []byte, off int64) (int, error)
	// WriteAt writes all of p at off or nothing: a write that does not fit
	// within Size fails with ErrOutOfRange instead of growing the device,
	// because the volume's geometry is fixed at format time.
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes every completed WriteAt durable. It is the only ordering
	// point: writes issued since the last Sync may reach the media in any
	// order, or partially, if power is lost.
	Sync() error
	// Size is the fixed size of the device in bytes.
	Size() int64
	// Close releases the device. Later operations return os.ErrClosed.
	Close() error
}

// ErrOutOfRange is returned (possibly wrapped) for writes that do not fit
// within the device, and for negative offsets.
var ErrOutOfRange = errors.New("segment: access beyond the end of the device")

// errDeviceReadOnly is returned by writes to a device opened read-only. It
// wraps os.ErrPermission so callers can test for it without a new exported
// sentinel.
var errDeviceReadOnly = fmt.Errorf("segment: device is read-only: %w", os.ErrPermission)

// checkWriteRange reports whether a write of n bytes at off fits in a device
// of the given size, as an error suitable for returning from WriteAt.
func checkWriteRange(off int64, n int, size int64) error {
	if off < 0 || off > size || int64(n) > size-off {
		return fmt.Errorf("%w: write of %d bytes at %d on a device of %d bytes", ErrOutOfRange, n, off, size)
	}
	return nil
}

// clampRead trims a read of n bytes at off to the device size. It returns the
// number of bytes that can be read and the error to return with them, per
// io.ReaderAt: io.EOF when the read was cut short.
func clampRead(off int64, n int, size int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: read at negative offset %d", ErrOutOfRange, off)
	}
	if off >= size {
		if n == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	if int64(n) > size-off {
		return int(size - off), io.EOF
	}
	return n, nil
}

// FileDevice is a Device backed by an image file or a block device.
type FileDevice struct {
	path     string
	size     int64
	readOnly bool

	// mu is held shared by every I/O call and exclusively by Close, so that
	// a descriptor is never used after it has been closed and possibly
	// reused by another open.
	mu     sync.RWMutex
	f      *os.File
	closed bool

	// direct is a second descriptor of the same file, opened with
	// O_DIRECT, for large aligned writes (directWrite); nil if the file
	// cannot be opened so. directOff: a direct write was refused, all
	// writes go through f. directWrites counts those that went direct.
	direct       *os.File
	directOff    atomic.Bool
	directWrites atomic.Int64

	// holeFree is a range FillHoles found or made free of holes. Nothing
	// in txfs punches holes into its image, so it stays so, and the next
	// flushes inside it need no lseek.
	holeMu   sync.Mutex
	holeFree struct{ from, to int64 }
}

var _ Device = (*FileDevice)(nil)

// OpenFile opens an existing image file or block device, read-write unless
// readOnly. Its size is the file size, or the device size for block devices.
func OpenFile(path string, readOnly bool) (*FileDevice, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	size, err := fileDeviceSize(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("segment: size of %s: %w", path, err)
	}
	d := &FileDevice{path: path, size: size, readOnly: readOnly, f: f}
	if !readOnly {
		// Without it every write goes through the page cache.
		d.direct, _ = os.OpenFile(path, os.O_RDWR|syscall.O_DIRECT, 0)
	}
	return d, nil
}

// fileDeviceSize returns the usable size of an open file or block device.
func fileDeviceSize(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Mode().IsRegular() {
		return st.Size(), nil
	}
	if st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0 {
		// Stat reports size 0 for block devices; ask the kernel. The raw
		// syscall is used because x/sys has no uint64 ioctl getter and
		// BLKGETSIZE64 writes a full 64-bit value.
		var n uint64
		rc, err := f.SyscallConn()
		if err != nil {
			return 0, err
		}
		var errno syscall.Errno
		if cerr := rc.Control(func(fd uintptr) {
			_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&n)))
		}); cerr != nil {
			return 0, cerr
		}
		if errno == 0 {
			return int64(n), nil
		}
		// Fall through: seeking to the end works for block devices too.
	}
	return f.Seek(0, io.SeekEnd)
}

// CreateFile creates a new sparse image file of exactly size bytes. It fails
// with an error matching os.ErrExist if path already exists, so that a typo
// cannot overwrite an existing volume or device.
func CreateFile(path string, size int64) (*FileDevice, error) {
	if size < 0 {
		return nil, fmt.Errorf("segment: create %s: negative size %d", path, size)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	// Make the new directory entry durable, so that a volume formatted on
	// this image does not vanish with its name after a power loss. Some
	// filesystems cannot sync directories; that is not worth failing for.
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		dir.Sync()
		dir.Close()
	}
	return &FileDevice{path: path, size: size, f: f}, nil
}

// ReadAt implements Device.
func (d *FileDevice) ReadAt(p []byte, off int64) (int, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return 0, os.ErrClosed
	}
	n, eof := clampRead(off, len(p), d.size)
	if n == 0 {
		return 0, eof
	}
	got, err := d.f.ReadAt(p[:n], off)
	if err != nil {
		return got, err
	}
	return got, eof
}

// WriteAt implements Device.
func (d *FileDevice) WriteAt(p []byte, off int64) (int, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return 0, os.ErrClosed
	}
	if d.readOnly {
		return 0, errDeviceReadOnly
	}
	if err := checkWriteRange(off, len(p), d.size); err != nil {
		return 0, err
	}
	if d.directWrite(p, off) {
		n, err := d.direct.WriteAt(p, off)
		if !errors.Is(err, syscall.EINVAL) {
			d.directWrites.Add(1)
			return n, err
		}
		// The file or device refuses this alignment: never again.
		d.directOff.Store(true)
	}
	return d.f.WriteAt(p, off)
}

// Large writes (the log's units of streamed data) bypass the host's page
// cache: copying them into it, and writing them back from it, cost the
// daemon as much CPU as building them. Sync still flushes them: fdatasync
// of the file covers writes through either descriptor. A read of the range
// afterwards finds no stale page: a direct write drops the cached pages it
// overwrites. Small writes (a unit per fsync) stay buffered.
const (
	directMinWrite = 256 << 10
	directAlign    = 4096 // buffer address, offset and length
)

// directWrite says whether p goes to off through the O_DIRECT descriptor.
func (d *FileDevice) directWrite(p []byte, off int64) bool {
	return d.direct != nil && !d.directOff.Load() && len(p) >= directMinWrite &&
		len(p)%directAlign == 0 && off%directAlign == 0 && uintptr(unsafe.Pointer(&p[0]))%directAlign == 0
}

// DirectWrites is how many writes went to the device bypassing the page
// cache.
func (d *FileDevice) DirectWrites() int64 { return d.directWrites.Load() }

// Sync implements Device with fdatasync: the data and whatever metadata is
// needed to read it back (such as the file size) become durable, without the
// cost of flushing timestamps.
func (d *FileDevice) Sync() error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return os.ErrClosed
	}
	if d.readOnly {
		return nil // nothing was written through this descriptor
	}
	rc, err := d.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = unix.Fdatasync(int(fd))
			if serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: d.path, Err: serr}
	}
	return nil
}

// Size implements Device.
func (d *FileDevice) Size() int64 { return d.size }

// Close implements Device. Closing twice returns os.ErrClosed.
func (d *FileDevice) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return os.ErrClosed
	}
	d.closed = true
	if d.direct != nil {
		d.direct.Close()
	}
	return d.f.Close()
}

// Truncate changes the size of an image file (not a block device) to size
// bytes, through the open descriptor: locks taken on it stay.
func (d *FileDevice) Truncate(size int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return os.ErrClosed
	}
	if d.readOnly {
		return errDeviceReadOnly
	}
	st, err := d.f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("segment: %s is not an image file: its size is the device's", d.path)
	}
	if err := d.f.Truncate(size); err != nil {
		return err
	}
	d.size = size
	d.holeMu.Lock()
	d.holeFree.from, d.holeFree.to = 0, 0
	d.holeMu.Unlock()
	return nil
}

// Fd returns the file descriptor, for flock and similar calls. It is only
// valid until Close.
func (d *FileDevice) Fd() uintptr { return d.f.Fd() }

// Path returns the path the device was opened with.
func (d *FileDevice) Path() string { return d.path }

// Flusher is a Device that can write back one range of what was written
// to it without waiting for the rest: an image file. It makes nothing
// durable (the file's metadata may still be pending); it moves the work
// of writing the range out of the next Sync.
type Flusher interface {
	FlushRange(off, n int64) error
}

// FlushRange implements Flusher with sync_file_range: start the writeback
// of [off, off+n) and wait for it.
func (d *FileDevice) FlushRange(off, n int64) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return os.ErrClosed
	}
	if d.readOnly || n <= 0 {
		return nil
	}
	rc, err := d.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = unix.SyncFileRange(int(fd), off, n,
				unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
			if serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "sync_file_range", Path: d.path, Err: serr}
	}
	return nil
}

// Allocator is a Device that can make sure a range is stored, not a hole:
// an image file on a filesystem that supports sparse files.
type Allocator interface {
	// FillHoles writes zeros over the holes of [off, end) if any begins
	// before off+near, and reports whether it wrote anything. It must only
	// be given ranges that hold nothing.
	FillHoles(off, end, near int64) (bool, error)
}

// FillHoles implements Allocator. A sync into a hole of an image file also
// makes the host filesystem allocate and journal the blocks, which on ext4
// about doubles the cost of the sync; zeros written once ahead of the log,
// synced with the next flush, take that cost once for many small flushes.
// Block devices and files without holes cost one lseek per range of end-off
// bytes (SEEK_HOLE can be slow: on tmpfs it scans the whole file).
func (d *FileDevice) FillHoles(off, end, near int64) (bool, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return false, os.ErrClosed
	}
	if d.readOnly || off >= end {
		return false, nil
	}
	d.holeMu.Lock()
	defer d.holeMu.Unlock()
	if off >= d.holeFree.from && min(end, off+near) <= d.holeFree.to {
		return false, nil
	}
	hole, err := unix.Seek(int(d.f.Fd()), off, unix.SEEK_HOLE)
	if err != nil {
		return false, nil // SEEK_HOLE unsupported
	}
	if hole >= min(end, off+near) {
		d.holeFree.from, d.holeFree.to = off, hole
		return false, nil // no hole close by
	}
	if err := checkWriteRange(hole, int(end-hole), d.size); err != nil {
		return false, err
	}
	zero := make([]byte, end-hole)
	if _, err := d.f.WriteAt(zero, hole); err != nil {
		return false, err
	}
	d.holeFree.from, d.holeFree.to = off, end
	return true, nil
}
