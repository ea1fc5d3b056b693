package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// This file reads PromQL as far as the checks need: which series an
// expression selects (selectors, with their matchers), and which label
// names its clauses use (by, without, on, ignoring, group_left/right,
// label_replace and label_join's sources, histogram_quantile's le), so
// that each can be checked against what the series it applies to carry.

// A selector is one vector selector of a PromQL expression: the metric it
// names and its label matchers (__name__ is the metric).
type selector struct {
	metric   string
	matchers []matcher
}

// A matcher is one label matcher: the label, its operator (=, !=, =~,
// !~) and its value, unquoted.
type matcher struct{ label, op, value string }

// labels are the label names s's matchers name, each once.
func (s selector) labels() []string {
	var out []string
	for _, m := range s.matchers {
		if !slices.Contains(out, m.label) {
			out = append(out, m.label)
		}
	}
	return out
}

// matcher returns s's matcher of label, if any.
func (s selector) matcher(label string) (matcher, bool) {
	for _, m := range s.matchers {
		if m.label == label {
			return m, true
		}
	}
	return matcher{}, false
}

// literals are the values m matches when they can be listed: its value for
// = and !=, the alternatives of a regex made only of literals and "|"
// (running|paused) for =~ and !~. ok is false for any other regex and for
// a Grafana variable.
func (m matcher) literals() (vs []string, ok bool) {
	if strings.Contains(m.value, "$") {
		return nil, false
	}
	if m.op == "=" || m.op == "!=" {
		return []string{m.value}, true
	}
	for _, v := range strings.Split(m.value, "|") {
		for _, c := range []byte(v) {
			if !isIdent(c) && c != '-' {
				return nil, false
			}
		}
		vs = append(vs, v)
	}
	return vs, true
}

// The expression tree, reduced to what the checks read. Parentheses,
// signs, ranges, subqueries, offset and @ leave no node.
type (
	expr       any
	scalarExpr struct{} // a number, or a Grafana variable standing for one
	stringExpr struct{ value string }
	callExpr   struct {
		fn   string
		args []expr
	}
	aggExpr struct {
		op               string
		grouped, without bool // by (grouping) or without (grouping)
		grouping         []string
		param, arg       expr // param: topk's k, count_values' label, ...
	}
	binaryExpr struct {
		op       string
		lhs, rhs expr
		matching bool // on (labels) or ignoring (labels)
		on       bool // which of the two
		labels   []string
		group    string // "left", "right" or "" (one-to-one)
		include  []string
	}
)

// promqlFuncs are PromQL's functions (and the @ modifier's start() and
// end()); an identifier followed by "(" must be one of them or an
// aggregation.
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
}

// promqlAggs are the aggregation operators (case-insensitive), which may
// have their by/without clause first: sum by (x) (m). The true ones take
// a parameter first: topk(5, m).
var promqlAggs = map[string]bool{
	"avg": false, "count": false, "group": false, "max": false, "min": false, "stddev": false, "stdvar": false, "sum": false,
	"bottomk": true, "topk": true, "limitk": true, "limit_ratio": true, "quantile": true, "count_values": true,
}

// promqlKeywords may not stand where an expression goes.
var promqlKeywords = map[string]bool{"and": true, "or": true, "unless": true, "atan2": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// parsePromQL parses a PromQL expression with Grafana's variables in it
// ($var and ${var} where a number, a duration or a string's text goes).
// A metric named only by {__name__="..."} counts; a regex on __name__ or
// an unknown function is an error, as the checks could not tell what the
// expression reads.
func parsePromQL(s string) (e expr, err error) {
	toks, err := lexPromQL(s)
	if err != nil {
		return nil, err
	}
	p := &promParser{toks: toks}
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(parseError)
			if !ok {
				panic(r)
			}
			e, err = nil, pe
		}
	}()
	e = p.expr(0)
	if t := p.peek(); t.kind != tEOF {
		p.fail(t, "unexpected %q", t.text)
	}
	return e, nil
}

type tokenKind int

const (
	tEOF tokenKind = iota
	tIdent
	tNumber // a number or a duration
	tString
	tVar // a Grafana variable
	tPunct
)

