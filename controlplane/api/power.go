package api

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// PowerDrivers are the power drivers a target may name
// (controlplane/power implements them).
var PowerDrivers = []string{"ipmi", "libvirt", "wol", "manual"}

// PowerSpec is how a target's power is controlled. It names its
// credentials (a Credential's name), never holds them; the boot server of
// the target's site runs the actions.
type PowerSpec struct {
	Driver string `json:"driver"`
	// Address: ipmi host[:port]; libvirt the connection URI (empty:
	// qemu:///system).
	Address string `json:"address,omitempty"`
	// Credentials names a Credential (ipmi: required).
	Credentials string `json:"credentials,omitempty"`
	// Domain (libvirt): the domain's name.
	Domain string `json:"domain,omitempty"`
	// Interface (wol): the boot server's interface on the target's
	// segment; the target's first MAC is woken.
	Interface string `json:"interface,omitempty"`
}

// Validate checks the spec for its driver; the error names the field.
func (p *PowerSpec) Validate() error {
	if !slices.Contains(PowerDrivers, p.Driver) {
		return fmt.Errorf("power.driver: %q is not one of %s", p.Driver, strings.Join(PowerDrivers, ", "))
	}
	for field, v := range map[string]string{"address": p.Address, "domain": p.Domain, "interface": p.Interface} {
		if strings.HasPrefix(v, "-") || strings.ContainsAny(v, " \t\r\n\x00") || len(v) > 253 {
			return fmt.Errorf("power.%s: %q is not a plain value", field, v)
		}
	}
	if p.Credentials != "" && !ValidName(p.Credentials) {
		return fmt.Errorf("power.credentials: %q is not a credential name", p.Credentials)
	}
	switch p.Driver {
	case "ipmi":
		if p.Address == "" || p.Credentials == "" {
			return fmt.Errorf("power: the ipmi driver needs address (the BMC, host[:port]) and credentials")
		}
		if host, _, err := net.SplitHostPort(p.Address); err == nil && host == "" {
			return fmt.Errorf("power.address: %q has no host", p.Address)
		}
	case "libvirt":
		if p.Domain == "" {
			return fmt.Errorf("power: the libvirt driver needs domain")
		}
	case "wol":
		if p.Interface == "" {
			return fmt.Errorf("power: the wol driver needs interface (the boot server's, on the target's segment)")
		}
	}
	return nil
}

// Credential is a BMC login as the API shows it: never its password.
type Credential struct {
	Name     string    `json:"name"`
	Username string    `json:"username"`
	Created  time.Time `json:"created"`
}

// CredentialRequest creates or replaces a credential (admin).
type CredentialRequest struct {
	Name     string `json:"name"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// CredentialSecret is a credential with its password: only a boot server
// of a site with a target that names it gets this.
type CredentialSecret struct {
	Name     string `json:"name"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// Power actions a request may ask for.
var PowerActions = []string{"on", "off", "cycle"}

// Power request states.
const (
	PowerPending = "pending" // waiting for a boot server of the site
	PowerRunning = "running" // a boot server has it (until its lease ends)
	PowerDone    = "done"
	PowerFailed  = "failed"
)

// PowerActionRequest asks for a power action on a target.
type PowerActionRequest struct {
	Action string `json:"action"` // on, off, cycle
	// NetworkBoot sets the next boot to the network first (once, where
	// the driver can: ipmi; libvirt: network first for good).
	NetworkBoot bool `json:"network_boot,omitempty"`
}

// PowerRequest is one power action, from the API to the boot server of
// the target's site that runs it.
type PowerRequest struct {
	ID          string     `json:"id"`
	Target      string     `json:"target"`
	Site        string     `json:"site"`
	Action      string     `json:"action"`
	NetworkBoot bool       `json:"network_boot,omitempty"`
	State       string     `json:"state"`
	Attempt     int        `json:"attempt"`
	Message     string     `json:"message,omitempty"`
	BootServer  string     `json:"boot_server,omitempty"` // the one running it
	LeaseUntil  time.Time  `json:"lease_until,omitzero"`
	Power       *PowerSpec `json:"power,omitempty"` // the target's, when made
	MAC         string     `json:"mac,omitempty"`   // the target's first (wol)
	By          string     `json:"by,omitempty"`    // the token that asked
	Created     time.Time  `json:"created"`
	Updated     time.Time  `json:"updated"`
}

// PowerResult is what a boot server reports of a power request.
type PowerResult struct {
	OK      bool   `json:"ok"`
	Message string `json:"message,omitempty"`
	// State is the machine's power after the action as the driver read
	// it (on, off, unknown).
	State string `json:"state,omitempty"`
}

// EventPower is the event of a power request's outcome.
const EventPower = "power.result"
