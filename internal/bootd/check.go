package bootd

import (
	"fmt"
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

	"osim/controlplane/api"
	"osim/dataplane/dhcp"
	"osim/dataplane/httpboot"
	"osim/dataplane/xdp"
	"osim/internal/cmdline"
)

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
	manager       *ManagerSection
	managerClient *api.Client // manager.url with ca_file or insecure_tls
	joinToken     string
	bootFiles     map[dhcp.Arch]string
	unknown       dhcp.Action
	// egressCeiling is http.egress_ceiling in bytes/s (0: unset).
	egressCeiling float64
	// xdp is set when the config has an xdp section.
	xdp      *xdp.Config
	xdpIface string
	// discovery and boot loops (manager mode; discovery.go)
	discovery discoveryWiring
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
	if c.HTTP.EgressCeiling != "" {
		if w.egressCeiling, err = api.ParseRate(c.HTTP.EgressCeiling); err != nil {
			bad("http.egress_ceiling", "%v", err)
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
	w.baseURL = orDefault(c.HTTP.BaseURL, defaultBaseURL(w.httpListen, c.Address))
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
	c.checkDiscovery(w, bad)
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
	var err error
	if w.managerClient, err = api.NewClientCA(m.URL, "", m.CAFile, m.InsecureTLS); err != nil {
		bad("manager.ca_file", "%v", err)
	}
	if d := m.HeartbeatInterval; d != 0 && (d < time.Second || d > time.Hour) {
		bad("manager.heartbeat_interval", "%v: want 1s to 1h (unset: the manager's)", d)
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

// defaultBaseURL is http://<http.listen>, with the boot server's address
// in place of an unspecified listen host (0.0.0.0, [::]): the URL goes on
// targets' kernel command lines and into install plans, which must name
// an address a target can reach.
func defaultBaseURL(listen, address string) string {
	ap, err := netip.ParseAddrPort(listen)
	if err != nil || !ap.Addr().IsUnspecified() || address == "" {
		return "http://" + listen
	}
	return "http://" + net.JoinHostPort(address, strconv.Itoa(int(ap.Port())))
}
