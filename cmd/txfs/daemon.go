package main

// txfs mount --daemon: three processes.
//
//   - The one started (by a user, or by mount(8) through mount.fuse3)
//     checks what it can, starts the supervisor and waits on a pipe for
//     "ready" or for the reason the mount failed; then it exits 0, or with
//     the failed server's exit status.
//   - The supervisor, /proc/self/exe again (Go cannot fork) with
//     $TXFS_SUPERVISOR set, in a session of its own, its output in the log
//     file, its pid in the pid file. It runs the serving process, restarts
//     it after a crash, and stops it on SIGTERM or SIGINT.
//   - The serving process: "txfs mount --ready-fd 3 IMAGE DIR", the
//     foreground mount, which says "ready" on the pipe once the mount is
//     usable.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/txfs/txfs/control"
	txfuse "github.com/txfs/txfs/fuse"
	"github.com/txfs/txfs/service"
	"github.com/urfave/cli/v2"
)

// supervisorEnv is set in the environment of the re-executed supervisor.
const supervisorEnv = "TXFS_SUPERVISOR"

// The log file of a daemon is $TXFS_LOG_DIR/ESCAPED.log, /var/log/txfs
// unless set; its pid file is in the run directory of the control sockets.
const (
	defaultLogDir = "/var/log/txfs"
	logDirEnv     = "TXFS_LOG_DIR"
)

// daemonFlags are the flags of "txfs mount" that go with --daemon.
func daemonFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{
			Name:  "daemon",
			Usage: "serve in the background: return once the mount is usable, restart the server after a crash",
		},
		&cli.StringFlag{
			Name:  "log",
			Usage: "with --daemon, append the daemon's messages to `FILE` (default /var/log/txfs/ESCAPED.log, $TXFS_LOG_DIR replaces /var/log/txfs)",
		},
		&cli.StringFlag{
			Name:  "pid-file",
			Usage: "with --daemon, write the supervisor's pid to `FILE` (default /run/txfs/ESCAPED.pid, $TXFS_RUN_DIR replaces /run/txfs)",
		},
	}
}

// daemonConfig is what a daemon serves, every path absolute: the daemon
// runs in "/".
type daemonConfig struct {
	image, dir string
	// mountPath is dir with symlinks resolved, as mountinfo shows it,
	// found before anything is mounted there: looking at dir once it
	// is mounted asks the server, which may not answer.
	mountPath  string
	opts       []string // the -o options, as given
	log, pid   string
	cpuProfile string
	memProfile string
	nonEmpty   bool
}

// instanceName is the file name, without suffix, of the log and pid files
// of the mount on dir: dir as "systemd-escape --path" writes it, as for
// the control socket, or a hash of it when that is too long for a name.
func instanceName(dir string) string {
	name := control.EscapePath(dir)
	if len(name) > 200 {
		sock, _ := control.SocketPath("/", dir) // "~HASH.sock" for long names
		name = strings.TrimSuffix(filepath.Base(sock), ".sock")
	}
	return name
}

// newDaemonConfig reads the daemon's flags; it fails with a usage error on
// --log or --pid-file without --daemon.
func newDaemonConfig(c *cli.Context, image, dir string, nonEmpty bool) (daemonConfig, error) {
	if !c.Bool("daemon") {
		for _, f := range []string{"log", "pid-file"} {
			if c.IsSet(f) {
				return daemonConfig{}, usagef("--%s goes with --daemon", f)
			}
		}
		return daemonConfig{}, nil
	}
	d := daemonConfig{opts: c.StringSlice("o"), nonEmpty: nonEmpty}
	abs := func(p string) (string, error) {
		if p == "" {
			return "", nil
		}
		return filepath.Abs(p)
	}
	var err error
	paths := []struct {
		to   *string
		from string
	}{
		{&d.image, image}, {&d.dir, dir}, {&d.log, c.String("log")}, {&d.pid, c.String("pid-file")},
		{&d.cpuProfile, c.String("cpuprofile")}, {&d.memProfile, c.String("memprofile")},
	}
	for _, p := range paths {
		if *p.to, err = abs(p.from); err != nil {
			return d, err
		}
	}
	d.mountPath = d.dir
	if real, err := filepath.EvalSymlinks(d.dir); err == nil {
		d.mountPath = real
	}
	if d.log == "" {
		dir := os.Getenv(logDirEnv)
		if dir == "" {
			dir = defaultLogDir
		}
		d.log = filepath.Join(dir, instanceName(d.mountPath)+".log")
	}
	if d.pid == "" {
		d.pid = filepath.Join(control.RunDir(), instanceName(d.mountPath)+".pid")
	}
	return d, nil
}

