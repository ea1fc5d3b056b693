package dhcp

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzIsPXE: the pre-check never panics, never accepts what is not a
// BOOTREQUEST with the magic cookie, and when the full decoder also accepts
// the packet, its option 60 really begins with PXEClient or HTTPClient.
// Seeds live in testdata/fuzz/FuzzIsPXE.
func FuzzIsPXE(f *testing.F) {
	f.Add(rawPacket(cat(opt(60, pxeX64), []byte{255})...))
	f.Add(rawPacket(60, 40, 'P'))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !IsPXE(raw) {
			return
		}
		if len(raw) <= optionsStart || raw[0] != 1 || !bytes.Equal(raw[bootpHeaderLen:optionsStart], magicCookie) {
			t.Fatalf("accepted a packet that is no BOOTREQUEST: % x", raw[:min(len(raw), 8)])
		}
		req, err := dhcpv4.FromBytes(raw)
		if err != nil {
			return
		}
		if vc := req.ClassIdentifier(); !strings.HasPrefix(vc, "PXEClient") && !strings.HasPrefix(vc, "HTTPClient") {
			t.Fatalf("IsPXE accepted class %q", vc)
		}
	})
}

// FuzzHandle drives the whole receive path (size checks, IsPXE, decode,
// Inspect, Decide, encode) with arbitrary datagrams on either port: never a
// panic, and every reply is a well-formed proxy answer to that request.
// Seeds live in testdata/fuzz/FuzzHandle.
func FuzzHandle(f *testing.F) {
	f.Add(pxeRequest(f, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64).ToBytes(), false)
	f.Add(pxeRequest(f, dhcpv4.MessageTypeRequest, pxeX64, ArchEFIx64, dhcpv4.WithUserClass("iPXE", false)).ToBytes(), true)
	h := &Handler{Backend: fakeBackend{d: bootImage}, ServerIP: serverIP}
	h.Log = discardLogger()
	f.Fuzz(func(t *testing.T, raw []byte, bootServer bool) {
		port, want := PortDHCP, dhcpv4.MessageTypeOffer
		if bootServer {
			port, want = PortBootServer, dhcpv4.MessageTypeAck
		}
		r := h.Handle(context.Background(), raw, port, time.Now())
		if r.Outcome == "" {
			t.Fatal("no outcome")
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
		case back.MessageType() != want:
			t.Fatalf("type %v on port %d", back.MessageType(), port)
		case back.TransactionID != r.Request.TransactionID:
			t.Fatal("xid changed")
		case !bytes.Equal(back.ClientHWAddr, r.Request.ClientHWAddr):
			t.Fatal("chaddr changed")
		case !back.YourIPAddr.Equal(net.IPv4zero):
			t.Fatalf("proxy offered an address: %v", back.YourIPAddr)
		case !back.ServerIPAddr.Equal(serverIP) || !back.ServerIdentifier().Equal(serverIP):
			t.Fatalf("siaddr %v option 54 %v", back.ServerIPAddr, back.ServerIdentifier())
		case back.BootFileNameOption() == "":
			t.Fatal("reply names no boot file")
		}
	})
}
