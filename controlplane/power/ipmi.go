package power

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// IPMITool is the ipmitool binary the ipmi driver runs (Debian's
// ipmitool package).
var IPMITool = "ipmitool"

// ipmi drives a BMC over IPMI v2.0 LAN (RMCP+, "lanplus") with ipmitool.
// The password goes to ipmitool through its environment (-E reads
// IPMI_PASSWORD), never on its command line, where any user of the boot
// server could read it in the process list.
type ipmi struct {
	spec Spec
	host string
	port int
}

func newIPMI(spec Spec) (*ipmi, error) {
	if spec.Address == "" || spec.Username == "" {
		return nil, fmt.Errorf("%w: ipmi needs an address and a username", ErrSpec)
	}
	host, portS, err := net.SplitHostPort(spec.Address)
	port := 623
	if err != nil {
		host = spec.Address // no port
	} else if port, err = strconv.Atoi(portS); err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("%w: ipmi address %q: bad port", ErrSpec, spec.Address)
	}
	if host == "" || strings.HasPrefix(host, "-") || strings.ContainsAny(host, " \t\n") {
		return nil, fmt.Errorf("%w: ipmi address %q: bad host", ErrSpec, spec.Address)
	}
	if strings.HasPrefix(spec.Username, "-") || strings.ContainsAny(spec.Username, "\n\x00") {
		return nil, fmt.Errorf("%w: ipmi username %q", ErrSpec, spec.Username)
	}
	return &ipmi{spec: spec, host: host, port: port}, nil
}

func (d *ipmi) On(ctx context.Context) error {
	_, err := d.run(ctx, "chassis", "power", "on")
	return err
}

func (d *ipmi) Off(ctx context.Context) error {
	_, err := d.run(ctx, "chassis", "power", "off")
	return err
}

// Cycle is "power cycle" when the machine is on ("cycle" is refused by
// many BMCs on a machine that is off) and "power on" when it is off.
func (d *ipmi) Cycle(ctx context.Context) error {
	st, err := d.Status(ctx)
	if err != nil {
		return err
	}
	if st == Off {
		return d.On(ctx)
	}
	_, err = d.run(ctx, "chassis", "power", "cycle")
	return err
}

func (d *ipmi) Status(ctx context.Context) (State, error) {
	out, err := d.run(ctx, "chassis", "power", "status")
	if err != nil {
		return Unknown, err
	}
	return parsePowerStatus(out)
}

// NetworkBootOnce sets the boot device to PXE for the next boot only
// (ipmitool's default: the flags' persistent bit off).
func (d *ipmi) NetworkBootOnce(ctx context.Context) error {
	_, err := d.run(ctx, "chassis", "bootdev", "pxe")
	return err
}

// parsePowerStatus reads "Chassis Power is on|off".
func parsePowerStatus(out string) (State, error) {
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "Chassis Power is "); ok {
			switch v {
			case "on":
				return On, nil
			case "off":
				return Off, nil
			}
		}
	}
	return Unknown, fmt.Errorf("power: ipmi: unexpected power status %q", strings.TrimSpace(out))
}

// run runs one ipmitool command with the driver's timeout: the answer's
// stdout, or an error that says what the BMC said (the password is never
// part of it). -N/-R make ipmitool's own retries fit the timeout; -C 3
// is the cipher suite every IPMI 2.0 BMC supports (RAKP-HMAC-SHA1,
// HMAC-SHA1-96, AES-CBC-128), so ipmitool does not ask for the list.
func (d *ipmi) run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.spec.Timeout)
	defer cancel()
	argv := append([]string{"-I", "lanplus", "-C", "3", "-N", "2", "-R", "3",
		"-H", d.host, "-p", strconv.Itoa(d.port), "-U", d.spec.Username, "-E"}, args...)
	cmd := exec.CommandContext(ctx, IPMITool, argv...)
	cmd.Env = append(os.Environ(), "IPMI_PASSWORD="+d.spec.Password)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.String(), nil
	}
	msg := strings.TrimSpace(stderr.String())
	if d.spec.Password != "" {
		msg = strings.ReplaceAll(msg, d.spec.Password, "(password)")
	}
	what := strings.Join(args, " ")
	switch {
	case ctx.Err() != nil:
		return "", fmt.Errorf("%w: ipmi %s on %s: no answer within %s", ErrUnreachable, what, d.spec.Address, d.spec.Timeout)
	case errors.Is(err, exec.ErrNotFound):
		return "", fmt.Errorf("power: ipmi: %s not found (apt-get install ipmitool)", IPMITool)
	case strings.Contains(msg, "Unable to establish"):
		// ipmitool says the same for a wrong password and for a BMC
		// that does not answer.
		return "", fmt.Errorf("%w: ipmi %s on %s: %s", ErrSession, what, d.spec.Address, lastLine(msg))
	}
	return "", fmt.Errorf("power: ipmi %s on %s: %v: %s", what, d.spec.Address, err, lastLine(msg))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
