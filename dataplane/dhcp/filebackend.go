package dhcp

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// FileConfig is a static boot policy: osim-bootd's standalone targets
// (its YAML lives in internal/bootd), tests and benchmarks.
type FileConfig struct {
	// Arches the site boots; each needs a boot file. Default: bios, efi-x64.
	Arches []string
	// BootFiles maps an arch name to its network boot program (TFTP path).
	BootFiles map[string]string
	// Unknown is the action for machines not listed: "discovery" or "ignore"
	// (default).
	Unknown string
	// HTTPBootFile is the EFI program (a file of the HTTP service) that
	// UEFI HTTP boot clients get. Default: the efi-x64 boot file.
	HTTPBootFile string
	Machines     []FileMachine
}

// FileMachine is one machine entry.
type FileMachine struct {
	MAC    string
	Action string
	// BootFiles overrides the site's boot files per arch name.
	BootFiles map[string]string
	// Address is the machine's reserved IPv4 address in full DHCP mode
	// (optional; best outside the pool's dynamic range).
	Address string
}

// FileBackend is a Backend built from a FileConfig, for standalone runs
// and tests. It is immutable once built.
type FileBackend struct {
	byMAC   map[string]Decision
	unknown Decision // Action 0: report ErrUnknownMAC
}

// NewFileBackend validates cfg and builds the backend. Each mistake is
// reported with the entry and value at fault.
func NewFileBackend(cfg FileConfig) (*FileBackend, error) {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf("dhcp: backend file: "+format, a...)) }

	arches := cfg.Arches
	if len(arches) == 0 {
		arches = []string{"bios", "efi-x64"}
	}
	var required []Arch
	for _, n := range arches {
		a, err := ParseArchName(n)
		if err != nil {
			fail("arches: %v", err)
			continue
		}
		required = append(required, a.Canonical())
	}
	site, err := archFiles("boot_files", cfg.BootFiles)
	if err != nil {
		errs = append(errs, err)
	}
	for _, a := range required {
		if site[a] == "" {
			fail("boot_files: missing boot file for arch %s", a)
		}
	}
	httpBoot := cmp.Or(cfg.HTTPBootFile, site[ArchEFIx64])

	fb := &FileBackend{byMAC: make(map[string]Decision, len(cfg.Machines))}
	switch cfg.Unknown {
	case "", "ignore":
	case "discovery":
		fb.unknown = Decision{Action: ActionDiscovery, BootFiles: site, HTTPBootFile: httpBoot, Unknown: true}
	default:
		fail("unknown: %q is not a policy for unknown machines (want discovery or ignore)", cfg.Unknown)
	}

	seen := make(map[string]int, len(cfg.Machines))
	seenAddr := make(map[netip.Addr]int, len(cfg.Machines))
	for i, m := range cfg.Machines {
		where := fmt.Sprintf("machines[%d]", i)
		mac, err := net.ParseMAC(m.MAC)
		if err != nil || len(mac) != 6 {
			fail("%s: bad MAC %q (want six hex bytes like 52:54:00:12:34:56)", where, m.MAC)
			continue
		}
		key := mac.String()
		where = fmt.Sprintf("machines[%d] (%s)", i, key)
		if j, dup := seen[key]; dup {
			fail("%s: duplicate MAC, already in machines[%d]", where, j)
			continue
		}
		seen[key] = i
		act, err := ParseAction(m.Action)
		if m.Action == "" {
			act, err = ActionBootImage, nil
		}
		if err != nil {
			fail("%s: %v", where, err)
			continue
		}
		own, err := archFiles(where+".boot_files", m.BootFiles)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files := make(map[Arch]string, len(site)+len(own))
		for a, f := range site {
			files[a] = f
		}
		for a, f := range own {
			files[a] = f
		}
		d := Decision{Action: act, BootFiles: files, HTTPBootFile: cmp.Or(cfg.HTTPBootFile, files[ArchEFIx64])}
		if m.Address != "" {
			a, err := netip.ParseAddr(m.Address)
			if err != nil || !a.Is4() {
				fail("%s: address %q is not an IPv4 address", where, m.Address)
				continue
			}
			if j, dup := seenAddr[a]; dup {
				fail("%s: address %s already reserved for machines[%d]", where, a, j)
				continue
			}
			seenAddr[a], d.Address = i, a
		}
		fb.byMAC[key] = d
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return fb, nil
}

// archFiles reads a boot_files map keyed by arch name.
func archFiles(where string, m map[string]string) (map[Arch]string, error) {
	out := make(map[Arch]string, len(m))
	var errs []error
	for _, n := range slices.Sorted(maps.Keys(m)) {
		f := m[n]
		a, err := ParseArchName(n)
		if err != nil {
			errs = append(errs, fmt.Errorf("dhcp: backend file: %s: %w", where, err))
			continue
		}
		if strings.TrimSpace(f) == "" {
			errs = append(errs, fmt.Errorf("dhcp: backend file: %s: missing boot file for arch %s", where, a))
			continue
		}
		out[a.Canonical()] = f
	}
	return out, errors.Join(errs...)
}

// Lookup returns the machine's decision, the discovery decision for an
// unknown machine if configured, or ErrUnknownMAC.
func (f *FileBackend) Lookup(_ context.Context, mac net.HardwareAddr, _ Arch) (Decision, error) {
	if d, ok := f.byMAC[mac.String()]; ok {
		return d, nil
	}
	if f.unknown.Action != 0 {
		return f.unknown, nil
	}
	return Decision{}, fmt.Errorf("dhcp: %s: %w", mac, ErrUnknownMAC)
}

// BootMACs returns the machines told to boot an image, sorted: the allow
// list of a MAC policy (dataplane/xdp) in standalone runs.
func (f *FileBackend) BootMACs() []net.HardwareAddr {
	var out []net.HardwareAddr
	for m, d := range f.byMAC {
		if d.Action != ActionBootImage {
			continue
		}
		if mac, err := net.ParseMAC(m); err == nil {
			out = append(out, mac)
		}
	}
	slices.SortFunc(out, func(a, b net.HardwareAddr) int { return bytes.Compare(a, b) })
	return out
}
