package dhcp

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

const pxeX64 = "PXEClient:Arch:00007:UNDI:003016"

func decide(t *testing.T, req *dhcpv4.DHCPv4, port int, d Decision, err error) (*dhcpv4.DHCPv4, Outcome) {
	t.Helper()
	in := Inbound{ServerIP: serverIP, Port: port, URLs: urls}
	c, o := Inspect(req, in)
	if o != "" {
		return nil, o
	}
	return Decide(req, in, c, d, err)
}

func TestProxyOfferCarriesNoAddressAndNamesBootFile(t *testing.T) {
	req := pxeRequest(t, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64)
	reply, o := decide(t, req, PortDHCP, bootImage, nil)
	if o != OutcomeBootImage || reply == nil {
		t.Fatalf("outcome %q, reply %v", o, reply)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"op", reply.OpCode, dhcpv4.OpcodeBootReply},
		{"message type", reply.MessageType(), dhcpv4.MessageTypeOffer},
		{"xid", reply.TransactionID, req.TransactionID},
		{"chaddr", reply.ClientHWAddr.String(), macA.String()},
		{"yiaddr", reply.YourIPAddr.String(), "0.0.0.0"},
		{"siaddr", reply.ServerIPAddr.String(), serverIP.String()},
		{"option 54", reply.ServerIdentifier().String(), serverIP.String()},
		{"option 60", reply.ClassIdentifier(), "PXEClient"},
		{"option 43", fmt.Sprint(reply.Options.Get(dhcpv4.OptionVendorSpecificInformation)), fmt.Sprint([]byte{6, 1, 8, 255})},
		{"option 97", fmt.Sprint(reply.Options.Get(dhcpv4.OptionClientMachineIdentifier)), fmt.Sprint(guid)},
		{"file", reply.BootFileName, "snponly.efi"},
		{"option 67", reply.BootFileNameOption(), "snponly.efi"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	// The encoded reply must survive a decode with the same fields.
	back, err := dhcpv4.FromBytes(reply.ToBytes())
	if err != nil || back.BootFileName != "snponly.efi" || !back.YourIPAddr.Equal(net.IPv4zero) {
		t.Fatalf("round trip: %v %v", back, err)
	}
}

func TestOfferLeavesOutOption97WhenClientSentNone(t *testing.T) {
	req := pxeRequest(t, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64, dhcpv4.WithoutOption(dhcpv4.OptionClientMachineIdentifier))
	reply, _ := decide(t, req, PortDHCP, bootImage, nil)
	if reply.Options.Has(dhcpv4.OptionClientMachineIdentifier) {
		t.Fatal("option 97 invented")
	}
}

func TestBootServerAnswersRequestOn4011WithAck(t *testing.T) {
	req := pxeRequest(t, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00000:UNDI:002001", ArchBIOS,
		dhcpv4.WithClientIP(net.IPv4(10, 0, 0, 50)))
	reply, o := decide(t, req, PortBootServer, bootImage, nil)
	if o != OutcomeBootImage {
		t.Fatalf("outcome %q", o)
	}
	if reply.MessageType() != dhcpv4.MessageTypeAck || reply.BootFileName != "undionly.kpxe" || !reply.YourIPAddr.Equal(net.IPv4zero) {
		t.Fatalf("got %s", reply.Summary())
	}
}

func TestBootFileFollowsArchAndClass(t *testing.T) {
	ipxe := dhcpv4.WithUserClass("iPXE", false)
	cases := []struct {
		name     string
		class    string
		arch     Arch
		mods     []dhcpv4.Modifier
		file     string
		class60  string
		vendor43 bool
	}{
		{"bios gets undionly.kpxe", "PXEClient:Arch:00000:UNDI:002001", ArchBIOS, nil, "undionly.kpxe", "PXEClient", true},
		{"efi x64 gets snponly.efi", pxeX64, ArchEFIx64, nil, "snponly.efi", "PXEClient", true},
		{"efi byte code (9) is x64", "PXEClient:Arch:00009:UNDI:003016", ArchEFIBC, nil, "snponly.efi", "PXEClient", true},
		{"arm64 gets the arm64 build", "PXEClient:Arch:00011:UNDI:003016", ArchEFIARM64, nil, "arm64/snponly.efi", "PXEClient", true},
		{"arch from option 60 when option 93 is absent", "PXEClient:Arch:00011:UNDI:003016", ArchBIOS,
			[]dhcpv4.Modifier{dhcpv4.WithoutOption(dhcpv4.OptionClientSystemArchitectureType)}, "arm64/snponly.efi", "PXEClient", true},
		{"bare PXEClient without option 93 is bios", "PXEClient", ArchBIOS,
			[]dhcpv4.Modifier{dhcpv4.WithoutOption(dhcpv4.OptionClientSystemArchitectureType)}, "undionly.kpxe", "PXEClient", true},
		{"iPXE (RFC 3004 user class) gets its script", pxeX64, ArchEFIx64, []dhcpv4.Modifier{dhcpv4.WithUserClass("iPXE", true)}, scriptURL, "PXEClient", true},
		{"iPXE (plain user class) gets its script", "PXEClient:Arch:00000:UNDI:002001", ArchBIOS, []dhcpv4.Modifier{ipxe}, scriptURL, "PXEClient", true},
		{"UEFI HTTP boot gets a URL and HTTPClient", "HTTPClient:Arch:00016:UNDI:003001", ArchEFIx64HTTP, nil, httpBootURL, "HTTPClient", false},
		{"iPXE under HTTP boot gets its script", "HTTPClient:Arch:00016:UNDI:003001", ArchEFIx64HTTP, []dhcpv4.Modifier{ipxe}, scriptURL, "HTTPClient", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := pxeRequest(t, dhcpv4.MessageTypeDiscover, c.class, c.arch, c.mods...)
			reply, o := decide(t, req, PortDHCP, bootImage, nil)
			if reply == nil {
				t.Fatalf("silent: %q", o)
			}
			if reply.BootFileName != c.file || reply.BootFileNameOption() != c.file {
				t.Errorf("file %q / option 67 %q, want %q", reply.BootFileName, reply.BootFileNameOption(), c.file)
			}
			if got := reply.ClassIdentifier(); got != c.class60 {
				t.Errorf("option 60 %q, want %q", got, c.class60)
			}
			if got := reply.Options.Has(dhcpv4.OptionVendorSpecificInformation); got != c.vendor43 {
				t.Errorf("option 43 present = %v, want %v", got, c.vendor43)
			}
		})
	}
}

