// Package e2e holds the control plane's integration and fault tests: a
// manager and boot servers in-process and as real processes on loopback,
// killed with SIGKILL at the awkward moments, checked for convergence,
// exactly-once events and whole blobs.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"osim/controlplane/agent"
	"osim/controlplane/api"
	"osim/controlplane/mdb"
	bootdcfg "osim/internal/bootd"
	"osim/internal/promtext"
)

// binDir holds osim-manager, osim-bootd and osim-installer, built once by
// TestMain (empty in -short mode: the process tests skip).
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if !testing.Short() {
			dir, err := os.MkdirTemp("", "osim-e2e-bin-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "osim/cmd/osim-manager", "osim/cmd/osim-bootd", "osim/cmd/osim-installer")
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "building the binaries: %v\n%s", err, out)
				return 1
			}
			binDir = dir
		}
		return m.Run()
	}()
	os.Exit(code)
}

func needBinaries(t *testing.T) {
	t.Helper()
	if testing.Short() || binDir == "" {
		t.Skip("process test: skipped in -short mode")
	}
}

// waitFor polls cond every 20 ms until it holds or d passes; the failure
// names what was awaited and cond's last explanation.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", d, what, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// siteView is a site's view, normalised for comparison: JSON of each list,
// sorted by id, times in UTC.
type siteView struct {
	Targets []api.Target
	Orders  []api.Order
	Images  []api.Image
}

func normalise(targets []api.Target, orders []api.Order, images []api.Image, stripTokens bool) siteView {
	v := siteView{Targets: append([]api.Target{}, targets...), Orders: append([]api.Order{}, orders...), Images: append([]api.Image{}, images...)}
	for i := range v.Targets {
		t := &v.Targets[i]
		t.Created, t.Updated = t.Created.UTC(), t.Updated.UTC()
	}
	for i := range v.Orders {
		o := &v.Orders[i]
		o.Created, o.Updated = o.Created.UTC(), o.Updated.UTC()
		h := append([]api.Transition{}, o.History...)
		for j := range h {
			h[j].At = h[j].At.UTC()
		}
		o.History = h
		if stripTokens {
			o.Token = ""
		}
	}
	for i := range v.Images {
		v.Images[i].Created = v.Images[i].Created.UTC()
	}
	return v
}

// diffViews returns "" when the views are equal, else the first
// difference found.
func diffViews(want, got siteView) string {
	var out []string
	cmp := func(kind string, w, g any, wid, gid []string) {
		wb, _ := json.Marshal(w)
		gb, _ := json.Marshal(g)
		if bytes.Equal(wb, gb) {
			return
		}
		if len(wid) != len(gid) {
			out = append(out, fmt.Sprintf("%s: manager has %d, boot server %d", kind, len(wid), len(gid)))
		}
		for i := range min(len(wid), len(gid)) {
			if wid[i] != gid[i] {
				out = append(out, fmt.Sprintf("%s[%d]: manager %s, boot server %s", kind, i, wid[i], gid[i]))
				return
			}
		}
		out = append(out, fmt.Sprintf("%s differ:\n manager:     %.600s\n boot server: %.600s", kind, firstDiff(wb, gb), firstDiff(gb, wb)))
	}
	ids := func(n int, id func(int) string) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = id(i)
		}
		return s
	}
	cmp("targets", want.Targets, got.Targets, ids(len(want.Targets), func(i int) string { return want.Targets[i].ID }),
		ids(len(got.Targets), func(i int) string { return got.Targets[i].ID }))
	cmp("orders", want.Orders, got.Orders, ids(len(want.Orders), func(i int) string { return want.Orders[i].ID }),
		ids(len(got.Orders), func(i int) string { return got.Orders[i].ID }))
	cmp("images", want.Images, got.Images, ids(len(want.Images), func(i int) string { return want.Images[i].ID }),
		ids(len(got.Images), func(i int) string { return got.Images[i].ID }))
	return strings.Join(out, "\n")
}

