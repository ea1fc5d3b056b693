package dhcp

import (
	"bytes"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestNewReplyEncodesAsTheLibrarysReply: newReply skips only the random
// transaction ID that WithReply overwrites, so its answers are byte for
// byte what dhcpv4.NewReplyFromRequest builds, relay and client-id
// options included.
func TestNewReplyEncodesAsTheLibrarysReply(t *testing.T) {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer),
		dhcpv4.WithYourIP(net.IPv4(10, 0, 0, 7)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)),
	}
	for name, req := range map[string]*dhcpv4.DHCPv4{
		"plain":     dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover),
		"broadcast": dhcpMsg(t, macB, dhcpv4.MessageTypeDiscover, dhcpv4.WithBroadcast(true)),
		"relayed with option 82 and 61": dhcpMsg(t, macC, dhcpv4.MessageTypeRequest, giaddr("10.1.0.1"),
			dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 0x52, 0x54, 0, 0, 0, 3})),
			dhcpv4.WithOption(dhcpv4.Option{Code: dhcpv4.OptionRelayAgentInformation, Value: dhcpv4.OptionGeneric{Data: []byte{1, 3, 'e', 't', '0'}}})),
	} {
		t.Run(name, func(t *testing.T) {
			want, err := dhcpv4.NewReplyFromRequest(req, mods...)
			if err != nil {
				t.Fatal(err)
			}
			if got := newReply(req, mods...); !bytes.Equal(got.ToBytes(), want.ToBytes()) {
				t.Fatalf("newReply:\n%s\nlibrary:\n%s", got.Summary(), want.Summary())
			}
		})
	}
}
