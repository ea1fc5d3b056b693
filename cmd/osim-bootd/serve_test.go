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
)

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
	stopLogged(t, cmd, stderr)
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
