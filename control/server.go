package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/txfs/txfs"
	"golang.org/x/sys/unix"
)

// Filesystem is what the control socket serves: a mounted volume.
// *txfs.Volume implements it.
type Filesystem interface {
	Status() (txfs.Status, error)
	Clean() (txfs.CleanResult, error)
	Snapshots() ([]txfs.SnapshotInfo, error)
	CreateSnapshot(name string) error
	RestoreSnapshot(name string) error
	DeleteSnapshot(name string) error
	// Metrics is the volume's registry, served at GET /metrics.
	Metrics() *prometheus.Registry
}

// Reloader is a Filesystem whose mount options can change while it is
// mounted (POST /v1/reload): Reload applies options, given as to
// "txfs mount -o", and returns those it applied. Options that cannot
// change while mounted are refused (an error wrapping txfs.ErrInvalid),
// and then nothing changes.
type Reloader interface {
	Reload(options []string) ([]string, error)
}

// Options of Serve.
type Options struct {
	// RunDir is the directory of the socket; "" is RunDir().
	RunDir string
	// Owner is the uid served beside root: the user who mounted (the
	// daemon's uid). Its zero value serves root alone.
	Owner int
}

// Server serves a Filesystem on a control socket until Close.
type Server struct {
	path    string
	created os.FileInfo // the socket file as Listen made it
	http    *http.Server
	served  chan struct{} // closed when the serving goroutine returns

	mu      sync.Mutex
	idle    sync.Cond // signalled when busy drops to 0
	busy    int       // requests being answered
	closing bool      // Close has begun: no request is started any more
}

// closeGrace is how long Close gives connections to finish their last
// answer before it closes them.
const closeGrace = time.Second

// Serve opens the control socket of the volume mounted on mountpoint
// (SocketPath of its absolute path with symlinks resolved) and serves fs
// on it until Close.
func Serve(mountpoint string, fs Filesystem, o Options) (*Server, error) {
	dir, err := canonicalPath(mountpoint)
	if err != nil {
		return nil, err
	}
	runDir := o.RunDir
	if runDir == "" {
		runDir = RunDir()
	}
	path, err := SocketPath(runDir, dir)
	if err != nil {
		return nil, err
	}
	if err := makeRunDir(runDir); err != nil {
		return nil, err
	}
	return ServeSocket(path, fs, o.Owner)
}

// ServeSocket serves fs on a Unix socket at path, replacing the socket a
// crashed daemon may have left there (but nothing that is not a socket).
// The socket is mode 0666: whoever can reach it may connect, and every
// connection's peer credentials decide whether it is served (root and
// owner only).
func ServeSocket(path string, fs Filesystem, owner int) (*Server, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("control: %s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control: removing the old socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	// Close removes the socket only if it is still ours.
	ln.SetUnlinkOnClose(false)
	created, err := os.Lstat(path)
	if err == nil {
		err = os.Chmod(path, 0o666)
	}
	if err != nil {
		ln.Close()
		os.Remove(path)
		return nil, fmt.Errorf("control: %w", err)
	}
	s := &Server{path: path, created: created, served: make(chan struct{})}
	s.http = &http.Server{
		Handler:           s.counted(Handler(fs, owner)),
		ConnContext:       withPeer,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	s.idle.L = &s.mu
	go func() {
		defer close(s.served)
		_ = s.http.Serve(ln) // returns ErrServerClosed after Close
	}()
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// counted runs h for every request begun before Close, and answers 503 to
// the others.
func (s *Server) counted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusServiceUnavailable, errors.New("the volume is being unmounted"))
			return
		}
		s.busy++
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			if s.busy--; s.busy == 0 {
				s.idle.Broadcast()
			}
			s.mu.Unlock()
		}()
		h.ServeHTTP(w, r)
	})
}

