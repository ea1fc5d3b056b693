package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/internal/pxeclient"
	"osim/internal/testlab"
	"osim/ips/bootimage"
	"osim/ips/diskimage"
	"osim/ips/gpt"
	"osim/ips/testimage"
)

// installLab is one namespace holding an isolated bridge (br0,
// 10.77.0.1/24, no uplink) with a manager on the namespace's loopback
// and osim-bootd (full DHCP, manager mode) on the bridge; QEMU guests
// plug into the bridge through tap ports.
type installLab struct {
	t     *testing.T
	ns    *testlab.NS
	nsfd  *pxeclient.Netns
	dir   string
	bin   string
	http  *http.Client // dials inside the namespace
	mu    sync.Mutex
	procs []labProc
	// dns, when set before startManagerAndBootd, is the DHCP pool's name
	// server (option 6): debian-installer asks for one when DHCP gives none.
	dns string
	// managerArgs, when set before startManagerAndBootd, go to
	// osim-manager serve.
	managerArgs []string
}

// labProc is a started process and the channel closed when Wait returned.
type labProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

const (
	labAddr     = "10.77.0.1"
	managerURL  = "http://127.0.0.1:9000"
	bootdHTTP   = labAddr + ":8080"
	labSite     = "lab"
	labBootdLog = "osim-bootd.log"
)

