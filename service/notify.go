package service

import (
	"fmt"
	"net"
	"os"
)

// NotifySocketEnv names the variable in which systemd gives a service of
// Type=notify the socket to send its state to.
const NotifySocketEnv = "NOTIFY_SOCKET"

// Notify sends state (newline-separated assignments such as "READY=1" or
// "STOPPING=1") to the service manager, as sd_notify(3) does: one
// datagram to the Unix socket named by $NOTIFY_SOCKET, an absolute path
// or, when it starts with "@", a name in the abstract namespace. It
// reports whether there was a socket to send to; without one (not started
// by systemd, or not Type=notify) it does nothing.
func Notify(state string) (bool, error) {
	addr := os.Getenv(NotifySocketEnv)
	if addr == "" {
		return false, nil
	}
	if addr[0] != '/' && addr[0] != '@' {
		return true, fmt.Errorf("%s=%s: want an absolute path or @name", NotifySocketEnv, addr)
	}
	// Go's Unix addresses already map a leading "@" to the abstract
	// namespace (a NUL first byte) on Linux.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return true, fmt.Errorf("notify %s: %w", addr, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return true, fmt.Errorf("notify %s: %w", addr, err)
	}
	return true, nil
}