// args is the command line of the supervisor and, with serve, of the
// serving process.
func (d daemonConfig) args(serve bool) []string {
	args := []string{"txfs", "mount"}
	if serve {
		args = append(args, "--ready-fd", "3")
	} else {
		args = append(args, "--daemon", "--log", d.log, "--pid-file", d.pid)
	}
	for _, o := range d.opts {
		args = append(args, "-o", o)
	}
	if d.cpuProfile != "" {
		args = append(args, "--cpuprofile", d.cpuProfile)
	}
	if d.memProfile != "" {
		args = append(args, "--memprofile", d.memProfile)
	}
	return append(args, "--", d.image, d.dir)
}

// exitStatusError is a failure with its exit status: the serving
// process's, reported by the supervisor.
type exitStatusError struct {
	status int
	msg    string
}

func (e exitStatusError) Error() string { return e.msg }

// runDaemon is "txfs mount --daemon": the supervisor when re-executed as
// one, else the process that starts it.
func runDaemon(d daemonConfig) error {
	if os.Getenv(supervisorEnv) != "" {
		return supervise(d)
	}
	return startSupervisor(d)
}

// startSupervisor starts the supervisor and returns once the mount is
// usable, or with the reason it is not.
func startSupervisor(d daemonConfig) error {
	// Refuse what the server would refuse before anything is started.
	if err := checkMountPoint(d.dir, d.nonEmpty); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(d.log), 0o755); err != nil {
		return fmt.Errorf("--log: %w", err)
	}
	logFile, err := os.OpenFile(d.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("--log: %w", err)
	}
	defer logFile.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()

	cmd := exec.Command(self())
	cmd.Args = d.args(false)
	cmd.Env = append(environWithout(service.NotifySocketEnv, supervisorEnv), supervisorEnv+"=1")
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, logFile, logFile
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// A signal from now on stops the supervisor before this returns.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("starting the daemon: %w", err)
	}

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- s
	}()
	var s string
	select {
	case s = <-line:
	case sig := <-sigs:
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		return fmt.Errorf("%v: stopped the daemon before %s was mounted", sig, d.dir)
	}
	if s == "ready\n" {
		return nil // the supervisor goes on alone
	}
	werr := cmd.Wait()
	if status, msg, ok := parseFailure(s); ok {
		return exitStatusError{status, msg}
	}
	return fmt.Errorf("the daemon exited (%v) before %s was mounted; see %s", werr, d.dir, d.log)
}

// self is the path of this program, to run it again. The kernel names a
// process after the file it runs (ps, /proc/PID/comm): "txfs", not "exe".
// /proc/self/exe serves when the file is gone.
func self() string {
	if p, err := os.Executable(); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "/proc/self/exe"
}

// environWithout is the environment without the variables named.
func environWithout(names ...string) []string {
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}

// The supervisor's report on the pipe when the first mount fails:
// "exit STATUS MESSAGE\n".
func formatFailure(status int, msg string) string {
	return fmt.Sprintf("exit %d %s\n", status, strings.ReplaceAll(msg, "\n", "; "))
}

func parseFailure(s string) (int, string, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSuffix(s, "\n"), "exit ")
	if !ok {
		return 0, "", false
	}
	num, msg, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(num)
	if err != nil || status <= 0 {
		return 0, "", false
	}
	return status, msg, true
}

// server is one serving process.
type server struct {
	cmd   *exec.Cmd
	ready chan bool     // true on "ready", false if the pipe closed first
	done  chan struct{} // closed once exited
	err   error         // cmd.Wait's, once done
	// logFrom is the size of the log before it started: what it wrote
	// comes after.
	logFrom int64
}

// status is the exit status of a server that has exited: a signal
// counts as 1.
func (s *server) status() int {
	var ee *exec.ExitError
	if errors.As(s.err, &ee) && ee.ExitCode() > 0 {
		return ee.ExitCode()
	}
	if s.err != nil {
		return exitError
	}
	return exitOK
}

// startServer starts the serving process.
func startServer(d daemonConfig) (*server, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s := &server{ready: make(chan bool, 1), done: make(chan struct{})}
	if st, err := os.Stat(d.log); err == nil {
		s.logFrom = st.Size()
	}
	s.cmd = exec.Command(self())
	s.cmd.Args = d.args(true)
	s.cmd.Env = environWithout(supervisorEnv)
	s.cmd.Dir = "/"
	s.cmd.Stdin, s.cmd.Stdout, s.cmd.Stderr = os.Stdin, os.Stderr, os.Stderr
	s.cmd.ExtraFiles = []*os.File{w}
	err = s.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		r.Close()
		s.ready <- line == "ready\n"
	}()
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

