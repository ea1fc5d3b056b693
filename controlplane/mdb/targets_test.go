package mdb

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"osim/controlplane/api"
)

func TestTargetLifecycle(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	s := spec(1, "paris")
	s.MACs = []string{"52-54-00-AA-BB-01"}
	tg, err := d.CreateTarget(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tg.ID, "t-") || tg.MACs[0] != "52:54:00:aa:bb:01" || tg.Revision != 1 || tg.Created.IsZero() {
		t.Fatalf("created %+v", tg)
	}
	got := must[api.Target](t)(d.GetTarget(ctx, tg.ID))
	if got.Hostname != "host1" || got.Site != "paris" {
		t.Fatalf("get %+v", got)
	}
	got = must[api.Target](t)(d.TargetByMAC(ctx, "52:54:00:aa:bb:01"))
	if got.ID != tg.ID {
		t.Fatalf("by mac %+v", got)
	}
	host := "renamed"
	macs := []string{"52:54:00:aa:bb:02"}
	up := must[api.Target](t)(d.UpdateTarget(ctx, tg.ID, api.TargetPatch{Hostname: &host, MACs: &macs}))
	if up.Hostname != "renamed" || up.Revision != 2 {
		t.Fatalf("update %+v", up)
	}
	if _, err := d.TargetByMAC(ctx, "52:54:00:aa:bb:01"); !isNotFound(err) {
		t.Fatalf("old MAC still indexed: %v", err)
	}
	if got := must[api.Target](t)(d.TargetByMAC(ctx, "52:54:00:aa:bb:02")); got.ID != tg.ID {
		t.Fatal("new MAC not indexed")
	}
	f := must[api.Target](t)(d.SetFacts(ctx, tg.ID, map[string]string{"cpu": "8"}))
	f = must[api.Target](t)(d.SetFacts(ctx, tg.ID, map[string]string{"mem": "64G"}))
	if f.Facts["cpu"] != "8" || f.Facts["mem"] != "64G" || f.Revision != 4 {
		t.Fatalf("facts %+v", f)
	}
	if err := d.DeleteTarget(ctx, tg.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.GetTarget(ctx, tg.ID); !isNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := d.TargetByMAC(ctx, "52:54:00:aa:bb:02"); !isNotFound(err) {
		t.Fatalf("MAC index after delete: %v", err)
	}
	if r := rev(t, d); r != 5 {
		t.Fatalf("revision %d after 5 writes", r)
	}
}

func isNotFound(err error) bool {
	return err != nil && strings.Contains(err.Error(), ErrNotFound.Error())
}

func TestTargetBadInput(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	tg := mustTargets(t, d, "paris", 0, 1)[0]
	bad := []struct {
		name string
		mod  func(*api.TargetSpec)
		word string
	}{
		{"hostname", func(s *api.TargetSpec) { s.Hostname = "-x" }, "hostname"},
		{"no macs", func(s *api.TargetSpec) { s.MACs = nil }, "macs"},
		{"bad mac", func(s *api.TargetSpec) { s.MACs = []string{"zz"} }, "macs[0]"},
		{"arch", func(s *api.TargetSpec) { s.Arch = "vax" }, "arch"},
		{"site", func(s *api.TargetSpec) { s.Site = "" }, "site"},
		{"address", func(s *api.TargetSpec) { s.Address = "::1" }, "address"},
		{"label", func(s *api.TargetSpec) { s.Labels = map[string]string{"a b": "x"} }, "labels"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			s := spec(100, "paris")
			c.mod(&s)
			_, err := d.CreateTarget(ctx, s)
			wantErr(t, err, ErrInvalid, c.word)
		})
	}
	if r := rev(t, d); r != 1 {
		t.Fatalf("bad input bumped the revision to %d", r)
	}
	_, err := d.GetTarget(ctx, "t-nope")
	wantErr(t, err, ErrNotFound, "t-nope")
	_, err = d.TargetByMAC(ctx, "nope")
	wantErr(t, err, ErrInvalid)
	_, err = d.UpdateTarget(ctx, "t-nope", api.TargetPatch{})
	wantErr(t, err, ErrNotFound)
	arch := "vax"
	_, err = d.UpdateTarget(ctx, tg.ID, api.TargetPatch{Arch: &arch})
	wantErr(t, err, ErrInvalid, "arch")
	_, err = d.SetFacts(ctx, "t-nope", map[string]string{"a": "b"})
	wantErr(t, err, ErrNotFound)
	_, err = d.SetFacts(ctx, tg.ID, map[string]string{"": "b"})
	wantErr(t, err, ErrInvalid)
	wantErr(t, d.DeleteTarget(ctx, "t-nope"), ErrNotFound)
	_, _, err = d.ListTargets(ctx, TargetQuery{Site: "bad site"})
	wantErr(t, err, ErrInvalid)
}

