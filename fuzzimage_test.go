package txfs

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/txfs/txfs/segment"
)

// The structure-aware fuzz targets start from small images with all the
// structures the format has: a checkpoint whose metadata tree has several
// nodes and whose DAT has an interior block, then operations in the log
// after it (Open replays them), and files left open and unlinked (orphans).
// There are two, and the first byte of a fuzz input picks one: the image
// of format version 1 made by an older txfs (which a read-write Open
// upgrades), and one of version 2 made by buildFuzzBase, whose log after
// the checkpoint goes on into a second segment through a unit that spans
// both.

const (
	fuzzSegments = 16
	fuzzSegSize  = 64 << 10
	fuzzDevSize  = 2*4096 + fuzzSegments*fuzzSegSize
)

// fuzzBaseVersions are the format versions of the base images.
var fuzzBaseVersions = []int{1, 2}

// fuzzBasePath holds the base image of a format version, gzipped. It is
// kept rather than made by each test process because group commit packs
// the operations into units by timing: a fuzz input must meet the same
// image every time. go test -run TestFuzzImageModel -fixtures . makes the
// version 2 image again; the code that made version 1 is gone.
func fuzzBasePath(version int) string {
	return filepath.Join("testdata", fmt.Sprintf("fuzz-base-v%d.img.gz", version))
}

var fuzzBases [3]struct {
	once sync.Once
	img  []byte
	err  error
}

// fuzzBaseImage returns the base image of a format version.
func fuzzBaseImage(tb testing.TB, version int) []byte {
	b := &fuzzBases[version]
	b.once.Do(func() {
		f, err := os.Open(fuzzBasePath(version))
		if err != nil {
			b.err = err
			return
		}
		defer f.Close()
		z, err := gzip.NewReader(f)
		if err != nil {
			b.err = err
			return
		}
		b.img, b.err = io.ReadAll(z)
	})
	if b.err != nil {
		tb.Fatalf("reading the base image: %v", b.err)
	}
	return b.img
}

