package bootd

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"osim/dataplane/dhcp"
	"osim/dataplane/xdp"
)

func TestParsePortRange(t *testing.T) {
	for in, want := range map[string][2]int{"": {0, 0}, "30000:30099": {30000, 30099}, "69:69": {69, 69}} {
		lo, hi, err := ParsePortRange(in)
		if err != nil || lo != want[0] || hi != want[1] {
			t.Errorf("ParsePortRange(%q) = %d, %d, %v; want %v", in, lo, hi, err, want)
		}
	}
	for _, bad := range []string{"1", "0:10", "10:5", "a:b", "1:70000", ":"} {
		if _, _, err := ParsePortRange(bad); err == nil {
			t.Errorf("ParsePortRange(%q) accepted", bad)
		}
	}
}

func TestExampleServeConfigIsValid(t *testing.T) {
	c, err := LoadConfig("testdata/serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.check()
	if err != nil {
		t.Fatal(err)
	}
	if w.baseURL != "http://10.0.0.1:8080" || w.tftpListen != "10.0.0.1:69" || w.dhcpMode != "proxy" {
		t.Errorf("defaults: base %q tftp %q mode %q", w.baseURL, w.tftpListen, w.dhcpMode)
	}
	if len(w.backend.Machines) != 3 || len(w.scripts) != 2 || w.tokens["o-1"] != "3b1f0c9e2d" {
		t.Errorf("targets: %d machines, %d scripts, tokens %v", len(w.backend.Machines), len(w.scripts), w.tokens)
	}
	if b := w.scripts["52:54:00:00:00:01"]; b.Params["preseed"] == "" || b.Kernel != "debian/vmlinuz" {
		t.Errorf("boot of target 1: %+v", b)
	}
}

func TestExampleManagerConfigIsValid(t *testing.T) {
	c, err := LoadConfig("testdata/serve-manager.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.check()
	if err != nil {
		t.Fatal(err)
	}
	if w.manager == nil || w.manager.Site != "lab" || w.joinToken != "join-0123456789" || w.dataDir != "/var/lib/osim-bootd" {
		t.Errorf("manager wiring: %+v, join token %q, data_dir %q", w.manager, w.joinToken, w.dataDir)
	}
	if w.bootFiles[dhcp.ArchBIOS] != "undionly.kpxe" || w.bootFiles[dhcp.ArchEFIx64] != "snponly.efi" || w.unknown != dhcp.ActionDiscovery {
		t.Errorf("boot policy: %v, unknown %v", w.bootFiles, w.unknown)
	}
	if d := w.discovery; d.image != "img-0123456789ab" || d.then != "poweroff" || d.loop.Boots != 5 || d.loop.Window != 30*time.Minute ||
		d.limits.Interval != 10*time.Minute || d.limits.Rate != 100 {
		t.Errorf("discovery wiring: %+v", d)
	}
}

// configCase is a config that LoadConfig or check must refuse with
// an error containing want.
type configCase struct{ name, yaml, want string }

func wantConfigErrors(t *testing.T, cases []configCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(p, []byte(c.yaml), 0o644)
			cfg, err := LoadConfig(p)
			if err == nil {
				_, err = cfg.check()
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestManagerConfigNamesEachMistake(t *testing.T) {
	dir := t.TempDir()
	base := "address: 10.0.0.1\ndata_dir: " + dir + "\ntftp: {root: " + dir + "}\nhttp: {files: " + dir + "}\n"
	mgr := "manager: {url: 'https://m:8443', join_token: j, name: bs1, site: lab}\n"
	cases := []configCase{
		{"targets with manager", base + mgr + "targets: [{mac: '52:54:00:00:00:01', action: local}]\n", "targets: must be empty with manager"},
		{"images with manager", base + mgr + "images: {i: {kernel: k}}\n", "images: must be empty with manager"},
		{"no data_dir", strings.Replace(base, "data_dir: "+dir+"\n", "", 1) + mgr, "data_dir: manager mode keeps"},
		{"bad url", base + "manager: {url: 'manager:8443', join_token: j, name: bs1, site: lab}\n", `manager.url: "manager:8443"`},
		{"both tokens", base + "manager: {url: 'https://m', join_token: j, join_token_file: /x, name: bs1, site: lab}\n", "not both"},
		{"missing token file", base + "manager: {url: 'https://m', join_token_file: /nonexistent/t, name: bs1, site: lab}\n", "manager.join_token_file"},
		{"bad name", base + "manager: {url: 'https://m', join_token: j, name: 'a b', site: lab}\n", `manager.name: "a b"`},
		{"no site", base + "manager: {url: 'https://m', join_token: j, name: bs1}\n", `manager.site: ""`},
		{"missing CA file", base + "manager: {url: 'https://m', join_token: j, name: bs1, site: lab, ca_file: /nonexistent/ca.pem}\n", "manager.ca_file"},
		{"heartbeat too often", base + "manager: {url: 'https://m', join_token: j, name: bs1, site: lab, heartbeat_interval: 500ms}\n", "manager.heartbeat_interval: 500ms"},
		{"unknown key", base + "manager: {url: 'https://m', token: j, name: bs1, site: lab}\n", "field token not found"},
		{"discovery image without discovery", base + mgr + "boot: {unknown: ignore, discovery_image: img-1}\n", `boot.discovery_image: set, but boot.unknown is "ignore"`},
		{"discovery image without manager", base + "boot: {unknown: discovery, discovery_image: img-1}\n", "boot.discovery_image: needs a manager"},
		{"bad discover_then", base + mgr + "boot: {unknown: discovery, discovery_image: img-1, discover_then: reboot}\n", `boot.discover_then: "reboot"`},
		{"short loop window", base + mgr + "boot: {loop_window: 30s}\n", "boot.loop_window: 30s"},
		{"negative loop boots", base + mgr + "boot: {loop_boots: -1}\n", "boot.loop_boots: -1"},
		{"negative discover rate", strings.Replace(base, "http: {files: "+dir+"}", "http: {files: "+dir+", discover_rate: -1}", 1) + mgr, "http.discover_rate"},
		{"egress ceiling without a unit", strings.Replace(base, "http: {files: "+dir+"}", "http: {files: "+dir+", egress_ceiling: 1000}", 1) + mgr, `http.egress_ceiling: "1000" is not a rate`},
	}
	wantConfigErrors(t, cases)
}

func TestServeConfigNamesEachMistake(t *testing.T) {
	dir := t.TempDir()
	base := "address: 10.0.0.1\ntftp: {root: " + dir + "}\nhttp: {files: " + dir + "}\n"
	cases := []configCase{
		{"unknown key", base + "tftpp: {}\n", "field tftpp not found"},
		{"missing address", "tftp: {root: " + dir + "}\nhttp: {files: " + dir + "}\n", "address: required"},
		{"bad address", strings.Replace(base, "10.0.0.1", "10.0.0.256", 1), `address: "10.0.0.256" is not an IPv4 address`},
		{"bad mode", base + "dhcp: {mode: relay}\n", `dhcp.mode: "relay": want proxy or full`},
		{"cmdline unknown field", base + "images: {deb: {kernel: k, cmdline: 'x {{.StatusUrl}}'}}\n", "images.deb.cmdline:"},
		{"cmdline range", base + "images: {deb: {kernel: k, cmdline: 'x{{range 200000}}A{{end}}'}}\n", "images.deb.cmdline:"},
		{"full without pools", base + "dhcp: {mode: full}\ndata_dir: " + dir + "\n", "dhcp.pools: full mode needs at least one pool"},
		{"full without data_dir", base + "dhcp: {mode: full, pools: [{network: 10.0.0.0/24, start: 10.0.0.100, end: 10.0.0.200}]}\n", "data_dir: full mode keeps its leases there"},
		{"bad pool", base + "dhcp: {mode: full, pools: [{network: 10.0.0.0/24, start: 10.0.1.100, end: 10.0.0.200}]}\ndata_dir: " + dir + "\n", "dhcp.pools:"},
		{"missing folder", "address: 10.0.0.1\ntftp: {root: /nonexistent/x}\nhttp: {files: " + dir + "}\n", `tftp.root: "/nonexistent/x" is not a readable folder`},
		{"bad listen", base + "dhcp: {listen: 'localhost:67'}\n", `dhcp.listen: "localhost:67" is not IPv4:port`},
		{"bad port range", "address: 10.0.0.1\ntftp: {root: " + dir + ", port_range: '9:1'}\nhttp: {files: " + dir + "}\n", "tftp.port_range"},
		{"bad mac", base + "targets: [{mac: 'zz', action: local}]\n", `targets[0].mac: "zz" is not an Ethernet MAC address`},
		{"unknown image", base + "targets: [{mac: '52:54:00:00:00:01', image: nope, order: o, token: t}]\n", `targets[0].image: "nope" is not defined`},
		{"boot without token", base + "images: {i: {kernel: k}}\ntargets: [{mac: '52:54:00:00:00:01', image: i}]\n", "needs order and token"},
		{"bad action", base + "targets: [{mac: '52:54:00:00:00:01', action: reboot}]\n", `targets[0].action: "reboot": want boot, local or ignore`},
		{"image without kernel", base + "images: {i: {initrds: [x]}}\n", "images.i.kernel: required"},
		{"xdp unknown", base + "xdp: {unknown: maybe}\n", `xdp.unknown: "maybe": want pass, drop or discovery`},
		{"xdp class", base + "xdp: {drop_classes: [dhcp, smtp]}\n", `xdp.drop_classes[1]: "smtp" is not a traffic class`},
		{"xdp interface", base + "xdp: {interface: nosuchnic0}\n", `xdp.interface: "nosuchnic0"`},
		{"xdp burst", base + "xdp: {rate: 5, burst: 0}\n", "xdp.burst: 0 with a rate"},
		{"duplicate mac", base + "targets: [{mac: '52:54:00:00:00:01', action: local}, {mac: '52-54-00-00-00-01', action: ignore}]\n", `targets[1].mac: "52-54-00-00-00-01" is targets[0] again`},
	}
	wantConfigErrors(t, cases)
}

// TestXDPSectionUsesTheBoundPortsAndAModeDefault checks that the XDP
// classifier is told the ports the services really bind, and that unknown
// clients pass in full mode (this server hands out the addresses) but get
// the discovery policy in proxy mode.
func TestXDPSectionUsesTheBoundPortsAndAModeDefault(t *testing.T) {
	dir := t.TempDir()
	base := "address: 10.0.0.1\ntftp: {root: " + dir + ", listen: 10.0.0.1:6969, port_range: '20000:20099'}\nhttp: {files: " + dir + "}\n" +
		"dhcp: {listen: 0.0.0.0:1067, boot_listen: 0.0.0.0:14011}\n"
	for _, c := range []struct {
		yaml    string
		unknown xdp.Unknown
	}{
		{base + "xdp: {}\n", xdp.UnknownDiscovery},
		{strings.Replace(base, "dhcp: {", "data_dir: "+dir+"\ndhcp: {mode: full, pools: [{network: 10.0.0.0/24, start: 10.0.0.100, end: 10.0.0.200}], ", 1) + "xdp: {rate: 0}\n", xdp.UnknownPass},
	} {
		p := filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(p, []byte(c.yaml), 0o644)
		cfg, err := LoadConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		w, err := cfg.check()
		if err != nil {
			t.Fatal(err)
		}
		want := xdp.Ports{DHCP: 1067, Proxy: 14011, TFTP: 6969, TFTPLow: 20000, TFTPHigh: 20099}
		if w.xdp == nil || w.xdp.Ports != want || w.xdp.Unknown != c.unknown {
			t.Fatalf("xdp config %+v, want ports %+v and unknown %v", w.xdp, want, c.unknown)
		}
	}
}

// TestWriteFileIsWhatLoadConfigReads: a Config built in Go (tests,
// benchmarks) reaches a process unchanged, explicit zeros included.
func TestWriteFileIsWhatLoadConfigReads(t *testing.T) {
	zero := uint32(0)
	for _, path := range []string{"testdata/serve.yaml", "testdata/serve-manager.yaml"} {
		c, err := LoadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		c.XDP = &XDPSection{Rate: &zero, DropClasses: []string{"dhcp"}}
		c.TFTP.FirstAckTimeout = 3 * time.Second
		c.DHCP.Pools = []dhcp.PoolConfig{{Network: "10.0.0.0/24", Start: "10.0.0.100", End: "10.0.0.200"}}
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := c.WriteFile(p); err != nil {
			t.Fatal(err)
		}
		back, err := LoadConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		// Empty and nil maps and slices are the same config: compare what
		// each writes.
		p2 := filepath.Join(t.TempDir(), "again.yaml")
		if err := back.WriteFile(p2); err != nil {
			t.Fatal(err)
		}
		b1, _ := os.ReadFile(p)
		b2, _ := os.ReadFile(p2)
		if string(b1) != string(b2) || back.XDP == nil || back.XDP.Rate == nil || *back.XDP.Rate != 0 ||
			back.TFTP.FirstAckTimeout != 3*time.Second || !reflect.DeepEqual(back.Boot, c.Boot) || len(back.Targets) != len(c.Targets) {
			t.Fatalf("%s: wrote\n%s\nread back and wrote\n%s", path, b1, b2)
		}
	}
	if err := (&Config{}).WriteFile(filepath.Join(t.TempDir(), "empty.yaml")); err != nil {
		t.Fatal(err)
	}
}

func TestBaseURLDefaultNamesTheAddressWhenHTTPListensOnAll(t *testing.T) {
	c, err := LoadConfig("testdata/serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.HTTP.Listen = "0.0.0.0:8081"
	w, err := c.check()
	if err != nil {
		t.Fatal(err)
	}
	if w.baseURL != "http://"+c.Address+":8081" {
		t.Errorf("base URL %q, want the address %s with the listen port", w.baseURL, c.Address)
	}
	c.HTTP.BaseURL = "http://boot.example:80"
	if w, err = c.check(); err != nil || w.baseURL != c.HTTP.BaseURL {
		t.Errorf("an explicit base URL %q became %q (%v)", c.HTTP.BaseURL, w.baseURL, err)
	}
}
