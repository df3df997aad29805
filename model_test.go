package txfs

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/txfs/txfs/segment"
)

var (
	modelSeeds   = flag.Int("model.seeds", 12, "seeds the crash model test runs")
	modelOps     = flag.Int("model.ops", 400, "operations per seed")
	modelCrashes = flag.Int("model.crashes", 180, "crash points per seed")
	modelSeed    = flag.Int64("model.seed", 0, "run only this seed")
)

// mNode is one inode of the model.
type mNode struct {
	ino      Ino
	mode     uint32
	data     []byte
	target   string
	xattrs   map[string][]byte
	children map[string]*mNode
	parent   *mNode
	flags    uint32 // inode flags (SetFlags)
}

func (n *mNode) isDir() bool { return n.mode&syscall.S_IFMT == syscall.S_IFDIR }

func (n *mNode) isReg() bool { return n.mode&syscall.S_IFMT == syscall.S_IFREG }

// immutable: no change at all, no name added or removed in a directory.
func (n *mNode) immutable() bool { return n.flags&FlagImmutable != 0 }

// fixed: immutable or append-only; no name of it or in it goes, nothing
// but an append changes it.
func (n *mNode) fixed() bool { return n.flags&(FlagImmutable|FlagAppend) != 0 }

type model struct {
	root *mNode
}

func (m *model) nlink(n *mNode, names map[*mNode]int) uint32 {
	if n.isDir() {
		c := uint32(2)
		for _, ch := range n.children {
			if ch.isDir() {
				c++
			}
		}
		return c
	}
	return uint32(names[n])
}

func (m *model) dump() string {
	names := map[*mNode]int{}
	var count func(d *mNode)
	count = func(d *mNode) {
		for _, c := range d.children {
			names[c]++
			if c.isDir() {
				count(c)
			}
		}
	}
	count(m.root)
	var out []string
	seen := map[*mNode]string{}
	var walk func(d *mNode, path string)
	walk = func(d *mNode, path string) {
		keys := make([]string, 0, len(d.children))
		for k := range d.children {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			c := d.children[k]
			p := path + "/" + k
			line := fmt.Sprintf("%s %#o n%d", p, c.mode, m.nlink(c, names))
			if c.flags != 0 {
				line += fmt.Sprintf(" flags %#x", c.flags)
			}
			if first, ok := seen[c]; ok {
				out = append(out, line+" = "+first)
				continue
			}
			seen[c] = p
			switch c.mode & syscall.S_IFMT {
			case syscall.S_IFREG:
				line += fmt.Sprintf(" size %d data %x", len(c.data), sha256.Sum256(c.data))
			case syscall.S_IFLNK:
				line += " -> " + c.target
			}
			xs := make([]string, 0, len(c.xattrs))
			for x := range c.xattrs {
				xs = append(xs, x)
			}
			sort.Strings(xs)
			for _, x := range xs {
				line += fmt.Sprintf(" %s=%x", x, c.xattrs[x])
			}
			out = append(out, line)
			if c.isDir() {
				walk(c, p)
			}
		}
	}
	walk(m.root, "")
	return strings.Join(out, "\n")
}

// nodes lists every inode reachable, directories first by path order.
func (m *model) all() (dirs, files []*mNode) {
	seen := map[*mNode]bool{}
	var walk func(d *mNode)
	walk = func(d *mNode) {
		dirs = append(dirs, d)
		keys := make([]string, 0, len(d.children))
		for k := range d.children {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			c := d.children[k]
			if c.isDir() {
				walk(c)
			} else if !seen[c] {
				seen[c] = true
				files = append(files, c)
			}
		}
	}
	walk(m.root)
	return
}

// removeErrno is what unlink (dir false) or rmdir (dir true) of the entry
// of parent naming c (nil: none) must answer, by the model.
func removeErrno(parent, c *mNode, dir bool) syscall.Errno {
	switch {
	case c == nil:
		return syscall.ENOENT
	case parent.fixed() || c.fixed():
		return syscall.EPERM
	case !dir && c.isDir():
		return syscall.EISDIR
	case dir && !c.isDir():
		return syscall.ENOTDIR
	case dir && len(c.children) > 0:
		return syscall.ENOTEMPTY
	}
	return 0
}

