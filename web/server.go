// Package web is the web console of txfs mounts ("txfs web"): an HTTP
// server, apart from the daemons, that shows and changes mounted volumes
// only through their control sockets (package control) and reads their
// trees, live and snapshots, as any process does, through the mount.
//
// The page (static/, embedded) speaks a small JSON API of its own:
//
//	GET  /api/state                 every volume: status, snapshots, segments, metrics
//	GET  /api/events                the same as server-sent events, every second and after each change
//	POST /api/clean?dir=D           one cleaning pass
//	POST /api/snapshot?dir=D&name=ID&op=create|restore|delete
//	GET  /api/files?dir=D[&snap=ID]&path=P   a directory's entries, or a file's head
//	GET  /api/download?dir=D[&snap=ID]&path=P
//
// D must be one of the configured mount points. Errors are
// {"error": "words"} with an HTTP status; the daemon's own message is
// passed on as it is.
package web

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/control"
)

//go:embed static
var static embed.FS

// Config is what the console serves, and to whom. Reload replaces it.
type Config struct {
	// Dirs are the mount points shown, in this order.
	Dirs []string
	// Token, if set, must come with every request: as the bearer token
	// of an Authorization header, or as the cookie the login page sets.
	Token string
	// SecureCookie marks the login cookie Secure (the browser reaches
	// the console over HTTPS, directly or through a proxy).
	SecureCookie bool
	// LoopbackOnly: the console listens on a loopback address alone.
	// Without a token it then refuses requests whose Host is not a
	// loopback name, so that no other site can reach it through a DNS
	// name that points to 127.0.0.1.
	LoopbackOnly bool
}

// Server is the console. It is an http.Handler.
type Server struct {
	mu  sync.RWMutex
	cfg Config

	mux  *http.ServeMux
	hub  *hub
	stop chan struct{}
	once sync.Once
}

// cookieName is the login cookie.
const cookieName = "txfs_console"

// New returns the console for cfg. Close stops its background work.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, mux: http.NewServeMux(), stop: make(chan struct{})}
	s.hub = newHub(s.collect, s.stop)
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	files := http.FileServer(http.FS(sub))
	s.mux.Handle("GET /", files)
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.HandleFunc("GET /api/state", s.state)
	s.mux.HandleFunc("GET /api/events", s.events)
	s.mux.HandleFunc("POST /api/clean", s.clean)
	s.mux.HandleFunc("POST /api/snapshot", s.snapshot)
	s.mux.HandleFunc("GET /api/files", s.files)
	s.mux.HandleFunc("GET /api/download", s.download)
	return s
}

// Reload replaces the configuration; requests under way finish with the
// old one.
func (s *Server) Reload(cfg Config) {
	s.mu.Lock()
	s.cfg = cfg
	s.mu.Unlock()
	s.hub.kick()
}

// Close ends the event streams (so that http.Server.Shutdown need not
// wait for them) and the polling of the volumes.
func (s *Server) Close() { s.once.Do(func() { close(s.stop) }) }

func (s *Server) config() Config {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cfg
}

// ServeHTTP checks who asks, then answers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	cfg := s.config()
	if cfg.Token == "" && cfg.LoopbackOnly && !loopbackHost(r.Host) {
		writeError(w, http.StatusForbidden, "this console answers only to localhost names, not to "+r.Host)
		return
	}
	if cfg.Token != "" && !s.authorized(r, cfg.Token) && r.URL.Path != "/login" && !strings.HasPrefix(r.URL.Path, "/style") {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			writeError(w, http.StatusUnauthorized, "this console needs its access token: log in at /login, or send Authorization: Bearer TOKEN")
		} else {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
		}
		return
	}
	// A form on another site cannot add a header: changes must come
	// from the console's own page (or a client that sets it on purpose).
	if r.Method == http.MethodPost && r.URL.Path != "/login" && r.Header.Get("X-Txfs-Console") == "" {
		writeError(w, http.StatusForbidden, "changes need the header X-Txfs-Console: 1")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorized: the request carries the token, in a header or the cookie.
func (s *Server) authorized(r *http.Request, token string) bool {
	given := ""
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
		given = strings.TrimPrefix(a, "Bearer ")
	} else if c, err := r.Cookie(cookieName); err == nil {
		given = c.Value
	}
	return given != "" && subtle.ConstantTimeCompare([]byte(given), []byte(token)) == 1
}

// loopbackHost: a Host header naming this machine's loopback interface.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	http.ServeFileFS(w, r, static, "static/login.html")
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	cfg := s.config()
	token := r.PostFormValue("token")
	if cfg.Token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(cfg.Token)) != 1 {
		http.Redirect(w, r, "/login#wrong", http.StatusSeeOther)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: token, Path: "/", HttpOnly: true,
		Secure: cfg.SecureCookie, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// volume is the mount point a request names, if it is one of the
// configured ones.
func (s *Server) volume(r *http.Request) (string, *apiError) {
	dir := r.URL.Query().Get("dir")
	if !slices.Contains(s.config().Dirs, dir) {
		return "", &apiError{http.StatusNotFound, "the console does not serve " + quote(dir)}
	}
	return dir, nil
}

// client is the control socket of the mount point a request names.
func (s *Server) client(r *http.Request) (*control.Client, *apiError) {
	dir, e := s.volume(r)
	if e != nil {
		return nil, e
	}
	return dial(dir)
}

// dial is the control socket of dir.
func dial(dir string) (*control.Client, *apiError) {
	c, err := control.Dial(dir)
	if err != nil {
		if errors.Is(err, control.ErrNoSocket) {
			return nil, &apiError{http.StatusBadGateway, dir + " is not a mounted txfs volume (no control socket)"}
		}
		return nil, &apiError{http.StatusBadGateway, err.Error()}
	}
	return c, nil
}

func (s *Server) state(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(s.hub.current())
}

func (s *Server) clean(w http.ResponseWriter, r *http.Request) {
	c, e := s.client(r)
	if e != nil {
		e.write(w)
		return
	}
	defer c.Close()
	res, err := c.Clean()
	s.hub.kick()
	if err != nil {
		controlError(err).write(w)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) snapshot(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	op, name := q.Get("op"), q.Get("name")
	if op != "create" && op != "restore" && op != "delete" {
		writeError(w, http.StatusBadRequest, "a snapshot operation is create, restore or delete, not "+quote(op))
		return
	}
	if err := txfs.CheckSnapshotName(name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	c, e := s.client(r)
	if e != nil {
		e.write(w)
		return
	}
	defer c.Close()
	res, err := c.Snapshot(op, name)
	s.hub.kick()
	if err != nil {
		e := controlError(err)
		// The daemon's words are generic; these two are what racing
		// browsers meet.
		switch {
		case errors.Is(err, txfs.ErrNoSnapshot):
			e.message = "there is no snapshot " + quote(name) + " (any more: it may just have been deleted elsewhere)"
		case errors.Is(err, txfs.ErrSnapshotExists):
			e.message = "a snapshot " + quote(name) + " exists already"
		}
		e.write(w)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// apiError is an answer in words.
type apiError struct {
	status  int
	message string
}

func (e *apiError) write(w http.ResponseWriter) { writeError(w, e.status, e.message) }

// controlError passes on what the daemon said, with its status; an error
// in reaching it is a bad gateway.
func controlError(err error) *apiError {
	var ce *control.Error
	if errors.As(err, &ce) {
		return &apiError{ce.StatusCode, ce.Message}
	}
	return &apiError{http.StatusBadGateway, err.Error()}
}

func writeError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]string{"error": message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the browser is gone if this fails
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
