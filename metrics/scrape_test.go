package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
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
