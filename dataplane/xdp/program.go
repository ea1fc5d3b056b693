package xdp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"osim/bpf"
)

// Modes a Program runs in.
const (
	ModeDriver    = "driver"    // XDP in the NIC driver
	ModeGeneric   = "generic"   // XDP after the driver (skb mode)
	ModeUserspace = "userspace" // no XDP: Classifier guards the DHCP service
	ModeLoaded    = "loaded"    // loaded, not attached (tests, benchmarks)
)

// Program is the XDP program attached to one interface, or, when XDP
// is not available there, the userspace Classifier standing in for it.
// Either way the DHCP service can use it as its dhcp.Guard and the
// metrics registry as a prometheus.Collector.
type Program struct {
	mode  string
	iface string // the interface Attach was asked for ("": Userspace, Load)
	log   *slog.Logger
	cfg   Config

	// BPF (nil in userspace mode)
	objs  *bpf.XdpObjects
	lnk   link.Link
	mu    sync.Mutex        // serializes map updates
	pol   map[[6]byte]uint8 // what the policy map holds
	clock uint64            // the config map's clock_ns: 0 is bpf_ktime_get_coarse_ns (tests set it)
	gen   uint32            // the config map's policy_gen: changes with every write

	user *Classifier // userspace mode
}

// Load loads the BPF program with cfg into the kernel without attaching
// it (needs CAP_BPF): for tests and benchmarks through BPF_PROG_TEST_RUN.
func Load(cfg Config) (*Program, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	spec, err := bpf.LoadXdp()
	if err != nil {
		return nil, fmt.Errorf("xdp: %w", err)
	}
	spec.Maps[bpf.XdpMapBuckets].MaxEntries = uint32(cfg.Clients)
	spec.Maps[bpf.XdpMapPolicy].MaxEntries = uint32(cfg.PolicySize)
	objs := new(bpf.XdpObjects)
	if err := spec.LoadAndAssign(objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("xdp: load: %+v", ve)
		}
		return nil, fmt.Errorf("xdp: load: %w", err)
	}
	p := &Program{mode: ModeLoaded, log: slog.Default(), cfg: cfg, objs: objs, pol: map[[6]byte]uint8{}}
	if err := p.writeConfig(); err != nil {
		objs.Close()
		return nil, err
	}
	return p, nil
}

// Userspace returns a Program in userspace mode without trying XDP: the
// Classifier guards the DHCP service (for a boot server told not to use
// XDP, or one without the privileges).
func Userspace(cfg Config, log *slog.Logger) (*Program, error) {
	if log == nil {
		log = slog.Default()
	}
	c, err := NewClassifier(cfg)
	if err != nil {
		return nil, err
	}
	return &Program{mode: ModeUserspace, log: log.With("component", "xdp"), cfg: cfg, user: c}, nil
}

// Attach loads the program and attaches it to ifname in driver mode, else
// in generic mode. If neither works (no CAP_BPF, no such interface, an old
// kernel), it logs why once, at warn, and returns a Program in userspace
// mode: the Classifier then does the same job inside the DHCP service. An
// error is returned only for a bad cfg.
func Attach(ifname string, cfg Config, log *slog.Logger) (*Program, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	fallback := func(why error) (*Program, error) {
		log.Warn("not attached, the userspace classifier guards the DHCP service instead",
			"interface", ifname, "err", why)
		p, err := Userspace(cfg, log)
		if p != nil {
			p.iface = ifname
		}
		return p, err
	}
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return fallback(err)
	}
	p, err := Load(cfg)
	if err != nil {
		return fallback(err)
	}
	p.log = log.With("component", "xdp")
	var errs []error
	for _, m := range []struct {
		name  string
		flags link.XDPAttachFlags
	}{{ModeDriver, link.XDPDriverMode}, {ModeGeneric, link.XDPGenericMode}} {
		l, err := link.AttachXDP(link.XDPOptions{Program: p.objs.XdpPxe, Interface: ifc.Index, Flags: m.flags})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s mode: %w", m.name, err))
			continue
		}
		p.lnk, p.mode, p.iface = l, m.name, ifname
		log.Info("attached", "interface", ifname, "mode", m.name)
		return p, nil
	}
	p.objs.Close()
	return fallback(errors.Join(errs...))
}

// Mode is ModeDriver, ModeGeneric, ModeUserspace or ModeLoaded.
func (p *Program) Mode() string { return p.mode }

// Attached reports whether the program is on the interface Attach was
// asked for: false when it fell back to userspace, and false once the
// kernel detached the link since (the interface went away, `bpftool link
// detach`): the link then names no interface.
func (p *Program) Attached() bool {
	if p.lnk == nil {
		return false
	}
	info, err := p.lnk.Info()
	if err != nil {
		return false
	}
	x := info.XDP()
	return x != nil && x.Ifindex != 0
}

// Close detaches the program and frees its maps.
func (p *Program) Close() error {
	if p.objs == nil {
		return nil
	}
	var errs []error
	if p.lnk != nil {
		errs = append(errs, p.lnk.Close())
	}
	errs = append(errs, p.objs.Close())
	return errors.Join(errs...)
}

// Admit is the dhcp.Guard of the DHCP service: with XDP attached the
// kernel already judged the datagram and Admit passes it; in userspace
// mode the Classifier judges it here (port: 67 or 4011, as the service
// names its sockets).
func (p *Program) Admit(raw []byte, port int) bool {
	if p.user == nil {
		return true
	}
	dport := p.cfg.Ports.DHCP
	if port == 4011 {
		dport = p.cfg.Ports.Proxy
	}
	_, v := p.user.Datagram(raw, dport)
	return v == VerdictPass
}