func TestDuplicateMACIsConflictNamingTheOwner(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	a := mustTargets(t, d, "paris", 0, 1)[0]
	s := spec(5, "paris")
	s.MACs = []string{mac(5), strings.ToUpper(mac(0))}
	_, err := d.CreateTarget(ctx, s)
	wantErr(t, err, ErrConflict, "macs[1]", mac(0), a.ID)

	_, err = d.CreateTargets(ctx, []api.TargetSpec{spec(6, "paris"), spec(7, "paris"), s})
	wantErr(t, err, ErrConflict, "specs[2]", mac(0), a.ID)
	_, err = d.CreateTargets(ctx, []api.TargetSpec{spec(6, "paris"), spec(6, "lyon")})
	wantErr(t, err, ErrConflict, "specs[1]", mac(6))

	b := mustTargets(t, d, "paris", 1, 1)[0]
	m := []string{mac(0)}
	_, err = d.UpdateTarget(ctx, b.ID, api.TargetPatch{MACs: &m})
	wantErr(t, err, ErrConflict, mac(0), a.ID)
	// Keeping its own MAC is fine.
	m = []string{mac(1)}
	if _, err := d.UpdateTarget(ctx, b.ID, api.TargetPatch{MACs: &m}); err != nil {
		t.Fatal(err)
	}
	ts, _, _ := d.ListTargets(ctx, TargetQuery{})
	if len(ts) != 2 {
		t.Fatalf("%d targets, want 2 (nothing of the failed creates)", len(ts))
	}
}

func TestCreateTargetsChunksOneRevisionPer1000(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	ts := mustTargets(t, d, "paris", 0, 2500)
	if len(ts) != 2500 || rev(t, d) != 3 {
		t.Fatalf("%d targets at revision %d, want 2500 at 3", len(ts), rev(t, d))
	}
	if ts[999].Revision != 1 || ts[1000].Revision != 2 || ts[2499].Revision != 3 {
		t.Fatalf("revisions %d %d %d", ts[999].Revision, ts[1000].Revision, ts[2499].Revision)
	}
	// Paging over all, ordered by id.
	var all []api.Target
	after := ""
	for {
		page, next, err := d.ListTargets(ctx, TargetQuery{Page: Page{After: after, Limit: 700}})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		after = next
	}
	if len(all) != 2500 {
		t.Fatalf("paged %d targets", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].ID >= all[i].ID {
			t.Fatalf("not ordered at %d", i)
		}
	}
	sel, _ := api.ParseSelector("rack=r1")
	page, _, err := d.ListTargets(ctx, TargetQuery{Selector: sel, Site: "paris", Page: Page{Limit: 1000}})
	if err != nil || len(page) != 833 {
		t.Fatalf("selector listing: %d, %v", len(page), err)
	}
	page, _, _ = d.ListTargets(ctx, TargetQuery{Site: "lyon"})
	if len(page) != 0 {
		t.Fatalf("lyon has %d", len(page))
	}
}

