package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"osim/controlplane/agent"
	"osim/controlplane/api"
	"osim/controlplane/manager"
	"osim/controlplane/mdb"
	"osim/dataplane/httpboot"
)

const secretValue = "hunter2-Sup3rSecret"

// TestFirstBootReportAndSecretsInProcess: a disk image with typed
// parameters (one secret) and a first-boot procedure; its order goes
// through staging, a plan fetch, done, then a first-boot report posted
// with the order's token reaches the manager as a firstboot.result
// event. The secret is in the boot server's plan, masked in every user
// answer, and in no log line of manager, store, agent or boot server.
func TestFirstBootReportAndSecretsInProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store, err := mdb.Open(t.TempDir(), mdb.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv := must(manager.New(manager.Config{Store: store, Logger: logger}))(t)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	admin := must(manager.CreateToken(ctx, store, api.RoleAdmin, "e2e", time.Now()))(t)
	c := api.NewClient(hs.URL, admin.Secret, false)

	df := uploadFile(t, c, "disk.raw.zst", api.RoleDisk, []byte(strings.Repeat("disk ", 4000)))
	df.Compression, df.RawSize = api.CompressionZstd, 1<<30
	disk := must(c.CreateImage(ctx, api.ImageSpec{Name: "debian-disk", Version: "12", Kind: api.KindOS, Format: api.FormatDisk,
		Files:      []api.ImageFile{df},
		Parameters: []api.Parameter{{Name: "root_password", Required: true, Secret: true}, {Name: "swap_mb", Type: api.ParamInt, Default: "512"}},
		Procedures: []api.Procedure{{Name: "hello", When: api.WhenFirstBoot, Script: "echo hello"}}}))(t)
	inst := must(c.CreateImage(ctx, api.ImageSpec{Name: "osim-installer", Version: "1", Kind: api.KindBoot, Cmdline: "console=ttyS0",
		Files: []api.ImageFile{uploadFile(t, c, "vmlinuz", api.RoleKernel, []byte(strings.Repeat("k", 3000))),
			uploadFile(t, c, "initrd.img", api.RoleInitrd, []byte(strings.Repeat("i", 5000)))}}))(t)
	must(c.PutSite(ctx, "A", api.Site{DefaultBootImage: inst.ID}))(t)
	tg := must(c.CreateTarget(ctx, api.TargetSpec{Hostname: "web-01", Site: "A", Arch: "bios", MACs: []string{"02:e4:00:00:00:01"}}))(t)

	_, err = c.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: disk.ID})
	if ae, ok := err.(*api.Error); !ok || ae.Code != 422 || !strings.Contains(ae.Message, "params.root_password: required") {
		t.Fatalf("an order without the required parameter: %v, want 422 naming it", err)
	}
	ord := must(c.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: disk.ID,
		Params: map[string]string{"root_password": secretValue}}))(t)[0]
	if ord.Params["root_password"] != api.SecretMask {
		t.Errorf("the order as created answers root_password=%q, want it masked", ord.Params["root_password"])
	}

	db, err := badger.Open(badger.DefaultOptions(filepath.Join(t.TempDir(), "db")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	ag, err := agent.New(agent.Config{DB: db, BlobDir: t.TempDir(), Client: api.NewClient(hs.URL, "", false),
		JoinToken: siteJoinToken(t, store, "A"), Name: "bs-a", Site: "A", Registry: prometheus.NewRegistry(), Logger: logger,
		SyncWait: 500 * time.Millisecond, HeartbeatInterval: 200 * time.Millisecond,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ag.Run(actx) }()
	defer func() { acancel(); <-done; db.Close() }()

	waitState := func(want api.OrderState) {
		t.Helper()
		waitFor(t, 30*time.Second, "order "+string(want), func() (bool, string) {
			o := must(c.GetOrder(ctx, ord.ID))(t)
			return o.State == want, fmt.Sprintf("%s (%s)", o.State, o.Message)
		})
	}
	waitState(api.OrderStaged)
	var h *httpboot.Handler
	bs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer bs.Close()
	h = must(httpboot.New(httpboot.Config{Scripts: ag, Files: ag, Tokens: ag, Sink: ag, Plans: ag, Targets: ag, FirstBoots: ag,
		BaseURL: bs.URL, Logger: logger}))(t)
	// The boot server's copy learns "staged" on its next sync: ask until
	// the script boots the installer (as install_test.go does).
	waitFor(t, 10*time.Second, "the installer script", func() (bool, string) {
		script := httpGet(t, bs.URL+"/ipxe/02:e4:00:00:00:01", "", 200)
		return strings.Contains(script, "osim.order="+ord.ID), script
	})
	token := must(store.GetOrder(ctx, ord.ID))(t).Token
	var plan api.InstallPlan
	if err := json.Unmarshal([]byte(httpGet(t, bs.URL+"/install/"+ord.ID, token, 200)), &plan); err != nil {
		t.Fatal(err)
	}
	if plan.Params["root_password"] != secretValue || plan.Params["swap_mb"] != "512" {
		t.Errorf("the boot server's plan has params %v: want the secret and the default", plan.Params)
	}
	post(t, bs.URL+"/status/"+ord.ID, token, `{"phase":"installing","step":"write","progress":50}`)
	post(t, bs.URL+"/status/"+ord.ID, token, `{"phase":"done","step":"finish","progress":100}`)
	waitState(api.OrderDone)
	// The agent learns of done through its sync; the report must still pass after.
	waitFor(t, 30*time.Second, "the agent to see the order done", func() (bool, string) {
		_, orders, _, _, err := ag.View()
		for _, o := range orders {
			if o.ID == ord.ID {
				return false, string(o.State)
			}
		}
		return err == nil, fmt.Sprint(err)
	})
	report := func(tok string) int {
		req, _ := http.NewRequest("POST", bs.URL+"/firstboot/"+ord.ID+"?procedure=hello&exit_code=0", strings.NewReader("hello\n"))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := report("wrong"); code != http.StatusForbidden {
		t.Errorf("a report with another token: %d, want 403", code)
	}
	if code := report(token); code != http.StatusNoContent {
		t.Fatalf("the first-boot report: %d, want 204", code)
	}
	waitFor(t, 30*time.Second, "firstboot.result at the manager", func() (bool, string) {
		evs := must(c.ListEvents(ctx, 0, api.EventFilter{Order: ord.ID, Type: api.EventFirstBoot}))(t)
		if len(evs.Events) != 1 {
			return false, fmt.Sprintf("%d events", len(evs.Events))
		}
		e := evs.Events[0]
		return e.Data["procedure"] == "hello" && e.Data["exit_code"] == "0" && e.Data["output_tail"] == `hello\n` && e.Target == tg.ID,
			fmt.Sprintf("%+v", e)
	})

	for _, role := range []string{api.RoleViewer, api.RoleOperator, api.RoleAdmin} {
		tok := must(manager.CreateToken(ctx, store, role, "e2e-"+role, time.Now()))(t)
		uc := api.NewClient(hs.URL, tok.Secret, false)
		o := must(uc.GetOrder(ctx, ord.ID))(t)
		list := must(uc.ListOrders(ctx, "", "", "", "", 0))(t)
		if o.Params["root_password"] != api.SecretMask || len(list.Orders) != 1 || list.Orders[0].Params["root_password"] != api.SecretMask {
			t.Errorf("%s sees root_password %q / %v", role, o.Params["root_password"], list.Orders)
		}
	}
	all := must(c.ListEvents(ctx, 0, api.EventFilter{}))(t)
	if b, _ := json.Marshal(all); strings.Contains(string(b), secretValue) {
		t.Error("an event carries the secret")
	}
	if strings.Contains(logs.String(), secretValue) {
		t.Errorf("the secret is in the logs:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), token) {
		t.Error("the order's token is in the logs")
	}
}
