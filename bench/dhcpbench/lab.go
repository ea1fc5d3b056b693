// Package dhcpbench drives ISC's perfdhcp against a full-mode DHCP server
// (osim-bootd or Kea's kea-dhcp4) in a pair of network namespaces: the
// highest DORA rate the server sustains with no drops, perfdhcp's latency
// figures, and the same again after a restart on the same lease store.
// `make bench-dhcp` runs it through bench/cmd/osim-dhcpbench.
package dhcpbench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"

	"osim/bench/internal/lab"
	"osim/internal/testlab"
)

// The lab's addressing: one /12, the server at .0.1, perfdhcp (a relay as
// far as the server can tell: it sets giaddr to its own address) at .0.2,
// the pool from .1.0 to the end, about a million addresses, so the pool is
// never the limit.
var (
	Network   = netip.MustParsePrefix("10.96.0.0/12")
	ServerIP  = netip.MustParseAddr("10.96.0.1")
	RelayIP   = netip.MustParseAddr("10.96.0.2")
	PoolStart = netip.MustParseAddr("10.96.1.0")
	PoolEnd   = netip.MustParseAddr("10.111.255.254")
)

// NewLab creates the lab: a server and a client namespace (the latter
// perfdhcp's) joined by a veth, after removing what dead earlier runs left.
func NewLab() (*testlab.Pair, error) {
	tag := strconv.Itoa(os.Getpid())
	bits := Network.Bits()
	p, err := testlab.NewPair(context.Background(), testlab.PairSpec{
		Prefix:   "osim-dhb",
		ServerIf: "dhbs" + tag, ClientIf: "dhbc" + tag,
		ServerAddr: netip.PrefixFrom(ServerIP, bits), ClientAddr: netip.PrefixFrom(RelayIP, bits),
	})
	if err != nil {
		return nil, fmt.Errorf("dhcpbench: %w", err)
	}
	return p, nil
}

// rcvbufErrors is namespace ns's count of UDP datagrams dropped because a
// socket's receive buffer was full: in the server's, drops the server
// never saw; in perfdhcp's, answers perfdhcp did not read in time.
func rcvbufErrors(ns string) (int, error) {
	s, err := lab.NamespaceUDP(ns)
	return int(s.RcvbufErrors), err
}