// firstDiff returns a starting a little before its first byte that
// differs from b.
func firstDiff(a, b []byte) []byte {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return a[max(0, i-200):]
}

// agentView reads an agent's persisted view.
func agentView(t *testing.T, a *agent.Agent) (siteView, uint64) {
	t.Helper()
	ts, os, is, rev, err := a.View()
	if err != nil {
		t.Fatalf("agent view: %v", err)
	}
	return normalise(ts, os, is, false), rev
}

// managerView reads a site's view from the store.
func managerView(t *testing.T, s *mdb.DB, site string) siteView {
	t.Helper()
	ts, os, is, err := mdb.SiteView(context.Background(), s, site)
	if err != nil {
		t.Fatalf("SiteView(%s): %v", site, err)
	}
	return normalise(ts, os, is, false)
}

// compareStopped opens a stopped manager's data dir and a stopped boot
// server's data dir and fails unless the boot server's view equals the
// manager's view of site and its revision is the manager's.
func compareStopped(t *testing.T, mgrDir, bootdDataDir, site string) {
	t.Helper()
	db, err := mdb.Open(mgrDir, mdb.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("opening the manager's MDB: %v", err)
	}
	want := managerView(t, db, site)
	mrev, err := db.Revision(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	got, arev := openAgentView(t, bootdDataDir)
	if d := diffViews(want, got); d != "" {
		t.Fatalf("site %s: the boot server's store differs from the manager's view:\n%s", site, d)
	}
	if arev != mrev {
		t.Errorf("site %s: boot server at revision %d, manager at %d", site, arev, mrev)
	}
	t.Logf("site %s: boot server equals the manager at revision %d: %d targets, %d live orders, %d images",
		site, arev, len(want.Targets), len(want.Orders), len(want.Images))
}

// openAgentView opens a stopped osim-bootd's Badger with agent.New (no
// Run) and reads its view.
func openAgentView(t *testing.T, bootdDataDir string) (siteView, uint64) {
	t.Helper()
	bdb, err := badger.Open(badger.DefaultOptions(bootdDataDir).WithLogger(nil))
	if err != nil {
		t.Fatalf("opening the boot server's Badger: %v", err)
	}
	defer bdb.Close()
	a, err := agent.New(agent.Config{DB: bdb, BlobDir: filepath.Join(bootdDataDir, "blobs"),
		Client: api.NewClient("http://127.0.0.1:1", "", false)})
	if err != nil {
		t.Fatalf("agent.New on the boot server's data: %v", err)
	}
	return agentView(t, a)
}

// gathered returns the value of metric name (summed over series whose
// labels include every pair in labels) from reg.
func gathered(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				v += m.Counter.GetValue()
			case m.Gauge != nil:
				v += m.Gauge.GetValue()
			}
		}
	}
	return v
}

// scrape reads a series from a /metrics URL (promtext.Scrape); ok is false
// when unreachable or absent.
func scrape(url, series string) (float64, bool) {
	v, err := promtext.Scrape(context.Background(), url, series)
	return v, err == nil
}

// Listening ports are picked below the kernel's ephemeral range, so a
// process restarted on its port (the manager after SIGKILL) does not find
// it taken by some outgoing connection meanwhile; each is handed out once.
var (
	portMu    sync.Mutex
	portsUsed = map[int]bool{}
	portNext  int
)

