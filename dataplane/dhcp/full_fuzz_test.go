package dhcp

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzHandleFull drives full mode (decode, inspectFull, the lease store,
// boot answer, encode) with arbitrary datagrams on port 67 against one
// Badger store shared by all inputs: never a panic, never a store error,
// and every reply is an OFFER, ACK or NAK to that request whose address
// lies in the pool or is the reservation.
func FuzzHandleFull(f *testing.F) {
	f.Add(pxeRequest(f, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64).ToBytes())
	f.Add(dhcpMsg(f, macB, dhcpv4.MessageTypeRequest, serverID(serverIP), requested("10.0.0.100")).ToBytes())
	f.Add(dhcpMsg(f, macB, dhcpv4.MessageTypeRequest, ciaddr("10.0.0.101")).ToBytes())
	f.Add(dhcpMsg(f, macB, dhcpv4.MessageTypeDecline, requested("10.0.0.101")).ToBytes())
	f.Add(dhcpMsg(f, macB, dhcpv4.MessageTypeRelease, ciaddr("10.0.0.101")).ToBytes())
	f.Add(dhcpMsg(f, macB, dhcpv4.MessageTypeInform, ciaddr("10.0.0.7"), giaddr("10.1.0.1")).ToBytes())
	reserved := bootImage
	reserved.Address = ip("10.0.0.21")
	clk := newClock()
	pool := localPool("10.0.0.100", "10.0.0.103")
	h := &Handler{Backend: fakeBackend{d: reserved}, ServerIP: serverIP, Log: discardLogger(), Mode: ModeFull,
		Full: newFull(f, clk, pool, relayPool)}
	f.Fuzz(func(t *testing.T, raw []byte) {
		clk.Step(time.Minute)
		r := h.Handle(context.Background(), raw, PortDHCP, time.Now())
		switch r.Outcome {
		case "":
			t.Fatal("no outcome")
		case OutcomeLeaseError:
			t.Fatal("lease store error")
		}
		if r.Reply == nil {
			if r.Outcome.Replied() || r.Bytes != nil {
				t.Fatalf("outcome %q without a reply", r.Outcome)
			}
			return
		}
		back, err := dhcpv4.FromBytes(r.Bytes)
		if err != nil {
			t.Fatalf("our reply does not decode: %v", err)
		}
		switch {
		case back.OpCode != dhcpv4.OpcodeBootReply:
			t.Fatalf("op %v", back.OpCode)
		case back.TransactionID != r.Request.TransactionID || !bytes.Equal(back.ClientHWAddr, r.Request.ClientHWAddr):
			t.Fatal("xid or chaddr changed")
		case !back.ServerIdentifier().Equal(serverIP):
			t.Fatalf("option 54 %v", back.ServerIdentifier())
		}
		switch mt, yi := back.MessageType(), addr4(back.YourIPAddr); {
		case mt == dhcpv4.MessageTypeNak || r.Outcome == OutcomeInform:
			if !yi.IsUnspecified() {
				t.Fatalf("%s with yiaddr %s", mt, yi)
			}
		case mt == dhcpv4.MessageTypeOffer || mt == dhcpv4.MessageTypeAck:
			if !pool.InRange(yi) && !relayPool.InRange(yi) && yi != reserved.Address {
				t.Fatalf("%s of %s: outside the pools and not the reservation", mt, yi)
			}
		default:
			t.Fatalf("reply type %s", mt)
		}
	})
}