// renameErrno is what renaming src/sname to dir/name with flags must
// answer, by the model.
func renameErrno(src *mNode, sname string, dir *mNode, name string, flags uint32) syscall.Errno {
	s, d := src.children[sname], dir.children[name]
	switch {
	case s == nil:
		return syscall.ENOENT
	case flags == RenameExchange && d == nil:
		return syscall.ENOENT
	case flags&RenameNoReplace != 0 && d != nil:
		return syscall.EEXIST
	case d == s:
		return 0
	case s.isDir() && dir != src && under(dir, s):
		return syscall.EINVAL
	case flags == RenameExchange && d.isDir() && dir != src && under(src, d):
		return syscall.EINVAL
	case src.fixed() || s.fixed() || d != nil && (dir.fixed() || d.fixed()) || d == nil && dir.immutable():
		return syscall.EPERM
	case flags != RenameExchange && d != nil && d.isDir() && !s.isDir():
		return syscall.EISDIR
	case flags != RenameExchange && d != nil && !d.isDir() && s.isDir():
		return syscall.ENOTDIR
	case flags != RenameExchange && d != nil && d.isDir() && len(d.children) > 0:
		return syscall.ENOTEMPTY
	}
	return 0
}

func under(d, anc *mNode) bool {
	for ; d != nil; d = d.parent {
		if d == anc {
			return true
		}
	}
	return false
}

var namePool = []string{"a", "b", "c", "dd", "eee", "f.txt", "g", strings.Repeat("n", 255)}

type modelRun struct {
	t       *testing.T
	seed    int64
	rng     *rand.Rand
	v       *Volume
	dev     *segment.MemDevice
	m       *model
	dumps   []string // dumps[i]: the model after i operations
	synced  int      // every crash must recover at least this many operations
	syncWhy string
	touched map[*mNode]int
	log     []string
	crashes int
	// cleanStages counts the stages of cleaning passed (testHookClean).
	cleanStages int
	held        []Ino // files made with Tmpfile still open, released by later operations
	// full: the volume is a few segments and fills up; any operation may
	// then answer ENOSPC, and must then change nothing.
	full   bool
	enospc int // operations that answered ENOSPC
	// snaps are the snapshots, oldest first: the model as each was taken.
	snaps     []modelSnapshot
	snapshots int // snapshot operations done
	// snapshotAhead: the model is a snapshot operation ahead of the
	// volume (snapshotOp records the state after it first).
	snapshotAhead bool
}

func (r *modelRun) fatalf(format string, a ...any) {
	r.t.Helper()
	tail := r.log
	if len(tail) > 15 {
		tail = tail[len(tail)-15:]
	}
	r.t.Fatalf("seed %d after %d ops: %s\nlast operations:\n%s\nreproduce: go test -run TestCrashModel -model.seed=%d",
		r.seed, len(r.dumps)-1, fmt.Sprintf(format, a...), strings.Join(tail, "\n"), r.seed)
}

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	return ToErrno(err)
}

// expect compares the volume's error with the model's. On a full volume
// ENOSPC is always a possible answer.
func (r *modelRun) expect(what string, got error, want syscall.Errno) bool {
	r.t.Helper()
	if r.noSpace(got) {
		return false
	}
	if errnoOf(got) != want {
		r.fatalf("%s: got %v, want errno %d (%v)", what, got, want, want)
	}
	return want == 0
}

// noSpace reports whether err is an ENOSPC the volume may give.
func (r *modelRun) noSpace(err error) bool {
	if r.full && errnoOf(err) == syscall.ENOSPC {
		r.enospc++
		return true
	}
	return false
}

// chunks records a state for every transaction but the last of an
// operation that takes several (a write, punch or copy), with apply
// bringing the model to done bytes of it.
func (r *modelRun) chunks(desc string, apply func(done int64)) func() {
	testHookChunk = func(done int64) {
		apply(done)
		r.step(fmt.Sprintf("%s: first %d bytes", desc, done))
	}
	return func() { testHookChunk = nil }
}

func (r *modelRun) step(desc string) {
	if r.full {
		// The invariant that keeps checkpoints, and recovery, possible.
		r.v.mu.Lock()
		room, cost := r.v.log.Room(), r.v.ckptCost()
		r.v.mu.Unlock()
		if room < cost {
			r.fatalf("after %s the log has room for %d bytes, the next checkpoint may need %d", desc, room, cost)
		}
	}
	r.log = append(r.log, desc)
	r.dumps = append(r.dumps, r.state())
	if !r.snapshotAhead {
		r.compareSnapshots(desc)
	}
}

func (r *modelRun) randData(n int) []byte {
	b := make([]byte, n)
	switch r.rng.Intn(3) {
	case 0:
		r.rng.Read(b) // incompressible
	case 1:
		for i := range b {
			b[i] = byte('a' + i%7)
		}
	default:
		// zeros
	}
	return b
}

