// Package debian holds the Debian packaging (nfpm configs, systemd units,
// sysusers files, example configs, maintainer scripts); its test builds
// the packages with `scripts/package.sh` and installs them with dpkg into
// a fresh directory tree.
package debian

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"osim/internal/testlab"
)

var packages = []string{"osim-manager", "osim-bootd", "osimctl", "osim-ips"}

// buildPackages runs scripts/package.sh into a new dir; version "" is the
// binaries' own.
func buildPackages(t *testing.T, version string) map[string]string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command("bash", "scripts/package.sh", out)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "OSIM_DEB_VERSION="+version)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/package.sh: %v\n%s", err, b)
	}
	debs := map[string]string{}
	for _, p := range packages {
		m, _ := filepath.Glob(filepath.Join(out, p+"_*_amd64.deb"))
		if len(m) != 1 {
			t.Fatalf("%s: packages %v, want one", p, m)
		}
		debs[p] = m[0]
	}
	return debs
}

// dpkg runs dpkg on the tree root, scripts outside a chroot (DPKG_ROOT
// set, as Debian's chrootless bootstrap does).
func dpkg(t *testing.T, root string, args ...string) string {
	t.Helper()
	cmd := exec.Command("dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--log=/dev/null"}, args...)...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg %v: %v\n%s", args, err, b)
	}
	return string(b)
}

// newTree is a root with a dpkg database that knows only systemd (what
// the daemons' packages depend on) and the host's systemd units (the
// targets the units name, for systemd-analyze).
func newTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "usr/lib/systemd", "bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), systemdStatus(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/available"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// ExecReload's /bin/kill must exist for systemd-analyze verify.
	if b, err := exec.Command("cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copy systemd units: %v\n%s", err, b)
	}
	if b, err := exec.Command("cp", "/bin/kill", filepath.Join(root, "bin/kill")).CombinedOutput(); err != nil {
		t.Fatalf("copy kill: %v\n%s", err, b)
	}
	return root
}

// systemdStatus is a dpkg status stanza saying the host's systemd is
// installed: it satisfies the daemons' Depends (systemd | systemd-sysusers
// | ...) in the tree, where the postinst runs the host's systemd-sysusers.
func systemdStatus(t *testing.T) []byte {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version} ${Architecture}", "systemd").Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 {
		t.Fatalf("dpkg-query -W systemd: %v (%q): the host's systemd package provides systemd-sysusers", err, out)
	}
	return []byte("Package: systemd\n" +
		"Status: install ok installed\n" +
		"Maintainer: osim package test <root@localhost>\n" +
		"Architecture: " + f[1] + "\n" +
		"Version: " + f[0] + "\n" +
		"Description: the host's systemd, recorded for the tree\n\n")
}

func needTools(t *testing.T) {
	t.Helper()
	testlab.RequireRoot(t, "dpkg installs into a tree with root-owned files")
	testlab.RequireTool(t, "dpkg", "dpkg")
	testlab.RequireTool(t, "systemd-analyze", "systemd")
	testlab.RequireTool(t, "systemd-sysusers", "systemd")
}

