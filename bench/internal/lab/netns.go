// Package lab is the bench's toolkit for running servers under measure on
// this machine: named network namespaces (removed again after a killed
// run), a pair of them joined by a veth, processes started inside with a
// log, a stop and their CPU, and cgroups that cap or meter a process's CPU.
package lab

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"osim/bench/internal/procstat"
	"osim/internal/pxeclient"
)

// NS is a namespace this process created. Its name ends in "-PID" of the
// creating process, so RemoveStale finds what a dead run left.
type NS struct {
	Name string
}

// Create makes a fresh namespace with its loopback up.
func Create(ctx context.Context, name string) (*NS, error) {
	if err := IP(ctx, "netns", "add", name); err != nil {
		return nil, err
	}
	n := &NS{Name: name}
	if err := IP(ctx, "-n", name, "link", "set", "lo", "up"); err != nil {
		n.Delete()
		return nil, err
	}
	return n, nil
}

// Delete removes the namespace; processes still inside keep it alive until
// they end.
func (n *NS) Delete() error {
	return IP(context.Background(), "netns", "delete", n.Name)
}

// Path is the namespace's file, for pxeclient.OpenNetns.
func (n *NS) Path() string { return "/run/netns/" + n.Name }

// Command returns a command that runs argv inside the namespace; `ip netns
// exec` execs argv in place, so the command's pid is argv's.
func (n *NS) Command(argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name}, argv...)...)
}

// Enter starts a thread inside the namespace that opens sockets there
// (pxeclient.Netns.Do); close it when done.
func (n *NS) Enter() (*pxeclient.Netns, error) { return pxeclient.OpenNetns(n.Path()) }

// IP runs `ip args...`; its error carries the arguments and ip's output.
func IP(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// RemoveStale deletes namespaces whose name starts with prefix and ends in
// "-pid" of a process that no longer runs: what a killed earlier run left
// behind. Other namespaces are not touched.
func RemoveStale(ctx context.Context, prefix string) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], prefix) {
			continue
		}
		tail := f[0][strings.LastIndexByte(f[0], '-')+1:]
		pid, err := strconv.Atoi(tail)
		if err != nil || pid == os.Getpid() || procstat.Alive(pid) {
			continue
		}
		slog.Info("removing namespace of an earlier run", "netns", f[0])
		IP(ctx, "netns", "delete", f[0])
	}
}

// ListenLoopback opens a UDP socket on 127.0.0.1 in the namespace ns has
// entered; the socket stays there wherever it is used.
func ListenLoopback(ns *pxeclient.Netns) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := ns.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab: socket in a namespace: %w", err)
	}
	return c, nil
}
