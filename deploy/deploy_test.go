package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"osim/controlplane/api"
	"osim/dataplane/dhcp"
	"osim/dataplane/xdp"
	"osim/internal/bootd"
	"osim/internal/diskspace"
	"osim/internal/mgrtest"
	"osim/internal/testlab"
	"osim/metrics"
)

// The daemons, as deploy/README.md's scrape config names their jobs.
const (
	managerDaemon = "manager"
	bootServer    = "boot server"
)

// The files under test: which daemon's metrics each dashboard reads, and
// its job (deploy/README.md's), which its job variable starts on.
var dashboards = []struct{ file, daemon, job string }{
	{"grafana/osim-manager.json", managerDaemon, "osim-manager"},
	{"grafana/osim-bootd.json", bootServer, "osim-bootd"},
}

// jobs are the scrape jobs by name, each the daemon it scrapes.
var jobs = map[string]string{"osim-manager": managerDaemon, "osim-bootd": bootServer}

const (
	rulesFile     = "prometheus/osim-alerts.yml"
	rulesTestFile = "prometheus/osim-alerts_test.yml"
	// runbooks is where each alert's runbook annotation points: the
	// heading named after the alert (GitHub's anchor: lower case).
	runbooks = "docs/production.md#"
)

// targetLabels are what Prometheus's scrape config adds to every series
// of a daemon's job: job and instance, and on the boot servers site,
// which deploy/README.md asks to set per boot server target (not on the
// manager's). up is the one series it makes itself.
var targetLabels = map[string][]string{
	managerDaemon: {"job", "instance"},
	bootServer:    {"job", "instance", "site"},
}

// daemonPrefixes say which daemon alone exports a metric, by the
// metric's prefix; a metric none names (osim_disk_*, osim_build_info,
// process_*, go_*, up) both export. TestEveryQueryNamesAMetricTheDaemonsExport
// holds the table to what they do export.
var daemonPrefixes = []struct{ prefix, daemon string }{
	{"osim_manager_", managerDaemon},
	{"osim_agent_", bootServer},
	{"osim_dhcp_", bootServer},
	{"osim_tftp_", bootServer},
	{"osim_http", bootServer},
	{"osim_xdp_", bootServer},
}

// daemonOf is the daemon that alone exports metric, or "" when both do.
func daemonOf(metric string) string {
	for _, p := range daemonPrefixes {
		if strings.HasPrefix(metric, p.prefix) {
			return p.daemon
		}
	}
	return ""
}

// A query is one PromQL expression of a dashboard (or a variable's
// query), where it is, and what of its result the dashboard shows.
type query struct {
	where   string
	expr    string
	legend  string   // a panel target's legendFormat
	columns []string // the fields a table's organize transformation names
	// filters are the variables it must be filtered by: on a panel,
	// every one of the dashboard's; on a variable, the ones before it.
	filters []string
}

// dashboard is the part of Grafana's dashboard JSON the checks read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasource     `json:"datasource"`
	AllValue   *string         `json:"allValue"`
	Current    struct {
		Value json.RawMessage `json:"value"`
	} `json:"current"`
}

// query is the variable's query: PromQL or label_values(...) for a query
// variable, the comma-separated values of a custom one.
func (v variable) query() (string, error) {
	var q struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &q); err == nil && q.Query != "" {
		return q.Query, nil
	}
	err := json.Unmarshal(v.Query, &q.Query)
	return q.Query, err
}

// current is the variable's value when the dashboard opens.
func (v variable) current() []string {
	var one string
	if json.Unmarshal(v.Current.Value, &one) == nil {
		return []string{one}
	}
	var many []string
	json.Unmarshal(v.Current.Value, &many)
	return many
}

// filter reports whether the variable filters the queries by a label of
// its name (job, site, instance), as query and custom variables do.
func (v variable) filter() bool { return v.Type == "query" || v.Type == "custom" }

type panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Datasource  *datasource `json:"datasource"`
	Panels      []panel     `json:"panels"` // a collapsed row's
	GridPos     struct{ X, Y, W, H int }
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID        string      `json:"refId"`
		Expr         string      `json:"expr"`
		LegendFormat string      `json:"legendFormat"`
		Datasource   *datasource `json:"datasource"`
	} `json:"targets"`
	Transformations []struct {
		ID      string `json:"id"`
		Options struct {
			ExcludeByName map[string]bool   `json:"excludeByName"`
			IndexByName   map[string]int    `json:"indexByName"`
			RenameByName  map[string]string `json:"renameByName"`
		} `json:"options"`
	} `json:"transformations"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// dsVariable is how every panel and query names its datasource: the
// dashboard's datasource variable, so that one file serves any Prometheus.
const dsVariable = "${datasource}"

func readDashboard(t *testing.T, file string) (dashboard, []query) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: not a dashboard's JSON: %v", file, err)
	}
	var qs []query
	var filters []string
	for _, v := range d.Templating.List {
		if !v.filter() {
			continue
		}
		q, err := v.query()
		if err != nil {
			t.Fatalf("%s: variable %s: query %s", file, v.Name, v.Query)
		}
		if v.Type == "query" {
			qs = append(qs, query{where: fmt.Sprintf("%s: variable %s", file, v.Name), expr: q, filters: slices.Clone(filters)})
		}
		filters = append(filters, v.Name)
	}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			var columns []string
			for _, tr := range p.Transformations {
				if tr.ID != "organize" {
					continue
				}
				for f := range tr.Options.IndexByName {
					columns = append(columns, f)
				}
				for f := range tr.Options.ExcludeByName {
					columns = append(columns, f)
				}
				for f := range tr.Options.RenameByName {
					columns = append(columns, f)
				}
			}
			slices.Sort(columns)
			for _, tg := range p.Targets {
				qs = append(qs, query{where: fmt.Sprintf("%s: panel %q (%s)", file, p.Title, tg.RefID), expr: tg.Expr,
					legend: tg.LegendFormat, columns: slices.Compact(columns), filters: filters})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return d, qs
}

// rule files, as promtool reads them (unknown keys refused here too).
type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert         string            `yaml:"alert"`
	Record        string            `yaml:"record"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for"`
	KeepFiringFor string            `yaml:"keep_firing_for"`
	Labels        map[string]string `yaml:"labels"`
	Annotations   map[string]string `yaml:"annotations"`
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func readRules(t *testing.T) []rule {
	t.Helper()
	var rf ruleFile
	readYAML(t, rulesFile, &rf)
	var rules []rule
	for _, g := range rf.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

// TestDashboardsAreGrafanaJSONOnTheDatasourceVariable: each dashboard
// parses, has its uid, title and schema version, takes its Prometheus
// from the datasource variable in every panel and query, and gives every
// graph a unit.
func TestDashboardsAreGrafanaJSONOnTheDatasourceVariable(t *testing.T) {
	uids := map[string]string{}
	for _, db := range dashboards {
		d, qs := readDashboard(t, db.file)
		if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
			t.Errorf("%s: uid %q, title %q, schemaVersion %d: want all, 36 or later", db.file, d.UID, d.Title, d.SchemaVersion)
		}
		if other, ok := uids[d.UID]; ok {
			t.Errorf("%s: uid %q is %s's too", db.file, d.UID, other)
		}
		uids[d.UID] = db.file
		vars := map[string]string{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v.Type
			if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != dsVariable) {
				t.Errorf("%s: variable %s: datasource %+v, want uid %s", db.file, v.Name, v.Datasource, dsVariable)
			}
		}
		if vars["datasource"] != "datasource" || vars["instance"] != "query" {
			t.Errorf("%s: variables %v: want a datasource variable \"datasource\" and a query variable \"instance\"", db.file, vars)
		}
		if len(qs) < 10 {
			t.Errorf("%s: %d queries: an empty dashboard?", db.file, len(qs))
		}
		ids := map[int]bool{}
		var walk func([]panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				where := fmt.Sprintf("%s: panel %q", db.file, p.Title)
				if ids[p.ID] {
					t.Errorf("%s: id %d used twice", where, p.ID)
				}
				ids[p.ID] = true
				if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
					t.Errorf("%s: gridPos x %d w %d outside the 24 columns", where, p.GridPos.X, p.GridPos.W)
				}
				walk(p.Panels)
				if p.Type == "row" {
					continue
				}
				if p.Datasource == nil || p.Datasource.UID != dsVariable {
					t.Errorf("%s: datasource %+v, want uid %s", where, p.Datasource, dsVariable)
				}
				if p.FieldConfig.Defaults.Unit == "" {
					t.Errorf("%s: no unit", where)
				}
				if len(p.Targets) == 0 {
					t.Errorf("%s: no query", where)
				}
				for _, tg := range p.Targets {
					if tg.Expr == "" || tg.Datasource == nil || tg.Datasource.UID != dsVariable {
						t.Errorf("%s (%s): expr %q, datasource %+v", where, tg.RefID, tg.Expr, tg.Datasource)
					}
				}
			}
		}
		walk(d.Panels)
	}
}

