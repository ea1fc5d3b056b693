package mdb

import (
	"context"
	"os"
	"testing"
	"time"

	"osim/controlplane/api"
)

func BenchmarkCreateTargets(b *testing.B) {
	d, _ := openTest(b)
	b.ResetTimer()
	for i := 0; i < b.N; i += 1000 {
		n := min(1000, b.N-i)
		mustTargets(b, d, "paris", i, n)
	}
}

// TestScale100k creates 100,000 targets and orders and reads them back
// through Snapshot and Changes. OSIM_MDB_SCALE=1 runs it.
func TestScale100k(t *testing.T) {
	if os.Getenv("OSIM_MDB_SCALE") == "" {
		t.Skip("set OSIM_MDB_SCALE=1 to create 100,000 targets and orders")
	}
	ctx := context.Background()
	d, _ := openTest(t)
	im := osImage(t, d, "debian")
	start := time.Now()
	mustTargets(t, d, "paris", 0, 100_000)
	t.Logf("100k targets: %v", time.Since(start))
	start = time.Now()
	os := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Selector: "rack", Image: im.ID}))
	t.Logf("%d orders: %v", len(os), time.Since(start))
	start = time.Now()
	n, cursor := 0, ""
	for {
		r := must[api.SyncResponse](t)(d.Snapshot(ctx, "paris", cursor, 5000))
		n += len(r.Changes)
		if cursor = r.Cursor; cursor == "" {
			break
		}
	}
	t.Logf("snapshot of %d objects: %v", n, time.Since(start))
	start = time.Now()
	ch, _ := allChanges(t, d, "paris", 1)
	t.Logf("changes since 1: %d in %v", len(ch), time.Since(start))
}
