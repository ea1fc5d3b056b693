package xdp

import (
	"net"
	"testing"
	"time"

	"osim/internal/clock"
	"osim/internal/testlab"
)

func load(t testing.TB, cfg Config) *Program {
	t.Helper()
	testlab.RequireRoot(t, "loading the XDP program: CAP_BPF, CAP_NET_ADMIN")
	p, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// twins are the BPF program and the Go classifier with one config and
// one clock, stepped together.
type twins struct {
	bpf   *Program
	user  *Classifier
	clock *clock.Fake
}

func newTwins(t *testing.T, cfg Config) *twins {
	tw := &twins{bpf: load(t, cfg), clock: clock.NewFake(time.Unix(1_800_000_000, 0))}
	u, err := NewClassifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u.Clock = tw.clock
	tw.user = u
	tw.tick(0)
	return tw
}

func (tw *twins) tick(d time.Duration) {
	tw.clock.Step(d)
	if err := tw.bpf.setClock(uint64(tw.clock.Now().UnixNano())); err != nil {
		panic(err)
	}
}

func (tw *twins) setPolicy(t *testing.T, allow, deny []net.HardwareAddr) {
	t.Helper()
	if err := tw.bpf.SetPolicy(allow, deny); err != nil {
		t.Fatal(err)
	}
	if err := tw.user.SetPolicy(allow, deny); err != nil {
		t.Fatal(err)
	}
}

// run sends f through both and fails the test if they disagree.
func (tw *twins) run(t *testing.T, name string, f []byte) (Class, Verdict) {
	t.Helper()
	bc, bv, err := tw.bpf.Test(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	gc, gv := tw.user.Frame(f)
	if bc != gc || bv != gv {
		t.Errorf("%s: BPF says %s/%s, Go says %s/%s", name, bc, bv, gc, gv)
	}
	return bc, bv
}

// TestParityWithBPF runs the whole class table through BPF_PROG_TEST_RUN
// and the Go classifier, under several policies.
func TestParityWithBPF(t *testing.T) {
	for _, pc := range []struct {
		name string
		cfg  func(*Config)
	}{
		{"pass all, no limits", func(c *Config) { c.Unknown, c.Rate = UnknownPass, 0 }},
		{"discovery, limits", func(c *Config) {}},
		{"unknown dropped", func(c *Config) { c.Unknown = UnknownDrop }},
		{"other DHCP and TFTP data dropped", func(c *Config) {
			c.Actions[ClassDHCP], c.Actions[ClassTFTPData] = ActionDrop, ActionDrop
		}},
	} {
		t.Run(pc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Ports = testPorts
			pc.cfg(&cfg)
			tw := newTwins(t, cfg)
			tw.setPolicy(t, nil, []net.HardwareAddr{macB})
			for _, tc := range classTable(t) {
				c, _ := tw.run(t, tc.name, tc.frame)
				if c != tc.class {
					t.Errorf("%s: class %s, want %s", tc.name, c, tc.class)
				}
				tw.tick(time.Second)
			}
		})
	}
}

func TestBPFVerdicts(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Ports = testPorts
	cfg.Unknown = UnknownDiscovery
	tw := newTwins(t, cfg)
	denied := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0xdd}
	tw.setPolicy(t, []net.HardwareAddr{macA}, []net.HardwareAddr{denied})
	for _, tc := range []struct {
		name string
		f    []byte
		v    Verdict
	}{
		{"allowed PXE", frame(bootp(macA, vendor("PXEClient"), end()), 67, nil, nil), VerdictPass},
		{"allowed plain DHCP", frame(bootp(macA, msgType(3), end()), 67, nil, nil), VerdictPass},
		{"denied PXE", frame(bootp(denied, vendor("PXEClient"), end()), 67, nil, nil), VerdictDropDeny},
		{"unknown PXE in discovery", frame(bootp(macB, vendor("PXEClient"), end()), 67, nil, nil), VerdictPass},
		{"unknown plain DHCP in discovery", frame(bootp(macB, msgType(1), end()), 67, nil, nil), VerdictDropUnknown},
		{"unknown proxyDHCP in discovery", frame(bootp(macB, vendor("PXEClient"), end()), 4011, nil, nil), VerdictPass},
		{"TFTP passes", frame([]byte("\x00\x01f\x00octet\x00"), 69, nil, nil), VerdictPass},
	} {
		if _, v := tw.run(t, tc.name, tc.f); v != tc.v {
			t.Errorf("%s: %s, want %s", tc.name, v, tc.v)
		}
	}
	if err := tw.bpf.SetUnknown(UnknownDrop); err != nil {
		t.Fatal(err)
	}
	tw.user.SetUnknown(UnknownDrop)
	tw.tick(0)
	if _, v := tw.run(t, "unknown PXE, unknown dropped", frame(bootp(macB, vendor("PXEClient"), end()), 67, nil, nil)); v != VerdictDropUnknown {
		t.Errorf("unknown PXE with unknown=drop: %s", v)
	}
	// The policy map follows SetPolicy: macA moves to the deny list.
	tw.setPolicy(t, nil, []net.HardwareAddr{macA})
	if _, v := tw.run(t, "allowed then denied", frame(bootp(macA, vendor("PXEClient"), end()), 67, nil, nil)); v != VerdictDropDeny {
		t.Errorf("macA after moving to the deny list: %s", v)
	}
	if a, d := tw.bpf.policySizes(); a != 0 || d != 1 {
		t.Errorf("policy map holds %d allowed, %d denied; want 0, 1", a, d)
	}
}

