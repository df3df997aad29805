package control

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultRunDir is the directory of the control sockets.
const DefaultRunDir = "/run/txfs"

// RunDirEnv names the environment variable that overrides DefaultRunDir,
// for the daemon and its clients alike (tests, or a daemon that cannot
// write /run).
const RunDirEnv = "TXFS_RUN_DIR"

// maxSocketPath is the longest path a Unix socket address holds (108
// bytes of sun_path, one of them the terminating NUL).
const maxSocketPath = 107

// RunDir is the directory of the control sockets: $TXFS_RUN_DIR if set,
// else /run/txfs.
func RunDir() string {
	if d := os.Getenv(RunDirEnv); d != "" {
		return d
	}
	return DefaultRunDir
}

// SocketPath is the control socket of the volume mounted on mountpoint, an
// absolute path, in runDir: runDir/ESCAPED.sock, where ESCAPED is
// EscapePath(mountpoint). When that is too long for a socket address the
// name is "~" and the first 32 hex digits of the SHA-256 of the mount
// point, which no escaped path can be ("~" is always escaped).
func SocketPath(runDir, mountpoint string) (string, error) {
	if !filepath.IsAbs(mountpoint) {
		return "", fmt.Errorf("control: mount point %q is not an absolute path", mountpoint)
	}
	p := filepath.Join(runDir, EscapePath(mountpoint)+".sock")
	if len(p) <= maxSocketPath {
		return p, nil
	}
	sum := sha256.Sum256([]byte(filepath.Clean(mountpoint)))
	p = filepath.Join(runDir, "~"+hex.EncodeToString(sum[:16])+".sock")
	if len(p) > maxSocketPath {
		return "", fmt.Errorf("control: socket path %s is longer than %d bytes (a shorter %s would do)", p, maxSocketPath, RunDirEnv)
	}
	return p, nil
}

// EscapePath turns an absolute path into one file name, as
// "systemd-escape --path" does: the path is cleaned and its leading and
// trailing slashes dropped, every other "/" becomes "-", ASCII letters,
// digits, ":", "_" and "." (except a leading one) stay, and every other
// byte becomes \xNN (two lower-case hex digits). "/" is "-".
// UnescapePath reverses it.
//
//	/mnt/txfs         mnt-txfs
//	/srv/my-data      srv-my\x2ddata
//	/home/a b/.cache  home-a\x20b-\x2ecache
func EscapePath(path string) string {
	path = strings.Trim(filepath.Clean(path), "/")
	if path == "" {
		return "-"
	}
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0:
			fmt.Fprintf(&b, `\x%02x`, c)
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == ':', c == '_', c == '.':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String()
}

// UnescapePath is the absolute path whose EscapePath is name.
func UnescapePath(name string) (string, error) {
	if name == "-" {
		return "/", nil
	}
	var b strings.Builder
	b.WriteByte('/')
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case '-':
			b.WriteByte('/')
		case '\\':
			if i+4 > len(name) || name[i+1] != 'x' {
				return "", errors.New("control: bad escape in " + strconv.Quote(name))
			}
			n, err := strconv.ParseUint(name[i+2:i+4], 16, 8)
			if err != nil {
				return "", errors.New("control: bad escape in " + strconv.Quote(name))
			}
			b.WriteByte(byte(n))
			i += 3
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
