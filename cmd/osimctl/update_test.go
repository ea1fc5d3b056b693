package main

import (
	"encoding/json"
	"strings"
	"testing"

	"osim/controlplane/api"
	"osim/internal/mgrtest"
)

// targets show and update by hostname against a real manager; update
// changes only what is given; the power spec is set, checked by the
// manager, and removed.
func TestTargetsUpdateAndShowByHostname(t *testing.T) {
	clearEnv(t)
	c, url, token := mgrtest.Start(t)
	ctx := t.Context()
	tg, err := c.CreateTarget(ctx, api.TargetSpec{Hostname: "web-01.lab", MACs: []string{"52:54:00:00:0e:01"}, Arch: "bios", Site: "s1",
		Labels: map[string]string{"rack": "r1", "role": "web"}})
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"--server", url, "--token", token}
	out, errOut, code := runCmd(t, append(base, "targets", "show", "web-01.lab")...)
	if code != 0 || !strings.Contains(out, tg.ID) {
		t.Fatalf("show by hostname: exit %d %s %s", code, out, errOut)
	}
	out, errOut, code = runCmd(t, append(base, "targets", "update", "web-01.lab", "--site", "s2", "--label", "rack=r9", "--unlabel", "role",
		"--power-driver", "libvirt", "--power-domain", "vm-web-01", "-o", "json")...)
	var got api.Target
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
		t.Fatalf("update: exit %d %s %s", code, out, errOut)
	}
	if got.Site != "s2" || got.Hostname != "web-01.lab" || got.Arch != "bios" || len(got.Labels) != 1 || got.Labels["rack"] != "r9" ||
		got.Power == nil || got.Power.Driver != "libvirt" || got.Power.Domain != "vm-web-01" {
		t.Fatalf("after update: %+v (power %+v)", got, got.Power)
	}
	if _, errOut, code = runCmd(t, append(base, "targets", "update", tg.ID, "--power-driver", "ipmi")...); code == 0 || !strings.Contains(errOut, "power") {
		t.Errorf("ipmi without an address: exit %d %s", code, errOut)
	}
	if _, errOut, code = runCmd(t, append(base, "targets", "update", tg.ID, "--power-domain", "x")...); code != 2 || !strings.Contains(errOut, "--power-driver") {
		t.Errorf("--power-domain alone: exit %d %s", code, errOut)
	}
	if _, errOut, code = runCmd(t, append(base, "targets", "update", tg.ID)...); code != 2 || !strings.Contains(errOut, "nothing to change") {
		t.Errorf("no flag: exit %d %s", code, errOut)
	}
	if _, _, code = runCmd(t, append(base, "targets", "update", "52:54:00:00:0e:01", "--power-driver", "none")...); code != 0 {
		t.Fatalf("remove the power spec: exit %d", code)
	}
	if got, _ := c.GetTarget(ctx, tg.ID); got.Power != nil {
		t.Errorf("power spec after --power-driver none: %+v", got.Power)
	}
	if _, errOut, code = runCmd(t, append(base, "targets", "show", "no-such-host")...); code == 0 || !strings.Contains(errOut, "no-such-host") {
		t.Errorf("an unknown hostname: exit %d %s", code, errOut)
	}
}

// bootservers show and rm by name.
func TestBootserversShowAndRm(t *testing.T) {
	clearEnv(t)
	c, url, token := mgrtest.StartAs(t, api.RoleAdmin)
	ctx := t.Context()
	join, err := c.CreateToken(ctx, api.TokenRequest{Role: api.RoleJoin, Site: "s1", Name: "bs-old"})
	if err != nil {
		t.Fatal(err)
	}
	rr, err := api.NewClient(url, join.Secret, false).Register(ctx, api.RegisterRequest{Name: "bs-old", Site: "s1", Version: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	bs := api.NewClient(url, rr.Token, false)
	if _, err := bs.Heartbeat(ctx, api.Heartbeat{IntervalSeconds: 10, Stats: map[string]float64{"osim_dhcp_packets_total": 42}}); err != nil {
		t.Fatal(err)
	}
	base := []string{"--server", url, "--token", token}
	out, errOut, code := runCmd(t, append(base, "bootservers", "show", "bs-old")...)
	if code != 0 || !strings.Contains(out, rr.BootServer.ID) || !strings.Contains(out, "v1.2.3") || !strings.Contains(out, "osim_dhcp_packets_total") {
		t.Fatalf("show: exit %d %s %s", code, out, errOut)
	}
	if out, _, code = runCmd(t, append(base, "bootservers", "rm", "bs-old")...); code != 0 || !strings.Contains(out, "deleted boot server bs-old") {
		t.Fatalf("rm: exit %d %s", code, out)
	}
	if l, _ := c.ListBootServers(ctx); len(l) != 0 {
		t.Fatalf("boot servers after rm: %+v", l)
	}
	if _, err := bs.Heartbeat(ctx, api.Heartbeat{}); !api.IsStatus(err, 401) {
		t.Errorf("the deleted boot server's token: %v, want 401", err)
	}
	if _, errOut, code = runCmd(t, append(base, "bootservers", "show", "bs-old")...); code == 0 || !strings.Contains(errOut, "bs-old") {
		t.Errorf("show after rm: exit %d %s", code, errOut)
	}
}