// TestPackagesInstallIntoAFreshTree is issue 17's packaging check: the four
// .debs install with dpkg into an empty tree; the binaries run and report
// the package's version; the units pass systemd-analyze verify and its
// security audit; the daemons' users exist; the example configs are
// conffiles and are valid but for what the operator must set; an upgrade
// keeps an edited conffile, remove keeps it, purge removes it.
func TestPackagesInstallIntoAFreshTree(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and installs four packages")
	}
	needTools(t)
	debs := buildPackages(t, "")
	root := newTree(t)
	install := []string{"-i"}
	for _, p := range packages {
		install = append(install, debs[p])
	}
	dpkg(t, root, install...)

	// Every binary runs and names the commit its package version names.
	status := dpkg(t, root, "-s", "osim-manager")
	version := field(status, "Version") // upstream-release
	upstream := version[:max(strings.LastIndex(version, "-"), 0)]
	// The postinst runs systemd-sysusers: the daemons depend on a package
	// that has it (the tree's dpkg knows only systemd, so the install
	// above also proves the field is honoured).
	for _, p := range []string{"osim-manager", "osim-bootd"} {
		const want = "systemd | systemd-sysusers | systemd-standalone-sysusers"
		if d := field(dpkg(t, root, "-s", p), "Depends"); d != want {
			t.Errorf("%s depends on %q, want %q", p, d, want)
		}
	}
	for _, bin := range []string{"usr/bin/osim-manager", "usr/bin/osim-bootd", "usr/bin/osimctl", "usr/bin/osim-ips"} {
		out, err := exec.Command(filepath.Join(root, bin), "version").CombinedOutput()
		if err != nil {
			t.Fatalf("%s version: %v\n%s", bin, err, out)
		}
		m := regexp.MustCompile(`commit ([0-9a-f]{12})`).FindStringSubmatch(string(out))
		if m == nil || !strings.Contains(version, m[1]) {
			t.Errorf("%s reports %q; its package's version %q does not name that commit", bin, strings.TrimSpace(string(out)), version)
		}
	}
	for _, f := range []string{"usr/lib/osim/osim-installer", "usr/share/man/man1/osim-manager.1.gz", "usr/share/man/man1/osimctl.1.gz",
		"usr/share/bash-completion/completions/osimctl", "usr/share/zsh/vendor-completions/_osimctl",
		"usr/share/doc/osim-manager/production.md", "usr/share/osim/prometheus/osim-alerts.yml"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("installed tree lacks %s: %v", f, err)
		}
	}
	if g, _ := filepath.Glob(filepath.Join(root, "usr/share/osim/grafana/*.json")); len(g) < 2 {
		t.Errorf("dashboards installed: %v, want the manager's and the boot server's", g)
	}

	// The daemons' own users, made by the postinst (systemd-sysusers).
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"osim-manager", "osim-bootd"} {
		line := lineWithPrefix(string(passwd), u+":")
		f := strings.Split(line, ":")
		if len(f) != 7 || f[5] != "/var/lib/"+u || f[6] != "/usr/sbin/nologin" {
			t.Errorf("user %s: %q, want home /var/lib/%s and no login shell", u, line, u)
		} else if uid, _ := strconv.Atoi(f[2]); uid == 0 || uid >= 1000 {
			t.Errorf("user %s has uid %d, want a system user's", u, uid)
		}
	}

	// The units: systemd-analyze finds nothing to say, and its security
	// audit rates them well (the lower the exposure, the better; 10 is a
	// unit with no hardening at all).
	for _, unit := range []string{"osim-manager.service", "osim-bootd.service"} {
		out, err := exec.Command("systemd-analyze", "verify", "--man=no", "--root="+root, unit).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
		}
		out, _ = exec.Command("systemd-analyze", "security", "--offline=yes", "--no-pager", "--root="+root, unit).CombinedOutput()
		m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
		if m == nil {
			t.Errorf("systemd-analyze security %s: no exposure level in\n%s", unit, out)
			continue
		}
		level, _ := strconv.ParseFloat(string(m[1]), 64)
		t.Logf("%s: exposure %.1f", unit, level)
		if level > 3.0 {
			t.Errorf("%s: exposure %.1f, want at most 3.0 (systemd's \"OK\")\n%s", unit, level, out)
		}
	}

	// The example configs are conffiles, and valid but for what only the
	// operator knows.
	for _, c := range [][2]string{{"osim-manager", "/etc/osim/manager.env"}, {"osim-bootd", "/etc/osim/bootd.yaml"}, {"osim-bootd", "/etc/default/osim-bootd"}} {
		if s := dpkg(t, root, "-s", c[0]); !strings.Contains(s, "\n "+c[1]+" ") {
			t.Errorf("%s: %s is not a conffile:\n%s", c[0], c[1], s)
		}
	}
	// The unit's command line, with /etc/default/osim-bootd's flags.
	defaults, err := os.ReadFile(filepath.Join(root, "etc/default/osim-bootd"))
	if err != nil {
		t.Fatal(err)
	}
	opts := regexp.MustCompile(`(?m)^OSIM_BOOTD_OPTS="([^"]*)"`).FindSubmatch(defaults)
	if opts == nil {
		t.Fatal("/etc/default/osim-bootd sets no OSIM_BOOTD_OPTS")
	}
	args := append([]string{"serve", "--config", filepath.Join(root, "etc/osim/bootd.yaml"), "--check"}, strings.Fields(string(opts[1]))...)
	out, err := exec.Command(filepath.Join(root, "usr/bin/osim-bootd"), args...).CombinedOutput()
	var mistakes []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasSuffix(f[0], ":") && !strings.HasPrefix(l, "osim-bootd") {
			mistakes = append(mistakes, strings.TrimSuffix(f[0], ":"))
		}
	}
	if err == nil || !slices.Equal(mistakes, []string{"manager.join_token_file", "address"}) {
		t.Errorf("bootd.yaml's check: %v, mistakes %v, want only the join token and the address (the operator's)\n%s", err, mistakes, out)
	}
	checkManagerEnv(t, root)

	// An upgrade keeps an edited conffile; remove keeps it; purge removes it.
	conf := filepath.Join(root, "etc/osim/bootd.yaml")
	edited := []byte("# edited by the operator\naddress: 192.0.2.99\n")
	if err := os.WriteFile(conf, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	next := buildPackages(t, upstream+"+upgrade1")
	dpkg(t, root, "--force-confold", "-i", next["osim-bootd"])
	if v := field(dpkg(t, root, "-s", "osim-bootd"), "Version"); v != upstream+"+upgrade1-1" {
		t.Errorf("after the upgrade osim-bootd is %q", v)
	}
	if b, _ := os.ReadFile(conf); !bytes.Equal(b, edited) {
		t.Errorf("the upgrade replaced the edited bootd.yaml:\n%s", b)
	}
	dpkg(t, root, "-r", "osim-bootd")
	if _, err := os.Stat(filepath.Join(root, "usr/bin/osim-bootd")); !os.IsNotExist(err) {
		t.Errorf("osim-bootd removed, its binary: %v", err)
	}
	if b, _ := os.ReadFile(conf); !bytes.Equal(b, edited) {
		t.Errorf("remove took the edited bootd.yaml (Debian keeps conffiles until purge)")
	}
	dpkg(t, root, "-P", "osim-bootd")
	if _, err := os.Stat(conf); !os.IsNotExist(err) {
		t.Errorf("purge left bootd.yaml: %v", err)
	}
}

// checkManagerEnv: every OSIM_MANAGER_ setting in the packaged env file,
// commented out or not, names a flag of `osim-manager serve`.
func checkManagerEnv(t *testing.T, root string) {
	t.Helper()
	help, _ := exec.Command(filepath.Join(root, "usr/bin/osim-manager"), "serve", "-h").CombinedOutput()
	f, err := os.Open(filepath.Join(root, "etc/osim/manager.env"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	set := 0
	re := regexp.MustCompile(`^#?(OSIM_MANAGER_[A-Z_]+)=`)
	for sc := bufio.NewScanner(f); sc.Scan(); {
		m := re.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		set++
		flag := "-" + strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(m[1], "OSIM_MANAGER_"), "_", "-"))
		if !regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(flag) + `\b`).Match(help) {
			t.Errorf("manager.env sets %s, but osim-manager serve has no %s flag", m[1], flag)
		}
	}
	if set < 3 {
		t.Errorf("manager.env sets %d settings, want the data dir, the listener and more", set)
	}
}

func field(status, name string) string {
	return strings.TrimSpace(strings.TrimPrefix(lineWithPrefix(status, name+":"), name+":"))
}

func lineWithPrefix(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
