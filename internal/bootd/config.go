package bootd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"osim/controlplane/api"
	"osim/dataplane/dhcp"
	"osim/dataplane/httpboot"
	"osim/dataplane/xdp"
	"osim/internal/cmdline"
)

// Config is the YAML file of `osim-bootd serve` (see README.md); tests and
// benchmarks fill it in Go.
type Config struct {
	// Address is the boot server's IPv4 address on the provisioning
	// network: DHCP server id and next-server, default host of the URLs.
	Address       string `yaml:"address,omitempty"`
	MetricsListen string `yaml:"metrics_listen,omitempty"`
	// LogLevel is debug, info (default), warn or error; --log-level wins.
	// SIGHUP re-reads it.
	LogLevel string `yaml:"log_level,omitempty"`
	// DataDir holds the process's Badger database (full mode's leases).
	DataDir string           `yaml:"data_dir,omitempty"`
	DHCP    DHCPSection      `yaml:"dhcp,omitempty"`
	TFTP    TFTPSection      `yaml:"tftp,omitempty"`
	HTTP    HTTPSection      `yaml:"http,omitempty"`
	Boot    BootSection      `yaml:"boot,omitempty"`
	Images  map[string]Image `yaml:"images,omitempty"`
	Targets []Target         `yaml:"targets,omitempty"`
	// Manager, when set, makes the targets, images and orders come from
	// the manager through the agent; Images and Targets must stay empty.
	Manager *ManagerSection `yaml:"manager,omitempty"`
	// XDP, when set, classifies and rate-limits PXE DHCP before the DHCP
	// service: an XDP program on Interface, or the same rules in Go
	// when Interface is empty or the program cannot attach.
	XDP *XDPSection `yaml:"xdp,omitempty"`
}

// XDPSection configures dataplane/xdp (see its README).
type XDPSection struct {
	Interface   string   `yaml:"interface,omitempty"`    // provisioning NIC; empty: the userspace guard only
	Unknown     string   `yaml:"unknown,omitempty"`      // pass, drop, discovery; default: discovery (proxy), pass (full)
	Rate        *uint32  `yaml:"rate,omitempty"`         // packets/s per client (chaddr); 0: no per-client limit; default 2
	Burst       *uint32  `yaml:"burst,omitempty"`        // default 10
	AdmitRate   *uint32  `yaml:"admit_rate,omitempty"`   // new clients per second not on the allow list; 0: unlimited; default 100
	AdmitBurst  *uint32  `yaml:"admit_burst,omitempty"`  // default 200
	Clients     int      `yaml:"clients,omitempty"`      // size of the bucket table; default 65536
	DropClasses []string `yaml:"drop_classes,omitempty"` // e.g. [dhcp] when nothing here answers other DHCP
}

// ManagerSection connects the boot server to a manager.
type ManagerSection struct {
	URL           string `yaml:"url,omitempty"`
	JoinToken     string `yaml:"join_token,omitempty"`      // used once, to register
	JoinTokenFile string `yaml:"join_token_file,omitempty"` // or read it from this file
	Name          string `yaml:"name,omitempty"`            // this boot server's name
	Site          string `yaml:"site,omitempty"`            // the site whose targets it serves
	InsecureTLS   bool   `yaml:"insecure_tls,omitempty"`    // skip TLS verification (labs)
}

// DHCPSection configures dataplane/dhcp.
type DHCPSection struct {
	Mode       string `yaml:"mode,omitempty"`        // proxy (default)
	Listen     string `yaml:"listen,omitempty"`      // default 0.0.0.0:67
	BootListen string `yaml:"boot_listen,omitempty"` // default 0.0.0.0:4011
	// Pools are full mode's address ranges, one per subnet served.
	Pools []dhcp.PoolConfig `yaml:"pools,omitempty"`
}

