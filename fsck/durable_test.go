package fsck_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/fsck"
	"github.com/txfs/txfs/segment"
)

// newVolume formats and opens a volume on a memory device; the checker
// runs when the test ends.
func newVolume(t *testing.T, size int64, o txfs.Options) (*txfs.Volume, *segment.MemDevice) {
	t.Helper()
	dev := segment.NewMemDevice(size)
	if err := txfs.Format(dev, txfs.FormatOptions{SegmentSize: 256 << 10, NoCompress: true}); err != nil {
		t.Fatal(err)
	}
	v, err := txfs.Open(dev, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Check(); err != nil {
			t.Errorf("check at end of test: %v", err)
		}
		if err := v.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return v, dev
}

// fill makes n files of a block each in the root directory.
func fill(t *testing.T, v *txfs.Volume, prefix string, n int) {
	t.Helper()
	for i := range n {
		a, err := v.Create(txfs.RootIno, fmt.Sprintf("%s%d", prefix, i), 0o644, txfs.Owner{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Write(a.Ino, bytes.Repeat([]byte{byte(i)}, 4096), 0); err != nil {
			t.Fatal(err)
		}
	}
}

// The durable check does not hold the volume lock while it scans:
// operations go on meanwhile.
func TestCheckDurableLetsOperationsRun(t *testing.T) {
	v, _ := newVolume(t, 32<<20, txfs.Options{})
	fill(t, v, "f", 50)
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var ran atomic.Bool
	rep, err := fsck.CheckDurable(v.Fsck(), func(pass int, done, total uint64) {
		once.Do(func() {
			finished := make(chan error, 1)
			go func() {
				_, err := v.Create(txfs.RootIno, "during", 0o644, txfs.Owner{})
				finished <- err
			}()
			select {
			case err := <-finished:
				if err != nil {
					t.Errorf("create during the check: %v", err)
				}
				ran.Store(true)
			case <-time.After(5 * time.Second):
				t.Errorf("a create waited for the check for 5 s")
			}
		})
	})
	if err != nil || rep.Err() != nil {
		t.Fatalf("check: %v %v", err, rep.Err())
	}
	if !ran.Load() {
		t.Fatal("no operation ran during the check")
	}
	if _, err := v.Lookup(txfs.RootIno, "during"); err != nil {
		t.Fatal(err)
	}
}

// On a volume that has not changed since its last checkpoint, the durable
// check sees what the check under the lock sees.
func TestCheckDurableCountsWhatCheckCounts(t *testing.T) {
	v, _ := newVolume(t, 32<<20, txfs.Options{})
	fill(t, v, "f", 40)
	d, err := v.Mkdir(txfs.RootIno, "d", 0o755, txfs.Owner{})
	if err != nil {
		t.Fatal(err)
	}
	open, err := v.Create(d.Ino, "open", 0o644, txfs.Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.OpenFile(open.Ino); err != nil {
		t.Fatal(err)
	}
	if err := v.Unlink(d.Ino, "open"); err != nil {
		t.Fatal(err)
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	live, err := v.CheckReport()
	if err != nil {
		t.Fatal(err)
	}
	durable, err := fsck.CheckDurable(v.Fsck(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if durable.Err() != nil || live.Err() != nil {
		t.Fatalf("problems: %v / %v", durable.Err(), live.Err())
	}
	if durable.Inodes != live.Inodes || durable.Directories != live.Directories || durable.DataBlocks != live.DataBlocks ||
		durable.Nodes != live.Nodes || durable.Orphans != live.Orphans || durable.Orphans != 1 {
		t.Fatalf("durable check %+v, check %+v", durable, live)
	}
	if err := v.Release(open.Ino); err != nil {
		t.Fatal(err)
	}
}

// Damage to a block the last checkpoint uses is found.
func TestCheckDurableFindsDamage(t *testing.T) {
	v, dev := newVolume(t, 32<<20, txfs.Options{})
	a, err := v.Create(txfs.RootIno, "f", 0o644, txfs.Owner{})
	if err != nil {
		t.Fatal(err)
	}
	pattern := bytes.Repeat([]byte("damage me "), 409)
	if _, err := v.Write(a.Ino, pattern, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(dev.Bytes(), pattern)
	if at < 0 {
		t.Fatal("the block is not on the device")
	}
	if _, err := dev.WriteAt([]byte("X"), int64(at+100)); err != nil {
		t.Fatal(err)
	}
	rep, err := fsck.CheckDurable(v.Fsck(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("inode %d block 0:", a.Ino)
	if len(rep.Problems) != 1 || !strings.HasPrefix(rep.Problems[0], want) {
		t.Fatalf("found %q, want one problem %q...", rep.Problems, want)
	}
	// Put it back for the check at the end.
	if _, err := dev.WriteAt(pattern[100:101], int64(at+100)); err != nil {
		t.Fatal(err)
	}
}

// watched counts the durable scans a later checkpoint overtook.
type watched struct {
	fsck.Volume
	scans, moved atomic.Int64
}

func (w *watched) InspectDurable(fn func(fsck.View) error) (bool, error) {
	moved, err := w.Volume.InspectDurable(fn)
	w.scans.Add(1)
	if moved {
		w.moved.Add(1)
	}
	return moved, err
}

// Checks of a small volume that writes, deletes and checkpoints all
// along, so that segments the checked checkpoint uses are reused under the
// scan (which, not checked again, made sound blocks look damaged), find
// nothing.
func TestCheckDurableWhileWriting(t *testing.T) {
	v, _ := newVolume(t, 8<<20, txfs.Options{CheckpointBytes: 128 << 10})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := bytes.Repeat([]byte{byte(w)}, 3*4096)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("w%d-%d", w, i%64)
				v.Unlink(txfs.RootIno, name) // the first round finds none
				a, err := v.Create(txfs.RootIno, name, 0o644, txfs.Owner{})
				if err == nil {
					_, err = v.Write(a.Ino, data, 0)
				}
				// Dead blocks among live ones fill a small volume.
				if err != nil && !errors.Is(err, txfs.ErrNoSpace) {
					t.Error(err)
					return
				}
			}
		}()
	}
	w := &watched{Volume: v.Fsck()}
	deadline := time.Now().Add(3 * time.Second)
	checks := 0
	for time.Now().Before(deadline) || checks < 3 {
		rep, err := fsck.CheckDurable(w, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Err() != nil {
			t.Fatalf("check %d: %v", checks, rep.Err())
		}
		checks++
	}
	close(stop)
	wg.Wait()
	t.Logf("%d checks, %d scans, %d overtaken by a checkpoint", checks, w.scans.Load(), w.moved.Load())
}
