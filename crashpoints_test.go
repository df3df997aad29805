package txfs

import (
	"bytes"
	"compress/gzip"
	"encoding/gob"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/txfs/txfs/internal/falloctab"
	"github.com/txfs/txfs/segment"
)

var (
	cpSeed    = flag.Int64("crashpoints.seed", 0, "seed of the crash point test's random operations and reorder samples (0: time)")
	cpOps     = flag.Int("crashpoints.ops", 300, "random operations per round, after the scripted ones")
	cpImages  = flag.Int("crashpoints.images", 10000, "crash images to check at least (a tenth with -short)")
	cpReplay  = flag.String("crashpoints.replay", "", "a failure file TestCrashPoints wrote: check only -crashpoints.event")
	cpEvent   = flag.Int("crashpoints.event", -2, "with -crashpoints.replay: the crash point (event index) to check")
	cpVariant = flag.Int("crashpoints.variant", -1, "with -crashpoints.replay: the variant index at that event (-1: all)")
)

// Per crash point: the plain image, up to cpTorn torn images of the last
// write and up to cpReorder images with a subset of the unsynced writes
// lost.
const (
	cpTorn    = 3
	cpReorder = 4
)

// cpRun drives the workload: every operation on the volume and on the
// model, with marks in the device's event record.
type cpRun struct {
	t     *testing.T
	rng   *rand.Rand
	v     *Volume
	rec   *segment.RecordingDevice
	m     *model
	dumps []string // dumps[s]: the model after s steps
	descs []string // descs[s]: what step s did
	// touched[n]: the last step that changed n, which Fsync(n) makes
	// durable together with every step before it (the log is ordered).
	touched map[*mNode]int
	chunk   int64 // write transaction size, in blocks
}

func (r *cpRun) fatalf(format string, a ...any) {
	r.t.Helper()
	tail := r.descs
	if len(tail) > 10 {
		tail = tail[len(tail)-10:]
	}
	r.t.Fatalf("workload after %d steps: %s\nlast steps:\n%s", len(r.dumps)-1, fmt.Sprintf(format, a...), strings.Join(tail, "\n"))
}

// begin marks the start of an operation that makes n steps: from here on
// the device may hold its effects, up to step len(dumps)-1+n.
func (r *cpRun) begin(n int) {
	r.rec.Mark(fmt.Sprintf("start %d", len(r.dumps)-1+n))
}

// step records the model state after one step of an operation.
func (r *cpRun) step(desc string, touched ...*mNode) {
	s := len(r.dumps)
	r.dumps = append(r.dumps, r.m.dump())
	r.descs = append(r.descs, desc)
	for _, n := range touched {
		if n != nil {
			r.touched[n] = s
		}
	}
}

// end marks the end of an operation and compares the live volume with
// the model.
func (r *cpRun) end() {
	s := len(r.dumps) - 1
	r.rec.Mark(fmt.Sprintf("end %d", s))
	got, err := dump(r.v)
	if err != nil {
		r.fatalf("dump: %v", err)
	}
	if got != r.dumps[s] {
		r.fatalf("the volume differs from the model:\n%s", lineDiff(got, r.dumps[s]))
	}
}

func (r *cpRun) expect(what string, got error, want syscall.Errno) bool {
	r.t.Helper()
	if errnoOf(got) != want {
		r.fatalf("%s: got %v, want errno %d (%v)", what, got, want, want)
	}
	return want == 0
}

func (r *cpRun) node(path string) *mNode {
	n := r.m.root
	for _, c := range strings.Split(strings.Trim(path, "/"), "/") {
		if c == "" {
			continue
		}
		if n = n.children[c]; n == nil {
			r.fatalf("no %s in the model", path)
		}
	}
	return n
}

func exists(dir *mNode, name string) syscall.Errno {
	if dir.children[name] != nil {
		return syscall.EEXIST
	}
	return 0
}

func (r *cpRun) create(dir *mNode, name string) *mNode {
	r.begin(1)
	a, err := r.v.Create(dir.ino, name, 0o644, Owner{})
	var n *mNode
	if r.expect("create "+name, err, exists(dir, name)) {
		n = &mNode{ino: a.Ino, mode: syscall.S_IFREG | 0o644, parent: dir}
		dir.children[name] = n
		r.step(fmt.Sprintf("create %d/%s = %d", dir.ino, name, a.Ino), n, dir)
	} else {
		r.step(fmt.Sprintf("create %d/%s: exists", dir.ino, name))
	}
	r.end()
	return n
}

func (r *cpRun) mkdir(dir *mNode, name string) *mNode {
	r.begin(1)
	a, err := r.v.Mkdir(dir.ino, name, 0o755, Owner{})
	var n *mNode
	if r.expect("mkdir "+name, err, exists(dir, name)) {
		n = &mNode{ino: a.Ino, mode: syscall.S_IFDIR | 0o755, children: map[string]*mNode{}, parent: dir}
		dir.children[name] = n
		r.step(fmt.Sprintf("mkdir %d/%s = %d", dir.ino, name, a.Ino), n, dir)
	} else {
		r.step(fmt.Sprintf("mkdir %d/%s: exists", dir.ino, name))
	}
	r.end()
	return n
}