func (r *modelRun) op() {
	rng, v, m := r.rng, r.v, r.m
	// Snapshots on the full volume too: their checkpoints must fit, or
	// they answer ENOSPC and change nothing.
	if rng.Intn(25) == 0 {
		r.snapshotOp()
		return
	}
	dirs, files := m.all()
	dir := dirs[rng.Intn(len(dirs))]
	name := namePool[rng.Intn(len(namePool))]
	pickFile := func() *mNode {
		if len(files) == 0 {
			return nil
		}
		return files[rng.Intn(len(files))]
	}
	switch k := rng.Intn(100); {
	case k < 10: // create
		a, err := v.Create(dir.ino, name, 0o644, Owner{})
		want := addErrno(dir, name)
		if r.expect("create "+name, err, want) {
			n := &mNode{ino: a.Ino, mode: syscall.S_IFREG | 0o644, parent: dir}
			dir.children[name] = n
		}
		r.step(fmt.Sprintf("create %d/%s", dir.ino, name))
	case k < 16: // mkdir
		a, err := v.Mkdir(dir.ino, name, 0o755, Owner{})
		want := addErrno(dir, name)
		if r.expect("mkdir "+name, err, want) {
			dir.children[name] = &mNode{ino: a.Ino, mode: syscall.S_IFDIR | 0o755, children: map[string]*mNode{}, parent: dir}
		}
		r.step(fmt.Sprintf("mkdir %d/%s", dir.ino, name))
	case k < 19: // symlink or fifo
		var a Attr
		var err error
		n := &mNode{parent: dir}
		if rng.Intn(2) == 0 {
			n.target = strings.Repeat("t", 1+rng.Intn(3000))
			n.mode = syscall.S_IFLNK | 0o777
			a, err = v.Symlink(dir.ino, name, n.target, Owner{})
		} else {
			n.mode = syscall.S_IFIFO | 0o600
			a, err = v.Mknod(dir.ino, name, n.mode, 0, Owner{})
		}
		want := addErrno(dir, name)
		if r.expect("symlink/mknod "+name, err, want) {
			n.ino = a.Ino
			dir.children[name] = n
		}
		r.step(fmt.Sprintf("special %d/%s", dir.ino, name))
	case k < 23: // link
		f := pickFile()
		if f == nil {
			return
		}
		r.link(f, dir, name)
		r.step(fmt.Sprintf("link %d -> %d/%s", f.ino, dir.ino, name))
	case k < 30: // unlink or rmdir
		c := dir.children[name]
		if rng.Intn(3) == 0 {
			err := v.Rmdir(dir.ino, name)
			want := removeErrno(dir, c, true)
			if r.expect("rmdir "+name, err, want) {
				delete(dir.children, name)
			}
			r.step(fmt.Sprintf("rmdir %d/%s", dir.ino, name))
			return
		}
		err := v.Unlink(dir.ino, name)
		want := removeErrno(dir, c, false)
		if r.expect("unlink "+name, err, want) {
			delete(dir.children, name)
		}
		r.step(fmt.Sprintf("unlink %d/%s", dir.ino, name))
	case k < 40: // rename
		src := dirs[rng.Intn(len(dirs))]
		sname := namePool[rng.Intn(len(namePool))]
		flags := []uint32{0, 0, RenameNoReplace, RenameExchange, RenameWhiteout, RenameWhiteout | RenameNoReplace}[rng.Intn(6)]
		err := v.Rename(src.ino, sname, dir.ino, name, flags)
		s, d := src.children[sname], dir.children[name]
		want := renameErrno(src, sname, dir, name, flags)
		if r.expect(fmt.Sprintf("rename %s -> %s flags %d", sname, name, flags), err, want) && d != s {
			if flags == RenameExchange {
				src.children[sname], dir.children[name] = d, s
				if d.isDir() {
					d.parent = src
				}
			} else {
				delete(src.children, sname)
				dir.children[name] = s
			}
			if flags&RenameWhiteout != 0 {
				src.children[sname] = &mNode{ino: r.lookupIno(src, sname), mode: whiteoutMode, parent: src}
			}
			if s.isDir() {
				s.parent = dir
			}
		}
		r.step(fmt.Sprintf("rename %d/%s -> %d/%s flags %d", src.ino, sname, dir.ino, name, flags))
	case k < 59: // write
		f := pickFile()
		if f == nil || f.mode&syscall.S_IFMT != syscall.S_IFREG {
			return
		}
		off := rng.Intn(40 << 10)
		if rng.Intn(10) == 0 {
			off = rng.Intn(3 << 20) // sparse
		}
		if f.flags&FlagAppend != 0 && rng.Intn(2) == 0 {
			off = len(f.data)
		}
		if r.full && rng.Intn(2) == 0 {
			off = len(f.data) // files grow until the volume is full
		}
		size := 20 << 10
		if r.full {
			size = 48 << 10 // to fill the volume, in several transactions
			if r.enospc == 0 {
				size = 160 << 10 // until it is full for the first time
			}
		}
		data := r.randData(rng.Intn(size))
		want := syscall.Errno(0)
		if f.immutable() || f.fixed() && len(data) > 0 && off != len(f.data) {
			want = syscall.EPERM
		}
		applied := 0
		apply := func(done int64) {
			if end := off + int(done); done > 0 {
				if end > len(f.data) {
					f.data = append(f.data, make([]byte, end-len(f.data))...)
				}
				copy(f.data[off+applied:], data[applied:done])
				applied = int(done)
			}
		}
		stop := r.chunks(fmt.Sprintf("write %d off %d", f.ino, off), apply)
		n, err := v.Write(f.ino, data, int64(off))
		stop()
		if r.expect("write", err, want) && n != len(data) {
			r.fatalf("write returned %d of %d", n, len(data))
		}
		apply(int64(n))
		if len(data) > 0 && want == 0 { // an empty write changes nothing, so Fsync owes it nothing
			r.touched[f] = len(r.dumps)
		}
		r.step(fmt.Sprintf("write %d off %d len %d", f.ino, off, len(data)))
	case k < 62: // a file with no name (O_TMPFILE): written, maybe linked
		r.tmpfile(dir, name)
	case k < 70: // truncate
		f := pickFile()
		if f == nil || f.mode&syscall.S_IFMT != syscall.S_IFREG {
			return
		}
		size := rng.Intn(len(f.data) + 1)
		if rng.Intn(4) == 0 {
			size = rng.Intn(100 << 10)
		}
		_, err := v.SetAttr(f.ino, &SetAttrIn{Valid: SetSize, Size: uint64(size)})
		if r.expect("truncate", err, changeErrno(f)) {
			if size <= len(f.data) {
				f.data = f.data[:size]
			} else {
				f.data = append(f.data, make([]byte, size-len(f.data))...)
			}
			r.touched[f] = len(r.dumps)
		}
		r.step(fmt.Sprintf("truncate %d to %d", f.ino, size))
	case k < 78: // xattrs
		f := pickFile()
		if f == nil {
			return
		}
		xn := "user." + namePool[rng.Intn(4)]
		if f.xattrs == nil {
			f.xattrs = map[string][]byte{}
		}
		_, has := f.xattrs[xn]
		if rng.Intn(3) == 0 {
			err := v.RemoveXattr(f.ino, xn)
			want := syscall.Errno(0)
			if f.fixed() {
				want = syscall.EPERM
			} else if !has {
				want = syscall.ENODATA
			}
			if r.expect("removexattr", err, want) {
				delete(f.xattrs, xn)
			}
		} else {
			val := r.randData(rng.Intn(200))
			flags := uint32(rng.Intn(3))
			err := v.SetXattr(f.ino, xn, val, flags)
			want := syscall.Errno(0)
			if f.fixed() {
				want = syscall.EPERM
			} else if flags == XattrCreate && has {
				want = syscall.EEXIST
			} else if flags == XattrReplace && !has {
				want = syscall.ENODATA
			}
			if r.expect("setxattr", err, want) {
				f.xattrs[xn] = val
			}
		}
		r.step(fmt.Sprintf("xattr %d %s", f.ino, xn))
	case k < 82: // chmod
		f := pickFile()
		if f == nil || f.mode&syscall.S_IFMT == syscall.S_IFLNK {
			return
		}
		mode := uint32(rng.Intn(0o7777))
		_, err := v.SetAttr(f.ino, &SetAttrIn{Valid: SetMode, Mode: mode})
		if r.expect("chmod", err, changeErrno(f)) {
			f.mode = f.mode&syscall.S_IFMT | mode
		}
		r.step(fmt.Sprintf("chmod %d %#o", f.ino, mode))
	case k < 86: // unlink while open: the data stays until release
		f := dir.children[name]
		if f == nil || f.mode&syscall.S_IFMT != syscall.S_IFREG {
			return
		}
		if err := v.OpenFile(f.ino); err != nil {
			r.fatalf("open: %v", err)
		}
		err := v.Unlink(dir.ino, name)
		if !r.expect("unlink open", err, removeErrno(dir, f, false)) {
			if err := v.Release(f.ino); err != nil {
				r.fatalf("release: %v", err)
			}
			r.step(fmt.Sprintf("unlink open %d/%s refused", dir.ino, name))
			return
		}
		delete(dir.children, name)
		r.step(fmt.Sprintf("unlink open %d/%s", dir.ino, name))
		// The file may still have other names: then the write shows.
		if _, err := v.Write(f.ino, []byte("more"), int64(len(f.data))); err == nil {
			f.data = append(f.data, "more"...)
		} else if !r.noSpace(err) {
			r.fatalf("write to unlinked open file: %v", err)
		}
		r.touched[f] = len(r.dumps)
		r.step(fmt.Sprintf("write %d more", f.ino))
		buf := make([]byte, len(f.data))
		if n, err := v.Read(f.ino, buf, 0); err != nil || n != len(buf) || !bytes.Equal(buf, f.data) {
			r.fatalf("read of unlinked open file: %d %v", n, err)
		}
		if err := v.Release(f.ino); err != nil {
			r.fatalf("release: %v", err)
		}
	case k < 89: // punch a hole
		f := pickFile()
		if f == nil || f.mode&syscall.S_IFMT != syscall.S_IFREG || len(f.data) == 0 {
			return
		}
		off := rng.Intn(len(f.data))
		n := 1 + rng.Intn(len(f.data)-off+8192)
		if r.expect("punch", v.PunchHole(f.ino, int64(off), int64(n)), changeErrno(f)) {
			clear(f.data[off:min(len(f.data), off+n)])
			r.touched[f] = len(r.dumps)
		}
		r.step(fmt.Sprintf("punch %d off %d len %d", f.ino, off, n))
	case k < 92: // zero, collapse or insert a range, or fail to as ext4 does
		f := pickFile()
		if f == nil || f.mode&syscall.S_IFMT != syscall.S_IFREG {
			return
		}
		mode, off, n := randomRange(rng, int64(v.bs), int64(len(f.data)))
		err, _ := engineFallocate(v, f.ino, mode, off, n)
		want, errno := rangeModel(f.data, int64(v.bs), mode, off, n)
		if f.fixed() {
			errno = syscall.EPERM // none of these modes is an append
		}
		desc := fmt.Sprintf("range %d mode %#x off %d len %d", f.ino, mode, off, n)
		if r.expect(desc, err, errno) {
			f.data = want
			r.touched[f] = len(r.dumps)
		}
		r.step(desc)
	case k < 94: // copy a range, sharing blocks where aligned
		s, d := pickFile(), pickFile()
		if s == nil || s == d || s.mode&syscall.S_IFMT != syscall.S_IFREG || d.mode&syscall.S_IFMT != syscall.S_IFREG {
			return
		}
		so, do := rng.Intn(len(s.data)+1), rng.Intn(len(d.data)+1)
		if rng.Intn(2) == 0 {
			so, do = so/4096*4096, do/4096*4096
		}
		if d.flags&FlagAppend != 0 && rng.Intn(2) == 0 {
			do = len(d.data)
		}
		n := rng.Intn(40 << 10)
		want := min(n, max(0, len(s.data)-so))
		refused := d.immutable() || d.fixed() && n > 0 && do != len(d.data)
		part := append([]byte(nil), s.data[so:so+want]...)
		copied := 0
		apply := func(done int64) {
			if done > int64(copied) {
				if end := do + int(done); end > len(d.data) {
					d.data = append(d.data, make([]byte, end-len(d.data))...)
				}
				copy(d.data[do+copied:], part[copied:done])
				copied = int(done)
				r.touched[d] = len(r.dumps) + 1 // a copy of nothing is no change
			}
		}
		stop := r.chunks(fmt.Sprintf("copy %d -> %d", s.ino, d.ino), apply)
		got, err := v.CopyRange(s.ino, int64(so), d.ino, int64(do), int64(n))
		stop()
		if refused {
			r.expect("copy range", err, syscall.EPERM)
			r.step(fmt.Sprintf("copy %d -> %d refused", s.ino, d.ino))
			return
		}
		if (err != nil && !r.noSpace(err)) || (err == nil && got != int64(want)) {
			r.fatalf("copy range: %d %v, want %d", got, err, want)
		}
		apply(got)
		if copied > 0 {
			r.touched[d] = len(r.dumps)
		}
		r.step(fmt.Sprintf("copy %d off %d -> %d off %d len %d", s.ino, so, d.ino, do, n))
	case k < 96: // inode flags
		r.chattr(append(dirs[1:], files...))
	case k < 99: // fsync
		f := pickFile()
		if f == nil {
			return
		}
		if err := v.Fsync(f.ino); err != nil {
			r.fatalf("fsync: %v", err)
		}
		if n, ok := r.touched[f]; ok && n > r.synced {
			r.synced = n
			r.syncWhy = fmt.Sprintf("fsync of %d after op %d", f.ino, len(r.dumps)-1)
		}
	default: // sync
		if err := v.Sync(); err != nil {
			r.fatalf("sync: %v", err)
		}
		r.synced = len(r.dumps) - 1
		r.syncWhy = fmt.Sprintf("sync after op %d", r.synced)
	}
}

