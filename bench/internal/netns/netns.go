// Package netns creates the named network namespaces the bench runs peers
// in (with `ip netns`, so they show in `ip netns list` and can be removed by
// hand after a crash), runs commands inside them, and opens client sockets
// inside them from a Go process that stays outside.
package netns

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"osim/bench/internal/procstat"
)

// Prefix starts the name of every namespace the bench creates; the suffix
// is the creating process's pid, so leftovers of dead runs can be found.
const Prefix = "osim-tftpbench-"

// NS is a namespace this process created.
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

// Command returns a command that runs argv inside the namespace; `ip netns
// exec` execs argv in place, so the command's pid is argv's.
func (n *NS) Command(argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name}, argv...)...)
}

// IP runs `ip args...`; its error carries the arguments and ip's output.
func IP(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// RemoveStale deletes namespaces named Prefix+pid whose pid no longer runs:
// what a killed earlier run left behind. Other namespaces are not touched.
func RemoveStale(ctx context.Context) { RemoveStaleWithPrefix(ctx, Prefix) }

// RemoveStaleWithPrefix deletes namespaces whose name starts with prefix and
// ends in "-pid" of a process that no longer runs (another package's labs,
// e.g. "osim-mass-s-1234").
func RemoveStaleWithPrefix(ctx context.Context, prefix string) {
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

// Opener opens UDP sockets inside a namespace. A socket belongs to the
// namespace of the thread that created it, and keeps it wherever it is used
// afterwards; so one goroutine, locked to a thread moved into the
// namespace, creates them all.
type Opener struct {
	reqs chan chan opened
}

type opened struct {
	conn *net.UDPConn
	err  error
}

// Opener starts the goroutine that opens sockets in n. Close it when done.
func (n *NS) Opener() (*Opener, error) {
	o := &Opener{reqs: make(chan chan opened)}
	ready := make(chan error, 1)
	go func() {
		// Never unlocked: a goroutine that exits while locked takes its
		// thread with it, so no other goroutine ever runs in the namespace.
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+n.Name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Setns(fd, unix.CLONE_NEWNET)
			unix.Close(fd)
		}
		if err != nil {
			ready <- fmt.Errorf("netns: enter %s: %w", n.Name, err)
			return
		}
		ready <- nil
		for r := range o.reqs {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				err = fmt.Errorf("netns: socket in %s: %w", n.Name, err)
			}
			r <- opened{c, err}
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return o, nil
}

// Listen opens one socket on 127.0.0.1 inside the namespace.
func (o *Opener) Listen() (*net.UDPConn, error) {
	r := make(chan opened, 1)
	o.reqs <- r
	res := <-r
	return res.conn, res.err
}

// Close ends the opener's goroutine and its thread.
func (o *Opener) Close() { close(o.reqs) }
