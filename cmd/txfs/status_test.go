package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/control"
)

// run runs the txfs command line in-process and returns its standard
// output and error.
func run(args ...string) (string, error) {
	var out bytes.Buffer
	app := newApp()
	app.Writer = &out
	err := app.Run(append([]string{"txfs"}, args...))
	return out.String(), err
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 1<<20 - 1: "1 MiB",
		12_900_000: "12.3 MiB", 64 << 30: "64 GiB", 3 << 40: "3 TiB", 1 << 62: "4 EiB",
	} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// An image that is not mounted: status opens it read-only, clean
// read-write, and the image checks out after.
func TestStatusAndCleanImage(t *testing.T) {
	img := newImage(t)
	v, err := txfs.OpenPath(img, txfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := v.Create(txfs.RootIno, "f", 0o644, txfs.Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(a.Ino, bytes.Repeat([]byte("x"), 1<<20), 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	v, err = txfs.OpenPath(img, txfs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err := v.Status()
	v.Close()
	if err != nil {
		t.Fatal(err)
	}

	out, err := run("status", "--json", img)
	if err != nil {
		t.Fatal(err)
	}
	var got control.Status
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if got != control.StatusOf(st) || got.Segments == 0 {
		t.Errorf("status --json %s: %+v, want %+v", img, got, control.StatusOf(st))
	}
	out, err = run("status", img)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"volume               " + img + " (not mounted)\n", "size ", "free segments        " + strconv.Itoa(st.FreeSegments) + " (reserve ", "write amplification"} {
		if !strings.Contains(out, s) {
			t.Errorf("status %s does not say %q:\n%s", img, s, out)
		}
	}

	out, err = run("clean", img)
	if err != nil || !strings.HasPrefix(out, img+" (not mounted): ") {
		t.Errorf("clean %s: %v\n%s", img, err, out)
	}
	out, err = run("clean", "--json", img)
	var res control.CleanResult
	if err != nil || json.Unmarshal([]byte(out), &res) != nil {
		t.Errorf("clean --json %s: %v\n%s", img, err, out)
	}

	v, err = txfs.OpenPath(img, txfs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Check(); err != nil {
		t.Errorf("after clean: %v", err)
	}
}

func TestStatusRefusals(t *testing.T) {
	base := t.TempDir()
	junk := filepath.Join(base, "junk")
	if err := os.WriteFile(junk, bytes.Repeat([]byte{0xa5}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"status"}, exitUsage, "status needs TARGET"},
		{[]string{"clean"}, exitUsage, "clean needs TARGET"},
		{[]string{"status", base, base}, exitUsage, "status needs TARGET"},
		{[]string{"status", "--bogus", base}, exitUsage, "bogus"},
		{[]string{"status", filepath.Join(base, "missing")}, exitError, "status " + filepath.Join(base, "missing") + ": no such file or directory"},
		{[]string{"clean", filepath.Join(base, "missing")}, exitError, "clean " + filepath.Join(base, "missing") + ": no such file or directory"},
		{[]string{"status", base}, exitError, "status " + base + ": not a txfs mount point"},
		{[]string{"clean", base}, exitError, "clean " + base + ": not a txfs mount point"},
		{[]string{"status", junk}, exitError, "status " + junk + ": "},
	} {
		out, err := run(c.args...)
		if code := exitCode(err); code != c.code || err == nil || !strings.Contains(err.Error(), c.says) || out != "" {
			t.Errorf("txfs %s: exit %d, %v, output %q; want exit %d saying %q", strings.Join(c.args, " "), exitCode(err), err, out, c.code, c.says)
		}
	}
	if data, _ := os.ReadFile(junk); !bytes.Equal(data, bytes.Repeat([]byte{0xa5}, 1<<20)) {
		t.Error("status changed the file it was given")
	}

	if os.Geteuid() != 0 {
		return
	}
	tmpfs := filepath.Join(base, "tmpfs")
	os.Mkdir(tmpfs, 0o755)
	if err := syscall.Mount("scratch", tmpfs, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(tmpfs, syscall.MNT_DETACH)
	if _, err := run("status", tmpfs); exitCode(err) != exitError || !strings.Contains(err.Error(), "tmpfs scratch is mounted there") {
		t.Errorf("status on a tmpfs mount point: %v", err)
	}
}