// TFTPSection configures dataplane/tftp.
type TFTPSection struct {
	Listen       string `yaml:"listen,omitempty"` // default <address>:69
	Root         string `yaml:"root,omitempty"`
	MaxBlksize   int    `yaml:"max_blksize,omitempty"`
	MaxWindow    int    `yaml:"max_window,omitempty"`
	MaxTransfers int    `yaml:"max_transfers,omitempty"`
	PortRange    string `yaml:"port_range,omitempty"`
	// Requests not acknowledged yet (possibly forged): their own cap, and
	// how long one waits for its first ACK (tftp.Config's defaults: 256, 2s).
	MaxUnacked      int           `yaml:"max_unacked,omitempty"`
	FirstAckTimeout time.Duration `yaml:"first_ack_timeout,omitempty"`
}

// HTTPSection configures dataplane/httpboot.
type HTTPSection struct {
	Listen  string `yaml:"listen,omitempty"`   // default <address>:8080
	BaseURL string `yaml:"base_url,omitempty"` // default http://<listen>
	Files   string `yaml:"files,omitempty"`
}

// BootSection is the site's boot policy: which NBP per arch, what unknown
// machines get.
type BootSection struct {
	Arches    []string          `yaml:"arches,omitempty"`
	BootFiles map[string]string `yaml:"boot_files,omitempty"`
	Unknown   string            `yaml:"unknown,omitempty"`
}

// Image is a standalone image: kernel, initrds, command line template.
type Image struct {
	Kernel  string            `yaml:"kernel,omitempty"`
	Initrds []string          `yaml:"initrds,omitempty"`
	Cmdline string            `yaml:"cmdline,omitempty"`
	Params  map[string]string `yaml:"params,omitempty"`
}

// Target is one machine: boot an image (with an order and its status
// token), boot its local disk, or be ignored.
type Target struct {
	MAC    string            `yaml:"mac,omitempty"`
	Action string            `yaml:"action,omitempty"` // boot (default with image), local, ignore
	Image  string            `yaml:"image,omitempty"`
	Params map[string]string `yaml:"params,omitempty"`
	Order  string            `yaml:"order,omitempty"`
	Token  string            `yaml:"token,omitempty"`
}

// LoadConfig reads the file, refusing unknown keys; Check checks it.
// No path: an empty config.
func LoadConfig(path string) (*Config, error) {
	var c Config
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	return &c, nil
}

// WriteFile writes c as the YAML LoadConfig reads (unset keys left out):
// how tests and benchmarks hand a Config built in Go to an osim-bootd
// process.
func (c *Config) WriteFile(path string) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return os.WriteFile(path, b, 0o644)
}

// wiring is a checked configuration, ready for the services.
type wiring struct {
	addr       netip.Addr
	dhcpMode   string
	dhcpListen string
	bootListen string
	tftpListen string
	httpListen string
	baseURL    string
	tftpRoot   string
	httpFiles  string
	portLo     int
	portHi     int
	backend    dhcp.FileConfig
	files      *dhcp.FileBackend // built from backend by check
	pools      []dhcp.Pool
	dataDir    string
	scripts    httpboot.StaticScripts
	tokens     httpboot.StaticTokens
	// manager mode (manager set): the agent answers instead of the file.
	manager   *ManagerSection
	joinToken string
	bootFiles map[dhcp.Arch]string
	unknown   dhcp.Action
	// xdp is set when the config has an xdp section.
	xdp      *xdp.Config
	xdpIface string
}

// check validates c after flags were applied and derives the defaults.
func (c *Config) check() (*wiring, error) {
	w, errs := c.checkKeys()
	if len(errs) > 0 {
		return nil, mistakes(errs)
	}
	return w, nil
}

// mistakes is the one error that lists them all.
func mistakes(errs []string) error {
	return fmt.Errorf("config has %d mistake(s):\n  %s", len(errs), strings.Join(errs, "\n  "))
}

