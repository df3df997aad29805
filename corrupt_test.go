package txfs

import (
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"syscall"
	"testing"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/inode"
	"github.com/txfs/txfs/segment"
)

// An item that does not decode is ErrIO to the caller, as all corruption
// is, and a read that meets one does not stop the volume: the rest of it
// stays usable.
func TestUndecodableItemIsErrIO(t *testing.T) {
	v, _ := newTestVolume(t, 32<<20, Options{})
	d, err := v.Mkdir(RootIno, "d", 0o755, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := v.Create(d.Ino, "f", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.SetXattr(f.Ino, "user.a", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	breakItems := func(items map[btree.Key][]byte) (restore func()) {
		v.mu.Lock()
		defer v.mu.Unlock()
		old := map[btree.Key][]byte{}
		for k, val := range items {
			o, _, err := v.tree.Get(k)
			if err != nil {
				t.Fatal(err)
			}
			old[k] = o
			if err := v.tree.Put(k, val); err != nil {
				t.Fatal(err)
			}
		}
		return func() {
			v.mu.Lock()
			defer v.mu.Unlock()
			for k, val := range old {
				if err := v.tree.Put(k, val); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	restore := breakItems(map[btree.Key][]byte{
		inode.DirentKey(d.Ino, inode.NameHash("f")):     {1, 2, 3},
		inode.XattrKey(f.Ino, inode.NameHash("user.a")): {1},
	})
	_, err = v.Lookup(d.Ino, "f")
	mustErr(t, err, ErrIO)
	mustErr(t, v.Readdir(d.Ino, 0, func(DirEntry) bool { return true }), ErrIO)
	_, err = v.GetXattr(f.Ino, "user.a")
	mustErr(t, err, ErrIO)
	_, err = v.ListXattr(f.Ino)
	mustErr(t, err, ErrIO)
	mustErr(t, v.RemoveXattr(f.Ino, "user.a"), ErrIO)
	mustErr(t, v.Unlink(d.Ino, "f"), ErrIO)
	if _, err := v.Create(RootIno, "g", 0o644, Owner{}); err != nil {
		t.Fatalf("the volume stopped: %v", err)
	}
	restore()

	restore = breakItems(map[btree.Key][]byte{inode.InodeKey(f.Ino): make([]byte, inode.RecordSize-1)})
	_, err = v.GetAttr(f.Ino)
	mustErr(t, err, ErrIO)
	if _, err := v.Create(RootIno, "h", 0o644, Owner{}); err != nil {
		t.Fatalf("the volume stopped: %v", err)
	}
	restore()

	// A truncate item that does not decode frees nothing: as size 0 it
	// would free the whole file.
	if _, err := v.Write(f.Ino, make([]byte, 3*4096), 0); err != nil {
		t.Fatal(err)
	}
	breakItems(map[btree.Key][]byte{inode.TruncKey(f.Ino): {1, 2, 3}})
	_, err = v.Write(f.Ino, []byte("x"), 0)
	mustErr(t, err, ErrIO)
	v.mu.Lock()
	_, err = v.tree.Delete(inode.TruncKey(f.Ino)) // restore would put an empty value
	v.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if a, err := v.GetAttr(f.Ino); err != nil || a.Blocks == 0 {
		t.Fatalf("after the bad truncate item: %+v %v", a, err)
	}
}

// readFailer is a device whose reads fail once failing is set.
type readFailer struct {
	*segment.MemDevice
	failing bool
}

func (d *readFailer) ReadAt(p []byte, off int64) (int, error) {
	if d.failing {
		return 0, syscall.EIO
	}
	return d.MemDevice.ReadAt(p, off)
}

// A damaged block read is corruption that says where it lies: the device
// address, the virtual block, the inode and the file offset; a tree node
// that does not verify says its address and block. A device that fails a
// read gives EIO that is not corruption.
func TestCorruptionSaysWhere(t *testing.T) {
	mem := segment.NewMemDevice(32 << 20)
	if err := Format(mem, FormatOptions{SegmentSize: 256 << 10}); err != nil {
		t.Fatal(err)
	}
	dev := &readFailer{MemDevice: mem}
	v, err := Open(dev, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	a, err := v.Create(RootIno, "f", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3*4096)
	rand.New(rand.NewSource(1)).Read(data) // incompressible: stored raw
	if _, err := v.Write(a.Ino, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	val, _, _ := v.tree.Get(inode.BlockKey(a.Ino, 1))
	vb := inode.DecodeBlockItem(val)
	e, _ := v.dat.Get(vb)
	root := v.tree.Root()
	re, _ := v.dat.Get(uint64(root))
	v.mu.Unlock()
	flip := func(addr uint64) {
		b := make([]byte, 1)
		mem.ReadAt(b, int64(addr)+100)
		b[0] ^= 0x40
		mem.WriteAt(b, int64(addr)+100)
	}
	flip(e.Addr)
	_, err = v.Read(a.Ino, make([]byte, len(data)), 0)
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrIO) || ToErrno(err) != syscall.EIO {
		t.Fatalf("read of a damaged block: %v", err)
	}
	want := Location{Addr: e.Addr, Block: vb, Ino: uint64(a.Ino), Off: 4096, HasOff: true}
	if at, ok := CorruptionAt(err); !ok || at != want {
		t.Fatalf("damage at %+v (%v), want %+v: %v", at, ok, want, err)
	}
	if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("inode %d, offset 4096", a.Ino)) {
		t.Fatalf("the message does not say where: %q", msg)
	}
	flip(e.Addr) // repaired

	flip(re.Addr)
	_, err = v.LoadNode(root)
	if at, ok := CorruptionAt(err); !errors.Is(err, ErrCorrupt) || !ok || at.Addr != re.Addr || at.Block != uint64(root) {
		t.Fatalf("damaged tree node %d at %d: %+v %v", root, re.Addr, at, err)
	}
	flip(re.Addr)

	dev.failing = true
	_, err = v.Read(a.Ino, make([]byte, len(data)), 0)
	dev.failing = false
	if !errors.Is(err, ErrIO) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("a failed device read: %v", err)
	}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
}
