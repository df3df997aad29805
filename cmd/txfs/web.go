package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/txfs/txfs/control"
	"github.com/txfs/txfs/web"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// stopGrace is how long a stopping console lets the requests it accepted
// finish (a restore or a cleaning pass waits for the daemon) before it
// closes their connections.
const stopGrace = time.Minute

func webCommand() *cli.Command {
	return &cli.Command{
		Name:      "web",
		Usage:     "serve a web console of mounted volumes",
		ArgsUsage: "DIR...",
		Description: `Serve a web page that shows and changes the txfs volumes mounted on DIR...:
space, cleaner, charts of throughput and latency, a map of the segments,
snapshots (take, restore, delete), a cleaning pass, and a read-only file
browser of the live tree and of each snapshot. The console is a process of
its own: it reaches each daemon through its control socket (so it must run
as root or as the user who mounted), and stopping or killing it never
touches a mount.

It listens on 127.0.0.1:8080 unless --listen says otherwise. An address
that is not a loopback one needs --token-file, and --tls-cert with
--tls-key or --behind-proxy.

SIGTERM (or txfs web -s stop) finishes the requests accepted and exits;
SIGHUP (or txfs web -s reload) reads the --config file, the token file
and the TLS certificate again, keeping the listening socket.

Exit status: 0 stopped, 1 error, 2 usage error.

Examples:
   txfs web /mnt/txfs
   txfs web --listen 0.0.0.0:8443 --token-file /etc/txfs/web.token \
       --tls-cert /etc/txfs/web.crt --tls-key /etc/txfs/web.key /mnt/a /mnt/b
   txfs web -s reload`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "serve on `HOST:PORT`"},
			&cli.StringFlag{Name: "config", Usage: "read more mount points from `FILE`, one a line (# begins a comment); read again on reload"},
			&cli.StringFlag{Name: "token-file", Usage: "require the token in `FILE` (mode 0600 or stricter) with every request"},
			&cli.StringFlag{Name: "tls-cert", Usage: "serve HTTPS with the certificate in `FILE` (PEM)"},
			&cli.StringFlag{Name: "tls-key", Usage: "the private key of --tls-cert, in `FILE` (PEM)"},
			&cli.BoolFlag{Name: "behind-proxy", Usage: "serve plain HTTP to a reverse proxy that serves HTTPS (needs --token-file off localhost)"},
			&cli.StringFlag{Name: "pid-file", Usage: "the console's pid `FILE` (default RUNDIR/web.pid, RUNDIR being /run/txfs or $TXFS_RUN_DIR)"},
			&cli.StringFlag{Name: "signal", Aliases: []string{"s"}, Usage: "`stop|reload`: stop the console of --pid-file (and wait until it has stopped) or make it read its files again; start none"},
		},
		OnUsageError: onUsageError,
		Action:       runWeb,
	}
}

// webSetup is what the command line asks for.
type webSetup struct {
	listen     string
	args       []string // mount points on the command line
	configFile string
	tokenFile  string
	certFile   string
	keyFile    string
	proxy      bool
	loopback   bool
}

func runWeb(c *cli.Context) error {
	pidFile := c.String("pid-file")
	if pidFile == "" {
		pidFile = filepath.Join(control.RunDir(), "web.pid")
	}
	if sig := c.String("signal"); sig != "" {
		if c.NArg() > 0 {
			return usagef("web -s %s takes no DIR", sig)
		}
		return signalConsole(pidFile, sig)
	}
	s := webSetup{listen: c.String("listen"), configFile: c.String("config"), tokenFile: c.String("token-file"),
		certFile: c.String("tls-cert"), keyFile: c.String("tls-key"), proxy: c.Bool("behind-proxy")}
	for _, d := range c.Args().Slice() {
		abs, err := filepath.Abs(d)
		if err != nil {
			return err
		}
		s.args = append(s.args, abs)
	}
	if err := s.check(); err != nil {
		return err
	}
	cfg, cert, err := s.load()
	if err != nil {
		return err
	}
	release, err := lockPidFile(pidFile)
	if err != nil {
		return err
	}
	defer release()

	ln, err := net.Listen("tcp", s.listen)
	if err != nil {
		return err
	}
	var certNow atomic.Pointer[tls.Certificate]
	certNow.Store(cert)
	scheme := "http"
	if cert != nil {
		scheme = "https"
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return certNow.Load(), nil }})
	}
	console := web.New(cfg)
	srv := &http.Server{Handler: console, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	srv.RegisterOnShutdown(console.Close)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("txfs web: serving %s://%s/ for %s (pid %d, pid file %s)\n", scheme, ln.Addr(),
		strings.Join(cfg.Dirs, ", "), os.Getpid(), pidFile)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for {
		select {
		case err := <-served:
			console.Close()
			return err
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				cfg, cert, err := s.load()
				if err != nil {
					fmt.Fprintf(os.Stderr, "txfs web: reload refused, the configuration stays as it was: %v\n", err)
					continue
				}
				console.Reload(cfg)
				certNow.Store(cert)
				fmt.Fprintf(os.Stderr, "txfs web: reloaded: %s\n", strings.Join(cfg.Dirs, ", "))
				continue
			}
			// Stop accepting, let the accepted requests finish.
			ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
			err := srv.Shutdown(ctx)
			cancel()
			if err != nil {
				srv.Close()
				return fmt.Errorf("stopping: requests still running after %v were cut: %w", stopGrace, err)
			}
			return nil
		}
	}
}

