package bootd

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// freeTCP is a loopback TCP address nothing listens on.
func freeTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestUnknownMachineUnderDiscoveryIsSentToAURLHTTPBootServes runs a node
// on loopback with boot.unknown: discovery: an unknown machine's iPXE asks
// DHCP, gets a script URL, and that URL is a route of the HTTP service (404
// "unknown target", the discovery flow not being there yet), never the 400
// of /ipxe/discovery, which is not a MAC.
func TestUnknownMachineUnderDiscoveryIsSentToAURLHTTPBootServes(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"tftp", "files"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := &Config{
		Address: "127.0.0.1",
		DHCP:    DHCPSection{Listen: "127.0.0.1:0", BootListen: "127.0.0.1:0"},
		TFTP:    TFTPSection{Listen: "127.0.0.1:0", Root: filepath.Join(dir, "tftp")},
		HTTP:    HTTPSection{Listen: freeTCP(t), Files: filepath.Join(dir, "files")},
		Boot:    BootSection{Unknown: "discovery"},
	}
	k, err := Check(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := Build(k, Options{Log: log, Level: new(slog.LevelVar)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, time.Second) }()
	defer func() { cancel(); <-done }()

	// iPXE of a machine nobody registered asks the boot server (port 4011
	// answers to the sender).
	mac := net.HardwareAddr{0x52, 0x54, 0, 0xde, 0xad, 0x01}
	req, err := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, make([]byte, 16)...)),
		dhcpv4.WithUserClass("iPXE", false), dhcpv4.WithClientIP(net.IPv4(127, 0, 0, 1)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(n.dhcp.BootAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req.ToBytes()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	m, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no DHCP answer for an unknown machine under discovery: %v", err)
	}
	ack, err := dhcpv4.FromBytes(buf[:m])
	if err != nil {
		t.Fatal(err)
	}
	url := ack.BootFileNameOption()
	if want := "http://" + cfg.HTTP.Listen + "/ipxe/" + mac.String(); url != want {
		t.Fatalf("script URL %q, want %q (its own script)", url, want)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "unknown target: "+mac.String()) {
		t.Fatalf("GET %s: %d %q, want 404 naming the unknown target", url, resp.StatusCode, body)
	}
}
