package dhcp

import (
	"cmp"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestFullOfferCarriesAddressAndPoolOptions(t *testing.T) {
	f := newFull(t, newClock(), localPool("10.0.0.100", "10.0.0.110"))
	reply, o := respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover))
	if o != OutcomeLeaseOffer || reply.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("outcome %q, reply %v", o, reply)
	}
	checks := []struct {
		what      string
		got, want string
	}{
		{"yiaddr", reply.YourIPAddr.String(), "10.0.0.100"},
		{"siaddr (not a PXE client)", reply.ServerIPAddr.String(), "0.0.0.0"},
		{"option 1", net.IP(reply.SubnetMask()).String(), "255.255.255.0"},
		{"option 3", reply.Router()[0].String(), "10.0.0.254"},
		{"option 6", reply.DNS()[0].String() + "," + reply.DNS()[1].String(), "10.0.0.53,10.0.0.54"},
		{"option 15", reply.DomainName(), "lab.example"},
		{"option 51", reply.IPAddressLeaseTime(0).String(), "1h0m0s"},
		{"option 54", reply.ServerIdentifier().String(), "10.0.0.1"},
		{"option 58", reply.IPAddressRenewalTime(0).String(), "30m0s"},
		{"option 59", reply.IPAddressRebindingTime(0).String(), "52m30s"},
		{"file", reply.BootFileName, ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if l, ok := getLease(t, f, "10.0.0.100"); !ok || l.State != LeaseOffered || !macEqual(l.MAC, macA) {
		t.Fatalf("lease after offer: %+v (found %v), want offered to %s", l, ok, macA)
	}
}

func TestFullOfferPicksReservationThenPreviousThenRequestedThenFirstFree(t *testing.T) {
	cases := []struct {
		name     string
		prior    []prior
		reserved string
		mods     []dhcpv4.Modifier
		want     string
	}{
		{name: "first free address", want: "10.0.0.100"},
		{name: "skips an address leased to another client",
			prior: []prior{{"10.0.0.100", macB, LeaseBound, never}}, want: "10.0.0.101"},
		{name: "reservation outside the range", reserved: "10.0.0.20", want: "10.0.0.20"},
		{name: "reservation wins over the previous lease", reserved: "10.0.0.20",
			prior: []prior{{"10.0.0.105", macA, LeaseBound, never}}, want: "10.0.0.20"},
		{name: "reservation on another network is ignored", reserved: "192.168.1.5", want: "10.0.0.100"},
		{name: "previous lease, even expired, when still free",
			prior: []prior{{"10.0.0.105", macA, LeaseBound, past}}, want: "10.0.0.105"},
		{name: "released address goes back to its client",
			prior: []prior{{"10.0.0.104", macA, LeaseReleased, past}}, want: "10.0.0.104"},
		{name: "requested address when free", mods: []dhcpv4.Modifier{requested("10.0.0.107")}, want: "10.0.0.107"},
		{name: "requested address taken: first free", mods: []dhcpv4.Modifier{requested("10.0.0.107")},
			prior: []prior{{"10.0.0.107", macB, LeaseOffered, never}}, want: "10.0.0.100"},
		{name: "requested address outside the range: first free", mods: []dhcpv4.Modifier{requested("10.0.0.5")}, want: "10.0.0.100"},
		{name: "another client's expired lease is reused",
			prior: []prior{{"10.0.0.100", macB, LeaseBound, past}}, want: "10.0.0.100"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newClock()
			f := newFull(t, clk, localPool("10.0.0.100", "10.0.0.110"))
			putPriors(t, f, clk.Now(), c.prior)
			var res netip.Addr
			if c.reserved != "" {
				res = ip(c.reserved)
			}
			reply, o, err := f.Respond(context.Background(), dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover, c.mods...), in67, Peer{Reserved: res})
			if err != nil || o != OutcomeLeaseOffer || yi(reply) != c.want {
				t.Fatalf("offered %s (%q, %v), want %s", yi(reply), o, err, c.want)
			}
		})
	}
}

// prior is a lease stored before a case runs, expiring in (negative:
// expired) relative to the test clock.
type prior struct {
	ip    string
	mac   net.HardwareAddr
	state LeaseState
	in    time.Duration
}

const (
	never = 24 * time.Hour
	past  = -time.Minute
)

func putPriors(t *testing.T, f *Full, now time.Time, ps []prior) {
	t.Helper()
	for _, p := range ps {
		putLease(t, f, Lease{IP: ip(p.ip), MAC: p.mac, State: p.state, Expires: now.Add(p.in)})
	}
}

