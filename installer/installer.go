// Package installer is the osim installer's flow: inventory, plan, disk
// choice, pre procedures, write, verify, customize, post procedures,
// finish, each a step reported to the boot server; or, in discover mode,
// inventory posted to /discover/{mac}. cmd/osim-installer wires it as
// PID 1 (or, with --no-init, as an ordinary process for tests).
package installer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"osim/controlplane/api"
	"osim/installer/bootargs"
	"osim/installer/inventory"
	"osim/installer/report"
	"osim/internal/clock"
)

// Defaults of Config.
const (
	DefaultProgressEvery = 5 * time.Second
	DefaultMountDir      = "/mnt/root"
	DefaultShell         = "/bin/sh"
	// FailureRepeat is how often the console repeats why an install failed.
	FailureRepeat = 60 * time.Second
)

// Final actions Run answers.
const (
	ActionReboot   = "reboot"
	ActionPowerOff = "poweroff"
	ActionWait     = "wait"
)

// Config is what Run needs; zero fields take the target's defaults.
type Config struct {
	Args              bootargs.Args
	SysRoot, ProcRoot string // "/sys", "/proc"
	DevRoot           string // "/dev"
	Shell             string // DefaultShell
	MountDir          string // DefaultMountDir
	// IncludeLoop lets loop devices be chosen (tests).
	IncludeLoop   bool
	HTTP          *http.Client
	Clock         clock.Clock
	Console       io.Writer // progress lines; os.Stderr if nil
	Log           *slog.Logger
	ReportWindow  time.Duration // retry window of each report; report.DefaultWindow
	StreamGiveUp  time.Duration // stream.DefaultGiveUp
	ProgressEvery time.Duration // DefaultProgressEvery
}

// Result is how Run ended.
type Result struct {
	Mode    string
	Disk    string // the disk written, if one was chosen
	Written int64  // bytes written to it
	Step    string // failing step, "" on success
	Err     error
	Action  string // ActionReboot, ActionPowerOff or ActionWait
	Note    string // why the action (e.g. kexec done as reboot)
}

// Failed reports whether the run failed.
func (r Result) Failed() bool { return r.Err != nil }

// run carries one Run's state.
type run struct {
	cfg    Config
	client *report.Client
	log    *slog.Logger
}

func (c *Config) defaults() {
	if c.SysRoot == "" {
		c.SysRoot = "/sys"
	}
	if c.ProcRoot == "" {
		c.ProcRoot = "/proc"
	}
	if c.DevRoot == "" {
		c.DevRoot = "/dev"
	}
	if c.Shell == "" {
		c.Shell = DefaultShell
	}
	if c.MountDir == "" {
		c.MountDir = DefaultMountDir
	}
	if c.Console == nil {
		c.Console = os.Stderr
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = DefaultProgressEvery
	}
	c.Clock = clock.Or(c.Clock)
	if c.HTTP == nil {
		c.HTTP = defaultHTTP()
	}
}

// defaultHTTP is a client for a boot server on the local network: no
// proxy, bounded connect and header waits (a stalled body is the stream's
// watchdog's job; a report attempt has its own timeout).
func defaultHTTP() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second}).DialContext,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}}
}

// Run does what the kernel arguments ask and answers what to do next;
// it does not reboot or power off (Finish does).
func Run(ctx context.Context, cfg Config) Result {
	cfg.defaults()
	r := &run{cfg: cfg, log: cfg.Log.With("component", "installer", "order", cfg.Args.Order)}
	r.client = &report.Client{Base: cfg.Args.URL, Order: cfg.Args.Order, Token: cfg.Args.Token, HTTP: cfg.HTTP,
		Clock: cfg.Clock, Window: cfg.ReportWindow,
		OnRetry: func(what string, err error) { r.say("%s failed, retrying: %v", what, err) }}
	if cfg.Args.Mode == bootargs.ModeDiscover {
		return r.discover(ctx)
	}
	return r.install(ctx)
}

// say prints one progress line on the console and logs it.
func (r *run) say(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(r.cfg.Console, "osim-installer: %s\n", msg)
	r.log.Info(msg)
}

func (r *run) inventory() (inventory.Inventory, error) {
	return inventory.Read(inventory.Options{SysRoot: r.cfg.SysRoot, ProcRoot: r.cfg.ProcRoot, IncludeLoop: r.cfg.IncludeLoop})
}

func (r *run) discover(ctx context.Context) Result {
	res := Result{Mode: bootargs.ModeDiscover, Action: ActionPowerOff}
	if r.cfg.Args.DiscoverThen == bootargs.ThenWait {
		res.Action = ActionWait
	}
	inv, err := r.inventory()
	if err != nil {
		res.Step, res.Err = api.StepInventory, err
		r.say("discover failed: %v", err)
		return res
	}
	facts := inv.Facts()
	r.say("discover: %d facts, posting to %s", len(facts), r.cfg.Args.URL)
	if err := r.client.Discover(ctx, r.cfg.Args.MAC, api.DiscoverReport{Facts: facts}); err != nil {
		res.Step, res.Err = api.StepInventory, err
		r.say("discover failed: %v", err)
		return res
	}
	r.say("discover: reported; %s", res.Action)
	return res
}

// stepError marks which step failed.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func fail(step string, err error) error { return &stepError{step, err} }

func (r *run) install(ctx context.Context) Result {
	res := Result{Mode: bootargs.ModeInstall, Action: ActionWait}
	plan, err := r.installSteps(ctx, &res)
	if err == nil {
		res.Action, res.Note = finishAction(plan.Install.Finish)
		r.status(ctx, report.Status{Phase: report.PhaseDone, Step: api.StepFinish, Progress: 100,
			Message: fmt.Sprintf("installed %s %s on %s; %s", plan.ImageName, plan.ImageVersion, res.Disk, res.Action)})
		r.say("done: %s %s on %s (%d bytes); %s%s", plan.ImageName, plan.ImageVersion, res.Disk, res.Written, res.Action, res.Note)
		return res
	}
	var se *stepError
	if !errors.As(err, &se) {
		se = &stepError{api.StepFinish, err}
	}
	res.Step, res.Err = se.step, se
	if plan.Install.OnFailure == api.OnFailurePowerOff {
		res.Action = ActionPowerOff
	}
	r.say("FAILED at %s: %v", se.step, se.err)
	r.status(ctx, report.Status{Phase: report.PhaseFailed, Step: se.step, Message: se.Error()})
	return res
}

func finishAction(finish string) (string, string) {
	switch finish {
	case api.FinishPowerOff:
		return ActionPowerOff, ""
	case api.FinishKexec:
		return ActionReboot, " (kexec is not supported yet: rebooting instead)"
	default:
		return ActionReboot, ""
	}
}

// status reports s; a failed report is printed, not fatal (the install
// itself goes on; the final report's failure is on the console).
func (r *run) status(ctx context.Context, s report.Status) error {
	err := r.client.Status(ctx, s)
	if err != nil {
		r.say("status %s/%s not reported: %v", s.Phase, s.Step, err)
	}
	return err
}

// procedureData is a procedure's report: its output tail as the end of
// what fits in one of the boot server's data values (the console keeps
// the whole tail).
func (r *run) procedureData(name string, code int, tail string) map[string]string {
	tail = report.ClipStart(report.Printable(strings.TrimRight(tail, "\n")), report.MaxValueBytes)
	return map[string]string{"procedure": name, "exit_code": strconv.Itoa(code), "output_tail": tail}
}

func (r *run) devPath(name string) string { return filepath.Join(r.cfg.DevRoot, name) }
