package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"osim/controlplane/api"
	"strings"
	"text/tabwriter"
	"time"
)

// app is one invocation's settings and outputs.
type app struct {
	ctx            context.Context
	stdout, stderr io.Writer

	server, token, tokenFile string
	caFile                   string
	insecure                 bool
	output                   string
	timeout                  time.Duration

	now      func() time.Time
	progress bool   // show upload progress on stderr (a terminal)
	help     string // the current command's usage text, for -h
	client   *api.Client
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
	fs.StringVar(&a.caFile, "ca-file", a.caFile, "trust the CA certificates (PEM) in this file for the manager (env OSIM_CA_FILE)")
	fs.StringVar(&a.output, "o", a.output, "output: table or json")
	fs.DurationVar(&a.timeout, "timeout", a.timeout, "limit of each HTTP request")
	a.help = help
	return fs
}

var globalFlags = map[string]bool{"server": true, "token": true, "token-file": true, "insecure": true, "ca-file": true, "o": true, "timeout": true}

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
		fmt.Fprint(a.stdout, "\nGlobal flags (--server, --token, --token-file, --insecure, --ca-file, -o, --timeout): see \"osimctl help\".\n")
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
	c, err := api.NewClientCA(a.server, token, a.caFile, a.insecure)
	if err != nil {
		return usagef("osimctl", "--ca-file: %v", err)
	}
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
