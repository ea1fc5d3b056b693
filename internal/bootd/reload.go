package bootd

import (
	"context"
	"log/slog"
	"net"
	"reflect"
	"sync/atomic"

	"osim/dataplane/dhcp"
	"osim/dataplane/httpboot"
)

// standalone is standalone mode's boot data (targets, images, boot
// policy), swapped whole on reload: DHCP, HTTP boot and the status tokens
// read it through one pointer, so a request sees the old data or the new,
// never a mix.
type standalone struct {
	cur atomic.Pointer[standaloneView]
}

type standaloneView struct {
	files   *dhcp.FileBackend
	scripts httpboot.StaticScripts
	tokens  httpboot.StaticTokens
}

func newStandalone(w *wiring) *standalone {
	s := &standalone{}
	s.set(w)
	return s
}

func (s *standalone) set(w *wiring) {
	s.cur.Store(&standaloneView{files: w.files, scripts: w.scripts, tokens: w.tokens})
}

func (s *standalone) Lookup(ctx context.Context, mac net.HardwareAddr, arch dhcp.Arch) (dhcp.Decision, error) {
	return s.cur.Load().files.Lookup(ctx, mac, arch)
}

func (s *standalone) Script(ctx context.Context, mac net.HardwareAddr) (httpboot.Boot, error) {
	return s.cur.Load().scripts.Script(ctx, mac)
}

func (s *standalone) Token(ctx context.Context, order string) (string, error) {
	return s.cur.Load().tokens.Token(ctx, order)
}

func (s *standalone) BootMACs() []net.HardwareAddr { return s.cur.Load().files.BootMACs() }

// policySetter is the XDP guard's MAC policy (xdp.Program).
type policySetter interface {
	SetPolicy(allow, deny []net.HardwareAddr) error
}

// reloader re-reads the config file (SIGHUP): the log level always, and
// in standalone mode the targets, images and boot policy; every other
// change is logged as needing a restart. A file that does not check is
// refused whole and the running configuration stays.
type reloader struct {
	path      string
	overrides func(*Config) // the command line's, applied again
	levelFlag bool          // --log-level given: it wins over the file
	level     *slog.LevelVar
	running   *Config      // what runs now; restart-only keys keep their started values
	data      *standalone  // nil in manager mode
	guard     policySetter // nil without an xdp section
	log       *slog.Logger
}

func (r *reloader) reload() {
	c, err := LoadConfig(r.path)
	var w *wiring
	if err == nil {
		r.overrides(c)
		w, err = c.check()
	}
	if err != nil {
		r.log.Error("reload refused: the running configuration stays", "config", r.path, "err", err)
		return
	}
	var applied []string
	if lvl, ok := r.fileLevel(c); ok && lvl != r.level.Level() {
		r.level.Set(lvl)
		applied = append(applied, "log_level")
	}
	if r.data != nil && !sameBootData(r.running, c) {
		r.data.set(w)
		r.running.Targets, r.running.Images, r.running.Boot = c.Targets, c.Images, c.Boot
		applied = append(applied, "targets", "images", "boot")
		if r.guard != nil {
			if err := r.guard.SetPolicy(w.files.BootMACs(), nil); err != nil {
				r.log.Error("reload: xdp policy not updated", "err", err)
			}
		}
		for _, m := range missingFiles(c, w) {
			r.log.Warn("reload: a file named in the config is missing", "problem", m)
		}
	}
	restart := r.restartKeys(c)
	r.log.Info("reloaded on SIGHUP", "config", r.path, "applied", applied, "needs_restart", restart,
		"log_level", r.level.Level().String(), "targets", len(r.running.Targets), "images", len(r.running.Images))
	if len(restart) > 0 {
		r.log.Warn("config changes not applied until a restart", "keys", restart)
	}
}

// fileLevel is the file's log level, unless the command line set one.
func (r *reloader) fileLevel(c *Config) (slog.Level, bool) {
	l := slog.LevelInfo // the default when the file names none
	if r.levelFlag || (c.LogLevel != "" && l.UnmarshalText([]byte(c.LogLevel)) != nil) {
		return l, false
	}
	return l, true
}

func sameBootData(a, b *Config) bool {
	return reflect.DeepEqual(a.Targets, b.Targets) && reflect.DeepEqual(a.Images, b.Images) && reflect.DeepEqual(a.Boot, b.Boot)
}

// restartKeys names the top-level keys of c that differ from what runs and
// that only a restart applies.
func (r *reloader) restartKeys(c *Config) []string {
	o := r.running
	keys := []struct {
		key      string
		old, new any
	}{
		{"address", o.Address, c.Address}, {"metrics_listen", o.MetricsListen, c.MetricsListen},
		{"data_dir", o.DataDir, c.DataDir}, {"dhcp", o.DHCP, c.DHCP}, {"tftp", o.TFTP, c.TFTP},
		{"http", o.HTTP, c.HTTP}, {"manager", o.Manager, c.Manager}, {"xdp", o.XDP, c.XDP},
	}
	if r.data == nil { // manager mode: the agent took these at start
		keys = append(keys, struct {
			key      string
			old, new any
		}{"boot", o.Boot, c.Boot})
	}
	var out []string
	for _, k := range keys {
		if !reflect.DeepEqual(k.old, k.new) {
			out = append(out, k.key)
		}
	}
	return out
}
