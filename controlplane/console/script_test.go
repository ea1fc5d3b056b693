package console

import (
	"html"
	"strings"
	"testing"

	"osim/controlplane/api"
)

// The target page shows the iPXE script the boot server would answer
// with: the installer's kernel and command line for a staged order, with
// the order's token masked; local boot without an order.
func TestTheTargetPageShowsItsNextBootScriptWithTheTokenMasked(t *testing.T) {
	e := newEnv(t)
	ts := seedTargets(t, e, 2)
	img := seedImage(t, e)
	ctx := t.Context()
	b := e.browser()
	b.signIn(api.RoleViewer)
	if a := b.get("/ui/targets/" + ts[1].ID); !strings.Contains(a.body, "no live order") || !strings.Contains(a.body, "exit") {
		t.Errorf("target without an order: want the local boot script:\n%s", a.body)
	}
	l, err := e.admin.PlaceOrders(ctx, api.OrderRequest{Targets: []string{ts[0].ID}, Image: img.ID})
	if err != nil {
		t.Fatal(err)
	}
	o := l.Orders[0]
	if a := b.get("/ui/targets/" + ts[0].ID); !strings.Contains(a.body, "is pending: the boot server does not answer") {
		t.Errorf("pending order: want why there is no script")
	}
	if _, err := e.store.Transition(ctx, o.ID, api.OrderStaged, "test"); err != nil {
		t.Fatal(err)
	}
	full, _ := e.store.GetOrder(ctx, o.ID)
	a := b.get("/ui/targets/" + ts[0].ID)
	page := html.UnescapeString(a.body)
	for _, want := range []string{"kernel " + bootBase + "/files/images/" + img.ID + "/vmlinuz", "initrd --name initrd.img",
		"console=ttyS0", "token=" + maskedToken, "# osim: order " + o.ID} {
		if !strings.Contains(page, want) {
			t.Errorf("the script lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(a.body, full.Token) {
		t.Error("the order's real token is on the page")
	}
}