func TestFullRequestAcksOrNaksPerRFC2131(t *testing.T) {
	other := net.IPv4(10, 0, 0, 2)
	cases := []struct {
		name  string
		prior []prior
		req   *dhcpv4.DHCPv4
		want  Outcome
		bound string // address that must be bound to macA afterwards
	}{
		{name: "selecting our offer binds it",
			prior: []prior{{"10.0.0.100", macA, LeaseOffered, never}},
			req:   dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, serverID(serverIP), requested("10.0.0.100")),
			want:  OutcomeLeaseAck, bound: "10.0.0.100"},
		{name: "selecting our offer after the hold, address still free",
			prior: []prior{{"10.0.0.100", macA, LeaseOffered, past}},
			req:   dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, serverID(serverIP), requested("10.0.0.100")),
			want:  OutcomeLeaseAck, bound: "10.0.0.100"},
		{name: "selecting another server: silent",
			prior: []prior{{"10.0.0.100", macA, LeaseOffered, never}},
			req:   dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, serverID(other), requested("10.0.0.200")),
			want:  OutcomeOtherServer},
		{name: "selecting an address never offered: NAK",
			req:  dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, serverID(serverIP), requested("10.0.0.100")),
			want: OutcomeLeaseNak},
		{name: "selecting an address offered to another client: NAK",
			prior: []prior{{"10.0.0.100", macB, LeaseOffered, never}},
			req:   dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, serverID(serverIP), requested("10.0.0.100")),
			want:  OutcomeLeaseNak},
		{name: "selecting without option 50: NAK",
			req:  dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, serverID(serverIP)),
			want: OutcomeLeaseNak},
		{name: "init-reboot with its own lease: ACK",
			prior: []prior{{"10.0.0.100", macA, LeaseBound, never}},
			req:   dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, requested("10.0.0.100")),
			want:  OutcomeLeaseAck, bound: "10.0.0.100"},
		{name: "init-reboot on the wrong network: NAK",
			req:  dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, requested("192.168.7.9")),
			want: OutcomeLeaseNak},
		{name: "init-reboot with another client's address: NAK",
			prior: []prior{{"10.0.0.100", macB, LeaseBound, never}},
			req:   dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, requested("10.0.0.100")),
			want:  OutcomeLeaseNak},
		{name: "init-reboot with a declined address: NAK",
			prior: []prior{{"10.0.0.100", nil, LeaseDeclined, never}},
			req:   dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, requested("10.0.0.100")),
			want:  OutcomeLeaseNak},
		{name: "init-reboot with no record: silent",
			req:  dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, requested("10.0.0.100")),
			want: OutcomeNoLease},
		{name: "renewing its own lease: ACK",
			prior: []prior{{"10.0.0.100", macA, LeaseBound, never}},
			req:   dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, ciaddr("10.0.0.100")),
			want:  OutcomeLeaseAck, bound: "10.0.0.100"},
		{name: "rebinding an expired lease still on record: ACK",
			prior: []prior{{"10.0.0.100", macA, LeaseBound, past}},
			req:   dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, ciaddr("10.0.0.100")),
			want:  OutcomeLeaseAck, bound: "10.0.0.100"},
		{name: "renewing another client's address: NAK",
			prior: []prior{{"10.0.0.100", macB, LeaseBound, never}},
			req:   dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, ciaddr("10.0.0.100")),
			want:  OutcomeLeaseNak},
		{name: "renewing an address with no record: silent",
			req:  dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, ciaddr("10.0.0.100")),
			want: OutcomeNoLease},
		{name: "renewing from a network without a pool: silent",
			req:  dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, ciaddr("172.16.0.9")),
			want: OutcomeNoPool},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newClock()
			f := newFull(t, clk, localPool("10.0.0.100", "10.0.0.110"))
			putPriors(t, f, clk.Now(), c.prior)
			reply, o := respond(t, f, c.req)
			if o != c.want {
				t.Fatalf("outcome %q, want %q", o, c.want)
			}
			switch c.want {
			case OutcomeLeaseAck:
				if reply.MessageType() != dhcpv4.MessageTypeAck || reply.YourIPAddr.String() != c.bound ||
					reply.IPAddressLeaseTime(0) != time.Hour {
					t.Fatalf("reply %s yiaddr %s lease %s, want ACK of %s for 1h", reply.MessageType(), yi(reply), reply.IPAddressLeaseTime(0), c.bound)
				}
			case OutcomeLeaseNak:
				if reply.MessageType() != dhcpv4.MessageTypeNak || !reply.YourIPAddr.IsUnspecified() ||
					!reply.ServerIdentifier().Equal(serverIP) || reply.Message() == "" || reply.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
					t.Fatalf("NAK malformed: %s", reply.Summary())
				}
			default:
				if reply != nil {
					t.Fatalf("want silence, got %s", reply.Summary())
				}
			}
			if c.bound != "" {
				l, _ := getLease(t, f, c.bound)
				if l.State != LeaseBound || !macEqual(l.MAC, macA) || !l.Expires.Equal(clk.Now().Add(time.Hour)) {
					t.Fatalf("lease %+v, want bound to %s until now+1h", l, macA)
				}
			}
		})
	}
}

