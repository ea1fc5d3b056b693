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
	"os/exec"
	"strconv"
	"strings"

	"osim/bench/internal/netns"
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

// nsPrefix starts the names of the lab's namespaces; the creating
// process's pid follows, so a dead run's leftovers can be found.
const nsPrefix = "osim-dhb"

// Lab is a server and a client network namespace joined by a veth pair.
type Lab struct {
	Server, Client     string // namespace names
	ServerIf, ClientIf string
}

// NewLab creates the namespaces and the veth (root, iproute2), after
// removing what dead earlier runs left.
func NewLab() (*Lab, error) {
	netns.RemoveStaleWithPrefix(context.Background(), nsPrefix)
	tag := strconv.Itoa(os.Getpid())
	l := &Lab{Server: nsPrefix + "s-" + tag, Client: nsPrefix + "c-" + tag, ServerIf: "dhbs" + tag, ClientIf: "dhbc" + tag}
	bits := strconv.Itoa(Network.Bits())
	steps := [][]string{
		{"netns", "add", l.Server},
		{"netns", "add", l.Client},
		{"link", "add", l.ServerIf, "netns", l.Server, "type", "veth", "peer", "name", l.ClientIf, "netns", l.Client},
		{"-n", l.Server, "link", "set", "lo", "up"},
		{"-n", l.Server, "addr", "add", ServerIP.String() + "/" + bits, "dev", l.ServerIf},
		{"-n", l.Server, "link", "set", l.ServerIf, "up"},
		{"-n", l.Client, "link", "set", "lo", "up"},
		{"-n", l.Client, "addr", "add", RelayIP.String() + "/" + bits, "dev", l.ClientIf},
		{"-n", l.Client, "link", "set", l.ClientIf, "up"},
	}
	for _, s := range steps {
		if err := netns.IP(context.Background(), s...); err != nil {
			l.Close()
			return nil, fmt.Errorf("dhcpbench: %w", err)
		}
	}
	return l, nil
}

// Close deletes both namespaces (and with them the veth).
func (l *Lab) Close() {
	exec.Command("ip", "netns", "del", l.Server).Run()
	exec.Command("ip", "netns", "del", l.Client).Run()
}

// UDPRcvbufErrors is the server namespace's count of UDP datagrams dropped
// because a socket's receive buffer was full (/proc/net/snmp, Udp:
// RcvbufErrors): drops the server never saw.
func (l *Lab) UDPRcvbufErrors() (int, error) { return rcvbufErrors(l.Server) }

// ClientRcvbufErrors is the same count in perfdhcp's namespace: answers
// perfdhcp did not read in time.
func (l *Lab) ClientRcvbufErrors() (int, error) { return rcvbufErrors(l.Client) }

func rcvbufErrors(ns string) (int, error) {
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/snmp").Output()
	if err != nil {
		return 0, fmt.Errorf("dhcpbench: /proc/net/snmp in %s: %w", ns, err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				return strconv.Atoi(f[i])
			}
		}
	}
	return 0, fmt.Errorf("dhcpbench: no Udp RcvbufErrors in /proc/net/snmp of %s", ns)
}
