// Package power controls targets' power through their BMC or hypervisor:
// on, off, cycle, status, and the next boot from the network once. A
// Driver is one machine's control; Open picks the driver a target's
// power spec names (ipmi, libvirt, wol, manual).
//
// Drivers run where the BMCs are reachable: on the boot server of the
// target's site, which sits on the management network, so the manager
// needs no route to any BMC.
package power

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// State is a machine's power as its driver reads it.
type State string

// Power states.
const (
	On      State = "on"
	Off     State = "off"
	Unknown State = "unknown" // the driver cannot read it (manual, wol)
)

// Driver controls one machine.
type Driver interface {
	// On powers the machine on (nothing when it is on).
	On(ctx context.Context) error
	// Off powers it off at once (not a graceful shutdown: the machine is
	// about to be reimaged).
	Off(ctx context.Context) error
	// Cycle powers it off and on again (on when it was off).
	Cycle(ctx context.Context) error
	// Status reads its power.
	Status(ctx context.Context) (State, error)
	// NetworkBootOnce makes its next boot, and only that one, boot from
	// the network.
	NetworkBootOnce(ctx context.Context) error
}

// Spec is a target's power control: the driver, the BMC's address and
// the credentials (resolved from the credentials reference by the
// caller; never logged, never in an error).
type Spec struct {
	Driver   string
	Address  string // ipmi: host[:port] (623)
	Username string
	Password string
	// MAC and Interface (wol): the target's MAC, and the boot server's
	// interface on its segment.
	MAC       string
	Interface string
	// Domain (libvirt): the domain's name; Address is then the libvirt
	// connection URI (default qemu:///system).
	Domain string
	// Timeout bounds one action (default DefaultTimeout).
	Timeout time.Duration
}

// Drivers are the driver names Open knows.
var Drivers = []string{"ipmi", "libvirt", "wol", "manual"}

// DefaultTimeout bounds one power action.
const DefaultTimeout = 30 * time.Second

// Errors.
var (
	// ErrManual: the manual driver cannot act; an operator reboots the
	// machine and osim waits for its PXE boot.
	ErrManual = errors.New("power: manual: the operator powers this machine")
	// ErrSpec: the spec is incomplete or names an unknown driver.
	ErrSpec = errors.New("power: bad spec")
	// ErrSession: no IPMI session: the BMC does not answer, or it
	// refused the credentials (ipmitool cannot tell which).
	ErrSession = errors.New("power: no session with the BMC (it does not answer, or it refused the credentials)")
	// ErrUnsupported: the driver cannot do this (wol: anything but on).
	ErrUnsupported = errors.New("power: not supported by this driver")
	// ErrUnreachable: no answer within the action's timeout.
	ErrUnreachable = errors.New("power: the BMC does not answer")
)

// Open returns the driver spec names.
func Open(spec Spec) (Driver, error) {
	if spec.Timeout <= 0 {
		spec.Timeout = DefaultTimeout
	}
	switch spec.Driver {
	case "ipmi":
		return newIPMI(spec)
	case "wol":
		return newWOL(spec)
	case "libvirt":
		return newLibvirt(spec)
	case "manual":
		return manual{}, nil
	}
	return nil, fmt.Errorf("%w: driver %q is not one of %s", ErrSpec, spec.Driver, strings.Join(Drivers, ", "))
}

// manual is the operator: osim cannot act and waits.
type manual struct{}

func (manual) On(context.Context) error              { return ErrManual }
func (manual) Off(context.Context) error             { return ErrManual }
func (manual) Cycle(context.Context) error           { return ErrManual }
func (manual) Status(context.Context) (State, error) { return Unknown, nil }
func (manual) NetworkBootOnce(context.Context) error { return ErrManual }
