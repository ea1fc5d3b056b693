package netup

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"osim/internal/pxeclient"
	"osim/internal/testlab"
)

// TestUpTakesALeaseAndInstallsAddressAndRoute runs Up in a namespace
// whose veth peer has dnsmasq serving DHCP: the NIC is found by MAC, set
// up, leased, and the address and default route land in the kernel.
func TestUpTakesALeaseAndInstallsAddressAndRoute(t *testing.T) {
	testlab.RequireRoot(t, "network namespaces")
	dnsmasq := testlab.RequireTool(t, "dnsmasq", "dnsmasq-base")
	p := testlab.NewTestPair(t, testlab.PairSpec{
		Prefix: "osimnu", ServerIf: "nus0", ClientIf: "nuc0",
		ServerAddr: netip.MustParsePrefix("10.77.0.1/24"), ClientAddr: netip.MustParsePrefix("192.0.2.9/32"),
	}, "DHCP in a namespace")
	// The client starts as a booting machine: no address, link down.
	testlab.RunIP(t, "-n", p.Client, "addr", "flush", "dev", "nuc0")
	testlab.RunIP(t, "-n", p.Client, "link", "set", "nuc0", "down")
	leases := filepath.Join(t.TempDir(), "leases")
	srv := exec.Command("ip", "netns", "exec", p.Server, dnsmasq, "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface=nus0", "--bind-interfaces", "--dhcp-range=10.77.0.50,10.77.0.60,255.255.255.0,1h",
		"--dhcp-option=3,10.77.0.1", "--dhcp-leasefile="+leases, "--pid-file=")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })

	ns, err := pxeclient.OpenNetns(p.ClientPath())
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var mac string
	var l Lease
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = ns.Do(func() error {
		ifc, err := net.InterfaceByName("nuc0")
		if err != nil {
			return err
		}
		mac = ifc.HardwareAddr.String()
		l, err = Up(ctx, strings.ToUpper(mac), 10*time.Second, "/sys/class/net")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if l.Interface != "nuc0" || !l.Router.Equal(net.ParseIP("10.77.0.1")) {
		t.Errorf("lease %+v", l)
	}
	addr, _ := exec.Command("ip", "-n", p.Client, "-4", "addr", "show", "dev", "nuc0").Output()
	route, _ := exec.Command("ip", "-n", p.Client, "-4", "route", "show", "default").Output()
	if !strings.Contains(string(addr), l.Addr.String()) || !strings.Contains(string(addr), "10.77.0.") || !strings.Contains(string(addr), "UP") {
		t.Errorf("address %s not on the interface: %s", l.Addr.String(), addr)
	}
	if !strings.Contains(string(route), "default via 10.77.0.1 dev nuc0") {
		t.Errorf("default route: %q", route)
	}
}
