package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"osim/controlplane/api"
)

func targetRows(ts []api.Target) [][]string {
	rows := make([][]string, 0, len(ts))
	for _, t := range ts {
		rows = append(rows, []string{t.ID, t.Hostname, t.Site, t.Arch, strings.Join(t.MACs, ","), t.Address, formatKV(t.Labels), t.CurrentOrder, targetState(t)})
	}
	return rows
}

var targetHeader = []string{"ID", "HOSTNAME", "SITE", "ARCH", "MACS", "ADDRESS", "LABELS", "ORDER", "STATE"}

func (a *app) showTarget(t api.Target) error {
	if a.json() {
		return a.printJSON(t)
	}
	a.fields([][2]string{
		{"id", t.ID}, {"hostname", t.Hostname}, {"macs", strings.Join(t.MACs, ", ")}, {"arch", t.Arch},
		{"site", t.Site}, {"address", t.Address}, {"labels", formatKV(t.Labels)}, {"facts", formatKV(t.Facts)},
		{"order", t.CurrentOrder}, {"state", targetState(t)}, {"revision", fmt.Sprint(t.Revision)},
		{"created", fmtTime(t.Created)}, {"updated", fmtTime(t.Updated)},
	})
	return nil
}

func targetsAdd(a *app, args []string) error {
	const help = "usage: osimctl targets add --hostname H --mac M [--mac M2] [--arch A] --site S [--address IP] [--label k=v ...]\n"
	fs := a.flags("targets.add", help)
	var spec api.TargetSpec
	var macs multi
	labels := kvFlag{}
	fs.StringVar(&spec.Hostname, "hostname", "", "host name (RFC 1123)")
	fs.Var(&macs, "mac", "MAC address (repeat for more NICs)")
	fs.StringVar(&spec.Arch, "arch", "bios", "firmware: "+strings.Join(api.Arches, ", "))
	fs.StringVar(&spec.Site, "site", "", "site whose boot servers serve it")
	fs.StringVar(&spec.Address, "address", "", "IPv4 address (optional)")
	fs.Var(labels, "label", "label k=v (repeatable)")
	if _, err := a.parse(fs, args, 0, 0); err != nil {
		return err
	}
	spec.MACs = macs
	if len(labels) > 0 {
		spec.Labels = labels
	}
	if err := spec.Validate(); err != nil {
		return usagef("osimctl targets add", "targets add: %v", err)
	}
	t, err := a.client.CreateTarget(a.ctx, spec)
	if err != nil {
		return err
	}
	return a.showTarget(t)
}

func targetsList(a *app, args []string) error {
	fs := a.flags("targets.list", "usage: osimctl targets list [--selector SEL] [--site S] [--state discovered] [--limit N] [--all]\n")
	sel := fs.String("selector", "", "label selector, e.g. rack=r1,env!=prod")
	state := fs.String("state", "", "only targets in this state: discovered (registered by discovery, not yet accepted)")
	site := fs.String("site", "", "only this site")
	limit := fs.Int("limit", 100, "page size")
	all := fs.Bool("all", false, "follow every page")
	if _, err := a.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *sel != "" {
		if _, err := api.ParseSelector(*sel); err != nil {
			return usagef("osimctl targets list", "--selector: %v", err)
		}
	}
	if !api.ValidTargetState(*state) {
		return usagef("osimctl targets list", "--state %q: want %s", *state, api.TargetDiscovered)
	}
	var out api.TargetList
	after := ""
	for {
		page, err := a.client.ListTargetsInState(a.ctx, *state, *sel, *site, after, *limit)
		if err != nil {
			return err
		}
		out.Targets = append(out.Targets, page.Targets...)
		out.Next = page.Next
		if !*all || page.Next == "" {
			break
		}
		after = page.Next
	}
	if out.Targets == nil {
		out.Targets = []api.Target{}
	}
	if a.json() {
		return a.printJSON(out)
	}
	a.table(targetHeader, targetRows(out.Targets))
	if out.Next != "" {
		fmt.Fprintf(a.stderr, "(more targets: --all, or a larger --limit)\n")
	}
	return nil
}

