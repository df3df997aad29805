package txfs

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/txfs/txfs/segment"
)

// testdata/format-v1.img.gz was written by txfs with on-disk format
// version 1: a tree (a directory, a file with an xattr and a hard link, a
// sparse file, a symlink), a checkpoint, and after it a log that recovery
// must replay (a new file, a rename), cut by a power cut.
func v1Image(t *testing.T) *segment.MemDevice {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "format-v1.img.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	img, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	dev := segment.NewMemDevice(int64(len(img)))
	dev.WriteAt(img, 0)
	return dev
}

// An image of format version 1 opens, read-only as it is, and read-write
// after recovery, becoming version 2; both check clean and hold the same
// tree, before and after a reopen.
func TestFormatVersion1Opens(t *testing.T) {
	dev := v1Image(t)
	v, err := Open(dev, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Check(); err != nil {
		t.Fatal(err)
	}
	want, err := dump(v)
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	if sb, _, _ := segment.ReadSuperblock(dev); sb.Version != 1 {
		t.Fatalf("a read-only open changed the format version to %d", sb.Version)
	}
	for _, line := range []string{"/after 0100644 n1 size 9000", "/dir/moved 0100600 n1 size 1048579", "/hard 0100644 n2 = /dir/a.txt", "/link 0120777 n1 -> dir/a.txt", "user.k=76"} {
		if !bytes.Contains([]byte(want), []byte(line)) {
			t.Fatalf("the version 1 tree lacks %q:\n%s", line, want)
		}
	}
	v, err = Open(dev, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := dump(v); got != want {
		t.Fatalf("read-write open of version 1:\n%s", lineDiff(got, want))
	}
	if _, err := v.Create(RootIno, "new", 0o644, Owner{}); err != nil {
		t.Fatal(err)
	}
	v = reopen(t, v, dev)
	defer v.Close()
	if sb, _, _ := segment.ReadSuperblock(dev); sb.Version != segment.FormatVersion {
		t.Fatalf("format version %d after a read-write open", sb.Version)
	}
	if _, err := v.Lookup(RootIno, "new"); err != nil {
		t.Fatal(err)
	}
}
