// Package promtext reads Prometheus text pages for tests and benchmarks
// that watch a process from outside: one parser (prometheus/common's
// expfmt), samples by name with their labels, and Scrape for one series.
package promtext

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ErrNoSeries: the endpoint answered but has no sample of the series.
var ErrNoSeries = errors.New("no such series")

// Samples is one page: every sample by the name it is printed under
// (a histogram's x_bucket, x_sum and x_count each under its own), with
// its labels.
type Samples map[string][]Sample

// Sample is one series' value.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Parse reads a page in the Prometheus text format.
func Parse(r io.Reader) (Samples, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := Samples{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			add := func(name string, v float64, extra ...string) {
				ls := labels
				if len(extra) > 0 {
					ls = maps.Clone(labels)
					ls[extra[0]] = extra[1]
				}
				out[name] = append(out[name], Sample{Labels: ls, Value: v})
			}
			switch {
			case m.Counter != nil:
				add(name, m.GetCounter().GetValue())
			case m.Gauge != nil:
				add(name, m.GetGauge().GetValue())
			case m.Untyped != nil:
				add(name, m.GetUntyped().GetValue())
			case m.Histogram != nil:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					add(name+"_bucket", float64(b.GetCumulativeCount()), "le", formatFloat(b.GetUpperBound()))
				}
				add(name+"_bucket", float64(h.GetSampleCount()), "le", "+Inf")
				add(name+"_sum", h.GetSampleSum())
				add(name+"_count", float64(h.GetSampleCount()))
			case m.Summary != nil:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					add(name, q.GetValue(), "quantile", formatFloat(q.GetQuantile()))
				}
				add(name+"_sum", s.GetSampleSum())
				add(name+"_count", float64(s.GetSampleCount()))
			}
		}
	}
	return out, nil
}

func formatFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// Sum adds the samples of name whose labels include every pair of match
// (key, value, key, value…).
func (s Samples) Sum(name string, match ...string) float64 {
	t, _ := s.sum(name, false, match...)
	return t
}

// sum is Sum; exact keeps only samples whose labels are match and no
// more. found says whether any sample counted.
func (s Samples) sum(name string, exact bool, match ...string) (t float64, found bool) {
next:
	for _, sm := range s[name] {
		if exact && len(sm.Labels) != len(match)/2 {
			continue
		}
		for i := 0; i+1 < len(match); i += 2 {
			if v, ok := sm.Labels[match[i]]; !ok || v != match[i+1] {
				continue next
			}
		}
		t, found = t+sm.Value, true
	}
	return t, found
}

// Series flattens the page into one value per series, keyed as the text
// format prints it: `name{a="x",b="y"}` (labels sorted), or the bare name.
func (s Samples) Series() map[string]float64 {
	out := map[string]float64{}
	for name, list := range s {
		for _, sm := range list {
			if len(sm.Labels) == 0 {
				out[name] = sm.Value
				continue
			}
			var b strings.Builder
			b.WriteString(name)
			for i, k := range slices.Sorted(maps.Keys(sm.Labels)) {
				if i == 0 {
					b.WriteByte('{')
				} else {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "%s=%q", k, sm.Labels[k])
			}
			b.WriteByte('}')
			out[b.String()] = sm.Value
		}
	}
	return out
}

// Get reads url with hc and parses the page; nil hc makes one request
// without keep-alive (an idle connection would show up among the watched
// process's sockets).
func Get(ctx context.Context, hc *http.Client, url string) (Samples, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("promtext: scrape %s: %w", url, err)
	}
	if hc == nil {
		hc, req.Close = http.DefaultClient, true
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("promtext: scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("promtext: scrape %s: %s", url, resp.Status)
	}
	s, err := Parse(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("promtext: scrape %s: %w", url, err)
	}
	return s, nil
}

// Scrape reads series from a /metrics endpoint: a bare metric name sums
// all its samples (every label set); a name with labels as the endpoint
// prints them, e.g. `osim_manager_orders{state="staged"}`, returns the
// sample with exactly those labels. It makes one request without
// keep-alive and gives up after 2 s.
func Scrape(ctx context.Context, url, series string) (float64, error) {
	name, match, err := parseSeries(series)
	if err != nil {
		return 0, fmt.Errorf("promtext: series %s: %w", series, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := Get(ctx, nil, url)
	if err != nil {
		return 0, err
	}
	v, found := s.sum(name, match != nil, match...)
	if !found {
		return 0, fmt.Errorf("promtext: %s in %s: %w", series, url, ErrNoSeries)
	}
	return v, nil
}

// parseSeries splits `name{a="x"}` into the name and its label pairs (nil
// for a bare name), with the same parser as the pages.
func parseSeries(series string) (string, []string, error) {
	if !strings.Contains(series, "{") {
		return series, nil, nil
	}
	s, err := Parse(strings.NewReader(series + " 0\n"))
	if err != nil {
		return "", nil, err
	}
	for name, list := range s {
		match := []string{}
		for k, v := range list[0].Labels {
			match = append(match, k, v)
		}
		return name, match, nil
	}
	return "", nil, fmt.Errorf("no series")
}
