package pxeclient

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"osim/dataplane/dhcp"
	"osim/dataplane/httpboot"
	"osim/dataplane/tftp"
	"osim/internal/testlab"
)

// The e2e test runs twice: the outer test (in the host namespace) creates
// the server and client namespaces and a veth pair, then runs this test
// binary again inside the server namespace, where the whole process lives
// (the TFTP engine opens each transfer's socket from a fresh goroutine, so
// only a process that is entirely in the namespace serves TFTP there). The
// inner run starts DHCP, TFTP and HTTP in-process and drives the client
// into the client namespace through Netns.
const (
	envClientNetns = "OSIM_PXECLIENT_E2E_CLIENT_NETNS"
	envClientIf    = "OSIM_PXECLIENT_E2E_CLIENT_IF"
	serverIP       = "10.99.0.1"
	httpBase       = "http://10.99.0.1:8080"
)

func TestPXEBootOverVeth(t *testing.T) {
	if os.Getenv(envClientNetns) != "" {
		inner(t)
		return
	}
	pid := os.Getpid()
	// No route at all in the server namespace: the DHCP server must send
	// its broadcast offers out of the interface the DISCOVER came in on.
	// Proxy mode: the address is the site DHCP server's business, not ours.
	// 10.99.0.2 stands in for that lease; DHCP itself goes out from 0.0.0.0.
	pair := testlab.NewTestPair(t, testlab.PairSpec{Prefix: "osim-px",
		ServerIf: fmt.Sprintf("pxs%d", pid), ClientIf: fmt.Sprintf("pxc%d", pid),
		ServerAddr: netip.MustParsePrefix(serverIP + "/24"), ClientAddr: netip.MustParsePrefix("10.99.0.2/24"),
	}, "the PXE end-to-end test (network namespaces, veth, port 67)")

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	args := []string{"netns", "exec", pair.Server, os.Args[0], "-test.run=^TestPXEBootOverVeth$", "-test.count=1"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Env = append(os.Environ(), envClientNetns+"="+pair.ClientPath(), envClientIf+"="+pair.ClientIf)
	out, err := cmd.CombinedOutput()
	t.Logf("inside %s:\n%s", pair.Server, out)
	if err != nil {
		t.Fatalf("PXE boot inside %s failed: %v", pair.Server, err)
	}
}

// recorder is a dhcp.Backend that remembers what the server asked it, so
// the test sees the arch the server decoded from the client's options and
// that an ignored machine was silent by decision, not by a lost packet.
type recorder struct {
	dhcp.Backend
	mu      sync.Mutex
	lookups map[string][]dhcp.Arch
}

func (r *recorder) Lookup(ctx context.Context, mac net.HardwareAddr, arch dhcp.Arch) (dhcp.Decision, error) {
	r.mu.Lock()
	r.lookups[mac.String()] = append(r.lookups[mac.String()], arch)
	r.mu.Unlock()
	return r.Backend.Lookup(ctx, mac, arch)
}

func (r *recorder) arches(mac net.HardwareAddr) []dhcp.Arch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lookups[mac.String()])
}

// counter sums a counter family of reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

type nopSink struct{}

func (nopSink) Report(context.Context, httpboot.Status) error { return nil }

