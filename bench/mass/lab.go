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
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"osim/bench/internal/netns"
	"osim/internal/pxeclient"
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
	Server, Client string // namespace names
	Dir            string
	ns, nc         *pxeclient.Netns
	procs          []*Proc
	http           *http.Client // dials inside the server namespace
}

// Proc is a process running in the server namespace.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
}

// PID of the process (`ip netns exec` execs in place).
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Exited reports whether it ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// NewLab builds the namespaces and the veth.
func NewLab(ctx context.Context) (_ *Lab, err error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("mass: needs root (network namespaces)")
	}
	netns.RemoveStaleWithPrefix(ctx, Prefix)
	l := &Lab{Server: fmt.Sprintf("%ss-%d", Prefix, os.Getpid()), Client: fmt.Sprintf("%sc-%d", Prefix, os.Getpid())}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if l.Dir, err = os.MkdirTemp("", "osim-bench-"); err != nil {
		return nil, err
	}
	steps := [][]string{
		{"netns", "add", l.Server}, {"netns", "add", l.Client},
		{"-n", l.Server, "link", "set", "lo", "up"}, {"-n", l.Client, "link", "set", "lo", "up"},
		{"-n", l.Server, "link", "add", "vs", "type", "veth", "peer", "name", "vc", "netns", l.Client},
		{"-n", l.Server, "addr", "add", serverAddr + "/16", "dev", "vs"},
		{"-n", l.Client, "addr", "add", clientGW + "/16", "dev", "vc"},
		{"-n", l.Server, "link", "set", "vs", "up"}, {"-n", l.Client, "link", "set", "vc", "up"},
		{"-n", l.Server, "route", "add", poolNet, "via", clientGW},
		{"-n", l.Client, "route", "add", "local", poolNet, "dev", "lo"},
	}
	for _, s := range steps {
		if err := netns.IP(ctx, s...); err != nil {
			return nil, err
		}
	}
	if l.ns, err = pxeclient.OpenNetns("/run/netns/" + l.Server); err != nil {
		return nil, err
	}
	if l.nc, err = pxeclient.OpenNetns("/run/netns/" + l.Client); err != nil {
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

// Start runs argv in the server namespace, logging to Dir/name.log.
func (l *Lab) Start(name string, argv ...string) (*Proc, error) {
	logPath := filepath.Join(l.Dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.Server}, argv...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("mass: start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(p.done) }()
	l.procs = append(l.procs, p)
	return p, nil
}

// Stop ends p: SIGTERM, then SIGKILL to its group after 5 s.
func (p *Proc) Stop() {
	if p.Exited() {
		return
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.PID(), syscall.SIGKILL)
		<-p.done
	}
}

// Tail is the end of p's log, for errors.
func (p *Proc) Tail() string {
	b, _ := os.ReadFile(p.Log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// WaitHTTP polls url (in the server namespace) until it answers 200.
func (l *Lab) WaitHTTP(ctx context.Context, p *Proc, url string) error {
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
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close stops the processes (last started first), removes the namespaces
// and the scratch folder unless keep.
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
	for _, n := range []string{l.Client, l.Server} {
		if n != "" {
			netns.IP(context.Background(), "netns", "delete", n)
		}
	}
	if l.Dir != "" && os.Getenv("OSIM_BENCH_KEEP") == "" {
		os.RemoveAll(l.Dir)
	}
}
