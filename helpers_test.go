package txfs

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/txfs/txfs/fsck"
	"github.com/txfs/txfs/segment"
)

// newTestVolume formats and opens a volume of size bytes, with segments of
// 256 KiB, on a memory device; the checker runs when the test ends.
func newTestVolume(t testing.TB, size int64, o Options) (*Volume, *segment.MemDevice) {
	t.Helper()
	return newSmallVolume(t, size, 256<<10, o)
}

// newSmallVolume formats and opens a volume of size bytes with segments of
// seg bytes (0: the default for its size) on a memory device; the checker
// runs when the test ends.
func newSmallVolume(t testing.TB, size int64, seg uint32, o Options) (*Volume, *segment.MemDevice) {
	t.Helper()
	dev := segment.NewMemDevice(size)
	if err := Format(dev, FormatOptions{SegmentSize: seg}); err != nil {
		t.Fatalf("format: %v", err)
	}
	v, err := Open(dev, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if v.closed {
			return
		}
		if err := v.Check(); err != nil {
			t.Errorf("check at end of test: %v", err)
		}
		checkDurable(t, v)
		if err := v.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return v, dev
}

// checkDurable takes a checkpoint of a volume that can still write and
// checks it as a mounted volume is checked (fsck.CheckDurable).
func checkDurable(t testing.TB, v *Volume) {
	t.Helper()
	v.mu.Lock()
	writable := v.writable() == nil
	v.mu.Unlock()
	if !writable || v.Sync() != nil {
		return
	}
	rep, err := fsck.CheckDurable(v.Fsck(), nil)
	if err == nil {
		err = rep.Err()
	}
	if err != nil {
		t.Errorf("check of the last checkpoint at end of test: %v", err)
	}
}

// reopen closes v and opens the device again, running the checker.
func reopen(t testing.TB, v *Volume, dev segment.Device) *Volume {
	t.Helper()
	if err := v.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	v2, err := Open(dev, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if err := v2.Check(); err != nil {
		t.Fatalf("check after reopen: %v", err)
	}
	return v2
}

// dump renders the whole tree canonically: paths, types, permissions, link
// counts, inode flags, sizes, content hashes, symlink targets, xattrs and
// which paths are hard links of one inode. Timestamps are left out.
func dump(v *Volume) (string, error) { return dumpOf(liveReader{v}) }

// treeReader reads a tree of files: the live one or a snapshot's.
type treeReader interface {
	Readdir(dir Ino, cookie uint64, fn func(e DirEntry) bool) error
	GetAttr(ino Ino) (Attr, error)
	Read(ino Ino, buf []byte, off int64) (int, error)
	Readlink(ino Ino) (string, error)
	ListXattr(ino Ino) ([]string, error)
	GetXattr(ino Ino, name string) ([]byte, error)
}

type liveReader struct{ *Volume }

type snapshotReader struct {
	v *Volume
	s *SnapshotView
}

func (r snapshotReader) Readdir(dir Ino, cookie uint64, fn func(e DirEntry) bool) error {
	return r.v.SnapshotReaddir(r.s, dir, cookie, fn)
}
func (r snapshotReader) GetAttr(ino Ino) (Attr, error) { return r.v.SnapshotGetAttr(r.s, ino) }
func (r snapshotReader) Read(ino Ino, buf []byte, off int64) (int, error) {
	return r.v.SnapshotRead(r.s, ino, buf, off)
}
func (r snapshotReader) Readlink(ino Ino) (string, error)    { return r.v.SnapshotReadlink(r.s, ino) }
func (r snapshotReader) ListXattr(ino Ino) ([]string, error) { return r.v.SnapshotListXattr(r.s, ino) }
func (r snapshotReader) GetXattr(ino Ino, name string) ([]byte, error) {
	return r.v.SnapshotGetXattr(r.s, ino, name)
}

// dumpSnapshot is dump of snapshot name.
func dumpSnapshot(v *Volume, name string) (string, error) {
	s, err := v.OpenSnapshot(name)
	if err != nil {
		return "", err
	}
	return dumpOf(snapshotReader{v, s})
}

func dumpOf(v treeReader) (string, error) {
	var out []string
	seen := map[Ino]string{}
	var walk func(dir Ino, path string) error
	walk = func(dir Ino, path string) error {
		var ents []DirEntry
		if err := v.Readdir(dir, 0, func(e DirEntry) bool { ents = append(ents, e); return true }); err != nil {
			return err
		}
		sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
		for _, e := range ents {
			p := path + "/" + e.Name
			a, err := v.GetAttr(e.Ino)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if a.Mode&syscall.S_IFMT != e.Mode {
				return fmt.Errorf("%s: entry type %#o, inode mode %#o", p, e.Mode, a.Mode)
			}
			line := fmt.Sprintf("%s %#o n%d", p, a.Mode, a.Nlink)
			if a.Flags != 0 {
				line += fmt.Sprintf(" flags %#x", a.Flags)
			}
			if first, ok := seen[e.Ino]; ok {
				out = append(out, line+" = "+first)
				continue
			}
			seen[e.Ino] = p
			switch a.Mode & syscall.S_IFMT {
			case syscall.S_IFREG:
				data := make([]byte, a.Size+1)
				n, err := v.Read(e.Ino, data, 0)
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				line += fmt.Sprintf(" size %d data %x", a.Size, sha256.Sum256(data[:n]))
				if uint64(n) != a.Size {
					line += fmt.Sprintf(" (read %d)", n)
				}
			case syscall.S_IFLNK:
				target, err := v.Readlink(e.Ino)
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				line += " -> " + target
			}
			names, err := v.ListXattr(e.Ino)
			if err != nil {
				return err
			}
			for _, n := range names {
				val, err := v.GetXattr(e.Ino, n)
				if err != nil {
					return err
				}
				line += fmt.Sprintf(" %s=%x", n, val)
			}
			out = append(out, line)
			if a.IsDir() {
				if err := walk(e.Ino, p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(RootIno, ""); err != nil {
		return "", err
	}
	return strings.Join(out, "\n"), nil
}

func mustErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}
