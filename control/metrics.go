package control

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsPath is where the volume's Prometheus metrics are served, on the
// control socket and on the TCP listener of "-o metrics=ADDR". It has no
// version prefix: the Prometheus text format is its own contract.
const MetricsPath = "/metrics"

// serveMetrics answers GET /metrics with the registry g, in the format
// the client asks for (Prometheus text by default).
func serveMetrics(g prometheus.Gatherer, w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, fmt.Errorf("%s wants GET, not %s", MetricsPath, r.Method))
		return
	}
	// A metric that cannot be read (the volume is closing) is left out,
	// and the others are served.
	promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
}

// MetricsServer serves a volume's metrics on a TCP listener, to whoever
// connects: GET /metrics and nothing else.
type MetricsServer struct {
	http   *http.Server
	served chan struct{}
}

// ListenMetrics listens on the TCP address addr (host:port), for
// ServeMetrics. It is apart so that a bad address fails before the volume
// is opened.
func ListenMetrics(addr string) (net.Listener, error) {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return nil, fmt.Errorf("metrics=%s: want HOST:PORT, such as 127.0.0.1:9567", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics=%s: %w", addr, err)
	}
	return ln, nil
}

// ServeMetrics serves g on ln until Close.
func ServeMetrics(ln net.Listener, g prometheus.Gatherer) *MetricsServer {
	mux := http.NewServeMux()
	mux.HandleFunc(MetricsPath, func(w http.ResponseWriter, r *http.Request) { serveMetrics(g, w, r) })
	s := &MetricsServer{served: make(chan struct{}), http: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    64 << 10,
	}}
	go func() {
		defer close(s.served)
		_ = s.http.Serve(ln) // returns ErrServerClosed after Close
	}()
	return s
}

// Close stops serving, giving the scrapes being answered closeGrace.
func (s *MetricsServer) Close() error {
	err := shutdown(s.http)
	<-s.served
	return err
}
