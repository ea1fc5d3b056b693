package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// A selector is one vector selector of a PromQL expression: the metric it
// names and the labels its matchers name.
type selector struct {
	metric string
	labels []string
}

// promqlFuncs are PromQL's functions and aggregations (and the @
// modifier's start() and end()): an identifier followed by "(" must be
// one, and is no metric name.
var promqlFuncs = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`
		abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp
		clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month
		deg delta deriv double_exponential_smoothing exp floor histogram_avg histogram_count
		histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum
		holt_winters hour idelta increase info irate label_join label_replace last_over_time ln log10
		log2 mad_over_time max_over_time min_over_time minute month pi predict_linear
		present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_by_label
		sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh
		time timestamp vector year
		start end`) {
		promqlFuncs[f] = true
	}
	for _, f := range strings.Fields(promqlAggregations) {
		promqlFuncs[f] = true
		promqlAggs[f] = true
	}
}

// promqlAggregations may have their by/without clause first: sum by (x) (m).
const promqlAggregations = "avg bottomk count count_values group limit_ratio limitk max min quantile stddev stdvar sum topk"

var promqlAggs = map[string]bool{}

// Keywords: binary operators and modifiers (case-insensitive), and the
// ones followed by a parenthesized list of label names.
var (
	promqlKeywords   = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true, "inf": true, "nan": true}
	promqlLabelLists = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
)

// selectors finds every vector selector of a PromQL expression: metric
// names, with the label names of their matchers. It skips functions and
// aggregations, keywords, the label lists of by/without/on/ignoring/
// group_left/group_right, strings, numbers and durations, range and
// subquery brackets, comments, and Grafana's variables ($var, ${var},
// $__rate_interval). A metric named only in {__name__="..."} counts; a
// regex on __name__ or an unknown function is an error, as the check
// could not tell what the expression reads. Grafana's label_values(m,
// label) reads the selector m.
func selectors(expr string) ([]selector, error) {
	if inner, ok := strings.CutPrefix(strings.TrimSpace(expr), "label_values("); ok {
		inner = strings.TrimSuffix(strings.TrimSpace(inner), ")")
		i := strings.LastIndexByte(inner, ',')
		if i < 0 {
			return nil, nil // label_values(label): every series
		}
		expr = inner[:i]
	}
	var out []selector
	s := expr
	i := 0
	skipSpace := func(j int) int {
		for j < len(s) && strings.IndexByte(" \t\r\n", s[j]) >= 0 {
			j++
		}
		return j
	}
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(s, i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '$':
			i = skipVariable(s, i)
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unclosed [ at %d", i)
			}
			i += j + 1
		case c == '{':
			labels, name, j, err := matchers(s, i)
			if err != nil {
				return nil, err
			}
			if name != "" {
				out = append(out, selector{name, labels})
			}
			i = j
		case isDigit(c) || (c == '.' && i+1 < len(s) && isDigit(s[i+1])):
			hex := strings.HasPrefix(s[i:], "0x") || strings.HasPrefix(s[i:], "0X")
			for i < len(s) && (isIdent(s[i]) || s[i] == '.' ||
				(!hex && (s[i] == '+' || s[i] == '-') && (s[i-1] == 'e' || s[i-1] == 'E'))) {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			word := s[i:j]
			lower := strings.ToLower(word)
			next := skipSpace(j)
			switch {
			case promqlLabelLists[lower]:
				if next < len(s) && s[next] == '(' {
					k := strings.IndexByte(s[next:], ')')
					if k < 0 {
						return nil, fmt.Errorf("unclosed label list after %s", word)
					}
					j = next + k + 1
				}
			case promqlKeywords[lower]:
			case next < len(s) && s[next] == '(':
				if !promqlFuncs[word] && !promqlAggs[lower] {
					return nil, fmt.Errorf("unknown function %s", word)
				}
			case promqlAggs[lower] && promqlLabelLists[strings.ToLower(identAt(s, next))]:
				// sum by (x) (m): the clause is skipped next round
			default:
				sel := selector{metric: word}
				if next < len(s) && s[next] == '{' {
					labels, name, k, err := matchers(s, next)
					if err != nil {
						return nil, err
					}
					if name != "" {
						return nil, fmt.Errorf("%s{__name__=%q}: two metric names", word, name)
					}
					sel.labels, j = labels, k
				}
				out = append(out, sel)
			}
			i = j
		default:
			i++
		}
	}
	return out, nil
}

