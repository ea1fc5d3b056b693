package console

import (
	"net/http"
	"testing"
	"time"

	"osim/controlplane/api"
)

// BenchmarkConsolePages renders the console's heaviest pages over HTTP
// against a real manager holding 10,000 targets, half of them with a
// live order (one batch of 5,000), and the API's own listing of the same
// targets as the peer: make bench-console, figures in bench/RESULTS.md.
func BenchmarkConsolePages(b *testing.B) {
	e := newEnv(b)
	ts := seedTargets(b, e, 10000)
	img := seedImage(b, e)
	ids := make([]string, 0, 5000)
	for _, t := range ts[:5000] {
		ids = append(ids, t.ID)
	}
	l, err := e.admin.PlaceOrders(b.Context(), api.OrderRequest{Targets: ids, Image: img.ID})
	if err != nil {
		b.Fatal(err)
	}
	br := e.browser()
	br.signIn(api.RoleOperator)
	api1000 := func() int {
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/api/v1/targets?limit=1000", nil)
		req.Header.Set("Authorization", "Bearer "+e.secrets[api.RoleOperator])
		return br.do(req).code
	}
	for _, c := range []struct {
		name string
		get  func() int
	}{
		{"api_targets_1000", api1000},
		{"targets_page_100", func() int { return br.get("/ui/targets").code }},
		{"targets_page_1000", func() int { return br.get("/ui/targets?limit=1000").code }},
		{"targets_search", func() int { return br.get("/ui/targets?q=node-09").code }},
		{"targets_state_pending", func() int { return br.get("/ui/targets?state=pending").code }},
		{"overview", func() int { return br.get("/ui/overview").code }},
		{"batch_5000", func() int { return br.get("/ui/batches/" + l.RequestID + "?fragment=1").code }},
	} {
		b.Run(c.name, func(b *testing.B) {
			start := time.Now()
			for b.Loop() {
				if code := c.get(); code != 200 {
					b.Fatalf("%s: %d", c.name, code)
				}
			}
			b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/page")
		})
	}
}