// checkKeys validates c key by key: the wiring, and every mistake, each
// with its key. With mistakes the wiring is partial (what checked).
func (c *Config) checkKeys() (*wiring, []string) {
	var errs []string
	bad := func(key, format string, args ...any) {
		errs = append(errs, key+": "+fmt.Sprintf(format, args...))
	}
	w := &wiring{dhcpMode: c.DHCP.Mode}
	addr, err := netip.ParseAddr(c.Address)
	switch {
	case c.Address == "":
		bad("address", "required: the boot server's IPv4 address on the provisioning network")
	case err != nil || !addr.Is4():
		bad("address", "%q is not an IPv4 address", c.Address)
	case addr.IsUnspecified() || addr.IsMulticast():
		bad("address", "%q cannot be a server identifier", c.Address)
	default:
		w.addr = addr
	}
	switch w.dhcpMode {
	case "", "proxy":
		w.dhcpMode = "proxy"
	case "full":
		pools, err := dhcp.NewPools(c.DHCP.Pools)
		switch {
		case len(c.DHCP.Pools) == 0:
			bad("dhcp.pools", "full mode needs at least one pool")
		case err != nil:
			bad("dhcp.pools", "%v", err)
		default:
			w.pools = pools
		}
		if c.DataDir == "" {
			bad("data_dir", "full mode keeps its leases there: required")
		}
		w.dataDir = c.DataDir
	default:
		bad("dhcp.mode", "%q: want proxy or full", c.DHCP.Mode)
	}
	host := c.Address
	w.dhcpListen = orDefault(c.DHCP.Listen, "0.0.0.0:67")
	w.bootListen = orDefault(c.DHCP.BootListen, "0.0.0.0:4011")
	w.tftpListen = orDefault(c.TFTP.Listen, host+":69")
	w.httpListen = orDefault(c.HTTP.Listen, host+":8080")
	for _, l := range []struct{ key, set, v string }{{"dhcp.listen", c.DHCP.Listen, w.dhcpListen},
		{"dhcp.boot_listen", c.DHCP.BootListen, w.bootListen}, {"tftp.listen", c.TFTP.Listen, w.tftpListen},
		{"http.listen", c.HTTP.Listen, w.httpListen}} {
		if l.set == "" && !w.addr.IsValid() {
			continue // derived from a bad address: already reported
		}
		if ap, err := netip.ParseAddrPort(l.v); err != nil || !ap.Addr().Is4() {
			bad(l.key, "%q is not IPv4:port", l.v)
		}
	}
	if c.MetricsListen != "" && !validListen(c.MetricsListen) {
		bad("metrics_listen", "%q is not [IPv4]:port with a port 1-65535", c.MetricsListen)
	}
	if c.LogLevel != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
			bad("log_level", "%q: want debug, info, warn or error", c.LogLevel)
		}
	}
	w.baseURL = orDefault(c.HTTP.BaseURL, "http://"+w.httpListen)
	if !strings.HasPrefix(w.baseURL, "http://") && !strings.HasPrefix(w.baseURL, "https://") {
		bad("http.base_url", "%q is not an http(s) URL", w.baseURL)
	}
	w.tftpRoot, w.httpFiles = c.TFTP.Root, c.HTTP.Files
	for _, d := range [][2]string{{"tftp.root", w.tftpRoot}, {"http.files", w.httpFiles}} {
		if d[1] == "" {
			// With a manager, image files come from it: a local folder
			// of extra HTTP files is optional.
			if d[0] == "http.files" && c.Manager != nil {
				continue
			}
			bad(d[0], "required: a folder")
			continue
		}
		if st, err := os.Stat(d[1]); err != nil || !st.IsDir() {
			bad(d[0], "%q is not a readable folder", d[1])
		}
	}
	if w.portLo, w.portHi, err = ParsePortRange(c.TFTP.PortRange); err != nil {
		bad("tftp.port_range", "%v", err)
	}

	if c.Manager != nil {
		c.checkManager(w, bad)
	}
	if c.XDP != nil {
		c.checkXDP(w, bad)
	}
	w.backend = dhcp.FileConfig{Arches: c.Boot.Arches, BootFiles: c.Boot.BootFiles, Unknown: c.Boot.Unknown}
	if w.backend.BootFiles == nil {
		w.backend.BootFiles = map[string]string{"bios": "undionly.kpxe", "efi-x64": "snponly.efi"}
	}
	w.scripts, w.tokens = httpboot.StaticScripts{}, httpboot.StaticTokens{}
	for _, name := range slices.Sorted(maps.Keys(c.Images)) {
		if c.Images[name].Kernel == "" {
			bad("images."+name+".kernel", "required")
		}
		// What the manager refuses at registration, refused here too:
		// a template that cannot render fails every boot of the image.
		if err := cmdline.Check(c.Images[name].Cmdline, c.Images[name].Params); err != nil {
			bad("images."+name+".cmdline", "%v", err)
		}
	}
	seen := map[string]int{}
	for i, t := range c.Targets {
		key := fmt.Sprintf("targets[%d]", i)
		mac, err := net.ParseMAC(t.MAC)
		if err != nil || len(mac) != 6 {
			bad(key+".mac", "%q is not an Ethernet MAC address", t.MAC)
			continue
		}
		if j, dup := seen[mac.String()]; dup {
			bad(key+".mac", "%q is targets[%d] again", t.MAC, j)
			continue
		}
		seen[mac.String()] = i
		action := t.Action
		if action == "" {
			action = "boot"
		}
		switch action {
		case "boot":
			img, ok := c.Images[t.Image]
			if !ok {
				bad(key+".image", "%q is not defined under images", t.Image)
				continue
			}
			if t.Order == "" || t.Token == "" {
				bad(key, "a target that boots an image needs order and token (the installer's status reports)")
				continue
			}
			if _, dup := w.tokens[t.Order]; dup {
				bad(key+".order", "%q used twice", t.Order)
			}
			params := map[string]string{}
			for k, v := range img.Params {
				params[k] = v
			}
			for k, v := range t.Params {
				params[k] = v
			}
			w.scripts[mac.String()] = httpboot.Boot{Kernel: img.Kernel, Initrds: img.Initrds, Cmdline: img.Cmdline,
				Params: params, Order: t.Order, Token: t.Token}
			w.tokens[t.Order] = t.Token
		case "local":
			w.scripts[mac.String()] = httpboot.Boot{Local: true}
		case "ignore":
		default:
			bad(key+".action", "%q: want boot, local or ignore", t.Action)
			continue
		}
		w.backend.Machines = append(w.backend.Machines, dhcp.FileMachine{MAC: mac.String(), Action: action})
	}
	if len(errs) == 0 {
		// The DHCP backend checks its own part (arches, boot files, duplicate MACs).
		if w.files, err = dhcp.NewFileBackend(w.backend); err != nil {
			errs = append(errs, "boot: "+err.Error())
		}
	}
	return w, errs
}

