package dhcp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var (
	serverIP = net.IPv4(10, 0, 0, 1).To4()
	macA     = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x01}
	guid     = append([]byte{0}, make([]byte, 16)...) // option 97: type 0 + 16-byte UUID
)

func init() { guid[1], guid[16] = 0xaa, 0xbb }

// pxeRequest builds what PXE firmware sends: option 60, option 93, option 97.
func pxeRequest(t testing.TB, mt dhcpv4.MessageType, class string, arch Arch, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	base := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(class)),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.Arch(arch))),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, guid),
	}
	req, err := dhcpv4.NewDiscovery(macA, append(base, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// fakeBackend answers every MAC with one decision or error.
type fakeBackend struct {
	d   Decision
	err error
}

func (f fakeBackend) Lookup(context.Context, net.HardwareAddr, Arch) (Decision, error) {
	return f.d, f.err
}

var bootImage = Decision{
	Action: ActionBootImage,
	BootFiles: map[Arch]string{
		ArchBIOS:     "undionly.kpxe",
		ArchEFIx64:   "snponly.efi",
		ArchEFIARM64: "arm64/snponly.efi",
	},
	HTTPBootFile: "ipxe.efi",
}

// testURLs is the HTTP service's URL scheme, as httpboot.URLs builds it.
type testURLs struct{ base string }

func (u testURLs) Script(mac net.HardwareAddr) string { return u.base + "/ipxe/" + mac.String() }
func (u testURLs) File(name string) string            { return u.base + "/files/" + name }

var urls = testURLs{"http://10.0.0.1:8080"}

// bootImage's URLs for macA, the client of pxeRequest.
const (
	scriptURL   = "http://10.0.0.1:8080/ipxe/52:54:00:00:00:01"
	httpBootURL = "http://10.0.0.1:8080/files/ipxe.efi"
)

var errBackendDown = errors.New("store closed")

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
