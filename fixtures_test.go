package txfs

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/txfs/txfs/inode"
	"github.com/txfs/txfs/segment"
)

var writeFixtures = flag.Bool("fixtures", false, "rewrite the images in tests/testdata")

// TestWriteFixtures makes the images fsck.txfs is tested on: a clean volume
// of format version 1, one with log to replay, and damaged copies. Run it
// with -fixtures after a format change; normally it only checks that the
// committed clean images still open and check clean.
func TestWriteFixtures(t *testing.T) {
	dir := filepath.Join("tests", "testdata")
	if !*writeFixtures {
		for _, name := range []string{"v1-clean.img", "v1-log.img"} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			d := segment.NewMemDevice(int64(len(b)))
			d.WriteAt(b, 0)
			v, err := Open(d, Options{ReadOnly: true})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if err := v.Check(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			v.Close()
		}
		return
	}
	dev := segment.NewMemDevice(1 << 20)
	if err := Format(dev, FormatOptions{SegmentSize: 64 << 10, Label: "fixture"}); err != nil {
		t.Fatal(err)
	}
	v, err := Open(dev, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := v.Mkdir(RootIno, "dir", 0o755, Owner{Uid: 1000, Gid: 1000})
	a, _ := v.Create(d.Ino, "file", 0o644, Owner{Uid: 1000, Gid: 1000})
	data := make([]byte, 10000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	v.Write(a.Ino, data, 0)
	v.Link(a.Ino, RootIno, "hardlink")
	v.Symlink(RootIno, "link", "dir/file", Owner{})
	v.SetXattr(a.Ino, "user.color", []byte("blue"), 0)
	v.Mknod(RootIno, "fifo", 0o10644, 0, Owner{})
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v.mu.Lock()
	val, _, _ := v.tree.Get(inode.BlockKey(a.Ino, 1))
	dataEntry, _ := v.dat.Get(inode.DecodeBlockItem(val))
	rootEntry, _ := v.dat.Get(uint64(v.tree.Root()))
	ckpt := v.sb.Checkpoint
	v.mu.Unlock()
	clean := dev.Bytes()
	write("v1-clean.img", clean)
	flip := func(name string, at uint64) {
		b := append([]byte(nil), clean...)
		b[at] ^= 0x10
		write(name, b)
	}
	flip("damaged-data.img", dataEntry.Addr+uint64(dataEntry.Len)/2)
	flip("damaged-node.img", rootEntry.Addr+uint64(rootEntry.Len)/2)
	flip("damaged-checkpoint.img", ckpt.Addr+segment.UnitHeaderSize+20)
	write("truncated.img", clean[:len(clean)/2])
	zeroed := append([]byte(nil), clean...)
	clear(zeroed[:2*4096])
	write("zeroed-superblocks.img", zeroed)
	one := append([]byte(nil), clean...)
	clear(one[4096 : 2*4096])
	write("zeroed-superblock-1.img", one)
	// Broken link counts and names, for fsck --repair.
	dev2 := segment.NewMemDevice(1 << 20)
	if err := Format(dev2, FormatOptions{SegmentSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	v2, err := Open(dev2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	damage(t, v2)
	if err := v2.Close(); err != nil {
		t.Fatal(err)
	}
	write("damaged-links.img", dev2.Bytes())
	// Operations after the checkpoint, in the log only.
	b, _ := v.Create(RootIno, "after-checkpoint", 0o600, Owner{})
	v.Write(b.Ino, []byte("replayed at open\n"), 0)
	v.Fsync(b.Ino)
	write("v1-log.img", dev.Bytes())
	v.Close()
}
