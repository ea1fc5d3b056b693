// Command osimctl drives the osim manager's API: targets, images, boot
// servers, orders, events and tokens.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
  targets add|list|show|update|rm|import|accept|power
                                        machines to install, and their power
  credentials create|list|rm            BMC logins for power specs (admin)
  images register|list|show|rm          OS and boot images (uploads their files)
  sites get|set                         a site's default boot image
  bootservers list|show|rm              boot servers and their health
  orders create|list|show|watch|cancel|retry
  rollouts create|list|show|pause|resume|abort   reimages in waves (also "orders rollout …")
  events tail                           the event log (--follow to stream)
  tokens create|list|rm                 API tokens (admin)
  help [COMMAND]                        this text, or a command's
  completion bash|zsh                   a shell completion script (source <(osimctl completion bash))
  version                               which build this is

global flags (also accepted after the command):
  --server URL       manager URL (env OSIM_SERVER, default ` + defaultServer + `)
  --token T          API token (env OSIM_TOKEN)
  --token-file FILE  read the token from FILE (wins over OSIM_TOKEN, not over --token)
  --insecure         skip TLS certificate verification
  --ca-file FILE     trust the CA certificates (PEM) in FILE for the manager (env OSIM_CA_FILE)
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

func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{ctx: ctx, stdout: stdout, stderr: stderr, now: time.Now}
	a.server = os.Getenv("OSIM_SERVER")
	a.caFile = os.Getenv("OSIM_CA_FILE")
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