// failure is the error message the server printed last in the log
// ("txfs: ..."), or a pointer to the log.
func (s *server) failure(log string) string {
	f, err := os.Open(log)
	if err == nil {
		defer f.Close()
		if _, err = f.Seek(s.logFrom, io.SeekStart); err == nil {
			msg := ""
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if m, ok := strings.CutPrefix(sc.Text(), "txfs: "); ok {
					msg = m
				}
			}
			if msg != "" {
				return msg
			}
		}
	}
	return fmt.Sprintf("the server exited (%v); see %s", s.err, log)
}

// supervise is the supervisor: it serves the mount until it is unmounted
// or the supervisor is told to stop, restarting the server after a crash.
// It reports "ready" or why the first mount failed on file descriptor 3.
func supervise(d daemonConfig) error {
	logger := log.New(os.Stderr, fmt.Sprintf("txfs supervisor[%d]: ", os.Getpid()), log.LstdFlags|log.Lmsgprefix)
	report := os.NewFile(3, "report")
	syscall.CloseOnExec(3) // the servers have a pipe of their own
	tell := func(msg string) {
		if report != nil {
			_, _ = report.WriteString(msg)
			report.Close()
			report = nil
		}
	}
	defer tell(formatFailure(exitError, "the supervisor failed; see "+d.log))

	// Catch the signals before there is a server to stop.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	signal.Ignore(syscall.SIGHUP)
	pid, err := service.CreatePidFile(d.pid, os.Getpid())
	if err != nil {
		tell(formatFailure(exitStatus(err), err.Error()))
		return err
	}
	defer func() {
		if err := pid.Remove(); err != nil {
			logger.Printf("removing the pid file: %v", err)
		}
	}()
	logger.Printf("serving %s on %s", d.image, d.dir)

	restarts := service.NewRestarts(service.DefaultRestartPolicy)
	served := false // a server has been ready once
	for {
		s, err := startServer(d)
		if err != nil {
			err = fmt.Errorf("starting the server: %w", err)
			tell(formatFailure(exitError, err.Error()))
			return err
		}
		stopping := false
		waiting := s.ready
		watchdog := time.NewTicker(hangCheck)
		hung := 0 // checks that found the server killed but not gone
	wait:
		for {
			select {
			case <-watchdog.C:
				if !killedButAlive(s.cmd.Process.Pid) {
					hung = 0
					continue
				}
				if hung++; hung == 2 {
					logger.Printf("server %d was killed but waits on its own mount; aborting the mount's FUSE connection", s.cmd.Process.Pid)
					if err := abortConnection(d.mountPath, d.image); err != nil {
						logger.Printf("aborting the FUSE connection of %s: %v", d.dir, err)
					}
				}
			case ok := <-waiting:
				waiting = nil
				if !ok {
					continue // it exits: done says how
				}
				if err := checkUsable(d.dir); err != nil && !served {
					logger.Printf("the server said ready, but %v; stopping it", err)
					_ = s.cmd.Process.Signal(syscall.SIGTERM)
					<-s.done
					tell(formatFailure(exitError, err.Error()))
					return err
				}
				if !served {
					tell("ready\n")
					served = true
				}
				logger.Printf("server %d serves %s", s.cmd.Process.Pid, d.dir)
			case sig := <-sigs:
				logger.Printf("%v: stopping server %d", sig, s.cmd.Process.Pid)
				stopping = true
				_ = s.cmd.Process.Signal(syscall.SIGTERM)
			case <-s.done:
				break wait
			}
		}
		watchdog.Stop()

		status := s.status()
		switch {
		case stopping && !served:
			tell(formatFailure(exitError, "stopped before the mount was ready"))
			detachDead(d.dir, logger)
			return errors.New("stopped before the mount was ready")
		case stopping || status == exitOK:
			if status != exitOK {
				detachDead(d.dir, logger)
				err := fmt.Errorf("server %d exited while stopping: %v", s.cmd.Process.Pid, s.err)
				logger.Print(err)
				return err
			}
			logger.Printf("server %d exited after the unmount of %s", s.cmd.Process.Pid, d.dir)
			return nil
		case !served:
			msg := s.failure(d.log)
			tell(formatFailure(status, msg))
			detachDead(d.dir, logger)
			return exitStatusError{status, msg}
		}

		logger.Printf("server %d exited: %v", s.cmd.Process.Pid, s.err)
		detachDead(d.dir, logger)
		if status == exitUsage || status == exitBusy {
			err := fmt.Errorf("not restarting: %s", s.failure(d.log))
			logger.Print(err)
			return err
		}
		delay, ok := restarts.Crashed(time.Now())
		if !ok {
			p := service.DefaultRestartPolicy
			err := fmt.Errorf("giving up: %d restarts within %v", p.Limit, p.Window)
			logger.Print(err)
			return err
		}
		logger.Printf("restarting in %v", delay)
		select {
		case <-time.After(delay):
		case sig := <-sigs:
			logger.Printf("%v: not restarting", sig)
			return nil
		}
	}
}

