package metrics

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrNoSeries: the endpoint answered but has no sample of the series.
var ErrNoSeries = errors.New("no such series")

// Scrape reads a /metrics endpoint (Prometheus text format) and returns
// series: a bare metric name sums all its samples (every label set); a
// name with labels as the endpoint prints them, e.g.
// `osim_manager_orders{state="staged"}`, returns that one sample. It is
// for tests and benchmarks watching a process, so it uses no keep-alive
// (an idle connection would show up among the process's sockets) and
// gives up after 2 s.
func Scrape(ctx context.Context, url, series string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("metrics: scrape %s: %w", url, err)
	}
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("metrics: scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("metrics: scrape %s: %s", url, resp.Status)
	}
	exact := strings.Contains(series, "{")
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, series)
		if !ok || rest == "" {
			continue
		}
		switch {
		case rest[0] == ' ':
		case rest[0] == '{' && !exact:
			rest = rest[strings.LastIndexByte(rest, '}')+1:]
		default:
			continue // another metric sharing the prefix
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics: %s in %s: %q: %w", series, url, line, err)
		}
		sum, found = sum+v, true
		if exact {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("metrics: scrape %s: %w", url, err)
	}
	if !found {
		return 0, fmt.Errorf("metrics: %s in %s: %w", series, url, ErrNoSeries)
	}
	return sum, nil
}