func randomFile(t *testing.T, dir, name string, n int) [32]byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// inner runs inside the server namespace.
func inner(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	macEDK2 := net.HardwareAddr{0x52, 0x54, 0x00, 0x99, 0x00, 0x07}
	macIPXE := net.HardwareAddr{0x52, 0x54, 0x00, 0x99, 0x00, 0x10}
	macBIOS := net.HardwareAddr{0x52, 0x54, 0x00, 0x99, 0x00, 0x00}
	macIgnored := net.HardwareAddr{0x52, 0x54, 0x00, 0x99, 0x00, 0x66}

	// Files: NBPs over TFTP, kernel and initrd over HTTP.
	tftpDir, httpDir := t.TempDir(), t.TempDir()
	sums := map[string][32]byte{
		"snponly.efi":   randomFile(t, tftpDir, "snponly.efi", 300<<10),
		"undionly.kpxe": randomFile(t, tftpDir, "undionly.kpxe", 300<<10+17),
		"vmlinuz":       randomFile(t, httpDir, "debian/vmlinuz", 2<<20+5),
		"initrd.gz":     randomFile(t, httpDir, "debian/initrd.gz", 1<<20+3),
	}

	// DHCP, proxy mode, on 0.0.0.0:67 and :4011.
	fileBackend, err := dhcp.NewFileBackend(dhcp.FileConfig{
		BootFiles: map[string]string{"bios": "undionly.kpxe", "efi-x64": "snponly.efi"},
		Unknown:   "ignore",
		Machines: []dhcp.FileMachine{
			{MAC: macEDK2.String(), Action: "boot"},
			{MAC: macIPXE.String(), Action: "boot"},
			{MAC: macBIOS.String(), Action: "boot"},
			{MAC: macIgnored.String(), Action: "ignore"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	backend := &recorder{Backend: fileBackend, lookups: map[string][]dhcp.Arch{}}
	dsrv, err := dhcp.NewServer(&dhcp.Handler{Backend: backend, ServerIP: net.ParseIP(serverIP), URLs: httpboot.URLs{Base: httpBase}}, dhcp.ServerConfig{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	go dsrv.Serve(ctx)

	treg := prometheus.NewRegistry()
	serveTFTP(t, ctx, tftpDir, tftp.NewMetrics(treg))
	boot := httpboot.Boot{Kernel: "debian/vmlinuz", Initrds: []string{"debian/initrd.gz"}, Cmdline: "console=ttyS0 osim.mac={{.MAC}}"}
	serveHTTPBoot(t, httpDir, httpboot.StaticScripts{macEDK2.String(): boot, macIPXE.String(): boot, macBIOS.String(): boot})

	ns, err := OpenNetns(os.Getenv(envClientNetns))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	ifname := os.Getenv(envClientIf)
	short := []time.Duration{300 * time.Millisecond, 600 * time.Millisecond, 1200 * time.Millisecond}
	cfg := func(fw Firmware, mac net.HardwareAddr) Config {
		return Config{Interface: ifname, MAC: mac, Firmware: fw, Schedule: short,
			OfferWindow: 200 * time.Millisecond, TFTPTimeout: 500 * time.Millisecond, Do: ns.Do}
	}
	script := func(mac net.HardwareAddr) string { return httpBase + "/ipxe/" + mac.String() }

	for _, tc := range []struct {
		name   string
		fw     Firmware
		mac    net.HardwareAddr
		arches []dhcp.Arch // option 93 as the server decoded it, per DHCP stage (DISCOVER and 4011)
		probes float64     // tsize probes the TFTP server counted
		stages []string    // boot file answered at each DHCP stage
		files  []string    // names whose bytes must arrive, in order (after the script)
	}{
		{"EDK2 UEFI x64 then snponly iPXE", EDK2x64, macEDK2, []dhcp.Arch{7, 7, 7, 7}, 1,
			[]string{"snponly.efi", script(macEDK2)}, []string{"snponly.efi", "script", "initrd.gz", "vmlinuz"}},
		{"iPXE ROM under BIOS asks as iPXE at once", IPXEBIOS, macIPXE, []dhcp.Arch{0, 0}, 0,
			[]string{script(macIPXE)}, []string{"script", "initrd.gz", "vmlinuz"}},
		{"BIOS PXE ROM then undionly iPXE", BIOSPXE, macBIOS, []dhcp.Arch{0, 0, 0, 0}, 0,
			[]string{"undionly.kpxe", script(macBIOS)}, []string{"undionly.kpxe", "script", "initrd.gz", "vmlinuz"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probes := counter(t, treg, "osim_tftp_tsize_probes_total")
			r, err := Boot(ctx, cfg(tc.fw, tc.mac))
			if err != nil {
				t.Fatalf("boot: %v (phases %+v)", err, r.Phases)
			}
			if len(r.Stages) != len(tc.stages) {
				t.Fatalf("%d DHCP stages, want %d: %+v", len(r.Stages), len(tc.stages), r.Stages)
			}
			for i, st := range r.Stages {
				if st.BootFile != tc.stages[i] {
					t.Errorf("stage %d (%s): boot file %q, want %q", i, st.Firmware, st.BootFile, tc.stages[i])
				}
				if len(st.Offers) != 1 || !st.Offers[0].Proxy || st.Offers[0].ServerID.String() != serverIP {
					t.Errorf("stage %d: offers %+v, want one proxy offer from %s", i, st.Offers, serverIP)
				}
				if want := netip.MustParseAddrPort(serverIP + ":4011"); st.ProxyACK != want {
					t.Errorf("stage %d: 4011 ACK from %v, want %v", i, st.ProxyACK, want)
				}
			}
			if len(r.Files) != len(tc.files) {
				t.Fatalf("fetched %d files, want %d: %+v", len(r.Files), len(tc.files), r.Files)
			}
			for i, f := range r.Files {
				name := tc.files[i]
				if name == "script" {
					if f.Kind != "script" || f.URL != script(tc.mac) {
						t.Errorf("file %d: %s %s, want the script %s", i, f.Kind, f.URL, script(tc.mac))
					}
					continue
				}
				if !strings.HasSuffix(f.URL, "/"+name) {
					t.Errorf("file %d: %s, want %s", i, f.URL, name)
				}
				if f.SHA256 != sums[name] {
					t.Errorf("%s: sha256 %x, want %x (%d bytes)", name, f.SHA256, sums[name], f.Size)
				}
			}
			if got := backend.arches(tc.mac); !slices.Equal(got, tc.arches) {
				t.Errorf("server looked up arches %v, want %v", got, tc.arches)
			}
			if got := counter(t, treg, "osim_tftp_tsize_probes_total") - probes; got != tc.probes {
				t.Errorf("TFTP server counted %v tsize probes, want %v", got, tc.probes)
			}
			if !strings.Contains(r.Script, "osim.mac="+tc.mac.String()) {
				t.Errorf("script is not this target's:\n%s", r.Script)
			}
			for _, p := range r.Phases {
				t.Logf("%-22s %-16s %v", p.Stage, p.Phase, p.Duration)
			}
		})
	}

	t.Run("ignored machine gets no offer", func(t *testing.T) {
		t0 := time.Now()
		_, err := Boot(ctx, cfg(EDK2x64, macIgnored))
		var pe *PhaseError
		if !errors.Is(err, ErrNoOffer) || !errors.As(err, &pe) || pe.Phase != PhaseDiscover {
			t.Fatalf("err = %v, want ErrNoOffer in phase %s", err, PhaseDiscover)
		}
		if got := backend.arches(macIgnored); len(got) < 3 {
			t.Errorf("server saw %d DISCOVERs from the ignored machine, want one per try (3)", len(got))
		}
		if d := time.Since(t0); d < 2*time.Second || d > 10*time.Second {
			t.Errorf("gave up after %v, want the whole short schedule (2.1 s)", d)
		}
	})
}

func TestParseScript(t *testing.T) {
	s, err := ParseScript("#!ipxe\n# osim: order o-1\ninitrd --name initrd.gz http://h/files/initrd.gz\n" +
		"initrd -n=x /files/b.img\nkernel http://h/files/vmlinuz initrd=initrd.gz console=ttyS0\nboot\n")
	if err != nil {
		t.Fatal(err)
	}
	if s.Kernel != "http://h/files/vmlinuz" || len(s.Initrds) != 2 || s.Initrds[0] != "http://h/files/initrd.gz" || s.Initrds[1] != "/files/b.img" {
		t.Fatalf("parsed %+v", s)
	}
	if _, err := ParseScript("kernel x\n"); err == nil {
		t.Error("a script without #!ipxe was accepted")
	}
	if _, err := ParseScript("#!ipxe\nboot\n"); err == nil {
		t.Error("a script without kernel was accepted")
	}
}

// serveTFTP serves dir on serverIP:69 until ctx ends or the test does.
func serveTFTP(t *testing.T, ctx context.Context, dir string, m *tftp.Metrics) {
	t.Helper()
	res, err := tftp.NewFolderResolver(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Close() })
	tsrv, err := tftp.NewServer(tftp.Config{Metrics: m}, res)
	if err != nil {
		t.Fatal(err)
	}
	tconn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(serverIP), Port: 69})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tconn.Close() })
	go tsrv.Serve(ctx, tconn)
}

// serveHTTPBoot serves httpboot (scripts, files from dir) on serverIP:8080
// until the test ends.
func serveHTTPBoot(t *testing.T, dir string, scripts httpboot.StaticScripts) {
	t.Helper()
	files, err := httpboot.NewFolderFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { files.Close() })
	hh, err := httpboot.New(httpboot.Config{
		Scripts: scripts, Files: files, Tokens: httpboot.StaticTokens{}, Sink: nopSink{}, BaseURL: httpBase,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", serverIP+":8080")
	if err != nil {
		t.Fatal(err)
	}
	hsrv := &http.Server{Handler: hh, ReadHeaderTimeout: 10 * time.Second}
	go hsrv.Serve(ln)
	t.Cleanup(func() { hsrv.Close() })
}
