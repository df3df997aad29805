package fuse

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mustOK fails the test at once on an error.
func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErrIs reports what when err is not want.
func wantErrIs(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

// dirNames lists the names in dir, sorted, separated by spaces.
func dirNames(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return strings.Join(names, " ")
}

func TestRenameWhiteout(t *testing.T) {
	checkRenameWhiteout(t, sharedMount(t))
}

// TestRenameWhiteoutExt4 holds the same check to ext4.
func TestRenameWhiteoutExt4(t *testing.T) {
	dir := ext4Dir(t)
	openUp(t, dir)
	checkRenameWhiteout(t, dir)
}

// checkRenameWhiteout: RENAME_WHITEOUT moves the entry and leaves a
// whiteout at the old name: a character device 0/0 with mode 0, owned by
// the caller (the directory's group in a set-group-ID directory). It
// combines with RENAME_NOREPLACE, not with RENAME_EXCHANGE.
func checkRenameWhiteout(t *testing.T, dir string) {
	j := func(name string) string { return filepath.Join(dir, name) }
	must := func(err error) { t.Helper(); mustOK(t, err) }
	wantErr := func(what string, err, want error) { t.Helper(); wantErrIs(t, what, err, want) }
	isWhiteout := func(name string, uid, gid uint32) {
		t.Helper()
		st := statxSync(t, j(name))
		if st.Mode != syscall.S_IFCHR || st.Rdev_major != 0 || st.Rdev_minor != 0 || st.Nlink != 1 || st.Size != 0 || st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: mode %#o rdev %#x nlink %d size %d owner %d:%d, want a whiteout owned by %d:%d",
				name, st.Mode, st.Rdev_major<<8|st.Rdev_minor, st.Nlink, st.Size, st.Uid, st.Gid, uid, gid)
		}
	}
	writeFile(t, j("a"), "A")
	writeFile(t, j("b"), "B")
	must(os.Mkdir(j("d"), 0o755))
	writeFile(t, j("d/in"), "IN")

	wantErr("WHITEOUT|EXCHANGE", renameat2(j("a"), j("b"), renameWhiteout|renameExchange), syscall.EINVAL)
	wantErr("WHITEOUT|NOREPLACE onto a name", renameat2(j("a"), j("b"), renameWhiteout|renameNoReplace), syscall.EEXIST)
	wantErr("WHITEOUT of nothing", renameat2(j("none"), j("x"), renameWhiteout), syscall.ENOENT)

	must(renameat2(j("a"), j("n"), renameWhiteout|renameNoReplace))
	isWhiteout("a", 0, 0)
	if got := readFile(t, j("n")); got != "A" {
		t.Errorf("n = %q, want A", got)
	}
	// Over an existing file, which goes.
	must(renameat2(j("n"), j("b"), renameWhiteout))
	isWhiteout("n", 0, 0)
	if got := readFile(t, j("b")); got != "A" {
		t.Errorf("b = %q, want A", got)
	}
	// A directory, into another directory.
	must(os.Mkdir(j("e"), 0o755))
	must(renameat2(j("d"), j("e/d"), renameWhiteout))
	isWhiteout("d", 0, 0)
	if got := readFile(t, j("e/d/in")); got != "IN" {
		t.Errorf("e/d/in = %q", got)
	}
	if st := statxSync(t, j("e")); st.Nlink != 3 {
		t.Errorf("e has %d links, want 3", st.Nlink)
	}
	// Onto another name of the same file: nothing happens.
	must(os.Link(j("b"), j("b2")))
	must(renameat2(j("b"), j("b2"), renameWhiteout))
	if st := statxSync(t, j("b")); st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Nlink != 2 {
		t.Errorf("b after a whiteout rename onto its own link: mode %#o nlink %d", st.Mode, st.Nlink)
	}
	// A whiteout is a name like any other.
	must(os.Remove(j("a")))
	must(os.Rename(j("b2"), j("n")))

	// By another user in a set-group-ID directory: the whiteout is the
	// user's, with the directory's group, as a new file there would be.
	mkdirAs(t, j("sg"), 0, 1234, 0o2777)
	mkfile(t, j("sg/f"), "F", int(alice.uid), int(alice.gid), 0o644)
	expectAs(t, alice, expectOp{op("renameat2", j("sg/f"), j("sg/g"), "4"), 0})
	isWhiteout("sg/f", alice.uid, 1234)
	if got := readFile(t, j("sg/g")); got != "F" {
		t.Errorf("sg/g = %q, want F", got)
	}
	if got := dirNames(t, dir); got != "b d e n sg" {
		t.Errorf("names %q, want %q", got, "b d e n sg")
	}
}
