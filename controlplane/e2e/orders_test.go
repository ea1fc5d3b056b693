package e2e

import (
	"context"

	"testing"
	"time"

	"osim/controlplane/api"
)

// TestProcessManagerKilledMidMassOrder SIGKILLs a real osim-manager while
// it writes a 20,000-order request (after the first chunk, before the
// last) and restarts it: the start finishes the batch, so every target
// has exactly one order (before: the chunks written so far stayed, and
// the retry failed with 409 "has live order"), and the retry of the same
// request answers those orders (200, replayed).
func TestProcessManagerKilledMidMassOrder(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	const n = 20000
	dir := t.TempDir()
	populate(t, dir, n, n, false)
	m := startManager(t, dir)
	imgs, err := m.admin.ListImages(context.Background())
	if err != nil || len(imgs) != 1 {
		t.Fatalf("images: %v %v", imgs, err)
	}
	req := api.OrderRequest{Selector: "grp=a", Image: imgs[0].ID, All: true}
	r0 := m.revision()
	done := make(chan error, 1)
	go func() {
		_, err := m.admin.PlaceOrders(context.Background(), req)
		done <- err
	}()
	var at uint64
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if at = m.revision(); at > r0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no chunk of the order request committed within 60 s")
		}
	}
	m.kill()
	t.Logf("manager SIGKILLed at revision %d (the request started at %d; %d chunks of 1000)", at, r0, n/1000)
	if err := <-done; err == nil {
		t.Fatal("the request finished before the kill; nothing was tested")
	}
	m.restart()
	if v, _ := scrape(m.metrics, "osim_manager_order_batches_resumed_total"); v != 1 {
		t.Errorf("%v batches finished at start, want 1", v)
	}
	if v, _ := scrape(m.metrics, `osim_manager_orders{state="pending"}`); v != n {
		t.Fatalf("%v orders pending after the restart, want all %d", v, n)
	}
	out, err := m.admin.PlaceOrders(context.Background(), req)
	if err != nil {
		t.Fatalf("the retry: %v", err)
	}
	targets := map[string]bool{}
	for _, o := range out.Orders {
		targets[o.Target] = true
	}
	if !out.Replayed || len(out.Orders) != n || len(targets) != n {
		t.Fatalf("the retry: replayed %v, %d orders for %d targets, want %d", out.Replayed, len(out.Orders), len(targets), n)
	}
	if v, _ := scrape(m.metrics, `osim_manager_orders{state="pending"}`); v != n {
		t.Fatalf("%v orders pending after the retry, want %d", v, n)
	}
	m.stop()
}
