package promtext

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestScrapeSumsANameAndPicksALabelledSeries(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`# HELP osim_x_total x
# TYPE osim_x_total counter
osim_x_total{a="1"} 2
osim_x_total{a="2"} 3.5
osim_x_total_more 100
osim_gauge 7
`))
	}))
	defer srv.Close()
	ctx := context.Background()
	for _, c := range []struct {
		series string
		want   float64
	}{
		{"osim_x_total", 5.5},
		{`osim_x_total{a="2"}`, 3.5},
		{"osim_gauge", 7},
		{"osim_x_total_more", 100},
	} {
		got, err := Scrape(ctx, srv.URL, c.series)
		if err != nil || got != c.want {
			t.Errorf("Scrape(%s) = %v, %v; want %v", c.series, got, err, c.want)
		}
	}
	for _, s := range []string{"osim_x", `osim_x_total{a="3"}`} {
		if _, err := Scrape(ctx, srv.URL, s); !errors.Is(err, ErrNoSeries) {
			t.Errorf("Scrape(%s): %v, want ErrNoSeries", s, err)
		}
	}
	if _, err := Scrape(ctx, "http://127.0.0.1:1/metrics", "osim_gauge"); err == nil || errors.Is(err, ErrNoSeries) {
		t.Errorf("unreachable endpoint: %v", err)
	}
}

func TestParseKeepsHistogramPartsAndLabelsForSumAndSeries(t *testing.T) {
	s, err := Parse(strings.NewReader(`# TYPE osim_lat_seconds histogram
osim_lat_seconds_bucket{le="0.1"} 3
osim_lat_seconds_bucket{le="+Inf"} 4
osim_lat_seconds_sum 0.5
osim_lat_seconds_count 4
# TYPE osim_pkts_total counter
osim_pkts_total{type="discover",action="offer"} 10
osim_pkts_total{type="request",action="ack"} 7
osim_up 1
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		match []string
		want  float64
	}{
		{"osim_lat_seconds_sum", nil, 0.5},
		{"osim_lat_seconds_count", nil, 4},
		{"osim_lat_seconds_bucket", []string{"le", "0.1"}, 3},
		{"osim_pkts_total", nil, 17},
		{"osim_pkts_total", []string{"action", "ack"}, 7},
		{"osim_pkts_total", []string{"action", "ack", "type", "discover"}, 0},
		{"osim_up", nil, 1},
	} {
		if got := s.Sum(c.name, c.match...); got != c.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", c.name, c.match, got, c.want)
		}
	}
	series := s.Series()
	if v, ok := series[`osim_pkts_total{action="offer",type="discover"}`]; !ok || v != 10 {
		t.Errorf("Series: %v", series)
	}
	if v, ok := series["osim_up"]; !ok || v != 1 {
		t.Errorf("Series: %v", series)
	}
}
