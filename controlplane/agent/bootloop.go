package agent

import (
	"strconv"
	"sync"
	"time"

	"osim/controlplane/api"
)

// BootLoopConfig says when a target loops: more than Boots network boots
// within Window while it has no live order. Zero fields: the defaults.
//
// What counts as a network boot is a DHCP request from a network boot
// client (PXE firmware, iPXE) of a known target that the agent answers
// with the local disk. Not the iPXE script fetch: a target without an
// order gets silence from DHCP (its firmware falls through to the disk),
// so it never loads iPXE nor asks for a script; its DHCP request is the
// one sign that it netbooted again. The firmware retries its DISCOVER
// for about a minute (PXE 2.1: 4 retries, 4+8+16+32 s) before it gives
// up: requests within Gap of a boot's first one are that same boot.
type BootLoopConfig struct {
	Boots  int           // default 5
	Window time.Duration // default 30 min
	Gap    time.Duration // default 1 min
}

// The defaults of BootLoopConfig.
const (
	DefaultLoopBoots  = 5
	DefaultLoopWindow = 30 * time.Minute
	DefaultLoopGap    = time.Minute
)

// maxLoopMACs bounds the MACs tracked; only known targets' MACs are, and
// those idle for a window are swept when it fills.
const maxLoopMACs = 1 << 17

// loopTracker counts netboots per MAC and says when an episode starts:
// the boot that makes more than Boots within Window, once, until the MAC
// has been quiet for a whole Window or got an order.
type loopTracker struct {
	cfg BootLoopConfig

	mu    sync.Mutex
	macs  map[string]*loopState
	swept time.Time
}

type loopState struct {
	start  time.Time   // first request of the current boot
	boots  []time.Time // boot starts within the window, oldest first, at most Boots+1
	raised bool        // this episode's event went out
}

func newLoopTracker(c BootLoopConfig) *loopTracker {
	if c.Boots <= 0 {
		c.Boots = DefaultLoopBoots
	}
	if c.Window <= 0 {
		c.Window = DefaultLoopWindow
	}
	if c.Gap <= 0 {
		c.Gap = DefaultLoopGap
	}
	return &loopTracker{cfg: c, macs: map[string]*loopState{}}
}

// netboot records a request of mac at now; raise is true for the boot
// that starts an episode, with the boots counted in the window.
func (t *loopTracker) netboot(mac string, now time.Time) (raise bool, boots int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.macs[mac]
	if !ok {
		t.sweepLocked(now)
		s = &loopState{}
		t.macs[mac] = s
	}
	if !s.start.IsZero() && now.Sub(s.start) < t.cfg.Gap {
		return false, len(s.boots) // a retry of the same boot
	}
	s.start = now
	keep := s.boots[:0]
	for _, b := range s.boots {
		if now.Sub(b) < t.cfg.Window {
			keep = append(keep, b)
		}
	}
	s.boots = keep
	if len(s.boots) == 0 {
		s.raised = false // quiet for a whole window: a new episode may start
	}
	s.boots = append(s.boots, now)
	if len(s.boots) > t.cfg.Boots+1 {
		s.boots = s.boots[1:]
	}
	if len(s.boots) > t.cfg.Boots && !s.raised {
		s.raised = true
		return true, len(s.boots)
	}
	return false, len(s.boots)
}

// forget ends mac's count: it has an order now.
func (t *loopTracker) forget(mac string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.macs, mac)
}

// sweepLocked drops MACs idle for a window once the map is full (at most
// once per Gap).
func (t *loopTracker) sweepLocked(now time.Time) {
	if len(t.macs) < maxLoopMACs || now.Sub(t.swept) < t.cfg.Gap {
		return
	}
	for m, s := range t.macs {
		if now.Sub(s.start) >= t.cfg.Window {
			delete(t.macs, m)
		}
	}
	t.swept = now
}

// netbootLocal counts a netboot of a known target answered with the
// local disk, and raises boot.loop when it starts an episode.
func (l *localView) netbootLocal(mac string) {
	now := l.clock.Now()
	raise, boots := l.disc.loops.netboot(mac, now)
	if !raise {
		return
	}
	l.mu.RLock()
	t, _, known, _ := l.lookupLocked(mac)
	l.mu.RUnlock()
	if !known {
		return
	}
	cfg := l.disc.loops.cfg
	ev := api.Event{Type: api.EventBootLoop, Time: now, Target: t.ID, MAC: mac,
		Message: strconv.Itoa(boots) + " network boots without an order within " + cfg.Window.String(),
		Data:    map[string]string{"boots": strconv.Itoa(boots), "window": cfg.Window.String()}}
	if err := l.q.Emit(ev); err != nil {
		l.log.Warn("boot.loop not buffered", "mac", mac, "target", t.ID, "err", err)
		return
	}
	l.disc.bootLoops.Inc()
	l.log.Warn("boot loop: the target netboots again and again without an order", "mac", mac, "target", t.ID,
		"hostname", t.Hostname, "boots", boots, "window", cfg.Window.String())
}
