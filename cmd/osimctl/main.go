// Command osimctl drives the osim manager's API: targets, images, boot
// servers, orders, events and tokens.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"osim/controlplane/api"
)

// Exit codes.
const (
	exitOK     = 0
	exitError  = 1 // the API or the network said no; the message is on stderr
	exitUsage  = 2 // bad command line
	exitFailed = 3 // orders watch: every order is final, and some failed or were cancelled
)

const defaultServer = "http://127.0.0.1:8080"

const usage = `osimctl: drive the osim manager

usage: osimctl [global flags] COMMAND [flags] [args]

commands:
  targets add|list|show|rm|import       machines to install
  images register|list|show|rm          OS and boot images (uploads their files)
  bootservers list                      boot servers and their health
  orders create|list|show|watch|cancel|retry
  events tail                           the event log (--follow to stream)
  tokens create|list|rm                 API tokens (admin)
  help [COMMAND]                        this text, or a command's

global flags (also accepted after the command):
  --server URL       manager URL (env OSIM_SERVER, default ` + defaultServer + `)
  --token T          API token (env OSIM_TOKEN)
  --token-file FILE  read the token from FILE (wins over OSIM_TOKEN, not over --token)
  --insecure         skip TLS certificate verification
  -o table|json      output format (default table; json prints the API objects)
  --timeout D        limit of each HTTP request (default 60s)

exit codes: 0 ok, 1 the API or network refused (message on stderr), 2 usage error,
3 orders watch saw an order fail or get cancelled.
Run "osimctl COMMAND VERB -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runContext(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command: args without the program name; the exit code
// is returned.
func run(args []string, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdout, stderr)
}

// usageError is a bad command line; the hint says where help is.
type usageError struct {
	msg, hint string
}

func (e *usageError) Error() string { return e.msg }

func usagef(hint, format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...), hint: hint}
}

// errHelp: -h was asked and answered.
var errHelp = errors.New("help shown")

// exitCode carries a specific exit code with no message (orders watch).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// app is one invocation's settings and outputs.
type app struct {
	ctx            context.Context
	stdout, stderr io.Writer

	server, token, tokenFile string
	insecure                 bool
	output                   string
	timeout                  time.Duration

	now      func() time.Time
	progress bool   // show upload progress on stderr (a terminal)
	help     string // the current command's usage text, for -h
	client   *api.Client
}

type command struct {
	summary string
	run     func(a *app, args []string) error
}

var commands = map[string]map[string]command{
	"targets": {
		"add":    {"register a target", targetsAdd},
		"list":   {"list targets", targetsList},
		"show":   {"show one target (by id or MAC)", targetsShow},
		"rm":     {"delete a target (by id or MAC)", targetsRm},
		"import": {"create targets from a CSV or JSON file", targetsImport},
	},
	"images": {
		"register": {"upload an image's files and register it", imagesRegister},
		"list":     {"list images", imagesList},
		"show":     {"show one image", imagesShow},
		"rm":       {"delete an image", imagesRm},
	},
	"bootservers": {
		"list": {"list boot servers with health and sync state", bootserversList},
	},
	"orders": {
		"create": {"create installation orders", ordersCreate},
		"list":   {"list orders", ordersList},
		"show":   {"show one order with its history", ordersShow},
		"watch":  {"follow orders until they are final", ordersWatch},
		"cancel": {"cancel a live order", ordersCancel},
		"retry":  {"start a new attempt of a failed or cancelled order", ordersRetry},
	},
	"events": {
		"tail": {"print events (--follow to stream)", eventsTail},
	},
	"tokens": {
		"create": {"create a token (its secret is shown once)", tokensCreate},
		"list":   {"list tokens", tokensList},
		"rm":     {"revoke a token", tokensRm},
	},
}

func nounUsage(noun string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: osimctl %s VERB [flags] [args]\n\nverbs:\n", noun)
	verbs := make([]string, 0, len(commands[noun]))
	for v := range commands[noun] {
		verbs = append(verbs, v)
	}
	sort.Strings(verbs)
	for _, v := range verbs {
		fmt.Fprintf(&b, "  %-9s %s\n", v, commands[noun][v].summary)
	}
	fmt.Fprintf(&b, "\nRun \"osimctl %s VERB -h\" for its flags.\n", noun)
	return b.String()
}

func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{ctx: ctx, stdout: stdout, stderr: stderr, now: time.Now}
	a.server = os.Getenv("OSIM_SERVER")
	if a.server == "" {
		a.server = defaultServer
	}
	a.output = "table"
	a.timeout = 60 * time.Second
	if f, ok := stderr.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		a.progress = err == nil
	}
	err := a.dispatch(args)
	return a.exit(err)
}

func (a *app) exit(err error) int {
	var ue *usageError
	var ec exitCode
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "osimctl: %s\n", ue.msg)
		if ue.hint != "" {
			fmt.Fprintf(a.stderr, "Run \"%s -h\" for help.\n", ue.hint)
		}
		return exitUsage
	case errors.As(err, &ec):
		return int(ec)
	default:
		fmt.Fprintf(a.stderr, "osimctl: %v\n", err)
		return exitError
	}
}

func (a *app) dispatch(args []string) error {
	g := a.flags("osimctl", usage)
	if err := g.Parse(args); err != nil {
		return a.flagError(g, "osimctl", err)
	}
	args = g.Args()
	if len(args) == 0 {
		fmt.Fprint(a.stderr, usage)
		return usagef("", "no command given")
	}
	noun := args[0]
	if noun == "help" {
		if len(args) > 1 {
			if _, ok := commands[args[1]]; ok {
				fmt.Fprint(a.stdout, nounUsage(args[1]))
				return nil
			}
			return usagef("osimctl", "help: unknown command %q", args[1])
		}
		fmt.Fprint(a.stdout, usage)
		return nil
	}
	verbs, ok := commands[noun]
	if !ok {
		return usagef("osimctl", "unknown command %q", noun)
	}
	if len(args) < 2 {
		fmt.Fprint(a.stderr, nounUsage(noun))
		return usagef("", "%s: no verb given", noun)
	}
	switch args[1] {
	case "-h", "--help", "help":
		fmt.Fprint(a.stdout, nounUsage(noun))
		return nil
	}
	cmd, ok := verbs[args[1]]
	if !ok {
		return usagef("osimctl "+noun, "%s: unknown verb %q", noun, args[1])
	}
	return cmd.run(a, args[2:])
}

// flags is a flag set for one command with the global flags added,
// defaulting to what was already set (env or the flags before the command).
func (a *app) flags(name, help string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&a.server, "server", a.server, "manager URL (env OSIM_SERVER)")
	fs.StringVar(&a.token, "token", a.token, "API token (env OSIM_TOKEN)")
	fs.StringVar(&a.tokenFile, "token-file", a.tokenFile, "file holding the API token")
	fs.BoolVar(&a.insecure, "insecure", a.insecure, "skip TLS certificate verification")
	fs.StringVar(&a.output, "o", a.output, "output: table or json")
	fs.DurationVar(&a.timeout, "timeout", a.timeout, "limit of each HTTP request")
	a.help = help
	return fs
}

var globalFlags = map[string]bool{"server": true, "token": true, "token-file": true, "insecure": true, "o": true, "timeout": true}

func (a *app) printHelp(fs *flag.FlagSet) {
	fmt.Fprint(a.stdout, a.help)
	var own strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		if globalFlags[f.Name] {
			return
		}
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		fmt.Fprintf(&own, "  %s%s\t%s\n", dash, f.Name, f.Usage)
	})
	if own.Len() > 0 {
		fmt.Fprint(a.stdout, "\nflags:\n")
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprint(tw, own.String())
		tw.Flush()
	}
	if fs.Name() != "osimctl" {
		fmt.Fprint(a.stdout, "\nGlobal flags (--server, --token, --token-file, --insecure, -o, --timeout): see \"osimctl help\".\n")
	}
}

func (a *app) flagError(fs *flag.FlagSet, name string, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		a.printHelp(fs)
		return errHelp
	}
	return usagef(name, "%v", err)
}

// parse parses flags and positional arguments in any order ("show ID -o
// json"), checking the number of positionals (max -1: any).
func (a *app) parse(fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	name := "osimctl " + strings.ReplaceAll(fs.Name(), ".", " ")
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, a.flagError(fs, name, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) < minArgs || (maxArgs >= 0 && len(pos) > maxArgs) {
		switch {
		case maxArgs == 0:
			return nil, usagef(name, "%s takes no arguments, got %q", name, pos)
		case len(pos) < minArgs:
			return nil, usagef(name, "%s: missing argument", name)
		default:
			return nil, usagef(name, "%s: too many arguments: %q", name, pos)
		}
	}
	if a.output != "table" && a.output != "json" {
		return nil, usagef(name, "-o %q: want table or json", a.output)
	}
	if err := a.connect(); err != nil {
		return nil, err
	}
	return pos, nil
}

// connect builds the API client from the settled flags and environment.
// Token precedence: --token, then --token-file, then OSIM_TOKEN.
func (a *app) connect() error {
	token := a.token
	if token == "" && a.tokenFile != "" {
		b, err := os.ReadFile(a.tokenFile)
		if err != nil {
			return usagef("osimctl", "--token-file: %v", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		token = os.Getenv("OSIM_TOKEN")
	}
	if !strings.HasPrefix(a.server, "http://") && !strings.HasPrefix(a.server, "https://") {
		return usagef("osimctl", "--server %q: want http:// or https:// URL", a.server)
	}
	c := api.NewClient(a.server, token, a.insecure)
	hc := &http.Client{Timeout: a.timeout}
	if c.HTTP != nil {
		hc.Transport = c.HTTP.Transport
	}
	c.HTTP = hc
	a.client = c
	return nil
}

// longPoll is the wait of one long-poll, kept under the request timeout.
func (a *app) longPoll() time.Duration {
	w := 25 * time.Second
	if a.timeout > 0 && w > a.timeout/2 {
		w = a.timeout / 2
	}
	return w
}

func (a *app) json() bool { return a.output == "json" }

// printJSON writes v indented, as the API returned it.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows under a header, aligned; every cell through printable.
func (a *app) table(header []string, rows [][]string) {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		for i := range r {
			if r[i] == "" {
				r[i] = "-"
			}
			r[i] = printable(r[i])
		}
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// fields writes "key: value" lines, aligned; every value through printable.
func (a *app) fields(kv [][2]string) {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 1, ' ', 0)
	for _, f := range kv {
		fmt.Fprintf(tw, "%s:\t%s\n", printable(f[0]), printable(f[1]))
	}
	tw.Flush()
}

// printable escapes what a terminal would act on in a string that came from
// the network (installer messages, facts, names): control characters (ESC
// starts an escape sequence, CR and LF forge lines, a tab breaks a table),
// C1 controls and other unprintable runes as Go escapes (\x1b, \r, \u009b),
// bytes that are not UTF-8 as \xNN. Printable text, spaces included, stays.
func printable(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == ' ' || unicode.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

func needsEscape(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || r != ' ' && !unicode.IsPrint(r) {
			return true
		}
	}
	return false
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

// kvFlag is a repeatable k=v flag.
type kvFlag map[string]string

func (k kvFlag) String() string { return formatKV(k) }
func (k kvFlag) Set(s string) error {
	key, v, ok := strings.Cut(s, "=")
	if !ok || key == "" {
		return fmt.Errorf("%q: want key=value", s)
	}
	k[key] = v
	return nil
}

func formatKV(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ",")
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format(time.DateTime)
}

// age says how long ago t was, coarsely: 4s, 3m, 2h, 5d.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}
