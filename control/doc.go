// Package control is the control socket of a mounted txfs volume: the
// daemon serving a mount answers requests about its volume on a Unix
// socket, and "txfs status" and "txfs clean" ask them.
//
// # Protocol
//
// HTTP/1.1 with JSON bodies on a Unix stream socket. Paths begin with the
// API version, /v1/; a change that is not backward compatible gets a new
// prefix, and fields may be added to an answer within a version (clients
// ignore those they do not know). The endpoints:
//
//	GET  /v1/status  the volume's space and cleaner (Status)
//	POST /v1/clean   run one cleaning pass, answer when it is done (CleanResult)
//	GET  /v1/segments  the bytes in use in each segment, and the free ones (Segments)
//	GET  /metrics    the volume's Prometheus metrics (text format)
//
// A request that fails is answered with an HTTP status and the JSON
// {"error": "what went wrong"}: 403 for a peer that may not use the
// socket, 404 for an unknown path, 405 for the wrong method (with an
// Allow header), 409 when the volume cannot do it now (read-only, busy),
// 507 when it has no space for it, 503 once the server is closing (the
// volume is being unmounted), 500 for anything else (I/O errors, damage).
// Endpoints are added to the table in server.go.
//
// # Socket path
//
// The socket of the volume mounted on DIR (absolute, symlinks resolved)
// is RUNDIR/ESCAPED.sock, where RUNDIR is /run/txfs or $TXFS_RUN_DIR and
// ESCAPED is DIR escaped as "systemd-escape --path" does (EscapePath):
// /mnt/txfs is /run/txfs/mnt-txfs.sock. The escaping is reversible
// (UnescapePath). A name too long for a socket address is replaced by "~"
// and 32 hex digits of the SHA-256 of DIR. The daemon creates RUNDIR (mode
// 0755) if it is missing, replaces a socket a crashed daemon left behind
// when it mounts, and removes its socket when it unmounts (unless another
// daemon has replaced it since), once the requests in progress are
// answered (Server.Close).
//
// # Security
//
// The socket file is mode 0666 in a directory everyone can search, so
// anyone can connect: the guard is the peer credentials. The server reads
// every connection's SO_PEERCRED (the uid of the process that connected,
// as the kernel recorded it) and serves only root and the uid that
// mounted the volume (Options.Owner, the daemon's uid); everyone else is
// answered 403 and the connection is closed. A socket directory that
// belongs to another user, or that others may write without the sticky
// bit, is refused.
package control
