package testlab

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
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

// IP runs `ip args...`; its error carries the arguments and ip's output.
func IP(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("testlab: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
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
		pid, err := strconv.Atoi(f[0][strings.LastIndexByte(f[0], '-')+1:])
		if err != nil || pid == os.Getpid() || Alive(pid) {
			continue
		}
		slog.Info("removing namespace of an earlier run", "netns", f[0])
		IP(ctx, "netns", "delete", f[0])
	}
}

// Alive reports whether pid runs: a zombie (ended, not yet reaped, as
// happens to a killed run whose parent is gone) counts as dead.
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}
