package harness

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestScrapeGaugeSumsSeriesAndSkipsLookalikes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `# HELP osim_tftp_active_transfers Transfers in progress.
# TYPE osim_tftp_active_transfers gauge
osim_tftp_active_transfers_total 99
osim_tftp_active_transfers{dir="read"} 3
osim_tftp_active_transfers{dir="write"} 1
`)
	}))
	defer srv.Close()
	got, err := scrapeGauge(context.Background(), srv.URL, activeGauge)
	if err != nil || got != 4 {
		t.Errorf("got %v, %v; want 4", got, err)
	}
}

func TestScrapeGaugeWithoutMetricsIsMinusOne(t *testing.T) {
	if got, err := scrapeGauge(context.Background(), "", activeGauge); got != -1 || err != nil {
		t.Errorf("got %v, %v; want -1, nil", got, err)
	}
}

func TestScrapeGaugeMissingIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "other_metric 1\n")
	}))
	defer srv.Close()
	if _, err := scrapeGauge(context.Background(), srv.URL, activeGauge); err == nil {
		t.Error("want an error for a missing gauge")
	}
}