// checkManager validates the manager section and what it excludes.
func (c *Config) checkManager(w *wiring, bad func(key, format string, args ...any)) {
	m := c.Manager
	w.manager = m
	if u, err := url.Parse(m.URL); m.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("manager.url", "%q is not an http(s) URL of the manager", m.URL)
	}
	switch {
	case m.JoinToken != "" && m.JoinTokenFile != "":
		bad("manager.join_token", "set join_token or join_token_file, not both")
	case m.JoinTokenFile != "":
		b, err := os.ReadFile(m.JoinTokenFile)
		if err != nil {
			bad("manager.join_token_file", "%v", err)
		} else if w.joinToken = strings.TrimSpace(string(b)); w.joinToken == "" {
			bad("manager.join_token_file", "%q is empty", m.JoinTokenFile)
		}
	default:
		// Empty is fine once registered: the credential is in data_dir.
		w.joinToken = m.JoinToken
	}
	if !api.ValidName(m.Name) {
		bad("manager.name", "%q: want 1-63 of A-Z a-z 0-9 . _ -", m.Name)
	}
	if !api.ValidName(m.Site) {
		bad("manager.site", "%q: want 1-63 of A-Z a-z 0-9 . _ -", m.Site)
	}
	if c.DataDir == "" {
		bad("data_dir", "manager mode keeps the synced MDB, the event buffer and the blobs there: required")
	}
	w.dataDir = c.DataDir
	if len(c.Targets) > 0 {
		bad("targets", "must be empty with manager: targets come from the manager")
	}
	if len(c.Images) > 0 {
		bad("images", "must be empty with manager: images come from the manager")
	}
	bootFiles := c.Boot.BootFiles
	if bootFiles == nil {
		bootFiles = map[string]string{"bios": "undionly.kpxe", "efi-x64": "snponly.efi"}
	}
	w.bootFiles = map[dhcp.Arch]string{}
	for _, name := range slices.Sorted(maps.Keys(bootFiles)) {
		a, err := dhcp.ParseArchName(name)
		if err != nil {
			bad("boot.boot_files."+name, "%v", err)
			continue
		}
		w.bootFiles[a.Canonical()] = bootFiles[name]
	}
	if c.Boot.Unknown != "" {
		a, err := dhcp.ParseAction(c.Boot.Unknown)
		if err != nil || (a != dhcp.ActionIgnore && a != dhcp.ActionDiscovery) {
			bad("boot.unknown", "%q: want discovery or ignore", c.Boot.Unknown)
		}
		w.unknown = a
	}
}