// matchers reads {...} at s[i]: the label names matched, the metric
// named by __name__="..." if any, and the index after the "}".
func matchers(s string, i int) (labels []string, name string, end int, err error) {
	i++ // {
	for i < len(s) {
		c := s[i]
		switch {
		case c == '}':
			return labels, name, i + 1, nil
		case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',':
			i++
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			label := s[i:j]
			k := j
			for k < len(s) && s[k] == ' ' {
				k++
			}
			op := ""
			for k < len(s) && strings.IndexByte("=!~", s[k]) >= 0 {
				op += string(s[k])
				k++
			}
			for k < len(s) && s[k] == ' ' {
				k++
			}
			if op == "" || k >= len(s) || strings.IndexByte("\"'`", s[k]) < 0 {
				return nil, "", 0, fmt.Errorf("matcher %s: want an operator and a string", label)
			}
			e, err := skipString(s, k)
			if err != nil {
				return nil, "", 0, err
			}
			if label == "__name__" {
				if op != "=" {
					return nil, "", 0, fmt.Errorf("__name__%s: only an exact metric name can be checked", op)
				}
				name = s[k+1 : e-1]
			} else if !slices.Contains(labels, label) {
				labels = append(labels, label)
			}
			i = e
		case c == '$':
			i = skipVariable(s, i)
		default:
			return nil, "", 0, fmt.Errorf("unexpected %q in label matchers", c)
		}
	}
	return nil, "", 0, fmt.Errorf("unclosed {")
}

// skipString returns the index after the string literal at s[i].
func skipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unclosed string at %d", i)
}

// skipVariable returns the index after a Grafana variable at s[i]: $name
// or ${name...}.
func skipVariable(s string, i int) int {
	if i+1 < len(s) && s[i+1] == '{' {
		if j := strings.IndexByte(s[i:], '}'); j > 0 {
			return i + j + 1
		}
		return len(s)
	}
	j := i + 1
	for j < len(s) && isIdent(s[j]) && s[j] != ':' {
		j++
	}
	return j
}

// identAt returns the identifier starting at s[i], if any.
func identAt(s string, i int) string {
	j := i
	for j < len(s) && isIdent(s[j]) {
		j++
	}
	return s[i:j]
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdent(c byte) bool      { return isIdentStart(c) || isDigit(c) }

func TestSelectorsFindEveryMetricAndNothingElse(t *testing.T) {
	cases := []struct {
		expr string
		want []string // metric, then its matchers' labels after a space
	}{
		{`up`, []string{"up"}},
		{`up{job="osim-bootd"} == 0`, []string{"up job"}},
		{`sum by (state) (rate(osim_manager_orders_ended_total{job=~"$job",instance=~"$instance"}[$__rate_interval])) * 3600`,
			[]string{"osim_manager_orders_ended_total job instance"}},
		{`sum(rate(a_total[5m])) by (instance) / on (instance) group_left (version) osim_build_info`, []string{"a_total", "osim_build_info"}},
		{`histogram_quantile(0.95, sum by (route, le) (rate(x_seconds_bucket{route!~"GET /api/v1/(sync|events)"}[1m])))`,
			[]string{"x_seconds_bucket route"}},
		{`label_replace(m, "dst", "$1", "src", "(.*)")`, []string{"m"}},
		{`count_values("version", osim_build_info)`, []string{"osim_build_info"}},
		{`a offset 1h30m and b @ start() unless c or bool d`, []string{"a", "b", "c", "d"}},
		{`min_over_time(lag[15m:1m]) > 1e+3 and 0x1E+m < .5 + Inf - NaN`, []string{"lag", "m"}},
		{`SUM BY (x) (m)`, []string{"m"}},
		{`{__name__="named", job="j"}`, []string{"named job"}},
		{"m # a comment naming not_a_metric\n + n", []string{"m", "n"}},
		{`topk($n, m{a='it\'s'})`, []string{"m a"}},
		{`sum(a) + (sum(b) or vector(0))`, []string{"a", "b"}},
		{`label_values(osim_tftp_bytes_sent_total{job=~"$job"}, instance)`, []string{"osim_tftp_bytes_sent_total job"}},
		{`label_values(job)`, nil},
		{`a:recorded:rate5m`, []string{"a:recorded:rate5m"}},
	}
	for _, c := range cases {
		sels, err := selectors(c.expr)
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		var got []string
		for _, s := range sels {
			got = append(got, strings.Join(append([]string{s.metric}, s.labels...), " "))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.expr, got, c.want)
		}
	}
	for _, bad := range []string{`rte(m[5m])`, `{__name__=~"osim_.*"}`, `m{job="x"`, `m{job}`, `sum(m[5m)`, `m{a="b}`} {
		if sels, err := selectors(bad); err == nil {
			t.Errorf("%s: no error, selectors %v", bad, sels)
		}
	}
}