// check enforces the access rules: off localhost a token, and TLS or a
// proxy that serves it.
func (s *webSetup) check() error {
	host, _, err := net.SplitHostPort(s.listen)
	if err != nil {
		return usagef("--listen %s: %v", s.listen, err)
	}
	ip := net.ParseIP(host)
	s.loopback = host == "localhost" || ip != nil && ip.IsLoopback()
	if (s.certFile == "") != (s.keyFile == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	if s.certFile != "" && s.proxy {
		return usagef("--behind-proxy serves plain HTTP: it does not go with --tls-cert")
	}
	if !s.loopback && (s.tokenFile == "" || s.certFile == "" && !s.proxy) {
		return usagef("refusing to listen on %s, which is not a loopback address, without a credential and encryption: "+
			"give --token-file, and --tls-cert with --tls-key (or --behind-proxy when a reverse proxy serves HTTPS)", s.listen)
	}
	if len(s.args) == 0 && s.configFile == "" {
		return usagef("no mount point given (txfs web DIR... or --config FILE)")
	}
	return nil
}

// load reads what reload reads again: the mount points of the config
// file, the token and the certificate.
func (s *webSetup) load() (web.Config, *tls.Certificate, error) {
	cfg := web.Config{Dirs: append([]string(nil), s.args...), SecureCookie: s.certFile != "" || s.proxy,
		LoopbackOnly: s.loopback && !s.proxy}
	if s.configFile != "" {
		dirs, err := readDirList(s.configFile)
		if err != nil {
			return cfg, nil, err
		}
		for _, d := range dirs {
			if !slices.Contains(cfg.Dirs, d) {
				cfg.Dirs = append(cfg.Dirs, d)
			}
		}
	}
	if s.tokenFile != "" {
		token, err := readToken(s.tokenFile)
		if err != nil {
			return cfg, nil, err
		}
		cfg.Token = token
	}
	if s.certFile == "" {
		return cfg, nil, nil
	}
	cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return cfg, nil, fmt.Errorf("TLS certificate: %w", err)
	}
	return cfg, &cert, nil
}

// readDirList reads a config file: one mount point a line, absolute;
// blank lines and those that begin with # are skipped.
func readDirList(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !filepath.IsAbs(line) {
			return nil, fmt.Errorf("config %s:%d: %q is not an absolute path", path, n, line)
		}
		dirs = append(dirs, filepath.Clean(line))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return dirs, nil
}

// readToken reads the token file, which others may not read.
func readToken(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s: mode %v lets others read it: chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if len(token) < 16 {
		return "", fmt.Errorf("token file %s: a token has at least 16 characters", path)
	}
	return token, nil
}

// lockPidFile writes this process's pid into path and holds a lock on it
// while the console runs: the lock says the pid is alive, and that no
// other console uses the file. release removes it.
func lockPidFile(path string) (release func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("pid file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pid file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid, _ := readPid(path)
			return nil, fmt.Errorf("another txfs web (pid %d) runs with the pid file %s: stop it, or give --pid-file", pid, path)
		}
		return nil, fmt.Errorf("pid file %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pid file: %w", err)
	}
	return func() {
		os.Remove(path)
		f.Close()
	}, nil
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s holds no pid", path)
	}
	return pid, nil
}

// signalConsole sends the console of pidFile SIGTERM (stop, and waits
// until it has stopped) or SIGHUP (reload).
func signalConsole(pidFile, what string) error {
	sig := map[string]syscall.Signal{"stop": syscall.SIGTERM, "reload": syscall.SIGHUP}[what]
	if sig == 0 {
		return usagef("-s takes stop or reload, not %q", what)
	}
	f, err := os.Open(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no txfs web is running: there is no pid file %s", pidFile)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	// The console holds the lock while it runs.
	if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil {
		return fmt.Errorf("no txfs web is running: nothing holds the pid file %s", pidFile)
	}
	pid, err := readPid(pidFile)
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signalling txfs web (pid %d): %w", pid, err)
	}
	if sig != syscall.SIGTERM {
		return nil
	}
	deadline := time.Now().Add(stopGrace + 5*time.Second)
	for time.Now().Before(deadline) {
		if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("txfs web (pid %d) has not stopped after %v", pid, stopGrace)
}
