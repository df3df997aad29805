package fuse

import (
	"bytes"
	"log"
	"os"
	"strings"
	"testing"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/segment"
)

// A release nobody can be told of fails into the daemon's log, except
// after Close, which dropped every reference itself.
func TestReleaseFailureLogged(t *testing.T) {
	dev := segment.NewMemDevice(16 << 20)
	if err := txfs.Format(dev, txfs.FormatOptions{SegmentSize: 256 << 10}); err != nil {
		t.Fatal(err)
	}
	v, err := txfs.Open(dev, txfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log.SetOutput(&buf)
	defer log.SetOutput(os.Stderr)
	releaseLogged(v, txfs.RootIno) // never opened: the engine refuses
	if !strings.Contains(buf.String(), "release of inode 1") {
		t.Fatalf("log: %q", buf.String())
	}
	v.Close()
	buf.Reset()
	releaseLogged(v, txfs.RootIno)
	if buf.Len() != 0 {
		t.Fatalf("a release after Close was logged: %q", buf.String())
	}
}