// TestTokenBucketAndAdmission steps an injected clock (the config map's
// clock in BPF, Classifier.Now in Go) through one scenario on both.
func TestTokenBucketAndAdmission(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Unknown = UnknownPass
	cfg.Rate, cfg.Burst = 2, 3
	cfg.AdmitRate, cfg.AdmitBurst = 1, 2
	tw := newTwins(t, cfg)
	real := net.HardwareAddr{0x52, 0x54, 0, 0x99, 0, 1}
	tw.setPolicy(t, []net.HardwareAddr{real}, nil)
	disc := func(mac net.HardwareAddr) []byte {
		return frame(bootp(mac, msgType(1), vendor("PXEClient"), end()), 67, nil, nil)
	}
	rnd := func(i int) net.HardwareAddr { return net.HardwareAddr{0x02, 0, 0, 0, byte(i >> 8), byte(i)} }
	expect := func(name string, f []byte, want Verdict) {
		t.Helper()
		if _, v := tw.run(t, name, f); v != want {
			t.Errorf("%s: %s, want %s", name, v, want)
		}
	}
	// A client's burst, then its rate.
	for i := range 3 {
		expect("real client burst", disc(real), VerdictPass)
		_ = i
	}
	expect("real client over burst", disc(real), VerdictDropRate)
	tw.tick(499 * time.Millisecond)
	expect("real client before a token", disc(real), VerdictDropRate)
	tw.tick(time.Millisecond)
	expect("real client after 500 ms", disc(real), VerdictPass)
	expect("real client again", disc(real), VerdictDropRate)
	// New unknown clients: admission burst 2, then 1 per second.
	expect("new client 1", disc(rnd(1)), VerdictPass)
	expect("new client 2", disc(rnd(2)), VerdictPass)
	for i := 3; i < 50; i++ {
		expect("flood client", disc(rnd(i)), VerdictDropAdmission)
	}
	expect("admitted client keeps its bucket", disc(rnd(1)), VerdictPass)
	// An allowed client is admitted whatever the flood.
	other := net.HardwareAddr{0x52, 0x54, 0, 0x99, 0, 2}
	tw.setPolicy(t, []net.HardwareAddr{real, other}, nil)
	expect("allowed new client during flood", disc(other), VerdictPass)
	tw.tick(time.Second)
	expect("one admission per second", disc(rnd(100)), VerdictPass)
	expect("and no more", disc(rnd(101)), VerdictDropAdmission)
	// Refill is capped at the burst.
	tw.tick(time.Hour)
	for range 3 {
		expect("after an hour: the burst", disc(real), VerdictPass)
	}
	expect("after an hour: not more", disc(real), VerdictDropRate)
}

// TestPolicyCachedInBucket: the BPF program keeps a client's policy in its
// bucket entry, tagged with the config's policy generation; every SetPolicy
// must still show at once, whichever list the client moves to.
func TestPolicyCachedInBucket(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Ports = testPorts
	cfg.Rate, cfg.Burst = 1000, 1000
	tw := newTwins(t, cfg)
	plain := frame(bootp(macA, msgType(3), end()), 67, nil, nil)
	pxe := frame(bootp(macA, vendor("PXEClient"), end()), 67, nil, nil)
	for i, step := range []struct {
		allow, deny []net.HardwareAddr
		plain, pxe  Verdict
	}{
		{nil, nil, VerdictDropUnknown, VerdictPass}, // bucket made while unknown
		{[]net.HardwareAddr{macA}, nil, VerdictPass, VerdictPass},
		{nil, []net.HardwareAddr{macA}, VerdictDropDeny, VerdictDropDeny},
		{[]net.HardwareAddr{macB}, nil, VerdictDropUnknown, VerdictPass},
		{[]net.HardwareAddr{macA, macB}, nil, VerdictPass, VerdictPass},
		{[]net.HardwareAddr{macA}, []net.HardwareAddr{macA}, VerdictDropDeny, VerdictDropDeny}, // on both: denied
		{nil, nil, VerdictDropUnknown, VerdictPass},
	} {
		tw.setPolicy(t, step.allow, step.deny)
		for range 2 { // the second time from the bucket's cache
			if _, v := tw.run(t, "plain DHCP", plain); v != step.plain {
				t.Errorf("step %d: plain DHCP %s, want %s", i, v, step.plain)
			}
			if _, v := tw.run(t, "PXE", pxe); v != step.pxe {
				t.Errorf("step %d: PXE %s, want %s", i, v, step.pxe)
			}
		}
		if err := tw.bpf.SetUnknown(UnknownDiscovery); err != nil { // a config write that is not a policy change
			t.Fatal(err)
		}
	}
}
