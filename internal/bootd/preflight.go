package bootd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"osim/dataplane/tftp"
)

// preflight is what serve checks of a checked config before it opens a
// socket, beyond the file itself: the host (its addresses), the services'
// own limits (the same constructors serve calls), and the files the config
// names. problems make serve (and --check) refuse to start; missing files
// only make --check fail: serve starts without them, logging each, as the
// other arches and targets still boot.
type preflight struct {
	problems []string
	missing  []string
}

// Checked is a Config that passed every check serve runs before it opens
// a socket, ready for Build.
type Checked struct {
	cfg *Config
	w   *wiring
	// Missing are the files the config names that are not there: Build
	// logs each and serves without them; a strict Check refuses them.
	Missing []string
}

// Check is everything serve checks before it opens a socket: the file's
// keys, then this host, all mistakes at once, each by its key; with
// strict (--check) the missing files are mistakes too. c is the file with
// the command line's overrides applied.
func Check(c *Config, strict bool) (*Checked, error) {
	w, p, err := checkAll(c, strict)
	if err != nil {
		return nil, err
	}
	return &Checked{cfg: c, w: w, Missing: p.missing}, nil
}

// Summary is what `serve --check` prints: what would run, in one line.
func (k *Checked) Summary() string {
	w := k.w
	targets := fmt.Sprintf("%d targets", len(w.backend.Machines))
	if w.manager != nil {
		targets = fmt.Sprintf("targets of site %s from manager %s as %s", w.manager.Site, w.manager.URL, w.manager.Name)
	}
	return fmt.Sprintf("dhcp %s on %s and %s, tftp %s from %s, http %s from %s (base %s), %s",
		w.dhcpMode, w.dhcpListen, w.bootListen, w.tftpListen, w.tftpRoot, w.httpListen, w.httpFiles, w.baseURL, targets)
}

// checkAll is everything serve checks before it opens a socket: the
// file's keys, then the preflight, all mistakes at once; with strict
// (--check) the missing files are mistakes too. The wiring is set when
// there is no mistake.
func checkAll(c *Config, strict bool) (*wiring, preflight, error) {
	w, errs := c.checkKeys()
	p := runPreflight(c, w)
	errs = append(errs, p.problems...)
	if strict {
		errs = append(errs, p.missing...)
	}
	if len(errs) > 0 {
		return nil, p, mistakes(errs)
	}
	return w, p, nil
}

// runPreflight checks w (from c, perhaps partial) against this host.
func runPreflight(c *Config, w *wiring) preflight {
	var p preflight
	bad := func(key, format string, args ...any) {
		p.problems = append(p.problems, key+": "+fmt.Sprintf(format, args...))
	}
	local, err := hostAddrs()
	if err != nil {
		bad("address", "cannot list this host's addresses: %v", err)
	} else {
		checkOnHost(c, w, local, bad)
	}
	checkTFTP(c, w, bad)
	p.missing = missingFiles(c, w)
	return p
}

// checkTFTP runs the TFTP engine's own validation (the one serve meets in
// tftp.NewServer), a key at a time so that each mistake is named, then on
// the whole config for what only a combination gets wrong.
func checkTFTP(c *Config, w *wiring, bad func(key, format string, args ...any)) {
	full := w.tftpConfig(c, nil, nil)
	keyed := false
	for _, k := range []struct {
		key string
		v   any
		set func(*tftp.Config)
	}{
		{"tftp.max_blksize", c.TFTP.MaxBlksize, func(t *tftp.Config) { t.MaxBlksize = full.MaxBlksize }},
		{"tftp.max_window", c.TFTP.MaxWindow, func(t *tftp.Config) { t.MaxWindow = full.MaxWindow }},
		{"tftp.max_transfers", c.TFTP.MaxTransfers, func(t *tftp.Config) { t.MaxTransfers = full.MaxTransfers }},
		{"tftp.max_unacked", c.TFTP.MaxUnacked, func(t *tftp.Config) { t.MaxUnacked = full.MaxUnacked }},
		{"tftp.first_ack_timeout", c.TFTP.FirstAckTimeout, func(t *tftp.Config) { t.FirstAckTimeout = full.FirstAckTimeout }},
	} {
		var one tftp.Config
		k.set(&one)
		if _, err := tftp.NewServer(one, noResolver{}); err != nil {
			bad(k.key, "%v: %v", k.v, err)
			keyed = true
		}
	}
	if _, err := tftp.NewServer(full, noResolver{}); err != nil && !keyed {
		bad("tftp", "%v", err)
	}
}

