// Package cmdline checks and renders an image's kernel command line
// template. The manager checks a template when an image is registered and
// the boot server renders it for every boot, both through this package, so
// a template the manager accepts renders the same way on a boot server and
// no template can make either side print more than MaxRenderedBytes.
package cmdline

import (
	"errors"
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
)

// Limits of a template and of one render.
const (
	// MaxTemplateBytes bounds the template text.
	MaxTemplateBytes = 4096
	// MaxRenderedBytes bounds what one render may print (before the
	// whitespace is folded). Linux takes 2048 bytes on x86 and 4096 on
	// arm64, so a longer line could not be booted anyway.
	MaxRenderedBytes = 4096
	// RenderTimeout bounds one render's time.
	RenderTimeout = 100 * time.Millisecond
)

var (
	// ErrTemplate: the template does not parse, names an unknown field, or
	// uses a construct this package refuses (range over anything but
	// .Params, nested range, define, template, block, printf and the
	// other unbounded functions).
	ErrTemplate = errors.New("command line template refused")
	// ErrTooLarge: the render printed more than MaxRenderedBytes, or the
	// template is over MaxTemplateBytes.
	ErrTooLarge = errors.New("command line too large")
	// ErrTooSlow: the render took longer than its timeout.
	ErrTooSlow = errors.New("command line render took too long")
	// ErrUnsafeValue: a value that would end up in the iPXE script could
	// change its meaning (a newline starts a new command, "${" expands a
	// setting, "||" or "&&" or a lone ";" chain another command,
	// whitespace adds an argument).
	ErrUnsafeValue = errors.New("unsafe value for an iPXE script")
)

// Data is what a template sees.
//
//	{{.MAC}}        the target's MAC, 52:54:00:12:34:56
//	{{.Order}}      the order id
//	{{.Token}}      the order's status token
//	{{.StatusURL}}  where the installer POSTs its progress
//	{{.BaseURL}}    the boot server's HTTP base (may be empty: relative URLs)
//	{{.AnswerURL}}  an installer image's answer file for the order,
//	                <base>/answer/<order>?token=<token> (empty when the
//	                image has none); a vendor installer fetches it
//	{{.Params.x}}   the image parameter x (missing: empty)
//	{{param "x"}}   the same, but a missing parameter fails the render
type Data struct {
	MAC       string
	Order     string
	Token     string
	StatusURL string
	BaseURL   string
	AnswerURL string
	Params    map[string]string
}

// fields are Data's field names, for the static check.
var fields = map[string]bool{"MAC": true, "Order": true, "Token": true, "StatusURL": true, "BaseURL": true, "AnswerURL": true, "Params": true}

// funcs are the functions a template may call: the comparisons and
// lookups, whose output is bounded by their inputs. printf (a width of a
// million), print, slice, call and the escapers are refused.
var funcs = map[string]bool{"param": true, "and": true, "or": true, "not": true, "eq": true, "ne": true,
	"lt": true, "le": true, "gt": true, "ge": true, "len": true, "index": true}

// Sample is the data Check renders against: values as long as real ones,
// defaults as the image's parameters.
func Sample(defaults map[string]string) Data {
	const base = "http://boot-server-01.site.example.net:8080"
	return Data{MAC: "52:54:00:12:34:56", Order: "o-0123456789abcdef", Token: strings.Repeat("0f", 16),
		StatusURL: base + "/status/o-0123456789abcdef", BaseURL: base,
		AnswerURL: base + "/answer/o-0123456789abcdef?token=" + strings.Repeat("0f", 16), Params: defaults}
}

// Check parses text and renders it against Sample(defaults), with every
// {{param "x"}} that defaults lack answered by a sample value (an order may
// set it). A nil error means text renders within the limits.
func Check(text string, defaults map[string]string) error {
	if text == "" {
		return nil
	}
	_, err := render(text, Sample(defaults), RenderTimeout, func(string) (string, error) { return "sample", nil })
	return err
}

// Render renders text for d within MaxRenderedBytes and timeout (0:
// RenderTimeout), folds its whitespace into single spaces, and checks that
// every value printed and the line as a whole are plain iPXE arguments.
func Render(text string, d Data, timeout time.Duration) (string, error) {
	if text == "" {
		return "", nil
	}
	if timeout <= 0 {
		timeout = RenderTimeout
	}
	return render(text, d, timeout, func(k string) (string, error) {
		return "", fmt.Errorf("parameter %q is not set", k)
	})
}

func render(text string, d Data, timeout time.Duration, missing func(string) (string, error)) (string, error) {
	for _, f := range []struct{ name, v string }{{"mac", d.MAC}, {"token", d.Token}, {"status URL", d.StatusURL}, {"base URL", d.BaseURL}, {"answer URL", d.AnswerURL}} {
		if err := SafeToken(f.name, f.v); err != nil {
			return "", err
		}
	}
	t, used, err := parseTemplate(text, func(k string) (string, error) {
		if v, ok := d.Params[k]; ok {
			return v, nil
		}
		return missing(k)
	})
	if err != nil {
		return "", err
	}
	// Only the parameters the template can print are checked: an
	// installer image's answer-file parameters (a password hash with
	// "$") never reach the command line.
	for k, v := range d.Params {
		if !used.all && !used.names[k] {
			continue
		}
		if err := SafeToken("parameter "+k, v); err != nil {
			return "", err
		}
	}
	out, err := execute(t, d, timeout)
	if err != nil {
		return "", err
	}
	s := strings.Join(strings.Fields(out), " ")
	if err := SafeLine("command line", s); err != nil {
		return "", err
	}
	return s, nil
}

