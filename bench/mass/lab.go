// Package mass is osim-bench's engine: thousands of simulated PXE targets
// (internal/pxeclient over one shared DHCP socket) in one client network
// namespace, one veth into a server namespace where osim-manager and
// osim-bootd run (or dnsmasq, for the peer comparison), a mass reimage
// ordered through the manager's API, and a report whose client-side counts
// are checked against the boot server's own Prometheus counters.
//
// Addresses (one veth, whatever the number of targets):
//
//	[server ns] vs 10.78.0.1/16, route 10.78.16.0/20 via 10.78.0.2
//	[client ns] vc 10.78.0.2/16, route "local 10.78.16.0/20 dev lo"
//
// The pool (full mode) or the site's addresses (proxy mode) are
// 10.78.16.1-10.78.31.254: all local in the client namespace at once, so
// each target binds its TFTP and HTTP sockets to its own address, and the
// server namespace reaches all of them through one neighbour (10.78.0.2),
// not 4,000 ARP entries.
package mass

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"osim/bench/internal/lab"
	"osim/internal/pxeclient"
	"osim/internal/testlab"
)

// Prefix starts the namespaces this package creates; the suffix is the pid.
const Prefix = "osim-mass-"

const (
	serverAddr = "10.78.0.1"
	clientGW   = "10.78.0.2"
	poolNet    = "10.78.16.0/20"
	poolFirst  = "10.78.16.1"
	poolLast   = "10.78.31.254"
	// MaxTargets is how many addresses the pool holds.
	MaxTargets = 4094
)

// clientIP is target i's address (proxy mode: as the site's DHCP would
// have given it).
func clientIP(i int) netip.Addr {
	base := netip.MustParseAddr(poolFirst).As4()
	n := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	n += uint32(i)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// Lab is the two namespaces, the veth, the processes started in the server
// namespace and a scratch folder. Close undoes all of it.
type Lab struct {
	*testlab.Pair
	Dir    string
	ns, nc *pxeclient.Netns
	procs  []*lab.Proc
	http   *http.Client // dials inside the server namespace
}

// NewLab builds the namespaces and the veth.
func NewLab(ctx context.Context) (_ *Lab, err error) {
	l := &Lab{}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if l.Dir, err = os.MkdirTemp("", "osim-bench-"); err != nil {
		return nil, err
	}
	if l.Pair, err = testlab.NewPair(ctx, testlab.PairSpec{
		Prefix: Prefix, ServerIf: "vs", ClientIf: "vc",
		ServerAddr: netip.MustParsePrefix(serverAddr + "/16"), ClientAddr: netip.MustParsePrefix(clientGW + "/16"),
		ServerRoutes: [][]string{{poolNet, "via", clientGW}},
		ClientRoutes: [][]string{{"local", poolNet, "dev", "lo"}},
	}); err != nil {
		return nil, fmt.Errorf("mass: %w", err)
	}
	if l.ns, err = pxeclient.OpenNetns(l.ServerPath()); err != nil {
		return nil, err
	}
	if l.nc, err = pxeclient.OpenNetns(l.ClientPath()); err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	l.http = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 32,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := l.ns.Do(func() error {
				var err error
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}}}
	return l, nil
}

// ClientDo runs socket-opening calls in the client namespace.
func (l *Lab) ClientDo(f func() error) error { return l.nc.Do(f) }

// ServerDo runs socket-opening calls in the server namespace.
func (l *Lab) ServerDo(f func() error) error { return l.ns.Do(f) }

// HTTP is a client whose connections are made in the server namespace.
func (l *Lab) HTTP() *http.Client { return l.http }

// serverUDP reads the server namespace's UDP counters.
func (l *Lab) serverUDP() lab.UDPStats { return lab.ThreadUDP(l.ns) }

// Start runs argv in the server namespace, logging to Dir/name.log; Close
// stops it (SIGTERM, SIGKILL after 5 s).
func (l *Lab) Start(name string, argv ...string) (*lab.Proc, error) {
	p, err := lab.Start(lab.Spec{Name: name, Argv: argv, Netns: l.Server, Log: filepath.Join(l.Dir, name+".log"), Grace: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("mass: %w", err)
	}
	l.procs = append(l.procs, p)
	return p, nil
}

// WaitHTTP polls url (in the server namespace) until it answers 200.
func (l *Lab) WaitHTTP(ctx context.Context, p *lab.Proc, url string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := l.http.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("mass: %s exited at start: %s", p.Name, p.Tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mass: %s not answering at %s: %v", p.Name, url, err)
		}
		if err := lab.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// Close stops the processes (last started first), removes the namespaces
// and the scratch folder unless OSIM_BENCH_KEEP is set.
func (l *Lab) Close() {
	for i := len(l.procs) - 1; i >= 0; i-- {
		l.procs[i].Stop()
	}
	if l.ns != nil {
		l.ns.Close()
	}
	if l.nc != nil {
		l.nc.Close()
	}
	if l.http != nil {
		l.http.CloseIdleConnections()
	}
	if l.Pair != nil {
		l.Pair.Close()
	}
	if l.Dir != "" && os.Getenv("OSIM_BENCH_KEEP") == "" {
		os.RemoveAll(l.Dir)
	}
}