func pickPort(t *testing.T, free func(port int) bool) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				lo = v
			}
		}
	}
	const base = 12000
	if lo-base < 2000 {
		t.Fatalf("ephemeral ports start at %d: no room below for the test's listeners", lo)
	}
	if portNext == 0 {
		portNext = base + os.Getpid()%(lo-base)
	}
	for range lo - base {
		p := portNext
		portNext++
		if portNext >= lo {
			portNext = base
		}
		if !portsUsed[p] && free(p) {
			portsUsed[p] = true
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

func freeTCP(t *testing.T) int {
	t.Helper()
	return pickPort(t, func(p int) bool {
		l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		l.Close()
		return true
	})
}

func freeUDP(t *testing.T) int {
	t.Helper()
	return pickPort(t, func(p int) bool {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// lockedBuffer collects a process's output across restarts.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a child process that can be started again after it stopped or
// was killed; its output is kept and logged when the test fails.
type proc struct {
	t    *testing.T
	name string
	bin  string
	args []string
	log  lockedBuffer
	runs int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func newProc(t *testing.T, name, bin string, args ...string) *proc {
	p := &proc{t: t, name: name, bin: bin, args: args}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", p.name, p.log.String())
		}
	})
	return p
}

func (p *proc) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.runs++
	fmt.Fprintf(&p.log, "=== %s start %d at %s\n", p.name, p.runs, time.Now().Format("15:04:05.000"))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = &p.log, &p.log
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("starting %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		fmt.Fprintf(&p.log, "=== %s exited: %v\n", p.name, err)
		close(done)
	}()
}

// exited reports whether the current run ended, and how.
func (p *proc) exited() (bool, error) {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return true, nil
	}
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.err
	default:
		return false, nil
	}
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p.kill()
		p.t.Fatalf("%s did not exit within 20 s of SIGTERM", p.name)
	}
	if _, err := p.exited(); err != nil {
		p.t.Fatalf("%s exited after SIGTERM: %v", p.name, err)
	}
}

// checkAlive fails the test when the process died on its own.
func (p *proc) checkAlive() (bool, string) {
	if gone, err := p.exited(); gone {
		return false, fmt.Sprintf("%s is not running (%v)", p.name, err)
	}
	return true, ""
}

// manager is an osim-manager process on a loopback port that stays the
// same across restarts.
type managerProc struct {
	*proc
	dir     string
	url     string
	metrics string
	admin   *api.Client
}

func startManager(t *testing.T, dir string) *managerProc {
	t.Helper()
	port, mport := freeTCP(t), freeTCP(t)
	m := &managerProc{dir: dir, url: fmt.Sprintf("http://127.0.0.1:%d", port),
		metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)}
	m.proc = newProc(t, "osim-manager", filepath.Join(binDir, "osim-manager"), "serve",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", dir,
		"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", mport),
		"--bootstrap-token-file", filepath.Join(dir, "admin.token"), "--heartbeat-interval", "1s", "--grace", "1s")
	m.restart()
	b, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	m.admin = api.NewClient(m.url, strings.TrimSpace(string(b)), false)
	return m
}

