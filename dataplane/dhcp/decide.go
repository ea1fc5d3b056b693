package dhcp

import (
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Ports of the PXE exchange.
const (
	PortDHCP       = 67   // DHCPDISCOVER from the firmware (RFC 2131 §4.1)
	PortBootServer = 4011 // DHCPREQUEST to the boot server (PXE 2.1 §2.2, step 5)
)

// Outcome is what became of one request: a reply (OutcomeBootImage,
// OutcomeDiscovery) or a reason to stay silent. It is also a metric label.
type Outcome string

// Outcomes.
const (
	OutcomeBootImage Outcome = "boot_image"
	OutcomeDiscovery Outcome = "discovery"

	OutcomeNotRequest   Outcome = "not_request"   // op is not BOOTREQUEST
	OutcomeBadHWAddr    Outcome = "bad_hwaddr"    // not Ethernet with a 6-byte chaddr
	OutcomeNotPXE       Outcome = "not_pxe"       // option 60 is neither PXEClient nor HTTPClient
	OutcomeBadArch      Outcome = "bad_arch"      // option 93 malformed
	OutcomeNotOurs      Outcome = "not_ours"      // message type this port does not answer in proxy mode
	OutcomeUnknownMAC   Outcome = "unknown_mac"   // backend has no record and no default
	OutcomeBackendError Outcome = "backend_error" // backend failed
	OutcomeIgnore       Outcome = "ignore"        // backend says ignore
	OutcomeBootLocal    Outcome = "boot_local"    // backend says boot from disk: firmware falls through
	OutcomeNoBootFile   Outcome = "no_boot_file"  // decision names nothing for this client
	OutcomeTruncated    Outcome = "truncated"     // shorter than a BOOTP header
	OutcomeOversized    Outcome = "oversized"     // longer than MaxPacket
	OutcomeMalformed    Outcome = "malformed"     // passed IsPXE but did not decode
)

// Replied reports whether the outcome is a reply rather than silence.
func (o Outcome) Replied() bool {
	switch o {
	case OutcomeBootImage, OutcomeDiscovery, OutcomeLeaseOffer, OutcomeLeaseAck, OutcomeLeaseNak, OutcomeInform:
		return true
	}
	return false
}

// Class is how the client asked to boot.
type Class uint8

// Classes.
const (
	ClassOther Class = iota
	ClassPXE         // option 60 "PXEClient": firmware PXE, wants a TFTP boot program
	ClassHTTP        // option 60 "HTTPClient": UEFI HTTP boot, wants a URL
	ClassIPXE        // PXE or HTTP class plus option 77 "iPXE": wants its script
)

func (c Class) String() string {
	switch c {
	case ClassPXE:
		return "pxe"
	case ClassHTTP:
		return "http"
	case ClassIPXE:
		return "ipxe"
	}
	return "other"
}

// Client is what Inspect learned from a request; the backend is asked with
// its MAC and Arch.
type Client struct {
	MAC      net.HardwareAddr
	Arch     Arch
	Class    Class
	Type     dhcpv4.MessageType
	HTTPBoot bool // option 60 was HTTPClient (also true for iPXE under HTTP boot)
}

// Inbound describes where a request arrived.
type Inbound struct {
	ServerIP net.IP // our address on the interface: siaddr and option 54
	Port     int    // PortDHCP or PortBootServer
	URLs     URLs   // the HTTP service's URLs; nil: iPXE and HTTP boot clients get no answer
}

// Inspect checks that req is a PXE request this proxy answers on in.Port
// and extracts what the backend needs. A non-empty Outcome means: stay
// silent, for that reason.
func Inspect(req *dhcpv4.DHCPv4, in Inbound) (Client, Outcome) {
	c, vc, o := readClient(req)
	if o != "" {
		return Client{}, o
	}
	if c.Class == ClassOther {
		return Client{}, OutcomeNotPXE
	}
	// proxyDHCP answers DISCOVER on 67 only; the REQUEST that follows on 67
	// belongs to the site's DHCP server (PXE 2.1 §2.2, steps 2-4).
	want := dhcpv4.MessageTypeDiscover
	if in.Port == PortBootServer {
		want = dhcpv4.MessageTypeRequest // PXE 2.1 §2.2, step 5
	}
	if c.Type != want {
		return Client{}, OutcomeNotOurs
	}
	if o := readArchAndUserClass(req, vc, &c); o != "" {
		return Client{}, o
	}
	return c, ""
}

// readClient checks that req is a BOOTREQUEST from an Ethernet client and
// reads its MAC, message type and class (PXE or HTTP from option 60, else
// ClassOther); vc is option 60. Inspect and inspectFull share it.
func readClient(req *dhcpv4.DHCPv4) (c Client, vc string, o Outcome) {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return Client{}, "", OutcomeNotRequest
	}
	if req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		return Client{}, "", OutcomeBadHWAddr
	}
	c = Client{MAC: req.ClientHWAddr, Type: req.MessageType()}
	vc = req.ClassIdentifier()
	switch {
	case strings.HasPrefix(vc, "PXEClient"):
		c.Class = ClassPXE
	case strings.HasPrefix(vc, "HTTPClient"):
		c.Class, c.HTTPBoot = ClassHTTP, true
	}
	return c, vc, ""
}