// TestAlertsCarryForSeverityAnnotationsAndUnitTests: every alert waits
// (for), says how bad (severity), what and why (summary, description) and
// where its runbook is (the heading of its name in docs/production.md),
// and the promtool unit tests have, for each, a case where it fires and
// one where it does not.
func TestAlertsCarryForSeverityAnnotationsAndUnitTests(t *testing.T) {
	rules := readRules(t)
	var tf struct {
		RuleFiles          []string `yaml:"rule_files"`
		EvaluationInterval string   `yaml:"evaluation_interval"`
		Tests              []struct {
			Name          string                            `yaml:"name"`
			Interval      string                            `yaml:"interval"`
			InputSeries   []struct{ Series, Values string } `yaml:"input_series"`
			AlertRuleTest []struct {
				EvalTime  string           `yaml:"eval_time"`
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, rulesTestFile, &tf)
	if !slices.Equal(tf.RuleFiles, []string{filepath.Base(rulesFile)}) {
		t.Errorf("%s: rule_files %v, want [%s]", rulesTestFile, tf.RuleFiles, filepath.Base(rulesFile))
	}
	fires, silent := map[string]int{}, map[string]int{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname]++
			} else {
				silent[a.Alertname]++
			}
		}
	}
	names := map[string]bool{}
	for _, r := range rules {
		if r.Alert == "" {
			t.Errorf("%s: a rule that is no alert (record %q): the dashboards and alerts read only exported metrics", rulesFile, r.Record)
			continue
		}
		where := rulesFile + ": " + r.Alert
		if names[r.Alert] {
			t.Errorf("%s: a second alert of that name", where)
		}
		names[r.Alert] = true
		if d, err := model.ParseDuration(r.For); err != nil || d <= 0 {
			t.Errorf("%s: for %q: want a duration", where, r.For)
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
			t.Errorf("%s: severity %q: want critical, warning or info", where, s)
		}
		for _, k := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[k]) == "" {
				t.Errorf("%s: no %s annotation", where, k)
			}
		}
		if want := runbooks + strings.ToLower(r.Alert); r.Annotations["runbook"] != want {
			t.Errorf("%s: runbook %q, want %q", where, r.Annotations["runbook"], want)
		}
		if fires[r.Alert] == 0 || silent[r.Alert] == 0 {
			t.Errorf("%s: %s has %d cases where it fires and %d where it does not: want both", where, rulesTestFile, fires[r.Alert], silent[r.Alert])
		}
	}
	for name := range fires {
		if !names[name] {
			t.Errorf("%s: tests alert %s, which %s does not have", rulesTestFile, name, rulesFile)
		}
	}
	if len(names) == 0 {
		t.Fatalf("%s: no alert", rulesFile)
	}
}

// TestDashboardsFilterEveryQueryByTheirJob: a dashboard shows its daemon
// only. Its job variable starts on the daemon's job and offers only jobs
// that export a metric of that daemon alone; no variable has an allValue
// (with one, All is that regex, and `.*` matches every job Prometheus
// scrapes: other programs' process_* and up, the manager's osim_disk_* on
// the boot server dashboard); and every selector of every query is
// filtered by each of the dashboard's variables (a variable's own query by
// the ones before it): job=~"$job", site=~"$site", instance=~"$instance".
func TestDashboardsFilterEveryQueryByTheirJob(t *testing.T) {
	for _, db := range dashboards {
		d, qs := readDashboard(t, db.file)
		var job *variable
		for i, v := range d.Templating.List {
			if v.AllValue != nil && *v.AllValue != "" {
				t.Errorf("%s: variable %s: allValue %q: want none, so that All is the values found", db.file, v.Name, *v.AllValue)
			}
			if v.Name == "job" {
				job = &d.Templating.List[i]
			}
		}
		if job == nil {
			t.Errorf("%s: no job variable", db.file)
			continue
		}
		if cur := job.current(); !slices.Equal(cur, []string{db.job}) {
			t.Errorf("%s: variable job starts on %q, want %q", db.file, cur, db.job)
		}
		q, err := job.query()
		switch {
		case err != nil:
			t.Errorf("%s: variable job: %v", db.file, err)
		case job.Type == "custom":
			for _, v := range strings.Split(q, ",") {
				if jobs[strings.TrimSpace(v)] != db.daemon {
					t.Errorf("%s: variable job offers %q, no job of the %s", db.file, v, db.daemon)
				}
			}
		default:
			sels, err := selectors(q)
			if err != nil || len(sels) == 0 {
				t.Errorf("%s: variable job: %q reads no metric (%v): it would offer every job", db.file, q, err)
			}
			for _, s := range sels {
				if daemonOf(s.metric) != db.daemon {
					t.Errorf("%s: variable job reads %s, which not only the %s exports: it would offer other jobs", db.file, s.metric, db.daemon)
				}
			}
		}
		for _, q := range qs {
			sels, err := selectors(q.expr)
			if err != nil {
				t.Errorf("%s: %v in %s", q.where, err, q.expr)
				continue
			}
			for _, s := range sels {
				for _, v := range q.filters {
					if m, ok := s.matcher(v); !ok || (m.op != "=~" && m.op != "=") || (m.value != "$"+v && m.value != "${"+v+"}") {
						t.Errorf("%s: %s is not filtered by %s=~\"$%s\"", q.where, s.metric, v, v)
					}
				}
			}
		}
	}
}

