package power

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// Virsh is the virsh binary the libvirt driver runs (Debian's
// libvirt-clients).
var Virsh = "virsh"

// libvirt drives a lab's virtual machine through virsh: a libvirt
// connection URI (Spec.Address, default qemu:///system) and a domain
// (Spec.Domain). For labs: a datacenter's machines have BMCs.
type libvirt struct {
	uri, domain string
	spec        Spec
}

var reDomain = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)

func newLibvirt(spec Spec) (*libvirt, error) {
	uri := spec.Address
	if uri == "" {
		uri = "qemu:///system"
	}
	if strings.HasPrefix(uri, "-") || strings.ContainsAny(uri, " \t\n") {
		return nil, fmt.Errorf("%w: libvirt URI %q", ErrSpec, uri)
	}
	if !reDomain.MatchString(spec.Domain) {
		return nil, fmt.Errorf("%w: libvirt needs a domain name (got %q)", ErrSpec, spec.Domain)
	}
	return &libvirt{uri: uri, domain: spec.Domain, spec: spec}, nil
}

// On starts the domain; one that runs already is on.
func (d *libvirt) On(ctx context.Context) error {
	_, err := d.virsh(ctx, "start", d.domain)
	if err != nil && (strings.Contains(err.Error(), "already running") || strings.Contains(err.Error(), "already active")) {
		return nil
	}
	return err
}

// Off destroys the domain (pulls the plug); one that is off is off.
func (d *libvirt) Off(ctx context.Context) error {
	_, err := d.virsh(ctx, "destroy", d.domain)
	if err != nil && strings.Contains(err.Error(), "not running") {
		return nil
	}
	return err
}

// Cycle is off, then on: a new QEMU process, which reads the domain's
// definition again (a reset would keep the old boot order).
func (d *libvirt) Cycle(ctx context.Context) error {
	if err := d.Off(ctx); err != nil {
		return err
	}
	return d.On(ctx)
}

func (d *libvirt) Status(ctx context.Context) (State, error) {
	out, err := d.virsh(ctx, "domstate", d.domain)
	if err != nil {
		return Unknown, err
	}
	switch s := strings.TrimSpace(out); s {
	case "running", "paused", "in shutdown", "blocked", "pmsuspended":
		return On, nil
	case "shut off", "shutdown", "crashed":
		return Off, nil
	default:
		return Unknown, fmt.Errorf("power: libvirt: domain %s is %q", d.domain, s)
	}
}

// NetworkBootOnce cannot be once with libvirt (no one-shot boot device):
// it makes the domain's boot order network first, then disk, for good.
// That is how a lab runs: osim answers a machine without an order with a
// local-disk script, so a network-first machine still boots its disk.
func (d *libvirt) NetworkBootOnce(ctx context.Context) error {
	xml, err := d.virsh(ctx, "dumpxml", "--inactive", d.domain)
	if err != nil {
		return err
	}
	if strings.Contains(xml, "<boot order=") {
		return fmt.Errorf("%w: libvirt: domain %s orders its boot per device (<boot order=...>); give it <os><boot dev=.../></os>", ErrUnsupported, d.domain)
	}
	out, err := networkFirst(xml)
	if err != nil {
		return fmt.Errorf("power: libvirt: domain %s: %w", d.domain, err)
	}
	f, err := os.CreateTemp("", "osim-libvirt-*.xml")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(out); err != nil {
		f.Close()
		return err
	}
	f.Close()
	_, err = d.virsh(ctx, "define", f.Name())
	return err
}

var reBootDev = regexp.MustCompile(`\s*<boot dev='[^']*'/>`)

// networkFirst rewrites a domain's <os> boot devices to network, then hd.
func networkFirst(xml string) (string, error) {
	i := strings.Index(xml, "<os")
	j := strings.Index(xml, "</os>")
	if i < 0 || j < i {
		return "", errors.New("no <os> element")
	}
	osPart := reBootDev.ReplaceAllString(xml[i:j], "")
	return xml[:i] + osPart + "<boot dev='network'/><boot dev='hd'/>" + xml[j:], nil
}

// virsh runs one virsh command against the driver's connection.
func (d *libvirt) virsh(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.spec.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, Virsh, append([]string{"-c", d.uri}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.String(), nil
	}
	switch {
	case ctx.Err() != nil:
		return "", fmt.Errorf("%w: libvirt %s %s: no answer within %s", ErrUnreachable, args[0], d.domain, d.spec.Timeout)
	case errors.Is(err, exec.ErrNotFound):
		return "", fmt.Errorf("power: libvirt: %s not found (apt-get install libvirt-clients)", Virsh)
	}
	var msg []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "error: ")); l != "" {
			msg = append(msg, l)
		}
	}
	return "", fmt.Errorf("power: libvirt %s %s on %s: %s", args[0], d.domain, d.uri, strings.Join(msg, ": "))
}
