package txfs

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/txfs/txfs/segment"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestRecoveryDecisionsGolden records what recovery decides for a whole
// log, a log whose last unit is torn, a log with a damaged unit in the
// middle (nothing after it is replayed, and the checker reports it), and a
// damaged checkpoint record (its copy is used).
func TestRecoveryDecisionsGolden(t *testing.T) {
	dev := segment.NewMemDevice(32 << 20)
	if err := Format(dev, FormatOptions{SegmentSize: 256 << 10}); err != nil {
		t.Fatal(err)
	}
	v, err := Open(dev, Options{CheckpointBytes: 1 << 40, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	step := func(what string, ino Ino, err error) {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := v.Fsync(ino); err != nil {
			t.Fatal(err)
		}
		v.mu.Lock()
		fmt.Fprintf(&out, "op %q is in unit %d\n", what, v.log.Seq-1)
		v.mu.Unlock()
	}
	v.mu.Lock()
	first := v.log.Cur.Addr
	v.mu.Unlock()
	a, err := v.Create(RootIno, "a", 0o644, Owner{})
	step("create a", a.Ino, err)
	data := make([]byte, 8192)
	rand.New(rand.NewSource(1)).Read(data)
	_, err = v.Write(a.Ino, data, 0)
	step("write a", a.Ino, err)
	d, err := v.Mkdir(RootIno, "d", 0o755, Owner{})
	step("mkdir d", d.Ino, err)
	v.mu.Lock()
	lastAddr := v.log.Cur.Addr
	v.mu.Unlock()
	img := dev.Bytes()
	recoverFrom := func(name string, b []byte) {
		fmt.Fprintf(&out, "\n%s:\n", name)
		m := segment.NewMemDevice(int64(len(b)))
		m.WriteAt(b, 0)
		v2, err := Open(m, Options{ReadOnly: true, Log: func(f string, a ...any) {
			fmt.Fprintf(&out, "  "+f+"\n", a...)
		}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer v2.Close()
		rep, err := v2.CheckReport()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, p := range rep.Problems {
			fmt.Fprintf(&out, "  check: %s\n", p)
		}
		for _, w := range rep.Warnings {
			fmt.Fprintf(&out, "  check warns: %s\n", w)
		}
		got, _ := dump(v2)
		fmt.Fprintf(&out, "  tree:\n    %s\n", strings.ReplaceAll(got, "\n", "\n    "))
	}
	recoverFrom("whole log", img)
	// Tear the last unit: its last block never reached the disk.
	torn := append([]byte(nil), img...)
	clear(torn[lastAddr-4096 : lastAddr])
	recoverFrom("last unit torn", torn)
	// Damage the unit of "create a": nothing after it may be replayed, and
	// the units after it prove it was durable.
	bad := append([]byte(nil), img...)
	bad[first+100] ^= 1
	recoverFrom("first unit after the checkpoint damaged", bad)
	// Damage the checkpoint record: its copy, the unit after it, serves.
	v.mu.Lock()
	ref := v.sb.Checkpoint
	v.mu.Unlock()
	badCkpt := append([]byte(nil), img...)
	badCkpt[ref.Addr+uint64(ref.Len)-1] ^= 0x80 // padding
	recoverFrom("checkpoint record damaged", badCkpt)
	v.Close()
	// Checksums cover timestamps: leave them out.
	sums := regexp.MustCompile(`stored [0-9a-f]+, computed [0-9a-f]+`)
	golden(t, "recovery.golden", sums.ReplaceAllString(out.String(), "stored S, computed C"))
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs from the golden file:\n%s\nwant:\n%s", name, got, want)
	}
}
