package dhcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestLeasesSurviveClosingAndReopeningBadger(t *testing.T) {
	dir, clk := t.TempDir(), newClock()
	pool := localPool("10.0.0.100", "10.0.0.110")
	db := openBadger(t, dir)
	f := &Full{Pools: []Pool{pool}, Leases: openLeases(t, db), Clock: clk}
	respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover))
	if _, o := respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, serverID(serverIP), requested("10.0.0.100"))); o != OutcomeLeaseAck {
		t.Fatalf("request: %q", o)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	f = &Full{Pools: []Pool{pool}, Leases: openLeases(t, openBadger(t, dir)), Clock: clk}
	l, ok := getLease(t, f, "10.0.0.100")
	if !ok || l.State != LeaseBound || !macEqual(l.MAC, macA) || !l.Expires.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("after reopen: %+v (found %v), want bound to %s until now+1h", l, ok, macA)
	}
	if n, err := ActiveLeases(f.Leases, clk.Now()); n != 1 || err != nil {
		t.Fatalf("active leases after reopen: %d, %v", n, err)
	}
	if reply, _ := respond(t, f, dhcpMsg(t, macB, dhcpv4.MessageTypeDiscover)); yi(reply) != "10.0.0.101" {
		t.Fatalf("another client got %s, want 10.0.0.101 (10.0.0.100 is A's)", yi(reply))
	}
	if reply, o := respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, ciaddr("10.0.0.100"))); o != OutcomeLeaseAck || yi(reply) != "10.0.0.100" {
		t.Fatalf("A renewing after restart: %s (%q)", yi(reply), o)
	}
}

func TestConcurrentClientsNeverGetTheSameAddress(t *testing.T) {
	for _, free := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d free, 40 clients", free), func(t *testing.T) {
			end := netip.MustParseAddr("10.0.0.100")
			for range free - 1 {
				end = end.Next()
			}
			// Two handlers (each with its own search cursor) on one
			// store: its transactions, grouped as they arrive, keep
			// them from handing out the same address.
			clk, pool := newClock(), localPool("10.0.0.100", end.String())
			leases := openLeases(t, openBadger(t, t.TempDir()))
			fulls := []*Full{
				{Pools: []Pool{pool}, Leases: leases, Clock: clk},
				{Pools: []Pool{pool}, Leases: leases, Clock: clk},
			}
			const clients = 40
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				holders = map[string][]string{}
				outs    = map[Outcome]int{}
			)
			start := make(chan struct{})
			for i := range clients {
				mac := net.HardwareAddr{0x02, 0, 0, 0, 1, byte(i)}
				f := fulls[i%2]
				wg.Go(func() {
					<-start
					reply, o, err := f.Respond(context.Background(), dhcpMsg(t, mac, dhcpv4.MessageTypeDiscover), in67, Peer{})
					if err != nil && o != OutcomePoolExhausted {
						t.Errorf("%s: %v", mac, err)
					}
					mu.Lock()
					defer mu.Unlock()
					outs[o]++
					if reply != nil {
						holders[yi(reply)] = append(holders[yi(reply)], mac.String())
					}
				})
			}
			close(start)
			wg.Wait()
			for a, macs := range holders {
				if len(macs) != 1 {
					t.Errorf("%s offered to %d clients: %s", a, len(macs), strings.Join(macs, ", "))
				}
			}
			if outs[OutcomeLeaseOffer] != free || outs[OutcomePoolExhausted] != clients-free {
				t.Fatalf("outcomes %v, want %d offers and %d exhausted", outs, free, clients-free)
			}
		})
	}
}

func TestLeaseRecordRoundTripsAndRejectsGarbage(t *testing.T) {
	want := Lease{IP: ip("10.0.0.9"), MAC: macA, State: LeaseBound, Expires: time.Unix(1700000000, 5)}
	got, err := decodeLease(want.IP, encodeLease(want))
	if err != nil || got.State != want.State || !got.Expires.Equal(want.Expires) || !macEqual(got.MAC, want.MAC) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	declined := Lease{IP: ip("10.0.0.9"), State: LeaseDeclined, Expires: time.Unix(1, 0)}
	if got, err := decodeLease(declined.IP, encodeLease(declined)); err != nil || got.MAC != nil {
		t.Fatalf("declined round trip: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, {9, 2, 0, 0, 0, 0, 0, 0, 0, 0}, {1, 99, 0, 0, 0, 0, 0, 0, 0, 0}, {1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1}} {
		if _, err := decodeLease(ip("10.0.0.9"), bad); err == nil || !strings.Contains(err.Error(), "10.0.0.9") {
			t.Errorf("decode %x: error %v, want one naming 10.0.0.9", bad, err)
		}
	}
}
