package testlab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
)

// PairSpec describes two namespaces joined by a veth.
type PairSpec struct {
	// Prefix starts both namespaces' names: Prefix+"s-PID" (server) and
	// Prefix+"c-PID" (client). Leftovers of dead runs with the same prefix
	// are removed first.
	Prefix string
	// ServerIf and ClientIf name the veth's ends.
	ServerIf, ClientIf string
	// ServerAddr and ClientAddr are the ends' addresses with their prefix
	// length.
	ServerAddr, ClientAddr netip.Prefix
	// ServerRoutes and ClientRoutes are `ip route add` arguments run in
	// each namespace once the veth is up.
	ServerRoutes, ClientRoutes [][]string
}

// Pair is a server and a client network namespace joined by a veth pair,
// as PairSpec made it.
type Pair struct {
	PairSpec
	Server, Client string // namespace names
}

// NewPair creates the namespaces and the veth (root, iproute2).
func NewPair(ctx context.Context, spec PairSpec) (*Pair, error) {
	if err := NeedRoot("network namespaces"); err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	RemoveStale(ctx, spec.Prefix)
	tag := strconv.Itoa(os.Getpid())
	p := &Pair{PairSpec: spec, Server: spec.Prefix + "s-" + tag, Client: spec.Prefix + "c-" + tag}
	steps := [][]string{
		{"netns", "add", p.Server},
		{"netns", "add", p.Client},
		{"-n", p.Server, "link", "set", "lo", "up"},
		{"-n", p.Client, "link", "set", "lo", "up"},
		{"-n", p.Server, "link", "add", p.ServerIf, "type", "veth", "peer", "name", p.ClientIf, "netns", p.Client},
		{"-n", p.Server, "addr", "add", p.ServerAddr.String(), "dev", p.ServerIf},
		{"-n", p.Client, "addr", "add", p.ClientAddr.String(), "dev", p.ClientIf},
		{"-n", p.Server, "link", "set", p.ServerIf, "up"},
		{"-n", p.Client, "link", "set", p.ClientIf, "up"},
	}
	for _, r := range p.ServerRoutes {
		steps = append(steps, append([]string{"-n", p.Server, "route", "add"}, r...))
	}
	for _, r := range p.ClientRoutes {
		steps = append(steps, append([]string{"-n", p.Client, "route", "add"}, r...))
	}
	for _, s := range steps {
		if err := IP(ctx, s...); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// ServerPath and ClientPath are the namespaces' files, for
// pxeclient.OpenNetns.
func (p *Pair) ServerPath() string { return "/run/netns/" + p.Server }
func (p *Pair) ClientPath() string { return "/run/netns/" + p.Client }

// Close deletes both namespaces (and with them the veth).
func (p *Pair) Close() {
	for _, n := range []string{p.Client, p.Server} {
		IP(context.Background(), "netns", "delete", n)
	}
}