func (r *cpRun) special(dir *mNode, name, target string) {
	r.begin(1)
	n := &mNode{parent: dir}
	var a Attr
	var err error
	if target != "" {
		n.mode, n.target = syscall.S_IFLNK|0o777, target
		a, err = r.v.Symlink(dir.ino, name, target, Owner{})
	} else {
		n.mode = syscall.S_IFIFO | 0o600
		a, err = r.v.Mknod(dir.ino, name, n.mode, 0, Owner{})
	}
	if r.expect("symlink/mknod "+name, err, exists(dir, name)) {
		n.ino = a.Ino
		dir.children[name] = n
		r.step(fmt.Sprintf("special %d/%s = %d (%d byte target)", dir.ino, name, a.Ino, len(target)), n, dir)
	} else {
		r.step(fmt.Sprintf("special %d/%s: exists", dir.ino, name))
	}
	r.end()
}

func (r *cpRun) link(f, dir *mNode, name string) {
	r.begin(1)
	_, err := r.v.Link(f.ino, dir.ino, name)
	if r.expect("link "+name, err, exists(dir, name)) {
		dir.children[name] = f
		r.step(fmt.Sprintf("link %d -> %d/%s", f.ino, dir.ino, name), f, dir)
	} else {
		r.step(fmt.Sprintf("link %d -> %d/%s: exists", f.ino, dir.ino, name))
	}
	r.end()
}

func (r *cpRun) unlink(dir *mNode, name string) {
	r.begin(1)
	err := r.v.Unlink(dir.ino, name)
	c := dir.children[name]
	want := removeErrno(dir, c, false)
	if r.expect("unlink "+name, err, want) {
		delete(dir.children, name)
		r.step(fmt.Sprintf("unlink %d/%s (%d)", dir.ino, name, c.ino), c, dir)
	} else {
		r.step(fmt.Sprintf("unlink %d/%s: %v", dir.ino, name, want))
	}
	r.end()
}

func (r *cpRun) rmdir(dir *mNode, name string) {
	r.begin(1)
	err := r.v.Rmdir(dir.ino, name)
	c := dir.children[name]
	want := removeErrno(dir, c, true)
	if r.expect("rmdir "+name, err, want) {
		delete(dir.children, name)
		r.step(fmt.Sprintf("rmdir %d/%s (%d)", dir.ino, name, c.ino), c, dir)
	} else {
		r.step(fmt.Sprintf("rmdir %d/%s: %v", dir.ino, name, want))
	}
	r.end()
}

func (r *cpRun) rename(src *mNode, sname string, dir *mNode, name string, flags uint32) {
	r.begin(1)
	err := r.v.Rename(src.ino, sname, dir.ino, name, flags)
	s, d := src.children[sname], dir.children[name]
	want := renameErrno(src, sname, dir, name, flags)
	desc := fmt.Sprintf("rename %d/%s -> %d/%s flags %d", src.ino, sname, dir.ino, name, flags)
	if r.expect(desc, err, want) && d != s {
		if flags == RenameExchange {
			src.children[sname], dir.children[name] = d, s
			if d.isDir() {
				d.parent = src
			}
		} else {
			delete(src.children, sname)
			dir.children[name] = s
		}
		if s.isDir() {
			s.parent = dir
		}
		r.step(desc, src, dir, s, d)
	} else {
		r.step(fmt.Sprintf("%s: %v", desc, want))
	}
	r.end()
}

// write writes data at off. Write splits what does not fit one
// transaction exactly like this, and a crash may keep any of the chunks
// written so far, so every chunk is a step.
func (r *cpRun) write(f *mNode, off int64, data []byte) {
	bs := int64(r.v.bs)
	type chunk struct{ pos, end int64 }
	var chunks []chunk
	for done := int64(0); done < int64(len(data)); {
		pos := off + done
		end := min(off+int64(len(data)), (pos/bs+r.chunk)*bs)
		chunks = append(chunks, chunk{pos, end})
		done = end - off
	}
	r.begin(len(chunks))
	n, err := r.v.Write(f.ino, data, off)
	if r.expect("write", err, 0) && n != len(data) {
		r.fatalf("write returned %d of %d", n, len(data))
	}
	for i, c := range chunks {
		if len(f.data) < int(c.end) {
			f.data = append(f.data, make([]byte, int(c.end)-len(f.data))...)
		}
		copy(f.data[c.pos:c.end], data[c.pos-off:c.end-off])
		r.step(fmt.Sprintf("write %d off %d len %d (chunk %d of %d)", f.ino, c.pos, c.end-c.pos, i+1, len(chunks)), f)
	}
	r.end()
}

func (r *cpRun) truncate(f *mNode, size int) {
	r.begin(1)
	_, err := r.v.SetAttr(f.ino, &SetAttrIn{Valid: SetSize, Size: uint64(size)})
	if r.expect("truncate", err, 0) {
		if size <= len(f.data) {
			f.data = f.data[:size]
		} else {
			f.data = append(f.data, make([]byte, size-len(f.data))...)
		}
	}
	r.step(fmt.Sprintf("truncate %d to %d", f.ino, size), f)
	r.end()
}

