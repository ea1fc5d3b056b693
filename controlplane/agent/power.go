package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/power"
)

// Power actions: the boot server runs its site's power requests (it sits
// on the management network; the manager needs no route to a BMC). It
// claims them from the manager (a long-poll), runs at most
// Config.PowerParallel at once, retries a failing step with backoff, and
// reports each outcome; the manager makes it an event on the target.

// Defaults of the power runner.
const (
	DefaultPowerParallel = 4
	powerAttempts        = 3
	powerRetryBase       = time.Second
)

func (a *Agent) powerLoop(ctx context.Context) {
	n := a.cfg.PowerParallel
	if n <= 0 {
		n = DefaultPowerParallel
	}
	sem := make(chan struct{}, n)
	b := a.newBackoff()
	for ctx.Err() == nil {
		// Wait for a free runner first: what is claimed is leased, so
		// claim only what can start now.
		select {
		case sem <- struct{}{}:
			<-sem
		case <-ctx.Done():
			return
		}
		l, err := a.cfg.Client.ClaimPower(ctx, a.cfg.SyncWait)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Debug("power claim failed", "err", err)
				b.sleep(ctx)
			}
			continue
		}
		b.reset()
		for _, pr := range l {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				defer func() { <-sem }()
				a.runPower(ctx, pr)
			}()
		}
	}
}

// runPower runs one request and reports it.
func (a *Agent) runPower(ctx context.Context, pr api.PowerRequest) {
	res := a.doPower(ctx, pr)
	log := a.log.With("request", pr.ID, "target", pr.Target, "action", pr.Action)
	if res.OK {
		log.Info("power action done", "power", res.State, "message", res.Message)
	} else {
		log.Warn("power action failed", "err", res.Message)
	}
	for i := range 3 {
		if _, err := a.cfg.Client.ReportPower(ctx, pr.ID, res); err == nil || ctx.Err() != nil {
			return
		} else if i == 2 {
			log.Warn("power result not reported (the lease runs out; another claim retries)", "err", err)
		}
		a.sleep(ctx, powerRetryBase)
	}
}

func (a *Agent) doPower(ctx context.Context, pr api.PowerRequest) api.PowerResult {
	if pr.Power == nil {
		return api.PowerResult{Message: "the request carries no power spec"}
	}
	spec := power.Spec{Driver: pr.Power.Driver, Address: pr.Power.Address, Domain: pr.Power.Domain,
		Interface: pr.Power.Interface, MAC: pr.MAC}
	if name := pr.Power.Credentials; name != "" {
		cs, err := a.cfg.Client.CredentialSecret(ctx, name)
		if err != nil {
			return api.PowerResult{Message: fmt.Sprintf("credential %s: %v", name, err)}
		}
		spec.Username, spec.Password = cs.Username, cs.Password
	}
	d, err := power.Open(spec)
	if err != nil {
		return api.PowerResult{Message: err.Error()}
	}
	var notes []string
	if pr.NetworkBoot {
		err := a.retryPower(ctx, d.NetworkBootOnce)
		switch {
		case errors.Is(err, power.ErrUnsupported):
			notes = append(notes, "no network boot setting with "+spec.Driver+" (boot network first)")
		case err != nil:
			return api.PowerResult{Message: "network boot: " + err.Error()}
		}
	}
	var act func(context.Context) error
	switch pr.Action {
	case "on":
		act = d.On
	case "off":
		act = d.Off
	case "cycle":
		act = d.Cycle
	default:
		return api.PowerResult{Message: fmt.Sprintf("unknown action %q", pr.Action)}
	}
	if err := a.retryPower(ctx, act); err != nil {
		return api.PowerResult{Message: pr.Action + ": " + err.Error()}
	}
	st, err := d.Status(ctx)
	if err != nil {
		st = power.Unknown
	}
	msg := pr.Action + " done"
	for _, n := range notes {
		msg += "; " + n
	}
	return api.PowerResult{OK: true, State: string(st), Message: msg}
}

// retryPower runs f up to powerAttempts times, waiting 1 s, 2 s between
// (a BMC busy with another session answers the next try). Spec errors,
// unsupported actions and a manual driver are not retried.
func (a *Agent) retryPower(ctx context.Context, f func(context.Context) error) error {
	wait := powerRetryBase
	var err error
	for i := range powerAttempts {
		if err = f(ctx); err == nil || errors.Is(err, power.ErrSpec) || errors.Is(err, power.ErrUnsupported) || errors.Is(err, power.ErrManual) {
			return err
		}
		if i < powerAttempts-1 {
			if a.sleep(ctx, wait) != nil {
				return err
			}
			wait *= 2
		}
	}
	return err
}

// sleep waits d on the agent's clock, or until ctx ends.
func (a *Agent) sleep(ctx context.Context, d time.Duration) error {
	t, c := a.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