// addErrno is what making the name dir/name must answer, by the model.
func addErrno(dir *mNode, name string) syscall.Errno {
	switch {
	case dir.children[name] != nil:
		return syscall.EEXIST
	case dir.immutable():
		return syscall.EPERM
	}
	return 0
}

// changeErrno is what a change to f other than a write (truncate, chmod,
// punch) must answer, by the model.
func changeErrno(f *mNode) syscall.Errno {
	if f.fixed() {
		return syscall.EPERM
	}
	return 0
}

// chattr sets random inode flags on one of nodes, as root mostly, and
// sometimes as a user who does not own it (every node is root's). Half
// the time it clears them, so that the tree does not freeze.
func (r *modelRun) chattr(nodes []*mNode) {
	if len(nodes) == 0 {
		return
	}
	rng := r.rng
	n := nodes[rng.Intn(len(nodes))]
	flags := uint32(0)
	if rng.Intn(2) == 0 {
		flags = uint32(rng.Intn(SupportedFlags+1)) & SupportedFlags
	}
	if rng.Intn(20) == 0 {
		flags |= 0x8 // FS_SYNC_FL, which txfs does not keep
	}
	by := Owner{}
	if rng.Intn(10) == 0 {
		by = Owner{Uid: 1000, Gid: 1000}
	}
	err := r.v.SetFlags(n.ino, flags, by)
	want := syscall.Errno(0)
	switch {
	case flags&^SupportedFlags != 0, !n.isDir() && !n.isReg() && flags&^(FlagNoDump|FlagNoAtime) != 0:
		want = syscall.EOPNOTSUPP
	case by.Uid != 0, n.immutable() && flags&FlagImmutable != 0 && flags != n.flags:
		want = syscall.EPERM
	}
	if r.expect(fmt.Sprintf("set flags %#x by %d", flags, by.Uid), err, want) {
		n.flags = flags
		r.touched[n] = len(r.dumps)
	}
	r.step(fmt.Sprintf("chattr %d %#x by %d", n.ino, flags, by.Uid))
}