// Close waits for the requests being answered (a cleaning pass runs to
// its end) and starts no other, stops accepting connections, gives the
// open ones closeGrace to send their answers and closes them, and
// removes the socket file, unless another daemon has replaced it since.
// Once it returns, the Filesystem is not called any more.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing = true
	for s.busy > 0 {
		s.idle.Wait()
	}
	s.mu.Unlock()
	err := shutdown(s.http)
	<-s.served
	if fi, lerr := os.Lstat(s.path); lerr == nil && os.SameFile(fi, s.created) {
		if rerr := os.Remove(s.path); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

// shutdown stops h: it stops accepting, gives the open connections
// closeGrace to send their answers and closes them. A connection that
// never completes a request cannot hold the unmount for longer.
func shutdown(h *http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	err := h.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = h.Close()
	}
	return err
}

// makeRunDir makes the socket directory, mode 0755, if it is missing,
// and refuses one that someone else could change: the directory must
// belong to root or to this process's user, and others may not write it
// unless it is sticky (as /tmp is).
func makeRunDir(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("control: %w", err)
		}
		// Whatever the umask, others must reach the socket to be
		// told by its credential check that they may not use it.
		if err := os.Chmod(dir, 0o755); err != nil {
			return fmt.Errorf("control: %w", err)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("control: socket directory %s is not a directory", dir)
	case !ok:
		return fmt.Errorf("control: socket directory %s: no owner", dir)
	case st.Uid != 0 && int(st.Uid) != os.Geteuid():
		return fmt.Errorf("control: socket directory %s belongs to uid %d, not to root or to this user", dir, st.Uid)
	case fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0:
		return fmt.Errorf("control: socket directory %s is writable by others (mode %v)", dir, fi.Mode().Perm())
	}
	return nil
}

// canonicalPath is dir absolute and with symlinks resolved, as the kernel
// names a mount point in /proc/self/mountinfo. Only the parent is
// resolved when dir itself cannot be looked at: the root of a FUSE mount
// refuses every user but the one who mounted (without allow_other), and
// a dead mount answers ENOTCONN; and dir is taken as it is when not even
// its parent can be (a user who may not search it asks root's mount).
func canonicalPath(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real, nil
	}
	if parent, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(parent, filepath.Base(abs)), nil
	}
	return abs, nil
}

// peer is who is at the other end of a connection.
type peer struct {
	uid int
	err error // the credentials could not be read
}

type peerKey struct{}

// withPeer reads the peer credentials of a new connection (SO_PEERCRED:
// the process that connected, as the kernel saw it then) into the
// context of its requests.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, peerKey{}, peerOf(c))
}

func peerOf(c net.Conn) peer {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{err: errors.New("not a Unix socket connection")}
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peer{err: err}
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return peer{err: err}
	}
	if credErr != nil {
		return peer{err: credErr}
	}
	return peer{uid: int(cred.Uid)}
}

// endpoint is one operation of the API. Its path may end in a name:
// "{name}" in the key matches one path element, which serve gets.
type endpoint struct {
	method string
	serve  func(fs Filesystem, r *http.Request, name string) (any, error)
}