func TestFullRequestForAnotherServerFreesOurOffer(t *testing.T) {
	f := newFull(t, newClock(), localPool("10.0.0.100", "10.0.0.100"))
	if _, o := respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover)); o != OutcomeLeaseOffer {
		t.Fatalf("first offer: %q", o)
	}
	if _, o := respond(t, f, dhcpMsg(t, macB, dhcpv4.MessageTypeDiscover)); o != OutcomePoolExhausted {
		t.Fatalf("while held for A: %q, want %q", o, OutcomePoolExhausted)
	}
	respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, serverID(net.IPv4(10, 0, 0, 2)), requested("10.0.0.50")))
	if reply, o := respond(t, f, dhcpMsg(t, macB, dhcpv4.MessageTypeDiscover)); yi(reply) != "10.0.0.100" {
		t.Fatalf("after A chose another server, B got %s (%q), want 10.0.0.100", yi(reply), o)
	}
}

func TestFullDeclineQuarantinesAddressUntilHoldPasses(t *testing.T) {
	clk := newClock()
	f := newFull(t, clk, localPool("10.0.0.100", "10.0.0.100"))
	f.DeclineHold = 10 * time.Minute
	respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover))
	respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, serverID(serverIP), requested("10.0.0.100")))
	if reply, o := respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeDecline, serverID(serverIP), requested("10.0.0.100"))); o != OutcomeDeclined || reply != nil {
		t.Fatalf("decline: %q, reply %v", o, reply)
	}
	for _, mac := range []net.HardwareAddr{macA, macB} {
		if reply, o := respond(t, f, dhcpMsg(t, mac, dhcpv4.MessageTypeDiscover)); o != OutcomePoolExhausted {
			t.Fatalf("%s during quarantine: offered %s (%q)", mac, yi(reply), o)
		}
	}
	clk.Step(10*time.Minute - time.Second)
	if _, o := respond(t, f, dhcpMsg(t, macB, dhcpv4.MessageTypeDiscover)); o != OutcomePoolExhausted {
		t.Fatalf("a second before the hold ends: %q", o)
	}
	clk.Step(time.Second)
	if reply, o := respond(t, f, dhcpMsg(t, macB, dhcpv4.MessageTypeDiscover)); yi(reply) != "10.0.0.100" {
		t.Fatalf("after the hold: %s (%q), want 10.0.0.100", yi(reply), o)
	}
}

func TestFullDeclineOfAnotherClientsAddressIsIgnored(t *testing.T) {
	clk := newClock()
	f := newFull(t, clk, localPool("10.0.0.100", "10.0.0.110"))
	putLease(t, f, Lease{IP: ip("10.0.0.100"), MAC: macB, State: LeaseBound, Expires: clk.Now().Add(time.Hour)})
	if _, o := respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeDecline, requested("10.0.0.100"))); o != OutcomeNoLease {
		t.Fatalf("outcome %q, want %q", o, OutcomeNoLease)
	}
	if l, _ := getLease(t, f, "10.0.0.100"); l.State != LeaseBound || !macEqual(l.MAC, macB) {
		t.Fatalf("B's lease changed: %+v", l)
	}
}

func TestFullReleaseFreesAddressAndOnlyForItsClient(t *testing.T) {
	clk := newClock()
	f := newFull(t, clk, localPool("10.0.0.100", "10.0.0.100"))
	putLease(t, f, Lease{IP: ip("10.0.0.100"), MAC: macA, State: LeaseBound, Expires: clk.Now().Add(time.Hour)})
	if _, o := respond(t, f, dhcpMsg(t, macB, dhcpv4.MessageTypeRelease, ciaddr("10.0.0.100"))); o != OutcomeNoLease {
		t.Fatalf("release by another client: %q, want %q", o, OutcomeNoLease)
	}
	if _, o := respond(t, f, dhcpMsg(t, macB, dhcpv4.MessageTypeDiscover)); o != OutcomePoolExhausted {
		t.Fatalf("before A's release: %q", o)
	}
	if reply, o := respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeRelease, ciaddr("10.0.0.100"))); o != OutcomeReleased || reply != nil {
		t.Fatalf("release: %q, reply %v", o, reply)
	}
	if reply, o := respond(t, f, dhcpMsg(t, macB, dhcpv4.MessageTypeDiscover)); yi(reply) != "10.0.0.100" {
		t.Fatalf("after release: %s (%q)", yi(reply), o)
	}
}