// Parse parses text with param as the "param" function and refuses what
// could run unbounded or fail every boot (see ErrTemplate).
func Parse(text string, param func(string) (string, error)) (*template.Template, error) {
	t, _, err := parseTemplate(text, param)
	return t, err
}

// paramUse is which parameters a template can print: names, or all
// (.Params or $ used whole, param with a computed name).
type paramUse struct {
	all   bool
	names map[string]bool
}

func parseTemplate(text string, param func(string) (string, error)) (*template.Template, *paramUse, error) {
	used := &paramUse{names: map[string]bool{}}
	if len(text) > MaxTemplateBytes {
		return nil, nil, fmt.Errorf("%w: template of %d bytes, at most %d", ErrTooLarge, len(text), MaxTemplateBytes)
	}
	t, err := template.New("cmdline").Option("missingkey=zero").Funcs(template.FuncMap{"param": param}).Parse(text)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	if len(t.Templates()) > 1 {
		return nil, nil, fmt.Errorf("%w: define and block are not allowed", ErrTemplate)
	}
	if t.Tree == nil || t.Root == nil {
		return t, used, nil
	}
	if err := (&walker{tree: t.Tree, used: used}).node(t.Root); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	return t, used, nil
}

// walker checks a parse tree. dotChanged is set inside with and range,
// where "." is no longer Data and fields cannot be checked statically.
// used collects the parameters the template can reach.
type walker struct {
	tree       *parse.Tree
	inRange    bool
	dotChanged bool
	used       *paramUse
}

// at names where n is in the template: "cmdline:1:12".
func (w *walker) at(n parse.Node) string {
	loc, _ := w.tree.ErrorContext(n)
	return loc
}

func (w *walker) node(n parse.Node) error {
	switch n := n.(type) {
	case nil:
		return nil
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := w.node(c); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		return w.pipe(n.Pipe)
	case *parse.IfNode:
		return w.branch(&n.BranchNode, false)
	case *parse.WithNode:
		return w.branch(&n.BranchNode, true)
	case *parse.RangeNode:
		return w.rangeNode(n)
	case *parse.TemplateNode:
		return fmt.Errorf("%s: {{template}} is not allowed", w.at(n))
	case *parse.PipeNode:
		return w.pipe(n)
	case *parse.CommandNode:
		w.paramCall(n)
		for _, a := range n.Args {
			if err := w.node(a); err != nil {
				return err
			}
		}
	case *parse.ChainNode:
		return w.node(n.Node)
	case *parse.IdentifierNode:
		if !funcs[n.Ident] {
			return fmt.Errorf("%s: function %q is not allowed", w.at(n), n.Ident)
		}
	case *parse.FieldNode:
		w.paramField(n.Ident)
		if !w.dotChanged {
			return checkField(w.at(n), n.Ident)
		}
	case *parse.VariableNode:
		if n.Ident[0] == "$" {
			w.paramField(n.Ident[1:])
		} else {
			w.used.all = true // a variable may hold .Params
		}
		if n.Ident[0] == "$" && len(n.Ident) > 1 {
			return checkField(w.at(n), n.Ident[1:])
		}
	case *parse.DotNode:
		w.used.all = true // "." may be Data (at the top, or with $)
	}
	return nil
}

// paramField notes the parameter a field path reaches: .Params.x is x;
// .Params, or nothing at all (the whole Data through $), is every one.
func (w *walker) paramField(ident []string) {
	switch {
	case len(ident) == 0 || ident[0] == "Params" && len(ident) == 1:
		w.used.all = true
	case ident[0] == "Params":
		w.used.names[ident[1]] = true
	}
}

// paramCall notes {{param "x"}}: x, or every parameter when the name is
// computed.
func (w *walker) paramCall(n *parse.CommandNode) {
	if len(n.Args) == 0 {
		return
	}
	if id, ok := n.Args[0].(*parse.IdentifierNode); !ok || id.Ident != "param" {
		return
	}
	if len(n.Args) == 2 {
		if s, ok := n.Args[1].(*parse.StringNode); ok {
			w.used.names[s.Text] = true
			return
		}
	}
	w.used.all = true
}