// lookupIno returns the inode the volume has at dir/name.
func (r *modelRun) lookupIno(dir *mNode, name string) Ino {
	a, err := r.v.Lookup(dir.ino, name)
	if err != nil {
		r.fatalf("lookup %d/%s: %v", dir.ino, name, err)
	}
	return a.Ino
}

// link gives f the name dir/name, which the model says fails with EEXIST
// when the name is taken, and reports whether it did.
func (r *modelRun) link(f, dir *mNode, name string) bool {
	_, err := r.v.Link(f.ino, dir.ino, name)
	want := addErrno(dir, name)
	if want == 0 && f.fixed() {
		want = syscall.EPERM
	}
	if !r.expect("link "+name, err, want) {
		return false
	}
	dir.children[name] = f
	return true
}

// tmpfile makes a file with no name in dir, writes it, links it as name
// two times in three (syncing the link half of those times), and releases
// it now or leaves it open for a later call, so crashes find unnamed files
// open in the log and in checkpoints.
func (r *modelRun) tmpfile(dir *mNode, name string) {
	rng, v := r.rng, r.v
	if len(r.held) > 0 && rng.Intn(3) == 0 {
		ino := r.held[0]
		r.held = r.held[1:]
		if err := v.Release(ino); err != nil {
			r.fatalf("release of tmpfile %d: %v", ino, err)
		}
		r.step(fmt.Sprintf("release tmpfile %d", ino))
		return
	}
	a, err := v.Tmpfile(dir.ino, 0o600, Owner{})
	if r.noSpace(err) {
		return
	}
	if dir.immutable() {
		r.expect("tmpfile in an immutable directory", err, syscall.EPERM)
		return
	}
	if err != nil {
		r.fatalf("tmpfile in %d: %v", dir.ino, err)
	}
	r.step(fmt.Sprintf("tmpfile %d in %d", a.Ino, dir.ino))
	n := &mNode{ino: a.Ino, mode: syscall.S_IFREG | 0o600, parent: dir, data: r.randData(rng.Intn(20 << 10))}
	if w, err := v.Write(a.Ino, n.data, 0); r.noSpace(err) {
		n.data = n.data[:w]
	} else if err != nil {
		r.fatalf("write to tmpfile %d: %v", a.Ino, err)
	}
	r.step(fmt.Sprintf("write tmpfile %d len %d", a.Ino, len(n.data)))
	if rng.Intn(3) != 0 {
		linked := r.link(n, dir, name)
		if linked {
			r.touched[n] = len(r.dumps)
		}
		r.step(fmt.Sprintf("link tmpfile %d -> %d/%s", a.Ino, dir.ino, name))
		if linked && rng.Intn(2) == 0 {
			// The log is in order: the link and all before it are durable.
			if err := v.Fsync(a.Ino); err != nil {
				r.fatalf("fsync: %v", err)
			}
			r.synced = len(r.dumps) - 1
			r.syncWhy = fmt.Sprintf("fsync of linked tmpfile %d after op %d", a.Ino, r.synced)
		}
	}
	if rng.Intn(2) == 0 {
		r.held = append(r.held, a.Ino)
		return
	}
	if err := v.Release(a.Ino); err != nil {
		r.fatalf("release of tmpfile %d: %v", a.Ino, err)
	}
	r.step(fmt.Sprintf("release tmpfile %d", a.Ino))
}