func targetsShow(a *app, args []string) error {
	fs := a.flags("targets.show", "usage: osimctl targets show ID|MAC|HOSTNAME\n")
	pos, err := a.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	t, err := a.target(pos[0])
	if err != nil {
		return err
	}
	return a.showTarget(t)
}

func targetsRm(a *app, args []string) error {
	fs := a.flags("targets.rm", "usage: osimctl targets rm ID|MAC\n")
	pos, err := a.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	id, err := a.targetID(pos[0])
	if err != nil {
		return err
	}
	if err := a.client.DeleteTarget(a.ctx, id); err != nil {
		return err
	}
	if !a.json() {
		fmt.Fprintf(a.stdout, "deleted target %s\n", id)
	}
	return nil
}

// importCSVHeader is the CSV columns targets import reads (a header row
// naming them comes first; order is free, hostname, macs and site are
// required). macs and labels separate items with ';'.
var importCSVHeader = []string{"hostname", "macs", "arch", "site", "address", "labels"}

func targetsImport(a *app, args []string) error {
	const name = "osimctl targets import"
	const help = `usage: osimctl targets import FILE.csv|FILE.json [--dry-run] [--skip-existing | --upsert]

CSV: a header row with columns hostname, macs, site and optionally arch, address, labels;
macs and labels separate items with ';' (52:54:00:00:00:01;52:54:00:00:00:02, rack=r1;env=lab).
JSON: an array of target specs as the API takes them ({"hostname":..,"macs":[..],"site":..}).
Every entry is checked before anything is written, a MAC that two entries share and a host
name two entries give in one site included. An entry whose MAC a target has already is an
error, unless --skip-existing (left as it is) or --upsert (updated to the entry: hostname,
site, arch, address, labels). --dry-run says what each entry would do and writes nothing.
Then each is written, and failures are reported per entry (exit 1 if any).
`
	fs := a.flags("targets.import", help)
	dry := fs.Bool("dry-run", false, "say what each entry would do; write nothing")
	skip := fs.Bool("skip-existing", false, "leave targets that exist (by MAC) as they are")
	upsert := fs.Bool("upsert", false, "update targets that exist (by MAC) to the entry")
	pos, err := a.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if *skip && *upsert {
		return usagef(name, "--skip-existing and --upsert exclude each other")
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return usagef(name, "%v", err)
	}
	defer f.Close()
	var specs []api.TargetSpec
	switch strings.ToLower(filepath.Ext(pos[0])) {
	case ".json":
		if err := json.NewDecoder(f).Decode(&specs); err != nil {
			return usagef(name, "%s: %v", pos[0], err)
		}
	case ".csv":
		if specs, err = readTargetsCSV(f); err != nil {
			return usagef(name, "%s: %v", pos[0], err)
		}
	default:
		return usagef(name, "%s: want a .csv or .json file", pos[0])
	}
	if bad := checkImport(pos[0], specs); len(bad) > 0 {
		return usagef(name, "nothing imported:\n  %s", strings.Join(bad, "\n  "))
	}
	// What exists already, by the entries' MACs.
	existing := make([]*api.Target, len(specs))
	for i, sp := range specs {
		for _, m := range sp.MACs {
			t, err := a.client.GetTarget(a.ctx, m)
			if err == nil {
				existing[i] = &t
				break
			}
			if !api.IsStatus(err, http.StatusNotFound) {
				return err
			}
		}
	}
	var written []api.Target
	var plan [][]string
	failed, skipped, updated := 0, 0, 0
	for i, sp := range specs {
		ex := existing[i]
		switch {
		case ex != nil && *skip:
			skipped++
			plan = append(plan, []string{strconv.Itoa(i + 1), sp.Hostname, "skip (exists)", ex.ID})
			continue
		case ex != nil && !*upsert:
			failed++
			plan = append(plan, []string{strconv.Itoa(i + 1), sp.Hostname, "error: a target has its MAC", ex.ID})
			if !*dry {
				fmt.Fprintf(a.stderr, "osimctl: entry %d (%s): target %s (%s) has its MAC (--skip-existing or --upsert)\n", i+1, sp.Hostname, ex.ID, ex.Hostname)
			}
			continue
		case *dry && ex != nil:
			plan = append(plan, []string{strconv.Itoa(i + 1), sp.Hostname, "update", ex.ID})
			continue
		case *dry:
			plan = append(plan, []string{strconv.Itoa(i + 1), sp.Hostname, "create", "-"})
			continue
		}
		var t api.Target
		if ex != nil {
			labels, macs := sp.Labels, sp.MACs
			if labels == nil {
				labels = map[string]string{}
			}
			t, err = a.client.UpdateTarget(a.ctx, ex.ID, api.TargetPatch{Hostname: &sp.Hostname, Site: &sp.Site, Arch: &sp.Arch,
				Address: &sp.Address, Labels: &labels, MACs: &macs})
			updated++
		} else {
			t, err = a.client.CreateTarget(a.ctx, sp)
		}
		if err != nil {
			failed++
			fmt.Fprintf(a.stderr, "osimctl: entry %d (%s): %v\n", i+1, sp.Hostname, err)
			continue
		}
		written = append(written, t)
	}
	if *dry {
		if a.json() {
			return a.printJSON(plan)
		}
		a.table([]string{"ENTRY", "HOSTNAME", "WOULD", "TARGET"}, plan)
		if failed > 0 {
			return fmt.Errorf("targets import: %d of %d entries would fail", failed, len(specs))
		}
		return nil
	}
	if a.json() {
		if err := a.printJSON(api.TargetList{Targets: append([]api.Target{}, written...)}); err != nil {
			return err
		}
	} else {
		a.table(targetHeader, targetRows(written))
	}
	if skipped+updated > 0 {
		fmt.Fprintf(a.stderr, "%d created, %d updated, %d skipped (existing)\n", len(written)-updated, updated, skipped)
	}
	if failed > 0 {
		return fmt.Errorf("targets import: %d of %d entries failed", failed, len(specs))
	}
	return nil
}

