package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"osim/dataplane/dhcp"
	"osim/dataplane/xdp"
)

func TestExampleServeConfigIsValid(t *testing.T) {
	c, err := loadServeConfig("testdata/serve.yaml")
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
	c, err := loadServeConfig("testdata/serve-manager.yaml")
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
	if w.bootFiles[dhcp.ArchBIOS] != "undionly.kpxe" || w.bootFiles[dhcp.ArchEFIx64] != "snponly.efi" || w.unknown != dhcp.ActionIgnore {
		t.Errorf("boot policy: %v, unknown %v", w.bootFiles, w.unknown)
	}
}

// configCase is a config that loadServeConfig or check must refuse with
// an error containing want.
type configCase struct{ name, yaml, want string }

func wantConfigErrors(t *testing.T, cases []configCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(p, []byte(c.yaml), 0o644)
			cfg, err := loadServeConfig(p)
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
		{"unknown key", base + "manager: {url: 'https://m', token: j, name: bs1, site: lab}\n", "field token not found"},
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
		cfg, err := loadServeConfig(p)
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

// TestServeRunsTFTPAndHTTPAndStopsOnSIGTERM runs the real binary on
// loopback ports: the NBP over TFTP, the target's script and a status
// report over HTTP, metrics, then SIGTERM and exit 0.
func TestServeRunsTFTPAndHTTPAndStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBootd(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tftp"), 0o755)
	os.MkdirAll(filepath.Join(dir, "files", "debian"), 0o755)
	nbp := bytes.Repeat([]byte("nbp!"), 10000)
	os.WriteFile(filepath.Join(dir, "tftp", "undionly.kpxe"), nbp, 0o644)
	os.WriteFile(filepath.Join(dir, "files", "debian", "vmlinuz"), []byte("kernel"), 0o644)
	httpPort, metricsPort, tftpPort := freeTCPPort(t), freeTCPPort(t), freeUDPPort(t)
	cfg := fmt.Sprintf(`address: 127.0.0.1
metrics_listen: 127.0.0.1:%d
dhcp: {listen: 127.0.0.1:%d, boot_listen: 127.0.0.1:%d}
tftp: {root: %s, listen: 127.0.0.1:%d}
http: {files: %s, listen: 127.0.0.1:%d}
images: {deb: {kernel: debian/vmlinuz, cmdline: "console=ttyS0 osim.token={{.Token}}"}}
targets: [{mac: "52:54:00:00:00:01", image: deb, order: o-1, token: tok1}]
`, metricsPort, freeUDPPort(t), freeUDPPort(t), filepath.Join(dir, "tftp"), tftpPort, filepath.Join(dir, "files"), httpPort)
	cmd, stderr := startServe(t, bin, dir, cfg)
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	var script string
	for try := 0; ; try++ {
		resp, err := http.Get(base + "/ipxe/52-54-00-00-00-01")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			script = string(b)
			break
		}
		if try == 100 {
			t.Fatalf("http never came up: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{"#!ipxe", base + "/files/debian/vmlinuz", "osim.token=tok1", "boot"} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	resp, err := http.Post(base+"/status/o-1", "application/json", strings.NewReader(`{"phase":"installing"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status without token: %d, want 401", resp.StatusCode)
	}
	// TFTP through the same process.
	got := tftpGet(t, tftpPort, "undionly.kpxe")
	if !bytes.Equal(got, nbp) {
		t.Fatalf("tftp: %d bytes, want %d identical", len(got), len(nbp))
	}
	// The server counts the transfer when it reads our final ACK, a moment
	// after tftpGet returned: scrape until it shows or a second passes.
	want := []string{`osim_tftp_transfers_completed_total{direction="read"} 1`, "osim_httpboot_", "osim_dhcp_"}
	var missing []string
	for deadline := time.Now().Add(time.Second); ; time.Sleep(20 * time.Millisecond) {
		mresp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
		if err != nil {
			t.Fatal(err)
		}
		mb, _ := io.ReadAll(mresp.Body)
		mresp.Body.Close()
		missing = missing[:0]
		for _, w := range want {
			if !strings.Contains(string(mb), w) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, w := range missing {
		t.Errorf("metrics lack %q", w)
	}
	stopWithSIGTERM(t, cmd, stderr)
}

// tftpGet fetches name in lockstep at 512 bytes, the simplest client.
func tftpGet(t *testing.T, port int, name string) []byte {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	c.WriteToUDP(append([]byte{0, 1}, name+"\x00octet\x00"...), srv)
	var out []byte
	buf := make([]byte, 600)
	for block := uint16(1); ; block++ {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("tftp block %d: %v", block, err)
		}
		if binary.BigEndian.Uint16(buf) != 3 || binary.BigEndian.Uint16(buf[2:]) != block {
			t.Fatalf("tftp: unexpected % x", buf[:min(n, 8)])
		}
		out = append(out, buf[4:n]...)
		c.WriteToUDP([]byte{0, 4, byte(block >> 8), byte(block)}, from)
		if n-4 < 512 {
			return out
		}
	}
}
