package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"

	"osim/controlplane/agent"
	"osim/controlplane/api"
	"osim/dataplane/dhcp"
	"osim/dataplane/httpboot"
	"osim/internal/clock"
	"osim/internal/pxeclient"
)

// recordedDISCOVER is the DISCOVER a recorded firmware profile sends.
func recordedDISCOVER(t *testing.T, fw pxeclient.Firmware, mac net.HardwareAddr) []byte {
	t.Helper()
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(fw.MaxMsgSize)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, binary.BigEndian.AppendUint16(nil, fw.Arch)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, fw.NDI[:]),
		dhcpv4.WithGeneric(dhcpv4.OptionClassIdentifier, []byte(fw.VendorClass)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, make([]byte, 17)),
		dhcpv4.WithGeneric(dhcpv4.OptionParameterRequestList, fw.RequestList),
		dhcpv4.WithHwAddr(mac),
	}
	if fw.UserClass != "" {
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte(fw.UserClass)))
	}
	m, err := dhcpv4.New(mods...)
	if err != nil {
		t.Fatal(err)
	}
	return m.ToBytes()
}

// kernelArgs returns the osim.* keys of an iPXE script's kernel line.
func kernelArgs(script string) map[string]string {
	out := map[string]string{}
	for line := range strings.SplitSeq(script, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "kernel" {
			continue
		}
		out["kernel"] = fields[1]
		for _, f := range fields[2:] {
			if k, v, ok := strings.Cut(f, "="); ok {
				out[k] = v
			}
		}
	}
	return out
}

