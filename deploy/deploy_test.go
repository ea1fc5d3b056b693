package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
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
	"osim/controlplane/manager"
	"osim/controlplane/mdb"
	"osim/dataplane/dhcp"
	"osim/internal/bootd"
	"osim/internal/diskspace"
	"osim/internal/testlab"
	"osim/metrics"
)

// The files under test, and which daemon's metrics each dashboard reads.
var dashboards = []struct{ file, daemon string }{
	{"grafana/osim-manager.json", "manager"},
	{"grafana/osim-bootd.json", "boot server"},
}

const (
	rulesFile     = "prometheus/osim-alerts.yml"
	rulesTestFile = "prometheus/osim-alerts_test.yml"
	// runbooks is where each alert's runbook annotation points: the
	// heading named after the alert (GitHub's anchor: lower case).
	runbooks = "docs/production.md#"
)

// targetLabels are what Prometheus's scrape config adds to every series:
// job and instance, and site, which deploy/README.md asks to set per
// boot server target; up is the one series it makes itself.
var targetLabels = []string{"job", "instance", "site"}

// A query is one PromQL expression of a dashboard or rule file, and where.
type query struct {
	where string
	expr  string
}

// dashboard is the part of Grafana's dashboard JSON the checks read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

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
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
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
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil || q.Query == "" {
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				t.Fatalf("%s: variable %s: query %s", file, v.Name, v.Query)
			}
		}
		qs = append(qs, query{fmt.Sprintf("%s: variable %s", file, v.Name), q.Query})
	}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				qs = append(qs, query{fmt.Sprintf("%s: panel %q (%s)", file, p.Title, tg.RefID), tg.Expr})
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

func readRules(t *testing.T) ([]rule, []query) {
	t.Helper()
	var rf ruleFile
	readYAML(t, rulesFile, &rf)
	var rules []rule
	var qs []query
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			rules = append(rules, r)
			qs = append(qs, query{fmt.Sprintf("%s: alert %s", rulesFile, r.Alert), r.Expr})
		}
	}
	return rules, qs
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
	rules, _ := readRules(t)
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

// TestPromtoolChecksTheRulesAndTheDashboardsQueries runs Prometheus's own
// checks: `promtool check rules` and `promtool test rules` on the alerts,
// and `promtool check rules` on every dashboard query made a recording
// rule (Grafana's variables replaced), which parses its PromQL.
func TestPromtoolChecksTheRulesAndTheDashboardsQueries(t *testing.T) {
	promtool := testlab.RequireTool(t, "promtool", "prometheus")
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
			g.Rules = append(g.Rules, recording{fmt.Sprintf("dashboard:query_%d", len(g.Rules)+1), grafanaVariables.Replace(q.expr)})
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

// grafanaVariables turns a dashboard query into PromQL: the interval
// variables become durations, the others (inside label matchers) match
// anything.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
	"$job", ".*", "$site", ".*", "$instance", ".*")

// TestEveryQueryNamesAMetricTheDaemonsExport starts a real manager and a
// real boot server joined to it (full DHCP, the XDP guard in userspace),
// scrapes both /metrics, adds every family their registries declare
// (a labelled family shows in a scrape only once it has a child), and
// checks that each metric a dashboard or alert names is one the daemon it
// reads exports, with the labels its matchers use. A histogram's
// _bucket, _sum and _count count as its own.
func TestEveryQueryNamesAMetricTheDaemonsExport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a manager and a boot server")
	}
	exported := startDaemons(t)
	union := families{}
	for _, fs := range exported {
		union.merge(fs)
	}
	check := func(where string, fs families, daemon, expr string) {
		sels, err := selectors(expr)
		if err != nil {
			t.Errorf("%s: %v in %s", where, err, expr)
			return
		}
		for _, s := range sels {
			if err := fs.covers(s); err != nil {
				t.Errorf("%s: %s: %v, in what the %s exports", where, s.metric, err, daemon)
			}
		}
	}
	for _, db := range dashboards {
		_, qs := readDashboard(t, db.file)
		for _, q := range qs {
			check(q.where, exported[db.daemon], db.daemon, q.expr)
		}
	}
	_, qs := readRules(t)
	for _, q := range qs {
		check(q.where, union, "manager or the boot server", q.expr)
	}
}

// families are metric families by name: their label names and, where a
// scrape showed it, their type.
type families map[string]*family

type family struct {
	labels []string
	typ    dto.MetricType
	typed  bool
}

func (fs families) add(name string, typ *dto.MetricType, labels ...string) {
	f := fs[name]
	if f == nil {
		f = &family{}
		fs[name] = f
	}
	for _, l := range labels {
		if !slices.Contains(f.labels, l) {
			f.labels = append(f.labels, l)
		}
	}
	if typ != nil {
		f.typ, f.typed = *typ, true
	}
}

func (fs families) merge(o families) {
	for name, f := range o {
		var typ *dto.MetricType
		if f.typed {
			typ = &f.typ
		}
		fs.add(name, typ, f.labels...)
	}
}

// covers says why s names no exported series, or nil.
func (fs families) covers(s selector) error {
	name, extra := s.metric, []string(nil)
	f := fs[name]
	if f == nil {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base, ok := strings.CutSuffix(name, suffix)
			if bf := fs[base]; ok && bf != nil {
				if bf.typed && bf.typ != dto.MetricType_HISTOGRAM && bf.typ != dto.MetricType_SUMMARY && bf.typ != dto.MetricType_GAUGE_HISTOGRAM {
					return fmt.Errorf("%s is a %s, it has no %s", base, strings.ToLower(bf.typ.String()), suffix)
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
		return fmt.Errorf("no such metric")
	}
	for _, l := range s.labels {
		if !slices.Contains(f.labels, l) && !slices.Contains(targetLabels, l) && !slices.Contains(extra, l) {
			return fmt.Errorf("no label %q (it has %s)", l, strings.Join(f.labels, ", "))
		}
	}
	return nil
}

// startDaemons runs a manager and a boot server on loopback for t and
// returns what each exports, by "manager" and "boot server".
func startDaemons(t *testing.T) map[string]families {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)

	// The manager, wired as `osim-manager serve` wires it: the store, the
	// server and the data dir's disk guard on one registry.
	dir := t.TempDir()
	store, err := mdb.Open(dir, mdb.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	mreg := metrics.NewRegistry()
	srv, err := manager.New(manager.Config{Store: store, Logger: log, Registry: mreg})
	if err != nil {
		t.Fatal(err)
	}
	mreg.MustRegister(diskspace.New(dir, 1<<20, diskspace.Options{Logger: log}))
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	ms := httptest.NewServer(metrics.Handler(mreg))
	t.Cleanup(ms.Close)
	join, err := manager.NewToken(ctx, store, api.TokenRequest{Role: api.RoleJoin, Site: "lab"}, time.Now())
	if err != nil {
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
		Manager: &bootd.ManagerSection{URL: hs.URL, JoinToken: join.Secret, Name: "bs-1", Site: "lab"},
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
	if _, err := api.NewClient(hs.URL, join.Secret, false).ListImages(ctx); err == nil {
		t.Log("a join token listed images") // refused or not, the request is counted
	}
	get(t, "http://"+cfg.HTTP.Listen+"/ipxe/52:54:00:00:00:01")

	return map[string]families{
		"manager":     exportedBy(t, ms.URL+"/metrics", mreg),
		"boot server": exportedBy(t, "http://"+cfg.MetricsListen+"/metrics", breg),
	}
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
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				fs.add(name, mf.Type, lp.GetName())
			}
		}
		fs.add(name, mf.Type)
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
