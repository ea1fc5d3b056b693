package dhcp

import (
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// newReply is dhcpv4.NewReplyFromRequest without its first step: that
// draws a random transaction ID from crypto/rand (a getrandom call per
// answer, 5% of a DORA's CPU) which WithReply then overwrites with the
// request's. The fields and options it sets are the library's: the
// request's xid, flags, chaddr and giaddr, option 82 and option 61
// (RFC 6842) copied.
func newReply(req *dhcpv4.DHCPv4, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	d := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootRequest,
		HWType:        iana.HWTypeEthernet,
		ClientHWAddr:  make(net.HardwareAddr, 6),
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: net.IPv4zero,
		Options:       make(dhcpv4.Options, 8+len(mods)),
	}
	dhcpv4.WithReply(req)(d)
	dhcpv4.WithGatewayIP(req.GatewayIPAddr)(d)
	dhcpv4.WithOptionCopied(req, dhcpv4.OptionRelayAgentInformation)(d)
	dhcpv4.WithOptionCopied(req, dhcpv4.OptionClientIdentifier)(d)
	for _, m := range mods {
		m(d)
	}
	return d
}
