package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

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