func newInstallLab(t *testing.T, bin string) *installLab {
	ns := testlab.NewTestNS(t, "osiminst-", "the install lab")
	l := &installLab{t: t, ns: ns, dir: t.TempDir(), bin: bin}
	for _, args := range [][]string{
		{"-n", ns.Name, "link", "set", "lo", "up"},
		{"-n", ns.Name, "link", "add", "br0", "type", "bridge"},
		{"-n", ns.Name, "addr", "add", labAddr + "/24", "dev", "br0"},
		{"-n", ns.Name, "link", "set", "br0", "up"},
	} {
		testlab.RunIP(t, args...)
	}
	// e1000 guests drop replies whose UDP checksum was left to offload
	// (see README): compute them in software on the bridge.
	if out, err := ns.Command("ethtool", "-K", "br0", "tx", "off").CombinedOutput(); err != nil {
		t.Fatalf("ethtool: %v: %s", err, out)
	}
	fd, err := pxeclient.OpenNetns(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	l.nsfd = fd
	d := &net.Dialer{Timeout: 5 * time.Second}
	l.http = &http.Client{Timeout: 120 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := fd.Do(func() error {
				var err error
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}}}
	t.Cleanup(l.close)
	return l
}

// start runs argv inside the namespace, its output in dir/name.log.
func (l *installLab) start(name string, argv ...string) *exec.Cmd {
	l.t.Helper()
	logf, err := os.Create(filepath.Join(l.dir, name+".log"))
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := l.ns.Command(argv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("start %s: %v", name, err)
	}
	p := labProc{cmd: cmd, done: make(chan struct{})}
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	return cmd
}

func (l *installLab) logTail(name string, n int) string {
	b, _ := os.ReadFile(filepath.Join(l.dir, name+".log"))
	return tail(string(b), n)
}

func (l *installLab) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.procs) - 1; i >= 0; i-- {
		l.procs[i].cmd.Process.Signal(os.Interrupt)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range l.procs {
		select {
		case <-p.done:
		case <-time.After(time.Until(deadline)):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	if l.nsfd != nil {
		l.nsfd.Close()
	}
	if os.Getenv("OSIM_LAB_KEEP") != "" {
		l.t.Logf("lab files kept in %s", l.dir)
	}
}

// waitHTTP polls url inside the namespace until it answers 200.
func (l *installLab) waitHTTP(ctx context.Context, url, who string) {
	l.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := l.http.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s not answering at %s: %v\n%s", who, url, err, l.logTail(who, 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// guest is one QEMU machine with an empty virtio disk and the boot order
// network, then disk.
type guest struct {
	name, arch, mac string
	diskSize        int64
	mem             int    // MiB; 0: 768
	address         string // the target's reserved address, if any
	disk, serial    string
	marker          string // the installed system's line, once seen
	elapsed         time.Duration
	// marks are the serial console's lines to time (default
	// guestMilestones); milestones: when each first showed, from
	// power-on (0: never). Read them after boot returned.
	marks      []string
	milestones []time.Duration
	// stopAt, when set, is the console text that ends the run: QEMU is
	// stopped once it shows, and run expects it instead of the
	// installed system's marker (a vendor installer that stops at a
	// question, answerlab_test.go).
	stopAt string
	err    error
}

// guestMilestones split power-on to the installed system: the installer
// runs, it reboots, the installed system speaks.
var guestMilestones = [...]string{"osim-installer: mode install", "osim-installer: rebooting", "OSIM-INSTALLED"}

var ansiColour = regexp.MustCompile("\x1b\\[[0-9;]*m")

// watchSerial records when each of g.marks first appears in g's serial
// log, polling it until stop is closed; it calls stopQEMU once the
// console shows g.stopAt.
func watchSerial(g *guest, start time.Time, stop <-chan struct{}, stopQEMU func()) {
	stopped := false
	for {
		var done bool
		select {
		case <-stop: // QEMU exited: one last look (the marker comes just before)
			done = true
		case <-time.After(250 * time.Millisecond):
		}
		b, _ := os.ReadFile(g.serial)
		text := ansiColour.ReplaceAllString(string(b), "") // systemd colours unit names
		for i, m := range g.marks {
			if g.milestones[i] == 0 && strings.Contains(text, m) {
				g.milestones[i] = time.Since(start)
			}
		}
		if g.stopAt != "" && !stopped && bytes.Contains(b, []byte(g.stopAt)) {
			stopped = true
			stopQEMU()
		}
		if done {
			return
		}
	}
}

// run boots g until QEMU exits (the installed system powers off), the
// console shows g.stopAt, or the timeout, and records the installed
// system's marker line.
func (l *installLab) run(ctx context.Context, g *guest, timeout time.Duration) {
	out, err := l.boot(ctx, g, timeout)
	if g.err != nil {
		return
	}
	serial, _ := os.ReadFile(g.serial)
	if g.stopAt != "" {
		if !bytes.Contains(serial, []byte(g.stopAt)) {
			g.err = fmt.Errorf("%s: the console did not show %q within %v (qemu: %v %s); serial tail:\n%s",
				g.name, g.stopAt, timeout, err, bytes.TrimSpace(out), tail(strings.ReplaceAll(string(serial), "\r", ""), 3000))
		}
		return
	}
	for _, line := range strings.Split(string(serial), "\n") {
		if i := strings.Index(line, "OSIM-INSTALLED"); i >= 0 {
			g.marker = strings.TrimSpace(line[i:])
		}
	}
	if g.marker == "" {
		g.err = fmt.Errorf("%s: no OSIM-INSTALLED marker within %v (qemu: %v %s); serial tail:\n%s",
			g.name, timeout, err, bytes.TrimSpace(out), tail(strings.ReplaceAll(string(serial), "\r", ""), 3000))
	}
}

// boot runs g's QEMU (an empty sparse disk of g.diskSize, the boot order
// network then disk) until it exits, the timeout passes or ctx is
// cancelled (QEMU is then stopped), timing g.marks on its serial
// console. It answers QEMU's output and exit; setup failures go to g.err.
func (l *installLab) boot(ctx context.Context, g *guest, timeout time.Duration) ([]byte, error) {
	if g.marks == nil {
		g.marks = guestMilestones[:]
	}
	g.milestones = make([]time.Duration, len(g.marks))
	g.disk = filepath.Join(l.dir, g.name+".disk")
	g.serial = filepath.Join(l.dir, g.name+".serial")
	if err := os.WriteFile(g.disk, nil, 0o644); err != nil {
		g.err = err
		return nil, err
	}
	if err := os.Truncate(g.disk, g.diskSize); err != nil {
		g.err = err
		return nil, err
	}
	tap := "tap-" + g.name
	if err := testlab.IP(ctx, "-n", l.ns.Name, "tuntap", "add", "dev", tap, "mode", "tap"); err != nil {
		g.err = err
		return nil, err
	}
	defer testlab.IP(context.Background(), "-n", l.ns.Name, "link", "del", tap)
	if err := testlab.IP(ctx, "-n", l.ns.Name, "link", "set", tap, "master", "br0", "up"); err != nil {
		g.err = err
		return nil, err
	}
	args := append([]string{"timeout", fmt.Sprint(int(timeout.Seconds())), "qemu-system-x86_64", "-accel", "tcg"}, qemuMachine(g, tap, true)...)
	start := time.Now()
	cmd := l.ns.Command(args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	stop, watched := make(chan struct{}), make(chan struct{})
	err := cmd.Start()
	if err != nil {
		close(watched)
	} else {
		// ip netns exec execs timeout(1), which passes SIGTERM on to QEMU.
		go func() { watchSerial(g, start, stop, func() { cmd.Process.Signal(syscall.SIGTERM) }); close(watched) }()
		exited := make(chan struct{})
		go func() {
			select {
			case <-ctx.Done():
				cmd.Process.Signal(syscall.SIGTERM)
			case <-exited:
			}
		}()
		err = cmd.Wait()
		close(exited)
	}
	g.elapsed = time.Since(start)
	close(stop)
	<-watched
	return buf.Bytes(), err
}

// qemuMachine is g's QEMU arguments after -accel tcg: its memory, serial
// console to g.serial, its disk g.disk on virtio, an entropy source, and
// its NIC on tap (BIOS: e1000 with iPXE's PXE ROM; UEFI: OVMF, virtio-net,
// PXE over IPv4 only). With netFirst the NIC boots first, then the disk;
// without, the boot order is QEMU's -boot (the BMC lab's bootdev).
func qemuMachine(g *guest, tap string, netFirst bool) []string {
	mem := g.mem
	if mem == 0 {
		mem = 768
	}
	nicBoot, diskBoot := "", ""
	if netFirst {
		nicBoot, diskBoot = ",bootindex=1", ",bootindex=2"
	}
	args := []string{"-m", fmt.Sprint(mem), "-display", "none", "-serial", "file:" + g.serial,
		"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no",
		"-drive", "file=" + g.disk + ",format=raw,if=none,id=d0,cache=unsafe",
		"-device", "virtio-blk-pci,drive=d0" + diskBoot + ",serial=OSIMLAB-" + strings.ToUpper(g.name),
		// TCG's CPU has no RDRAND: without an entropy source the kernel's
		// pool may take minutes to seed, and getrandom (DHCP's xid) waits.
		"-device", "virtio-rng-pci"}
	switch g.arch {
	case "bios":
		args = append(args, "-device", "e1000,netdev=n0,mac="+g.mac+",romfile=/usr/lib/ipxe/qemu/pxe-e1000.rom"+nicBoot)
	default:
		// PXE over IPv4 only, as datacenter firmware is usually set: a
		// done target gets no PXE offer (local boot) and OVMF moves on;
		// with IPv6 on it first waits out PXE and HTTP boot over IPv6
		// (about four minutes under TCG) before it tries the disk.
		args = append(args, "-bios", "/usr/share/ovmf/OVMF.fd", "-device", "virtio-net-pci,netdev=n0,mac="+g.mac+",romfile="+nicBoot,
			"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no", "-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=no")
	}
	return args
}

func buildLabBinaries(t *testing.T) string {
	t.Helper()
	repo, _ := filepath.Abs("../..")
	bin := filepath.Join(t.TempDir(), "bin")
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/osim-manager", "./cmd/osim-bootd", "./cmd/osim-ips")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	inst := exec.Command("go", "build", "-o", bin+"/", "./cmd/osim-installer")
	inst.Dir = repo
	inst.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := inst.CombinedOutput(); err != nil {
		t.Fatalf("build osim-installer: %v\n%s", err, out)
	}
	return bin
}

// guestHostname is the MDB's hostname of g.
func guestHostname(g *guest) string { return "lab-" + g.name + ".example.test" }

// orderGuests creates a target per guest (label lab=install) and one
// mass order of img for them with params, and waits until every order
// is staged.
func orderGuests(ctx context.Context, t *testing.T, c *api.Client, guests []*guest, img api.Image, params map[string]string) ([]api.Order, []string) {
	t.Helper()
	for _, g := range guests {
		if _, err := c.CreateTarget(ctx, api.TargetSpec{Hostname: guestHostname(g), MACs: []string{g.mac},
			Arch: g.arch, Site: labSite, Address: g.address, Labels: map[string]string{"lab": "install"}}); err != nil {
			t.Fatal(err)
		}
	}
	orders, err := c.CreateOrders(ctx, api.OrderRequest{Selector: "lab=install", Image: img.ID, All: true, Params: params})
	if err != nil {
		t.Fatalf("mass order: %v", err)
	}
	ids := make([]string, len(orders))
	for i, o := range orders {
		ids[i] = o.ID
	}
	waitState(ctx, t, c, ids, api.OrderStaged)
	return orders, ids
}

// waitState waits until every order is in state (or past it).
func waitState(ctx context.Context, t *testing.T, c *api.Client, ids []string, state api.OrderState) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n := 0
		for _, id := range ids {
			o, err := c.GetOrder(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if o.State == state {
				n++
			} else if o.State.Final() {
				t.Fatalf("order %s is %s (%s) waiting for %s", id, o.State, o.Message, state)
			}
		}
		if n == len(ids) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("orders not %s within 2 minutes", state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// startManagerAndBootd starts the manager on the namespace's loopback and
// osim-bootd on the bridge (full DHCP, fed by the manager), and answers
// an admin client that dials inside the namespace.
func (l *installLab) startManagerAndBootd(ctx context.Context) *api.Client {
	t := l.t
	t.Helper()
	mgrDir := filepath.Join(l.dir, "manager")
	admin, err := exec.CommandContext(ctx, filepath.Join(l.bin, "osim-manager"), "token", "create", "--role", "admin",
		"--name", "lab-admin", "--data-dir", mgrDir).Output()
	if err != nil {
		t.Fatalf("admin token: %v", err)
	}
	l.start("osim-manager", append([]string{filepath.Join(l.bin, "osim-manager"), "serve", "--listen", "127.0.0.1:9000",
		"--data-dir", mgrDir, "--log-level", "info"}, l.managerArgs...)...)
	l.waitHTTP(ctx, managerURL+"/healthz", "osim-manager")
	c := api.NewClient(managerURL, strings.TrimSpace(string(admin)), false)
	c.HTTP = l.http
	join, err := c.CreateToken(ctx, api.TokenRequest{Role: api.RoleJoin, Site: labSite, Name: "lab-bootd"})
	if err != nil {
		t.Fatalf("join token: %v", err)
	}
	joinFile := filepath.Join(l.dir, "join.token")
	tftpRoot := filepath.Join(l.dir, "tftp")
	if err := os.MkdirAll(tftpRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"/usr/lib/ipxe/undionly.kpxe", "/usr/lib/ipxe/snponly.efi"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tftpRoot, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(joinFile, []byte(join.Secret), 0o600); err != nil {
		t.Fatal(err)
	}
	dns := ""
	if l.dns != "" {
		dns = ", dns: [" + l.dns + "]"
	}
	cfg := fmt.Sprintf(`address: %s
metrics_listen: 127.0.0.1:9169
data_dir: %s
dhcp:
  mode: full
  pools: [{network: 10.77.0.0/24, start: 10.77.0.100, end: 10.77.0.200, router: 10.77.0.1, lease_time: 1h%s}]
tftp: {root: %s}
http: {listen: "%s"}
boot: {arches: [bios, efi-x64], boot_files: {bios: undionly.kpxe, efi-x64: snponly.efi}, unknown: ignore}
manager: {url: "%s", join_token_file: %s, name: lab-bootd, site: %s}
`, labAddr, filepath.Join(l.dir, "bootd"), dns, tftpRoot, bootdHTTP, managerURL, joinFile, labSite)
	cfgPath := filepath.Join(l.dir, "bootd.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	l.start("osim-bootd", filepath.Join(l.bin, "osim-bootd"), "serve", "--config", cfgPath, "--log-level", "debug")
	l.waitHTTP(ctx, "http://127.0.0.1:9169/metrics", "osim-bootd")
	deadline := time.Now().Add(30 * time.Second)
	for {
		bs, err := c.ListBootServers(ctx)
		if err == nil && len(bs) == 1 && bs[0].Health == api.HealthHealthy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the boot server did not register: %v %+v\n%s", err, bs, l.logTail("osim-bootd", 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return c
}

// buildAndRegisterImages builds the osim installer's boot image and the
// test OS disk image with osim-ips's code and registers both: the boot
// image as the site's default, the disk image (zstd) as the OS image.
// It answers the raw disk image's path.
func (l *installLab) buildAndRegisterImages(ctx context.Context, c *api.Client) (boot, osImg api.Image, raw string) {
	t := l.t
	t.Helper()
	boot = l.buildAndRegisterBootImage(ctx, c)
	res, err := testimage.Build(ctx, testimage.Options{Out: filepath.Join(l.dir, "os-image")})
	if err != nil {
		t.Fatalf("test OS image: %v", err)
	}
	return boot, l.registerDiskImage(ctx, c, "osim-test", res.Disk), res.Disk.Raw.Path
}

// buildAndRegisterBootImage builds the osim installer's boot image and
// makes it the lab site's default.
func (l *installLab) buildAndRegisterBootImage(ctx context.Context, c *api.Client) api.Image {
	t := l.t
	t.Helper()
	bootDir := filepath.Join(l.dir, "boot-image")
	if _, err := bootimage.Build(ctx, bootimage.Options{Out: bootDir, Installer: filepath.Join(l.bin, "osim-installer")}); err != nil {
		t.Fatalf("boot image: %v", err)
	}
	boot, err := bootimage.Register(ctx, c, bootDir, "osim-installer", "lab")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutSite(ctx, labSite, api.Site{DefaultBootImage: boot.ID}); err != nil {
		t.Fatalf("site default boot image: %v", err)
	}
	return boot
}

// registerDiskImage uploads a disk image's zstd copy and registers it as
// an OS image (format disk) that grows its last partition to the disk.
func (l *installLab) registerDiskImage(ctx context.Context, c *api.Client, name string, d diskimage.Result) api.Image {
	t := l.t
	t.Helper()
	z := d.Compressed
	if z == nil {
		t.Fatalf("the disk image %s has no zstd copy", name)
	}
	f, err := os.Open(z.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := c.UploadBlob(ctx, z.SHA256, z.Size, f, 4<<20); err != nil {
		t.Fatalf("upload the disk image: %v", err)
	}
	img, err := c.CreateImage(ctx, api.ImageSpec{Name: name, Version: "lab", Kind: api.KindOS, Format: api.FormatDisk,
		Files: []api.ImageFile{{Name: name + ".img.zst", SHA256: z.SHA256, Size: z.Size, Role: api.RoleDisk,
			Compression: api.CompressionZstd, RawSize: d.Raw.Size}},
		Install: &api.InstallSettings{GrowLastPartition: true, OnFailure: api.OnFailurePowerOff}})
	if err != nil {
		t.Fatalf("register the disk image %s: %v", name, err)
	}
	return img
}

// checkInventory: the facts the installer reported name the disk QEMU
// was given (its size) and the guest's MAC.
func checkInventory(t *testing.T, g *guest, facts map[string]string) {
	t.Helper()
	size, mac := false, false
	for k, v := range facts {
		if strings.HasPrefix(k, "disk.") && strings.HasSuffix(k, ".size") && v == fmt.Sprint(g.diskSize) {
			size = true
		}
		if strings.EqualFold(v, g.mac) {
			mac = true
		}
	}
	if !size || !mac {
		t.Errorf("%s: inventory lacks the disk of %d bytes (%v) or MAC %s (%v): %v", g.name, g.diskSize, size, g.mac, mac, facts)
	}
}

// checkDiskHoldsImage: the guest's disk equals the image wherever the
// image has data, except inside the root partition (the installer wrote
// the first-boot seed into its filesystem) and the GPT headers and
// entries (the installer grew the last partition to the disk's end).
func checkDiskHoldsImage(t *testing.T, g *guest, rawImage string) {
	t.Helper()
	img, err := os.ReadFile(rawImage)
	if err != nil {
		t.Fatal(err)
	}
	disk, err := os.Open(g.disk)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	tbl, err := gpt.Read(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatalf("the raw image's GPT: %v", err)
	}
	skip := func(off int64) bool {
		lba := uint64(off / 512)
		if lba >= 1 && lba < 2+gpt.EntrySectors || lba >= tbl.Sectors-1-gpt.EntrySectors {
			return true // primary and backup headers and entry arrays
		}
		for _, p := range tbl.Partitions {
			if p.Type == gpt.TypeLinuxRootX64 && lba >= p.FirstLBA && lba <= p.LastLBA {
				return true
			}
		}
		return false
	}
	got := make([]byte, len(img))
	if _, err := disk.ReadAt(got, 0); err != nil {
		t.Fatalf("%s: read the guest's disk: %v", g.name, err)
	}
	const block = 4096
	compared, differ := 0, 0
	for off := 0; off < len(img); off += block {
		end := min(off+block, len(img))
		if skip(int64(off)) || skip(int64(end-1)) || allZero(img[off:end]) {
			continue
		}
		compared++
		if !bytes.Equal(img[off:end], got[off:end]) {
			if differ == 0 {
				t.Errorf("%s: the disk differs from the image at byte %d", g.name, off)
			}
			differ++
		}
	}
	if compared == 0 {
		t.Fatalf("%s: no block of the image compared", g.name)
	}
	if differ > 0 {
		t.Errorf("%s: %d of %d data blocks differ", g.name, differ, compared)
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
