package httpboot

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"osim/internal/clock"
)

// recordingDiscoveries is a Discoveries that knows some MACs already.
type recordingDiscoveries struct {
	mu    sync.Mutex
	known map[string]bool
	got   []Discovery
	fail  error
}

func (r *recordingDiscoveries) Discovered(_ context.Context, d Discovery) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.known[d.MAC.String()] {
		return fmt.Errorf("%w: %s", ErrKnownTarget, d.MAC)
	}
	if r.fail != nil {
		return r.fail
	}
	r.got = append(r.got, d)
	return nil
}

func (r *recordingDiscoveries) reports() []Discovery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Discovery(nil), r.got...)
}

type discoverFixture struct {
	h     *Handler
	disc  *recordingDiscoveries
	clock *clock.Fake
	m     *Metrics
}

func newDiscoverFixture(t *testing.T, lim DiscoverLimits) *discoverFixture {
	t.Helper()
	f := &discoverFixture{disc: &recordingDiscoveries{known: map[string]bool{"52:54:00:12:34:56": true}},
		clock: clock.NewFake(fixedNow), m: NewMetrics(prometheus.NewRegistry())}
	var err error
	f.h, err = New(Config{Scripts: StaticScripts{}, Files: &FolderFiles{}, Tokens: StaticTokens{}, Sink: &recordingSink{},
		Discoveries: f.disc, DiscoverLimits: lim, Clock: f.clock, Metrics: f.m, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *discoverFixture) post(mac, body string) *http.Response {
	r, _ := http.NewRequest(http.MethodPost, "/discover/"+mac, strings.NewReader(body))
	r.RemoteAddr = "10.0.0.50:68"
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w.Result()
}

const goodReport = `{"arch":"x86_64","facts":{"dmi.vendor":"QEMU","mem_bytes":"2147483648"}}`

func TestDiscoverReportOfAnUnknownMachineReachesTheSink(t *testing.T) {
	f := newDiscoverFixture(t, DiscoverLimits{})
	resp := f.post("52-54-00-aa-bb-01", goodReport)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("report: %d, want 204", resp.StatusCode)
	}
	got := f.disc.reports()
	if len(got) != 1 || got[0].MAC.String() != "52:54:00:aa:bb:01" || got[0].Facts["dmi.vendor"] != "QEMU" ||
		got[0].Arch != "x86_64" || got[0].Client != "10.0.0.50:68" || !got[0].Received.Equal(fixedNow) {
		t.Fatalf("sink got %+v", got)
	}
	if n := testutil.ToFloat64(f.m.discover.WithLabelValues("accepted")); n != 1 {
		t.Errorf("accepted counted %v, want 1", n)
	}
}

func TestDiscoverSecondReportWithinTheIntervalIsRefusedWith429(t *testing.T) {
	f := newDiscoverFixture(t, DiscoverLimits{Interval: 10 * time.Minute})
	if c := f.post("52:54:00:aa:bb:02", goodReport).StatusCode; c != http.StatusNoContent {
		t.Fatalf("first report: %d", c)
	}
	f.clock.Step(9 * time.Minute)
	resp := f.post("52:54:00:aa:bb:02", goodReport)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second report within the interval: %d, want 429", resp.StatusCode)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "60" {
		t.Errorf("Retry-After %q, want the 60 s left of the interval", ra)
	}
	// Another MAC is not held back by the first one's interval.
	if c := f.post("52:54:00:aa:bb:03", goodReport).StatusCode; c != http.StatusNoContent {
		t.Errorf("another machine: %d, want 204", c)
	}
	f.clock.Step(time.Minute)
	if c := f.post("52:54:00:aa:bb:02", goodReport).StatusCode; c != http.StatusNoContent {
		t.Errorf("after the interval: %d, want 204", c)
	}
	if n := testutil.ToFloat64(f.m.discover.WithLabelValues("too_soon")); n != 1 {
		t.Errorf("too_soon counted %v, want 1", n)
	}
	if n := len(f.disc.reports()); n != 3 {
		t.Errorf("sink got %d reports, want 3", n)
	}
}