func (r *cpRun) chmod(f *mNode, mode uint32) {
	r.begin(1)
	_, err := r.v.SetAttr(f.ino, &SetAttrIn{Valid: SetMode, Mode: mode})
	if r.expect("chmod", err, 0) {
		f.mode = f.mode&syscall.S_IFMT | mode
	}
	r.step(fmt.Sprintf("chmod %d %#o", f.ino, mode), f)
	r.end()
}

func (r *cpRun) setxattr(f *mNode, name string, val []byte, flags uint32) {
	r.begin(1)
	if f.xattrs == nil {
		f.xattrs = map[string][]byte{}
	}
	_, has := f.xattrs[name]
	err := r.v.SetXattr(f.ino, name, val, flags)
	want := syscall.Errno(0)
	if flags == XattrCreate && has {
		want = syscall.EEXIST
	} else if flags == XattrReplace && !has {
		want = syscall.ENODATA
	}
	desc := fmt.Sprintf("setxattr %d %s (%d bytes) flags %d", f.ino, name, len(val), flags)
	if r.expect(desc, err, want) {
		f.xattrs[name] = append([]byte(nil), val...)
		r.step(desc, f)
	} else {
		r.step(fmt.Sprintf("%s: %v", desc, want))
	}
	r.end()
}

func (r *cpRun) removexattr(f *mNode, name string) {
	r.begin(1)
	_, has := f.xattrs[name]
	err := r.v.RemoveXattr(f.ino, name)
	want := syscall.Errno(0)
	if !has {
		want = syscall.ENODATA
	}
	if r.expect("removexattr "+name, err, want) {
		delete(f.xattrs, name)
		r.step(fmt.Sprintf("removexattr %d %s", f.ino, name), f)
	} else {
		r.step(fmt.Sprintf("removexattr %d %s: %v", f.ino, name, want))
	}
	r.end()
}

// lockedChunk is the chunk size transactions of footprint fp take now.
func (v *Volume) lockedChunk(fp func(int) footprint) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.chunkBlocks(v.freeChunkLimit(), fp)
}

// punch punches a hole: one step, however many transactions it takes.
func (r *cpRun) punch(f *mNode, off, n int64) {
	r.rangeOp(f, falloctab.PunchHole|falloctab.KeepSize, off, n)
}

// rangeOp runs a fallocate mode the engine has on f: one step, however
// many transactions it takes (a crash between them leaves the rest to
// Open), or none when the model says it fails.
func (r *cpRun) rangeOp(f *mNode, mode uint32, off, n int64) {
	r.begin(1)
	err, _ := engineFallocate(r.v, f.ino, mode, off, n)
	want, errno := rangeModel(f.data, int64(r.v.bs), mode, off, n)
	desc := fmt.Sprintf("range %d mode %#x off %d len %d", f.ino, mode, off, n)
	if r.expect(desc, err, errno) {
		f.data = want
		r.step(desc, f)
	} else {
		r.step(fmt.Sprintf("%s: %v", desc, errno))
	}
	r.end()
}

// copyRange copies with CopyRange: whole aligned blocks are shared, the
// rest copied. Each transaction is a step; the steps are those CopyRange
// takes, worked out from the model's sizes the same way.
func (r *cpRun) copyRange(s *mNode, so int64, d *mNode, do int64, n int64) {
	bs, fcb := int64(r.v.bs), int64(r.v.lockedChunk(r.v.shareOp))
	type piece struct{ so, do, n int64 }
	var pieces []piece
	dsize := int64(len(d.data))
	for done := int64(0); done < n; {
		so, do := so+done, do+done
		ssize := int64(len(s.data))
		if s == d {
			ssize = max(ssize, dsize)
		}
		if so >= ssize {
			break
		}
		left := min(n-done, ssize-so)
		c := int64(0)
		if so%bs == 0 && do%bs == 0 && s != d {
			c = min(left, min((left+bs-1)/bs, fcb)*bs)
			if c%bs != 0 && (so+c != ssize || dsize > do+c) {
				c -= c % bs
			}
		}
		if c == 0 {
			c = min(left, bs-so%bs, bs-do%bs)
		}
		pieces = append(pieces, piece{so, do, c})
		dsize = max(dsize, do+c)
		done += c
	}
	r.begin(max(1, len(pieces)))
	got, err := r.v.CopyRange(s.ino, so, d.ino, do, n)
	var want int64
	for _, p := range pieces {
		want += p.n
	}
	if err != nil || got != want {
		r.fatalf("copy %d off %d -> %d off %d len %d: %d, %v; want %d", s.ino, so, d.ino, do, n, got, err, want)
	}
	for i, p := range pieces {
		part := append([]byte(nil), s.data[p.so:p.so+p.n]...)
		if end := p.do + p.n; end > int64(len(d.data)) {
			d.data = append(d.data, make([]byte, end-int64(len(d.data)))...)
		}
		copy(d.data[p.do:], part)
		r.step(fmt.Sprintf("copy %d off %d -> %d off %d len %d (piece %d of %d)", s.ino, p.so, d.ino, p.do, p.n, i+1, len(pieces)), d)
	}
	if len(pieces) == 0 {
		r.step(fmt.Sprintf("copy %d off %d -> %d off %d len %d: nothing", s.ino, so, d.ino, do, n))
	}
	r.end()
}

