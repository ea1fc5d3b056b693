package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Discovery and boot loops.
//
// A machine the MDB does not know, under a boot server's
// boot.unknown: discovery, boots the osim installer with
// osim.mode=discover; it posts a DiscoverReport to the boot server, which
// emits EventTargetDiscovered. The manager then registers a target in
// state TargetDiscovered (hostname DiscoveredHostname(mac), the boot
// server's site, the arch the boot server saw in DHCP option 93, the
// facts attached); a second report of the same MAC updates its facts. A
// discovered target gets no orders (409) until accepted:
// POST /api/v1/targets/{id}/accept with an AcceptRequest.
//
// A boot server that sees a known target without a live order netboot
// more than N times within T emits EventBootLoop once per episode; the
// manager sets Target.BootLoop until the target's next order or accept.

// TargetDiscovered is Target.State of a target registered by discovery.
const TargetDiscovered = "discovered"

// TargetStates are the values of Target.State ("" is a normal target).
var TargetStates = []string{"", TargetDiscovered}

// Event types of discovery and boot loops.
const (
	// EventTargetDiscovered: an unknown machine reported its inventory
	// (MAC; Data: its facts, plus DataDHCPArch).
	EventTargetDiscovered = "target.discovered"
	// EventBootLoop: a known target without a live order netbooted more
	// than N times within T (Target, MAC; Data: boots, window).
	EventBootLoop = "boot.loop"
)

// DataDHCPArch is the key, in a target.discovered event's Data, of the
// arch (Arches) the boot server saw the machine announce in DHCP option
// 93; it overrides a fact of that name.
const DataDHCPArch = "dhcp_arch"

// AcceptRequest makes a discovered target a normal one.
type AcceptRequest struct {
	Hostname string            `json:"hostname"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// DiscoveredHostname is the hostname a discovered target is registered
// with: "discovered-" and its MAC's hex digits.
func DiscoveredHostname(mac string) string {
	return "discovered-" + strings.ReplaceAll(strings.ToLower(mac), ":", "")
}

// ValidTargetState reports whether s is one of TargetStates.
func ValidTargetState(s string) bool { return s == "" || s == TargetDiscovered }

// Validate checks an accept request: a valid hostname, valid labels.
func (a *AcceptRequest) Validate() error {
	if a.Hostname == "" {
		return fmt.Errorf("hostname: is required")
	}
	if !ValidHostname(a.Hostname) {
		return fmt.Errorf("hostname: %q is not a valid host name", a.Hostname)
	}
	for k, v := range a.Labels {
		if !ValidName(k) {
			return fmt.Errorf("labels: key %q is not valid (1-63 of A-Z a-z 0-9 . _ -)", k)
		}
		if len(v) > 63 || (v != "" && !ValidName(v)) {
			return fmt.Errorf("labels.%s: value %q is not valid (0-63 of A-Z a-z 0-9 . _ -)", k, v)
		}
	}
	return nil
}

// ListTargetsInState lists a page of targets in state (TargetDiscovered;
// "" lists every target, as ListTargets).
func (c *Client) ListTargetsInState(ctx context.Context, state, selector, site, after string, limit int) (TargetList, error) {
	q := pageQuery(after, limit)
	for k, v := range map[string]string{"state": state, "selector": selector, "site": site} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var l TargetList
	err := c.Do(ctx, http.MethodGet, "/targets", q, nil, &l)
	return l, err
}

// AcceptTarget makes discovered target id (or MAC) a normal target.
func (c *Client) AcceptTarget(ctx context.Context, id string, r AcceptRequest) (Target, error) {
	if id == "" {
		return Target{}, fmt.Errorf("accept: target id is required")
	}
	var t Target
	err := c.Do(ctx, http.MethodPost, "/targets/"+url.PathEscape(id)+"/accept", nil, r, &t)
	return t, err
}