// promtoolPath is where scripts/packages.sh unpacks Debian's prometheus
// package: unpacked, not installed, as installing it starts a Prometheus
// server on the machine.
const promtoolPath = "/opt/osim-test/prometheus/usr/bin/promtool"

// needPromtool returns promtool: promtoolPath, else the one on PATH.
// Neither fails the test under CI=true and skips it elsewhere.
func needPromtool(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat(promtoolPath); err == nil && fi.Mode()&0o111 != 0 {
		return promtoolPath
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	msg := "promtool is not at " + promtoolPath + " (scripts/packages.sh unpacks Debian's prometheus package there) nor on PATH"
	testlab.Unavailable(t, "%s", msg)
	return ""
}

// TestPromtoolChecksTheRulesAndTheDashboardsQueries runs Prometheus's own
// checks: `promtool check rules` and `promtool test rules` on the alerts,
// and `promtool check rules` on every dashboard query made a recording
// rule (Grafana's variables replaced as Grafana would on opening the
// dashboard), which parses its PromQL.
func TestPromtoolChecksTheRulesAndTheDashboardsQueries(t *testing.T) {
	promtool := needPromtool(t)
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("check", "rules", rulesFile)
	run("test", "rules", rulesTestFile)

	type recording struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	type group struct {
		Name  string      `yaml:"name"`
		Rules []recording `yaml:"rules"`
	}
	var groups []group
	for _, db := range dashboards {
		_, qs := readDashboard(t, db.file)
		g := group{Name: filepath.Base(db.file)}
		for _, q := range qs {
			if strings.HasPrefix(strings.TrimSpace(q.expr), "label_values(") {
				continue // Grafana's, not PromQL
			}
			g.Rules = append(g.Rules, recording{fmt.Sprintf("dashboard:query_%d", len(g.Rules)+1), grafanaVariables(db.job).Replace(q.expr)})
		}
		groups = append(groups, g)
	}
	b, err := yaml.Marshal(map[string][]group{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboards.yml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	run("check", "rules", "--lint=none", file)
}

// grafanaVariables turns a dashboard query into PromQL as Grafana does
// when the dashboard opens: the interval variables become durations, job
// the daemon's job, and site and instance (on All) the regex of the
// values found.
func grafanaVariables(job string) *strings.Replacer {
	return strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
		"$job", job, "$site", "(dc1|dc2)", "$instance", "(bs-1:9169|bs-2:9169)")
}

// TestEveryQueryNamesAMetricTheDaemonsExport starts a real manager and a
// real boot server joined to it (full DHCP, the XDP guard in userspace),
// scrapes both /metrics, adds every family their registries declare
// (a labelled family shows in a scrape only once it has a child), and
// checks each dashboard query against the daemon the dashboard shows and
// each alert against the daemon its job matcher or its metrics' prefix
// names (both for the metrics both export):
//   - each metric it names is one that daemon exports, with the labels its
//     matchers use (those of its family, and of its scrape target: job,
//     instance, and site on the boot servers); a histogram's _bucket,
//     _sum and _count count as its own;
//   - each label a clause names (by, without, on, ignoring, group_left,
//     group_right, label_replace's source, histogram_quantile's le) is one
//     the series it applies to carry, and one-to-one operands pair up;
//   - each label its result is read by (a legend's {{label}}, a table's
//     columns, label_values' label, an alert's $labels.label) is one the
//     result carries;
//   - a matcher naming a literal value of an enumerated label (order and
//     rollout states, boot server health, ...) names one the code emits
//     or the scrape shows;
//   - and daemonPrefixes is true to what each daemon exports.
func TestEveryQueryNamesAMetricTheDaemonsExport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a manager and a boot server")
	}
	ex := startDaemons(t)
	ex.checkPrefixes(t)
	for _, db := range dashboards {
		_, qs := readDashboard(t, db.file)
		for _, q := range qs {
			e, label, err := grafanaQuery(q.expr)
			if err != nil {
				t.Errorf("%s: %v in %s", q.where, err, q.expr)
				continue
			}
			if e == nil {
				continue // label_values(label)
			}
			c := &labelChecker{resolve: ex.resolverFor(db.daemon)}
			out := c.check(e)
			if label != "" {
				c.needResult("label_values", out, label)
			}
			c.needResult("the legend", out, legendLabels(q.legend)...)
			for _, col := range q.columns {
				if col != "Time" && col != "__name__" && !strings.HasPrefix(col, "Value") {
					c.needResult("the table's columns", out, col)
				}
			}
			c.errs = append(c.errs, ex.checkValues(e, db.daemon)...)
			for _, err := range c.errs {
				t.Errorf("%s: %v", q.where, err)
			}
		}
	}
	rules := readRules(t)
	for _, r := range rules {
		where := rulesFile + ": alert " + r.Alert
		e, err := parsePromQL(r.Expr)
		if err != nil {
			t.Errorf("%s: %v in %s", where, err, r.Expr)
			continue
		}
		c := &labelChecker{resolve: ex.alertResolver}
		out := c.check(e)
		var read []string
		for _, k := range slices.Sorted(maps.Keys(r.Annotations)) {
			for _, m := range labelRef.FindAllStringSubmatch(r.Annotations[k], -1) {
				if _, own := r.Labels[m[1]]; !own {
					read = append(read, m[1])
				}
			}
		}
		c.needResult("its annotations", out, read...)
		c.errs = append(c.errs, ex.checkValues(e, "")...)
		for _, err := range c.errs {
			t.Errorf("%s: %v", where, err)
		}
	}
}