// unlinkOpen removes a name of a file that is open, writes to it, then
// releases it: the data stays until the release, which frees the inode
// if that was its last name.
func (r *cpRun) unlinkOpen(dir *mNode, name string) {
	f := dir.children[name]
	if f == nil || f.mode&syscall.S_IFMT != syscall.S_IFREG {
		return
	}
	r.begin(3)
	if err := r.v.OpenFile(f.ino); err != nil {
		r.fatalf("open: %v", err)
	}
	if err := r.v.Unlink(dir.ino, name); err != nil {
		r.fatalf("unlink open file: %v", err)
	}
	delete(dir.children, name)
	r.step(fmt.Sprintf("unlink open %d/%s (%d)", dir.ino, name, f.ino), f, dir)
	if _, err := r.v.Write(f.ino, []byte("more"), int64(len(f.data))); err != nil {
		r.fatalf("write to unlinked open file: %v", err)
	}
	f.data = append(f.data, "more"...)
	r.step(fmt.Sprintf("write %d more", f.ino), f)
	buf := make([]byte, len(f.data)+1)
	if n, err := r.v.Read(f.ino, buf, 0); err != nil || n != len(f.data) || !bytes.Equal(buf[:n], f.data) {
		r.fatalf("read of unlinked open file: %d %v", n, err)
	}
	if err := r.v.Release(f.ino); err != nil {
		r.fatalf("release: %v", err)
	}
	r.step(fmt.Sprintf("release %d", f.ino))
	r.end()
}

// fsync makes n durable and says so in the record: every step up to the
// last one that changed n.
func (r *cpRun) fsync(n *mNode) {
	if err := r.v.Fsync(n.ino); err != nil {
		r.fatalf("fsync %d: %v", n.ino, err)
	}
	r.rec.Mark(fmt.Sprintf("durable %d fsync %d", r.touched[n], n.ino))
}

func (r *cpRun) sync() {
	s := len(r.dumps) - 1
	if err := r.v.Sync(); err != nil {
		r.fatalf("sync: %v", err)
	}
	r.rec.Mark(fmt.Sprintf("durable %d sync", s))
}

func (r *cpRun) data(n int) []byte {
	b := make([]byte, n)
	switch r.rng.Intn(3) {
	case 0:
		r.rng.Read(b) // incompressible
	case 1:
		c := byte(r.rng.Intn(200))
		for i := range b {
			b[i] = c + byte(i%7)
		}
	}
	return b
}

// scripted runs operations chosen to cover every kind of change, in the
// situations recovery finds hard: changes that span units, overwrites of
// data written in the same unit, renames that replace and exchange, and
// deletes that free what a checkpoint holds.
func (r *cpRun) scripted() {
	root := r.m.root
	d := r.mkdir(root, "d")
	e := r.mkdir(d, "e")
	a := r.create(root, "a")
	r.write(a, 0, r.data(10000))
	r.fsync(a)
	b := r.create(d, "b")
	r.write(b, 200<<10, r.data(4096)) // sparse
	r.write(a, 2000, r.data(3000))    // overwrite within blocks
	r.fsync(b)
	r.special(d, "l", strings.Repeat("t", 3000)) // a target in several items
	r.special(d, "fifo", "")
	r.link(a, d, "a2")
	r.setxattr(a, "user.x", []byte("hello"), 0)
	r.setxattr(a, "user.x", []byte("hello again"), XattrReplace)
	r.setxattr(a, "user.x", []byte("no"), XattrCreate) // EEXIST
	r.fsync(d)
	r.rename(root, "a", e, "a3", 0)
	r.rename(d, "b", e, "a3", RenameNoReplace) // EEXIST
	r.rename(d, "b", e, "a3", RenameExchange)
	r.fsync(e)
	for i := 0; i < 40; i++ { // enough entries to split directory leaves
		f := r.create(d, fmt.Sprintf("f%02d-%s", i, strings.Repeat("x", 40)))
		if i%5 == 0 {
			r.write(f, int64(i*100), r.data(500+i*40))
		}
		if i%8 == 0 {
			r.fsync(f)
		}
	}
	r.truncate(a, 5000) // shrink: frees blocks
	r.truncate(a, 70000)
	r.write(a, 12000, r.data(100))
	r.fsync(a)
	r.unlink(d, "a2")
	r.rmdir(d, "e")                  // ENOTEMPTY
	r.unlink(e, "b")                 // ENOENT
	r.rename(e, "a3", root, "b2", 0) // b, out of e
	r.rmdir(d, "e")
	r.chmod(b, 0o600)
	r.removexattr(a, "user.x")
	r.removexattr(a, "user.x") // ENODATA
	r.sync()
	big := r.create(root, "big")
	r.write(big, 0, r.data(int(3*r.chunk*int64(r.v.bs))+1234)) // several transactions
	r.fsync(big)
	r.write(big, 4096, r.data(9000))
	r.unlinkOpen(root, "big")
	r.mkdir(root, "m")
	m2 := r.mkdir(r.node("/m"), "m2")
	r.create(m2, "inner")
	r.mkdir(root, "empty")
	r.rename(root, "m", d, "moved", 0)              // a directory to another parent
	r.rename(d, "moved", root, "empty", 0)          // over an empty directory
	r.rename(root, "empty", d, "l", RenameExchange) // a directory and a symlink trade places
	r.rename(root, "l", root, "l", 0)               // onto itself
	r.rename(d, "l", m2, "x", 0)                    // EINVAL: into itself
	x := r.create(root, "x")
	r.write(x, 0, r.data(3000))
	r.rename(root, "x", d, "f00-"+strings.Repeat("x", 40), 0) // replaces a file: frees its blocks
	r.fsync(r.node("/d"))
	r.unlinkOpen(d, "f05-"+strings.Repeat("x", 40))
	r.sync()
	src := r.create(root, "src")
	r.write(src, 0, r.data(5*4096+100))
	r.copyRange(src, 0, b, 0, 5*4096+100) // shares whole blocks and the tail
	r.copyRange(src, 4096, x, 8192, 8192) // shares, over existing data
	r.fsync(x)
	r.write(src, 4096, r.data(10))     // src gets its own copy of a shared block
	r.copyRange(src, 100, x, 50, 9000) // unaligned: copied piece by piece
	r.punch(x, 4096, 8192)             // frees shared blocks
	r.punch(src, 10, 100)              // inside a block: zeroes
	r.fsync(src)
	r.copyRange(a, 0, src, 0, 3*4096)                 // src shares blocks with a again
	r.rangeOp(src, falloctab.CollapseRange, 0, 4096)  // moves shared blocks down
	r.rangeOp(src, falloctab.InsertRange, 4096, 8192) // and up
	r.rangeOp(src, falloctab.InsertRange, 100, 4096)  // EINVAL: not aligned
	r.rangeOp(src, falloctab.ZeroRange, 5000, 20000)  // past the end: grows
	r.rangeOp(src, falloctab.CollapseRange, 0, 1<<20) // EINVAL: past the end
	r.fsync(src)
	r.unlink(root, "src") // the blocks b shares stay
	r.sync()
}