type token struct {
	kind tokenKind
	text string // a string's unquoted value
	pos  int
}

// lexPromQL splits s into tokens, dropping comments.
func lexPromQL(s string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		start := i
		switch {
		case strings.IndexByte(" \t\r\n", c) >= 0:
			i++
			continue
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
			continue
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(s, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{tString, unquote(s[i:j]), start})
			i = j
		case c == '$':
			i = skipVariable(s, i)
			toks = append(toks, token{tVar, s[start:i], start})
		case isDigit(c) || (c == '.' && i+1 < len(s) && isDigit(s[i+1])):
			hex := strings.HasPrefix(s[i:], "0x") || strings.HasPrefix(s[i:], "0X")
			for i < len(s) && (isIdent(s[i]) || s[i] == '.' ||
				(!hex && (s[i] == '+' || s[i] == '-') && (s[i-1] == 'e' || s[i-1] == 'E'))) {
				i++
			}
			toks = append(toks, token{tNumber, s[start:i], start})
		case isIdentStart(c):
			for i < len(s) && isIdent(s[i]) {
				i++
			}
			toks = append(toks, token{tIdent, s[start:i], start})
		default:
			op := ""
			for _, o := range []string{"==", "!=", "=~", "!~", "<=", ">=", "(", ")", "{", "}", "[", "]", ",", "=", "<", ">", "+", "-", "*", "/", "%", "^", "@"} {
				if strings.HasPrefix(s[i:], o) {
					op = o
					break
				}
			}
			if op == "" {
				return nil, fmt.Errorf("unexpected %q at %d", c, i)
			}
			i += len(op)
			toks = append(toks, token{tPunct, op, start})
		}
	}
	return append(toks, token{tEOF, "end of expression", len(s)}), nil
}

// unquote returns a string literal's value: the quotes dropped and, but
// in a raw `string`, each backslash escape replaced by the character it
// escapes (enough for label values and names).
func unquote(q string) string {
	body := q[1 : len(q)-1]
	if q[0] == '`' {
		return body
	}
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		if body[i] == '\\' && i+1 < len(body) {
			i++
		}
		b.WriteByte(body[i])
	}
	return b.String()
}

type parseError struct{ msg string }

func (e parseError) Error() string { return e.msg }

type promParser struct {
	toks []token
	i    int
}

func (p *promParser) peek() token { return p.toks[p.i] }

func (p *promParser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *promParser) fail(t token, format string, args ...any) {
	panic(parseError{fmt.Sprintf(format, args...) + fmt.Sprintf(" at %d", t.pos)})
}

func (p *promParser) isPunct(s string) bool {
	t := p.peek()
	return t.kind == tPunct && t.text == s
}

// keyword returns the next token in lower case if it is an identifier.
func (p *promParser) keyword() string {
	if t := p.peek(); t.kind == tIdent {
		return strings.ToLower(t.text)
	}
	return ""
}

func (p *promParser) expect(s string) {
	if t := p.next(); t.kind != tPunct || t.text != s {
		p.fail(t, "want %q, found %q", s, t.text)
	}
}

