package web

import (
	"bufio"
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Metrics is a daemon's /metrics (Prometheus text format) summed over
// labels: what the charts need, whatever the metrics are called.
type Metrics struct {
	Counters   map[string]float64    `json:"counters"`
	Gauges     map[string]float64    `json:"gauges"`
	Histograms map[string]*Histogram `json:"histograms"`
}

// Histogram is a histogram (or a summary, without buckets): the
// cumulative count of observations up to each bound, their sum and their
// count. The +Inf bucket is Count.
type Histogram struct {
	Buckets []Bucket `json:"buckets"`
	Sum     float64  `json:"sum"`
	Count   float64  `json:"count"`
}

// Bucket is one bound of a histogram and the observations up to it.
type Bucket struct {
	LE    float64 `json:"le"`
	Count float64 `json:"count"`
}

// fetchMetrics asks the control socket at path for GET /metrics; nil if
// it has none (404), or cannot answer.
func fetchMetrics(path string) *Metrics {
	var d net.Dialer
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
	}}
	resp, err := client.Get("http://txfs/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	return ParseMetrics(io.LimitReader(resp.Body, 4<<20))
}

// ParseMetrics reads the Prometheus text format. It is tolerant: a line
// it does not understand is skipped, and so is a value that is not a
// finite number.
func ParseMetrics(r io.Reader) *Metrics {
	m := &Metrics{Counters: map[string]float64{}, Gauges: map[string]float64{}, Histograms: map[string]*Histogram{}}
	types := map[string]string{}
	buckets := map[string]map[float64]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, value, ok := parseSample(line)
		if !ok {
			continue
		}
		family, part := name, ""
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base := strings.TrimSuffix(name, suffix)
			if base != name && (types[base] == "histogram" || types[base] == "summary") {
				family, part = base, suffix
			}
		}
		switch t := types[family]; {
		case part != "":
			h := m.Histograms[family]
			if h == nil {
				h = &Histogram{Buckets: []Bucket{}}
				m.Histograms[family] = h
			}
			switch part {
			case "_sum":
				h.Sum += value
			case "_count":
				h.Count += value
			case "_bucket":
				le, err := strconv.ParseFloat(labels["le"], 64)
				if err != nil || math.IsInf(le, 0) {
					continue
				}
				if buckets[family] == nil {
					buckets[family] = map[float64]float64{}
				}
				buckets[family][le] += value
			}
		case t == "counter" || t == "" && strings.HasSuffix(name, "_total"):
			m.Counters[name] += value
		case t == "gauge" || t == "untyped" || t == "":
			m.Gauges[name] += value
		}
	}
	for family, bs := range buckets {
		h := m.Histograms[family]
		for le, n := range bs {
			h.Buckets = append(h.Buckets, Bucket{LE: le, Count: n})
		}
		sort.Slice(h.Buckets, func(i, j int) bool { return h.Buckets[i].LE < h.Buckets[j].LE })
	}
	return m
}

// parseSample reads `name{label="value",...} value [timestamp]`.
func parseSample(line string) (name string, labels map[string]string, value float64, ok bool) {
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return "", nil, 0, false
	}
	name, rest := line[:i], line[i:]
	labels = map[string]string{}
	if rest[0] == '{' {
		end := -1
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " ,")
			if strings.HasPrefix(rest, "}") {
				end = 1
				break
			}
			eq := strings.Index(rest, "=\"")
			if eq <= 0 {
				break
			}
			key := strings.TrimSpace(rest[:eq])
			val, n, good := unquoteLabel(rest[eq+2:])
			if !good {
				break
			}
			labels[key] = val
			rest = rest[eq+2+n:]
		}
		if end < 0 {
			return "", nil, 0, false
		}
		rest = rest[end:]
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return "", nil, 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return "", nil, 0, false
	}
	return name, labels, v, true
}

// unquoteLabel reads a label value up to its closing quote (s begins
// after the opening one), with the format's escapes \\, \" and \n; n is
// how much of s it took, quote included.
func unquoteLabel(s string) (val string, n int, ok bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), i + 1, true
		case '\\':
			if i+1 == len(s) {
				return "", 0, false
			}
			i++
			if s[i] == 'n' {
				b.WriteByte('\n')
			} else {
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, false
}
