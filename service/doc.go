// Package service has what txfs needs to run as a long-lived service: the
// systemd notification protocol (Notify), the restart policy of the
// supervisor of "txfs mount --daemon" (Restarts), and a locked pid file
// (PidFile), which makes one supervisor at most serve a mount point.
package service
