package debian

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"osim/internal/testlab"
)

// stub stands in for systemd's and init-system-helpers' commands: it logs
// its name and arguments, and answers deb-systemd-helper's questions as
// the scenario says (STUB_WAS_ENABLED, STUB_DEBIAN_INSTALLED: yes or no).
// It uses no other command, so the scripts run with nothing but the stubs
// on PATH: a call to anything else fails instead of reaching the host.
const stub = `#!/bin/sh
echo "${0##*/} $*" >>"$STUB_LOG"
case "$*" in
"--quiet was-enabled "*) [ "${0##*/}" = deb-systemd-helper ] && [ "$STUB_WAS_ENABLED" = yes ] ;;
"debian-installed "*) [ "${0##*/}" = deb-systemd-helper ] && [ "$STUB_DEBIAN_INSTALLED" = yes ] ;;
esac
`

var stubbed = []string{"systemd-sysusers", "systemctl", "deb-systemd-helper", "deb-systemd-invoke"}

// scriptRun is one maintainer script call and the helper calls it must
// make, in order.
type scriptRun struct {
	name   string
	script string // in scripts/
	args   []string
	// systemd: /run/systemd/system exists (systemd is the running init).
	systemd                     bool
	wasEnabled, debianInstalled bool
	dpkgRoot                    string
	want                        []string
}

