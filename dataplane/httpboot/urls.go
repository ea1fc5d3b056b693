package httpboot

import (
	"net"
	"strings"
)

// URLs names this service's routes for the boot server's other services:
// DHCP hands them to iPXE and UEFI HTTP boot clients (it implements
// dhcp.URLs). Only this package knows its URL scheme.
type URLs struct {
	// Base is the HTTP base every client reaches, e.g.
	// "http://10.0.0.1:8080" (Config.BaseURL).
	Base string
}

// Script is the URL of mac's iPXE script: GET /ipxe/{mac}. Every machine,
// known or not, is sent to its own script; a machine without a boot
// decision (an unknown one under the discovery policy, until the
// discovery flow exists) is answered 404 "unknown target: <mac>".
func (u URLs) Script(mac net.HardwareAddr) string {
	return strings.TrimSuffix(u.Base, "/") + "/ipxe/" + mac.String()
}

// File is the URL of a served file, GET /files/{name...}; an absolute
// http(s) URL is kept. A name that cannot be served gives "": no answer
// rather than one that fails.
func (u URLs) File(name string) string {
	s, err := fileURL(u.Base, name)
	if err != nil {
		return ""
	}
	return s
}