// crash takes what the device would hold after a power cut now, recovers
// it, and requires a prefix of the operations including every synced one.
func (r *modelRun) crash() {
	r.recoverImage(r.crashImage())
}

// crashImage is what the device would hold after a power cut now.
func (r *modelRun) crashImage() crashImage {
	opt := segment.CrashOptions{KeepPrefix: -1, TearLast: r.rng.Intn(2) == 0, Reorder: r.rng.Intn(4) == 0}
	return crashImage{r.dev.Crash(opt, r.rng), opt}
}

type crashImage struct {
	img *segment.MemDevice
	opt segment.CrashOptions
}

// recoverImage recovers a crash image, checks it, and requires a prefix
// of the operations including every synced one.
func (r *modelRun) recoverImage(c crashImage) {
	img, opt := c.img, c.opt
	r.crashes++
	var rlog strings.Builder
	v, err := Open(img, Options{Log: func(f string, a ...any) { fmt.Fprintf(&rlog, "  "+f+"\n", a...) }})
	if err != nil {
		r.fatalf("crash %d (%+v): open: %v", r.crashes, opt, err)
	}
	defer v.Close()
	if err := v.Check(); err != nil {
		r.fatalf("crash %d (%+v): check: %v", r.crashes, opt, err)
	}
	got, err := volumeState(v)
	if err != nil {
		r.fatalf("crash %d: dump: %v", r.crashes, err)
	}
	for i := len(r.dumps) - 1; i >= r.synced; i-- {
		if r.dumps[i] == got {
			return
		}
	}
	best := r.synced
	for i := r.synced; i < len(r.dumps); i++ {
		if len(lineDiff(got, r.dumps[i])) < len(lineDiff(got, r.dumps[best])) {
			best = i
		}
	}
	r.fatalf("crash %d (%+v): recovered state is no prefix of at least %d operations (%s); nearest is after %d:\n%s\nrecovery:\n%s",
		r.crashes, opt, r.synced, r.syncWhy, best, lineDiff(got, r.dumps[best]), rlog.String())
}

