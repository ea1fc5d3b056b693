package dhcp

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"osim/internal/clock"
)

// newFullHandler is a Handler in full mode over a fresh Badger directory.
func newFullHandler(t *testing.T, b Backend, clk *clock.Fake, pools ...Pool) (*Handler, *prometheus.Registry) {
	t.Helper()
	h, reg := newTestHandler(b)
	f := newFull(t, clk, pools...)
	f.Metrics = NewLeaseMetrics(reg, f.Pools, f.Leases, clk)
	h.Mode, h.Full = ModeFull, f
	return h, reg
}

func TestFullModeAnswersPXEWithAddressAndTheProxyBootAnswer(t *testing.T) {
	reserved := bootImage
	reserved.Address = ip("10.0.0.21")
	local := bootImage
	local.Action = ActionBootLocal
	cases := []struct {
		name      string
		backend   Backend
		req       *dhcpv4.DHCPv4
		port      int
		want      Outcome
		yiaddr    string
		file      string // "" : no boot answer (no siaddr, option 43 or 60)
		replyType dhcpv4.MessageType
	}{
		{"PXE DISCOVER: address and boot file", fakeBackend{d: bootImage}, pxeRequest(t, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64),
			PortDHCP, OutcomeLeaseOffer, "10.0.0.100", "snponly.efi", dhcpv4.MessageTypeOffer},
		{"PXE DISCOVER with a reservation", fakeBackend{d: reserved}, pxeRequest(t, dhcpv4.MessageTypeDiscover, pxeX64, ArchBIOS),
			PortDHCP, OutcomeLeaseOffer, "10.0.0.21", "undionly.kpxe", dhcpv4.MessageTypeOffer},
		{"iPXE gets its script with its address", fakeBackend{d: bootImage},
			pxeRequest(t, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64, dhcpv4.WithUserClass("iPXE", false)),
			PortDHCP, OutcomeLeaseOffer, "10.0.0.100", scriptURL, dhcpv4.MessageTypeOffer},
		{"plain DHCP client: address only", fakeBackend{err: ErrUnknownMAC}, dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover),
			PortDHCP, OutcomeLeaseOffer, "10.0.0.100", "", dhcpv4.MessageTypeOffer},
		{"PXE machine told to boot locally: address only", fakeBackend{d: local}, pxeRequest(t, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64),
			PortDHCP, OutcomeLeaseOffer, "10.0.0.100", "", dhcpv4.MessageTypeOffer},
		{"backend down: address only", fakeBackend{err: errBackendDown}, pxeRequest(t, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64),
			PortDHCP, OutcomeLeaseOffer, "10.0.0.100", "", dhcpv4.MessageTypeOffer},
		{"no backend at all: address only", nil, pxeRequest(t, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64),
			PortDHCP, OutcomeLeaseOffer, "10.0.0.100", "", dhcpv4.MessageTypeOffer},
		{"port 4011 is still the boot server exchange", fakeBackend{d: bootImage}, pxeRequest(t, dhcpv4.MessageTypeRequest, pxeX64, ArchEFIx64),
			PortBootServer, OutcomeBootImage, "0.0.0.0", "snponly.efi", dhcpv4.MessageTypeAck},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, _ := newFullHandler(t, c.backend, newClock(), localPool("10.0.0.100", "10.0.0.110"))
			r := h.Handle(context.Background(), c.req.ToBytes(), c.port, time.Now())
			if r.Outcome != c.want || r.Reply == nil {
				t.Fatalf("outcome %q, reply %v", r.Outcome, r.Reply)
			}
			reply, err := dhcpv4.FromBytes(r.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if reply.MessageType() != c.replyType || reply.YourIPAddr.String() != c.yiaddr || reply.BootFileNameOption() != c.file {
				t.Fatalf("%s yiaddr %s file %q, want %s %s %q", reply.MessageType(), reply.YourIPAddr, reply.BootFileNameOption(), c.replyType, c.yiaddr, c.file)
			}
			boots := reply.ServerIPAddr.Equal(serverIP) && reply.ClassIdentifier() != ""
			if boots != (c.file != "") {
				t.Fatalf("siaddr %s, option 60 %q: boot fields present = %v, want %v", reply.ServerIPAddr, reply.ClassIdentifier(), boots, c.file != "")
			}
			if c.file != "" && r.Class == ClassPXE && reply.Options.Get(dhcpv4.OptionVendorSpecificInformation) == nil {
				t.Fatal("PXE boot answer without option 43")
			}
			if c.port == PortDHCP && reply.IPAddressLeaseTime(0) != time.Hour {
				t.Fatalf("lease time %s", reply.IPAddressLeaseTime(0))
			}
		})
	}
}