func TestDiscoveryDecisionBootsTheDiscoveryImage(t *testing.T) {
	d := bootImage
	d.Action = ActionDiscovery
	reply, o := decide(t, pxeRequest(t, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64), PortDHCP, d, nil)
	if o != OutcomeDiscovery || reply == nil || reply.BootFileName != "snponly.efi" {
		t.Fatalf("outcome %q reply %v", o, reply)
	}
}

func TestLongURLGoesInOption67Only(t *testing.T) {
	long := testURLs{"http://10.0.0.1:8080/" + strings.Repeat("x", 200)}
	req := pxeRequest(t, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64, dhcpv4.WithUserClass("iPXE", false))
	in := Inbound{ServerIP: serverIP, Port: PortDHCP, URLs: long}
	c, _ := Inspect(req, in)
	reply, _ := Decide(req, in, c, bootImage, nil)
	if reply.BootFileName != "" || reply.BootFileNameOption() != long.Script(macA) {
		t.Fatalf("file %q option 67 %q", reply.BootFileName, reply.BootFileNameOption())
	}
}

func TestStaysSilentWithReason(t *testing.T) {
	disc := func(t *testing.T, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		return pxeRequest(t, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64, mods...)
	}
	noARM32 := bootImage // no boot file for efi-arm32
	cases := []struct {
		name string
		req  func(t *testing.T) *dhcpv4.DHCPv4
		port int
		d    Decision
		err  error
		want Outcome
	}{
		{"plain DHCP client", func(t *testing.T) *dhcpv4.DHCPv4 {
			return disc(t, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("MSFT 5.0")))
		}, PortDHCP, bootImage, nil, OutcomeNotPXE},
		{"no option 60", func(t *testing.T) *dhcpv4.DHCPv4 { return disc(t, dhcpv4.WithoutOption(dhcpv4.OptionClassIdentifier)) }, PortDHCP, bootImage, nil, OutcomeNotPXE},
		{"a reply, not a request", func(t *testing.T) *dhcpv4.DHCPv4 {
			r := disc(t)
			r.OpCode = dhcpv4.OpcodeBootReply
			return r
		}, PortDHCP, bootImage, nil, OutcomeNotRequest},
		{"not ethernet", func(t *testing.T) *dhcpv4.DHCPv4 {
			r := disc(t)
			r.ClientHWAddr = make(net.HardwareAddr, 16)
			return r
		}, PortDHCP, bootImage, nil, OutcomeBadHWAddr},
		{"REQUEST on 67 belongs to the site DHCP server", func(t *testing.T) *dhcpv4.DHCPv4 {
			return pxeRequest(t, dhcpv4.MessageTypeRequest, pxeX64, ArchEFIx64)
		}, PortDHCP, bootImage, nil, OutcomeNotOurs},
		{"DISCOVER on 4011", func(t *testing.T) *dhcpv4.DHCPv4 { return disc(t) }, PortBootServer, bootImage, nil, OutcomeNotOurs},
		{"RELEASE on 67", func(t *testing.T) *dhcpv4.DHCPv4 { return disc(t, dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease)) }, PortDHCP, bootImage, nil, OutcomeNotOurs},
		{"option 93 of odd length", func(t *testing.T) *dhcpv4.DHCPv4 {
			return disc(t, dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7, 1}))
		}, PortDHCP, bootImage, nil, OutcomeBadArch},
		{"backend: ignore", func(t *testing.T) *dhcpv4.DHCPv4 { return disc(t) }, PortDHCP, Decision{Action: ActionIgnore}, nil, OutcomeIgnore},
		{"backend: boot local lets firmware fall through to disk", func(t *testing.T) *dhcpv4.DHCPv4 { return disc(t) }, PortDHCP, Decision{Action: ActionBootLocal}, nil, OutcomeBootLocal},
		{"backend: zero decision", func(t *testing.T) *dhcpv4.DHCPv4 { return disc(t) }, PortDHCP, Decision{}, nil, OutcomeIgnore},
		{"backend: unknown MAC", func(t *testing.T) *dhcpv4.DHCPv4 { return disc(t) }, PortDHCP, Decision{}, fmt.Errorf("x: %w", ErrUnknownMAC), OutcomeUnknownMAC},
		{"backend: failure", func(t *testing.T) *dhcpv4.DHCPv4 { return disc(t) }, PortDHCP, bootImage, errBackendDown, OutcomeBackendError},
		{"no boot file for the arch", func(t *testing.T) *dhcpv4.DHCPv4 {
			return pxeRequest(t, dhcpv4.MessageTypeDiscover, "PXEClient", ArchEFIARM32)
		}, PortDHCP, noARM32, nil, OutcomeNoBootFile},
		{"UEFI HTTP boot but no HTTP boot file", func(t *testing.T) *dhcpv4.DHCPv4 {
			return pxeRequest(t, dhcpv4.MessageTypeDiscover, "HTTPClient:Arch:00016:UNDI:003001", ArchEFIx64HTTP)
		}, PortDHCP, Decision{Action: ActionBootImage, BootFiles: bootImage.BootFiles}, nil, OutcomeNoBootFile},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reply, o := decide(t, c.req(t), c.port, c.d, c.err)
			if reply != nil || o != c.want || o.Replied() {
				t.Fatalf("got reply %v outcome %q, want silence with %q", reply != nil, o, c.want)
			}
		})
	}
	// The script URL is the HTTP service's to name: without it, iPXE
	// gets no answer rather than a wrong one.
	t.Run("iPXE but no script", func(t *testing.T) {
		req := disc(t, dhcpv4.WithUserClass("iPXE", false))
		in := Inbound{ServerIP: serverIP, Port: PortDHCP}
		c, _ := Inspect(req, in)
		if reply, o := Decide(req, in, c, bootImage, nil); reply != nil || o != OutcomeNoBootFile {
			t.Fatalf("got reply %v outcome %q, want silence with %q", reply != nil, o, OutcomeNoBootFile)
		}
	})
}

func TestParseArchOption(t *testing.T) {
	cases := []struct {
		in   []byte
		want Arch
		ok   bool
	}{
		{[]byte{0, 0}, ArchBIOS, true},
		{[]byte{0, 7}, ArchEFIx64, true},
		{[]byte{0, 16, 0, 7}, ArchEFIx64HTTP, true}, // first is preferred (RFC 4578 §2.1)
		{nil, 0, false},
		{[]byte{0}, 0, false},
	}
	for _, c := range cases {
		got, err := ParseArchOption(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseArchOption(%v) = %v, %v", c.in, got, err)
		}
		if err != nil && !bytes.Contains([]byte(err.Error()), []byte("option 93")) {
			t.Errorf("error does not name the option: %v", err)
		}
	}
	if ArchEFIARM64.String() != "efi-arm64" || Arch(200).String() != "arch-200" || ArchEFIBC.Canonical() != ArchEFIx64 {
		t.Error("arch names or canonical forms changed")
	}
}
