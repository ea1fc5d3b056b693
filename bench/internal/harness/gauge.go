package harness

import (
	"context"
	"fmt"

	"osim/internal/promtext"
)

// activeGauge is osim-bootd's count of transfers in progress.
const activeGauge = "osim_tftp_active_transfers"

// scrapeGauge reads one gauge from a Prometheus text endpoint, summing its
// series; -1 when url is empty (the server has no metrics).
func scrapeGauge(ctx context.Context, url, name string) (float64, error) {
	if url == "" {
		return -1, nil
	}
	v, err := promtext.Scrape(ctx, url, name)
	if err != nil {
		return -1, fmt.Errorf("harness: %w", err)
	}
	return v, nil
}
