package txfs

import (
	"testing"
	"time"
)

// waitIdle waits until v's checkpointer sleeps with nothing due and no
// deadline.
func waitIdle(t *testing.T, v *Volume) {
	t.Helper()
	for i := 0; ; i++ {
		v.mu.Lock()
		idle := v.ckpter.idle
		v.mu.Unlock()
		if idle {
			return
		}
		if i == 2000 {
			t.Fatal("the checkpointer of an idle volume never went to sleep")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An idle volume's checkpointer sleeps: it does not take the volume lock
// while nothing happens, after a write and sync have been dealt with.
func TestIdleVolumeCheckpointerSleeps(t *testing.T) {
	v, _ := newTestVolume(t, 16<<20, Options{CheckpointInterval: 50 * time.Millisecond})
	attr, err := v.Create(RootIno, "f", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(attr.Ino, []byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Fsync(attr.Ino); err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"after a write", "after a checkpoint"} {
		waitIdle(t, v)
		before := v.ckpter.wakes.Load()
		time.Sleep(200 * time.Millisecond)
		if n := v.ckpter.wakes.Load() - before; n != 0 {
			t.Errorf("%s: the idle checkpointer took the volume lock %d times in 200 ms", step, n)
		}
		if err := v.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

// A unit nobody waits for is still sealed and written journal.SealAfter after its
// first transaction, with no other activity to wake the writer.
func TestUnitSealedWithoutActivity(t *testing.T) {
	v, _ := newTestVolume(t, 16<<20, Options{})
	if _, err := v.Create(RootIno, "f", 0o644, Owner{}); err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	seq := v.log.Seq
	v.mu.Unlock()
	for i := 0; ; i++ {
		v.mu.Lock()
		written := v.log.Written
		v.mu.Unlock()
		if written >= seq {
			return
		}
		if i == 2000 {
			t.Fatalf("unit %d was never written", seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
