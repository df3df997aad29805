package service

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrRunning reports a pid file whose process still holds it.
var ErrRunning = errors.New("already running")

// PidFile is a pid file its process holds a lock on (flock) for as long
// as it runs: a second process that wants the same file is refused, and
// a file left by a process that was killed is taken over.
type PidFile struct {
	path string
	f    *os.File
}

// CreatePidFile writes pid to path, creating its directory if needed, and
// locks it. It fails with an error wrapping ErrRunning, naming the pid in
// the file, while another process holds it.
func CreatePidFile(path string, pid int) (*PidFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("pid file: %w", err)
	}
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("pid file: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			data, _ := os.ReadFile(path)
			f.Close()
			if err == syscall.EWOULDBLOCK {
				return nil, fmt.Errorf("%w: process %s holds %s", ErrRunning, strings.TrimSpace(string(data)), path)
			}
			return nil, fmt.Errorf("pid file %s: lock: %w", path, err)
		}
		// The holder may have removed the file between our open and our
		// lock: then the lock is on a file nobody else can find.
		if !samePath(f, path) {
			f.Close()
			continue
		}
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("pid file: %w", err)
		}
		if _, err := f.WriteAt([]byte(strconv.Itoa(pid)+"\n"), 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("pid file: %w", err)
		}
		return &PidFile{path: path, f: f}, nil
	}
}

// samePath reports whether f is the file at path.
func samePath(f *os.File, path string) bool {
	held, err := f.Stat()
	if err != nil {
		return false
	}
	now, err := os.Stat(path)
	return err == nil && os.SameFile(held, now)
}

// Path is the pid file's path.
func (p *PidFile) Path() string { return p.path }

// Remove deletes the pid file, if it is still the one this process
// locked, and lets it go.
func (p *PidFile) Remove() error {
	var err error
	if samePath(p.f, p.path) {
		err = os.Remove(p.path)
	}
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	return err
}
