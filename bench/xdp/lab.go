package xdpbench

import (
	"fmt"
	"os/exec"
	"strings"
)

// Lab is a server and a client network namespace joined by a veth pair:
// ServerIf (address ServerIP/24) in Server, ClientIf (ClientIP/24) in Client.
type Lab struct {
	Server, Client     string
	ServerIf, ClientIf string
	ServerIP, ClientIP string
}

// NewLab creates the namespaces and the veth (root, iproute2); tag keeps
// the names of concurrent labs apart.
func NewLab(tag string) (*Lab, error) {
	l := &Lab{Server: "osim-xbs-" + tag, Client: "osim-xbc-" + tag, ServerIf: "xbs" + tag, ClientIf: "xbc" + tag,
		ServerIP: "10.97.0.1", ClientIP: "10.97.0.2"}
	steps := [][]string{
		{"netns", "add", l.Server},
		{"netns", "add", l.Client},
		{"link", "add", l.ServerIf, "netns", l.Server, "type", "veth", "peer", "name", l.ClientIf, "netns", l.Client},
		{"-n", l.Server, "link", "set", "lo", "up"},
		{"-n", l.Server, "addr", "add", l.ServerIP + "/24", "dev", l.ServerIf},
		{"-n", l.Server, "link", "set", l.ServerIf, "up"},
		{"-n", l.Client, "link", "set", "lo", "up"},
		{"-n", l.Client, "addr", "add", l.ClientIP + "/24", "dev", l.ClientIf},
		{"-n", l.Client, "link", "set", l.ClientIf, "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			l.Close()
			return nil, fmt.Errorf("xdpbench: ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return l, nil
}

// ClientPath is the client namespace for pxeclient.OpenNetns.
func (l *Lab) ClientPath() string { return "/run/netns/" + l.Client }

// Close deletes both namespaces (and with them the veth).
func (l *Lab) Close() {
	exec.Command("ip", "netns", "del", l.Server).Run()
	exec.Command("ip", "netns", "del", l.Client).Run()
}
