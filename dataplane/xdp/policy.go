package xdp

import (
	"context"
	"log/slog"
	"net"
	"time"

	"osim/internal/clock"
)

// PolicySource is where the MAC policy comes from: the boot server's
// local store (controlplane/agent implements it; this package does not
// import it).
type PolicySource interface {
	// LiveMACs are the MACs of the targets this boot server knows: the
	// allow list.
	LiveMACs() []net.HardwareAddr
	// PolicyChanged returns a channel that receives (or is closed) when
	// the lists may have changed since the call.
	PolicyChanged() <-chan struct{}
}

// DenySource is a PolicySource that also keeps a deny list.
type DenySource interface {
	DeniedMACs() []net.HardwareAddr
}

// PolicySetter is what KeepPolicy updates: a Program or a Classifier.
type PolicySetter interface {
	SetPolicy(allow, deny []net.HardwareAddr) error
}

// ResyncEvery is how often KeepPolicy rereads the lists without a change signal.
const ResyncEvery = 30 * time.Second

// KeepPolicy copies src's lists into dst now, after every change signal
// (at once: within 1 s of a change) and every ResyncEvery on clk (nil:
// the real clock), until ctx is done.
func KeepPolicy(ctx context.Context, src PolicySource, dst PolicySetter, clk clock.Clock, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "xdp")
	t, tick := clock.Or(clk).NewTicker(ResyncEvery)
	defer t.Stop()
	for {
		changed := src.PolicyChanged() // before reading: a change during the read is not lost
		allow := src.LiveMACs()
		var deny []net.HardwareAddr
		if d, ok := src.(DenySource); ok {
			deny = d.DeniedMACs()
		}
		if err := dst.SetPolicy(allow, deny); err != nil {
			log.Error("policy update", "allow", len(allow), "deny", len(deny), "err", err)
		} else {
			log.Debug("policy updated", "allow", len(allow), "deny", len(deny))
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick:
		}
	}
}