// hostAddrs are the IPv4 addresses of this host's interfaces (of the
// network namespace it runs in).
func hostAddrs() (map[netip.Addr]bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	local := map[netip.Addr]bool{}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok {
				local[ip] = true
			}
		}
	}
	return local, nil
}

// checkOnHost refuses an address that no interface here has: the server
// identifier every DHCP client would answer to, and the listen addresses
// serve would fail to bind.
func checkOnHost(c *Config, w *wiring, local map[netip.Addr]bool, bad func(key, format string, args ...any)) {
	if w.addr.IsValid() && !local[w.addr] {
		bad("address", "%s is not an address of this host", w.addr)
	}
	for _, l := range []struct{ key, v string }{{"dhcp.listen", w.dhcpListen}, {"dhcp.boot_listen", w.bootListen},
		{"tftp.listen", w.tftpListen}, {"http.listen", w.httpListen}, {"metrics_listen", c.MetricsListen}} {
		ap, err := netip.ParseAddrPort(l.v)
		if err != nil || ap.Addr().IsUnspecified() || ap.Addr() == w.addr {
			continue // malformed ones are check's; the address is reported above
		}
		if !local[ap.Addr()] {
			bad(l.key, "%s is not an address of this host", ap.Addr())
		}
	}
}

// missingFiles lists the files named in the config that are not there:
// standalone mode's boot files (under tftp.root), and the images' kernels
// and initrds (under http.files). With a manager they come from it.
func missingFiles(c *Config, w *wiring) []string {
	if w.manager != nil {
		return nil
	}
	var out []string
	look := func(key, folder, folderKey, name string) {
		if strings.HasPrefix(name, "http://") || strings.HasPrefix(name, "https://") || folder == "" {
			return
		}
		if st, err := os.Stat(folder); err != nil || !st.IsDir() {
			return // the folder itself is check's mistake
		}
		if err := fileIn(folder, name); err != nil {
			out = append(out, fmt.Sprintf("%s: %q is not a file under %s %q: %v", key, name, folderKey, folder, err))
		}
	}
	for _, arch := range slices.Sorted(maps.Keys(w.backend.BootFiles)) {
		look("boot.boot_files."+arch, w.tftpRoot, "tftp.root", w.backend.BootFiles[arch])
	}
	for _, name := range slices.Sorted(maps.Keys(c.Images)) {
		img := c.Images[name]
		if img.Kernel != "" {
			look("images."+name+".kernel", w.httpFiles, "http.files", img.Kernel)
		}
		for i, f := range img.Initrds {
			look(fmt.Sprintf("images.%s.initrds[%d]", name, i), w.httpFiles, "http.files", f)
		}
	}
	return out
}

// fileIn checks that name is a regular file inside folder, as the
// services open it (os.Root: no escape through .. or a symlink).
func fileIn(folder, name string) error {
	root, err := os.OpenRoot(folder)
	if err != nil {
		return err
	}
	defer root.Close()
	st, err := root.Stat(strings.TrimPrefix(name, "/"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errors.New("no such file")
		}
		return err
	}
	if !st.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	return nil
}

// noResolver lets preflight build a TFTP server for its checks only.
type noResolver struct{}

func (noResolver) Resolve(_ context.Context, _ netip.AddrPort, name string) (tftp.File, error) {
	return nil, fmt.Errorf("preflight: %q: %w", name, tftp.ErrFileNotFound)
}

// tftpConfig is the TFTP engine's config for w (from c): serve runs it,
// and preflight checks it with the engine's own validation.
func (w *wiring) tftpConfig(c *Config, log *slog.Logger, m *tftp.Metrics) tftp.Config {
	return tftp.Config{
		MaxBlksize: c.TFTP.MaxBlksize, MaxWindow: c.TFTP.MaxWindow, MaxTransfers: c.TFTP.MaxTransfers,
		MaxUnacked: c.TFTP.MaxUnacked, FirstAckTimeout: c.TFTP.FirstAckTimeout,
		PortLo: w.portLo, PortHi: w.portHi, Logger: log, Metrics: m,
	}
}
