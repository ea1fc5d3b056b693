package xdp

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
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

func TestKeepPolicyFollowsTheStoreWithinASecond(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Unknown = UnknownDrop
	c, err := NewClassifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	src := &store{live: []net.HardwareAddr{macA}, changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { KeepPolicy(ctx, src, c, nil); close(done) }()
	defer func() { cancel(); <-done }()

	verdict := func(mac net.HardwareAddr) Verdict {
		_, v := c.Frame(frame(bootp(mac, vendor("PXEClient"), end()), 67, nil, nil))
		return v
	}
	waitFor := func(what string, mac net.HardwareAddr, want Verdict) {
		t.Helper()
		deadline := time.Now().Add(time.Second)
		for verdict(mac) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not %s within 1 s", what, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("initial allow list", macA, VerdictPass)
	if v := verdict(macB); v != VerdictDropUnknown {
		t.Fatalf("macB before it is known: %s", v)
	}
	src.set([]net.HardwareAddr{macA, macB}, nil)
	waitFor("macB added", macB, VerdictPass)
	src.set([]net.HardwareAddr{macB}, []net.HardwareAddr{macA})
	waitFor("macA denied", macA, VerdictDropDeny)
}