// buildFuzzBase makes the version 2 base image.
func buildFuzzBase() ([]byte, error) {
	dev := segment.NewMemDevice(fuzzDevSize)
	if err := Format(dev, FormatOptions{SegmentSize: fuzzSegSize}); err != nil {
		return nil, err
	}
	// Checkpoints only when asked: the log after the checkpoint is the
	// operations below, one unit each.
	v, err := Open(dev, Options{NoAtime: true, CheckpointBytes: 1 << 40, CheckpointInterval: time.Hour})
	if err != nil {
		return nil, err
	}
	defer v.Close()
	var firstErr error
	must := func(a Attr, err error) Attr {
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return a
	}
	check := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	block := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("block %04d ", i)), 4096/11+1)[:4096] }
	// In the checkpoint: a directory of 40 files (the tree needs several
	// leaves), a file of 150 blocks (the DAT needs two leaves and an
	// interior block), a symlink, an attribute, a hard link, a fifo.
	d := must(v.Mkdir(RootIno, "d", 0o755, Owner{Uid: 1000, Gid: 1000}))
	var files []Attr
	for i := 0; i < 40; i++ {
		f := must(v.Create(d.Ino, fmt.Sprintf("file%02d", i), 0o644, Owner{Uid: 1000}))
		if i%8 == 0 {
			_, err := v.Write(f.Ino, block(i)[:100+i], 0)
			check(err)
		}
		files = append(files, f)
	}
	big := must(v.Create(RootIno, "big", 0o600, Owner{}))
	for i := 0; i < 150; i++ {
		_, err := v.Write(big.Ino, block(i), int64(i)*4096)
		check(err)
	}
	must(v.Symlink(d.Ino, "link", "../big", Owner{}))
	check(v.SetXattr(big.Ino, "user.note", []byte("a note"), 0))
	must(v.Link(files[1].Ino, RootIno, "hard"))
	must(v.Mknod(RootIno, "fifo", syscall.S_IFIFO|0o644, 0, Owner{}))
	check(v.Sync())
	// In the log after the checkpoint, one operation per unit.
	sync := func(ino Ino) { check(v.Fsync(ino)) }
	w := must(v.Create(RootIno, "new", 0o644, Owner{}))
	_, err = v.Write(w.Ino, append(block(900), block(901)...), 0)
	check(err)
	sync(w.Ino)
	_, err = v.Write(big.Ino, []byte("overwritten"), 10*4096+7)
	check(err)
	sync(big.Ino)
	_, err = v.CopyRange(big.Ino, 0, w.Ino, 8192, 3*4096)
	check(err)
	sync(w.Ino)
	check(v.PunchHole(big.Ino, 20*4096, 2*4096))
	sync(big.Ino)
	must(v.SetAttr(big.Ino, &SetAttrIn{Valid: SetSize, Size: 140*4096 + 5}))
	sync(big.Ino)
	// Blocks LZ4 cannot shrink bring the log head near the end of its
	// segment, then one more than fit there: that unit continues in the
	// next segment, after a padding entry.
	room := func() int {
		v.mu.Lock()
		defer v.mu.Unlock()
		return int(v.log.SegEnd(v.log.CurSeg) - v.log.Cur.Addr)
	}
	for at := int64(100); room() > 24<<10; at += 8 {
		_, err := v.Write(big.Ino, incompressible(min(8, room()/4096-4)*4096), at*4096)
		check(err)
		sync(big.Ino)
	}
	_, err = v.Write(w.Ino, incompressible((room()/4096+1)*4096), 16*4096)
	check(err)
	sync(w.Ino)
	check(v.Unlink(d.Ino, "file05"))
	sync(d.Ino)
	check(v.Rename(d.Ino, "file06", RootIno, "moved", 0))
	sync(RootIno)
	sub := must(v.Mkdir(d.Ino, "sub", 0o700, Owner{}))
	sync(sub.Ino)
	check(v.SetXattr(w.Ino, "user.k", []byte("v"), 0))
	sync(w.Ino)
	must(v.Symlink(sub.Ino, "s", "a target", Owner{}))
	sync(sub.Ino)
	// Open and unlinked: orphans that Open frees.
	o := files[7]
	check(v.OpenFile(o.Ino))
	check(v.Unlink(d.Ino, "file07"))
	sync(d.Ino)
	tmp := must(v.Tmpfile(RootIno, 0o600, Owner{}))
	_, err = v.Write(tmp.Ino, block(7), 0)
	check(err)
	sync(tmp.Ino)
	if firstErr != nil {
		return nil, firstErr
	}
	// The image as a power cut now leaves it: everything above was synced.
	return dev.Crash(segment.CrashOptions{}, nil).Bytes(), nil
}

