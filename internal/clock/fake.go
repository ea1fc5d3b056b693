package clock

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Fake is a Clock that moves only when Step moves it; its timers and
// tickers fire during Step, in order of their times, with Now at each
// one's time. Safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	pending []*fakeTimer
	changed chan struct{} // closed and replaced when pending changes
}

type fakeTimer struct {
	f      *Fake
	when   time.Time
	period time.Duration // 0: a timer
	ch     chan time.Time
	fn     func() // AfterFunc
}

// NewFake returns a Fake whose time is start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, changed: make(chan struct{})}
}

// Now is the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer makes a timer due d from now; one due now fires at the next
// Step (Step(0) included).
func (f *Fake) NewTimer(d time.Duration) (Timer, <-chan time.Time) {
	t := f.add(&fakeTimer{f: f, when: f.Now().Add(d), ch: make(chan time.Time, 1)})
	return t, t.ch
}

// NewTicker makes a ticker of period d; it panics if d <= 0, as
// time.NewTicker does.
func (f *Fake) NewTicker(d time.Duration) (Ticker, <-chan time.Time) {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	t := f.add(&fakeTimer{f: f, when: f.Now().Add(d), period: d, ch: make(chan time.Time, 1)})
	return tickerOf{t}, t.ch
}

// AfterFunc calls fn from Step, on Step's goroutine, when d has passed.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	return f.add(&fakeTimer{f: f, when: f.Now().Add(d), fn: fn})
}

// Pending is the number of timers, tickers and AfterFuncs waiting to fire.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}

// WaitPending blocks until at least n timers, tickers or AfterFuncs are
// waiting, or ctx ends: so a test steps only once the code under test is
// waiting on the clock.
func (f *Fake) WaitPending(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		got, ch := len(f.pending), f.changed
		f.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// Step moves the time by d, firing what comes due on the way.
func (f *Fake) Step(d time.Duration) {
	f.mu.Lock()
	end := f.now.Add(d)
	for {
		t := f.nextLocked(end)
		if t == nil {
			break
		}
		f.now = t.when
		if t.period > 0 {
			t.when = t.when.Add(t.period)
		} else {
			f.removeLocked(t)
		}
		if t.fn != nil {
			f.mu.Unlock() // fn may use the clock
			t.fn()
			f.mu.Lock()
			continue
		}
		select {
		case t.ch <- f.now:
		default: // a slow reader misses ticks, as with package time
		}
	}
	f.now = end
	f.mu.Unlock()
}

// nextLocked is the earliest pending timer due by end, or nil.
func (f *Fake) nextLocked(end time.Time) *fakeTimer {
	var next *fakeTimer
	for _, t := range f.pending {
		if !t.when.After(end) && (next == nil || t.when.Before(next.when)) {
			next = t
		}
	}
	return next
}

func (f *Fake) add(t *fakeTimer) *fakeTimer {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending = append(f.pending, t)
	f.signalLocked()
	return t
}

// removeLocked drops t from pending; false if it was not there.
func (f *Fake) removeLocked(t *fakeTimer) bool {
	i := slices.Index(f.pending, t)
	if i < 0 {
		return false
	}
	f.pending = slices.Delete(f.pending, i, i+1)
	f.signalLocked()
	return true
}

func (f *Fake) signalLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Stop removes the timer; false if it already fired or was stopped.
func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	return t.f.removeLocked(t)
}

type tickerOf struct{ t *fakeTimer }

func (k tickerOf) Stop() { k.t.Stop() }
