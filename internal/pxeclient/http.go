package pxeclient

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Script is what the client understood of an iPXE script.
type Script struct {
	Kernel  string   // URL as written
	Initrds []string // URLs as written, in order
	// Cmdline is the rest of the kernel line after the URL: the kernel
	// command line, as the installer will see it in /proc/cmdline.
	Cmdline string
}

// ParseScript reads the kernel and initrd lines of an iPXE script. Options
// (--name x, --name=x, -n x) are skipped; the first other word is the URL.
func ParseScript(text string) (Script, error) {
	var s Script
	sc := bufio.NewScanner(strings.NewReader(text))
	first := true
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if first {
			first = false
			if !strings.HasPrefix(line, "#!ipxe") {
				return s, fmt.Errorf("script does not begin with #!ipxe: %q", line)
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "kernel", "chain", "imgexec", "initrd", "module", "imgfetch":
		default:
			continue
		}
		var arg string
		rest := 0
		for i := 1; i < len(f); i++ {
			if strings.HasPrefix(f[i], "-") {
				if !strings.Contains(f[i], "=") && (f[i] == "--name" || f[i] == "-n") {
					i++
				}
				continue
			}
			arg = f[i]
			rest = i + 1
			break
		}
		if arg == "" {
			return s, fmt.Errorf("%s line without a file: %q", f[0], line)
		}
		if f[0] == "initrd" || f[0] == "module" || f[0] == "imgfetch" {
			s.Initrds = append(s.Initrds, arg)
		} else {
			s.Kernel = arg
			s.Cmdline = strings.Join(f[rest:], " ")
		}
	}
	if s.Kernel == "" {
		return s, fmt.Errorf("script names no kernel")
	}
	return s, sc.Err()
}

func (c *client) httpClient() *http.Client {
	if c.http == nil {
		d := &net.Dialer{Timeout: 10 * time.Second}
		if a := c.source(); a.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: a.AsSlice()}
		}
		c.http = &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var conn net.Conn
				err := c.cfg.Do(func() error {
					var err error
					conn, err = d.DialContext(ctx, network, addr)
					return err
				})
				return conn, err
			},
		}}
	}
	return c.http
}

// get fetches u, hashing it; text is kept when keep is set.
func (c *client) get(ctx context.Context, kind, u string, keep bool) (Fetched, []byte, error) {
	t0 := time.Now()
	f := Fetched{Kind: kind, URL: u}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return f, nil, err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return f, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return f, nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	h := sha256.New()
	var body strings.Builder
	w := io.Writer(h)
	if keep {
		w = io.MultiWriter(h, &body)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return f, nil, fmt.Errorf("GET %s: after %d bytes: %w", u, n, err)
	}
	f.Size = n
	copy(f.SHA256[:], h.Sum(nil))
	f.Duration = time.Since(t0)
	c.res.Files = append(c.res.Files, f)
	return f, []byte(body.String()), nil
}

// httpStage is iPXE after DHCP answered with its script URL.
func (c *client) httpStage(ctx context.Context, fw *Firmware, scriptURL string) error {
	var text []byte
	var s Script
	err := c.timed(fw, PhaseScript, func() error {
		var err error
		if _, text, err = c.get(ctx, "script", scriptURL, true); err != nil {
			return err
		}
		c.res.Script = string(text)
		s, err = ParseScript(c.res.Script)
		return err
	})
	if err != nil {
		return err
	}
	base, err := url.Parse(scriptURL)
	if err != nil {
		return &PhaseError{Stage: fw.Name, Phase: PhaseScript, Err: err}
	}
	fetch := func(phase, kind, ref string) error {
		return c.timed(fw, phase, func() error {
			r, err := url.Parse(ref)
			if err != nil {
				return fmt.Errorf("bad URL %q: %w", ref, err)
			}
			_, _, err = c.get(ctx, kind, base.ResolveReference(r).String(), false)
			return err
		})
	}
	// iPXE runs the lines in order; the script puts initrds before the kernel.
	for _, i := range s.Initrds {
		if err := fetch(PhaseInitrd, "initrd", i); err != nil {
			return err
		}
	}
	if err := fetch(PhaseKernel, "kernel", s.Kernel); err != nil {
		return err
	}
	if c.cfg.Install == nil {
		return nil
	}
	return c.timed(fw, PhaseInstall, func() error { return c.install(ctx, fw, s.Cmdline) })
}
