package harness

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// activeGauge is osim-bootd's count of transfers in progress.
const activeGauge = "osim_tftp_active_transfers"

// scrapeGauge reads one gauge from a Prometheus text endpoint, summing its
// series; -1 when url is empty (the server has no metrics).
func scrapeGauge(ctx context.Context, url, name string) (float64, error) {
	if url == "" {
		return -1, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return -1, fmt.Errorf("harness: metrics request %s: %w", url, err)
	}
	// No keep-alive: an idle connection would count as one of the
	// server's sockets when the harness looks for leftovers.
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1, fmt.Errorf("harness: scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return -1, fmt.Errorf("harness: scrape %s: %s", url, resp.Status)
	}
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // another metric sharing the prefix
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return -1, fmt.Errorf("harness: %s in %s: %q: %w", name, url, line, err)
		}
		sum, found = sum+v, true
	}
	if err := sc.Err(); err != nil {
		return -1, fmt.Errorf("harness: read %s: %w", url, err)
	}
	if !found {
		return -1, fmt.Errorf("harness: no %s in %s", name, url)
	}
	return sum, nil
}