func TestFullInformAcksOptionsWithoutAddressOrLease(t *testing.T) {
	f := newFull(t, newClock(), localPool("10.0.0.100", "10.0.0.110"))
	reply, o := respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeInform, ciaddr("10.0.0.7")))
	if o != OutcomeInform || reply.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("outcome %q", o)
	}
	if !reply.YourIPAddr.IsUnspecified() || reply.ClientIPAddr.String() != "10.0.0.7" ||
		reply.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || reply.Options.Has(dhcpv4.OptionRenewTimeValue) ||
		reply.DomainName() != "lab.example" || reply.Router()[0].String() != "10.0.0.254" {
		t.Fatalf("INFORM ACK: %s", reply.Summary())
	}
	if n, _ := ActiveLeases(f.Leases, time.Now()); n != 0 {
		t.Fatalf("INFORM created %d leases", n)
	}
}

func TestFullLeaseAndOfferExpireWithTheClock(t *testing.T) {
	clk := newClock()
	f := newFull(t, clk, localPool("10.0.0.100", "10.0.0.100"))
	f.OfferHold = 30 * time.Second
	respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover))
	clk.Step(29 * time.Second)
	if _, o := respond(t, f, dhcpMsg(t, macB, dhcpv4.MessageTypeDiscover)); o != OutcomePoolExhausted {
		t.Fatalf("offer still held: %q", o)
	}
	clk.Step(time.Second)
	if reply, _ := respond(t, f, dhcpMsg(t, macB, dhcpv4.MessageTypeDiscover)); yi(reply) != "10.0.0.100" {
		t.Fatalf("after the offer hold B got %s", yi(reply))
	}
	if _, o := respond(t, f, dhcpMsg(t, macB, dhcpv4.MessageTypeRequest, serverID(serverIP), requested("10.0.0.100"))); o != OutcomeLeaseAck {
		t.Fatalf("B request: %q", o)
	}
	if n, _ := ActiveLeases(f.Leases, clk.Now()); n != 1 {
		t.Fatalf("active leases %d, want 1", n)
	}
	clk.Step(time.Hour - time.Second)
	if _, o := respond(t, f, dhcpMsg(t, macC, dhcpv4.MessageTypeDiscover)); o != OutcomePoolExhausted {
		t.Fatalf("lease still bound: %q", o)
	}
	clk.Step(time.Second)
	if n, _ := ActiveLeases(f.Leases, clk.Now()); n != 0 {
		t.Fatalf("active leases after expiry %d, want 0", n)
	}
	if reply, _ := respond(t, f, dhcpMsg(t, macC, dhcpv4.MessageTypeDiscover)); yi(reply) != "10.0.0.100" {
		t.Fatalf("after expiry C got %s", yi(reply))
	}
}

func TestFullPoolIsChosenByGiaddrElseReceivingSubnet(t *testing.T) {
	cases := []struct {
		name   string
		mods   []dhcpv4.Modifier
		want   Outcome
		yiaddr string
		router string
	}{
		{name: "direct: the pool of our interface", want: OutcomeLeaseOffer, yiaddr: "10.0.0.100", router: "10.0.0.254"},
		{name: "relayed: the pool holding giaddr", mods: []dhcpv4.Modifier{giaddr("10.1.0.1")}, want: OutcomeLeaseOffer, yiaddr: "10.1.0.10", router: "10.1.0.1"},
		{name: "relayed from a subnet without a pool: silent", mods: []dhcpv4.Modifier{giaddr("10.9.0.1")}, want: OutcomeNoPool},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFull(t, newClock(), localPool("10.0.0.100", "10.0.0.110"), relayPool)
			reply, o := respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover, c.mods...))
			if o != c.want || yi(reply) != cmp.Or(c.yiaddr, "<silence>") {
				t.Fatalf("offered %s (%q), want %s (%q)", yi(reply), o, c.yiaddr, c.want)
			}
			if reply != nil && reply.Router()[0].String() != c.router {
				t.Fatalf("router %v, want %s", reply.Router(), c.router)
			}
			if reply != nil && c.mods != nil && !reply.GatewayIPAddr.Equal(net.ParseIP("10.1.0.1")) {
				t.Fatalf("giaddr not kept in the reply: %s", reply.GatewayIPAddr)
			}
		})
	}
}