// checkImport checks every entry, and what two entries of one file may
// not share: a MAC, or a host name in one site.
func checkImport(file string, specs []api.TargetSpec) []string {
	var bad []string
	macAt, hostAt := map[string]int{}, map[string]int{}
	for i := range specs {
		sp := &specs[i]
		if err := sp.Validate(); err != nil {
			bad = append(bad, fmt.Sprintf("%s: entry %d (%s): %v", file, i+1, sp.Hostname, err))
			continue
		}
		for _, m := range sp.MACs {
			c, _ := api.CanonicalMAC(m)
			if j, ok := macAt[c]; ok {
				bad = append(bad, fmt.Sprintf("%s: entry %d (%s): MAC %s is entry %d's too", file, i+1, sp.Hostname, c, j))
			}
			macAt[c] = i + 1
		}
		key := strings.ToLower(sp.Site + "/" + sp.Hostname)
		if j, ok := hostAt[key]; ok {
			bad = append(bad, fmt.Sprintf("%s: entry %d: host name %s in site %s is entry %d's too", file, i+1, sp.Hostname, sp.Site, j))
		}
		hostAt[key] = i + 1
	}
	return bad
}

func readTargetsCSV(r io.Reader) ([]api.TargetSpec, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("reading the header row: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		h = strings.ToLower(strings.TrimSpace(h))
		known := false
		for _, k := range importCSVHeader {
			known = known || k == h
		}
		if !known {
			return nil, fmt.Errorf("header: unknown column %q (want %s)", h, strings.Join(importCSVHeader, ", "))
		}
		col[h] = i
	}
	for _, req := range []string{"hostname", "macs", "site"} {
		if _, ok := col[req]; !ok {
			return nil, fmt.Errorf("header: no %q column", req)
		}
	}
	var specs []api.TargetSpec
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return specs, nil
		}
		if err != nil {
			return nil, err
		}
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		s := api.TargetSpec{Hostname: get("hostname"), Arch: get("arch"), Site: get("site"), Address: get("address")}
		for m := range strings.SplitSeq(get("macs"), ";") {
			if m = strings.TrimSpace(m); m != "" {
				s.MACs = append(s.MACs, m)
			}
		}
		if l := get("labels"); l != "" {
			s.Labels = map[string]string{}
			for kv := range strings.SplitSeq(l, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
				if !ok {
					return nil, fmt.Errorf("line %d: label %q: want k=v", line, kv)
				}
				s.Labels[k] = v
			}
		}
		specs = append(specs, s)
	}
}