// binaryOp returns the operator t is and its precedence, if it is one.
func binaryOp(t token) (string, int, bool) {
	prec := map[string]int{"or": 1, "and": 2, "unless": 2, "==": 3, "!=": 3, "<=": 3, "<": 3, ">=": 3, ">": 3,
		"+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5, "^": 6}
	op := t.text
	if t.kind == tIdent {
		op = strings.ToLower(op)
	} else if t.kind != tPunct {
		return "", 0, false
	}
	n, ok := prec[op]
	if !ok || (t.kind == tIdent) != (op == "or" || op == "and" || op == "unless" || op == "atan2") {
		return "", 0, false
	}
	return op, n, true
}

// expr parses operands joined by binary operators of precedence min or
// higher (^ is right-associative, the others left).
func (p *promParser) expr(min int) expr {
	lhs := p.unary()
	for {
		op, prec, ok := binaryOp(p.peek())
		if !ok || prec < min {
			return lhs
		}
		p.next()
		b := &binaryExpr{op: op, lhs: lhs}
		if p.keyword() == "bool" {
			p.next()
		}
		if k := p.keyword(); k == "on" || k == "ignoring" {
			p.next()
			b.matching, b.on, b.labels = true, k == "on", p.labelList()
		}
		if k := p.keyword(); k == "group_left" || k == "group_right" {
			p.next()
			b.group = strings.TrimPrefix(k, "group_")
			if p.isPunct("(") {
				b.include = p.labelList()
			}
		}
		next := prec + 1
		if op == "^" {
			next = prec
		}
		b.rhs = p.expr(next)
		lhs = b
	}
}

func (p *promParser) unary() expr {
	if p.isPunct("-") || p.isPunct("+") {
		p.next()
		return p.unary()
	}
	return p.postfix(p.primary())
}

func (p *promParser) primary() expr {
	t := p.next()
	switch t.kind {
	case tNumber, tVar:
		return scalarExpr{}
	case tString:
		return stringExpr{t.text}
	case tPunct:
		switch t.text {
		case "(":
			e := p.expr(0)
			p.expect(")")
			return e
		case "{":
			s := p.matchers("")
			if s.metric == "" {
				p.fail(t, "a selector without a metric name")
			}
			return s
		}
	case tIdent:
		word, lower := t.text, strings.ToLower(t.text)
		_, agg := promqlAggs[lower]
		switch {
		case agg && (p.isPunct("(") || p.keyword() == "by" || p.keyword() == "without"):
			return p.aggregation(lower)
		case p.isPunct("("):
			if !promqlFuncs[word] {
				p.fail(t, "unknown function %s", word)
			}
			return &callExpr{fn: word, args: p.args()}
		case lower == "inf" || lower == "nan":
			return scalarExpr{}
		case promqlKeywords[lower]:
			p.fail(t, "%s where an expression goes", word)
		}
		if p.isPunct("{") {
			p.next()
			return p.matchers(word)
		}
		return selector{metric: word}
	}
	p.fail(t, "unexpected %q", t.text)
	return nil
}

// postfix skips what may follow an operand: a range or subquery in
// brackets, offset, @.
func (p *promParser) postfix(e expr) expr {
	for {
		switch {
		case p.isPunct("["):
			open := p.next()
			for !p.isPunct("]") {
				if p.peek().kind == tEOF {
					p.fail(open, "unclosed [")
				}
				p.next()
			}
			p.next()
		case p.keyword() == "offset":
			p.next()
			if p.isPunct("-") {
				p.next()
			}
			if t := p.next(); t.kind != tNumber && t.kind != tVar {
				p.fail(t, "offset %q: want a duration", t.text)
			}
		case p.isPunct("@"):
			p.next()
			if p.isPunct("-") {
				p.next()
			}
			t := p.next()
			if t.kind == tIdent && (t.text == "start" || t.text == "end") {
				p.expect("(")
				p.expect(")")
			} else if t.kind != tNumber && t.kind != tVar {
				p.fail(t, "@ %q: want a time", t.text)
			}
		default:
			return e
		}
	}
}

// matchers reads label matchers up to "}" (the "{" read): a selector of
// metric, or of the metric __name__="..." names.
func (p *promParser) matchers(metric string) selector {
	s := selector{metric: metric}
	for {
		t := p.next()
		switch {
		case t.kind == tPunct && t.text == "}":
			return s
		case t.kind == tPunct && t.text == ",":
			continue
		case t.kind == tEOF:
			p.fail(t, "unclosed {")
		case t.kind != tIdent && t.kind != tString:
			p.fail(t, "unexpected %q in label matchers", t.text)
		}
		op, v := p.next(), p.next()
		if op.kind != tPunct || (op.text != "=" && op.text != "!=" && op.text != "=~" && op.text != "!~") || v.kind != tString {
			p.fail(t, "matcher %s: want an operator and a string", t.text)
		}
		if t.text != "__name__" {
			s.matchers = append(s.matchers, matcher{t.text, op.text, v.text})
			continue
		}
		if op.text != "=" {
			p.fail(t, "__name__%s: only an exact metric name can be checked", op.text)
		}
		if s.metric != "" {
			p.fail(t, "%s{__name__=%q}: two metric names", s.metric, v.text)
		}
		s.metric = v.text
	}
}

func (p *promParser) aggregation(op string) expr {
	a := &aggExpr{op: op}
	clause := func() {
		if k := p.keyword(); k == "by" || k == "without" {
			p.next()
			a.grouped, a.without, a.grouping = true, k == "without", p.labelList()
		}
	}
	clause()
	p.expect("(")
	if promqlAggs[op] {
		a.param = p.expr(0)
		p.expect(",")
	}
	a.arg = p.expr(0)
	p.expect(")")
	if !a.grouped {
		clause()
	}
	return a
}

// args reads a function's arguments in parentheses.
func (p *promParser) args() []expr {
	p.expect("(")
	var args []expr
	for !p.isPunct(")") {
		args = append(args, p.expr(0))
		if !p.isPunct(")") {
			p.expect(",")
		}
	}
	p.next()
	return args
}

// labelList reads (a, b, ...).
func (p *promParser) labelList() []string {
	p.expect("(")
	var out []string
	for !p.isPunct(")") {
		t := p.next()
		if t.kind != tIdent && t.kind != tString {
			p.fail(t, "want a label name, found %q", t.text)
		}
		out = append(out, t.text)
		if !p.isPunct(")") {
			p.expect(",")
		}
	}
	p.next()
	return out
}

// grafanaQuery reads a dashboard query: PromQL, or Grafana's variable
// query label_values(selector, label) (label_values(label): every
// series). e is nil for label_values(label).
func grafanaQuery(q string) (e expr, label string, err error) {
	inner, ok := strings.CutPrefix(strings.TrimSpace(q), "label_values(")
	if !ok {
		e, err = parsePromQL(q)
		return e, "", err
	}
	inner = strings.TrimSuffix(strings.TrimSpace(inner), ")")
	i := strings.LastIndexByte(inner, ',')
	if i < 0 {
		return nil, strings.TrimSpace(inner), nil
	}
	e, err = parsePromQL(inner[:i])
	return e, strings.TrimSpace(inner[i+1:]), err
}

// selectorsOf lists the selectors of e, in order.
func selectorsOf(e expr) []selector {
	var out []selector
	var walk func(expr)
	walk = func(e expr) {
		switch e := e.(type) {
		case selector:
			out = append(out, e)
		case *callExpr:
			for _, a := range e.args {
				walk(a)
			}
		case *aggExpr:
			walk(e.param)
			walk(e.arg)
		case *binaryExpr:
			walk(e.lhs)
			walk(e.rhs)
		}
	}
	walk(e)
	return out
}

// selectors finds every vector selector of a dashboard query or PromQL
// expression.
func selectors(q string) ([]selector, error) {
	e, _, err := grafanaQuery(q)
	return selectorsOf(e), err
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

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdent(c byte) bool      { return isIdentStart(c) || isDigit(c) }

// seriesLabels are the label names an expression's series may carry.
type seriesLabels struct {
	names   []string
	scalar  bool // a number or a string: no series
	unknown bool // read from a selector that did not resolve: not checked further
}

func (l seriesLabels) has(name string) bool { return l.unknown || slices.Contains(l.names, name) }

func (l seriesLabels) String() string {
	if len(l.names) == 0 {
		return "no label"
	}
	names := slices.Clone(l.names)
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// union is a's names and b's; minus is a's without drop.
func union(a []string, b ...string) []string {
	out := slices.Clone(a)
	for _, n := range b {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func minus(a []string, drop ...string) []string {
	var out []string
	for _, n := range a {
		if !slices.Contains(drop, n) {
			out = append(out, n)
		}
	}
	return out
}

// A resolver answers the label names the series s selects carry (its
// family's, the target's), or why it selects none.
type resolver func(s selector) ([]string, error)

// labelChecker walks an expression: every selector must resolve, and
// every label name a clause uses must be one the series it applies to
// may carry. errs collects what is wrong.
type labelChecker struct {
	resolve resolver
	errs    []error
}

// check returns the labels of e's result, recording what is wrong in c.
func (c *labelChecker) check(e expr) seriesLabels {
	switch e := e.(type) {
	case nil:
		return seriesLabels{}
	case scalarExpr, stringExpr:
		return seriesLabels{scalar: true}
	case selector:
		names, err := c.resolve(e)
		if err != nil {
			c.errs = append(c.errs, fmt.Errorf("%s: %w", e.metric, err))
			return seriesLabels{unknown: true}
		}
		return seriesLabels{names: names}
	case *callExpr:
		return c.call(e)
	case *aggExpr:
		return c.aggregation(e)
	case *binaryExpr:
		return c.binary(e)
	}
	panic(fmt.Sprintf("unknown node %T", e))
}

// need records each of names that l does not carry, saying where.
func (c *labelChecker) need(where string, l seriesLabels, names ...string) {
	for _, n := range names {
		if !l.has(n) {
			c.errs = append(c.errs, fmt.Errorf("%s: no label %q on the series it applies to (they have %s)", where, n, l))
		}
	}
}

// needResult records each of names that the result l does not carry,
// saying what reads it.
func (c *labelChecker) needResult(what string, l seriesLabels, names ...string) {
	for _, n := range names {
		if !l.has(n) {
			c.errs = append(c.errs, fmt.Errorf("%s: its series carry no label %q (they have %s)", what, n, l))
		}
	}
}

func (c *labelChecker) call(e *callExpr) seriesLabels {
	args := make([]seriesLabels, len(e.args))
	for i, a := range e.args {
		args[i] = c.check(a)
	}
	str := func(i int) string {
		if i < len(e.args) {
			if s, ok := e.args[i].(stringExpr); ok {
				return s.value
			}
		}
		return ""
	}
	switch e.fn {
	case "scalar", "time", "pi":
		return seriesLabels{scalar: true}
	case "vector":
		return seriesLabels{}
	case "label_replace": // (v, dst, replacement, src, regex)
		if src := str(3); src != "" {
			c.need("label_replace's source "+src, args[0], src)
		}
		return seriesLabels{names: union(args[0].names, str(1)), unknown: args[0].unknown}
	case "label_join": // (v, dst, separator, src...)
		for i := 3; i < len(e.args); i++ {
			c.need("label_join's source "+str(i), args[0], str(i))
		}
		return seriesLabels{names: union(args[0].names, str(1)), unknown: args[0].unknown}
	case "histogram_quantile": // (φ, buckets)
		if len(args) == 2 {
			c.need("histogram_quantile", args[1], "le")
			return seriesLabels{names: minus(args[1].names, "le"), unknown: args[1].unknown}
		}
	case "sort_by_label", "sort_by_label_desc":
		for i := 1; i < len(e.args); i++ {
			c.need(e.fn, args[0], str(i))
		}
	case "absent", "absent_over_time":
		// The labels of the argument's equality matchers.
		var out []string
		if s, ok := e.args[0].(selector); ok && len(e.args) == 1 {
			for _, m := range s.matchers {
				if m.op == "=" {
					out = append(out, m.label)
				}
			}
		}
		return seriesLabels{names: out}
	}
	// The others keep the labels of their vector argument.
	out := seriesLabels{scalar: true}
	for _, a := range args {
		if !a.scalar {
			out = seriesLabels{names: union(out.names, a.names...), unknown: out.unknown || a.unknown}
		}
	}
	if len(args) == 0 {
		out = seriesLabels{}
	}
	return out
}

func (c *labelChecker) aggregation(e *aggExpr) seriesLabels {
	if e.param != nil {
		c.check(e.param)
	}
	in := c.check(e.arg)
	if e.grouped {
		clause := "by"
		if e.without {
			clause = "without"
		}
		c.need(fmt.Sprintf("%s %s (%s)", e.op, clause, strings.Join(e.grouping, ", ")), in, e.grouping...)
	}
	out := seriesLabels{unknown: in.unknown}
	switch {
	case e.op == "topk" || e.op == "bottomk" || e.op == "limitk" || e.op == "limit_ratio":
		out.names = in.names
	case e.without:
		out.names = minus(in.names, e.grouping...)
	case e.grouped:
		out.names = slices.Clone(e.grouping)
	}
	if s, ok := e.param.(stringExpr); ok && e.op == "count_values" {
		out.names = union(out.names, s.value)
	}
	return out
}

func (c *labelChecker) binary(e *binaryExpr) seriesLabels {
	l, r := c.check(e.lhs), c.check(e.rhs)
	switch {
	case l.scalar && r.scalar:
		return l
	case l.scalar:
		return r
	case r.scalar:
		return l
	}
	clause := ""
	if e.matching {
		clause = "ignoring"
		if e.on {
			clause = "on"
		}
		clause = fmt.Sprintf("%s %s (%s)", e.op, clause, strings.Join(e.labels, ", "))
	}
	for _, n := range e.labels {
		switch {
		case e.on:
			c.need(clause+", left", l, n)
			c.need(clause+", right", r, n)
		case !l.has(n) && !r.has(n):
			c.need(clause, seriesLabels{names: union(l.names, r.names...)}, n)
		}
	}
	unknown := l.unknown || r.unknown
	switch e.op {
	case "and", "unless":
		return l
	case "or":
		return seriesLabels{names: union(l.names, r.names...), unknown: unknown}
	}
	switch e.group {
	case "left":
		c.need(fmt.Sprintf("%s group_left (%s)", e.op, strings.Join(e.include, ", ")), r, e.include...)
		return seriesLabels{names: union(l.names, e.include...), unknown: unknown}
	case "right":
		c.need(fmt.Sprintf("%s group_right (%s)", e.op, strings.Join(e.include, ", ")), l, e.include...)
		return seriesLabels{names: union(r.names, e.include...), unknown: unknown}
	}
	// One to one: the sides pair up on all their labels but the ones
	// ignored (on: only those), so a label only one side carries pairs
	// nothing.
	if e.on {
		return seriesLabels{names: slices.Clone(e.labels), unknown: unknown}
	}
	ll, rl := minus(l.names, e.labels...), minus(r.names, e.labels...)
	if onlyL, onlyR := minus(ll, rl...), minus(rl, ll...); !unknown && (len(onlyL) > 0 || len(onlyR) > 0) {
		c.errs = append(c.errs, fmt.Errorf("%s: no series pairs up: only the left carries %v, only the right %v (aggregate them away, or match with on or ignoring)", e.op, onlyL, onlyR))
	}
	return seriesLabels{names: ll, unknown: unknown}
}

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
		{`a offset 1h30m and b @ start() unless c or d offset -5m`, []string{"a", "b", "c", "d"}},
		{`min_over_time(lag[15m:1m]) > bool 1e+3 and 0x1E+m < .5 + Inf - NaN`, []string{"lag", "m"}},
		{`SUM BY (x) (m)`, []string{"m"}},
		{`{__name__="named", job="j"}`, []string{"named job"}},
		{"m # a comment naming not_a_metric\n + n", []string{"m", "n"}},
		{`topk($n, m{a='it\'s'})`, []string{"m a"}},
		{`sum(a) + (sum(b) or vector(0))`, []string{"a", "b"}},
		{`-a ^ -b ^ c % d atan2 e`, []string{"a", "b", "c", "d", "e"}},
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
			got = append(got, strings.Join(append([]string{s.metric}, s.labels()...), " "))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.expr, got, c.want)
		}
	}
	for _, bad := range []string{`rte(m[5m])`, `{__name__=~"osim_.*"}`, `m{job="x"`, `m{job}`, `sum(m[5m)`, `m{a="b}`,
		`sum(m) by`, `m{__name__="n"}`, `rate(m[5m]) +`, `a and`, `(a`, `{job="x"}`, `a b`} {
		if sels, err := selectors(bad); err == nil {
			t.Errorf("%s: no error, selectors %v", bad, sels)
		}
	}
}

func TestMatcherLiteralsListWhatARegexOfLiteralsMatches(t *testing.T) {
	cases := []struct {
		m    matcher
		want []string
		ok   bool
	}{
		{matcher{"state", "=", "stopped"}, []string{"stopped"}, true},
		{matcher{"state", "!=", "remaining"}, []string{"remaining"}, true},
		{matcher{"state", "=~", "pending|staged|booting"}, []string{"pending", "staged", "booting"}, true},
		{matcher{"job", "=~", "osim-bootd"}, []string{"osim-bootd"}, true},
		{matcher{"code", "=~", "4..|5.."}, nil, false},
		{matcher{"route", "!~", "GET /api/v1/(sync|events)"}, nil, false},
		{matcher{"job", "=~", "$job"}, nil, false},
	}
	for _, c := range cases {
		got, ok := c.m.literals()
		if ok != c.ok || !slices.Equal(got, c.want) {
			t.Errorf("%+v: %q %v, want %q %v", c.m, got, ok, c.want, c.ok)
		}
	}
}

// TestLabelCheckerFollowsTheLabelsThroughTheExpression drives the label
// analysis on made-up families: what each clause may name, and the
// labels of the result (what a legend or an annotation may name).
func TestLabelCheckerFollowsTheLabelsThroughTheExpression(t *testing.T) {
	fams := map[string][]string{
		"req_total":          {"route", "code"},
		"req_seconds_bucket": {"route", "le"},
		"pool_held":          {"pool"},
		"pool_size":          {"pool"},
		"build_info":         {"version", "commit"},
		"disk_free":          {"dir"},
	}
	resolve := func(s selector) ([]string, error) {
		l, ok := fams[s.metric]
		if !ok {
			return nil, fmt.Errorf("no such metric")
		}
		return union(l, "job", "instance"), nil
	}
	cases := []struct {
		expr string
		out  string // the result's labels, sorted; "?" unknown
		errs []string
	}{
		{`sum by (route) (rate(req_total[5m]))`, "route", nil},
		{`sum by (pool) (rate(req_total[5m]))`, "pool", []string{`sum by (pool): no label "pool"`}},
		{`sum without (code) (req_total)`, "instance, job, route", nil},
		{`sum without (pool) (req_total)`, "code, instance, job, route", []string{`sum without (pool): no label "pool"`}},
		{`histogram_quantile(0.9, sum by (le, route) (rate(req_seconds_bucket[5m])))`, "route", nil},
		{`histogram_quantile(0.9, sum by (route) (rate(req_seconds_bucket[5m])))`, "route", []string{`histogram_quantile: no label "le"`}},
		{`pool_held / pool_size > 0.9`, "instance, job, pool", nil},
		{`pool_held / disk_free`, "instance, job, pool", []string{`/: no series pairs up: only the left carries [pool], only the right [dir]`}},
		{`pool_held / ignoring (pool) disk_free`, "?", []string{`/: no series pairs up`}},
		{`sum by (instance) (pool_held) / on (instance) group_left (version) build_info`, "instance, version", nil},
		{`sum by (instance, pool) (pool_held) * on (instance, pool) group_left (release) build_info`, "instance, pool, release",
			[]string{`* on (instance, pool), right: no label "pool"`, `* group_left (release): no label "release"`}},
		{`label_replace(disk_free, "path", "$1", "dir", "(.*)")`, "dir, instance, job, path", nil},
		{`label_replace(disk_free, "path", "$1", "folder", "(.*)")`, "dir, instance, job, path", []string{`label_replace's source folder: no label "folder"`}},
		{`count_values("v", build_info)`, "v", nil},
		{`topk(3, sum by (route) (req_total))`, "route", nil},
		{`count(disk_free == 0) or vector(0)`, "no label", nil},
		{`sum(rate(nope_total[5m]))`, "?", []string{`nope_total: no such metric`}},
		{`sum by (x) (nope_total)`, "x", []string{`nope_total: no such metric`}},
	}
	for _, tc := range cases {
		e, err := parsePromQL(tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		c := &labelChecker{resolve: resolve}
		out := c.check(e)
		got := out.String()
		if out.unknown && len(out.names) == 0 {
			got = "?"
		}
		if tc.out != "?" && got != tc.out {
			t.Errorf("%s: result labels %q, want %q", tc.expr, got, tc.out)
		}
		if len(c.errs) != len(tc.errs) {
			t.Errorf("%s: errors %v, want %d: %q", tc.expr, c.errs, len(tc.errs), tc.errs)
			continue
		}
		for i, err := range c.errs {
			if !strings.Contains(err.Error(), tc.errs[i]) {
				t.Errorf("%s: error %q, want %q", tc.expr, err, tc.errs[i])
			}
		}
	}
}