var (
	legendLabel = regexp.MustCompile(`\{\{\s*([^{}\s]+)\s*\}\}`)
	labelRef    = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
)

// legendLabels are the labels a legendFormat names ({{label}}).
func legendLabels(legend string) []string {
	var out []string
	for _, m := range legendLabel.FindAllStringSubmatch(legend, -1) {
		out = append(out, m[1])
	}
	return out
}

// exports is what the daemons export: by daemon, and all of it.
type exports struct {
	by  map[string]families
	all families
}

// resolverFor resolves selectors against what daemon exports (""
// both): a literal job matcher must name that daemon's job.
func (ex exports) resolverFor(daemon string) resolver {
	return func(s selector) ([]string, error) {
		for _, j := range jobsMatched(s) {
			d, ok := jobs[j]
			if !ok {
				return nil, fmt.Errorf("job %q is none of deploy/README.md's (osim-manager, osim-bootd)", j)
			}
			if daemon != "" && d != daemon {
				return nil, fmt.Errorf("job %q is the %s's, not the %s's", j, d, daemon)
			}
		}
		if daemon == "" {
			return ex.all.resolve(s, "manager or the boot server", union(targetLabels[managerDaemon], targetLabels[bootServer]...))
		}
		return ex.by[daemon].resolve(s, "the "+daemon, targetLabels[daemon])
	}
}

// alertResolver resolves an alert's selector against the daemon whose
// job it names, else the one its metric's prefix names, else both.
func (ex exports) alertResolver(s selector) ([]string, error) {
	daemon := daemonOf(s.metric)
	for _, j := range jobsMatched(s) {
		if daemon == "" {
			daemon = jobs[j]
		}
	}
	return ex.resolverFor(daemon)(s)
}

// jobsMatched are the jobs a literal job matcher (= or a regex of
// literals) of s names.
func jobsMatched(s selector) []string {
	m, ok := s.matcher("job")
	if !ok || (m.op != "=" && m.op != "=~") {
		return nil
	}
	vs, _ := m.literals()
	return vs
}