func TestFullModeExhaustionIsSilentAndCounted(t *testing.T) {
	clk := newClock()
	h, reg := newFullHandler(t, fakeBackend{err: ErrUnknownMAC}, clk, localPool("10.0.0.100", "10.0.0.100"))
	ctx := context.Background()
	send := func(req *dhcpv4.DHCPv4) Result { return h.Handle(ctx, req.ToBytes(), PortDHCP, clk.Now()) }
	if r := send(dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover)); r.Outcome != OutcomeLeaseOffer {
		t.Fatalf("A: %q", r.Outcome)
	}
	if r := send(dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, serverID(serverIP), requested("10.0.0.100"))); r.Outcome != OutcomeLeaseAck {
		t.Fatalf("A request: %q", r.Outcome)
	}
	for range 2 {
		if r := send(dhcpMsg(t, macB, dhcpv4.MessageTypeDiscover)); r.Outcome != OutcomePoolExhausted || r.Bytes != nil {
			t.Fatalf("B: %q, %d bytes", r.Outcome, len(r.Bytes))
		}
	}
	if r := send(dhcpMsg(t, macB, dhcpv4.MessageTypeRequest, requested("10.0.0.100"))); r.Outcome != OutcomeLeaseNak {
		t.Fatalf("B init-reboot on A's address: %q", r.Outcome)
	}
	pool := "10.0.0.0/24"
	checks := []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"pool_exhausted_total", h.Full.Metrics.exhausted.WithLabelValues(pool), 2},
		{"lease_allocations_total", h.Full.Metrics.allocations.WithLabelValues(pool), 1},
		{"lease_naks_total", h.Full.Metrics.naks.WithLabelValues(pool), 1},
		{"decisions_total{pool_exhausted}", h.Metrics.decisions.WithLabelValues(string(OutcomePoolExhausted)), 2},
		{"packets_total{discover,other,drop}", h.Metrics.packets.WithLabelValues("discover", "other", "drop"), 2},
		{"packets_total{request,other,nak}", h.Metrics.packets.WithLabelValues("request", "other", "nak"), 1},
		{"packets_total{request,other,ack}", h.Metrics.packets.WithLabelValues("request", "other", "ack"), 1},
	}
	for _, c := range checks {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "osim_dhcp_leases_active" {
			found = true
			if v := mf.GetMetric()[0].GetGauge().GetValue(); v != 1 {
				t.Errorf("osim_dhcp_leases_active = %v, want 1", v)
			}
		}
	}
	if !found {
		t.Error("osim_dhcp_leases_active not registered")
	}
}

func TestProxyModeIsTheDefaultAndIgnoresPlainDHCP(t *testing.T) {
	h, _ := newTestHandler(fakeBackend{d: bootImage})
	if h.Mode != ModeProxy {
		t.Fatalf("zero Handler mode %s", h.Mode)
	}
	r := h.Handle(context.Background(), dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover).ToBytes(), PortDHCP, time.Now())
	if r.Outcome != OutcomeNotPXE || r.Reply != nil {
		t.Fatalf("outcome %q", r.Outcome)
	}
	for _, c := range []struct {
		s    string
		want Mode
		ok   bool
	}{{"", ModeProxy, true}, {"proxy", ModeProxy, true}, {"full", ModeFull, true}, {"relay", 0, false}} {
		m, err := ParseMode(c.s)
		if (err == nil) != c.ok || m != c.want {
			t.Errorf("ParseMode(%q) = %s, %v", c.s, m, err)
		}
	}
}

func TestFullServerBroadcastsNaksAndOffers(t *testing.T) {
	clk := newClock()
	lo := Pool{Network: netip.MustParsePrefix("127.0.0.0/8"), Start: ip("127.0.0.100"), End: ip("127.0.0.101"), LeaseTime: time.Hour}
	var full *Full
	srv, _, client := loopbackProxy(t, fakeBackend{err: ErrUnknownMAC}, func(h *Handler) {
		full = newFull(t, clk, lo)
		h.Mode, h.Full = ModeFull, full
	})
	offer := exchange(t, client, srv.DHCPAddr(), dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover).ToBytes(), 5*time.Second)
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer || offer.YourIPAddr.String() != "127.0.0.100" {
		t.Fatalf("offer: %v", offer)
	}
	putLease(t, full, Lease{IP: ip("127.0.0.101"), MAC: macB, State: LeaseBound, Expires: clk.Now().Add(time.Hour)})
	// A renews B's address: the NAK is broadcast, not sent to ciaddr (RFC 2131 §4.1).
	nak := exchange(t, client, srv.DHCPAddr(), dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, ciaddr("127.0.0.101")).ToBytes(), 5*time.Second)
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("nak: %v", nak)
	}
	if nakBroadcast(dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, giaddr("10.1.0.1")), nak) {
		t.Fatal("a NAK through a relay must go to the relay")
	}
}
