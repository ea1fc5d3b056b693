package dhcp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"osim/internal/clock"
)

func newTestHandler(b Backend) (*Handler, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	now := time.Unix(1000, 0)
	return &Handler{
		Backend:  b,
		ServerIP: serverIP,
		URLs:     urls,
		Metrics:  NewMetrics(reg),
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Clock:    clock.NewFake(now.Add(3 * time.Millisecond)),
	}, reg
}

func TestHandlerCountsEveryPacketOnce(t *testing.T) {
	h, reg := newTestHandler(fakeBackend{d: bootImage})
	received := time.Unix(1000, 0)
	pxe := pxeRequest(t, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64).ToBytes()
	ipxe := pxeRequest(t, dhcpv4.MessageTypeRequest, pxeX64, ArchEFIx64, dhcpv4.WithUserClass("iPXE", false)).ToBytes()
	plain := pxeRequest(t, dhcpv4.MessageTypeDiscover, "MSFT 5.0", ArchBIOS).ToBytes()
	noEnd := pxe[:len(pxe)-1]
	for i := len(noEnd) - 1; noEnd[i] == 0; i-- { // drop padding so the end option really goes
		noEnd = noEnd[:i]
	}
	noEnd = noEnd[:len(noEnd)-1]

	steps := []struct {
		raw     []byte
		port    int
		outcome Outcome
	}{
		{pxe, PortDHCP, OutcomeBootImage},
		{ipxe, PortBootServer, OutcomeBootImage},
		{plain, PortDHCP, OutcomeNotPXE},
		{pxe[:200], PortDHCP, OutcomeTruncated},
		{make([]byte, MaxPacket+1), PortDHCP, OutcomeOversized},
		{noEnd, PortDHCP, OutcomeMalformed},
		{pxe, PortBootServer, OutcomeNotOurs},
	}
	for i, s := range steps {
		r := h.Handle(context.Background(), s.raw, s.port, received)
		if r.Outcome != s.outcome {
			t.Fatalf("step %d: outcome %q, want %q", i, r.Outcome, s.outcome)
		}
		if (r.Bytes != nil) != s.outcome.Replied() {
			t.Fatalf("step %d: reply bytes %d for outcome %q", i, len(r.Bytes), r.Outcome)
		}
	}
	// Only the label sets seen are exposed (looked up below, they would be made).
	if n, m := testutil.CollectAndCount(h.Metrics.packets), testutil.CollectAndCount(h.Metrics.decisions); n != 4 || m != 6 {
		t.Errorf("%d packets series and %d decisions series, want 4 and 6", n, m)
	}
	want := map[[3]string]float64{
		{"discover", "pxe", "offer"}:  1,
		{"request", "ipxe", "ack"}:    1,
		{"unknown", "other", "drop"}:  4, // not_pxe, truncated, oversized, malformed: never decoded
		{"discover", "other", "drop"}: 1, // decoded, refused by Inspect (DISCOVER on 4011)
	}
	for l, v := range want {
		if got := testutil.ToFloat64(h.Metrics.packets.WithLabelValues(l[0], l[1], l[2])); got != v {
			t.Errorf("packets%v = %v, want %v", l, got, v)
		}
	}
	for _, o := range []Outcome{OutcomeNotPXE, OutcomeTruncated, OutcomeOversized, OutcomeMalformed, OutcomeNotOurs} {
		if got := testutil.ToFloat64(h.Metrics.decisions.WithLabelValues(string(o))); got != 1 {
			t.Errorf("decisions{%s} = %v, want 1", o, got)
		}
	}
	if got := testutil.ToFloat64(h.Metrics.decisions.WithLabelValues(string(OutcomeBootImage))); got != 2 {
		t.Errorf("decisions{boot_image} = %v, want 2", got)
	}
	n, err := testutil.GatherAndCount(reg, "osim_dhcp_reply_latency_seconds")
	if err != nil || n != 1 {
		t.Fatalf("latency series %d, %v", n, err)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "osim_dhcp_reply_latency_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != 2 || h.GetSampleSum() < 0.0059 || h.GetSampleSum() > 0.0061 {
				t.Errorf("latency: %d samples summing %v, want 2 of 3ms", h.GetSampleCount(), h.GetSampleSum())
			}
		}
	}
}

func TestHandlerBoundsTheBackendLookup(t *testing.T) {
	h, _ := newTestHandler(blockingBackend{})
	h.Timeout = 10 * time.Millisecond
	r := h.Handle(context.Background(), pxeRequest(t, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64).ToBytes(), PortDHCP, time.Now())
	if r.Outcome != OutcomeBackendError {
		t.Fatalf("outcome %q", r.Outcome)
	}
}

type blockingBackend struct{}

func (blockingBackend) Lookup(ctx context.Context, _ net.HardwareAddr, _ Arch) (Decision, error) {
	<-ctx.Done()
	return Decision{}, ctx.Err()
}
