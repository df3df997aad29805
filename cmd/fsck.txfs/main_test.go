package main

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/segment"
)

func code(err error) int {
	if err == nil {
		return exitClean
	}
	var e exitError
	if errors.As(err, &e) {
		return e.code
	}
	return -1
}

func TestFsckExitCodes(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "a.img")
	dev, err := segment.CreateFile(img, 32<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := txfs.Format(dev, txfs.FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	v, _ := txfs.Open(dev, txfs.Options{})
	a, _ := v.Create(txfs.RootIno, "f", 0o644, txfs.Owner{})
	v.Write(a.Ino, make([]byte, 100000), 0)
	v.Close()
	dev.Close()
	if c := code(Main([]string{"fsck.txfs", img})); c != exitClean {
		t.Fatalf("clean image: exit %d", c)
	}
	if c := code(Main([]string{"fsck.txfs", "--json", img})); c != exitClean {
		t.Fatalf("clean image, json: exit %d", c)
	}
	if c := code(Main([]string{"fsck.txfs", filepath.Join(dir, "missing")})); c != exitOperational {
		t.Fatalf("missing image: exit %d", c)
	}
	if c := code(Main([]string{"fsck.txfs"})); c != exitUsage {
		t.Fatalf("no argument: exit %d", c)
	}
	// Zero both superblocks: the damage is reported, exit 4.
	f, _ := os.OpenFile(img, os.O_RDWR, 0)
	f.WriteAt(make([]byte, 8192), 0)
	f.Close()
	if c := code(Main([]string{"fsck.txfs", img})); c != exitUncorrected {
		t.Fatalf("zeroed superblocks: exit %d", c)
	}
}

// TestFixtures runs fsck on the images in tests/testdata: clean ones exit
// 0, damaged ones exit 4 and name the damage.
func TestFixtures(t *testing.T) {
	for _, c := range []struct {
		image string
		code  int
		says  string
	}{
		{"v1-clean.img", exitClean, "clean"},
		{"v1-log.img", exitClean, "clean"},
		{"zeroed-superblock-1.img", exitClean, "warning: superblock slot 1 is damaged"},
		{"damaged-data.img", exitUncorrected, "checksum mismatch"},
		{"damaged-node.img", exitUncorrected, "checksum mismatch"},
		{"damaged-checkpoint.img", exitUncorrected, "checkpoint"},
		{"truncated.img", exitUncorrected, "truncated"},
		{"zeroed-superblocks.img", exitUncorrected, "no valid txfs superblock"},
		{"damaged-links.img", exitUncorrected, "link count 7"},
	} {
		t.Run(c.image, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", "tests", "testdata", c.image))
			if err != nil {
				t.Fatal(err)
			}
			img := filepath.Join(t.TempDir(), c.image)
			os.WriteFile(img, b, 0o644)
			var out strings.Builder
			err = mainWithOutput([]string{"fsck.txfs", img}, &out)
			if got := code(err); got != c.code || !strings.Contains(out.String()+errString(err), c.says) {
				t.Fatalf("exit %d (want %d), output:\n%s%v\nwant it to say %q", got, c.code, out.String(), err, c.says)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestRepair: --repair fixes the links fixture (exit 1, says what it did),
// after which the image checks clean (exit 0); damage it cannot fix stays
// exit 4.
func TestRepair(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "tests", "testdata", "damaged-links.img"))
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "links.img")
	os.WriteFile(img, b, 0o644)
	var out strings.Builder
	err = mainWithOutput([]string{"fsck.txfs", "--repair", img}, &out)
	if code(err) != exitCorrected || !strings.Contains(out.String(), "repaired: inode") || !strings.Contains(out.String(), "lost+found") {
		t.Fatalf("repair: exit %d, output:\n%s", code(err), out.String())
	}
	out.Reset()
	if err := mainWithOutput([]string{"fsck.txfs", img}, &out); code(err) != exitClean {
		t.Fatalf("after repair: exit %d, output:\n%s", code(err), out.String())
	}
	if err := mainWithOutput([]string{"fsck.txfs", "-y", "-n", img}, &out); code(err) != exitUsage {
		t.Fatalf("-y with -n: exit %d", code(err))
	}
	b, _ = os.ReadFile(filepath.Join("..", "..", "tests", "testdata", "damaged-data.img"))
	os.WriteFile(img, b, 0o644)
	out.Reset()
	if err := mainWithOutput([]string{"fsck.txfs", "--repair", img}, &out); code(err) != exitUncorrected {
		t.Fatalf("repair of a checksum error: exit %d, output:\n%s", code(err), out.String())
	}
}

// TestNotAnImage: a directory, an empty file, zeros or random bytes are
// no txfs image at all: exit 8 with a one-line message saying so, nothing
// on standard output, and --repair leaves the bytes alone. (A txfs image
// whose superblocks are both damaged still exits 4: TestFixtures.)
func TestNotAnImage(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	zeros := filepath.Join(dir, "zeros")
	os.WriteFile(zeros, make([]byte, 1<<20), 0o644)
	random := filepath.Join(dir, "random")
	b := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(b)
	os.WriteFile(random, b, 0o644)
	for _, c := range []struct{ path, says string }{
		{dir, "is a directory, not a txfs image"},
		{empty, "is empty, not a txfs image"},
		{zeros, "is not a txfs image"},
		{random, "is not a txfs image"},
	} {
		for _, flags := range [][]string{nil, {"--json"}, {"--repair"}} {
			var out strings.Builder
			args := append(append([]string{"fsck.txfs"}, flags...), c.path)
			err := mainWithOutput(args, &out)
			msg := errString(err)
			if code(err) != exitOperational || !strings.Contains(msg, c.path+" "+c.says) || strings.Contains(msg, "\n") || out.Len() > 0 {
				t.Errorf("%v: exit %d (want %d), message %q (want one line saying %q), output %q",
					args, code(err), exitOperational, msg, c.path+" "+c.says, out.String())
			}
		}
	}
	if got, _ := os.ReadFile(random); !bytes.Equal(got, b) {
		t.Error("fsck.txfs --repair changed a file that is not a txfs image")
	}
}

// damagedLogImage makes an image whose log holds, after its checkpoint,
// one synced unit per step, and zeroes a block of the unit of step bad:
// the units after it prove it was synced. It returns the image's path.
func damagedLogImage(t *testing.T, steps []func(v *txfs.Volume) txfs.Ino, bad int) string {
	t.Helper()
	dev := segment.NewMemDevice(32 << 20)
	if err := txfs.Format(dev, txfs.FormatOptions{SegmentSize: 256 << 10}); err != nil {
		t.Fatal(err)
	}
	v, err := txfs.Open(dev, txfs.Options{CheckpointBytes: 1 << 40, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var at int64
	for i, step := range steps {
		if i == bad {
			at = v.LogHead()
		}
		if err := v.Fsync(step(v)); err != nil {
			t.Fatal(err)
		}
	}
	// A power cut: nothing but what was synced, and no checkpoint since.
	img := dev.Crash(segment.CrashOptions{}, nil).Bytes()
	v.Close()
	clear(img[at : at+4096])
	path := filepath.Join(t.TempDir(), "log.img")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func create(name string, size int) func(v *txfs.Volume) txfs.Ino {
	return func(v *txfs.Volume) txfs.Ino {
		a, err := v.Create(txfs.RootIno, name, 0o644, txfs.Owner{})
		if err != nil {
			panic(err)
		}
		if _, err := v.Write(a.Ino, bytes.Repeat([]byte(name), size), 0); err != nil {
			panic(err)
		}
		return a.Ino
	}
}

// A damaged log: fsck reports it with exit 4 and what follows the damage;
// --repair salvages what follows when it applies without the lost unit,
// and the volume is then clean and mounts read-write.
func TestDamagedLog(t *testing.T) {
	img := damagedLogImage(t, []func(*txfs.Volume) txfs.Ino{create("a", 5000), create("b", 5000), create("c", 5000), create("d", 5000)}, 1)
	var out strings.Builder
	err := mainWithOutput([]string{"fsck.txfs", img}, &out)
	if code(err) != exitUncorrected || !strings.Contains(out.String(), "the log is damaged") {
		t.Fatalf("check: exit %d, output:\n%s", code(err), out.String())
	}
	out.Reset()
	err = mainWithOutput([]string{"fsck.txfs", "--repair", img}, &out)
	if code(err) != exitCorrected || !strings.Contains(out.String(), "salvaged units") {
		t.Fatalf("repair: exit %d, output:\n%s", code(err), out.String())
	}
	out.Reset()
	if err := mainWithOutput([]string{"fsck.txfs", img}, &out); code(err) != exitClean {
		t.Fatalf("after repair: exit %d, output:\n%s", code(err), out.String())
	}
	v, err := txfs.OpenPath(img, txfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for _, name := range []string{"a", "c", "d"} {
		if _, err := v.Lookup(txfs.RootIno, name); err != nil {
			t.Errorf("%s after salvage: %v", name, err)
		}
	}
}

// When what follows the damage needs what the lost unit held (here it
// rewrites a block the lost unit allocated), --repair cuts the log at the
// damage and says why.
func TestDamagedLogNotSalvageable(t *testing.T) {
	var ino txfs.Ino
	rewrite := func(v *txfs.Volume) txfs.Ino {
		if _, err := v.Write(ino, []byte("again"), 0); err != nil {
			panic(err)
		}
		return ino
	}
	first := func(v *txfs.Volume) txfs.Ino { ino = create("a", 5000)(v); return ino }
	img := damagedLogImage(t, []func(*txfs.Volume) txfs.Ino{create("z", 100), first, rewrite, create("b", 10)}, 1)
	var out strings.Builder
	err := mainWithOutput([]string{"fsck.txfs", "--repair", img}, &out)
	if code(err) != exitCorrected || !strings.Contains(out.String(), "the log is cut at the damage") {
		t.Fatalf("repair: exit %d, output:\n%s", code(err), out.String())
	}
	out.Reset()
	if err := mainWithOutput([]string{"fsck.txfs", img}, &out); code(err) != exitClean {
		t.Fatalf("after repair: exit %d, output:\n%s", code(err), out.String())
	}
}