// random runs n operations drawn from the run's random source, with an
// fsync every few and a sync now and then.
func (r *cpRun) random(n int) {
	names := []string{"a", "b", "c", "dd", "eee", "f.txt", strings.Repeat("n", 255)}
	for i := 0; i < n; i++ {
		dirs, files := r.m.all()
		dir := dirs[r.rng.Intn(len(dirs))]
		name := names[r.rng.Intn(len(names))]
		var f *mNode
		if len(files) > 0 {
			f = files[r.rng.Intn(len(files))]
		}
		regular := f != nil && f.mode&syscall.S_IFMT == syscall.S_IFREG
		switch k := r.rng.Intn(100); {
		case k < 10:
			r.create(dir, name)
		case k < 15:
			r.mkdir(dir, name)
		case k < 18:
			target := ""
			if r.rng.Intn(2) == 0 {
				target = strings.Repeat("t", 1+r.rng.Intn(2000))
			}
			r.special(dir, name, target)
		case k < 22 && f != nil:
			r.link(f, dir, name)
		case k < 27:
			r.unlink(dir, name)
		case k < 30:
			r.rmdir(dir, name)
		case k < 40:
			src := dirs[r.rng.Intn(len(dirs))]
			flags := []uint32{0, 0, RenameNoReplace, RenameExchange}[r.rng.Intn(4)]
			r.rename(src, names[r.rng.Intn(len(names))], dir, name, flags)
		case k < 60 && regular:
			off := int64(r.rng.Intn(24 << 10))
			if r.rng.Intn(10) == 0 {
				off = int64(r.rng.Intn(256 << 10)) // sparse
			}
			r.write(f, off, r.data(1+r.rng.Intn(12<<10)))
		case k < 66 && regular:
			size := r.rng.Intn(len(f.data) + 1)
			if r.rng.Intn(4) == 0 {
				size = r.rng.Intn(64 << 10)
			}
			r.truncate(f, size)
		case k < 74 && f != nil:
			x := "user." + names[r.rng.Intn(4)]
			if r.rng.Intn(3) == 0 {
				r.removexattr(f, x)
			} else {
				r.setxattr(f, x, r.data(r.rng.Intn(200)), uint32(r.rng.Intn(3)))
			}
		case k < 78 && f != nil && f.mode&syscall.S_IFMT != syscall.S_IFLNK:
			r.chmod(f, uint32(r.rng.Intn(0o7777)))
		case k < 81:
			r.unlinkOpen(dir, name)
		case k < 85 && regular:
			off := int64(r.rng.Intn(len(f.data) + 1))
			if r.rng.Intn(2) == 0 {
				off -= off % 4096
			}
			r.punch(f, off, 1+int64(r.rng.Intn(24<<10)))
		case k < 88 && regular:
			mode, off, n := randomRange(r.rng, int64(r.v.bs), int64(len(f.data)))
			r.rangeOp(f, mode, off, n)
		case k < 90 && regular:
			d := files[r.rng.Intn(len(files))]
			if d.mode&syscall.S_IFMT != syscall.S_IFREG {
				break
			}
			so, do := int64(r.rng.Intn(len(f.data)+1)), int64(r.rng.Intn(len(d.data)+1))
			if r.rng.Intn(3) != 0 {
				so, do = so/4096*4096, do/4096*4096
			}
			n := int64(r.rng.Intn(24 << 10))
			if f == d {
				n = min(n, max(0, do-so, so-do)) // no overlap
			}
			r.copyRange(f, so, d, do, n)
		}
		switch k := r.rng.Intn(100); {
		case k < 25 && f != nil && r.reachable(f):
			r.fsync(f)
		case k < 30:
			r.fsync(dir)
		case k == 99:
			r.sync()
		}
	}
}