// enumerations are the labels whose values the code names: each value
// the code emits (none listed: the scrape shows them all, startDaemons
// made sure). The scrape's values count too.
func enumerations() map[[2]string][]string {
	var orders, ended, classes, verdicts []string
	for _, st := range api.OrderStates {
		orders = append(orders, string(st))
		if st.Final() {
			ended = append(ended, string(st))
		}
	}
	for c := range xdp.NumClasses {
		classes = append(classes, c.String())
	}
	for v := range xdp.NumVerdicts {
		verdicts = append(verdicts, v.String())
	}
	return map[[2]string][]string{
		{"osim_manager_orders", "state"}:             orders,
		{"osim_manager_orders_ended_total", "state"}: ended,
		{"osim_manager_rollouts", "state"}:           {api.RolloutRunning, api.RolloutPaused, api.RolloutStopped, api.RolloutAborted, api.RolloutDone},
		{"osim_manager_rollout_targets", "state"}:    nil,
		{"osim_manager_boot_servers", "health"}:      {api.HealthHealthy, api.HealthStale, api.HealthDown},
		{"osim_xdp_packets_total", "class"}:          classes,
		{"osim_xdp_packets_total", "verdict"}:        verdicts,
		{"osim_xdp_bytes_total", "class"}:            classes,
		{"osim_xdp_bytes_total", "verdict"}:          verdicts,
		{"osim_dhcp_refused_total", "reason"}:        {string(dhcp.OutcomeRelayNotAllowed), string(dhcp.OutcomeUnknownCap)},
	}
}

// checkValues checks e's matchers on enumerated labels: each literal
// value they name must be one the code emits or daemon's ("": either's)
// scrape shows, else the matcher selects nothing (=) or everything (!=).
func (ex exports) checkValues(e expr, daemon string) []error {
	fs := ex.all
	if daemon != "" {
		fs = ex.by[daemon]
	}
	enums := enumerations()
	var errs []error
	for _, s := range selectorsOf(e) {
		for _, m := range s.matchers {
			code, ok := enums[[2]string{s.metric, m.label}]
			vs, literal := m.literals()
			if !ok || !literal {
				continue
			}
			known := union(code, fs.values(s.metric, m.label)...)
			for _, v := range vs {
				if !slices.Contains(known, v) {
					errs = append(errs, fmt.Errorf("%s{%s%s%q}: %s is never %q (it is one of %s)", s.metric, m.label, m.op, m.value, m.label, v, strings.Join(known, ", ")))
				}
			}
		}
	}
	return errs
}

// checkPrefixes holds daemonPrefixes to what the daemons export: a
// metric of one daemon's prefix exported by the other, a prefix of no
// metric, or a metric of no prefix (osim_*) that only one exports fails.
func (ex exports) checkPrefixes(t *testing.T) {
	t.Helper()
	used := map[string]bool{}
	for daemon, fs := range ex.by {
		for name := range fs {
			switch owner := daemonOf(name); owner {
			case daemon:
				for _, p := range daemonPrefixes {
					if strings.HasPrefix(name, p.prefix) {
						used[p.prefix] = true
						break
					}
				}
			case "":
				for other, ofs := range ex.by {
					if _, ok := ofs[name]; !ok && strings.HasPrefix(name, "osim_") {
						t.Errorf("%s: the %s exports it, the %s does not: give daemonPrefixes its prefix", name, daemon, other)
					}
				}
			default:
				t.Errorf("%s: the %s exports it, daemonPrefixes says only the %s does", name, daemon, owner)
			}
		}
	}
	for _, p := range daemonPrefixes {
		if !used[p.prefix] {
			t.Errorf("daemonPrefixes: no metric of the %s starts with %s", p.daemon, p.prefix)
		}
	}
}

// families are metric families by name: their label names, the label
// values a scrape showed and, where a scrape showed it, their type.
type families map[string]*family

type family struct {
	labels []string
	values map[string][]string
	typ    dto.MetricType
	typed  bool
}

func (fs families) add(name string, typ *dto.MetricType, labels ...string) *family {
	f := fs[name]
	if f == nil {
		f = &family{values: map[string][]string{}}
		fs[name] = f
	}
	f.labels = union(f.labels, labels...)
	if typ != nil {
		f.typ, f.typed = *typ, true
	}
	return f
}

