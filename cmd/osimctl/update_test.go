package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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

// events tail --limit N prints the newest N, in aligned columns (the
// widest ids osim makes, o-/t- and 12 hex digits, included).
func TestEventsTailLimitAndColumns(t *testing.T) {
	clearEnv(t)
	c, url, token := mgrtest.Start(t)
	ctx := t.Context()
	var ids []string
	for i := range 3 {
		tg, err := c.CreateTarget(ctx, api.TargetSpec{Hostname: fmt.Sprintf("ev-%d", i), MACs: []string{fmt.Sprintf("52:54:00:00:0f:%02x", i)}, Site: "s1"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tg.ID)
	}
	img := kernelImage(t, c)
	for _, id := range ids {
		o, err := c.CreateOrders(ctx, api.OrderRequest{Target: id, Image: img.ID})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CancelOrder(ctx, o[0].ID); err != nil {
			t.Fatal(err)
		}
	}
	base := []string{"--server", url, "--token", token, "events", "tail"}
	all, errOut, code := runCmd(t, base...)
	lines := strings.Split(strings.TrimRight(all, "\n"), "\n")
	if code != 0 || len(lines) < 4 {
		t.Fatalf("tail: exit %d %s\n%s", code, errOut, all)
	}
	col := strings.Index(lines[0], "TARGET")
	for _, l := range lines[1:] {
		if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("column TARGET (at %d) not aligned in %q", col, l)
		}
	}
	out, _, code := runCmd(t, append(base, "--limit", "2")...)
	got := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if code != 0 || len(got) != 3 || got[2] != lines[len(lines)-1] || got[1] != lines[len(lines)-2] {
		t.Fatalf("--limit 2: exit %d\n%s\nwant the last two of\n%s", code, out, all)
	}
	if _, errOut, code = runCmd(t, append(base, "--limit", "5000")...); code != 2 || !strings.Contains(errOut, "--limit") {
		t.Errorf("--limit 5000: exit %d %s", code, errOut)
	}
}

// orders cancel and retry by several ids and by selector, against a real
// manager; one that fails is a row, and the exit code says so.
func TestOrdersCancelAndRetryInBulk(t *testing.T) {
	clearEnv(t)
	c, url, token := mgrtest.Start(t)
	ctx := t.Context()
	img := kernelImage(t, c)
	for i := range 4 {
		rack := "r1"
		if i == 3 {
			rack = "r2"
		}
		if _, err := c.CreateTarget(ctx, api.TargetSpec{Hostname: fmt.Sprintf("b-%d", i), MACs: []string{fmt.Sprintf("52:54:00:00:1f:%02x", i)},
			Site: "s1", Labels: map[string]string{"rack": rack}}); err != nil {
			t.Fatal(err)
		}
	}
	orders, err := c.CreateOrders(ctx, api.OrderRequest{Selector: "rack", Image: img.ID, All: true})
	if err != nil || len(orders) != 4 {
		t.Fatalf("orders: %v %d", err, len(orders))
	}
	base := []string{"--server", url, "--token", token, "orders"}
	out, errOut, code := runCmd(t, append(base, "cancel", "--selector", "rack=r1")...)
	if code != 0 || strings.Count(out, "cancelled") != 3 {
		t.Fatalf("cancel by selector: exit %d %s\n%s", code, errOut, out)
	}
	out, errOut, code = runCmd(t, append(base, "retry", "--selector", "rack=r1")...)
	if code != 0 || strings.Count(out, "pending") != 3 {
		t.Fatalf("retry by selector: exit %d %s\n%s", code, errOut, out)
	}
	var r2 string
	for _, o := range orders {
		if tg, _ := c.GetTarget(ctx, o.Target); tg.Labels["rack"] == "r2" {
			r2 = o.ID
		}
	}
	out, errOut, code = runCmd(t, append(base, "cancel", r2, "o-000000000000")...)
	if code != 1 || !strings.Contains(out, r2) || !strings.Contains(out, "o-000000000000") || !strings.Contains(errOut, "1 of 2 orders not cancelled") {
		t.Fatalf("cancel of one good, one unknown id: exit %d %s\n%s", code, errOut, out)
	}
	// orders watch names the target by its hostname.
	if out, errOut, code = runCmd(t, append(base, "watch", r2)...); code != 3 || !strings.Contains(out, "b-3") { // 3: final, not done
		t.Errorf("watch of a cancelled order: exit %d %s\n%s", code, errOut, out)
	}
	if _, errOut, code = runCmd(t, append(base, "retry", "--failed")...); code != 1 || !strings.Contains(errOut, "no order to retry") {
		t.Errorf("retry --failed with none failed: exit %d %s", code, errOut)
	}
	if _, errOut, code = runCmd(t, append(base, "cancel")...); code != 2 || !strings.Contains(errOut, "give order ids") {
		t.Errorf("cancel with nothing: exit %d %s", code, errOut)
	}
	if _, errOut, code = runCmd(t, append(base, "cancel", "--failed")...); code != 2 {
		t.Errorf("cancel --failed: exit %d %s", code, errOut)
	}
}