// validListen reports whether s is a TCP listen address serve can use:
// an IPv4 address or none (all), and a port 1-65535.
func validListen(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	if a, err := netip.ParseAddr(host); host != "" && (err != nil || !a.Is4()) {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535
}

// ParsePortRange reads LO:HI (tftp.port_range, --port-range); "" is no
// range (the kernel's ephemeral ports).
func ParsePortRange(s string) (int, int, error) {
	if s == "" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(s, ":")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("--port-range %q: want LO:HI with 1 <= LO <= HI <= 65535", s)
	}
	return lo, hi, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// checkXDP validates the xdp section into an xdp.Config whose ports are the
// ones the services bind (XDP sees the real port numbers).
func (c *Config) checkXDP(w *wiring, bad func(key, format string, args ...any)) {
	x := c.XDP
	cfg := xdp.DefaultConfig()
	port := func(hostport string) uint16 {
		ap, err := netip.ParseAddrPort(hostport)
		if err != nil {
			return 0 // reported by the listen checks
		}
		return ap.Port()
	}
	cfg.Ports = xdp.Ports{DHCP: port(w.dhcpListen), Proxy: port(w.bootListen), TFTP: port(w.tftpListen)}
	if w.portLo > 0 {
		cfg.Ports.TFTPLow, cfg.Ports.TFTPHigh = uint16(w.portLo), uint16(w.portHi)
	}
	unknown := x.Unknown
	if unknown == "" {
		// In full mode this service hands out the addresses: unknown
		// machines' plain DHCP must pass. In proxy mode only their PXE
		// requests matter (discovery).
		unknown = "discovery"
		if w.dhcpMode == "full" {
			unknown = "pass"
		}
	}
	u, err := xdp.ParseUnknown(unknown)
	if err != nil {
		bad("xdp.unknown", "%q: want pass, drop or discovery", x.Unknown)
	}
	cfg.Unknown = u
	for dst, v := range map[*uint32]*uint32{&cfg.Rate: x.Rate, &cfg.Burst: x.Burst, &cfg.AdmitRate: x.AdmitRate, &cfg.AdmitBurst: x.AdmitBurst} {
		if v != nil {
			*dst = *v
		}
	}
	for _, r := range []struct {
		key string
		v   uint32
	}{{"xdp.rate", cfg.Rate}, {"xdp.admit_rate", cfg.AdmitRate}} {
		if r.v > xdp.MaxRate {
			bad(r.key, "%d: at most %d", r.v, xdp.MaxRate)
		}
	}
	if cfg.Rate > 0 && cfg.Burst == 0 {
		bad("xdp.burst", "0 with a rate: every packet would be over its limit")
	}
	if x.Clients < 0 {
		bad("xdp.clients", "%d: want a positive table size", x.Clients)
	}
	cfg.Clients = x.Clients
	for i, name := range x.DropClasses {
		cls, ok := xdp.ParseClass(name)
		if !ok {
			bad(fmt.Sprintf("xdp.drop_classes[%d]", i), "%q is not a traffic class", name)
			continue
		}
		cfg.Actions[cls] = xdp.ActionDrop
	}
	if x.Interface != "" {
		if _, err := net.InterfaceByName(x.Interface); err != nil {
			bad("xdp.interface", "%q: %v", x.Interface, err)
		}
	}
	w.xdp, w.xdpIface = &cfg, x.Interface
}
