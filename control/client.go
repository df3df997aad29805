package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
)

// ErrNoSocket: the mount point has no control socket (it is not a txfs
// mount, or its daemon could not open one).
var ErrNoSocket = errors.New("no control socket")

// Error is a request the server refused or failed: the HTTP status and
// the server's message.
type Error struct {
	StatusCode int
	Message    string
	Code       string // errorBody's code
}

func (e *Error) Error() string { return e.Message }

// Unwrap is the txfs error the server's code stands for, so that
// errors.Is(err, txfs.ErrNoSnapshot) works the same on a mount and on an
// image.
func (e *Error) Unwrap() error {
	for _, c := range errorCodes {
		if c.code == e.Code {
			return c.err
		}
	}
	return nil
}

// Client talks to the control socket of one mounted volume.
type Client struct {
	path string
	http *http.Client
}

// Dial returns a client of the control socket of the volume mounted on
// mountpoint, in RunDir(). It fails with ErrNoSocket if there is no
// socket; connections are made by each request.
func Dial(mountpoint string) (*Client, error) {
	dir, err := canonicalPath(mountpoint)
	if err != nil {
		return nil, err
	}
	path, err := SocketPath(RunDir(), dir)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, fmt.Errorf("%w at %s", ErrNoSocket, path)
	}
	if err != nil {
		return nil, err
	}
	if fi.Mode().Type() != os.ModeSocket {
		return nil, fmt.Errorf("%w: %s is not a socket", ErrNoSocket, path)
	}
	return DialSocket(path), nil
}

// DialSocket returns a client of the control socket at path.
func DialSocket(path string) *Client {
	var d net.Dialer
	return &Client{path: path, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
	}}}
}

// Path is the socket's path.
func (c *Client) Path() string { return c.path }

// Close closes the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Status asks for the volume's status (GET /v1/status).
func (c *Client) Status() (Status, error) {
	var st Status
	err := c.Do(http.MethodGet, "/v1/status", &st)
	return st, err
}

// Clean runs one cleaning pass and waits for it (POST /v1/clean).
func (c *Client) Clean() (CleanResult, error) {
	var res CleanResult
	err := c.Do(http.MethodPost, "/v1/clean", &res)
	return res, err
}

// Segments asks how full each segment is (GET /v1/segments).
func (c *Client) Segments() (Segments, error) {
	var segs Segments
	err := c.Do(http.MethodGet, "/v1/segments", &segs)
	return segs, err
}

// Reload applies mount options to the mounted volume (POST
// /v1/reload?o=...).
func (c *Client) Reload(options []string) (ReloadResult, error) {
	q := url.Values{"o": options}
	var res ReloadResult
	err := c.Do(http.MethodPost, "/v1/reload?"+q.Encode(), &res)
	return res, err
}

// Snapshots lists the snapshots (GET /v1/snapshots).
func (c *Client) Snapshots() (SnapshotList, error) {
	var list SnapshotList
	err := c.Do(http.MethodGet, "/v1/snapshots", &list)
	return list, err
}

// Snapshot runs a snapshot operation, "create", "restore" or "delete", on
// snapshot name (POST /v1/snapshots/NAME/OP).
func (c *Client) Snapshot(op, name string) (SnapshotResult, error) {
	var res SnapshotResult
	err := c.Do(http.MethodPost, "/v1/snapshots/"+url.PathEscape(name)+"/"+op, &res)
	return res, err
}

// maxBody bounds what the client reads of an answer.
const maxBody = 1 << 20

// Do sends a request without a body to path (such as "/v1/status") and
// decodes the JSON answer into out. An answer other than 200 is an
// *Error.
func (c *Client) Do(method, path string, out any) error {
	body, err := c.request(method, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("control socket %s: %s %s: %w", c.path, method, path, err)
	}
	return nil
}

// Metrics fetches the volume's metrics in the Prometheus text format
// (GET /metrics).
func (c *Client) Metrics() ([]byte, error) {
	return c.request(http.MethodGet, MetricsPath)
}

// request sends a request and returns the body of its answer, or the
// server's error.
func (c *Client) request(method, path string) ([]byte, error) {
	req, err := http.NewRequest(method, "http://txfs"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // "dial unix PATH: connect: ...", without the URL
		}
		return nil, fmt.Errorf("control socket: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", c.path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e errorBody
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		return nil, &Error{StatusCode: resp.StatusCode, Message: e.Error, Code: e.Code}
	}
	return body, nil
}