func runModel(t *testing.T, seed int64, ops, crashes int, full bool) int {
	rng := rand.New(rand.NewSource(seed))
	// Range operations change a few block map items per transaction, and
	// the unit is often sealed between two, so that crashes find them
	// half done and recovery finishes them.
	testRangeChunk = 1 + int(seed%4)
	testHookRangeStep = func(v *Volume, _ Ino) error {
		if rng.Intn(2) == 0 {
			return v.log.Seal()
		}
		return nil
	}
	defer func() { testRangeChunk, testHookRangeStep = 0, nil }()
	var v *Volume
	var dev *segment.MemDevice
	if full {
		// The cleaner runs whenever an operation is short of space, which
		// is most of the time once the volume has filled; the power is cut
		// at random stages of its batches too. (Its background goroutine
		// is off: a power cut must come between two steps of the model.)
		v, dev = newSmallVolume(t, 3<<19, 64<<10, Options{CheckpointBytes: 512 << 10, Cleaner: CleanerOptions{Off: true}})
	} else {
		v, dev = newTestVolume(t, 48<<20, Options{CheckpointBytes: 512 << 10})
	}
	r := &modelRun{t: t, seed: seed, rng: rng, v: v, dev: dev, touched: map[*mNode]int{}, full: full,
		m: &model{root: &mNode{ino: RootIno, mode: syscall.S_IFDIR | 0o755, children: map[string]*mNode{}}}}
	r.dumps = []string{r.state()}
	r.log = []string{"format"}
	every := max(1, ops/max(crashes, 1))
	if full {
		testHookClean = func(v *Volume, stage string) {
			if v != r.v { // a volume recovered from a crash image
				return
			}
			r.cleanStages++
			if r.crashes < crashes && rng.Intn(every) == 0 {
				r.crash()
			}
		}
		defer func() { testHookClean = nil }()
	}
	for i := 0; i < ops; i++ {
		r.op()
		if crashes > 0 && (i%every == 0 || rng.Intn(every) == 0) && r.crashes < crashes {
			r.crash()
		}
	}
	got, err := volumeState(v)
	if err != nil {
		r.fatalf("dump: %v", err)
	}
	if want := r.dumps[len(r.dumps)-1]; got != want {
		r.fatalf("volume differs from model:\n%s", lineDiff(got, want))
	}
	v2 := reopen(t, v, dev)
	defer v2.Close()
	if got, _ := volumeState(v2); got != r.dumps[len(r.dumps)-1] {
		r.fatalf("after reopen the volume differs from the model")
	}
	if full && r.enospc == 0 && r.cleanStages == 0 {
		r.fatalf("the volume never filled up")
	}
	if !full {
		t.Logf("seed %d: %d snapshot operations, %d left", seed, r.snapshots, len(r.snaps))
		if ops >= 1000 && r.snapshots == 0 {
			r.fatalf("no snapshot operation")
		}
	}
	if full {
		t.Logf("seed %d: %d operations answered ENOSPC; %d stages of cleaning; %d snapshot operations", seed, r.enospc, r.cleanStages, r.snapshots)
		nearFullCleanStages += r.cleanStages
	}
	return r.crashes
}

