// Package bootargs reads the osim.* keys of the kernel command line
// (controlplane/api/install.go lists them) into Args.
package bootargs

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Modes (osim.mode).
const (
	ModeInstall  = "install"
	ModeDiscover = "discover"
)

// After discovery (osim.discover_then).
const (
	ThenPowerOff = "poweroff"
	ThenWait     = "wait"
)

// ErrArgs: a key is missing or malformed.
var ErrArgs = errors.New("bad osim.* kernel arguments")

// Args are the installer's kernel arguments.
type Args struct {
	Mode         string // ModeInstall (default) or ModeDiscover
	URL          string // the boot server's HTTP base, no trailing slash
	Order, Token string // install mode
	MAC          string // the MAC it booted from, lower case, colons
	DiscoverThen string // ThenPowerOff (default) or ThenWait
	Debug        bool
}

// Parse reads a command line (as /proc/cmdline holds it) and checks it:
// osim.url always, osim.order and osim.token in install mode, osim.mac in
// discover mode. Keys other than osim.* are ignored.
func Parse(line string) (Args, error) {
	a := Args{Mode: ModeInstall, DiscoverThen: ThenPowerOff}
	for _, f := range strings.Fields(line) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "osim.mode":
			a.Mode = v
		case "osim.url":
			a.URL = strings.TrimRight(v, "/")
		case "osim.order":
			a.Order = v
		case "osim.token":
			a.Token = v
		case "osim.mac":
			a.MAC = strings.ToLower(strings.ReplaceAll(v, "-", ":"))
		case "osim.discover_then":
			a.DiscoverThen = v
		case "osim.debug":
			a.Debug = v == "" || v == "1" || v == "true"
		}
	}
	return a, a.check()
}

func (a Args) check() error {
	if a.Mode != ModeInstall && a.Mode != ModeDiscover {
		return fmt.Errorf("%w: osim.mode=%q (want install or discover)", ErrArgs, a.Mode)
	}
	u, err := url.Parse(a.URL)
	if a.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: osim.url=%q is not an http(s) URL", ErrArgs, a.URL)
	}
	if a.MAC != "" {
		if _, err := net.ParseMAC(a.MAC); err != nil {
			return fmt.Errorf("%w: osim.mac=%q: %v", ErrArgs, a.MAC, err)
		}
	}
	if a.DiscoverThen != ThenPowerOff && a.DiscoverThen != ThenWait {
		return fmt.Errorf("%w: osim.discover_then=%q (want poweroff or wait)", ErrArgs, a.DiscoverThen)
	}
	switch a.Mode {
	case ModeInstall:
		if a.Order == "" || a.Token == "" {
			return fmt.Errorf("%w: install mode needs osim.order and osim.token", ErrArgs)
		}
	case ModeDiscover:
		if a.MAC == "" {
			return fmt.Errorf("%w: discover mode needs osim.mac", ErrArgs)
		}
	}
	return nil
}