func (r *cpRun) reachable(n *mNode) bool {
	dirs, files := r.m.all()
	for _, x := range append(dirs, files...) {
		if x == n {
			return true
		}
	}
	return false
}

// cpRecord is what a run leaves for checking, and what a failure saves
// so that it can be checked again (-crashpoints.replay).
type cpRecord struct {
	Seed   int64
	Base   []byte // the device when recording began
	Events []segment.Event
	Dumps  []string
	Descs  []string
}

// cpBounds says, for a crash right after event k, which model states are
// acceptable: lo <= p <= hi. Index k+1 (k = -1 is before any event).
type cpBounds struct {
	lo, hi, done []int
	// broken lists the Fsync and Sync calls that returned although the
	// steps they promise had not all started by the last flush before.
	broken []string
}

// bounds reads the marks. hi: the last step of every operation that
// started before the crash (the writer may put an operation on the device
// any time after it started). lo: the steps a Fsync or Sync that returned
// made durable. Its Sync event is at or before the last Sync event before
// the mark, so the requirement holds from that Sync on, which is earlier
// than the mark.
func (rec *cpRecord) bounds(t testing.TB) cpBounds {
	n := len(rec.Events)
	b := cpBounds{lo: make([]int, n+1), hi: make([]int, n+1), done: make([]int, n+1)}
	lastSync := -1
	hi, done := 0, 0
	for k, e := range rec.Events {
		if e.Kind == segment.EventSync {
			lastSync = k
		}
		if e.Kind == segment.EventMark {
			var s int
			switch {
			case strings.HasPrefix(e.Label, "start "):
				fmt.Sscan(strings.TrimPrefix(e.Label, "start "), &s)
				hi = max(hi, s)
			case strings.HasPrefix(e.Label, "end "):
				fmt.Sscan(strings.TrimPrefix(e.Label, "end "), &s)
				done = max(done, s)
			case strings.HasPrefix(e.Label, "durable "):
				fmt.Sscan(strings.TrimPrefix(e.Label, "durable "), &s)
				s = rec.settled(s)
				b.lo[lastSync+1] = max(b.lo[lastSync+1], s)
				if s > 0 && (lastSync < 0 || b.hi[lastSync+1] < s) {
					b.broken = append(b.broken, fmt.Sprintf("event %d (%s) returned, but the last flush before it (event %d) came before step %d started", k, e.Label, lastSync, s))
				}
			default:
				t.Fatalf("unknown mark %q", e.Label)
			}
		}
		b.hi[k+1], b.done[k+1] = hi, done
	}
	for i := 1; i <= n; i++ {
		b.lo[i] = max(b.lo[i], b.lo[i-1])
	}
	return b
}

// settled is the first step of those up to s that left the state step s
// left: the steps after it changed nothing (an operation that failed, a
// rename onto itself), so they need not reach the device.
func (rec *cpRecord) settled(s int) int {
	for s > 0 && s < len(rec.Dumps) && rec.Dumps[s-1] == rec.Dumps[s] {
		s--
	}
	return s
}

// crashPoints lists the events a crash may follow: before everything
// (-1), and every write and sync.
func crashPoints(ev []segment.Event) []int {
	ks := []int{-1}
	for k, e := range ev {
		if e.Kind != segment.EventMark {
			ks = append(ks, k)
		}
	}
	return ks
}

// variants lists the images checked at crash point k: plain first.
func variants(b *segment.ImageBuilder, k int, seed int64) []segment.Variant {
	vs := []segment.Variant{{}}
	if k >= 0 {
		vs = append(vs, b.TornVariants(k, cpTorn)...)
		vs = append(vs, b.ReorderVariants(k, cpReorder, seed)...)
	}
	return vs
}

// cpChecker checks crash images against a record.
type cpChecker struct {
	rec     *cpRecord
	bounds  cpBounds
	byDump  map[string][]int
	verbose bool // log recovery's decisions
}

func newChecker(t testing.TB, rec *cpRecord) *cpChecker {
	c := &cpChecker{rec: rec, bounds: rec.bounds(t), byDump: map[string][]int{}}
	for i, d := range rec.Dumps {
		c.byDump[d] = append(c.byDump[d], i)
	}
	return c
}

