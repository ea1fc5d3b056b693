// Package dhcp answers PXE firmware: proxyDHCP on port 67 and the boot
// server exchange on port 4011, with boot decisions taken from a Backend.
package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Backend tells the DHCP service what a machine should boot. It is this
// package's seam: the boot server's agent implements it from its local
// store, FileBackend from a YAML file for standalone runs.
type Backend interface {
	// Lookup returns the decision for mac, which announced arch. A machine
	// the backend does not know is reported with ErrUnknownMAC.
	Lookup(ctx context.Context, mac net.HardwareAddr, arch Arch) (Decision, error)
}

// ErrUnknownMAC is returned by a Backend for a machine it has no record of
// and no default for.
var ErrUnknownMAC = errors.New("unknown MAC address")

// Action is what the backend wants a machine to do.
type Action uint8

// Actions. The zero value is not a valid action, so a forgotten field is
// caught instead of booting something.
const (
	ActionBootImage Action = iota + 1 // boot the installer named by the decision
	ActionBootLocal                   // boot from the local disk: stay silent
	ActionIgnore                      // not ours: stay silent
	ActionDiscovery                   // unknown machine: boot the discovery image
)

var actionNames = map[Action]string{
	ActionBootImage: "boot",
	ActionBootLocal: "local",
	ActionIgnore:    "ignore",
	ActionDiscovery: "discovery",
}

func (a Action) String() string {
	if n, ok := actionNames[a]; ok {
		return n
	}
	return fmt.Sprintf("action-%d", uint8(a))
}

// ParseAction reads an action name as written in configuration files.
func ParseAction(s string) (Action, error) {
	for a, n := range actionNames {
		if n == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("unknown action %q (want boot, local, ignore or discovery)", s)
}

// URLs names what the boot server's HTTP service serves, for the URLs a
// reply hands out. The HTTP service owns its routes (httpboot.URLs
// implements this); the main wires the two together.
type URLs interface {
	// Script is the URL of the iPXE script of mac.
	Script(mac net.HardwareAddr) string
	// File is the URL of a file the HTTP service serves.
	File(name string) string
}

// Decision is the backend's answer for one machine.
type Decision struct {
	Action Action
	// BootFiles names the network boot program per firmware, keyed by the
	// canonical Arch (see Arch.Canonical), as a TFTP path.
	BootFiles map[Arch]string
	// HTTPBootFile names the EFI program UEFI HTTP boot clients (option 60
	// "HTTPClient") get, a file of the HTTP service (URLs.File); empty:
	// they get no answer. iPXE (option 77 "iPXE") gets its script,
	// URLs.Script of its MAC: the backend says who and what, never where.
	HTTPBootFile string
	// Address is the machine's reserved IPv4 address in full DHCP mode
	// (invalid: none, it gets one from the pool).
	Address netip.Addr
	// Unknown marks the decision for a machine the backend has no record
	// of (its policy for unknown machines): full mode gives it a short
	// lease and counts it against the pool's cap of unknown clients.
	Unknown bool
}

// Arch is a client system architecture type (option 93).
type Arch uint16

// Architectures this service boots (RFC 4578 §2.1, IANA "Processor
// Architecture Types").
const (
	ArchBIOS         Arch = 0
	ArchEFIIA32      Arch = 6
	ArchEFIx64       Arch = 7
	ArchEFIBC        Arch = 9 // EFI byte code; firmware in the field sends it for x64
	ArchEFIARM32     Arch = 10
	ArchEFIARM64     Arch = 11
	ArchEFIx64HTTP   Arch = 16
	ArchEFIARM64HTTP Arch = 19
)

var archNames = map[Arch]string{
	ArchBIOS:         "bios",
	ArchEFIIA32:      "efi-ia32",
	ArchEFIx64:       "efi-x64",
	ArchEFIBC:        "efi-bc",
	ArchEFIARM32:     "efi-arm32",
	ArchEFIARM64:     "efi-arm64",
	ArchEFIx64HTTP:   "efi-x64-http",
	ArchEFIARM64HTTP: "efi-arm64-http",
}

func (a Arch) String() string {
	if n, ok := archNames[a]; ok {
		return n
	}
	return fmt.Sprintf("arch-%d", uint16(a))
}

// Canonical maps an arch to the firmware whose boot program it runs: EFI
// byte code (9) is treated as x64, HTTP variants as their PXE counterparts.
func (a Arch) Canonical() Arch {
	switch a {
	case ArchEFIBC, ArchEFIx64HTTP:
		return ArchEFIx64
	case ArchEFIARM64HTTP:
		return ArchEFIARM64
	}
	return a
}

// Known reports whether a has a name in this package.
func (a Arch) Known() bool { _, ok := archNames[a]; return ok }

// ParseArchName reads an arch name as written in configuration files.
func ParseArchName(s string) (Arch, error) {
	for a, n := range archNames {
		if n == strings.ToLower(s) {
			return a, nil
		}
	}
	return 0, fmt.Errorf("unknown arch %q (want bios, efi-ia32, efi-x64, efi-arm32 or efi-arm64)", s)
}

// ParseArchOption reads option 93: a list of 16-bit types, most preferred
// first (RFC 4578 §2.1). The first one is returned.
func ParseArchOption(b []byte) (Arch, error) {
	if len(b) == 0 || len(b)%2 != 0 {
		return 0, fmt.Errorf("option 93 of %d bytes: want a non-empty list of 16-bit types", len(b))
	}
	return Arch(uint16(b[0])<<8 | uint16(b[1])), nil
}
