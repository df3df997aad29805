package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/control"
)

// metricsOption checks the address of "-o metrics=ADDR": HOST:PORT, with
// a port number (the host may be empty: every address).
func metricsOption(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
		return usagef("metrics=%s: want HOST:PORT with a port from 1 to 65535, such as 127.0.0.1:9567", addr)
	}
	return nil
}

// listenMetrics opens the TCP listener of "-o metrics=ADDR", if asked for,
// before the image is opened: an address that cannot be had fails the
// mount at once.
func listenMetrics(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	return control.ListenMetrics(addr)
}

// serveMetrics serves v's metrics on ln, if there is one; stop stops it
// (once, however often it is called).
func serveMetrics(ln net.Listener, v *txfs.Volume) (stop func()) {
	if ln == nil {
		return func() {}
	}
	s := control.ServeMetrics(ln, v.Metrics())
	return sync.OnceFunc(func() {
		if err := s.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "txfs: closing the metrics listener %s: %v\n", ln.Addr(), err)
		}
	})
}
