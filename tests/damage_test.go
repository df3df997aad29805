package tests

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/txfs/txfs/segment"
)

// Damage to a real image, as the binaries meet it: a block of the log
// that was synced and is now unreadable, and single flipped bits in the
// structures that are written twice.

// logUnit is one unit of an image's log, as its header says.
type logUnit struct {
	seq  uint64
	addr uint64
	kind uint16
}

// logFromCheckpoint follows an image's log from the checkpoint unit its
// current superblock names, by the unit headers (magic, volume and
// sequence number), up to the first place where no unit continues it.
func logFromCheckpoint(t *testing.T, img string) []logUnit {
	t.Helper()
	dev, err := segment.OpenFile(img, true)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	sb, _, err := segment.ReadSuperblock(dev)
	if err != nil {
		t.Fatalf("%s: %v", img, err)
	}
	g := sb.Geometry
	addr, seq := sb.Checkpoint.Addr, sb.Checkpoint.Seq
	hdr := make([]byte, segment.UnitHeaderSize)
	var units []logUnit
	for {
		if _, err := dev.ReadAt(hdr, int64(addr)); err != nil {
			break
		}
		h, err := segment.ParseUnitHeader(hdr, g.SegmentSize)
		if err != nil || h.Seq != seq || h.VolumeID != sb.VolumeID() {
			break
		}
		units = append(units, logUnit{seq: seq, addr: addr, kind: h.Kind})
		s, ok := g.SegmentOf(addr)
		if !ok {
			break
		}
		// A unit that reaches its segment's end goes on at the start of
		// the segment it names as next, and so does the log.
		end := uint64(g.SegmentOffset(s + 1))
		addr += uint64(h.Length)
		if addr >= end {
			if h.NextSeg >= g.Segments {
				break
			}
			addr = uint64(g.SegmentOffset(h.NextSeg)) + addr - end
		}
		seq++
	}
	if len(units) == 0 {
		t.Fatalf("%s: no unit at the checkpoint the superblock names (%+v)", img, sb.Checkpoint)
	}
	return units
}

// fileContent is what file i of a damage test holds.
func fileContent(i int) []byte {
	b := make([]byte, 6000+i*500)
	randomBytes(b, uint64(1000+i))
	return b
}

// checkFiles checks files f00 .. f<n-1> in dir: want(i) says whether file
// i must be there whole ("whole"), must not be there ("absent"), or may
// be absent or hold a prefix of its content ("prefix").
func checkFiles(t *testing.T, dir string, n int, want func(i int) string) {
	t.Helper()
	for i := range n {
		got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)))
		content := fileContent(i)
		switch w := want(i); {
		case w == "whole" && (err != nil || !bytes.Equal(got, content)):
			t.Errorf("f%02d must be there whole (%d bytes): %d bytes, %v: %s", i, len(content), len(got), err, firstDiff(got, content))
		case w == "absent" && !errors.Is(err, fs.ErrNotExist):
			t.Errorf("f%02d must not be there: %d bytes, %v", i, len(got), err)
		case w == "prefix" && err == nil && (len(got) > len(content) || !bytes.Equal(got, content[:len(got)])):
			t.Errorf("f%02d may hold a prefix of its content: %d bytes, %s", i, len(got), firstDiff(got, content))
		case w == "prefix" && err != nil && !errors.Is(err, fs.ErrNotExist):
			t.Errorf("f%02d: %v", i, err)
		}
	}
}