// TestFuzzImageModel: decoding each base image and sealing it unchanged
// gives the same bytes, the image has the structures the fuzz targets
// change, and it recovers, replays and checks clean. With -fixtures it
// makes the version 2 base image again first.
func TestFuzzImageModel(t *testing.T) {
	if *writeFixtures {
		img, err := buildFuzzBase()
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		z, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		z.Write(img)
		z.Close()
		if err := os.WriteFile(fuzzBasePath(2), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		b := &fuzzBases[2]
		b.once.Do(func() {})
		b.img = img
	}
	for _, version := range fuzzBaseVersions {
		t.Run(fmt.Sprint("version ", version), func(t *testing.T) { testFuzzBase(t, version) })
	}
}

func testFuzzBase(t *testing.T, version int) {
	base := fuzzBaseImage(t, version)
	m, err := decodeImage(base)
	if err != nil {
		t.Fatal(err)
	}
	after := m.unitsAfterCheckpoint()
	if n := len(after); n < 10 {
		t.Fatalf("%d units after the checkpoint", n)
	}
	if len(m.nodes) < 4 || m.nodes[0].raw[2] == 0 {
		t.Fatalf("tree of %d nodes", len(m.nodes))
	}
	if m.ckpts[0].rec.DAT.Depth == 0 {
		t.Fatal("the DAT has no interior block")
	}
	if version >= 2 {
		testFuzzBaseV2(t, m)
	}
	out, err := m.seal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, base) {
		for i := range out {
			if out[i] != base[i] {
				t.Fatalf("sealing the unchanged model changed byte %d", i)
			}
		}
	}
	dev := segment.NewMemDevice(int64(len(base)))
	dev.WriteAt(base, 0)
	var replayed int
	v, err := Open(dev, Options{ReadOnly: true, Log: func(f string, a ...any) {
		if bytes.Contains([]byte(fmt.Sprintf(f, a...)), []byte("replayed")) {
			replayed++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	rep, err := v.CheckReport()
	if err != nil || rep.Err() != nil {
		t.Fatalf("check: %v %v", err, rep.Err())
	}
	if rep.Orphans != 2 || replayed < 10 {
		t.Fatalf("%d orphans, %d units replayed", rep.Orphans, replayed)
	}
}

// testFuzzBaseV2 checks that the version 2 base has what version 2 adds:
// a unit after the checkpoint that spans two segments with a padding
// entry, so that the log after it lies in two; durable marks; the copy of
// the checkpoint record; both copies of both superblock slots, in use.
func testFuzzBaseV2(t *testing.T, m *imageModel) {
	segs := map[uint32]bool{}
	spans, pads, marks := 0, 0, 0
	for _, u := range m.unitsAfterCheckpoint() {
		for _, p := range u.place.Pieces(u.hdr.Length) {
			s, _ := m.geo.SegmentOf(p.Addr)
			segs[s] = true
		}
		if u.spans() {
			spans++
		}
		for _, b := range u.blocks {
			if b.sum.Kind == segment.SumPad {
				pads++
			}
		}
		if _, ok := u.durableMark(); ok {
			marks++
		}
	}
	if spans == 0 || pads == 0 || len(segs) < 2 {
		t.Fatalf("the log after the checkpoint has %d units that span two segments, %d padding entries, lies in %d segments", spans, pads, len(segs))
	}
	if marks < 10 {
		t.Fatalf("%d units after the checkpoint carry a durable mark", marks)
	}
	c := m.ckpts[0]
	if c.copy == nil || c.rec.Durable == 0 {
		t.Fatalf("the checkpoint has no copy (%v) or no durable mark (%d)", c.copy != nil, c.rec.Durable)
	}
	for slot, copies := range m.supers {
		for i, sb := range copies {
			if sb == nil || sb.Version != 2 || sb.Clean {
				t.Fatalf("superblock slot %d copy %d: %+v", slot, i, sb)
			}
		}
	}
}

// mutateImage applies the changes the fuzzer's bytes choose (one to three,
// each made by mutate) to the base image the first byte chooses, and
// seals it; false when the
// changes do not fit.
func mutateImage(tb testing.TB, data []byte, mutate func(*fuzzInput, *imageModel, *fuzzPools)) ([]byte, bool) {
	in := &fuzzInput{b: data}
	m, err := decodeImage(fuzzBaseImage(tb, fuzzBaseVersions[in.intn(len(fuzzBaseVersions))]))
	if err != nil {
		tb.Fatal(err)
	}
	p := m.pools()
	for n := 1 + int(in.byte())%3; n > 0; n-- {
		mutate(in, m, p)
	}
	img, err := m.seal()
	if err != nil {
		return nil, false
	}
	return img, true
}

// fuzzTimeout is how long one image may take before the run counts as hung.
const fuzzTimeout = 60 * time.Second

// exerciseImage is the property the structure-aware fuzz targets check on
// an image that is valid on the outside and wrong inside:
//   - Open either fails with an error or opens; nothing panics or hangs;
//   - the checker runs; every directory, file, symlink and attribute can be
//     read or fails with an error, and when the checker found nothing wrong
//     none fails;
//   - when a read-write Open says the log is damaged, a read-only Open
//     succeeds and its checker reports the damage; dropping the damage
//     (TruncateDamage) leaves what the read-only Open showed, and salvaging
//     it (SalvageDamage) opens or fails with an error; after either, the
//     log never again counts as damaged: not on the next Open, nor after a
//     power cut that follows more writes;
//   - a read-write Open, Repair and RepairCounts run without panic and
//     leave a volume whose remaining problems the checker lists; when it
//     lists none and Close succeeds, the volume opens again and checks
//     clean, and a volume that checked clean before stays clean.
func exerciseImage(t *testing.T, img []byte) {
	timer := time.AfterFunc(fuzzTimeout, func() {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		panic(fmt.Sprintf("image not done after %v:\n%s", fuzzTimeout, buf[:n]))
	})
	defer timer.Stop()
	dev := segment.NewMemDevice(int64(len(img)))
	dev.WriteAt(img, 0)
	dev.Sync()
	roOpened, cleanBefore, onlyDamage := false, false, false
	var before string // what the read-only Open shows
	if v, err := Open(dev, Options{ReadOnly: true}); err == nil {
		roOpened = true
		rep, err := v.CheckReport()
		if err != nil {
			t.Fatalf("check of a read-only volume: %v", err)
		}
		cleanBefore = rep.Err() == nil
		onlyDamage = v.damage != nil && len(rep.Problems) == 1
		var errs []error
		if errs, before = readEverything(v); cleanBefore && len(errs) > 0 {
			t.Errorf("the checker found nothing, but reading fails: %v", errs)
		}
		v.Close()
	}
	v, err := Open(dev, Options{NoAtime: true})
	if errors.Is(err, ErrLogDamaged) {
		if !roOpened || cleanBefore {
			t.Errorf("Open says the log is damaged (%v), but a read-only Open fails (%v) or its checker finds nothing (%v)",
				err, !roOpened, cleanBefore)
		}
		for _, policy := range []LogPolicy{TruncateDamage, SalvageDamage} {
			d := segment.NewMemDevice(int64(len(img)))
			d.WriteAt(dev.Bytes(), 0)
			d.Sync()
			v, err := Open(d, Options{NoAtime: true, LogDamage: policy})
			if err != nil {
				if policy == TruncateDamage && onlyDamage && !errors.Is(err, ErrNoSpace) {
					t.Errorf("dropping the only damage fails: %v", err)
				}
				continue
			}
			if _, after := readEverything(v); policy == TruncateDamage && onlyDamage && after != before {
				t.Errorf("dropping the damage does not leave what the read-only Open showed:\n%s\nshowed:\n%s", after, before)
			}
			exerciseWritable(t, d, v, policy == TruncateDamage && onlyDamage, true)
		}
		return
	}
	if err != nil {
		// A full volume may lack the room Open needs to free orphans:
		// changing the geometry can make one.
		if cleanBefore && !errors.Is(err, ErrNoSpace) {
			t.Errorf("a volume that checked clean read-only does not open read-write: %v", err)
		}
		return
	}
	exerciseWritable(t, dev, v, cleanBefore, false)
}

// exerciseWritable repairs the volume v opened read-write on dev, and
// checks it as it is then and after it is closed and opened again;
// cleanBefore says it checked clean, afterDamage that Open dropped or
// salvaged damage in its log.
func exerciseWritable(t *testing.T, dev *segment.MemDevice, v *Volume, cleanBefore, afterDamage bool) {
	_, rerr := v.Repair()
	if rerr == nil {
		_, rerr = v.RepairCounts()
	}
	rep, err := v.CheckReport()
	if err != nil {
		t.Fatalf("check after repair: %v", err)
	}
	cleanAfter := rep.Err() == nil
	if errs, _ := readEverything(v); cleanAfter && len(errs) > 0 {
		t.Errorf("the checker found nothing after repair, but reading fails: %v", errs)
	}
	if cleanBefore && !cleanAfter {
		t.Errorf("repair of a clean volume left problems: %v", rep.Problems)
	}
	cerr := v.Close()
	if !cleanAfter || rerr != nil || cerr != nil {
		if cleanBefore {
			t.Errorf("repair of a clean volume failed: %v, close: %v", rerr, cerr)
		}
		return
	}
	v, err = Open(dev, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("the repaired volume closed cleanly and does not open again: %v", err)
	}
	err = v.Check()
	v.Close()
	if err != nil {
		t.Fatalf("the repaired volume checked clean and does not after reopening: %v", err)
	}
	if !afterDamage {
		return
	}
	// Units left beyond the damage prove nothing any more: not on this
	// Open, nor after a power cut that follows a synced write.
	v, err = Open(dev, Options{NoAtime: true, CheckpointBytes: 1 << 40, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatalf("the log counts as damaged again after the damage was dealt with: %v", err)
	}
	defer v.Close()
	a, err := v.Create(RootIno, "after the damage", 0o644, Owner{})
	if err == nil {
		_, err = v.Write(a.Ino, []byte("synced"), 0)
	}
	if err == nil {
		err = v.Fsync(a.Ino)
	}
	if err != nil {
		return // no room, for instance
	}
	if v, err := Open(dev.Crash(segment.CrashOptions{}, nil), Options{NoAtime: true}); err != nil {
		t.Errorf("after a power cut that follows the damage dealt with and a synced write, Open fails: %v", err)
	} else {
		if err := v.Check(); err != nil {
			t.Errorf("after a power cut that follows the damage dealt with and a synced write: %v", err)
		}
		v.Close()
	}
}

// readEverything reads all the namespace can reach, and returns the errors
// and a digest of what it read: attributes but the access time and block
// count, attributes, entries, targets and the checksums of the data read.
func readEverything(v *Volume) ([]error, string) {
	var errs []error
	var digest strings.Builder
	note := func(what string, ino Ino, err error) {
		if err != nil && len(errs) < 10 {
			errs = append(errs, fmt.Errorf("%s %d: %w", what, ino, err))
		}
	}
	seen := map[Ino]bool{}
	buf := make([]byte, 256<<10)
	var visit func(ino Ino, depth int)
	visit = func(ino Ino, depth int) {
		if seen[ino] || len(seen) > 1000 || depth > 64 {
			return
		}
		seen[ino] = true
		a, err := v.GetAttr(ino)
		note("getattr", ino, err)
		if err != nil {
			return
		}
		fmt.Fprintf(&digest, "%d: %#o n%d %d:%d size %d rdev %d m%v c%v flags %#x\n",
			ino, a.Mode, a.Nlink, a.Uid, a.Gid, a.Size, a.Rdev, a.Mtime, a.Ctime, a.Flags)
		names, err := v.ListXattr(ino)
		note("listxattr", ino, err)
		for _, n := range names {
			val, err := v.GetXattr(ino, n)
			note("getxattr "+n, ino, err)
			fmt.Fprintf(&digest, "  %q=%q\n", n, val)
		}
		switch a.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			n, err := v.Read(ino, buf, 0)
			note("read", ino, err)
			fmt.Fprintf(&digest, "  %x\n", segment.Checksum(buf[:n]))
			if a.Size > uint64(len(buf)) {
				n, err := v.Read(ino, buf[:4096], int64(min(a.Size, MaxFileSize)-1))
				note("read at the end of", ino, err)
				fmt.Fprintf(&digest, "  %x\n", segment.Checksum(buf[:n]))
			}
		case syscall.S_IFLNK:
			target, err := v.Readlink(ino)
			note("readlink", ino, err)
			fmt.Fprintf(&digest, "  -> %q\n", target)
		case syscall.S_IFDIR:
			var ents []DirEntry
			err := v.Readdir(ino, 0, func(e DirEntry) bool {
				ents = append(ents, e)
				return len(ents) < 1000
			})
			note("readdir", ino, err)
			for _, e := range ents {
				_, err := v.Lookup(ino, e.Name)
				note("lookup "+e.Name+" in", ino, err)
				fmt.Fprintf(&digest, "  %q %d\n", e.Name, e.Ino)
				visit(e.Ino, depth+1)
			}
		}
	}
	visit(RootIno, 0)
	return errs, digest.String()
}

// FuzzReplay changes the operations units after the checkpoint (records,
// summary entries, blocks, headers) and reseals them, so Open replays
// records that are whole and chained but wrong.
func FuzzReplay(f *testing.F) {
	fuzzStructure(f, func(in *fuzzInput, m *imageModel, p *fuzzPools) { in.mutateReplay(m, p) })
}

// FuzzTreeNodes changes nodes of the checkpoint's metadata tree (keys,
// values, children, levels, counts) and reseals them up to the superblock.
func FuzzTreeNodes(f *testing.F) {
	fuzzStructure(f, func(in *fuzzInput, m *imageModel, p *fuzzPools) { in.mutateNode(m, p) })
}

// FuzzTables changes DAT and usage table entries, table pointers,
// checkpoint records and superblock fields, and reseals them.
func FuzzTables(f *testing.F) {
	fuzzStructure(f, func(in *fuzzInput, m *imageModel, p *fuzzPools) { in.mutateTables(m, p) })
}

func fuzzStructure(f *testing.F, mutate func(*fuzzInput, *imageModel, *fuzzPools)) {
	for _, version := range fuzzBaseVersions {
		f.Add([]byte{byte(version - 1)})
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, ok := mutateImage(t, data, mutate)
		if !ok {
			return
		}
		exerciseImage(t, img)
	})
}