func TestSelectPool(t *testing.T) {
	pools := []Pool{localPool("10.0.0.100", "10.0.0.110"), relayPool}
	cases := []struct {
		giaddr, local string
		want          string
	}{
		{"0.0.0.0", "10.0.0.1", "10.0.0.0/24"},
		{"10.1.0.1", "10.0.0.1", "10.1.0.0/24"},
		{"0.0.0.0", "10.1.0.15", "10.1.0.0/24"},
		{"172.16.0.1", "10.0.0.1", ""},
	}
	for _, c := range cases {
		p, ok := SelectPool(pools, ip(c.giaddr), ip(c.local))
		if got := p.Network.String(); (ok && got != c.want) || (!ok && c.want != "") {
			t.Errorf("giaddr %s local %s: got %s (%v), want %s", c.giaddr, c.local, got, ok, c.want)
		}
	}
}

// countingLeases counts the lease reads of the transactions run through it.
type countingLeases struct {
	LeaseStore
	gets int
}

type countingTx struct {
	LeaseTx
	n *int
}

func (c countingTx) Get(ip netip.Addr) (Lease, bool, error) {
	*c.n++
	return c.LeaseTx.Get(ip)
}

func (c *countingLeases) Update(ctx context.Context, fn func(LeaseTx) error) error {
	return c.LeaseStore.Update(ctx, func(tx LeaseTx) error { return fn(countingTx{tx, &c.gets}) })
}

// TestFullNewClientsCostAboutOneLeaseReadEach: the search for a free
// address resumes after the last one handed out, so a burst of 1,000 new
// clients does not walk the range from its start each time (the k-th
// client used to read k leases), and it wraps around to addresses freed
// behind it.
func TestFullNewClientsCostAboutOneLeaseReadEach(t *testing.T) {
	clk := newClock()
	f := newFull(t, clk, localPool("10.0.0.1", "10.0.3.250"))
	cl := &countingLeases{LeaseStore: f.Leases}
	f.Leases = cl
	const n = 1000
	seen := map[string]bool{}
	for i := range n {
		mac := net.HardwareAddr{0x02, 0, 0, 0, byte(i >> 8), byte(i)}
		reply, o := respond(t, f, dhcpMsg(t, mac, dhcpv4.MessageTypeDiscover))
		if o != OutcomeLeaseOffer || seen[yi(reply)] {
			t.Fatalf("client %d: %q, %s (seen before: %v)", i, o, yi(reply), seen[yi(reply)])
		}
		seen[yi(reply)] = true
	}
	// Each DISCOVER reads the address it picks and the lease it writes
	// over: 2 per client, not 1+2+...+n.
	if cl.gets > 3*n {
		t.Fatalf("%d lease reads for %d new clients, want about %d", cl.gets, n, 2*n)
	}

	// Wrapping: a three-address pool, all offered; once the first offer
	// expires, the next new client gets it back.
	f2 := newFull(t, clk, localPool("10.0.0.100", "10.0.0.102"))
	for i, want := range []string{"10.0.0.100", "10.0.0.101", "10.0.0.102"} {
		mac := net.HardwareAddr{0x02, 1, 0, 0, 0, byte(i)}
		if reply, o := respond(t, f2, dhcpMsg(t, mac, dhcpv4.MessageTypeDiscover)); o != OutcomeLeaseOffer || yi(reply) != want {
			t.Fatalf("client %d: %q %s, want %s", i, o, yi(reply), want)
		}
	}
	if _, o := respond(t, f2, dhcpMsg(t, net.HardwareAddr{0x02, 1, 0, 0, 0, 9}, dhcpv4.MessageTypeDiscover)); o != OutcomePoolExhausted {
		t.Fatalf("fourth client in a full pool: %q", o)
	}
	clk.Step(DefaultOfferHold + time.Second)
	if reply, o := respond(t, f2, dhcpMsg(t, net.HardwareAddr{0x02, 1, 0, 0, 0, 10}, dhcpv4.MessageTypeDiscover)); o != OutcomeLeaseOffer || yi(reply) != "10.0.0.100" {
		t.Fatalf("after the offers expired: %q %s, want 10.0.0.100 (wrapped)", o, yi(reply))
	}
}
