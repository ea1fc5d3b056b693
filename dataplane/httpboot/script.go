package httpboot

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"path"
	"strings"
	"text/template"
	"time"

	"osim/internal/cmdline"
)

// ErrUnsafeValue: a value that would end up in the iPXE script could change
// its meaning (a newline starts a new command, "${" expands a setting, "||"
// or "&&" or ";" chain another command, whitespace adds an argument).
var ErrUnsafeValue = cmdline.ErrUnsafeValue

// CmdlineData is what a Boot's Cmdline template sees (internal/cmdline,
// which the manager checks images with too).
//
//	{{.MAC}}        the target's MAC, 52:54:00:12:34:56
//	{{.Order}}      the order id
//	{{.Token}}      the order's status token
//	{{.StatusURL}}  where the installer POSTs its progress
//	{{.BaseURL}}    the boot server's HTTP base (may be empty: relative URLs)
//	{{.AnswerURL}}  the order's answer file, when the Boot has one (answer.go)
//	{{.Params.x}}   the image parameter x (missing: empty)
//	{{param "x"}}   the same, but a missing parameter fails the render
type CmdlineData = cmdline.Data

// scriptData feeds the fixed iPXE templates below; every field is checked
// by safeToken or safeLine before it is printed.
type scriptData struct {
	Kernel      string
	KernelArgs  string
	Initrds     []initrdLine
	StatusURL   string
	OrderTarget string
}

type initrdLine struct{ Name, URL string }

// The boot script. "initrd=<name>" is always on the kernel command line:
// Debian's iPXE loading a Linux kernel under UEFI (EFI stub) hands it the
// initrd only by name, so without it the kernel finds no initramfs.
var bootScript = template.Must(template.New("boot").Parse(`#!ipxe
# osim: order {{.OrderTarget}}
{{range .Initrds}}initrd --name {{.Name}} {{.URL}}
{{end}}kernel {{.Kernel}}{{range .Initrds}} initrd={{.Name}}{{end}}{{if .KernelArgs}} {{.KernelArgs}}{{end}}
boot
`))

// The local-disk scripts. Under UEFI "exit" hands control back to the
// firmware, which tries its next boot option. Under BIOS (iPXE's
// ${platform} is "pcbios") the next device may be the network again, so boot
// the first hard disk explicitly and exit only if that fails.
const (
	localScriptEFI = `#!ipxe
# osim: boot from local disk
exit
`
	localScriptBIOS = `#!ipxe
# osim: boot from local disk
sanboot --no-describe --drive 0x80 || exit
`
)

// renderScript renders the iPXE script for b. base is the URL prefix of the
// served files ("" keeps them root-relative, which iPXE resolves against the
// script's own URL).
// platform is iPXE's ${platform} ("pcbios", "efi", or "" when not sent);
// timeout bounds the command line's render (0: cmdline.RenderTimeout).
func renderScript(b Boot, mac net.HardwareAddr, base, platform string, timeout time.Duration) ([]byte, error) {
	if b.Local {
		if platform == "pcbios" {
			return []byte(localScriptBIOS), nil
		}
		return []byte(localScriptEFI), nil
	}
	if b.Kernel == "" {
		return nil, fmt.Errorf("httpboot: target %s: boot decision names no kernel", mac)
	}
	if b.Order != "" {
		if err := checkOrder(b.Order); err != nil {
			return nil, fmt.Errorf("httpboot: target %s: %w: %w", mac, ErrUnsafeValue, err)
		}
	}
	d := scriptData{OrderTarget: b.Order}
	var err error
	if d.Kernel, err = fileURL(base, b.Kernel); err != nil {
		return nil, fmt.Errorf("httpboot: target %s: kernel: %w", mac, err)
	}
	seen := map[string]bool{}
	for _, in := range b.Initrds {
		u, err := fileURL(base, in)
		if err != nil {
			return nil, fmt.Errorf("httpboot: target %s: initrd: %w", mac, err)
		}
		name := initrdName(in)
		if err := safeToken("initrd name", name); err != nil {
			return nil, fmt.Errorf("httpboot: target %s: %w", mac, err)
		}
		if seen[name] {
			return nil, fmt.Errorf("httpboot: target %s: two initrds named %q", mac, name)
		}
		seen[name] = true
		d.Initrds = append(d.Initrds, initrdLine{Name: name, URL: u})
	}
	statusURL := ""
	if b.Order != "" {
		statusURL = strings.TrimSuffix(base, "/") + "/status/" + b.Order
	}
	answer, err := answerURL(b, base)
	if err != nil {
		return nil, fmt.Errorf("httpboot: target %s: %w", mac, err)
	}
	// internal/cmdline bounds the render (cmdline.MaxRenderedBytes, timeout)
	// and checks every value printed, and the line as a whole, is a plain
	// iPXE argument: the template cannot add a line or a setting expansion.
	args, err := cmdline.Render(b.Cmdline, CmdlineData{
		MAC: mac.String(), Order: b.Order, Token: b.Token, StatusURL: statusURL,
		BaseURL: base, AnswerURL: answer, Params: b.Params,
	}, timeout)
	if err != nil {
		return nil, fmt.Errorf("httpboot: target %s: %w", mac, err)
	}
	if b.Install {
		osim, err := cmdline.InstallArgs(base, b.Order, b.Token, mac.String())
		if err != nil {
			return nil, fmt.Errorf("httpboot: target %s: osim installer arguments: %w", mac, err)
		}
		args = strings.TrimSpace(args + " " + osim)
	}
	d.KernelArgs = args
	var out bytes.Buffer
	if err := bootScript.Execute(&out, d); err != nil {
		return nil, fmt.Errorf("httpboot: target %s: render script: %w", mac, err)
	}
	return out.Bytes(), nil
}

func safeToken(what, v string) error { return cmdline.SafeToken(what, v) }

// fileURL turns a store name into a URL below base/files/, or checks an
// absolute http(s) URL.
func fileURL(base, name string) (string, error) {
	if strings.HasPrefix(name, "http://") || strings.HasPrefix(name, "https://") {
		u, err := url.Parse(name)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("%w: %q is not a URL", ErrUnsafeValue, name)
		}
		return name, safeToken("URL", name)
	}
	clean, err := cleanName(name)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(base, "/"))
	b.WriteString("/files")
	for _, el := range strings.Split(clean, "/") {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(el))
	}
	u := b.String()
	return u, safeToken("URL", u)
}

// initrdName is the name iPXE gives the initrd image and the kernel looks
// for: the last path element of the name or URL.
func initrdName(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		s = u.Path
	}
	return path.Base(s)
}

// RenderScript renders the iPXE script a boot server answers with for b
// at mac, by the same rules as GET /ipxe/{mac}, for showing it elsewhere:
// the manager's console renders a target's script (its token masked).
func RenderScript(b Boot, mac net.HardwareAddr, base, platform string) ([]byte, error) {
	return renderScript(b, mac, base, platform, 0)
}
