package txfs

import (
	"syscall"

	"github.com/txfs/txfs/inode"
)

// A whiteout is what overlayfs leaves in its upper directory where a name
// of a lower layer was deleted: a character device with device number 0/0
// and mode 0 (S_IFCHR|0000), as Linux makes it for RENAME_WHITEOUT.
const whiteoutMode = syscall.S_IFCHR

// addWhiteout makes a whiteout owned by o and names it name in dir, in t.
// The caller updates dir's times.
func (t *tx) addWhiteout(dir Ino, name string, o Owner, now Timespec) error {
	ino := t.v.nextIno
	r := &inode.Record{Mode: whiteoutMode, Nlink: 1, Uid: o.Uid, Gid: o.Gid, Atime: now, Mtime: now, Ctime: now}
	if err := t.putInode(ino, r); err != nil {
		return err
	}
	return t.addEntry(dir, inode.Dirent{Name: name, Ino: ino, Type: uint8(whiteoutMode >> 12)})
}
