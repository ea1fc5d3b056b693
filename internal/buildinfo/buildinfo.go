// Package buildinfo says which build of osim runs: the module version and
// the commit and time Go stamps into every binary built from a checkout
// (runtime/debug's build info), for --version, the osim_build_info metric
// and the version a boot server reports to its manager.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Info is one binary's build.
type Info struct {
	Version   string // the module's version; "devel" for a build from a checkout
	Commit    string // the VCS revision, 12 hex digits; "unknown" without VCS stamping
	Date      string // the commit's time (RFC 3339); "" when unknown
	Modified  bool   // built from a checkout with uncommitted changes
	GoVersion string
}

// Get reads the running binary's build info.
func Get() Info {
	i := Info{Version: "devel", Commit: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return i
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		i.Version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Commit = s.Value[:min(12, len(s.Value))]
		case "vcs.time":
			i.Date = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	return i
}

// Short is what a boot server reports and `bootservers list` shows: the
// version, which names the commit already when Go derived it from the
// checkout (v0.0.0-20261207131632-7e41228ce64e+dirty), else with the
// commit added (devel+7e41228ce64e).
func (i Info) Short() string {
	if strings.Contains(i.Version, i.Commit) {
		return i.Version
	}
	s := i.Version + "+" + i.Commit
	if i.Modified {
		s += "-modified"
	}
	return s
}

// String is the --version line after the program's name.
func (i Info) String() string {
	parts := []string{"commit " + i.Commit}
	if i.Date != "" {
		parts = append(parts, i.Date)
	}
	if i.Modified {
		parts = append(parts, "modified")
	}
	return fmt.Sprintf("%s (%s), %s", i.Version, strings.Join(parts, ", "), i.GoVersion)
}

// Register adds osim_build_info{version,commit,goversion} (always 1) to reg.
func Register(reg prometheus.Registerer) error {
	i := Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "osim_build_info",
		Help:        "The running build: its version, commit and Go version (always 1).",
		ConstLabels: prometheus.Labels{"version": i.Version, "commit": i.Commit, "goversion": i.GoVersion}})
	g.Set(1)
	return reg.Register(g)
}

// IsVersionFlag reports whether arg asks for the version.
func IsVersionFlag(arg string) bool {
	return arg == "--version" || arg == "-version" || arg == "version"
}