// TestMaintainerScriptsCallSystemdAsDebhelper runs the maintainer scripts
// with sh against logging stubs of systemd-sysusers, systemctl,
// deb-systemd-helper and deb-systemd-invoke, and checks each call sequence
// against dh_installsystemd's: osim-manager enabled and started on a fresh
// install and restarted on an upgrade; osim-bootd not enabled or started on
// a fresh install, enabled again and try-restarted on an upgrade when it
// was enabled; both stopped on remove (not on upgrade), masked on remove,
// purged and unmasked on purge; under DPKG_ROOT only the user is made, in
// that root. Each run is in its own mount namespace with a tmpfs on /run,
// so "systemd is running" is the scenario's and the host is untouched.
func TestMaintainerScriptsCallSystemdAsDebhelper(t *testing.T) {
	testlab.RequireRoot(t, "unshare --mount puts a scenario's own /run over the host's")
	testlab.RequireTool(t, "unshare", "util-linux")
	stubs := t.TempDir()
	if strings.HasPrefix(stubs, "/run/") {
		t.Fatalf("TMPDIR %s is under /run, which each run hides behind a tmpfs", stubs)
	}
	for _, c := range stubbed {
		if err := os.WriteFile(filepath.Join(stubs, c), []byte(stub), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	const (
		m = "osim-manager.service"
		b = "osim-bootd.service"
	)
	runs := []scriptRun{
		{name: "manager fresh install: enabled and started", script: "osim-manager.postinst", args: []string{"configure", ""},
			systemd: true, wasEnabled: true, want: []string{
				"systemd-sysusers osim-manager.conf",
				"deb-systemd-helper unmask " + m,
				"deb-systemd-helper --quiet was-enabled " + m,
				"deb-systemd-helper enable " + m,
				"systemctl --system daemon-reload",
				"deb-systemd-invoke start " + m,
			}},
		{name: "manager upgrade: kept enabled and restarted", script: "osim-manager.postinst", args: []string{"configure", "0.1"},
			systemd: true, wasEnabled: true, want: []string{
				"systemd-sysusers osim-manager.conf",
				"deb-systemd-helper unmask " + m,
				"deb-systemd-helper --quiet was-enabled " + m,
				"deb-systemd-helper enable " + m,
				"systemctl --system daemon-reload",
				"deb-systemd-invoke restart " + m,
			}},
		{name: "manager upgrade after the operator disabled it: stays disabled", script: "osim-manager.postinst", args: []string{"configure", "0.1"},
			systemd: true, wasEnabled: false, want: []string{
				"systemd-sysusers osim-manager.conf",
				"deb-systemd-helper unmask " + m,
				"deb-systemd-helper --quiet was-enabled " + m,
				"deb-systemd-helper update-state " + m,
				"systemctl --system daemon-reload",
				"deb-systemd-invoke restart " + m,
			}},
		{name: "manager failed upgrade rolled back: restarted", script: "osim-manager.postinst", args: []string{"abort-upgrade", "0.2"},
			systemd: true, wasEnabled: true, want: []string{
				"systemd-sysusers osim-manager.conf",
				"deb-systemd-helper unmask " + m,
				"deb-systemd-helper --quiet was-enabled " + m,
				"deb-systemd-helper enable " + m,
				"systemctl --system daemon-reload",
				"deb-systemd-invoke restart " + m,
			}},
		{name: "manager install without systemd running: enabled, not started", script: "osim-manager.postinst", args: []string{"configure", ""},
			systemd: false, wasEnabled: true, want: []string{
				"systemd-sysusers osim-manager.conf",
				"deb-systemd-helper unmask " + m,
				"deb-systemd-helper --quiet was-enabled " + m,
				"deb-systemd-helper enable " + m,
			}},
		{name: "bootd fresh install: neither enabled nor started", script: "osim-bootd.postinst", args: []string{"configure", ""},
			systemd: true, wasEnabled: true, debianInstalled: false, want: []string{
				"systemd-sysusers osim-bootd.conf",
				"deb-systemd-helper unmask " + b,
				"deb-systemd-helper debian-installed " + b,
				"deb-systemd-helper update-state " + b,
				"systemctl --system daemon-reload",
			}},
		{name: "bootd upgrade when enabled: enabled again and try-restarted", script: "osim-bootd.postinst", args: []string{"configure", "0.1"},
			systemd: true, wasEnabled: true, debianInstalled: true, want: []string{
				"systemd-sysusers osim-bootd.conf",
				"deb-systemd-helper unmask " + b,
				"deb-systemd-helper debian-installed " + b,
				"deb-systemd-helper --quiet was-enabled " + b,
				"deb-systemd-helper enable " + b,
				"deb-systemd-helper update-state " + b,
				"systemctl --system daemon-reload",
				"deb-systemd-invoke try-restart " + b,
			}},
		{name: "bootd upgrade when never enabled: not enabled, try-restart a no-op", script: "osim-bootd.postinst", args: []string{"configure", "0.1"},
			systemd: true, wasEnabled: false, debianInstalled: true, want: []string{
				"systemd-sysusers osim-bootd.conf",
				"deb-systemd-helper unmask " + b,
				"deb-systemd-helper debian-installed " + b,
				"deb-systemd-helper --quiet was-enabled " + b,
				"deb-systemd-helper update-state " + b,
				"systemctl --system daemon-reload",
				"deb-systemd-invoke try-restart " + b,
			}},
	}
	for _, p := range []string{"osim-manager", "osim-bootd"} {
		unit := p + ".service"
		runs = append(runs,
			scriptRun{name: p + " chrootless install into DPKG_ROOT: only the user, in that root", script: p + ".postinst", args: []string{"configure", ""},
				systemd: true, wasEnabled: true, dpkgRoot: "/srv/tree", want: []string{
					"systemd-sysusers --root=/srv/tree " + p + ".conf",
				}},
			scriptRun{name: p + " remove: stopped", script: p + ".prerm", args: []string{"remove"},
				systemd: true, want: []string{"deb-systemd-invoke stop " + unit}},
			scriptRun{name: p + " upgrade: not stopped by the old prerm", script: p + ".prerm", args: []string{"upgrade", "0.2"},
				systemd: true},
			scriptRun{name: p + " remove without systemd running: nothing to stop", script: p + ".prerm", args: []string{"remove"}},
			scriptRun{name: p + " remove in DPKG_ROOT: nothing stopped", script: p + ".prerm", args: []string{"remove"},
				systemd: true, dpkgRoot: "/srv/tree"},
			scriptRun{name: p + " removed: reloaded and masked", script: p + ".postrm", args: []string{"remove"},
				systemd: true, want: []string{
					"systemctl --system daemon-reload",
					"deb-systemd-helper mask " + unit,
				}},
			scriptRun{name: p + " purged: enablement and mask forgotten", script: p + ".postrm", args: []string{"purge"},
				systemd: true, want: []string{
					"deb-systemd-helper purge " + unit,
					"deb-systemd-helper unmask " + unit,
				}},
			scriptRun{name: p + " upgraded: old postrm does nothing", script: p + ".postrm", args: []string{"upgrade", "0.2"},
				systemd: true},
			scriptRun{name: p + " removed in DPKG_ROOT: nothing", script: p + ".postrm", args: []string{"remove"},
				systemd: true, dpkgRoot: "/srv/tree"},
		)
	}

	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			got, out, err := runScript(t, stubs, r)
			if err != nil || len(out) > 0 {
				t.Fatalf("%s %q: %v\n%s", r.script, r.args, err, out)
			}
			if !slices.Equal(got, r.want) {
				t.Errorf("%s %q called\n\t%s\nwant\n\t%s", r.script, r.args, strings.Join(got, "\n\t"), strings.Join(r.want, "\n\t"))
			}
		})
	}
}