// endpoints are the API's operations, by path.
var endpoints = map[string]endpoint{
	"/v1/status": {http.MethodGet, func(fs Filesystem, _ *http.Request, _ string) (any, error) {
		st, err := fs.Status()
		return StatusOf(st), err
	}},
	"/v1/clean": {http.MethodPost, func(fs Filesystem, _ *http.Request, _ string) (any, error) {
		res, err := fs.Clean()
		return CleanResultOf(res), err
	}},
	"/v1/reload": {http.MethodPost, func(fs Filesystem, r *http.Request, _ string) (any, error) {
		rl, ok := fs.(Reloader)
		if !ok {
			return nil, fmt.Errorf("reload: %w", txfs.ErrNotSupported)
		}
		applied, err := rl.Reload(r.URL.Query()["o"])
		return ReloadResult{Applied: applied}, err
	}},
	"/v1/segments": {http.MethodGet, func(fs Filesystem, _ *http.Request, _ string) (any, error) {
		sr, ok := fs.(segmentReporter)
		if !ok {
			return nil, fmt.Errorf("segments: %w", txfs.ErrNotSupported)
		}
		st, err := fs.Status()
		if err != nil {
			return nil, err
		}
		segs, err := sr.Segments()
		return SegmentsOf(st.SegmentSize, segs), err
	}},
	"/v1/snapshots": {http.MethodGet, func(fs Filesystem, _ *http.Request, _ string) (any, error) {
		list, err := fs.Snapshots()
		return SnapshotListOf(list), err
	}},
	"/v1/snapshots/{name}/create": {http.MethodPost, func(fs Filesystem, _ *http.Request, name string) (any, error) {
		return SnapshotResult{Name: name, Done: "created"}, fs.CreateSnapshot(name)
	}},
	"/v1/snapshots/{name}/restore": {http.MethodPost, func(fs Filesystem, _ *http.Request, name string) (any, error) {
		return SnapshotResult{Name: name, Done: "restored"}, fs.RestoreSnapshot(name)
	}},
	"/v1/snapshots/{name}/delete": {http.MethodPost, func(fs Filesystem, _ *http.Request, name string) (any, error) {
		return SnapshotResult{Name: name, Done: "deleted"}, fs.DeleteSnapshot(name)
	}},
}

// route finds the endpoint of path, and the name it holds.
func route(path string) (endpoint, string, bool) {
	if ep, ok := endpoints[path]; ok {
		return ep, "", true
	}
	// /v1/snapshots/NAME/ACTION
	parts := strings.Split(path, "/")
	if len(parts) != 5 || parts[3] == "" {
		return endpoint{}, "", false
	}
	name := parts[3]
	parts[3] = "{name}"
	ep, ok := endpoints[strings.Join(parts, "/")]
	return ep, name, ok
}

// Handler answers the API for fs, to root and owner only: every request
// must come through a connection whose peer credentials withPeer read
// (ServeSocket's server does that), else it is refused.
func Handler(fs Filesystem, owner int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := authorize(r.Context(), owner); err != nil {
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusForbidden, err)
			return
		}
		if r.URL.Path == MetricsPath {
			serveMetrics(fs.Metrics(), w, r)
			return
		}
		ep, name, ok := route(r.URL.Path)
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Errorf("no such endpoint: %s", r.URL.Path))
			return
		}
		if r.Method != ep.method {
			w.Header().Set("Allow", ep.method)
			writeError(w, http.StatusMethodNotAllowed, fmt.Errorf("%s wants %s, not %s", r.URL.Path, ep.method, r.Method))
			return
		}
		v, err := ep.serve(fs, r, name)
		if err != nil {
			writeError(w, statusOf(err), err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

// authorize refuses every peer but root and owner.
func authorize(ctx context.Context, owner int) error {
	p, ok := ctx.Value(peerKey{}).(peer)
	switch {
	case !ok:
		return errors.New("permission denied: the peer of this connection is not known")
	case p.err != nil:
		return fmt.Errorf("permission denied: the peer credentials cannot be read: %v", p.err)
	case p.uid == 0 || p.uid == owner:
		return nil
	case owner == 0:
		return fmt.Errorf("permission denied: uid %d may not use this control socket: only root, who mounted the volume, may", p.uid)
	default:
		return fmt.Errorf("permission denied: uid %d may not use this control socket: only root and uid %d, who mounted the volume, may", p.uid, owner)
	}
}

// statusOf is the HTTP status of an error of the filesystem.
func statusOf(err error) int {
	switch txfs.ToErrno(err) {
	case syscall.EROFS, syscall.EBUSY:
		return http.StatusConflict
	case syscall.ENOSPC:
		return http.StatusInsufficientStorage
	case syscall.EOPNOTSUPP:
		return http.StatusNotImplemented
	case syscall.EINVAL:
		return http.StatusBadRequest
	case syscall.EEXIST:
		return http.StatusConflict
	case syscall.ENOENT:
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, errorBody{Error: err.Error(), Code: codeOf(err)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // the client is gone if this fails
}
