// Package clock is time as a parameter: the few clock operations the
// services use (Now, timers, tickers, AfterFunc), a Real implementation
// over package time, and a Fake that tests move by hand, so that a
// resync, a janitor or a long-poll deadline is tested without sleeping.
// It follows Tailscale's tstime.Clock.
package clock

import (
	"context"
	"time"
)

// Clock is where a service gets its time. A nil Clock in a Config means
// Real: see Or.
type Clock interface {
	Now() time.Time
	// NewTimer sends the time on the channel once, after d.
	NewTimer(d time.Duration) (Timer, <-chan time.Time)
	// NewTicker sends the time on the channel every d (d > 0), dropping
	// ticks for a slow reader.
	NewTicker(d time.Duration) (Ticker, <-chan time.Time)
	// AfterFunc calls f after d.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending NewTimer or AfterFunc.
type Timer interface {
	// Stop prevents the timer from firing; false if it already fired or
	// was stopped.
	Stop() bool
}

// Ticker is a running NewTicker.
type Ticker interface {
	Stop()
}

// Or is c, or Real when c is nil: what a Config's nil Clock means.
func Or(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}

// Real is the system clock, package time.
type Real struct{}

// Now is time.Now.
func (Real) Now() time.Time { return time.Now() }

// NewTimer is time.NewTimer.
func (Real) NewTimer(d time.Duration) (Timer, <-chan time.Time) {
	t := time.NewTimer(d)
	return t, t.C
}

// NewTicker is time.NewTicker.
func (Real) NewTicker(d time.Duration) (Ticker, <-chan time.Time) {
	t := time.NewTicker(d)
	return t, t.C
}

// AfterFunc is time.AfterFunc.
func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// WithTimeout is context.WithTimeout on c's time: the context ends with
// context.DeadlineExceeded d after now on c. Under a clock other than
// Real, the context's Deadline is its parent's (a deadline on a fake
// clock means nothing to sockets and other real-time consumers).
func WithTimeout(parent context.Context, c Clock, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := Or(c).(Real); ok {
		return context.WithTimeout(parent, d)
	}
	ctx, cancel := context.WithCancelCause(parent)
	t := c.AfterFunc(d, func() { cancel(context.DeadlineExceeded) })
	context.AfterFunc(ctx, func() { t.Stop() }) // however it ends, as context.WithTimeout does
	return timeoutCtx{ctx}, func() {
		t.Stop() // now, not on AfterFunc's goroutine: a test counting Fake.Pending sees it gone
		cancel(context.Canceled)
	}
}

// timeoutCtx reports its own timer's end as context.DeadlineExceeded,
// as context.WithTimeout does.
type timeoutCtx struct{ context.Context }

func (c timeoutCtx) Err() error {
	err := c.Context.Err()
	if err != nil && context.Cause(c.Context) == context.DeadlineExceeded {
		return context.DeadlineExceeded
	}
	return err
}