// restart starts the process and waits for /healthz.
func (m *managerProc) restart() {
	m.t.Helper()
	m.start()
	waitFor(m.t, 30*time.Second, "the manager's /healthz", func() (bool, string) {
		if ok, why := m.checkAlive(); !ok {
			m.t.Fatal(why)
		}
		c := http.Client{Timeout: time.Second}
		resp, err := c.Get(m.url + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
}

func (m *managerProc) revision() uint64 {
	v, _ := scrape(m.metrics, "osim_manager_revision")
	return uint64(v)
}

// joinToken makes a join token for one boot server of site (single use,
// the default: a boot server registers once and then keeps its credential).
func (m *managerProc) joinToken(t *testing.T, site string) string {
	t.Helper()
	tok, err := m.admin.CreateToken(context.Background(), api.TokenRequest{Role: api.RoleJoin, Site: site})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Secret
}

// bootd is an osim-bootd process with a manager section, on loopback
// ports that stay the same across restarts.
type bootd struct {
	*proc
	name, site string
	data       string // data_dir: Badger + blobs
	tftpRoot   string
	http       string // base URL
	metrics    string
	tftpPort   int
	dhcpPort   int
	bootPort   int
}

func newBootd(t *testing.T, name, site, managerURL, join string) *bootd {
	t.Helper()
	return newBootdWith(t, name, site, managerURL, join, nil)
}

// newBootdWith is newBootd with tweak applied to the config before it is
// written and extra arguments after serve's.
func newBootdWith(t *testing.T, name, site, managerURL, join string, tweak func(*bootdcfg.Config), args ...string) *bootd {
	t.Helper()
	dir := t.TempDir()
	b := &bootd{name: name, site: site, data: filepath.Join(dir, "data"), tftpRoot: filepath.Join(dir, "tftp"),
		tftpPort: freeUDP(t), dhcpPort: freeUDP(t), bootPort: freeUDP(t)}
	httpPort, mport := freeTCP(t), freeTCP(t)
	b.http = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	b.metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	if err := os.MkdirAll(b.tftpRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.tftpRoot, "undionly.kpxe"), nbpBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	joinFile := filepath.Join(dir, "join.token")
	if err := os.WriteFile(joinFile, []byte(join), 0o600); err != nil {
		t.Fatal(err)
	}
	loop := func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
	cfg := &bootdcfg.Config{Address: "127.0.0.1", MetricsListen: loop(mport), DataDir: b.data,
		DHCP:    bootdcfg.DHCPSection{Listen: loop(b.dhcpPort), BootListen: loop(b.bootPort)},
		TFTP:    bootdcfg.TFTPSection{Root: b.tftpRoot, Listen: loop(b.tftpPort)},
		HTTP:    bootdcfg.HTTPSection{Listen: loop(httpPort)},
		Boot:    bootdcfg.BootSection{BootFiles: map[string]string{"bios": "undionly.kpxe", "efi-x64": "undionly.kpxe"}},
		Manager: &bootdcfg.ManagerSection{URL: managerURL, JoinTokenFile: joinFile, Name: name, Site: site},
	}
	if tweak != nil {
		tweak(cfg)
	}
	cfgPath := filepath.Join(dir, "bootd.yaml")
	if err := cfg.WriteFile(cfgPath); err != nil {
		t.Fatal(err)
	}
	b.proc = newProc(t, "osim-bootd "+name, filepath.Join(binDir, "osim-bootd"),
		append([]string{"serve", "--config", cfgPath, "--grace", "1s"}, args...)...)
	return b
}

// restart starts the process and waits for its metrics endpoint.
func (b *bootd) restart() {
	b.t.Helper()
	b.start()
	waitFor(b.t, 30*time.Second, b.name+"'s metrics", func() (bool, string) {
		if ok, why := b.checkAlive(); !ok {
			b.t.Fatal(why)
		}
		_, ok := scrape(b.metrics, "osim_agent_synced_revision")
		return ok, "not answering"
	})
}

func (b *bootd) metric(series string) float64 {
	v, _ := scrape(b.metrics, series)
	return v
}

// nbpBytes is the NBP every boot server's TFTP root holds.
var nbpBytes = bytes.Repeat([]byte("e2e-nbp!"), 1000)

// sha256Hex of b.
func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fileSHA256 hashes a file.
func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// uploadImage uploads data as one kernel file and registers an OS image
// whose command line carries the order token.
func uploadImage(t *testing.T, c *api.Client, name string, data []byte) api.Image {
	t.Helper()
	ctx := context.Background()
	sha := sha256Hex(data)
	if _, err := c.UploadBlob(ctx, sha, int64(len(data)), bytes.NewReader(data), 0); err != nil {
		t.Fatalf("upload: %v", err)
	}
	img, err := c.CreateImage(ctx, api.ImageSpec{Name: name, Version: "1", Kind: api.KindOS,
		Files:   []api.ImageFile{{Name: "vmlinuz", SHA256: sha, Size: int64(len(data)), Role: api.RoleKernel}},
		Cmdline: "console=ttyS0 osim.token={{.Token}}"})
	if err != nil {
		t.Fatalf("image: %v", err)
	}
	return img
}
