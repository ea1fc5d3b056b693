package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"osim/internal/clock"
)

// MaxPacket is the largest datagram Handle decodes: a 1500-byte Ethernet
// MTU minus IPv4 and UDP headers. Anything larger is dropped unread.
const MaxPacket = 1500 - 20 - 8

// Handler runs one received datagram through IsPXE, decode, Inspect, the
// backend and Decide, and keeps the metrics. It holds no socket.
type Handler struct {
	Backend  Backend
	ServerIP net.IP // our address on the provisioning interface
	Metrics  *Metrics
	Log      *slog.Logger  // nil: slog.Default()
	Clock    clock.Clock   // times the replies' latency; nil: the system clock
	Timeout  time.Duration // bound on one backend lookup; 0: 2 s
	// Mode is proxy (default) or full; in full mode Full hands out the
	// addresses of DHCP on port 67 (port 4011 is answered as in proxy mode).
	Mode Mode
	Full *Full
	// URLs builds the script and HTTP boot URLs of replies (httpboot.URLs).
	URLs URLs

	logOnce sync.Once
	logger  *slog.Logger
}

// Result is what Handle made of a datagram.
type Result struct {
	Request *dhcpv4.DHCPv4 // nil if the datagram was not decoded
	Reply   *dhcpv4.DHCPv4 // nil: stay silent
	Bytes   []byte         // Reply encoded
	Class   Class          // ClassOther unless Inspect accepted the request
	Outcome Outcome
}

// Handle answers raw, received on port at time received.
func (h *Handler) Handle(ctx context.Context, raw []byte, port int, received time.Time) Result {
	r := h.handle(ctx, raw, port)
	if h.Metrics != nil {
		var typ dhcpv4.MessageType // 0: not decoded, "unknown"
		action := "drop"
		if r.Request != nil {
			typ = r.Request.MessageType()
		}
		if r.Reply != nil {
			action = "offer"
			switch r.Reply.MessageType() {
			case dhcpv4.MessageTypeAck:
				action = "ack"
			case dhcpv4.MessageTypeNak:
				action = "nak"
			}
		}
		h.Metrics.count(typ, r.Class, action, r.Outcome)
		if r.Reply != nil {
			h.Metrics.latency.Observe(h.now().Sub(received).Seconds())
		}
	}
	return r
}

func (h *Handler) handle(ctx context.Context, raw []byte, port int) Result {
	switch {
	case len(raw) > MaxPacket:
		return Result{Outcome: OutcomeOversized}
	case len(raw) <= optionsStart:
		return Result{Outcome: OutcomeTruncated}
	case !h.full(port) && !IsPXE(raw):
		return Result{Outcome: OutcomeNotPXE}
	}
	req, err := dhcpv4.FromBytes(raw)
	if err != nil {
		h.log().Debug("undecodable PXE packet", "port", port, "len", len(raw), "err", err)
		return Result{Outcome: OutcomeMalformed}
	}
	in := Inbound{ServerIP: h.ServerIP, Port: port, URLs: h.URLs}
	if h.full(port) {
		return h.handleFull(ctx, req, in)
	}
	c, o := Inspect(req, in)
	if o != "" {
		return Result{Request: req, Outcome: o}
	}
	d, err := h.lookup(ctx, c)
	reply, o := Decide(req, in, c, d, err)
	r := Result{Request: req, Reply: reply, Class: c.Class, Outcome: o}
	if reply != nil {
		r.Bytes = reply.ToBytes()
	}
	// The arguments cost a String each: build them only when debug is on.
	if log := h.log(); log.Enabled(ctx, slog.LevelDebug) {
		file := ""
		if reply != nil {
			file = reply.BootFileNameOption()
		}
		log.Debug("decision", "mac", c.MAC.String(), "xid", req.TransactionID.String(),
			"arch", c.Arch.String(), "class", c.Class.String(), "port", port, "outcome", string(o), "file", file)
	}
	return r
}

// lookup asks the backend about c, bounded by Timeout.
func (h *Handler) lookup(ctx context.Context, c Client) (Decision, error) {
	if h.Backend == nil { // full mode may run without one: addresses only
		return Decision{}, fmt.Errorf("dhcp: %s: no backend: %w", c.MAC, ErrUnknownMAC)
	}
	timeout := h.Timeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	lctx, cancel := context.WithTimeout(ctx, timeout)
	d, err := h.Backend.Lookup(lctx, c.MAC, c.Arch)
	cancel()
	h.observe(c, d, err)
	if err != nil && !errors.Is(err, ErrUnknownMAC) {
		h.log().Debug("backend lookup", "mac", c.MAC.String(), "arch", c.Arch.String(), "err", err)
	}
	return d, err
}

// log is Log (or slog.Default) with component=dhcp, made once: it is
// called per packet.
func (h *Handler) log() *slog.Logger {
	h.logOnce.Do(func() {
		l := h.Log
		if l == nil {
			l = slog.Default()
		}
		h.logger = l.With("component", "dhcp")
	})
	return h.logger
}

func (h *Handler) now() time.Time {
	if h.Clock != nil {
		return h.Clock.Now()
	}
	return time.Now()
}
