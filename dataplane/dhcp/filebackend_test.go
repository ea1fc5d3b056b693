package dhcp

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestExampleBackendFileLoads(t *testing.T) {
	fb, err := LoadFileBackend(filepath.Join("testdata", "backend.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cases := []struct {
		mac, arch string
		action    Action
		file      string
		script    string
		httpBoot  string
	}{
		{"52:54:00:00:00:01", "bios", ActionBootImage, "undionly.kpxe", "http://10.0.0.1:8080/ipxe/52:54:00:00:00:01", "http://10.0.0.1:8080/snponly.efi"},
		{"52:54:00:00:00:01", "efi-arm64", ActionBootImage, "arm64/snponly.efi", "http://10.0.0.1:8080/ipxe/52:54:00:00:00:01", "http://10.0.0.1:8080/snponly.efi"},
		{"52:54:00:00:00:02", "efi-x64", ActionBootImage, "ipxe.efi", "http://10.0.0.1:8080/ipxe/custom/web01", "http://10.0.0.1:8080/ipxe.efi"},
		{"52:54:00:00:00:02", "bios", ActionBootImage, "undionly.kpxe", "http://10.0.0.1:8080/ipxe/custom/web01", "http://10.0.0.1:8080/ipxe.efi"},
		{"52:54:00:00:00:03", "bios", ActionBootLocal, "undionly.kpxe", "http://10.0.0.1:8080/ipxe/52:54:00:00:00:03", "http://10.0.0.1:8080/snponly.efi"},
		{"52:54:00:00:00:04", "bios", ActionIgnore, "undionly.kpxe", "http://10.0.0.1:8080/ipxe/52:54:00:00:00:04", "http://10.0.0.1:8080/snponly.efi"},
		{"aa:bb:cc:dd:ee:ff", "efi-x64", ActionDiscovery, "snponly.efi", "http://10.0.0.1:8080/ipxe/discovery", "http://10.0.0.1:8080/snponly.efi"},
	}
	for _, c := range cases {
		a, _ := ParseArchName(c.arch)
		d, err := fb.Lookup(ctx, mustMAC(t, c.mac), a)
		if err != nil {
			t.Fatalf("%s: %v", c.mac, err)
		}
		if d.Action != c.action || d.BootFiles[a] != c.file || d.ScriptURL != c.script || d.HTTPBootURL != c.httpBoot {
			t.Errorf("%s %s: got %v %q %q %q", c.mac, c.arch, d.Action, d.BootFiles[a], d.ScriptURL, d.HTTPBootURL)
		}
	}
}

func TestFileBackendUnknownMachineIsIgnoredByDefault(t *testing.T) {
	fb, err := ParseFileBackend([]byte("http_base: http://10.0.0.1\nboot_files: {bios: undionly.kpxe, efi-x64: snponly.efi}\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = fb.Lookup(context.Background(), macA, ArchBIOS)
	if !errors.Is(err, ErrUnknownMAC) || !strings.Contains(err.Error(), macA.String()) {
		t.Fatalf("got %v, want ErrUnknownMAC naming the MAC", err)
	}
}

func TestFileBackendRejectsEachMistakeByName(t *testing.T) {
	const head = "http_base: http://10.0.0.1:8080\nboot_files: {bios: undionly.kpxe, efi-x64: snponly.efi}\n"
	cases := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"bad MAC", head + "machines:\n  - {mac: 52:54:00:zz:00:01, action: boot}\n", []string{`machines[0]`, `bad MAC "52:54:00:zz:00:01"`}},
		{"MAC of 8 bytes", head + "machines:\n  - {mac: 01:02:03:04:05:06:07:08, action: boot}\n", []string{`machines[0]`, "bad MAC"}},
		{"unknown action", head + "machines:\n  - {mac: 52:54:00:00:00:01, action: reboot}\n", []string{`machines[0] (52:54:00:00:00:01)`, `unknown action "reboot"`}},
		{"duplicate MAC in another spelling", head + "machines:\n  - {mac: 52:54:00:00:00:01}\n  - {mac: 52-54-00-00-00-01}\n",
			[]string{`machines[1] (52:54:00:00:00:01): duplicate MAC, already in machines[0]`}},
		{"missing boot file for a site arch", "http_base: http://10.0.0.1\narches: [bios, efi-x64, efi-arm64]\nboot_files: {bios: a, efi-x64: b}\n",
			[]string{"boot_files: missing boot file for arch efi-arm64"}},
		{"default arches need bios", "http_base: http://10.0.0.1\nboot_files: {efi-x64: b}\n", []string{"missing boot file for arch bios"}},
		{"empty boot file in an override", head + "machines:\n  - {mac: 52:54:00:00:00:01, boot_files: {efi-x64: ''}}\n",
			[]string{"machines[0] (52:54:00:00:00:01).boot_files: missing boot file for arch efi-x64"}},
		{"unknown arch name", head + "arches: [bios, sparc]\n", []string{`arches: unknown arch "sparc"`}},
		{"unknown arch in boot_files", "http_base: http://10.0.0.1\nboot_files: {bios: a, efi-x64: b, efi-x86: c}\n", []string{`boot_files: unknown arch "efi-x86"`}},
		{"unknown policy", head + "unknown: register\n", []string{`unknown: "register" is not a policy`}},
		{"missing http_base", "boot_files: {bios: a, efi-x64: b}\n", []string{"http_base is missing"}},
		{"http_base not a URL", "http_base: 10.0.0.1:8080\nboot_files: {bios: a, efi-x64: b}\n", []string{`http_base "10.0.0.1:8080" is not an absolute http(s) URL`}},
		{"misspelt key", head + "machine:\n  - {mac: 52:54:00:00:00:01}\n", []string{"field machine not found"}},
		{"several mistakes reported together", head + "unknown: x\nmachines:\n  - {mac: nope}\n", []string{`unknown: "x"`, `bad MAC "nope"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseFileBackend([]byte(c.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadFileBackendNamesTheFile(t *testing.T) {
	_, err := LoadFileBackend(filepath.Join(t.TempDir(), "absent.yaml"))
	if err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Fatalf("got %v", err)
	}
}