// TestCrashModel drives random operations against the volume and a model,
// and at random points simulates a power cut (unsynced writes lost, the last
// one torn, or a random subset kept), recovers, checks, and compares.
func TestCrashModel(t *testing.T) {
	seeds := []int64{}
	if *modelSeed != 0 {
		seeds = append(seeds, *modelSeed)
	} else {
		for i := 0; i < *modelSeeds-1; i++ {
			seeds = append(seeds, int64(i+1))
		}
		seeds = append(seeds, time.Now().UnixNano())
	}
	ops, crashes := *modelOps, *modelCrashes
	if testing.Short() {
		seeds, ops, crashes = seeds[:min(len(seeds), 3)], ops/4, crashes/4
	}
	total := 0
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			total += runModel(t, seed, ops, crashes, false)
		})
	}
	t.Logf("%d seeds, %d crash points recovered and checked", len(seeds), total)
	if !testing.Short() && *modelSeed == 0 && total < 2000 {
		t.Fatalf("only %d crash points; the suite promises at least 2000", total)
	}
}

// TestCrashModelNearFull is the crash model on a volume of a few dozen
// small segments, which the operations fill: operations meet ENOSPC and
// must then change nothing, and the power is cut while the volume is full,
// while it is emptied and while it fills again.
func TestCrashModelNearFull(t *testing.T) {
	seeds := []int64{101, 102, 103, 104, time.Now().UnixNano()}
	if *modelSeed != 0 {
		seeds = []int64{*modelSeed}
	}
	ops, crashes := *modelOps*2, *modelCrashes/2
	if testing.Short() {
		seeds, crashes = seeds[:2], crashes/4
	}
	nearFullCleanStages = 0
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			runModel(t, seed, ops, crashes, true)
		})
	}
	if len(seeds) > 1 && nearFullCleanStages == 0 {
		t.Fatalf("the cleaner never ran")
	}
}

// nearFullCleanStages counts the stages of cleaning the near-full crash
// model went through, over its seeds.
var nearFullCleanStages int

// lineDiff lists the lines only in got (-) and only in want (+).
func lineDiff(got, want string) string {
	g, w := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(got, "\n") {
		g[l] = true
	}
	for _, l := range strings.Split(want, "\n") {
		w[l] = true
	}
	var out []string
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			out = append(out, "- "+trim(l))
		}
	}
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			out = append(out, "+ "+trim(l))
		}
	}
	return strings.Join(out, "\n")
}

func trim(l string) string {
	l = strings.ReplaceAll(l, strings.Repeat("n", 255), "N255")
	if len(l) > 200 {
		return l[:200] + "..."
	}
	return l
}
