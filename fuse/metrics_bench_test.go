package fuse

import (
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkMeteredRequest is what counting a request costs: a GETATTR
// through meteredFS against the same filesystem unwrapped. The request
// itself does nothing here; a real one costs tens of microseconds (a
// round trip through the kernel and the engine), so the difference is
// the metrics' share of each.
func BenchmarkMeteredRequest(b *testing.B) {
	raw := okFS{fuse.NewDefaultRawFileSystem()}
	m, err := newOpMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		fs   fuse.RawFileSystem
	}{{"plain", raw}, {"metered", &meteredFS{RawFileSystem: raw, m: m}}} {
		b.Run(c.name, func(b *testing.B) {
			var in fuse.GetAttrIn
			var out fuse.AttrOut
			for b.Loop() {
				c.fs.GetAttr(nil, &in, &out)
			}
		})
	}
}

// okFS answers GETATTR with success, as nearly every request is.
type okFS struct{ fuse.RawFileSystem }

func (okFS) GetAttr(<-chan struct{}, *fuse.GetAttrIn, *fuse.AttrOut) fuse.Status { return fuse.OK }