// --ca-file: a manager behind a private CA is trusted with its CA's
// certificate, and refused without it.
func TestCAFile(t *testing.T) {
	clearEnv(t)
	_, url, token, ca := mgrtest.StartTLS(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--server", url, "--token", token}
	if out, errOut, code := runCmd(t, append(base, "--ca-file", caFile, "targets", "list")...); code != 0 {
		t.Fatalf("with the CA: exit %d %s %s", code, out, errOut)
	}
	t.Setenv("OSIM_CA_FILE", caFile)
	if out, errOut, code := runCmd(t, append(base, "targets", "list")...); code != 0 {
		t.Fatalf("with OSIM_CA_FILE: exit %d %s %s", code, out, errOut)
	}
	t.Setenv("OSIM_CA_FILE", "")
	if _, errOut, code := runCmd(t, append(base, "targets", "list")...); code == 0 || !strings.Contains(errOut, "certificate") {
		t.Errorf("without the CA: exit %d %s", code, errOut)
	}
	if _, errOut, code := runCmd(t, append(base, "--ca-file", filepath.Join(t.TempDir(), "none.pem"), "targets", "list")...); code != 2 || !strings.Contains(errOut, "--ca-file") {
		t.Errorf("a missing CA file: exit %d %s", code, errOut)
	}
}

// targets import against a real manager: a MAC two entries share is
// caught before anything is written; --dry-run writes nothing; an existing
// target is an error, skipped with --skip-existing, updated with --upsert.
func TestTargetsImportExistingAndDuplicates(t *testing.T) {
	clearEnv(t)
	c, url, token := mgrtest.Start(t)
	ctx := t.Context()
	if _, err := c.CreateTarget(ctx, api.TargetSpec{Hostname: "old-1", MACs: []string{"52:54:00:00:2f:01"}, Site: "s1",
		Labels: map[string]string{"rack": "r0"}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := []string{"--server", url, "--token", token, "targets", "import"}
	dup := write("dup.csv", "hostname,macs,site\nn-1,52:54:00:00:2f:11,s1\nn-2,52-54-00-00-2F-11,s1\nn-1,52:54:00:00:2f:12,s1\n")
	_, errOut, code := runCmd(t, append(base, dup)...)
	if code != 2 || !strings.Contains(errOut, "MAC 52:54:00:00:2f:11 is entry 1's too") || !strings.Contains(errOut, "host name n-1 in site s1 is entry 1's too") {
		t.Fatalf("duplicates: exit %d %s", code, errOut)
	}
	if l, _ := c.ListTargets(ctx, "", "", "", 100); len(l.Targets) != 1 {
		t.Fatalf("a refused import wrote %d targets", len(l.Targets)-1)
	}
	file := write("nodes.csv", "hostname,macs,site,labels\nold-1-renamed,52:54:00:00:2f:01,s1,rack=r1\nnew-2,52:54:00:00:2f:02,s1,rack=r1\n")
	out, errOut, code := runCmd(t, append(base, file, "--dry-run", "--upsert")...)
	if code != 0 || !strings.Contains(out, "update") || !strings.Contains(out, "create") {
		t.Fatalf("dry run: exit %d %s\n%s", code, errOut, out)
	}
	if out, _, code = runCmd(t, append(base, file, "--dry-run")...); code != 1 || !strings.Contains(out, "error: a target has its MAC") {
		t.Fatalf("dry run without --upsert: exit %d\n%s", code, out)
	}
	if l, _ := c.ListTargets(ctx, "", "", "", 100); len(l.Targets) != 1 {
		t.Fatal("a dry run wrote targets")
	}
	// Without a flag the existing entry fails and the new one is made.
	if _, errOut, code = runCmd(t, append(base, file)...); code != 1 || !strings.Contains(errOut, "has its MAC") {
		t.Fatalf("existing without a flag: exit %d %s", code, errOut)
	}
	if _, errOut, code = runCmd(t, append(base, file, "--skip-existing")...); code != 0 || !strings.Contains(errOut, "0 created, 0 updated, 2 skipped") {
		t.Fatalf("--skip-existing: exit %d %s", code, errOut)
	}
	if _, errOut, code = runCmd(t, append(base, file, "--upsert")...); code != 0 || !strings.Contains(errOut, "0 created, 2 updated") {
		t.Fatalf("--upsert: exit %d %s", code, errOut)
	}
	got, err := c.GetTarget(ctx, "52:54:00:00:2f:01")
	if err != nil || got.Hostname != "old-1-renamed" || got.Labels["rack"] != "r1" {
		t.Fatalf("after --upsert: %v %+v", err, got)
	}
	if _, errOut, code = runCmd(t, append(base, file, "--upsert", "--skip-existing")...); code != 2 {
		t.Errorf("both flags: exit %d %s", code, errOut)
	}
}
