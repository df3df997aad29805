package txfs

import (
	"time"

	"github.com/txfs/txfs/inode"
)

// Access times follow relatime, as Linux mounts do by default: a read
// updates atime only when it is not newer than mtime or ctime (so a
// program can tell whether a file was read since it last changed), or
// when it is a day old. Most reads therefore cost no transaction; the
// first read after a change costs one small one, which is not synced.
// Options.NoAtime turns it off; a read-only volume never changes it.

const relatimeAge = 24 * time.Hour

// wantAtime reports whether a read of r now should update its atime.
func (v *Volume) wantAtime(r *inode.Record, now Timespec) bool {
	if v.opts.NoAtime || v.ro || r.Flags&FlagNoAtime != 0 {
		return false
	}
	if !after(r.Atime, r.Mtime) || !after(r.Atime, r.Ctime) {
		return true
	}
	return now.Sec-r.Atime.Sec >= int64(relatimeAge/time.Second)
}

// after reports whether t is later than u.
func after(t, u Timespec) bool {
	return t.Sec > u.Sec || (t.Sec == u.Sec && t.Nsec > u.Nsec)
}

// touchAtime sets ino's atime to now in a transaction of its own. It is
// best effort: a read does not fail because its atime could not be kept
// (a full volume, say), so errors are dropped (one after its change stops
// the volume all the same: update). begin may release the lock while it
// waits; callers read the inode again afterwards.
func (v *Volume) touchAtime(ino Ino, now Timespec) {
	_ = v.update(opSetAttr, v.metaOp(1, false), func(t *tx) error {
		r, err := v.getInode(ino)
		if err != nil {
			return err
		}
		r.Atime = now
		return t.putInode(ino, r)
	})
}
