package fuse

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// MountInfo is one line of /proc/self/mountinfo.
type MountInfo struct {
	ID     int    // mount ID, unique while the mount exists
	Dir    string // mount point
	Type   string // "fuse.txfs", "tmpfs", ...
	Source string // what is mounted: the image path for txfs
	Dev    string // "major:minor" of the mounted filesystem; for FUSE the minor numbers the connection
}

func (m MountInfo) String() string { return m.Type + " " + m.Source }

// MountsOn returns the mounts whose mount point is dir, in the order the
// kernel lists them: the last one is on top. dir may be relative and may
// name a dead FUSE mount (whose root no longer answers).
func MountsOn(dir string) ([]MountInfo, error) {
	dir, err := mountPath(dir)
	if err != nil {
		return nil, err
	}
	all, err := Mounts()
	if err != nil {
		return nil, err
	}
	var on []MountInfo
	for _, m := range all {
		if m.Dir == dir {
			on = append(on, m)
		}
	}
	return on, nil
}

// mountPath is dir as mountinfo shows it: absolute, with symlinks
// resolved. Only the parent is resolved when dir itself cannot be looked
// at (a dead mount answers ENOTCONN).
func mountPath(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real, nil
	}
	parent, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return abs, nil
	}
	return filepath.Join(parent, filepath.Base(abs)), nil
}

// parseMountInfo parses one mountinfo line:
//
//	36 35 98:0 /root /mnt rw,noatime master:1 - ext4 /dev/sda1 rw,errors=continue
//
// (ID, parent ID, device, root, mount point, options, optional fields up
// to "-", then type, source and superblock options).
func parseMountInfo(line string) (MountInfo, bool) {
	f := strings.Fields(line)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || sep+2 >= len(f) {
		return MountInfo{}, false
	}
	id, err := strconv.Atoi(f[0])
	if err != nil {
		return MountInfo{}, false
	}
	return MountInfo{ID: id, Dir: UnescapeMountPath(f[4]), Type: f[sep+1], Source: UnescapeMountPath(f[sep+2]), Dev: f[2]}, true
}

// UnescapeMountPath undoes the octal escapes of paths in mountinfo and
// /proc/mounts (\040 for a space, \134 for a backslash).
func UnescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// newMountsOn returns the mounts on dir that are not in before.
func newMountsOn(dir string, before []MountInfo) ([]MountInfo, error) {
	now, err := MountsOn(dir)
	if err != nil {
		return nil, err
	}
	var added []MountInfo
	for _, m := range now {
		old := false
		for _, b := range before {
			old = old || b.ID == m.ID
		}
		if !old {
			added = append(added, m)
		}
	}
	return added, nil
}

// detachNewMounts lazily unmounts whatever was mounted on dir since
// before was taken: the mount a failed mount attempt left without a
// server to answer it.
func detachNewMounts(dir string, before []MountInfo) error {
	added, err := newMountsOn(dir, before)
	if err != nil {
		return err
	}
	var errs []error
	for range added {
		if err := UnmountDir(dir, true); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("the failed mount left %v on %s: %w", added, dir, errors.Join(errs...))
	}
	return nil
}
