package httpboot

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

var testMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

func installBoot() Boot {
	return Boot{
		Kernel:  "debian/12/vmlinuz",
		Initrds: []string{"debian/12/initrd.gz", "overlays/site.cpio"},
		Cmdline: `console={{.Params.console}} auto=true url={{param "preseed"}} osim.order={{.Order}} osim.status={{.StatusURL}} osim.token={{.Token}} BOOTIF=01-{{.MAC}}`,
		Params:  map[string]string{"console": "ttyS0,115200n8", "preseed": "http://10.0.0.1/p.cfg?host=a&site=b"},
		Order:   "o-17",
		Token:   "tok123",
	}
}

func TestScriptBootsKernelWithEveryInitrdNamedOnTheCommandLine(t *testing.T) {
	got, err := renderScript(installBoot(), testMAC, "http://10.0.0.1:8080", "efi", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := `#!ipxe
# osim: order o-17
initrd --name initrd.gz http://10.0.0.1:8080/files/debian/12/initrd.gz
initrd --name site.cpio http://10.0.0.1:8080/files/overlays/site.cpio
kernel http://10.0.0.1:8080/files/debian/12/vmlinuz initrd=initrd.gz initrd=site.cpio console=ttyS0,115200n8 auto=true url=http://10.0.0.1/p.cfg?host=a&site=b osim.order=o-17 osim.status=http://10.0.0.1:8080/status/o-17 osim.token=tok123 BOOTIF=01-52:54:00:12:34:56
boot
`
	if string(got) != want {
		t.Fatalf("script:\n%s\nwant:\n%s", got, want)
	}
}

func TestScriptWithoutBaseURLUsesRootRelativeURLs(t *testing.T) {
	b := Boot{Kernel: "vmlinuz", Initrds: []string{"https://mirror.example/d/initrd.gz"}}
	got, err := renderScript(b, testMAC, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"initrd --name initrd.gz https://mirror.example/d/initrd.gz\n",
		"kernel /files/vmlinuz initrd=initrd.gz\n",
	} {
		if !strings.Contains(string(got), line) {
			t.Errorf("script lacks %q:\n%s", line, got)
		}
	}
}

func TestScriptLocalDiskExitsUnderEFIAndSanbootsUnderBIOS(t *testing.T) {
	for _, tc := range []struct{ platform, want string }{
		{"efi", "\nexit\n"},
		{"", "\nexit\n"},
		{"pcbios", "\nsanboot --no-describe --drive 0x80 || exit\n"},
	} {
		got, err := renderScript(Boot{Local: true, Kernel: "ignored"}, testMAC, "", tc.platform, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(got), "#!ipxe\n") || !strings.HasSuffix(string(got), tc.want) {
			t.Errorf("platform %q: script %q, want it to end in %q", tc.platform, got, tc.want)
		}
		if strings.Contains(string(got), "kernel") {
			t.Errorf("platform %q: local script loads a kernel: %q", tc.platform, got)
		}
	}
}

func TestScriptRefusesValuesThatWouldInjectIPXECommands(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Boot)
	}{
		{"newline in a parameter", func(b *Boot) { b.Params["console"] = "ttyS0\nshell" }},
		{"carriage return in a parameter", func(b *Boot) { b.Params["console"] = "ttyS0\rshell" }},
		{"setting expansion in a parameter", func(b *Boot) { b.Params["console"] = "${net0/ip}" }},
		{"command chaining with ||", func(b *Boot) { b.Params["console"] = "x||shell" }},
		{"command chaining with &&", func(b *Boot) { b.Params["console"] = "x&&shell" }},
		{"a lone ; ends the command", func(b *Boot) { b.Params["console"] = ";" }},
		{"space adds an argument", func(b *Boot) { b.Params["console"] = "x init=/bin/sh" }},
		{"tab adds an argument", func(b *Boot) { b.Params["console"] = "x\tinit=/bin/sh" }},
		{"double quote", func(b *Boot) { b.Params["console"] = `x"` }},
		{"backslash escape", func(b *Boot) { b.Params["console"] = `x\` }},
		{"comment", func(b *Boot) { b.Params["console"] = "x#" }},
		{"non-ASCII byte", func(b *Boot) { b.Params["console"] = "x\u2028y" }},
		{"parameter reachable through range checked", func(b *Boot) {
			b.Params["unused"] = "a\nb"
			b.Cmdline += "{{range .Params}}{{end}}"
		}},
		{"expansion in the template text", func(b *Boot) { b.Cmdline += " ${root-path}" }},
		{"newline in the token", func(b *Boot) { b.Token = "t\nshell" }},
		{"newline in the order", func(b *Boot) { b.Order = "o\nshell" }},
		{"newline in the kernel name", func(b *Boot) { b.Kernel = "vmlinuz\nshell" }},
		{"space in a kernel URL", func(b *Boot) { b.Kernel = "http://h/vmlinuz shell" }},
		{"kernel name climbs", func(b *Boot) { b.Kernel = "../../etc/shadow" }},
		{"initrd URL with expansion", func(b *Boot) { b.Initrds = []string{"http://h/${x}/i.gz"} }},
		{"two initrds with one name", func(b *Boot) { b.Initrds = []string{"a/initrd.gz", "b/initrd.gz"} }},
		{"missing parameter", func(b *Boot) { delete(b.Params, "preseed") }},
		{"broken template", func(b *Boot) { b.Cmdline = "{{.Params" }},
		{"no kernel", func(b *Boot) { b.Kernel = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := installBoot()
			tc.edit(&b)
			got, err := renderScript(b, testMAC, "http://10.0.0.1", "efi", 0)
			if err == nil {
				t.Fatalf("rendered:\n%s", got)
			}
			if got != nil {
				t.Errorf("returned a script with the error %v", err)
			}
			if !strings.Contains(err.Error(), testMAC.String()) {
				t.Errorf("error %q does not name the target", err)
			}
		})
	}
}

func TestScriptTemplateLineBreaksFoldIntoOneKernelLine(t *testing.T) {
	b := installBoot()
	b.Cmdline = "quiet\n  {{\"\\n\"}}shell\r\n\tpanic=10"
	got, err := renderScript(b, testMAC, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if len(lines) != 6 || lines[5] != "boot" {
		t.Fatalf("template text changed the script's shape:\n%s", got)
	}
	if !strings.HasSuffix(lines[4], " quiet shell panic=10") {
		t.Fatalf("kernel line %q, want the arguments folded onto it", lines[4])
	}
}

func TestScriptUnsafeParameterErrorNamesTheParameter(t *testing.T) {
	b := installBoot()
	b.Params["console"] = "a\nb"
	_, err := renderScript(b, testMAC, "", "", 0)
	if !errors.Is(err, ErrUnsafeValue) || !strings.Contains(err.Error(), "parameter console") {
		t.Fatalf("err = %v, want ErrUnsafeValue naming parameter console", err)
	}
}

// FuzzScriptParameterNeverAddsALine: whatever a parameter holds, the script
// either is refused or keeps its five lines and the value as one argument.
func FuzzScriptParameterNeverAddsALine(f *testing.F) {
	for _, s := range []string{"ttyS0", "a\nb", "${x}", "a b", "x||y", "\x00", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		b := installBoot()
		b.Initrds = b.Initrds[:1]
		b.Params["console"] = v
		got, err := renderScript(b, testMAC, "", "", 0)
		if err != nil {
			return
		}
		lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
		if len(lines) != 5 || lines[4] != "boot" || !strings.HasPrefix(lines[3], "kernel ") {
			t.Fatalf("value %q changed the script's shape:\n%s", v, got)
		}
		if strings.Contains(string(got), "$") || !strings.Contains(lines[3], " console="+v+" ") {
			t.Fatalf("value %q not kept as one plain argument:\n%s", v, got)
		}
	})
}

func TestMACFormsIPXESendsAllParse(t *testing.T) {
	for _, s := range []string{"52:54:00:12:34:56", "52-54-00-12-34-56", "525400123456", "52:54:00:12:34:56"} {
		m, err := parseMAC(s)
		if err != nil || m.String() != testMAC.String() {
			t.Errorf("parseMAC(%q) = %v, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "52:54:00:12:34", "zz:54:00:12:34:56", "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", "52540012345g"} {
		if _, err := parseMAC(s); err == nil {
			t.Errorf("parseMAC(%q) accepted", s)
		}
	}
}

func TestScriptRenderIsBoundedBySizeAndConstructs(t *testing.T) {
	big := map[string]string{}
	for i := range 60 {
		big[fmt.Sprintf("p%02d", i)] = strings.Repeat("a", 200)
	}
	for _, tc := range []struct {
		name, mac, cmdline string
		params             map[string]string
		outcome            string
	}{
		// The audit's template: a 200 MB script at 621 MB RSS before.
		{"range over integers", "52:54:00:00:00:10", "x{{range 200000}}{{range 1000}}A{{end}}{{end}}", nil, "invalid"},
		{"misspelt field", "52:54:00:00:00:11", "{{.StatusUrl}}", nil, "invalid"},
		{"over 4 KiB", "52:54:00:00:00:12", "{{range .Params}}{{.}} {{end}}", big, "too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.h.scripts = StaticScripts{tc.mac: {Kernel: "vmlinuz", Cmdline: tc.cmdline, Params: tc.params, Order: "o-17", Token: "tok123"}}
			w := f.do("GET", "/ipxe/"+tc.mac, nil)
			if w.Code != 500 || w.Body.Len() > 64<<10 {
				t.Fatalf("code %d, %d body bytes, want a short 500", w.Code, w.Body.Len())
			}
			if n := testutil.ToFloat64(f.metrics.renders.WithLabelValues(tc.outcome)); n != 1 {
				t.Errorf("script_renders_total{outcome=%q} = %v", tc.outcome, n)
			}
			if !strings.Contains(f.logs.String(), "script not rendered") || !strings.Contains(f.logs.String(), "outcome="+tc.outcome) {
				t.Errorf("no warn line naming the outcome: %s", f.logs.String())
			}
		})
	}
}
