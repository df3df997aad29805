package txfs

import (
	"bytes"
	"testing"
)

// TestSegments: the picture of the segments agrees with the status (free
// segments, bytes in use), free segments hold nothing, and a file written
// shows as live bytes that the cleaner does not lose once it is deleted.
func TestSegments(t *testing.T) {
	v, _ := newTestVolume(t, 16<<20, Options{})
	total := func() (live int64, free int) {
		t.Helper()
		segs, err := v.Segments()
		if err != nil {
			t.Fatal(err)
		}
		st, err := v.Status()
		if err != nil {
			t.Fatal(err)
		}
		if len(segs) != st.Segments {
			t.Fatalf("%d segments reported, the volume has %d", len(segs), st.Segments)
		}
		for i, s := range segs {
			if s.Free && s.Live != 0 {
				t.Fatalf("segment %d is free and holds %d live bytes", i, s.Live)
			}
			if s.Live < 0 || s.Live > int64(st.SegmentSize) {
				t.Fatalf("segment %d: %d live bytes in a segment of %d", i, s.Live, st.SegmentSize)
			}
			if s.Free {
				free++
			}
			live += s.Live
		}
		if free != st.FreeSegments {
			t.Fatalf("%d free segments in the picture, %d in the status", free, st.FreeSegments)
		}
		// The picture also counts the usage table's own blocks.
		if live < st.LiveBytes {
			t.Fatalf("%d live bytes in the picture, fewer than the status's %d", live, st.LiveBytes)
		}
		return live, free
	}
	before, _ := total()
	a, err := v.Create(RootIno, "f", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{0x5a, 0x17, 0x99}, 400<<10) // compressible: the test asks only that it shows
	if _, err := v.Write(a.Ino, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	after, _ := total()
	if after <= before {
		t.Fatalf("live bytes %d after writing a file, %d before", after, before)
	}
	if err := v.Unlink(RootIno, "f"); err != nil {
		t.Fatal(err)
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	if gone, _ := total(); gone >= after {
		t.Fatalf("live bytes %d after deleting the file, %d with it", gone, after)
	}
}