// TestDiscoveryEndToEnd: an unknown machine's firmware asks DHCP (the
// agent's decision through the real DHCP handler), its iPXE fetches the
// script, which boots the discovery image in osim.mode=discover; the
// installer posts its inventory to /discover/{mac}; the agent's event
// reaches the manager, which registers a discovered target of the boot
// server's site with the arch DHCP saw and the facts; orders are refused
// until the operator accepts it, then it is a normal target.
func TestDiscoveryEndToEnd(t *testing.T) {
	store, hs, admin := inProcessManager(t)
	ctx := context.Background()

	// The discovery image: the osim installer's kernel and initrd.
	var spec = api.ImageSpec{Name: "osim-installer", Version: "1", Kind: api.KindBoot, Cmdline: "console=ttyS0"}
	for _, f := range []struct{ name, role, arch, data string }{
		{"vmlinuz", api.RoleKernel, "", "osim installer kernel"},
		{"initrd.cpio", api.RoleInitrd, "", "osim installer initramfs"},
		{"snponly.efi", api.RoleNBP, "efi-x64", "iPXE for UEFI"},
	} {
		sha := sha256Hex([]byte(f.data))
		if _, err := admin.UploadBlob(ctx, sha, int64(len(f.data)), strings.NewReader(f.data), 0); err != nil {
			t.Fatal(err)
		}
		spec.Files = append(spec.Files, api.ImageFile{Name: f.name, SHA256: sha, Size: int64(len(f.data)), Role: f.role, Arch: f.arch})
	}
	img, err := admin.CreateImage(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}

	// The boot server: the agent under boot.unknown: discovery, its HTTP
	// service (with a clock the test steps) and its DHCP decisions.
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	a, err := agent.New(agent.Config{DB: db, BlobDir: filepath.Join(dir, "blobs"), Client: api.NewClient(hs.URL, "", false),
		JoinToken: siteJoinToken(t, store, "lab"), Name: "bs-lab", Site: "lab", Registry: reg,
		DefaultBootFiles: map[dhcp.Arch]string{dhcp.ArchBIOS: "undionly.kpxe", dhcp.ArchEFIx64: "snponly.efi"},
		Unknown:          dhcp.ActionDiscovery, DiscoveryImage: img.ID,
		SyncWait: 200 * time.Millisecond, HeartbeatInterval: 200 * time.Millisecond,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	t.Cleanup(func() { cancel(); <-done; db.Close() })

	hclock := clock.NewFake(time.Now())
	hsrv := httptest.NewUnstartedServer(nil)
	base := "http://" + hsrv.Listener.Addr().String()
	h, err := httpboot.New(httpboot.Config{Scripts: a, Files: a, Tokens: a, Sink: a, Targets: a, Discoveries: a,
		BaseURL: base, Clock: hclock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hsrv.Config.Handler = h
	hsrv.Start()
	t.Cleanup(hsrv.Close)
	dh := &dhcp.Handler{Backend: a, ServerIP: net.IPv4(127, 0, 0, 1), URLs: httpboot.URLs{Base: base},
		Log: slog.New(slog.DiscardHandler)}

	// The image is staged though no order names it.
	kernelURL := base + "/files/images/" + img.ID + "/vmlinuz"
	waitFor(t, 30*time.Second, "the discovery image to be staged", func() (bool, string) {
		resp, err := http.Get(kernelURL)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})

	// Firmware (OVMF), then its iPXE: the script URL of its own MAC.
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0xd1, 0x5c, 0x07}
	r := dh.Handle(ctx, recordedDISCOVER(t, pxeclient.EDK2x64, mac), dhcp.PortDHCP, time.Now())
	if r.Reply == nil || r.Reply.BootFileNameOption() != "images/"+img.ID+"/snponly.efi" {
		t.Fatalf("firmware of an unknown machine: outcome %s, reply %v; want the discovery image's iPXE NBP", r.Outcome, r.Reply)
	}
	r = dh.Handle(ctx, recordedDISCOVER(t, pxeclient.IPXESNP, mac), dhcp.PortDHCP, time.Now())
	if r.Reply == nil {
		t.Fatalf("iPXE of an unknown machine: no answer (%s)", r.Outcome)
	}
	scriptURL := r.Reply.BootFileNameOption()
	resp, err := http.Get(scriptURL + "?platform=efi")
	if err != nil {
		t.Fatal(err)
	}
	script, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	args := kernelArgs(string(script))
	if resp.StatusCode != 200 || args["kernel"] != kernelURL || args["osim.mode"] != "discover" || args["osim.url"] != base ||
		args["osim.mac"] != mac.String() || args["osim.discover_then"] != "poweroff" || args["console"] != "ttyS0" {
		t.Fatalf("script of an unknown machine (%d):\n%s", resp.StatusCode, script)
	}

	// The installer in discover mode reports its inventory.
	report, _ := json.Marshal(api.DiscoverReport{Facts: map[string]string{"dmi.product": "Standard PC (Q35)", "disk.vda.size": "8589934592"}})
	post := func() *http.Response {
		resp, err := http.Post(args["osim.url"]+"/discover/"+args["osim.mac"], "application/json", bytes.NewReader(report))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if c := post().StatusCode; c != http.StatusNoContent {
		t.Fatalf("discovery report: %d, want 204", c)
	}
	if resp := post(); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second report within the interval: %d (Retry-After %q), want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	var tg api.Target
	waitFor(t, 30*time.Second, "the manager to register the discovered target", func() (bool, string) {
		l, err := admin.ListTargetsInState(ctx, api.TargetDiscovered, "", "", "", 0)
		if err != nil || len(l.Targets) != 1 {
			return false, "not yet"
		}
		tg = l.Targets[0]
		return true, ""
	})
	if tg.Site != "lab" || tg.Arch != "efi-x64" || tg.MACs[0] != mac.String() || tg.Facts["disk.vda.size"] != "8589934592" ||
		tg.Facts[api.DataDHCPArch] != "efi-x64" || tg.Hostname != api.DiscoveredHostname(mac.String()) {
		t.Fatalf("discovered target %+v", tg)
	}
	if n := gathered(t, reg, "osim_agent_discovered_total"); n != 1 {
		t.Errorf("osim_agent_discovered_total %v, want 1", n)
	}
	evs, err := admin.ListEvents(ctx, 0, api.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs.Events {
		found = found || (e.Type == api.EventTargetDiscovered && e.Target == tg.ID)
	}
	if !found {
		t.Error("no target.discovered event kept at the manager")
	}

	// Once the boot server knows the MAC, a report of it is a conflict
	// (after the interval, which the test steps).
	waitFor(t, 30*time.Second, "the boot server to sync the new target", func() (bool, string) {
		b, err := a.Script(ctx, mac)
		return err == nil && b.Local, "not yet"
	})
	hclock.Step(11 * time.Minute)
	if c := post().StatusCode; c != http.StatusConflict {
		t.Fatalf("report of a known machine: %d, want 409", c)
	}

	// No orders until accepted; then a normal target.
	osImg := uploadImage(t, admin, "debian", []byte("debian kernel"))
	_, err = admin.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: osImg.ID})
	if !api.IsStatus(err, http.StatusConflict) {
		t.Fatalf("order for a discovered target: %v, want 409", err)
	}
	acc, err := admin.AcceptTarget(ctx, tg.ID, api.AcceptRequest{Hostname: "node7", Labels: map[string]string{"rack": "r1"}})
	if err != nil || acc.State != "" || acc.Hostname != "node7" {
		t.Fatalf("accept: %+v %v", acc, err)
	}
	if _, err := admin.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: osImg.ID}); err != nil {
		t.Fatalf("order for the accepted target: %v", err)
	}
}
