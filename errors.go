package txfs

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/txfs/txfs/internal/corrupt"
)

// Error is a txfs error that stands for exactly one errno. Every error the
// API returns either is one of the sentinels below (possibly wrapped with
// more detail) or wraps ErrIO.
type Error struct {
	errno syscall.Errno
	msg   string
}

func (e *Error) Error() string { return e.msg }

// Errno is the errno the error maps onto.
func (e *Error) Errno() syscall.Errno { return e.errno }

// The sentinels, one per errno. Test with errors.Is.
var (
	ErrNotExist     = &Error{syscall.ENOENT, "txfs: no such file or directory"}
	ErrExist        = &Error{syscall.EEXIST, "txfs: file exists"}
	ErrNotEmpty     = &Error{syscall.ENOTEMPTY, "txfs: directory not empty"}
	ErrNotDir       = &Error{syscall.ENOTDIR, "txfs: not a directory"}
	ErrIsDir        = &Error{syscall.EISDIR, "txfs: is a directory"}
	ErrNameTooLong  = &Error{syscall.ENAMETOOLONG, "txfs: file name too long"}
	ErrNoSpace      = &Error{syscall.ENOSPC, "txfs: no space left on device"}
	ErrInvalid      = &Error{syscall.EINVAL, "txfs: invalid argument"}
	ErrTooManyLinks = &Error{syscall.EMLINK, "txfs: too many links"}
	ErrNoAttr       = &Error{syscall.ENODATA, "txfs: no such attribute"}
	ErrAttrTooBig   = &Error{syscall.E2BIG, "txfs: attribute value too large"}
	ErrRange        = &Error{syscall.ERANGE, "txfs: result too large for buffer"}
	ErrFileTooBig   = &Error{syscall.EFBIG, "txfs: file too large"}
	ErrReadOnly     = &Error{syscall.EROFS, "txfs: read-only volume"}
	ErrBusy         = &Error{syscall.EBUSY, "txfs: volume busy"}
	ErrNotSupported = &Error{syscall.EOPNOTSUPP, "txfs: operation not supported"}
	ErrPermission   = &Error{syscall.EPERM, "txfs: operation not permitted"}
	ErrNoData       = &Error{syscall.ENXIO, "txfs: no data at or after that offset"}
	ErrClosed       = &Error{syscall.EIO, "txfs: volume closed"}
	// ErrLogDamaged: the log holds a unit that was durable and cannot be
	// read, and units written after it (Options.LogDamage).
	ErrLogDamaged = &Error{syscall.EIO, "txfs: the log is damaged"}
	// ErrIO wraps device errors and corruption: checksum mismatches and
	// structures that do not decode. The volume stops writing after one.
	ErrIO = &Error{syscall.EIO, "txfs: input/output error"}
)

// ToErrno maps any error from this package onto its errno (EIO for errors
// that are not txfs errors).
func ToErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.errno
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	return syscall.EIO
}

// asErrIO reports an item of inode ino that does not decode (an
// inode.ErrCorrupt) as the ErrIO it is to callers, with the inode as where
// it was found; nil stays nil.
func asErrIO(err error, ino Ino) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrIO, corrupt.Locate(err, corrupt.Location{Ino: uint64(ino)}))
}

// ErrCorrupt matches every error about damage found in what was read from
// the device (errors.Is): a checksum that does not match, a structure that
// does not decode or contradicts another. Such errors also wrap ErrIO (the
// errno is EIO); a device error does not match ErrCorrupt.
var ErrCorrupt = corrupt.ErrAny

// Location says where damage was found: the device address, the virtual
// block, the inode and the file offset, as far as they are known (zero:
// unknown).
type Location = corrupt.Location

// CorruptionAt returns where the damage err reports was found, if err is
// corruption whose place is known.
func CorruptionAt(err error) (Location, bool) { return corrupt.LocationOf(err) }

// failIf stops the volume with err, if there is one (v.fail).
func (v *Volume) failIf(err error) error {
	if err == nil {
		return nil
	}
	return v.fail(err)
}
