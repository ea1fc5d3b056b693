// Package firstboot writes an image's first-boot procedures into the
// installed root with a systemd oneshot unit that runs them once at its
// first boot and reports each result to the boot server
// (POST {url}/firstboot/{order}).
//
// Layout on the installed root:
//
//	var/lib/osim/firstboot/            0700
//	  NN-NAME.sh                       0700, one per procedure, in the image's order
//	  env                              0600, exported OSIM_ORDER and OSIM_PARAM_* (no secrets)
//	  report.conf                      0600, OSIM_URL, OSIM_ORDER, OSIM_TOKEN
//	  auth                             0600, "Authorization: Bearer TOKEN" (curl -H @file)
//	  run                              0755, the runner (POSIX sh)
//	  done                             written by the runner after the last report
//	etc/systemd/system/osim-firstboot.service
//	etc/systemd/system/multi-user.target.wants/osim-firstboot.service -> ../osim-firstboot.service
//
// The runner deletes report.conf and auth after the last report.
package firstboot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"osim/controlplane/api"
)

// Paths on the installed root.
const (
	Dir      = "var/lib/osim/firstboot"
	UnitName = "osim-firstboot.service"
	UnitDir  = "etc/systemd/system"
	// Marker is what the runner writes when it is done: the unit's
	// ConditionPathExists=! keeps it from running again.
	Marker = "/" + Dir + "/done"
)

// Config is what Write needs.
type Config struct {
	BaseURL string // the boot server's HTTP base (osim.url)
	Order   string
	Token   string
	// Procedures: those with When firstboot are written, in this order.
	Procedures []api.Procedure
	// Params go into env as OSIM_PARAM_<name>, except Secrets.
	Params  map[string]string
	Secrets []string
}

// Has reports whether ps holds any first-boot procedure.
func Has(ps []api.Procedure) bool {
	return slices.ContainsFunc(ps, func(p api.Procedure) bool { return p.When == api.WhenFirstBoot })
}

// Write writes the procedures, the runner, its settings and the unit
// under root. With no first-boot procedure it writes nothing.
func Write(root string, c Config) error {
	if !Has(c.Procedures) {
		return nil
	}
	if c.BaseURL == "" || c.Order == "" || c.Token == "" {
		return errors.New("firstboot: base URL, order and token are required")
	}
	dir := filepath.Join(root, Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("firstboot: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("firstboot: %w", err)
	}
	n := 0
	for _, p := range c.Procedures {
		if p.When != api.WhenFirstBoot {
			continue
		}
		n++
		name := fmt.Sprintf("%02d-%s.sh", n, p.Name)
		if err := writeFile(filepath.Join(dir, name), "#!/bin/sh\n"+p.Script+"\n", 0o700); err != nil {
			return err
		}
	}
	files := []struct {
		name, body string
		mode       os.FileMode
	}{
		{"env", envFile(c), 0o600},
		{"report.conf", "OSIM_URL=" + quote(strings.TrimSuffix(c.BaseURL, "/")) + "\nOSIM_ORDER=" + quote(c.Order) + "\nOSIM_TOKEN=" + quote(c.Token) + "\n", 0o600},
		{"auth", "Authorization: Bearer " + c.Token + "\n", 0o600},
		{"run", Runner, 0o755},
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(dir, f.name), f.body, f.mode); err != nil {
			return err
		}
	}
	return writeUnit(root)
}

// writeUnit writes the unit and enables it the way systemctl enable
// would (a symlink in multi-user.target.wants).
func writeUnit(root string) error {
	units := filepath.Join(root, UnitDir)
	wants := filepath.Join(units, "multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return fmt.Errorf("firstboot: %w", err)
	}
	if err := writeFile(filepath.Join(units, UnitName), Unit, 0o644); err != nil {
		return err
	}
	link := filepath.Join(wants, UnitName)
	if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("firstboot: %w", err)
	}
	if err := os.Symlink("../"+UnitName, link); err != nil {
		return fmt.Errorf("firstboot: enabling %s: %w", UnitName, err)
	}
	return nil
}

func writeFile(path, body string, mode os.FileMode) error {
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		return fmt.Errorf("firstboot: writing %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil { // an existing file keeps its mode otherwise
		return fmt.Errorf("firstboot: %w", err)
	}
	return nil
}

// envFile exports OSIM_ORDER and every parameter but the secrets as
// OSIM_PARAM_<name> (other characters than letters and digits become _,
// as for pre and post procedures).
func envFile(c Config) string {
	var b strings.Builder
	b.WriteString("export OSIM_ORDER=" + quote(c.Order) + "\n")
	keys := make([]string, 0, len(c.Params))
	for k := range c.Params {
		if !slices.Contains(c.Secrets, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "export OSIM_PARAM_%s=%s\n", envName(k), quote(c.Params[k]))
	}
	return b.String()
}

func envName(k string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, k)
}

// quote is a POSIX sh single-quoted word.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Unit runs the runner once, after the network is up; the marker keeps
// it from running at later boots.
const Unit = `[Unit]
Description=osim first-boot procedures (once)
Wants=network-online.target
After=network-online.target
ConditionPathExists=!` + Marker + `

[Service]
Type=oneshot
ExecStart=/` + Dir + `/run
RemainAfterExit=yes
TimeoutStartSec=infinity
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
`

// Runner runs each procedure in order (a failing one does not stop the
// next), then reports its exit code and the last 2 KiB of its output to
// the boot server with curl, else wget, else busybox wget, retrying 10
// times. wget gets no -T: Debian 12's static busybox wget crashes with it. OSIM_FIRSTBOOT_DIR overrides its directory (tests).
const Runner = `#!/bin/sh
# osim first-boot runner, written by the osim installer.
D=${OSIM_FIRSTBOOT_DIR:-/` + Dir + `}
[ -e "$D/done" ] && exit 0
. "$D/report.conf"
post() { # name exit_code file
	u="$OSIM_URL/firstboot/$OSIM_ORDER?procedure=$1&exit_code=$2"
	i=0
	while [ "$i" -lt 10 ]; do
		if command -v curl >/dev/null 2>&1; then
			curl -fsS -m 30 -H @"$D/auth" -H 'Content-Type: text/plain' --data-binary @"$3" "$u" >/dev/null && return 0
		elif command -v wget >/dev/null 2>&1; then
			wget -q -O /dev/null --header "Authorization: Bearer $OSIM_TOKEN" --header 'Content-Type: text/plain' --post-file "$3" "$u" && return 0
		else
			busybox wget -q -O /dev/null --header "Authorization: Bearer $OSIM_TOKEN" --header 'Content-Type: text/plain' --post-file "$3" "$u" && return 0
		fi
		i=$((i + 1))
		sleep "$i"
	done
	echo "osim-firstboot: could not report $1 to $OSIM_URL" >&2
	return 1
}
for p in "$D"/[0-9][0-9]-*.sh; do
	[ -e "$p" ] || continue
	name=$(basename "$p" .sh)
	name=${name#*-}
	(cd / && . "$D/env" && exec sh "$p") >"$D/out" 2>&1
	rc=$?
	tail -c 2048 "$D/out" >"$D/tail"
	echo "osim-firstboot: $name exited $rc"
	post "$name" "$rc" "$D/tail"
	rm -f "$D/out" "$D/tail"
done
rm -f "$D/report.conf" "$D/auth"
: >"$D/done"
`
