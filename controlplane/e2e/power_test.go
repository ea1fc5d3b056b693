package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/manager"
	"osim/controlplane/mdb"
	"osim/controlplane/secretbox"
	"osim/internal/bmclab"
)

// TestPowerActionsRunOnTheSitesBootServerAgainstARealBMC: an operator asks
// the manager for a power cycle with network boot; the boot server of the
// target's site claims it, fetches the BMC credential (sealed at rest in
// the MDB), and drives a real BMC (OpenIPMI's ipmi_sim, whose chassis is
// a QEMU guest) with ipmitool; the result is the request's state and an
// event on the target. A wrong password fails the request, saying why
// and without the password.
func TestPowerActionsRunOnTheSitesBootServerAgainstARealBMC(t *testing.T) {
	lab := bmclab.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store, err := mdb.Open(t.TempDir(), mdb.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := secretbox.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	key := must(secretbox.LoadKey(keyFile))(t)
	srv := must(manager.New(manager.Config{Store: store, Logger: slog.New(slog.DiscardHandler), CredentialsKey: key}))(t)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	admin := must(manager.CreateToken(ctx, store, api.RoleAdmin, "e2e", time.Now()))(t)
	c := api.NewClient(hs.URL, admin.Secret, false)
	startAgent(t, t.TempDir(), hs.URL, siteJoinToken(t, store, "A"), "bs-a", "A")

	for name, pw := range map[string]string{"lab-bmc": bmclab.Password, "stale-bmc": "not-" + bmclab.Password} {
		if err := c.Do(ctx, "POST", "/credentials", nil, api.CredentialRequest{Name: name, Username: bmclab.User, Password: pw}, nil); err != nil {
			t.Fatal(err)
		}
	}
	bmc := "127.0.0.1:" + strconv.Itoa(lab.Port)
	tg := must(c.CreateTarget(ctx, api.TargetSpec{Hostname: "node-1", MACs: []string{"02:ee:00:00:00:01"}, Site: "A",
		Power: &api.PowerSpec{Driver: "ipmi", Address: bmc, Credentials: "lab-bmc"}}))(t)
	stale := must(c.CreateTarget(ctx, api.TargetSpec{Hostname: "node-2", MACs: []string{"02:ee:00:00:00:02"}, Site: "A",
		Power: &api.PowerSpec{Driver: "ipmi", Address: bmc, Credentials: "stale-bmc"}}))(t)

	finished := func(id string) api.PowerRequest {
		t.Helper()
		var pr api.PowerRequest
		waitFor(t, 60*time.Second, "power request "+id, func() (bool, string) {
			pr = must(c.GetPowerRequest(ctx, id))(t)
			return pr.State == api.PowerDone || pr.State == api.PowerFailed, fmt.Sprintf("%s (%s)", pr.State, pr.Message)
		})
		return pr
	}
	pr := must(c.RequestPower(ctx, tg.ID, api.PowerActionRequest{Action: "cycle", NetworkBoot: true}))(t)
	if pr.State != api.PowerPending {
		t.Fatalf("queued %+v", pr)
	}
	pr = finished(pr.ID)
	if pr.State != api.PowerDone || pr.BootServer == "" {
		t.Fatalf("cycle: %+v", pr)
	}
	if lab.WaitGuest(func(pid int) bool { return pid != 0 }) == 0 || !slices.Equal(lab.Boots(), []string{"once=n"}) {
		t.Fatalf("the guest: pid %d, boots %v, want running, booted from the network once", lab.GuestPID(), lab.Boots())
	}
	evs := must(c.ListEvents(ctx, 0, api.EventFilter{Target: tg.ID, Type: api.EventPower}))(t)
	if len(evs.Events) != 1 || evs.Events[0].Data["outcome"] != api.PowerDone || evs.Events[0].Data["power"] != "on" {
		t.Errorf("power events %+v", evs.Events)
	}
	pr = finished(must(c.RequestPower(ctx, tg.ID, api.PowerActionRequest{Action: "off"}))(t).ID)
	if pr.State != api.PowerDone || lab.GuestPID() != 0 {
		t.Fatalf("off: %+v, guest pid %d", pr, lab.GuestPID())
	}
	// A wrong password fails, with the reason and never the password.
	pr = finished(must(c.RequestPower(ctx, stale.ID, api.PowerActionRequest{Action: "on"}))(t).ID)
	if pr.State != api.PowerFailed || !strings.Contains(pr.Message, "no session") || strings.Contains(pr.Message, bmclab.Password) {
		t.Fatalf("wrong password: %+v", pr)
	}
	if lab.GuestPID() != 0 {
		t.Fatal("a request with a wrong password powered the guest on")
	}
	// A target without a power spec, or powered by hand, cannot be asked.
	plain := must(c.CreateTarget(ctx, api.TargetSpec{Hostname: "node-3", MACs: []string{"02:ee:00:00:00:03"}, Site: "A"}))(t)
	if _, err := c.RequestPower(ctx, plain.ID, api.PowerActionRequest{Action: "on"}); err == nil || !strings.Contains(err.Error(), "no power spec") {
		t.Errorf("no power spec: %v", err)
	}
}