func (fs families) merge(o families) {
	for name, f := range o {
		var typ *dto.MetricType
		if f.typed {
			typ = &f.typ
		}
		nf := fs.add(name, typ, f.labels...)
		for l, vs := range f.values {
			nf.values[l] = union(nf.values[l], vs...)
		}
	}
}

// values are the values of label the scrape showed on metric.
func (fs families) values(metric, label string) []string {
	if f := fs[metric]; f != nil {
		return f.values[label]
	}
	return nil
}

// resolve returns the labels of the series s selects (its family's,
// target's, and le or quantile for a histogram's or summary's series),
// or says why s selects none of what who exports.
func (fs families) resolve(s selector, who string, target []string) ([]string, error) {
	name, extra := s.metric, []string(nil)
	f := fs[name]
	if f == nil {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base, ok := strings.CutSuffix(name, suffix)
			if bf := fs[base]; ok && bf != nil {
				if bf.typed && bf.typ != dto.MetricType_HISTOGRAM && bf.typ != dto.MetricType_SUMMARY && bf.typ != dto.MetricType_GAUGE_HISTOGRAM {
					return nil, fmt.Errorf("%s is a %s, it has no %s", base, strings.ToLower(bf.typ.String()), suffix)
				}
				f = bf
				if suffix == "_bucket" {
					extra = []string{"le"}
				} else if bf.typ == dto.MetricType_SUMMARY {
					extra = []string{"quantile"}
				}
				break
			}
		}
	}
	if f == nil {
		return nil, fmt.Errorf("no such metric in what %s exports", who)
	}
	have := union(union(f.labels, target...), extra...)
	for _, l := range s.labels() {
		if !slices.Contains(have, l) {
			return nil, fmt.Errorf("no label %q in what %s exports (it has %s)", l, who, seriesLabels{names: have})
		}
	}
	return have, nil
}

// startDaemons runs a manager and a boot server on loopback for t and
// returns what they export.
func startDaemons(t *testing.T) exports {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)

	// The manager, wired as `osim-manager serve` wires it: the store, the
	// server and the data dir's disk guard on one registry.
	mreg := metrics.NewRegistry()
	mgr := mgrtest.StartManager(t, mgrtest.Options{Registry: mreg})
	store := mgr.Store
	mreg.MustRegister(diskspace.New(mgr.Dir, 1<<20, diskspace.Options{Logger: log}))
	ms := httptest.NewServer(metrics.Handler(mreg))
	t.Cleanup(ms.Close)
	join := mgr.Token(t, api.TokenRequest{Role: api.RoleJoin, Site: "lab"})
	// A stopped rollout, so that osim_manager_rollout_targets shows its
	// states (done, failed, other, remaining).
	ro := api.Rollout{State: api.RolloutStopped, Reason: "failure budget spent",
		Waves: []api.Wave{{Targets: []string{"t-1", "t-2", "t-3", "t-4"}, State: api.WaveEnded, Done: 1, Failed: 1, Other: 1}}}
	if _, err := store.CreateRollout(ctx, ro); err != nil {
		t.Fatal(err)
	}

	// The boot server: manager mode (the agent), full DHCP (the lease
	// and pool metrics), the XDP guard (userspace: no interface).
	bdir := t.TempDir()
	if err := os.Mkdir(filepath.Join(bdir, "tftp"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := &bootd.Config{
		Address: "127.0.0.1", DataDir: filepath.Join(bdir, "data"), MetricsListen: freeTCP(t),
		DHCP: bootd.DHCPSection{Mode: "full", Listen: freeUDP(t), BootListen: freeUDP(t),
			Pools: []dhcp.PoolConfig{{Network: "127.0.0.0/24", Start: "127.0.0.100", End: "127.0.0.200"}}},
		TFTP:    bootd.TFTPSection{Listen: freeUDP(t), Root: filepath.Join(bdir, "tftp")},
		HTTP:    bootd.HTTPSection{Listen: freeTCP(t)},
		Manager: &bootd.ManagerSection{URL: mgr.URL, JoinToken: join, Name: "bs-1", Site: "lab"},
		XDP:     &bootd.XDPSection{},
	}
	k, err := bootd.Check(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	breg := metrics.NewRegistry()
	n, err := bootd.Build(k, bootd.Options{Log: log, Level: new(slog.LevelVar), Registry: breg})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(rctx, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })

	// Some traffic, so that labelled families have children in the
	// scrapes: an API call, an HTTP boot request.
	if _, err := api.NewClient(mgr.URL, join, false).ListImages(ctx); err == nil {
		t.Log("a join token listed images") // refused or not, the request is counted
	}
	get(t, "http://"+cfg.HTTP.Listen+"/ipxe/52:54:00:00:00:01")

	ex := exports{by: map[string]families{
		managerDaemon: exportedBy(t, ms.URL+"/metrics", mreg),
		bootServer:    exportedBy(t, "http://"+cfg.MetricsListen+"/metrics", breg),
	}, all: families{}}
	for _, fs := range ex.by {
		ex.all.merge(fs)
	}
	return ex
}

// exportedBy scrapes url (retrying while the listener comes up) and adds
// every family reg declares.
func exportedBy(t *testing.T, url string, reg *prometheus.Registry) families {
	t.Helper()
	fs := families{}
	body := get(t, url)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	for name, mf := range mfs {
		f := fs.add(name, mf.Type)
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				fs.add(name, nil, lp.GetName())
				f.values[lp.GetName()] = union(f.values[lp.GetName()], lp.GetValue())
			}
		}
	}
	gauge := dto.MetricType_GAUGE
	fs.add("up", &gauge) // Prometheus's own, of every target it scrapes
	scraped := len(fs)
	ch := make(chan *prometheus.Desc)
	go func() { reg.Describe(ch); close(ch) }()
	for d := range ch {
		name, labels, err := parseDesc(d.String())
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		fs.add(name, nil, labels...)
	}
	t.Logf("%s: %d families scraped, %d declared", url, scraped, len(fs))
	return fs
}