func TestDiscoverGlobalRateIsBounded(t *testing.T) {
	f := newDiscoverFixture(t, DiscoverLimits{Rate: 2, Burst: 2})
	codes := map[int]int{}
	for i := range 5 {
		codes[f.post(fmt.Sprintf("52:54:00:00:10:%02x", i), goodReport).StatusCode]++
	}
	if codes[http.StatusNoContent] != 2 || codes[http.StatusTooManyRequests] != 3 {
		t.Fatalf("5 machines at once with a burst of 2: %v, want 2 accepted and 3 × 429", codes)
	}
	f.clock.Step(time.Second)
	if c := f.post("52:54:00:00:10:09", goodReport).StatusCode; c != http.StatusNoContent {
		t.Errorf("a second later: %d, want 204 (the bucket refilled)", c)
	}
	if n := testutil.ToFloat64(f.m.discover.WithLabelValues("rate_limited")); n != 3 {
		t.Errorf("rate_limited counted %v, want 3", n)
	}
}

func TestDiscoverRefusesKnownMachinesAndBadReports(t *testing.T) {
	f := newDiscoverFixture(t, DiscoverLimits{})
	bigFacts := make([]string, 257)
	for i := range bigFacts {
		bigFacts[i] = fmt.Sprintf(`"k%d":"v"`, i)
	}
	for _, tc := range []struct {
		name, mac, body string
		want            int
	}{
		{"known MAC", "52:54:00:12:34:56", goodReport, http.StatusConflict},
		{"not a MAC", "zz", goodReport, http.StatusBadRequest},
		{"not JSON", "52:54:00:00:20:01", `{"facts":`, http.StatusBadRequest},
		{"unknown field", "52:54:00:00:20:02", `{"facts":{"a":"b"},"token":"x"}`, http.StatusBadRequest},
		{"no facts", "52:54:00:00:20:03", `{"facts":{}}`, http.StatusUnprocessableEntity},
		{"bad key", "52:54:00:00:20:04", `{"facts":{"-a":"b"}}`, http.StatusUnprocessableEntity},
		{"control character", "52:54:00:00:20:05", `{"facts":{"a":"b\u001b[2J"}}`, http.StatusUnprocessableEntity},
		{"long value", "52:54:00:00:20:06", `{"facts":{"a":"` + strings.Repeat("x", 257) + `"}}`, http.StatusUnprocessableEntity},
		{"257 facts", "52:54:00:00:20:07", `{"facts":{` + strings.Join(bigFacts, ",") + `}}`, http.StatusUnprocessableEntity},
		{"bad arch", "52:54:00:00:20:08", `{"arch":"x y","facts":{"a":"b"}}`, http.StatusUnprocessableEntity},
		{"too large", "52:54:00:00:20:09", `{"facts":{"a":"` + strings.Repeat("x", 70<<10) + `"}}`, http.StatusRequestEntityTooLarge},
	} {
		if c := f.post(tc.mac, tc.body).StatusCode; c != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, c, tc.want)
		}
	}
	if n := len(f.disc.reports()); n != 0 {
		t.Errorf("sink got %d reports, want none", n)
	}
	// A refused report does not use up the machine's interval.
	if c := f.post("52:54:00:00:20:01", goodReport).StatusCode; c != http.StatusNoContent {
		t.Errorf("a good report after a bad one: %d, want 204", c)
	}
}

func TestDiscoverWithoutASinkIs404(t *testing.T) {
	h, err := New(Config{Scripts: StaticScripts{}, Files: &FolderFiles{}, Tokens: StaticTokens{}, Sink: &recordingSink{}})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequest(http.MethodPost, "/discover/52:54:00:00:30:01", strings.NewReader(goodReport))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNotFound {
		t.Fatalf("discovery not enabled: %d, want 404", w.Code)
	}
}
