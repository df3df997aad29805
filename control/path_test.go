package control

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestEscapePath(t *testing.T) {
	for _, c := range []struct{ path, name string }{
		{"/", "-"},
		{"/mnt/txfs", "mnt-txfs"},
		{"/mnt/txfs/", "mnt-txfs"},
		{"//mnt//txfs", "mnt-txfs"},
		{"/srv/my-data", `srv-my\x2ddata`},
		{"/home/a b/.cache", `home-a\x20b-.cache`},
		{"/.hidden", `\x2ehidden`},
		{`/a\b`, `a\x5cb`},
		{"/x:y_z.1", "x:y_z.1"},
		{"/ü", `\xc3\xbc`},
		{"/~", `\x7e`},
	} {
		if got := EscapePath(c.path); got != c.name {
			t.Errorf("EscapePath(%q) = %q, want %q", c.path, got, c.name)
		}
		back, err := UnescapePath(c.name)
		if want := filepath.Clean(c.path); err != nil || back != want {
			t.Errorf("UnescapePath(%q) = %q, %v; want %q", c.name, back, err, want)
		}
	}
	for _, bad := range []string{`a\`, `a\x`, `a\x2`, `a\y20`, `a\xzz`} {
		if p, err := UnescapePath(bad); err == nil {
			t.Errorf("UnescapePath(%q) = %q, want an error", bad, p)
		}
	}
}

// Every byte survives the escaping, and distinct paths get distinct names.
func TestEscapePathRoundTrip(t *testing.T) {
	seen := map[string]string{}
	for c := 1; c < 256; c++ {
		if c == '/' {
			continue
		}
		b := string([]byte{byte(c)})
		for _, path := range []string{"/" + b, "/a" + b + "b/" + b, "/" + b + b + "/x"} {
			path = filepath.Clean(path)
			name := EscapePath(path)
			if strings.ContainsAny(name, "/~") {
				t.Errorf("EscapePath(%q) = %q: holds / or ~", path, name)
			}
			if back, err := UnescapePath(name); err != nil || back != path {
				t.Errorf("UnescapePath(EscapePath(%q)) = %q, %v", path, back, err)
			}
			if other, ok := seen[name]; ok && other != path {
				t.Errorf("%q and %q both escape to %q", path, other, name)
			}
			seen[name] = path
		}
	}
}

func TestSocketPath(t *testing.T) {
	p, err := SocketPath("/run/txfs", "/mnt/txfs")
	if err != nil || p != "/run/txfs/mnt-txfs.sock" {
		t.Errorf("SocketPath(/mnt/txfs) = %q, %v", p, err)
	}
	if p, err := SocketPath("/run/txfs", "mnt/txfs"); err == nil {
		t.Errorf("relative mount point: %q, want an error", p)
	}
	// Too long for a socket address: hashed, and still one per mount point.
	long := "/" + strings.Repeat("d", 60) + "/" + strings.Repeat("e", 60)
	a, err := SocketPath("/run/txfs", long)
	if err != nil {
		t.Fatal(err)
	}
	b, err := SocketPath("/run/txfs", long+"f")
	if err != nil {
		t.Fatal(err)
	}
	if a == b || len(a) > maxSocketPath || !strings.HasPrefix(a, "/run/txfs/~") || !strings.HasSuffix(a, ".sock") {
		t.Errorf("long mount points: %q and %q", a, b)
	}
	if c, _ := SocketPath("/run/txfs", long+"/"); c != a {
		t.Errorf("%s/ gives %q, %s gives %q", long, c, long, a)
	}
	if p, err := SocketPath("/"+strings.Repeat("r", 100), "/mnt"); err == nil || !strings.Contains(err.Error(), RunDirEnv) {
		t.Errorf("a run directory too long for any socket: %q, %v", p, err)
	}
}
