// Package metricstest reads metrics from a Prometheus gatherer, for tests.
package metricstest

import (
	"bytes"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Text is a gatherer of the metrics in text, in the Prometheus text
// format (what GET /metrics answers); text that does not parse fails the
// test.
func Text(t testing.TB, text []byte) prometheus.Gatherer {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("parsing metrics: %v\n%s", err, text)
	}
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		var out []*dto.MetricFamily
		for _, f := range fams {
			out = append(out, f)
		}
		return out, nil
	})
}

// Value is the value of the metric family name in g, summed over its
// series whose labels include labels (name, value pairs): a counter's or
// gauge's value, a histogram's count of observations. A family that is
// missing fails the test.
func Value(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return sum(f.GetMetric(), labels)
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// Scrape fetches metrics in the text format with fetch (a GET /metrics)
// and returns Value over what it got.
func Scrape(t testing.TB, fetch func() ([]byte, error)) func(name string, labels ...string) float64 {
	t.Helper()
	body, err := fetch()
	if err != nil {
		t.Fatal(err)
	}
	g := Text(t, body)
	return func(name string, labels ...string) float64 {
		t.Helper()
		return Value(t, g, name, labels...)
	}
}

// Families are the names of the families g has.
func Families(t testing.TB, g prometheus.Gatherer) map[string]bool {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	return names
}

func sum(ms []*dto.Metric, labels []string) float64 {
	var total float64
	for _, m := range ms {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			total += m.Untyped.GetValue()
		}
	}
	return total
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