// readArchAndUserClass fills c.Arch from option 93 (or option 60) and
// turns a PXE or HTTP class into ClassIPXE when option 77 says iPXE.
func readArchAndUserClass(req *dhcpv4.DHCPv4, vc string, c *Client) Outcome {
	if raw := req.Options.Get(dhcpv4.OptionClientSystemArchitectureType); raw != nil {
		a, err := ParseArchOption(raw)
		if err != nil {
			return OutcomeBadArch
		}
		c.Arch = a
	} else {
		c.Arch = archFromClass(vc)
	}
	if c.Class == ClassOther {
		return ""
	}
	for _, uc := range req.UserClass() {
		if uc == "iPXE" {
			c.Class = ClassIPXE
		}
	}
	return ""
}

// archFromClass reads "PXEClient:Arch:00007:UNDI:003016", the arch some
// firmware puts in option 60 (PXE 2.1 §2.4, table 2-1); BIOS if absent.
func archFromClass(vc string) Arch {
	parts := strings.Split(vc, ":")
	if len(parts) >= 3 && parts[1] == "Arch" {
		if n, err := strconv.ParseUint(parts[2], 10, 16); err == nil {
			return Arch(n)
		}
	}
	return ArchBIOS
}

// Decide turns the backend's answer for c into a reply, or an Outcome that
// says why to stay silent. It does no I/O.
func Decide(req *dhcpv4.DHCPv4, in Inbound, c Client, d Decision, lookupErr error) (*dhcpv4.DHCPv4, Outcome) {
	file, outcome := bootChoice(c, d, in.URLs, lookupErr)
	if !outcome.Replied() {
		return nil, outcome
	}
	mt := dhcpv4.MessageTypeOffer
	if in.Port == PortBootServer {
		mt = dhcpv4.MessageTypeAck // PXE 2.1 §2.2, step 6
	}
	reply := newReply(req,
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithYourIP(net.IPv4zero),   // proxyDHCP hands out no address (PXE 2.1 §2.2, step 2)
		dhcpv4.WithClientIP(net.IPv4zero), // RFC 2131 §4.3.1 table 3: ciaddr 0 in OFFER/ACK
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(in.ServerIP)),
	)
	withBoot(reply, req, c, file, in.ServerIP)
	return reply, outcome
}

// bootChoice turns the backend's answer into the boot file for c and the
// outcome; an outcome that is not Replied says why to stay silent. Proxy
// and full mode share it.
func bootChoice(c Client, d Decision, urls URLs, lookupErr error) (string, Outcome) {
	if lookupErr != nil {
		if errors.Is(lookupErr, ErrUnknownMAC) {
			return "", OutcomeUnknownMAC
		}
		return "", OutcomeBackendError
	}
	var outcome Outcome
	switch d.Action {
	case ActionBootImage:
		outcome = OutcomeBootImage
	case ActionDiscovery:
		outcome = OutcomeDiscovery
	case ActionBootLocal:
		// Silence makes PXE firmware give up and try the next boot device.
		return "", OutcomeBootLocal
	default:
		return "", OutcomeIgnore
	}
	file := bootFile(c, d, urls)
	if file == "" {
		return "", OutcomeNoBootFile
	}
	return file, outcome
}

// withBoot adds what a PXE or HTTP boot client needs to boot to reply:
// next-server, option 60, option 43 (PXE only), option 97 echoed, boot file.
func withBoot(reply, req *dhcpv4.DHCPv4, c Client, file string, serverIP net.IP) {
	class := "PXEClient"
	if c.HTTPBoot {
		class = "HTTPClient" // UEFI 2.x §24.7: HTTP boot offers echo HTTPClient
	}
	reply.ServerIPAddr = serverIP
	reply.UpdateOption(dhcpv4.OptClassIdentifier(class))
	dhcpv4.WithOptionCopied(req, dhcpv4.OptionClientMachineIdentifier)(reply) // PXE 2.1 §2.4: echo option 97
	if !c.HTTPBoot {
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, pxeVendorOptions))
	}
	// The file field holds 127 bytes; longer names (URLs) go in option 67 alone.
	if len(file) <= 127 {
		reply.BootFileName = file
	}
	reply.UpdateOption(dhcpv4.OptBootFileName(file))
}

// pxeVendorOptions is option 43 with PXE_DISCOVERY_CONTROL (sub-option 6)
// = 8: take the boot file from this reply, skip boot server discovery, so
// clients do not wait for menus (PXE 2.1 §2.4, table 2-1).
var pxeVendorOptions = []byte{6, 1, 8, 255}

func bootFile(c Client, d Decision, urls URLs) string {
	switch {
	case c.Class == ClassIPXE:
		if urls == nil {
			return ""
		}
		return urls.Script(c.MAC) // iPXE gets its script, not iPXE again: breaks the chainload loop
	case c.HTTPBoot:
		if urls == nil || d.HTTPBootFile == "" {
			return ""
		}
		return urls.File(d.HTTPBootFile)
	}
	return d.BootFiles[c.Arch.Canonical()]
}
