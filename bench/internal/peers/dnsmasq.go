package peers

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"

	"osim/bench/internal/lab"
	"osim/internal/pxeclient"
	"osim/internal/testlab"
)

// NetnsPrefix starts the name of dnsmasq's namespace; the bench's pid
// follows, so leftovers of dead runs can be found (testlab.RemoveStale).
const NetnsPrefix = "osim-tftpbench-"

// startDnsmasq runs dnsmasq in a namespace of its own: it has no option for
// the TFTP port, and 69 on the host's loopback is not ours to take. The
// bench's clients open their sockets inside the same namespace.
func startDnsmasq(raiseMax bool) func(context.Context, Env) (*Running, error) {
	return func(ctx context.Context, env Env) (*Running, error) {
		if err := need(DnsmasqBinary); err != nil {
			return nil, err
		}
		name := Dnsmasq
		if raiseMax {
			name = DnsmasqMax
		}
		ns, err := testlab.Create(ctx, fmt.Sprintf("%s%d", NetnsPrefix, os.Getpid()))
		if err != nil {
			return nil, err
		}
		args := []string{DnsmasqBinary,
			"--no-daemon",           // foreground, logs to stderr, keeps running as root
			"--conf-file=/dev/null", // nothing from /etc/dnsmasq.conf
			"--port=0",              // no DNS
			"--listen-address=127.0.0.1",
			"--bind-interfaces",
			"--enable-tftp",
			"--tftp-root=" + env.Root,
			"--pid-file=", // none
		}
		if raiseMax {
			args = append(args, "--tftp-max="+strconv.Itoa(env.MaxClients+100))
		}
		r, err := launch(name, args, ns.Name, env, loopback(69))
		if err != nil {
			ns.Delete()
			return nil, err
		}
		in, err := pxeclient.OpenNetns(ns.Path())
		if err != nil {
			r.cleanup = append(r.cleanup, func() { ns.Delete() })
			r.Stop()
			return nil, err
		}
		r.Listen = func() (*net.UDPConn, error) { return lab.ListenLoopback(in) }
		r.cleanup = append(r.cleanup, func() { ns.Delete() }, in.Close)
		return r, nil
	}
}