func (w *walker) pipe(p *parse.PipeNode) error {
	if p == nil {
		return nil
	}
	for _, c := range p.Cmds {
		if err := w.node(c); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) branch(b *parse.BranchNode, changesDot bool) error {
	if err := w.pipe(b.Pipe); err != nil {
		return err
	}
	inner := *w
	inner.dotChanged = w.dotChanged || changesDot
	if err := inner.node(b.List); err != nil {
		return err
	}
	return w.node(b.ElseList)
}

// rangeNode allows one level of {{range .Params}} (or $.Params): at most
// as many iterations as there are parameters, each printing a bounded
// body. A range over an integer, a nested range or a range over anything
// else is refused.
func (w *walker) rangeNode(n *parse.RangeNode) error {
	if w.inRange {
		return fmt.Errorf("%s: nested range is not allowed", w.at(n))
	}
	if !rangesOverParams(n.Pipe, w.dotChanged) {
		return fmt.Errorf("%s: range over %s: only {{range .Params}} is allowed", w.at(n), pipeText(n.Pipe))
	}
	w.used.all = true // the body sees every parameter
	inner := walker{tree: w.tree, inRange: true, dotChanged: true, used: w.used}
	if err := inner.node(n.List); err != nil {
		return err
	}
	return w.node(n.ElseList)
}

func rangesOverParams(p *parse.PipeNode, dotChanged bool) bool {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return false
	}
	switch a := p.Cmds[0].Args[0].(type) {
	case *parse.FieldNode:
		return !dotChanged && len(a.Ident) == 1 && a.Ident[0] == "Params"
	case *parse.VariableNode:
		return len(a.Ident) == 2 && a.Ident[0] == "$" && a.Ident[1] == "Params"
	}
	return false
}

func pipeText(p *parse.PipeNode) string {
	if p == nil {
		return "nothing"
	}
	var cmds []string
	for _, c := range p.Cmds {
		cmds = append(cmds, c.String())
	}
	return strings.Join(cmds, " | ")
}

// checkField accepts .MAC, .Order, .Token, .StatusURL, .BaseURL,
// .AnswerURL, .Params and .Params.<name>.
func checkField(at string, ident []string) error {
	if !fields[ident[0]] {
		return fmt.Errorf("%s: field .%s does not exist (want MAC, Order, Token, StatusURL, BaseURL, AnswerURL or Params)", at, ident[0])
	}
	if ident[0] == "Params" && len(ident) > 2 || ident[0] != "Params" && len(ident) > 1 {
		return fmt.Errorf("%s: field .%s has no field %q", at, strings.Join(ident[:len(ident)-1], "."), ident[len(ident)-1])
	}
	return nil
}

// execute runs t into a writer that refuses bytes past MaxRenderedBytes or
// after the deadline; a render still running at the deadline is abandoned
// (its next write fails, and the static checks leave no loop without one
// for long).
func execute(t *template.Template, d Data, timeout time.Duration) (string, error) {
	w := &cappedWriter{max: MaxRenderedBytes, deadline: time.Now().Add(timeout)}
	done := make(chan error, 1)
	go func() { done <- t.Execute(w, d) }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrTooSlow) {
			return "", err
		}
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrTemplate, err)
		}
		return w.b.String(), nil
	case <-timer.C:
		return "", fmt.Errorf("%w: over %v", ErrTooSlow, timeout)
	}
}

// cappedWriter is the render's output: it stops at max bytes and at the
// deadline.
type cappedWriter struct {
	b        strings.Builder
	max      int
	deadline time.Time
}

func (w *cappedWriter) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > w.max {
		return 0, fmt.Errorf("%w: over %d bytes", ErrTooLarge, w.max)
	}
	if time.Now().After(w.deadline) {
		return 0, fmt.Errorf("%w: past the deadline", ErrTooSlow)
	}
	return w.b.Write(p)
}

// SafeToken refuses a value that would not stay one plain argument of an
// iPXE command: control and non-ASCII bytes (a newline starts a new
// command), whitespace (a new argument), quotes and backslashes (iPXE's
// quoting), "$" (setting expansion "${...}"), "#", "&&" or "||", and a
// value that is only ";" (iPXE ends a command at a "&&", "||" or ";"
// argument). A lone "&" or "|" stays: URLs with query strings need it.
// A ";" inside a word stays too: iPXE passes "ds=nocloud;s=URL" (cloud-init's
// NoCloud seed, Ubuntu's autoinstall) through as one argument (tried with
// Debian's ipxe.lkrn: "echo a;b" prints "a;b", "echo a ; echo b" runs two
// commands).
func SafeToken(what, v string) error {
	if v == ";" {
		return fmt.Errorf("%w: %s %q: a lone \";\" ends the iPXE command", ErrUnsafeValue, what, v)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x21 || c >= 0x7f || strings.IndexByte("\"'\\$#`", c) >= 0 {
			return fmt.Errorf("%w: %s %q: byte %q at %d", ErrUnsafeValue, what, v, c, i)
		}
	}
	for _, seq := range []string{"&&", "||"} {
		if i := strings.Index(v, seq); i >= 0 {
			return fmt.Errorf("%w: %s %q: %q at %d", ErrUnsafeValue, what, v, seq, i)
		}
	}
	return nil
}

// SafeLine refuses a whole rendered line with anything but single spaces
// between arguments made of SafeToken characters.
func SafeLine(what, v string) error {
	for _, f := range strings.Split(v, " ") {
		if err := SafeToken(what, f); err != nil {
			return err
		}
	}
	return nil
}