// get answers the body of a 2xx or 4xx answer to url, retrying for a few
// seconds while nothing listens.
func get(t *testing.T, url string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode < 500 {
				return string(b)
			}
			err = fmt.Errorf("%s: %v", resp.Status, rerr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// parseDesc reads a metric's name and label names from Desc.String:
// Desc{fqName: "…", help: "…", unit: "…", constLabels: {a="…",…}, variableLabels: {b,c(d),…}}.
func parseDesc(s string) (name string, labels []string, err error) {
	rest, ok := strings.CutPrefix(s, "Desc{fqName: ")
	quoted := func() (string, error) {
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return "", err
		}
		rest = rest[len(q):]
		return strconv.Unquote(q)
	}
	if !ok {
		return "", nil, fmt.Errorf("not a Desc")
	}
	if name, err = quoted(); err != nil {
		return "", nil, err
	}
	for _, field := range []string{", help: ", ", unit: "} {
		if rest, ok = strings.CutPrefix(rest, field); !ok {
			if field == ", unit: " {
				continue // an older client_golang
			}
			return "", nil, fmt.Errorf("no %q", field)
		}
		if _, err := quoted(); err != nil {
			return "", nil, err
		}
	}
	if rest, ok = strings.CutPrefix(rest, ", constLabels: {"); !ok {
		return "", nil, fmt.Errorf("no constLabels")
	}
	for !strings.HasPrefix(rest, "}") {
		i := strings.IndexByte(rest, '=')
		if i < 0 {
			return "", nil, fmt.Errorf("bad constLabels at %q", rest)
		}
		labels = append(labels, strings.TrimPrefix(rest[:i], ","))
		rest = rest[i+1:]
		if _, err := quoted(); err != nil {
			return "", nil, err
		}
	}
	vl, ok := strings.CutPrefix(rest, "}, variableLabels: {")
	if !ok {
		return "", nil, fmt.Errorf("no variableLabels")
	}
	vl, _, _ = strings.Cut(vl, "}")
	for _, l := range strings.Split(vl, ",") {
		if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
			labels = append(labels, l)
		}
	}
	return name, labels, nil
}

// freeUDP is a free UDP port on loopback: the XDP guard needs the
// services' ports up front.
func freeUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

func freeTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestParseDescReadsNameAndLabels(t *testing.T) {
	d := prometheus.NewDesc("osim_x_total", `help with "quotes", braces {} and constLabels: {a="b"}`, []string{"route", "code"}, prometheus.Labels{"dir": `/var/lib/"x"`})
	name, labels, err := parseDesc(d.String())
	slices.Sort(labels)
	if err != nil || name != "osim_x_total" || !slices.Equal(labels, []string{"code", "dir", "route"}) {
		t.Fatalf("parseDesc(%s) = %q %v %v", d, name, labels, err)
	}
}
