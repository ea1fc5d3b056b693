package dhcp

import (
	"context"
	"errors"
	"net"
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

// exampleFile is the example of README.md.
func exampleFile() FileConfig {
	return FileConfig{
		Arches:    []string{"bios", "efi-x64", "efi-arm64"},
		BootFiles: map[string]string{"bios": "undionly.kpxe", "efi-x64": "snponly.efi", "efi-arm64": "arm64/snponly.efi"},
		Unknown:   "discovery",
		Machines: []FileMachine{
			{MAC: "52:54:00:00:00:01", Action: "boot", Address: "10.0.0.21"},
			{MAC: "52-54-00-00-00-02", Action: "boot", BootFiles: map[string]string{"efi-x64": "ipxe.efi"}},
			{MAC: "52:54:00:00:00:03", Action: "local"},
			{MAC: "52:54:00:00:00:04", Action: "ignore"},
		},
	}
}

// siteFile is a minimal valid FileConfig.
func siteFile() FileConfig {
	return FileConfig{BootFiles: map[string]string{"bios": "undionly.kpxe", "efi-x64": "snponly.efi"}}
}

func TestExampleBackendFileLoads(t *testing.T) {
	fb, err := NewFileBackend(exampleFile())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cases := []struct {
		mac, arch string
		action    Action
		file      string
		httpBoot  string
	}{
		{"52:54:00:00:00:01", "bios", ActionBootImage, "undionly.kpxe", "snponly.efi"},
		{"52:54:00:00:00:01", "efi-arm64", ActionBootImage, "arm64/snponly.efi", "snponly.efi"},
		{"52:54:00:00:00:02", "efi-x64", ActionBootImage, "ipxe.efi", "ipxe.efi"},
		{"52:54:00:00:00:02", "bios", ActionBootImage, "undionly.kpxe", "ipxe.efi"},
		{"52:54:00:00:00:03", "bios", ActionBootLocal, "undionly.kpxe", "snponly.efi"},
		{"52:54:00:00:00:04", "bios", ActionIgnore, "undionly.kpxe", "snponly.efi"},
		{"aa:bb:cc:dd:ee:ff", "efi-x64", ActionDiscovery, "snponly.efi", "snponly.efi"},
	}
	for _, c := range cases {
		a, _ := ParseArchName(c.arch)
		d, err := fb.Lookup(ctx, mustMAC(t, c.mac), a)
		if err != nil {
			t.Fatalf("%s: %v", c.mac, err)
		}
		if d.Action != c.action || d.BootFiles[a] != c.file || d.HTTPBootFile != c.httpBoot {
			t.Errorf("%s %s: got %v %q %q", c.mac, c.arch, d.Action, d.BootFiles[a], d.HTTPBootFile)
		}
	}
}

func TestFileBackendUnknownMachineIsIgnoredByDefault(t *testing.T) {
	fb, err := NewFileBackend(siteFile())
	if err != nil {
		t.Fatal(err)
	}
	_, err = fb.Lookup(context.Background(), macA, ArchBIOS)
	if !errors.Is(err, ErrUnknownMAC) || !strings.Contains(err.Error(), macA.String()) {
		t.Fatalf("got %v, want ErrUnknownMAC naming the MAC", err)
	}
}

func TestFileBackendRejectsEachMistakeByName(t *testing.T) {
	machines := func(ms ...FileMachine) func(*FileConfig) { return func(c *FileConfig) { c.Machines = ms } }
	cases := []struct {
		name string
		edit func(*FileConfig)
		want []string // substrings of the error
	}{
		{"bad MAC", machines(FileMachine{MAC: "52:54:00:zz:00:01", Action: "boot"}), []string{`machines[0]`, `bad MAC "52:54:00:zz:00:01"`}},
		{"MAC of 8 bytes", machines(FileMachine{MAC: "01:02:03:04:05:06:07:08", Action: "boot"}), []string{`machines[0]`, "bad MAC"}},
		{"unknown action", machines(FileMachine{MAC: "52:54:00:00:00:01", Action: "reboot"}), []string{`machines[0] (52:54:00:00:00:01)`, `unknown action "reboot"`}},
		{"duplicate MAC in another spelling", machines(FileMachine{MAC: "52:54:00:00:00:01"}, FileMachine{MAC: "52-54-00-00-00-01"}),
			[]string{`machines[1] (52:54:00:00:00:01): duplicate MAC, already in machines[0]`}},
		{"missing boot file for a site arch", func(c *FileConfig) {
			c.Arches, c.BootFiles = []string{"bios", "efi-x64", "efi-arm64"}, map[string]string{"bios": "a", "efi-x64": "b"}
		}, []string{"boot_files: missing boot file for arch efi-arm64"}},
		{"default arches need bios", func(c *FileConfig) { c.BootFiles = map[string]string{"efi-x64": "b"} }, []string{"missing boot file for arch bios"}},
		{"empty boot file in an override", machines(FileMachine{MAC: "52:54:00:00:00:01", BootFiles: map[string]string{"efi-x64": ""}}),
			[]string{"machines[0] (52:54:00:00:00:01).boot_files: missing boot file for arch efi-x64"}},
		{"unknown arch name", func(c *FileConfig) { c.Arches = []string{"bios", "sparc"} }, []string{`arches: unknown arch "sparc"`}},
		{"unknown arch in boot_files", func(c *FileConfig) { c.BootFiles = map[string]string{"bios": "a", "efi-x64": "b", "efi-x86": "c"} },
			[]string{`boot_files: unknown arch "efi-x86"`}},
		{"unknown policy", func(c *FileConfig) { c.Unknown = "register" }, []string{`unknown: "register" is not a policy`}},
		{"several mistakes reported together", func(c *FileConfig) { c.Unknown, c.Machines = "x", []FileMachine{{MAC: "nope"}} },
			[]string{`unknown: "x"`, `bad MAC "nope"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := siteFile()
			c.edit(&cfg)
			_, err := NewFileBackend(cfg)
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
