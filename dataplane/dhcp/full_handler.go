package dhcp

import (
	"context"
	"log/slog"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// full reports whether a datagram on port goes to full mode.
func (h *Handler) full(port int) bool { return h.Mode == ModeFull && port == PortDHCP }

// handleFull answers any DHCP client on port 67 in full mode: Full gives
// the address, and a PXE or HTTP boot client whose backend decision boots
// also gets the same boot answer as in proxy mode, so one server does both.
func (h *Handler) handleFull(ctx context.Context, req *dhcpv4.DHCPv4, in Inbound) Result {
	c, o := inspectFull(req)
	if o != "" {
		return Result{Request: req, Outcome: o}
	}
	if h.Full == nil {
		return Result{Request: req, Class: c.Class, Outcome: OutcomeNoPool}
	}
	d, lerr := h.lookup(ctx, c)
	reply, o, err := h.Full.Respond(ctx, req, in, Peer{Reserved: d.Address, Known: known(d, lerr)}) // no decision: no reservation
	if err != nil {
		h.log().Debug("lease", "mac", c.MAC.String(), "xid", req.TransactionID.String(), "outcome", string(o), "err", err)
	}
	file := ""
	if reply != nil && c.Class != ClassOther && (o == OutcomeLeaseOffer || o == OutcomeLeaseAck) {
		if f, bo := bootChoice(c, d, in.URLs, lerr); bo.Replied() {
			file = f
			withBoot(reply, req, c, file, in.ServerIP)
		}
	}
	r := Result{Request: req, Reply: reply, Class: c.Class, Outcome: o}
	if reply != nil {
		r.Bytes = reply.ToBytes()
	}
	if log := h.log(); log.Enabled(ctx, slog.LevelDebug) { // the arguments cost a String each
		log.Debug("full", "mac", c.MAC.String(), "xid", req.TransactionID.String(), "type", typeLabel(c.Type),
			"class", c.Class.String(), "outcome", string(o), "yiaddr", yiaddr(reply), "file", file)
	}
	return r
}

// known reports whether the backend has a record of the client: not
// ErrUnknownMAC, not the unknown-machine policy (discovery, or an action
// marked Unknown). A failed lookup counts as unknown: the short lease and
// the cap are the safe side.
func known(d Decision, err error) bool {
	return err == nil && d.Action != 0 && d.Action != ActionDiscovery && !d.Unknown
}

// inspectFull is Inspect for full mode: every DHCP client is answered, PXE
// or not, whatever the message type.
func inspectFull(req *dhcpv4.DHCPv4) (Client, Outcome) {
	c, vc, o := readClient(req)
	if o != "" {
		return Client{}, o
	}
	if o := readArchAndUserClass(req, vc, &c); o != "" {
		if c.Class != ClassOther {
			return Client{}, o
		}
		c.Arch = ArchBIOS // a plain DHCP client's odd option 93 does not matter
	}
	return c, ""
}

func yiaddr(r *dhcpv4.DHCPv4) string {
	if r == nil {
		return ""
	}
	return r.YourIPAddr.String()
}

// nakBroadcast reports whether reply is a DHCPNAK to be broadcast: RFC
// 2131 §4.1, when giaddr is zero the server broadcasts any DHCPNAK.
func nakBroadcast(req, reply *dhcpv4.DHCPv4) bool {
	if reply == nil || reply.MessageType() != dhcpv4.MessageTypeNak {
		return false
	}
	gi := addr4(req.GatewayIPAddr)
	return !gi.IsValid() || gi.IsUnspecified()
}
