package xdp

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"osim/internal/clock"
)

// store is a PolicySource whose change channel is closed and replaced on
// every change, as a store that broadcasts does.
type store struct {
	mu      sync.Mutex
	live    []net.HardwareAddr
	denied  []net.HardwareAddr
	changed chan struct{}
}

func (s *store) LiveMACs() []net.HardwareAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.live)
}

func (s *store) DeniedMACs() []net.HardwareAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.denied)
}

func (s *store) PolicyChanged() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *store) set(live, denied []net.HardwareAddr) {
	s.mu.Lock()
	s.live, s.denied = live, denied
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// setter passes SetPolicy on to a Classifier and says when it did.
type setter struct {
	*Classifier
	set chan struct{}
}

func (s setter) SetPolicy(allow, deny []net.HardwareAddr) error {
	err := s.Classifier.SetPolicy(allow, deny)
	s.set <- struct{}{}
	return err
}

// keeping runs KeepPolicy from src into a new Classifier until the test
// ends; verdict judges a PXE DISCOVER from mac, waitFor waits (within 1 s)
// for a policy update after which mac gets want.
func keeping(t *testing.T, src PolicySource, clk clock.Clock) (verdict func(net.HardwareAddr) Verdict, waitFor func(string, net.HardwareAddr, Verdict)) {
	cfg := DefaultConfig()
	cfg.Unknown = UnknownDrop
	c, err := NewClassifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dst := setter{c, make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { KeepPolicy(ctx, src, dst, clk, nil); close(done) }()
	t.Cleanup(func() {
		cancel()
		for {
			select {
			case <-done:
				return
			case <-dst.set:
			}
		}
	})
	verdict = func(mac net.HardwareAddr) Verdict {
		_, v := c.Frame(frame(bootp(mac, vendor("PXEClient"), end()), 67, nil, nil))
		return v
	}
	waitFor = func(what string, mac net.HardwareAddr, want Verdict) {
		t.Helper()
		deadline := time.After(time.Second)
		for {
			select {
			case <-dst.set:
			case <-deadline:
				t.Fatalf("%s: not %s within 1 s", what, want)
			}
			if verdict(mac) == want {
				return
			}
		}
	}
	return verdict, waitFor
}

func TestKeepPolicyFollowsTheStoreWithinASecond(t *testing.T) {
	src := &store{live: []net.HardwareAddr{macA}, changed: make(chan struct{})}
	verdict, waitFor := keeping(t, src, clock.NewFake(time.Unix(0, 0))) // no resync: the change signal alone
	waitFor("initial allow list", macA, VerdictPass)
	if v := verdict(macB); v != VerdictDropUnknown {
		t.Fatalf("macB before it is known: %s", v)
	}
	src.set([]net.HardwareAddr{macA, macB}, nil)
	waitFor("macB added", macB, VerdictPass)
	src.set([]net.HardwareAddr{macB}, []net.HardwareAddr{macA})
	waitFor("macA denied", macA, VerdictDropDeny)
}

func TestKeepPolicyRereadsEveryResyncWithoutASignal(t *testing.T) {
	src := &store{live: []net.HardwareAddr{macA}, changed: make(chan struct{})}
	clk := clock.NewFake(time.Unix(0, 0))
	verdict, waitFor := keeping(t, src, clk)
	waitFor("initial allow list", macA, VerdictPass)
	src.mu.Lock()
	src.live = []net.HardwareAddr{macA, macB} // no signal
	src.mu.Unlock()
	if err := clk.WaitPending(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	clk.Step(ResyncEvery - time.Nanosecond)
	if v := verdict(macB); v != VerdictDropUnknown {
		t.Fatalf("macB before the resync: %s", v)
	}
	clk.Step(time.Nanosecond)
	waitFor("macB after the resync", macB, VerdictPass)
}
