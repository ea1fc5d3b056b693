package xdp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	xdpbench "osim/bench/xdp"
	"osim/dataplane/dhcp"
	"osim/dataplane/tftp"
	"osim/internal/pxeclient"
	"osim/internal/testlab"
)

// The end-to-end test runs twice, like internal/pxeclient's: the outer run
// makes a server and a client namespace joined by a veth pair and runs
// this test binary again inside the server namespace, where the XDP
// program is attached to the veth and DHCP and TFTP serve; the inner run
// floods from the client namespace and boots a real client there.
const (
	envE2EClientNetns = "OSIM_XDP_E2E_CLIENT_NETNS"
	envE2EClientIf    = "OSIM_XDP_E2E_CLIENT_IF"
	envE2EServerIf    = "OSIM_XDP_E2E_SERVER_IF"
	e2eServerIP       = "10.98.0.1"
)

func TestRealClientServedDuringRandomMACFlood(t *testing.T) {
	if os.Getenv(envE2EClientNetns) != "" {
		e2eInner(t)
		return
	}
	pid := os.Getpid()
	pair := testlab.NewTestPair(t, testlab.PairSpec{Prefix: "osim-x",
		ServerIf: fmt.Sprintf("xs%d", pid), ClientIf: fmt.Sprintf("xc%d", pid),
		ServerAddr: netip.MustParsePrefix(e2eServerIP + "/24"), ClientAddr: netip.MustParsePrefix("10.98.0.2/24"),
	}, "the XDP end-to-end test (namespaces, veth, XDP attach): CAP_BPF, CAP_NET_ADMIN")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	args := []string{"netns", "exec", pair.Server, os.Args[0], "-test.run=^TestRealClientServedDuringRandomMACFlood$", "-test.count=1", "-test.v"}
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Env = append(os.Environ(), envE2EClientNetns+"="+pair.ClientPath(), envE2EClientIf+"="+pair.ClientIf, envE2EServerIf+"="+pair.ServerIf)
	out, err := cmd.CombinedOutput()
	t.Logf("inside %s:\n%s", pair.Server, out)
	if err != nil {
		t.Fatalf("inside %s: %v", pair.Server, err)
	}
}

func e2eInner(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	realMAC := net.HardwareAddr{0x52, 0x54, 0x00, 0x98, 0x00, 0x07}

	prog, err := Attach(os.Getenv(envE2EServerIf), DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	if prog.Mode() != ModeDriver && prog.Mode() != ModeGeneric {
		t.Fatalf("XDP did not attach to the veth (mode %s)", prog.Mode())
	}
	if err := prog.SetPolicy([]net.HardwareAddr{realMAC}, nil); err != nil {
		t.Fatal(err)
	}

	backend, err := dhcp.NewFileBackend(dhcp.FileConfig{
		BootFiles: map[string]string{"bios": "undionly.kpxe", "efi-x64": "snponly.efi"},
		Unknown:   "ignore",
		Machines:  []dhcp.FileMachine{{MAC: realMAC.String(), Action: "boot"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	dsrv, err := dhcp.NewServer(&dhcp.Handler{Backend: backend, ServerIP: net.ParseIP(e2eServerIP)},
		dhcp.ServerConfig{Workers: 2, Guard: prog})
	if err != nil {
		t.Fatal(err)
	}
	go dsrv.Serve(ctx)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "snponly.efi"), make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := tftp.NewFolderResolver(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	tsrv, err := tftp.NewServer(tftp.Config{}, res)
	if err != nil {
		t.Fatal(err)
	}
	tconn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(e2eServerIP), Port: 69})
	if err != nil {
		t.Fatal(err)
	}
	defer tconn.Close()
	go tsrv.Serve(ctx, tconn)

	ns, err := pxeclient.OpenNetns(os.Getenv(envE2EClientNetns))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	ifname := os.Getenv(envE2EClientIf)

	// The storm: random-MAC PXE DISCOVERs as fast as one core sends them.
	var sent atomic.Uint64
	fctx, stopFlood := context.WithCancel(ctx)
	flooded := make(chan error, 1)
	go func() { flooded <- xdpbench.Flood(fctx, ifname, ns.Do, &sent) }()
	time.Sleep(time.Second) // the storm is on before the client powers on

	fw := pxeclient.EDK2x64
	fw.Next = nil
	schedule := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}
	r, err := pxeclient.Boot(ctx, pxeclient.Config{Interface: ifname, MAC: realMAC, Firmware: fw, Schedule: schedule,
		OfferWindow: 200 * time.Millisecond, TFTPTimeout: time.Second, Do: ns.Do})
	stopFlood()
	if ferr := <-flooded; ferr != nil {
		t.Fatalf("flood: %v", ferr)
	}
	if err != nil {
		t.Fatalf("real client during the flood: %v (phases %+v)", err, r.Phases)
	}
	for _, p := range r.Phases {
		t.Logf("%-16s %v", p.Phase, p.Duration)
		if p.Phase == pxeclient.PhaseDiscover && p.Duration > schedule[0]+schedule[1] {
			t.Errorf("offer after %v: not within the first retry (%v + %v)", p.Duration, schedule[0], schedule[1])
		}
	}
	if len(r.Stages) != 1 || r.Stages[0].BootFile != "snponly.efi" {
		t.Errorf("stages %+v, want one answering snponly.efi", r.Stages)
	}
	packets, _, err := prog.Counts()
	if err != nil {
		t.Fatal(err)
	}
	n := sent.Load()
	t.Logf("flood sent %d DISCOVERs; XDP: pxe pass %d, drop_admission %d, drop_rate %d", n,
		packets[ClassPXE][VerdictPass], packets[ClassPXE][VerdictDropAdmission], packets[ClassPXE][VerdictDropRate])
	if n < 1000 {
		t.Errorf("the flood sent only %d frames", n)
	}
	if packets[ClassPXE][VerdictDropAdmission] < n/2 {
		t.Errorf("XDP dropped %d of %d flood frames at admission, want most", packets[ClassPXE][VerdictDropAdmission], n)
	}
}