// check recovers img and requires an acceptable state; full runs the
// whole checker as well. It returns a description of what is wrong.
func (c *cpChecker) check(t testing.TB, img *segment.MemDevice, k int, full bool) string {
	lo, hi := c.bounds.lo[k+1], c.bounds.hi[k+1]
	o := Options{CheckpointInterval: time.Hour}
	if c.verbose {
		o.Log = func(format string, args ...any) { t.Logf("recovery: "+format, args...) }
	}
	v, err := Open(img, o)
	if err != nil {
		return fmt.Sprintf("open (recovery) failed: %v", err)
	}
	defer v.Close()
	if full {
		if err := v.Check(); err != nil {
			return fmt.Sprintf("check after recovery: %v", err)
		}
	}
	got, err := dump(v)
	if err != nil {
		return fmt.Sprintf("dump after recovery: %v", err)
	}
	for _, p := range c.byDump[got] {
		if lo <= p && p <= hi {
			return ""
		}
	}
	msg := fmt.Sprintf("recovered state is not the model after any of steps %d..%d (completed %d)", lo, hi, c.bounds.done[k+1])
	if ps := c.byDump[got]; len(ps) > 0 {
		return msg + fmt.Sprintf("; it is the model after step(s) %v", ps)
	}
	best := lo
	for p := lo; p <= hi && p < len(c.rec.Dumps); p++ {
		if len(lineDiff(got, c.rec.Dumps[p])) < len(lineDiff(got, c.rec.Dumps[best])) {
			best = p
		}
	}
	return msg + fmt.Sprintf("; nearest is after step %d (%s), recovered (-) vs model (+):\n%s", best, c.rec.Descs[best], lineDiff(got, c.rec.Dumps[best]))
}

// context describes the events around k, for a failure report.
func (c *cpChecker) context(k int) string {
	var out []string
	for i := max(0, k-12); i <= min(k+3, len(c.rec.Events)-1); i++ {
		arrow := "  "
		if i == k {
			arrow = "=>"
		}
		out = append(out, fmt.Sprintf("%s %5d %v", arrow, i, c.rec.Events[i]))
	}
	return strings.Join(out, "\n")
}

func (rec *cpRecord) save() (string, error) {
	f, err := os.CreateTemp("", fmt.Sprintf("txfs-crashpoints-%d-*.gob.gz", rec.Seed))
	if err != nil {
		return "", err
	}
	defer f.Close()
	z := gzip.NewWriter(f)
	if err := gob.NewEncoder(z).Encode(rec); err != nil {
		return "", err
	}
	if err := z.Close(); err != nil {
		return "", err
	}
	return f.Name(), f.Close()
}

func loadRecord(path string) (*cpRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	rec := new(cpRecord)
	return rec, gob.NewDecoder(z).Decode(rec)
}