// SetPolicy replaces the allow and deny lists (a MAC on both is denied).
func (p *Program) SetPolicy(allow, deny []net.HardwareAddr) error {
	if p.user != nil {
		return p.user.SetPolicy(allow, deny)
	}
	want, err := policyMap(allow, deny, p.cfg.PolicySize)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// While entries change, the program must look them up: policy_n is
	// raised before and set to the final count after.
	if len(want) > 0 && len(p.pol) == 0 {
		if err := p.putConfig(1); err != nil {
			return err
		}
	}
	for k, v := range p.pol {
		if _, ok := want[k]; !ok {
			if err := p.objs.Policy.Delete(bpf.XdpMacKey{Mac: k}); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("xdp: policy: delete %s: %w", net.HardwareAddr(k[:]), err)
			}
			delete(p.pol, k)
		} else if want[k] == v {
			delete(want, k)
		}
	}
	for k, v := range want {
		if err := p.objs.Policy.Put(bpf.XdpMacKey{Mac: k}, v); err != nil {
			return fmt.Errorf("xdp: policy: put %s: %w", net.HardwareAddr(k[:]), err)
		}
		p.pol[k] = v
	}
	return p.putConfig(len(p.pol))
}

// SetUnknown changes the policy for clients on neither list.
func (p *Program) SetUnknown(u Unknown) error {
	if p.user != nil {
		return p.user.SetUnknown(u)
	}
	if err := u.check(); err != nil {
		return err
	}
	p.mu.Lock()
	p.cfg.Unknown = u
	p.mu.Unlock()
	return p.writeConfig()
}

// setClock sets the program's clock (ns; 0: the kernel's). For tests.
func (p *Program) setClock(ns uint64) error {
	p.mu.Lock()
	p.clock = ns
	p.mu.Unlock()
	return p.writeConfig()
}

// writeConfig puts p.cfg into the config map.
func (p *Program) writeConfig() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.putConfig(len(p.pol))
}

// putConfig writes the config map with policyN as the policy map's size,
// and a new policy_gen: the program's clients re-read their policy from the
// policy map (they keep it in their bucket entry, tagged with policy_gen).
// Every change of the policy map is followed by a putConfig. p.mu held.
func (p *Program) putConfig(policyN int) error {
	p.gen++
	c := bpf.XdpConfig{PolicyGen: p.gen,
		Unknown: uint8(p.cfg.Unknown), DhcpPort: p.cfg.Ports.DHCP, ProxyPort: p.cfg.Ports.Proxy,
		TftpPort: p.cfg.Ports.TFTP, TftpLo: p.cfg.Ports.TFTPLow, TftpHi: p.cfg.Ports.TFTPHigh,
		Rate: p.cfg.Rate, Burst: p.cfg.Burst, AdmitRate: p.cfg.AdmitRate, AdmitBurst: p.cfg.AdmitBurst, ClockNs: p.clock,
		JiffyNs: jiffyNanos(),
		PolicyN: uint32(policyN),
	}
	for i, a := range p.cfg.Actions {
		c.Action[i] = uint8(a)
	}
	if err := p.objs.ConfigMap.Put(uint32(0), c); err != nil {
		return fmt.Errorf("xdp: config map: %w", err)
	}
	return nil
}

// Counts returns packets and bytes per class and verdict, summed over CPUs.
func (p *Program) Counts() (packets, bytes [NumClasses][NumVerdicts]uint64, err error) {
	if p.user != nil {
		packets, bytes = p.user.Counts()
		return packets, bytes, nil
	}
	var per []bpf.XdpCounter
	for c := range NumClasses {
		for v := range NumVerdicts {
			if err := p.objs.Counters.Lookup(uint32(int(c)*int(NumVerdicts)+int(v)), &per); err != nil {
				return packets, bytes, fmt.Errorf("xdp: counters: %w", err)
			}
			for _, x := range per {
				packets[c][v] += x.Packets
				bytes[c][v] += x.Bytes
			}
		}
	}
	return packets, bytes, nil
}

func (p *Program) policySizes() (allow, deny int) {
	if p.user != nil {
		return p.user.policySizes()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return countPolicy(p.pol)
}

// Test runs frame through the loaded program once (BPF_PROG_TEST_RUN) and
// tells its class and verdict, read off the counters. For tests; not
// safe to use concurrently with traffic or another Test.
func (p *Program) Test(frame []byte) (Class, Verdict, error) {
	if p.objs == nil {
		return 0, 0, errors.New("xdp: no BPF program (userspace mode)")
	}
	before, _, err := p.Counts()
	if err != nil {
		return 0, 0, err
	}
	ret, err := p.objs.XdpPxe.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		return 0, 0, fmt.Errorf("xdp: test run: %w", err)
	}
	after, _, err := p.Counts()
	if err != nil {
		return 0, 0, err
	}
	for c := range NumClasses {
		for v := range NumVerdicts {
			if after[c][v] != before[c][v] {
				if pass := v == VerdictPass; pass != (ret == 2) { // XDP_PASS
					return c, v, fmt.Errorf("xdp: verdict %s but XDP action %d", v, ret)
				}
				return c, v, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("xdp: test run counted nothing (action %d)", ret)
}

// Benchmark runs frame repeat times through the loaded program and returns
// the kernel's mean time per run.
func (p *Program) Benchmark(frame []byte, repeat int) (time.Duration, error) {
	if p.objs == nil {
		return 0, errors.New("xdp: no BPF program (userspace mode)")
	}
	_, d, err := p.objs.XdpPxe.Benchmark(slices.Clone(frame), repeat, nil)
	return d, err
}
