package control

import (
	"net/http"
	"os"
	"testing"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/segment"
)

// TestSegmentsEndpoint: GET /v1/segments answers how full each segment of
// a volume is, as the volume says; a Filesystem that cannot say is
// answered 501 in words.
func TestSegmentsEndpoint(t *testing.T) {
	dev := segment.NewMemDevice(16 << 20)
	if err := txfs.Format(dev, txfs.FormatOptions{SegmentSize: 256 << 10}); err != nil {
		t.Fatal(err)
	}
	v, err := txfs.Open(dev, txfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	a, err := v.Create(txfs.RootIno, "f", 0o644, txfs.Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(a.Ino, make([]byte, 300<<10), 0); err != nil {
		t.Fatal(err)
	}
	c := DialSocket(serve(t, v, os.Getuid()))
	defer c.Close()
	got, err := c.Segments()
	if err != nil {
		t.Fatal(err)
	}
	want, err := v.Segments()
	if err != nil {
		t.Fatal(err)
	}
	if got.SegmentSize != 256<<10 || len(got.LiveBytes) != len(want) {
		t.Fatalf("segment size %d, %d segments; want %d, %d", got.SegmentSize, len(got.LiveBytes), 256<<10, len(want))
	}
	free := 0
	for i, s := range want {
		if got.LiveBytes[i] != s.Live {
			t.Errorf("segment %d: %d live bytes, the volume says %d", i, got.LiveBytes[i], s.Live)
		}
		if s.Free {
			if free >= len(got.Free) || got.Free[free] != i {
				t.Errorf("segment %d is free, not in %v", i, got.Free)
			}
			free++
		}
	}
	if free != len(got.Free) {
		t.Errorf("free segments %v, the volume has %d", got.Free, free)
	}

	code, body, _ := get(t, serve(t, &fakeFS{status: testStatus}, os.Getuid()), http.MethodGet, "/v1/segments")
	if code != http.StatusNotImplemented || body != `{"error":"segments: txfs: operation not supported"}`+"\n" {
		t.Errorf("segments of a filesystem without them: %d %s", code, body)
	}
}