func TestListTargetsPageDefaults(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	mustTargets(t, d, "paris", 0, 150)
	page, next, err := d.ListTargets(ctx, TargetQuery{})
	if err != nil || len(page) != 100 || next != page[99].ID {
		t.Fatalf("%d %q %v", len(page), next, err)
	}
	page, next, _ = d.ListTargets(ctx, TargetQuery{Page: Page{After: next}})
	if len(page) != 50 || next != "" {
		t.Fatalf("second page %d %q", len(page), next)
	}
	_ = fmt.Sprint()
}

func TestListTargetsPageFiltersByTextArchOrderStateAndCounts(t *testing.T) {
	d, _ := openTest(t)
	ctx := context.Background()
	var specs []api.TargetSpec
	for i := range 30 {
		arch := "bios"
		if i%3 == 0 {
			arch = "efi-x64"
		}
		specs = append(specs, api.TargetSpec{Hostname: fmt.Sprintf("web-%02d", i), MACs: []string{fmt.Sprintf("52:54:00:aa:00:%02x", i)},
			Arch: arch, Site: "paris"})
	}
	ts := must[[]api.Target](t)(d.CreateTargets(ctx, specs))
	img := osImage(t, d, "deb")
	var ids []string
	for _, tg := range ts[:10] {
		ids = append(ids, tg.ID)
	}
	res := must[OrderResult](t)(d.PlaceOrders(ctx, api.OrderRequest{Targets: ids, Image: img.ID}, OrderOptions{}))
	must[api.Order](t)(d.Transition(ctx, res.Orders[0].ID, api.OrderCancelled, "test"))

	count := func(q TargetQuery) (int, []api.Target) {
		t.Helper()
		q.Count = true
		p := must[TargetPage](t)(d.ListTargetsPage(ctx, q))
		return p.Total, p.Targets
	}
	for _, c := range []struct {
		name string
		q    TargetQuery
		want int
	}{
		{"all", TargetQuery{}, 30},
		{"text in hostname", TargetQuery{Text: "WEB-1"}, 10},
		{"text in a MAC, dashes", TargetQuery{Text: "AA-00-1D"}, 1},
		{"text in a MAC", TargetQuery{Text: "aa:00:0a"}, 1},
		{"arch", TargetQuery{Arch: "efi-x64"}, 10},
		{"pending orders", TargetQuery{OrderState: "pending"}, 9},
		{"cancelled (ended: the last order)", TargetQuery{OrderState: "cancelled"}, 1},
		{"no order", TargetQuery{OrderState: OrderNone}, 20},
		{"arch and order", TargetQuery{Arch: "efi-x64", OrderState: "pending"}, 3},
		{"boot loop", TargetQuery{BootLoop: true}, 0},
	} {
		if n, _ := count(c.q); n != c.want {
			t.Errorf("%s: %d, want %d", c.name, n, c.want)
		}
	}
	// Paging with a count: the page starts past After, Total and Before
	// count everything.
	p1 := must[TargetPage](t)(d.ListTargetsPage(ctx, TargetQuery{Page: Page{Limit: 12}, Count: true}))
	p2 := must[TargetPage](t)(d.ListTargetsPage(ctx, TargetQuery{Page: Page{Limit: 12, After: p1.Next}, Count: true}))
	if len(p1.Targets) != 12 || p1.Total != 30 || p1.Before != 0 || len(p2.Targets) != 12 || p2.Total != 30 || p2.Before != 12 ||
		p2.Targets[0].ID <= p1.Next {
		t.Errorf("pages: %d/%d/%d then %d/%d/%d", len(p1.Targets), p1.Total, p1.Before, len(p2.Targets), p2.Total, p2.Before)
	}
	for _, bad := range []TargetQuery{{Arch: "sparc"}, {OrderState: "done-ish"}} {
		_, err := d.ListTargetsPage(ctx, bad)
		wantErr(t, err, ErrInvalid)
	}
}