// checkUsable checks that dir answers as the root of a txfs mount.
func checkUsable(dir string) error {
	on, err := txfuse.MountsOn(dir)
	if err != nil {
		return err
	}
	if len(on) == 0 || on[len(on)-1].Type != "fuse.txfs" {
		return fmt.Errorf("%s is not a txfs mount", dir)
	}
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("%s does not answer: %w", dir, err)
	}
	return nil
}

// detachDead lazily unmounts the txfs mount a server that died left on
// dir, so that the next one can mount there.
func detachDead(dir string, logger *log.Logger) {
	dead, err := detachDeadMount(dir)
	switch {
	case err != nil:
		logger.Printf("unmounting the dead mount on %s: %v", dir, err)
	case dead:
		logger.Printf("unmounted the dead mount on %s", dir)
	}
}

// detachDeadMount lazily unmounts the txfs mount on top of dir if its
// server is gone (the mount answers ENOTCONN), and reports whether it
// did. Other mounts, and live ones, stay.
func detachDeadMount(dir string) (bool, error) {
	on, err := txfuse.MountsOn(dir)
	if err != nil || len(on) == 0 || on[len(on)-1].Type != "fuse.txfs" {
		return false, err
	}
	// Reading the directory asks the server; a stat may be answered
	// from the kernel's cache.
	if _, err := isEmptyDir(dir); !errors.Is(err, syscall.ENOTCONN) {
		return false, nil
	}
	return true, txfuse.UnmountDir(dir, true)
}

// hangCheck is how often the supervisor looks for a server that was
// killed but cannot exit.
const hangCheck = 500 * time.Millisecond

// killedButAlive reports whether process pid has a SIGKILL pending that
// has not ended it: a thread of a killed server waits, uninterruptibly,
// for the answer to a request on its own mount (go-fuse's first request,
// a FLUSH as the dying process closes a file it had open there), which
// only its threads, now gone, could give. The connection stays open as
// long as that thread lives, so nothing ever answers.
func killedButAlive(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, task := range tasks {
		data, err := os.ReadFile(task)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			name, val, _ := strings.Cut(line, ":")
			if name != "SigPnd" && name != "ShdPnd" {
				continue
			}
			mask, err := strconv.ParseUint(strings.TrimSpace(val), 16, 64)
			if err == nil && mask&(1<<(syscall.SIGKILL-1)) != 0 {
				return true
			}
		}
	}
	return false
}

// abortConnection aborts the FUSE connection of the txfs mount of image on
// mountPath (as mountinfo shows it), as "echo 1 >
// /sys/fs/fuse/connections/N/abort" does, or, where fusectl is not
// mounted, a forced unmount, which aborts it too: every request waiting
// on it fails, and a server stuck on one can exit. It never looks at the
// mount point itself, which would wait for the server too.
func abortConnection(mountPath, image string) error {
	all, err := txfuse.Mounts()
	if err != nil {
		return err
	}
	var top *txfuse.MountInfo
	for i := range all {
		if all[i].Dir == mountPath {
			top = &all[i]
		}
	}
	if top == nil || top.Type != "fuse.txfs" || top.Source != image {
		return fmt.Errorf("no txfs mount of %s on %s", image, mountPath)
	}
	if _, minor, ok := strings.Cut(top.Dev, ":"); ok {
		abort := filepath.Join("/sys/fs/fuse/connections", minor, "abort")
		if f, err := os.OpenFile(abort, os.O_WRONLY, 0); err == nil {
			_, err = f.WriteString("1")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				return nil
			}
		}
	}
	// The unmount itself then fails (busy): the caller detaches lazily.
	if err := syscall.Unmount(mountPath, syscall.MNT_FORCE); err != nil && err != syscall.EBUSY {
		return fmt.Errorf("umount -f %s: %w", mountPath, err)
	}
	return nil
}