// runScript runs scripts/<r.script> with sh in a new mount namespace whose
// /run is an empty tmpfs (with /run/systemd/system when r.systemd), and
// PATH only the stubs; it returns the stubs' log and the script's output.
func runScript(t *testing.T, stubs string, r scriptRun) (calls []string, out []byte, err error) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "calls")
	mkdir := ""
	if r.systemd {
		mkdir = " && mkdir -p /run/systemd/system"
	}
	// unshare makes the new namespace's mounts private: the tmpfs never
	// reaches the host's /run.
	setup := "mount -t tmpfs tmpfs /run" + mkdir + ` && PATH="$STUB_PATH" exec /bin/sh "$0" "$@"`
	script, err := filepath.Abs(filepath.Join("scripts", r.script))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "/bin/sh", "-c", setup, script}, r.args...)...)
	cmd.Env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"STUB_PATH=" + stubs,
		"STUB_LOG=" + log,
		"STUB_WAS_ENABLED=" + yesNo(r.wasEnabled),
		"STUB_DEBIAN_INSTALLED=" + yesNo(r.debianInstalled),
	}
	if r.dpkgRoot != "" {
		cmd.Env = append(cmd.Env, "DPKG_ROOT="+r.dpkgRoot)
	}
	out, err = cmd.CombinedOutput()
	b, rerr := os.ReadFile(log)
	if rerr != nil && !os.IsNotExist(rerr) {
		t.Fatal(rerr)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			calls = append(calls, l)
		}
	}
	return calls, out, err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// TestMaintainerScriptsParse: every maintainer script is valid POSIX sh
// (sh -n with Debian's dash), and shellcheck, where installed, finds
// nothing in them or in scripts/package.sh.
func TestMaintainerScriptsParse(t *testing.T) {
	scripts, err := filepath.Glob("scripts/*")
	if err != nil || len(scripts) != 6 {
		t.Fatalf("maintainer scripts %v (%v), want 6", scripts, err)
	}
	for _, s := range scripts {
		if out, err := exec.Command("sh", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", s, err, out)
		}
	}
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Log("shellcheck not installed: scripts only parsed")
		return
	}
	for _, s := range scripts {
		if out, err := exec.Command("shellcheck", "--shell=sh", s).CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v\n%s", s, err, out)
		}
	}
	if out, err := exec.Command("shellcheck", "../../scripts/package.sh").CombinedOutput(); err != nil {
		t.Errorf("shellcheck scripts/package.sh: %v\n%s", err, out)
	}
}