// A block of the log that was synced and is zeroed afterwards (a bad
// block) is damage, not the end of the log: txfs mount refuses to mount
// read-write and says what is lost, -o ro shows the files from before the
// damage, fsck.txfs exits 4 naming it, and after fsck.txfs --repair the
// image mounts read-write and checks clean.
func TestDamagedLogOnImage(t *testing.T) {
	m := newSizedMount(t, "64M")
	// Each file is created, written and fsynced on its own, right after
	// the mount: no checkpoint is due (30 s, 32 MiB) before the kill.
	const n = 20
	var ends [n]uint64 // the last unit of the log once file i was fsynced
	for i := range n {
		f, err := os.OpenFile(filepath.Join(m.dir, fmt.Sprintf("f%02d", i)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(fileContent(i)); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		units := logFromCheckpoint(t, m.img)
		ends[i] = units[len(units)-1].seq
	}
	m.killOnly()
	m.detachDead()

	units := logFromCheckpoint(t, m.img)
	// The unit that file bad's fsync made durable: it holds (the end of)
	// that file's data, files before it are in units before it, files
	// after it in units after it.
	const bad = n / 2
	var hit *logUnit
	for i := range units {
		if units[i].seq == ends[bad] {
			hit = &units[i]
		}
	}
	if hit == nil || units[0].seq >= ends[0] || ends[bad-1] >= ends[bad] || units[len(units)-1].seq < ends[n-1] {
		t.Fatalf("the log from the checkpoint (units %d to %d) does not hold the files' units as written (last units %v): a checkpoint was taken meanwhile?",
			units[0].seq, units[len(units)-1].seq, ends)
	}
	img, err := os.OpenFile(m.img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img.WriteAt(make([]byte, 4096), int64(hit.addr)); err != nil {
		t.Fatal(err)
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("log: units %d to %d after the checkpoint; unit %d (file f%02d) zeroed at byte %d", units[0].seq, units[len(units)-1].seq, hit.seq, bad, hit.addr)

	// Read-write: refused at once, naming the lost unit and what follows
	// it, and nothing is mounted.
	refused(t, m.dir, 1, []string{"the log is damaged", fmt.Sprintf("unit %d at byte %d cannot be read", hit.seq, hit.addr),
		"follow", "mount read-only", "fsck.txfs --repair"}, nil, "mount", m.img, m.dir)
	if on := mountinfoOn(t, m.dir); len(on) > 0 {
		t.Fatalf("the refused mount left mounts on %s:\n%s", m.dir, strings.Join(on, "\n"))
	}

	// Read-only: the files from before the damage.
	m.opts = []string{"ro"}
	m.start()
	before := func(i int) string {
		switch {
		case i < bad:
			return "whole"
		case i == bad:
			return "prefix"
		}
		return "absent"
	}
	checkFiles(t, m.dir, n, before)
	if err := os.WriteFile(filepath.Join(m.dir, "new"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("creating a file on the read-only mount: %v, want EROFS", err)
	}
	if !m.unmount() {
		t.FailNow()
	}
	m.d = nil

	code, out := runTimeout(t, toolTimeout, bin("fsck.txfs"), m.img)
	if code != 4 || !strings.Contains(out, "the log is damaged") || !strings.Contains(out, fmt.Sprintf("unit %d ", hit.seq)) {
		t.Errorf("fsck.txfs of the damaged image: exit %d (want 4, naming unit %d); output:\n%s", code, hit.seq, out)
	}
	code, out = runTimeout(t, toolTimeout, bin("fsck.txfs"), "--repair", m.img)
	t.Logf("fsck.txfs --repair: exit %d\n%s", code, out)
	if code != 1 {
		t.Fatalf("fsck.txfs --repair of the damaged image: exit %d, want 1", code)
	}
	salvaged := strings.Contains(out, "salvaged units")
	if !salvaged && !strings.Contains(out, "the log is cut at the damage") {
		t.Errorf("fsck.txfs --repair says neither that it salvaged the units after the damage nor that it cut the log")
	}

	// Read-write again; files after the damage are there whole if
	// their units were salvaged, else gone.
	m.opts = nil
	m.start()
	checkFiles(t, m.dir, n, func(i int) string {
		if i > bad && salvaged {
			return "whole"
		}
		return before(i)
	})
	if err := os.WriteFile(filepath.Join(m.dir, "new"), []byte("after the repair\n"), 0o644); err != nil {
		t.Errorf("writing after the repair: %v", err)
	}
	m.stop() // fsck.txfs: clean
}

// One flipped bit in either copy of the current superblock, or in the
// current checkpoint's record unit, of an unmounted image: fsck.txfs
// passes and warns of the damaged copy, and the image mounts read-write
// with every file.
func TestSingleBitFlipOnImage(t *testing.T) {
	m := newSizedMount(t, "64M")
	const n = 12
	if err := os.Mkdir(filepath.Join(m.dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		dir := m.dir
		if i%3 == 0 {
			dir = filepath.Join(m.dir, "sub")
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), fileContent(i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m.stop()
	checkAll := func(t *testing.T, root string) {
		t.Helper()
		for i := range n {
			dir := root
			if i%3 == 0 {
				dir = filepath.Join(root, "sub")
			}
			got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)))
			if want := fileContent(i); err != nil || !bytes.Equal(got, want) {
				t.Errorf("f%02d: %d bytes of %d, %v: %s", i, len(got), len(want), err, firstDiff(got, want))
			}
		}
	}

	dev, err := segment.OpenFile(m.img, true)
	if err != nil {
		t.Fatal(err)
	}
	sb, slot, err := segment.ReadSuperblock(dev)
	dev.Close()
	if err != nil {
		t.Fatal(err)
	}
	sbAt := int64(slot) * int64(sb.Geometry.BlockSize)
	ck := sb.Checkpoint
	// Each flip must be reported as a warning naming what is damaged.
	type flip struct {
		what, warns string
		off         int64
	}
	sbWarn := fmt.Sprintf("warning: superblock slot %d", slot)
	ckWarn := fmt.Sprintf("warning: checkpoint unit %d at byte %d is damaged", ck.Seq, ck.Addr)
	flips := []flip{
		{"superblock copy 1: magic", sbWarn, sbAt},
		{"superblock copy 1: generation", sbWarn, sbAt + 96},
		{"superblock copy 1: checkpoint address", sbWarn, sbAt + 104},
		{"superblock copy 1: checksum", sbWarn, sbAt + 250},
		{"superblock copy 2: generation", sbWarn, sbAt + segment.CopyOffset + 96},
		{"superblock copy 2: checkpoint checksum", sbWarn, sbAt + segment.CopyOffset + 130},
		{"checkpoint unit: magic", ckWarn, int64(ck.Addr)},
		{"checkpoint unit: sequence number", ckWarn, int64(ck.Addr) + 16},
		{"checkpoint unit: checksum", ckWarn, int64(ck.Addr) + 56},
		{"checkpoint unit: record", ckWarn, int64(ck.Addr) + segment.UnitHeaderSize + 20},
		{"checkpoint unit: last byte", ckWarn, int64(ck.Addr) + int64(ck.Len) - 1},
	}
	rng := rand.New(rand.NewPCG(6, 0))
	for i := range 2 {
		flips = append(flips,
			flip{fmt.Sprintf("superblock copy 1: random byte %d", i), sbWarn, sbAt + rng.Int64N(segment.SuperSize)},
			flip{fmt.Sprintf("superblock copy 2: random byte %d", i), sbWarn, sbAt + segment.CopyOffset + rng.Int64N(segment.SuperSize)},
			flip{fmt.Sprintf("checkpoint unit: random byte %d", i), ckWarn, int64(ck.Addr) + rng.Int64N(int64(ck.Len))})
	}
	pristine := m.img
	for i, f := range flips {
		bit := byte(1) << (i % 8)
		t.Run(strings.NewReplacer(" ", "_", ":", "").Replace(f.what), func(t *testing.T) {
			base := t.TempDir()
			img := filepath.Join(base, "flipped.img")
			if out, err := exec.Command("cp", "--sparse=always", pristine, img).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v\n%s", err, out)
			}
			flipBit(t, img, f.off, bit)
			code, out := runTimeout(t, toolTimeout, bin("fsck.txfs"), img)
			if code != 0 || !strings.Contains(out, f.warns) {
				t.Errorf("fsck.txfs with bit %#02x of byte %d flipped (%s): exit %d, want 0 with %q; output:\n%s", bit, f.off, f.what, code, f.warns, out)
			}
			dir := filepath.Join(base, "mnt")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			fm := mountExisting(t, img, dir)
			checkAll(t, dir)
			if err := os.WriteFile(filepath.Join(dir, "new"), []byte("read-write\n"), 0o644); err != nil {
				t.Errorf("writing on the mount: %v", err)
			}
			fm.stop()
		})
	}
}

// flipBit flips the bits of mask in byte off of file path.
func flipBit(t *testing.T, path string, off int64, mask byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= mask
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
