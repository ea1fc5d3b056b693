package agent

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"osim/controlplane/api"
	"osim/dataplane/dhcp"
	"osim/dataplane/httpboot"
)

var (
	_ httpboot.Discoveries = (*Agent)(nil)
	_ dhcp.PXEObserver     = (*Agent)(nil)
)

// Discover-mode actions after the report (Config.DiscoverThen): the
// installer's osim.discover_then.
const (
	DiscoverPowerOff = "poweroff"
	DiscoverWait     = "wait"
)

// maxArches bounds the MACs whose DHCP arch the agent remembers for
// discovery: a flood of spoofed MACs evicts the oldest, never grows it.
const maxArches = 4096

// discovery is the agent's part of discovery and boot loops: the arch
// unknown MACs announced, the loop tracker, their counters.
type discovery struct {
	arches     archLRU
	loops      *loopTracker
	discovered prometheus.Counter
	bootLoops  prometheus.Counter
}

func newDiscovery(cfg *Config) (*discovery, error) {
	d := &discovery{arches: archLRU{max: maxArches}, loops: newLoopTracker(cfg.BootLoop),
		discovered: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "osim", Subsystem: "agent",
			Name: "discovered_total", Help: "Unknown machines' discovery reports buffered as target.discovered events."}),
		bootLoops: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "osim", Subsystem: "agent",
			Name: "boot_loops_total", Help: "Boot loop episodes raised (boot.loop events): a known target without a live order netbooted more than BootLoop.Boots times within BootLoop.Window."}),
	}
	if cfg.Registry != nil {
		for _, c := range []prometheus.Collector{d.discovered, d.bootLoops} {
			if err := cfg.Registry.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// ObservePXE is the dhcp.PXEObserver: it remembers the arch an unknown
// machine announced (under discovery), and counts known targets'
// netboots answered with the local disk (bootloop.go).
func (l *localView) ObservePXE(c dhcp.Client, d dhcp.Decision, err error) {
	mac := c.MAC.String()
	switch {
	case errors.Is(err, dhcp.ErrUnknownMAC) || (err == nil && d.Unknown):
		if l.cfg.Unknown == dhcp.ActionDiscovery {
			l.disc.arches.put(mac, c.Arch.Canonical().String())
		}
	case err != nil:
	case d.Action == dhcp.ActionBootLocal:
		l.netbootLocal(mac)
	default:
		// A live order (or a pending one): whatever loop there was is over.
		l.disc.loops.forget(mac)
	}
}

// discoveryNBPs are the NBPs unknown machines get under discovery: the
// discovery image's, or the boot server's own when it has none. The map
// is shared: callers read it only.
func (l *localView) discoveryNBPs() map[dhcp.Arch]string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if nbp, ok := l.v.nbps[l.cfg.DiscoveryImage]; ok && l.cfg.DiscoveryImage != "" && len(nbp) > 0 {
		return nbp
	}
	return l.cfg.DefaultBootFiles
}

// discoveryBoot is the script of an unknown MAC: the discovery image's
// kernel and initrds with its command line plus the osim.* keys of
// discover mode; ErrUnknownTarget when discovery is off or the image is
// not in the view.
func (l *localView) discoveryBoot(mac string) (httpboot.Boot, error) {
	id := l.cfg.DiscoveryImage
	if l.cfg.Unknown != dhcp.ActionDiscovery || id == "" {
		return httpboot.Boot{}, fmt.Errorf("%w: %s", httpboot.ErrUnknownTarget, mac)
	}
	l.mu.RLock()
	img, ok := l.v.images[id]
	l.mu.RUnlock()
	if !ok {
		return httpboot.Boot{}, fmt.Errorf("%w: %s: discovery image %q is not in the local view", httpboot.ErrUnknownTarget, mac, id)
	}
	then := l.cfg.DiscoverThen
	if then == "" {
		then = DiscoverPowerOff
	}
	b := httpboot.Boot{Params: maps.Clone(img.Defaults),
		Cmdline: img.Cmdline + " osim.mode=discover osim.url={{.BaseURL}} osim.mac={{.MAC}} osim.discover_then=" + then}
	for _, f := range img.Files {
		switch f.Role {
		case api.RoleKernel:
			if b.Kernel == "" {
				b.Kernel = fileName(img.ID, f.Name)
			}
		case api.RoleInitrd:
			b.Initrds = append(b.Initrds, fileName(img.ID, f.Name))
		}
	}
	if b.Kernel == "" {
		return httpboot.Boot{}, fmt.Errorf("agent: discovery image %s has no kernel file", img.ID)
	}
	return b, nil
}

// Discovered is the httpboot.Discoveries: a target.discovered event with
// the machine's facts and the arch it announced in DHCP (or, when this
// boot server has no record of it, the one the installer reported);
// ErrKnownTarget for a MAC of the view.
func (l *localView) Discovered(_ context.Context, d httpboot.Discovery) error {
	mac := d.MAC.String()
	l.mu.RLock()
	_, known := l.v.byMAC[mac]
	l.mu.RUnlock()
	if known {
		return fmt.Errorf("%w: %s", httpboot.ErrKnownTarget, mac)
	}
	data := maps.Clone(d.Facts)
	if data == nil {
		data = map[string]string{}
	}
	delete(data, api.DataDHCPArch)
	if arch, ok := l.disc.arches.get(mac); ok && api.ValidArch(arch) {
		data[api.DataDHCPArch] = arch
	} else if api.ValidArch(d.Arch) {
		data[api.DataDHCPArch] = d.Arch
	}
	ev := api.Event{Type: api.EventTargetDiscovered, Time: d.Received, MAC: mac, Data: data,
		Message: "reported from " + d.Client}
	if err := l.q.Emit(ev); err != nil {
		return err
	}
	l.disc.discovered.Inc()
	l.log.Info("machine discovered", "mac", mac, "arch", data[api.DataDHCPArch], "facts", len(d.Facts), "client", d.Client)
	return nil
}

// archLRU remembers the last arch of at most max MACs.
type archLRU struct {
	max int

	mu    sync.Mutex
	order list.List // of *archEntry, most recent first
	byMAC map[string]*list.Element
}

type archEntry struct{ mac, arch string }

func (a *archLRU) put(mac, arch string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byMAC == nil {
		a.byMAC = map[string]*list.Element{}
	}
	if e, ok := a.byMAC[mac]; ok {
		e.Value.(*archEntry).arch = arch
		a.order.MoveToFront(e)
		return
	}
	a.byMAC[mac] = a.order.PushFront(&archEntry{mac: mac, arch: arch})
	for a.order.Len() > a.max {
		e := a.order.Back()
		a.order.Remove(e)
		delete(a.byMAC, e.Value.(*archEntry).mac)
	}
}

func (a *archLRU) get(mac string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.byMAC[mac]
	if !ok {
		return "", false
	}
	return e.Value.(*archEntry).arch, true
}
