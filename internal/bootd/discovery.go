package bootd

import (
	"time"

	"osim/controlplane/agent"
	"osim/controlplane/api"
	"osim/dataplane/dhcp"
	"osim/dataplane/httpboot"
)

// discoveryWiring is the checked discovery and boot-loop keys.
type discoveryWiring struct {
	image  string // boot.discovery_image
	then   string // boot.discover_then
	limits httpboot.DiscoverLimits
	loop   agent.BootLoopConfig
}

// checkDiscovery validates boot.discovery_image, boot.discover_then,
// boot.loop_boots, boot.loop_window, http.discover_interval and
// http.discover_rate. Discovery and boot loops need the manager: the
// discovered machine is registered there, the loop shown there.
func (c *Config) checkDiscovery(w *wiring, bad func(key, format string, args ...any)) {
	b := c.Boot
	d := &w.discovery
	if b.DiscoveryImage != "" {
		switch {
		case c.Manager == nil:
			bad("boot.discovery_image", "needs a manager section: discovered machines are registered at the manager")
		case w.unknown != dhcp.ActionDiscovery:
			bad("boot.discovery_image", "set, but boot.unknown is %q: want discovery", c.Boot.Unknown)
		case !api.ValidName(b.DiscoveryImage):
			bad("boot.discovery_image", "%q is not an image id", b.DiscoveryImage)
		}
		d.image = b.DiscoveryImage
	}
	switch b.DiscoverThen {
	case "", agent.DiscoverPowerOff, agent.DiscoverWait:
		d.then = b.DiscoverThen
	default:
		bad("boot.discover_then", "%q: want poweroff or wait", b.DiscoverThen)
	}
	if b.LoopBoots < 0 {
		bad("boot.loop_boots", "%d: want a positive count (default %d)", b.LoopBoots, agent.DefaultLoopBoots)
	}
	if b.LoopWindow < 0 || (b.LoopWindow > 0 && b.LoopWindow < 2*agent.DefaultLoopGap) {
		bad("boot.loop_window", "%s: want at least %s (one netboot's DHCP retries take %s; default %s)",
			b.LoopWindow, 2*agent.DefaultLoopGap, agent.DefaultLoopGap, agent.DefaultLoopWindow)
	}
	d.loop = agent.BootLoopConfig{Boots: b.LoopBoots, Window: b.LoopWindow}
	if c.HTTP.DiscoverInterval < 0 {
		bad("http.discover_interval", "%s: want a positive duration (default %s)", c.HTTP.DiscoverInterval, httpboot.DefaultDiscoverInterval)
	}
	if c.HTTP.DiscoverRate < 0 {
		bad("http.discover_rate", "%v: want a positive rate per second (default %d)", c.HTTP.DiscoverRate, httpboot.DefaultDiscoverRate)
	}
	d.limits = httpboot.DiscoverLimits{Interval: c.HTTP.DiscoverInterval, Rate: c.HTTP.DiscoverRate}
}

// discoverInterval is the configured interval or its default (logs).
func (d discoveryWiring) discoverInterval() time.Duration {
	if d.limits.Interval > 0 {
		return d.limits.Interval
	}
	return httpboot.DefaultDiscoverInterval
}
