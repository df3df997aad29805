package fuse

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/txfs/txfs"
)

// requestCounter counts the requests that listing and stat-ing send.
type requestCounter struct {
	fuse.RawFileSystem
	lookups, getattrs, readdirs, readdirpluses atomic.Int64
}

func (c *requestCounter) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	c.lookups.Add(1)
	return c.RawFileSystem.Lookup(cancel, h, name, out)
}

func (c *requestCounter) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	c.getattrs.Add(1)
	return c.RawFileSystem.GetAttr(cancel, in, out)
}

func (c *requestCounter) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	c.readdirs.Add(1)
	return c.RawFileSystem.ReadDir(cancel, in, out)
}

func (c *requestCounter) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	c.readdirpluses.Add(1)
	return c.RawFileSystem.ReadDirPlus(cancel, in, out)
}

func (c *requestCounter) String() string {
	return fmt.Sprintf("%d LOOKUP, %d GETATTR, %d READDIR, %d READDIRPLUS",
		c.lookups.Load(), c.getattrs.Load(), c.readdirs.Load(), c.readdirpluses.Load())
}

// countingMount mounts a fresh volume with long entry and attribute
// timeouts (so that nothing expires while a test looks) and counts its
// requests.
func countingMount(t *testing.T) (string, *txfs.Volume, *requestCounter) {
	t.Helper()
	c := new(requestCounter)
	mnt, v := testMountVolume(t, MountConfig{
		EntryTimeout: time.Minute,
		AttrTimeout:  time.Minute,
		wrapRaw: func(raw fuse.RawFileSystem) fuse.RawFileSystem {
			c.RawFileSystem = raw
			return c
		},
	})
	return mnt, v, c
}

// nextNames reads the next buffer of entries of the directory fd, as
// readdir(3) does (32 KiB at a time), and returns their names: none at
// the end.
func nextNames(t *testing.T, fd int) []string {
	t.Helper()
	buf := make([]byte, 32<<10)
	n, err := syscall.ReadDirent(fd, buf)
	if err != nil {
		t.Fatal(err)
	}
	_, _, names := syscall.ParseDirent(buf[:n], -1, nil)
	return names
}

func openDir(t *testing.T, dir string) int {
	t.Helper()
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	return fd
}

// listAndStat lists dir as ls -l does: it stats the names of each buffer
// readdir(3) reads before it reads the next. It returns what lstat said
// of each name.
func listAndStat(t *testing.T, dir string) map[string]*syscall.Stat_t {
	t.Helper()
	fd := openDir(t, dir)
	got := make(map[string]*syscall.Stat_t)
	for {
		names := nextNames(t, fd)
		if len(names) == 0 {
			return got
		}
		for _, name := range names {
			st := new(syscall.Stat_t)
			if err := syscall.Lstat(filepath.Join(dir, name), st); err != nil {
				st = nil
			}
			got[name] = st
		}
	}
}

// TestListingWithStat: listing a directory and stat-ing every name, as
// ls -l does, gets the attributes with the listing (READDIRPLUS) instead
// of sending a LOOKUP per name.
func TestListingWithStat(t *testing.T) {
	mnt, v, c := countingMount(t)
	// Made behind the kernel's back, so it knows none of the names: a
	// stat of each would need a LOOKUP.
	d, err := v.Mkdir(txfs.RootIno, "d", 0o755, txfs.Owner{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := range n {
		if _, err := v.Create(d.Ino, fmt.Sprintf("f%05d", i), 0o640, txfs.Owner{Uid: 7, Gid: 8}); err != nil {
			t.Fatal(err)
		}
	}
	got := listAndStat(t, filepath.Join(mnt, "d"))
	if len(got) != n {
		t.Fatalf("listed %d names, want %d", len(got), n)
	}
	for name, st := range got {
		if st == nil || st.Mode != syscall.S_IFREG|0o640 || st.Uid != 7 || st.Gid != 8 {
			t.Fatalf("%s: %+v", name, st)
		}
	}
	// One LOOKUP for d itself; the kernel may look up a few names of a
	// listing it did not ask to come with attributes.
	if l := c.lookups.Load(); l > n/100 || c.readdirpluses.Load() == 0 {
		t.Errorf("listing and stat-ing %d names: %v", n, c)
	}
	t.Logf("%d names: %v", n, c)
}

// TestListingFresh: what READDIRPLUS tells the kernel is what is true when
// the request is answered, even when names and attributes changed between
// the requests of one listing: changed modes, removed names, names that
// now lead to another inode.
func TestListingFresh(t *testing.T) {
	mnt, _, _ := countingMount(t)
	dir := filepath.Join(mnt, "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	name := func(i int) string { return filepath.Join(dir, fmt.Sprintf("f%05d", i)) }
	for i := range n {
		if err := os.WriteFile(name(i), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fd := openDir(t, dir)
	// The first buffer: the kernel has had more names, with their
	// attributes, than it handed out.
	first := nextNames(t, fd)
	for _, e := range first {
		if _, err := os.Lstat(filepath.Join(dir, e)); err != nil {
			t.Fatal(err)
		}
	}
	// Change every name: a third chmodded, a third removed, a third
	// replaced by another file. The inodes that lose a name keep another
	// one, so a name the daemon answered from an older listing would
	// still lead somewhere.
	keep := filepath.Join(mnt, "keep")
	if err := os.Mkdir(keep, 0o755); err != nil {
		t.Fatal(err)
	}
	newIno := make(map[string]uint64)
	var err error
	for i := range n {
		p := name(i)
		if i%3 != 0 {
			if err := os.Link(p, filepath.Join(keep, filepath.Base(p))); err != nil {
				t.Fatal(err)
			}
		}
		switch i % 3 {
		case 0:
			err = os.Chmod(p, 0o600)
		case 1:
			err = os.Remove(p)
		case 2:
			tmp := filepath.Join(dir, "new")
			if err = os.WriteFile(tmp, nil, 0o640); err == nil {
				var st syscall.Stat_t
				syscall.Lstat(tmp, &st)
				newIno[filepath.Base(p)] = st.Ino
				err = os.Rename(tmp, p)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// The rest of the listing, stat-ing each buffer as it comes.
	seen := 0
	for names := nextNames(t, fd); len(names) > 0; names = nextNames(t, fd) {
		for _, e := range names {
			var i int
			if _, err := fmt.Sscanf(e, "f%05d", &i); err != nil {
				t.Fatalf("unexpected name %q", e)
			}
			seen++
			var st syscall.Stat_t
			serr := syscall.Lstat(name(i), &st)
			switch i % 3 {
			case 0:
				if serr != nil || st.Mode&0o777 != 0o600 {
					t.Fatalf("%s after chmod 600: mode %#o, %v", e, st.Mode, serr)
				}
			case 1:
				// A listing may or may not return a name removed
				// while it runs; stat must not find it.
				if !errors.Is(serr, syscall.ENOENT) {
					t.Fatalf("%s after unlink: mode %#o ino %d, %v; want ENOENT", e, st.Mode, st.Ino, serr)
				}
			case 2:
				if serr != nil || st.Ino != newIno[e] || st.Mode&0o777 != 0o640 {
					t.Fatalf("%s after rename over it: ino %d mode %#o, %v; want ino %d mode 0640", e, st.Ino, st.Mode, serr, newIno[e])
				}
			}
		}
	}
	if seen < n*2/3-len(first) {
		t.Errorf("the rest of the listing had %d names, want at least %d", seen, n*2/3-len(first))
	}
}