// target finds a target by id, MAC or hostname (the manager answers ids
// and MACs itself; a hostname is looked up).
func (a *app) target(ref string) (api.Target, error) {
	t, err := a.client.GetTarget(a.ctx, ref)
	if err == nil || !api.IsStatus(err, http.StatusNotFound) || !api.ValidHostname(ref) {
		return t, err
	}
	var l api.TargetList
	if lerr := a.client.Do(a.ctx, http.MethodGet, "/targets", url.Values{"q": {ref}, "limit": {"1000"}}, nil, &l); lerr != nil {
		return t, lerr
	}
	for _, c := range l.Targets {
		if strings.EqualFold(c.Hostname, ref) {
			return c, nil
		}
	}
	return t, fmt.Errorf("no target has the id, MAC or hostname %q", ref)
}

func targetsUpdate(a *app, args []string) error {
	const name = "osimctl targets update"
	fs := a.flags("targets.update", "usage: osimctl targets update ID|MAC|HOSTNAME [--hostname H] [--site S] [--arch A] [--address IP]\n"+
		"        [--label k=v ...] [--unlabel k ...] [--power-driver ipmi|libvirt|wol|manual|none --power-address A\n"+
		"         --power-credentials NAME --power-domain D --power-interface IF]\n\n"+
		"Changes only what is given; --label adds or replaces a label, --unlabel removes one;\n"+
		"--power-driver none removes the power spec.\n")
	hostname := fs.String("hostname", "", "new host name")
	site := fs.String("site", "", "new site")
	arch := fs.String("arch", "", "new firmware arch ("+strings.Join(api.Arches, ", ")+")")
	address := fs.String("address", "", "new reserved address")
	labels := kvFlag{}
	fs.Var(labels, "label", "k=v: add or replace a label (repeatable)")
	var unlabel multiFlag
	fs.Var(&unlabel, "unlabel", "k: remove a label (repeatable)")
	var power api.PowerSpec
	fs.StringVar(&power.Driver, "power-driver", "", "the power driver; none removes the power spec")
	fs.StringVar(&power.Address, "power-address", "", "ipmi: BMC host[:port]; libvirt: connection URI")
	fs.StringVar(&power.Credentials, "power-credentials", "", "ipmi: the credential's name")
	fs.StringVar(&power.Domain, "power-domain", "", "libvirt: the domain")
	fs.StringVar(&power.Interface, "power-interface", "", "wol: the boot server's interface on the target's segment")
	pos, err := a.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	t, err := a.target(pos[0])
	if err != nil {
		return err
	}
	var p api.TargetPatch
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["hostname"] {
		p.Hostname = hostname
	}
	if set["site"] {
		p.Site = site
	}
	if set["arch"] {
		p.Arch = arch
	}
	if set["address"] {
		p.Address = address
	}
	if len(labels) > 0 || len(unlabel) > 0 {
		l := map[string]string{}
		for k, v := range t.Labels {
			l[k] = v
		}
		for k, v := range labels {
			l[k] = v
		}
		for _, k := range unlabel {
			delete(l, k)
		}
		p.Labels = &l
	}
	if set["power-driver"] {
		if power.Driver == "none" {
			power = api.PowerSpec{}
		}
		p.Power = &power
	} else if set["power-address"] || set["power-credentials"] || set["power-domain"] || set["power-interface"] {
		return usagef(name, "the --power-* flags go with --power-driver")
	}
	if p == (api.TargetPatch{}) {
		return usagef(name, "nothing to change: give a flag")
	}
	t, err = a.client.UpdateTarget(a.ctx, t.ID, p)
	if err != nil {
		return err
	}
	return a.showTarget(t)
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }
