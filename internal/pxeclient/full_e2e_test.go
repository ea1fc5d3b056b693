package pxeclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"

	"osim/dataplane/dhcp"
	"osim/dataplane/httpboot"
	"osim/dataplane/tftp"
	"osim/internal/testlab"
)

// Full-mode end-to-end tests. As in TestPXEBootOverVeth, the outer test
// builds the namespaces and reruns the test binary inside the server
// namespace; here the server namespace holds a bridge (10.99.0.1/24) with
// one veth port per client interface, every client interface lives in the
// client namespace with NO address, and osim is the only DHCP server: each
// client gets its address from the pool and puts it on its interface in
// OnLease.
const (
	envFullRole   = "OSIM_PXECLIENT_FULL_ROLE" // which inner run: boot, restart-1, restart-2, race
	envFullNetns  = "OSIM_PXECLIENT_FULL_CLIENT_NETNS"
	envFullIfs    = "OSIM_PXECLIENT_FULL_CLIENT_IFS" // comma-separated
	envFullDB     = "OSIM_PXECLIENT_FULL_DB"         // Badger directory
	envFullRecord = "OSIM_PXECLIENT_FULL_RECORD"     // file the first restart run writes its lease to
)

type fullNet struct {
	srvNS, cliNS string
	cliIfs       []string
}

// setupFullNet creates the server namespace with a bridge and n veth pairs
// into the client namespace (client ends up, no address). Names carry the
// pid and tag so parallel runs and leftovers never collide.
func setupFullNet(t *testing.T, tag string, n int) fullNet {
	t.Helper()
	what := "the full-mode PXE end-to-end tests (network namespaces, veth, port 67)"
	srv := testlab.NewTestNS(t, "osim-fxs"+tag+"-", what)
	cli := testlab.NewTestNS(t, "osim-fxc"+tag+"-", what)
	pid := os.Getpid()
	fn := fullNet{srvNS: srv.Name, cliNS: cli.Name}
	s := []string{"-n", fn.srvNS}
	c := []string{"-n", fn.cliNS}
	testlab.RunIP(t, append(s, "link", "add", "br0", "type", "bridge")...)
	testlab.RunIP(t, append(s, "addr", "add", serverIP+"/24", "dev", "br0")...)
	testlab.RunIP(t, append(s, "link", "set", "br0", "up")...)
	for i := range n {
		srvIf, cliIf := fmt.Sprintf("fs%d%s%d", pid, tag, i), fmt.Sprintf("fc%d%s%d", pid, tag, i)
		testlab.RunIP(t, "link", "add", srvIf, "netns", fn.srvNS, "type", "veth", "peer", "name", cliIf, "netns", fn.cliNS)
		testlab.RunIP(t, append(s, "link", "set", srvIf, "master", "br0")...)
		testlab.RunIP(t, append(s, "link", "set", srvIf, "up")...)
		testlab.RunIP(t, append(c, "link", "set", cliIf, "up")...)
		fn.cliIfs = append(fn.cliIfs, cliIf)
	}
	return fn
}

// runInner reruns test inside the server namespace in role; extra env is
// appended.
func (fn fullNet) runInner(t *testing.T, test, role string, extra ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	args := []string{"netns", "exec", fn.srvNS, os.Args[0], "-test.run=^" + test + "$", "-test.count=1"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Env = append(os.Environ(), envFullRole+"="+role, envFullNetns+"="+fn.cliNS,
		envFullIfs+"="+strings.Join(fn.cliIfs, ","))
	cmd.Env = append(cmd.Env, extra...)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("%s inside %s (%v):\n%s", role, fn.srvNS, time.Since(t0).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("%s inside %s failed: %v", role, fn.srvNS, err)
	}
}

// fullServer is what one inner run serves: DHCP in full mode over Badger,
// TFTP and HTTP, as in the proxy test.
type fullServer struct {
	backend *recorder
	reg     *prometheus.Registry
	sums    map[string][32]byte
	ns      *Netns
	cliNS   string
	ifs     []string
}

func startFullServer(t *testing.T, ctx context.Context, dbDir string, pool dhcp.PoolConfig, macs ...net.HardwareAddr) *fullServer {
	t.Helper()
	tftpDir, httpDir := t.TempDir(), t.TempDir()
	fs := &fullServer{reg: prometheus.NewRegistry(), cliNS: os.Getenv(envFullNetns), ifs: strings.Split(os.Getenv(envFullIfs), ",")}
	fs.sums = map[string][32]byte{
		"snponly.efi":   randomFile(t, tftpDir, "snponly.efi", 300<<10),
		"undionly.kpxe": randomFile(t, tftpDir, "undionly.kpxe", 300<<10+17),
		"vmlinuz":       randomFile(t, httpDir, "debian/vmlinuz", 2<<20+5),
		"initrd.gz":     randomFile(t, httpDir, "debian/initrd.gz", 1<<20+3),
	}
	var machines []dhcp.FileMachine
	boot := httpboot.Boot{Kernel: "debian/vmlinuz", Initrds: []string{"debian/initrd.gz"}, Cmdline: "console=ttyS0 osim.mac={{.MAC}}"}
	scripts := httpboot.StaticScripts{}
	for _, m := range macs {
		machines = append(machines, dhcp.FileMachine{MAC: m.String(), Action: "boot"})
		scripts[m.String()] = boot
	}
	fileBackend, err := dhcp.NewFileBackend(dhcp.FileConfig{
		BootFiles: map[string]string{"bios": "undionly.kpxe", "efi-x64": "snponly.efi"},
		Unknown:   "ignore",
		Machines:  machines,
	})
	if err != nil {
		t.Fatal(err)
	}
	fs.backend = &recorder{Backend: fileBackend, lookups: map[string][]dhcp.Arch{}}

	pools, err := dhcp.NewPools([]dhcp.PoolConfig{pool})
	if err != nil {
		t.Fatal(err)
	}
	db, err := badger.Open(badger.DefaultOptions(dbDir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithCancel(ctx)
	var served sync.WaitGroup
	// Cleanups run last-in first-out: stop serving, wait, then close Badger.
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close badger: %v", err)
		}
	})
	t.Cleanup(func() { dcancel(); served.Wait() })
	leases, err := dhcp.OpenBadgerLeases(db)
	if err != nil {
		t.Fatal(err)
	}
	dsrv, err := dhcp.NewServer(&dhcp.Handler{
		Backend: fs.backend, ServerIP: net.ParseIP(serverIP), Metrics: dhcp.NewMetrics(fs.reg), URLs: httpboot.URLs{Base: httpBase},
		Mode: dhcp.ModeFull, Full: &dhcp.Full{Pools: pools, Leases: leases},
	}, dhcp.ServerConfig{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	served.Add(1)
	go func() { defer served.Done(); dsrv.Serve(dctx) }()

	serveTFTP(t, dctx, tftpDir, tftp.NewMetrics(prometheus.NewRegistry()))
	serveHTTPBoot(t, httpDir, scripts)

	fs.ns, err = OpenNetns("/run/netns/" + fs.cliNS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fs.ns.Close)
	return fs
}

// flush takes every address off the client interfaces: each boot starts
// as a machine without an address.
func (fs *fullServer) flush(t *testing.T) {
	t.Helper()
	for _, ifc := range fs.ifs {
		testlab.RunIP(t, "-n", fs.cliNS, "addr", "flush", "dev", ifc)
	}
}

// cfg is a client on interface ifc whose OnLease puts the leased address
// on that interface (replace: a second stage ACKs the same address again).
func (fs *fullServer) cfg(fw Firmware, mac net.HardwareAddr, ifc string) Config {
	return Config{Interface: ifc, MAC: mac, Firmware: fw,
		Schedule:    []time.Duration{300 * time.Millisecond, 600 * time.Millisecond, 1200 * time.Millisecond},
		OfferWindow: 200 * time.Millisecond, TFTPTimeout: 500 * time.Millisecond, Do: fs.ns.Do,
		OnLease: func(ack *dhcpv4.DHCPv4) error {
			ones, bits := net.IPMask(ack.SubnetMask()).Size()
			if bits != 32 {
				return fmt.Errorf("ACK without a usable subnet mask: %v", ack.SubnetMask())
			}
			a := fmt.Sprintf("%s/%d", ack.YourIPAddr, ones)
			if out, err := exec.Command("ip", "-n", fs.cliNS, "addr", "replace", a, "dev", ifc).CombinedOutput(); err != nil {
				return fmt.Errorf("ip addr replace %s dev %s: %v: %s", a, ifc, err, out)
			}
			return nil
		}}
}

// checkBoot checks a full-mode boot: every stage one address offer from
// us with the boot answer, one lease for the whole boot, in the pool, and
// every file byte-exact. It returns the lease.
func (fs *fullServer) checkBoot(t *testing.T, r *Result, mac net.HardwareAddr, pool netip.Prefix, stages, files []string) netip.Addr {
	t.Helper()
	script := httpBase + "/ipxe/" + mac.String()
	if len(r.Stages) != len(stages) {
		t.Fatalf("%d DHCP stages, want %d: %+v", len(r.Stages), len(stages), r.Stages)
	}
	lease := r.Stages[0].Lease
	for i, st := range r.Stages {
		want := stages[i]
		if want == "script" {
			want = script
		}
		if st.BootFile != want {
			t.Errorf("stage %d (%s): boot file %q, want %q", i, st.Firmware, st.BootFile, want)
		}
		if len(st.Offers) != 1 || st.Offers[0].Proxy || st.Offers[0].ServerID.String() != serverIP ||
			st.Offers[0].YourIP != st.Lease || st.Offers[0].BootFile != want {
			t.Errorf("stage %d: offers %+v, want one address offer of %v from %s with boot file %q", i, st.Offers, st.Lease, serverIP, want)
		}
		if !st.Lease.IsValid() || !pool.Contains(st.Lease) || st.Lease != lease {
			t.Errorf("stage %d: lease %v, want one address of %v for the whole boot (first %v)", i, st.Lease, pool, lease)
		}
		if st.ProxyACK.IsValid() {
			t.Errorf("stage %d: a 4011 exchange with %v in full mode", i, st.ProxyACK)
		}
		if want := netip.MustParseAddr(serverIP); st.Server != want {
			t.Errorf("stage %d: TFTP server %v, want %v", i, st.Server, want)
		}
	}
	if len(r.Files) != len(files) {
		t.Fatalf("fetched %d files, want %d: %+v", len(r.Files), len(files), r.Files)
	}
	for i, f := range r.Files {
		name := files[i]
		if name == "script" {
			if f.Kind != "script" || f.URL != script {
				t.Errorf("file %d: %s %s, want the script %s", i, f.Kind, f.URL, script)
			}
			continue
		}
		if !strings.HasSuffix(f.URL, "/"+name) {
			t.Errorf("file %d: %s, want %s", i, f.URL, name)
		}
		if f.SHA256 != fs.sums[name] {
			t.Errorf("%s: sha256 %x, want %x (%d bytes)", name, f.SHA256, fs.sums[name], f.Size)
		}
	}
	if !strings.Contains(r.Script, "osim.mac="+mac.String()) {
		t.Errorf("script is not this target's:\n%s", r.Script)
	}
	for _, p := range r.Phases {
		t.Logf("%-22s %-16s %v", p.Stage, p.Phase, p.Duration)
	}
	return lease
}

// decisions is osim_dhcp_decisions_total for one outcome.
func decisions(t *testing.T, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != "osim_dhcp_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					v += m.GetCounter().GetValue()
				}
			}
		}
	}
	return v
}

var (
	fullPool   = dhcp.PoolConfig{Network: "10.99.0.0/24", Start: "10.99.0.100", End: "10.99.0.199", LeaseTime: "1h"}
	fullPrefix = netip.MustParsePrefix("10.99.0.0/24")
	macFullA   = net.HardwareAddr{0x52, 0x54, 0x00, 0x98, 0x00, 0x0a}
	macFullB   = net.HardwareAddr{0x52, 0x54, 0x00, 0x98, 0x00, 0x0b}
)

// TestFullModePXEBootOverVeth: osim alone hands out the address and the
// boot answer; EDK2 (two stages, one lease) and an iPXE ROM boot over it.
func TestFullModePXEBootOverVeth(t *testing.T) {
	if os.Getenv(envFullRole) == "boot" {
		innerFullBoot(t)
		return
	}
	fn := setupFullNet(t, "b", 1)
	fn.runInner(t, "TestFullModePXEBootOverVeth", "boot", envFullDB+"="+t.TempDir())
}

func innerFullBoot(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	fs := startFullServer(t, ctx, os.Getenv(envFullDB), fullPool, macFullA, macFullB)
	leases := map[netip.Addr]string{}
	for _, tc := range []struct {
		name          string
		fw            Firmware
		mac           net.HardwareAddr
		stages, files []string
	}{
		{"EDK2 UEFI x64 then snponly iPXE", EDK2x64, macFullA, []string{"snponly.efi", "script"},
			[]string{"snponly.efi", "script", "initrd.gz", "vmlinuz"}},
		{"iPXE ROM under BIOS", IPXEBIOS, macFullB, []string{"script"}, []string{"script", "initrd.gz", "vmlinuz"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs.flush(t)
			r, err := Boot(ctx, fs.cfg(tc.fw, tc.mac, fs.ifs[0]))
			if err != nil {
				t.Fatalf("boot: %v", err)
			}
			lease := fs.checkBoot(t, r, tc.mac, fullPrefix, tc.stages, tc.files)
			if other, ok := leases[lease]; ok {
				t.Errorf("%v leased to %s and to %s", lease, other, tc.mac)
			}
			leases[lease] = tc.mac.String()
		})
	}
	if got := decisions(t, fs.reg, "lease_ack"); got != 3 {
		t.Errorf("server counted %v lease ACKs, want 3 (EDK2 twice, iPXE once)", got)
	}
}

// TestFullModeLeasesSurviveRestart: the server process exits and a new one
// opens the same Badger directory; the same MAC gets its address back, a
// new MAC another one.
func TestFullModeLeasesSurviveRestart(t *testing.T) {
	switch os.Getenv(envFullRole) {
	case "restart-1", "restart-2":
		innerFullRestart(t, os.Getenv(envFullRole))
		return
	}
	fn := setupFullNet(t, "r", 1)
	db, record := t.TempDir(), filepath.Join(t.TempDir(), "lease")
	fn.runInner(t, "TestFullModeLeasesSurviveRestart", "restart-1", envFullDB+"="+db, envFullRecord+"="+record)
	testlab.RunIP(t, "-n", fn.cliNS, "addr", "flush", "dev", fn.cliIfs[0])
	fn.runInner(t, "TestFullModeLeasesSurviveRestart", "restart-2", envFullDB+"="+db, envFullRecord+"="+record)
}

func innerFullRestart(t *testing.T, role string) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	fs := startFullServer(t, ctx, os.Getenv(envFullDB), fullPool, macFullA, macFullB)
	record := os.Getenv(envFullRecord)
	boot := func(mac net.HardwareAddr) netip.Addr {
		t.Helper()
		fs.flush(t)
		r, err := Boot(ctx, fs.cfg(IPXEBIOS, mac, fs.ifs[0]))
		if err != nil {
			t.Fatalf("boot %s: %v", mac, err)
		}
		return fs.checkBoot(t, r, mac, fullPrefix, []string{"script"}, []string{"script", "initrd.gz", "vmlinuz"})
	}
	if role == "restart-1" {
		a := boot(macFullA)
		t.Logf("%s leased %v before the restart", macFullA, a)
		if err := os.WriteFile(record, []byte(a.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	before := netip.MustParseAddr(string(b))
	if a := boot(macFullA); a != before {
		t.Errorf("after the restart %s leased %v, want its address from before, %v", macFullA, a, before)
	}
	if a := boot(macFullB); a == before {
		t.Errorf("after the restart %s leased %v, the address %s holds", macFullB, a, macFullA)
	} else {
		t.Logf("%s kept %v, %s got %v", macFullA, before, macFullB, a)
	}
}

// TestFullModeLastFreeAddressGoesToOneClient: two clients on one bridge
// race for a pool with one free address; one gets it, the other nothing.
func TestFullModeLastFreeAddressGoesToOneClient(t *testing.T) {
	if os.Getenv(envFullRole) == "race" {
		innerFullRace(t)
		return
	}
	fn := setupFullNet(t, "x", 2)
	fn.runInner(t, "TestFullModeLastFreeAddressGoesToOneClient", "race", envFullDB+"="+t.TempDir())
}

func innerFullRace(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	one := dhcp.PoolConfig{Network: "10.99.0.0/24", Start: "10.99.0.100", End: "10.99.0.100", LeaseTime: "1h"}
	last := netip.MustParseAddr("10.99.0.100")
	fs := startFullServer(t, ctx, os.Getenv(envFullDB), one, macFullA, macFullB)
	macs := []net.HardwareAddr{macFullA, macFullB}
	results := make([]*Result, 2)
	errs := make([]error, 2)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			<-start
			results[i], errs[i] = Boot(ctx, fs.cfg(IPXEBIOS, macs[i], fs.ifs[i]))
		})
	}
	close(start)
	wg.Wait()

	winners := 0
	for i := range 2 {
		if errs[i] == nil {
			winners++
			lease := fs.checkBoot(t, results[i], macs[i], fullPrefix, []string{"script"}, []string{"script", "initrd.gz", "vmlinuz"})
			if lease != last {
				t.Errorf("%s leased %v, want the only free address %v", macs[i], lease, last)
			}
			t.Logf("%s won %v", macs[i], lease)
			continue
		}
		var pe *PhaseError
		switch {
		case errors.Is(errs[i], ErrNoOffer) && errors.As(errs[i], &pe) && pe.Phase == PhaseDiscover:
			t.Logf("%s: no offer (%v)", macs[i], errs[i])
		case errors.As(errs[i], &pe) && pe.Phase == PhaseRequest && strings.Contains(errs[i].Error(), "NAK"):
			t.Logf("%s: NAK (%v)", macs[i], errs[i])
		default:
			t.Errorf("%s: %v, want no offer or a NAK", macs[i], errs[i])
		}
		if len(fs.backend.arches(macs[i])) == 0 {
			t.Errorf("the server never saw %s: it lost no race", macs[i])
		}
	}
	if winners != 1 {
		t.Fatalf("%d clients got an address, want exactly 1 (errors %v)", winners, errs)
	}
	if got := decisions(t, fs.reg, "lease_ack"); got != 1 {
		t.Errorf("server counted %v lease ACKs, want 1", got)
	}
	if got := decisions(t, fs.reg, "pool_exhausted") + decisions(t, fs.reg, "lease_nak"); got < 1 {
		t.Errorf("server counted no exhausted pool and no NAK for the loser")
	}
}