// runWorkload formats a volume, runs the workload on it through a
// recording device and returns the record.
func runWorkload(t *testing.T, seed int64, ops int) *cpRecord {
	mem := segment.NewMemDevice(12 << 20)
	if err := Format(mem, FormatOptions{SegmentSize: 64 << 10}); err != nil {
		t.Fatalf("format: %v", err)
	}
	rec := &cpRecord{Seed: seed, Base: mem.Bytes()}
	dev := segment.NewRecordingDevice(mem)
	v, err := Open(dev, Options{CheckpointBytes: 128 << 10, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	// Range operations change a few block map items per transaction,
	// and a unit is sealed between every two, so that crash points fall
	// inside them.
	testRangeChunk, testHookRangeStep = 2, func(v *Volume, _ Ino) error { return v.log.Seal() }
	defer func() { testRangeChunk, testHookRangeStep = 0, nil }()
	r := &cpRun{t: t, rng: rand.New(rand.NewSource(seed)), v: v, rec: dev,
		m:       &model{root: &mNode{ino: RootIno, mode: syscall.S_IFDIR | 0o755, children: map[string]*mNode{}}},
		touched: map[*mNode]int{}, chunk: v.writeChunkBlocks()}
	r.dumps, r.descs = []string{r.m.dump()}, []string{"format"}
	r.scripted()
	r.random(ops)
	if err := v.Check(); err != nil {
		t.Fatalf("check at the end of the workload: %v", err)
	}
	s := len(r.dumps) - 1
	if err := v.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	dev.Mark(fmt.Sprintf("durable %d close", s))
	rec.Events, rec.Dumps, rec.Descs = dev.Events(), r.dumps, r.descs
	return rec
}

// TestCrashPoints runs a workload on a volume whose device records every
// write and flush, then recovers the image of every point of the run a
// power cut could hit: after every write and every flush, with the last
// write torn at sector boundaries, and with subsets of the writes since the
// last flush lost. Each recovered volume must pass the checker and hold the
// model's tree after some prefix of the operations: at least every one an
// Fsync or Sync had made durable, at most every one that had started.
func TestCrashPoints(t *testing.T) {
	if *cpReplay != "" {
		replayCrashPoint(t)
		return
	}
	seed := *cpSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	ops, target := *cpOps, *cpImages
	if testing.Short() {
		ops, target = ops/10, target/10
	}
	// Rounds of the workload, each on a fresh volume with the next seed,
	// until enough images were checked: how many crash points a run has
	// depends on timing (the writer seals a unit every 2 ms).
	start := time.Now()
	var total cpStats
	for round := int64(0); total.images < target && !t.Failed(); round++ {
		if round == 20 {
			t.Fatalf("20 rounds made only %d crash images", total.images)
		}
		total.add(checkRun(t, seed+round, ops))
	}
	t.Logf("%d rounds from seed %d: %d crash points, %d crash images recovered, checked and compared with the model, in %v",
		total.rounds, seed, total.points, total.images, time.Since(start).Round(time.Millisecond))
}

type cpStats struct {
	rounds, points, images int
}

func (s *cpStats) add(o cpStats) {
	s.rounds += o.rounds
	s.points += o.points
	s.images += o.images
}

// checkRun runs the workload once and checks every crash point of it.
func checkRun(t *testing.T, seed int64, ops int) cpStats {
	start := time.Now()
	rec := runWorkload(t, seed, ops)
	workload := time.Since(start)
	c := newChecker(t, rec)
	if final, last := c.bounds.lo[len(rec.Events)], rec.settled(len(rec.Dumps)-1); final != last {
		t.Fatalf("after Close only %d of %d steps are required durable", final, last)
	}
	for _, b := range c.bounds.broken {
		t.Errorf("seed %d: a durability promise without a flush: %s", seed, b)
	}
	points := crashPoints(rec.Events)

	// Crash points are checked in batches of consecutive events, so each
	// worker's image builder mostly moves forward.
	type failure struct {
		k, variant int
		v          segment.Variant
		msg        string
	}
	var (
		mu       sync.Mutex
		failures []failure
		images   atomic.Int64
		stop     atomic.Bool
	)
	batches := make(chan []int)
	go func() {
		defer close(batches)
		for i := 0; i < len(points) && !stop.Load(); i += 16 {
			batches <- points[i:min(i+16, len(points))]
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := segment.NewImageBuilderFromBytes(rec.Base, rec.Events)
			for batch := range batches {
				for _, k := range batch {
					for j, vr := range variants(b, k, seed) {
						if stop.Load() {
							break // and drain the batches
						}
						msg := c.check(t, b.ImageAt(k, vr), k, true)
						images.Add(1)
						if msg != "" {
							mu.Lock()
							failures = append(failures, failure{k, j, vr, msg})
							if len(failures) >= 3 {
								stop.Store(true)
							}
							mu.Unlock()
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("seed %d: %d steps, %d events, %d crash points, %d crash images; workload %v, total %v",
		seed, len(rec.Dumps)-1, len(rec.Events), len(points), images.Load(), workload.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if len(failures) > 0 {
		sort.Slice(failures, func(i, j int) bool {
			if failures[i].k != failures[j].k {
				return failures[i].k < failures[j].k
			}
			return failures[i].variant < failures[j].variant
		})
		path, err := rec.save()
		if err != nil {
			path = fmt.Sprintf("(not saved: %v)", err)
		}
		for _, f := range failures {
			what := "before any event"
			if f.k >= 0 {
				what = rec.Events[f.k].String()
			}
			t.Errorf("crash after event %d (%s), variant %d (%v), seed %d: %s\nevents:\n%s\nreproduce: go test -run 'TestCrashPoints$' -crashpoints.replay=%s -crashpoints.event=%d -crashpoints.variant=%d",
				f.k, what, f.variant, f.v, seed, f.msg, c.context(f.k), path, f.k, f.variant)
		}
	}
	return cpStats{rounds: 1, points: len(points), images: int(images.Load())}
}

// replayCrashPoint checks one crash point of a saved failure again, with
// recovery's decisions logged.
func replayCrashPoint(t *testing.T) {
	rec, err := loadRecord(*cpReplay)
	if err != nil {
		t.Fatal(err)
	}
	k := *cpEvent
	if k < -1 || k >= len(rec.Events) {
		t.Fatalf("-crashpoints.event=%d is outside -1..%d", k, len(rec.Events)-1)
	}
	if k >= 0 && rec.Events[k].Kind == segment.EventMark {
		t.Fatalf("event %d is a mark, not a crash point", k)
	}
	c := newChecker(t, rec)
	c.verbose = true
	b := segment.NewImageBuilderFromBytes(rec.Base, rec.Events)
	lo, hi := c.bounds.lo[k+1], c.bounds.hi[k+1]
	var steps []string
	for s := max(0, min(lo, hi)-4); s <= min(max(lo, hi)+1, len(rec.Descs)-1); s++ {
		steps = append(steps, fmt.Sprintf("%5d %s", s, rec.Descs[s]))
	}
	t.Logf("seed %d, crash after event %d (pending writes %v); steps %d..%d acceptable\nevents:\n%s\nsteps:\n%s",
		rec.Seed, k, b.Pending(k), lo, hi, c.context(k), strings.Join(steps, "\n"))
	for j, vr := range variants(b, k, rec.Seed) {
		if *cpVariant >= 0 && j != *cpVariant {
			continue
		}
		if msg := c.check(t, b.ImageAt(k, vr), k, true); msg != "" {
			t.Errorf("variant %d (%v): %s", j, vr, msg)
		} else {
			t.Logf("variant %d (%v): ok", j, vr)
		}
	}
}
