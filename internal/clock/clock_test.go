package clock

import (
	"context"
	"errors"
	"testing"
	"time"
)

var start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func received(ch <-chan time.Time) (time.Time, bool) {
	select {
	case t := <-ch:
		return t, true
	default:
		return time.Time{}, false
	}
}

func TestFakeTimerFiresOnlyWhenSteppedPastIt(t *testing.T) {
	f := NewFake(start)
	tm, ch := f.NewTimer(time.Second)
	f.Step(999 * time.Millisecond)
	if _, ok := received(ch); ok {
		t.Fatal("fired early")
	}
	f.Step(time.Millisecond)
	if got, ok := received(ch); !ok || !got.Equal(start.Add(time.Second)) {
		t.Fatalf("fired %v at %v, want at %v", ok, got, start.Add(time.Second))
	}
	if tm.Stop() {
		t.Fatal("Stop after firing returned true")
	}
	if f.Pending() != 0 {
		t.Fatalf("%d pending after firing", f.Pending())
	}
}

func TestFakeStoppedTimerNeverFires(t *testing.T) {
	f := NewFake(start)
	tm, ch := f.NewTimer(time.Second)
	if !tm.Stop() {
		t.Fatal("Stop of a pending timer returned false")
	}
	f.Step(time.Hour)
	if _, ok := received(ch); ok {
		t.Fatal("a stopped timer fired")
	}
}

func TestFakeTickerTicksEveryPeriodAndDropsForASlowReader(t *testing.T) {
	f := NewFake(start)
	tk, ch := f.NewTicker(10 * time.Second)
	for i := 1; i <= 3; i++ {
		f.Step(10 * time.Second)
		if got, ok := received(ch); !ok || !got.Equal(start.Add(time.Duration(i)*10*time.Second)) {
			t.Fatalf("tick %d: %v %v", i, ok, got)
		}
	}
	f.Step(time.Minute) // six ticks, one kept
	if got, ok := received(ch); !ok || !got.Equal(start.Add(40*time.Second)) {
		t.Fatalf("after a minute: %v %v, want the first missed tick", ok, got)
	}
	if _, ok := received(ch); ok {
		t.Fatal("more than one tick buffered")
	}
	tk.Stop()
	f.Step(time.Minute)
	if _, ok := received(ch); ok {
		t.Fatal("a stopped ticker ticked")
	}
}

func TestFakeAfterFuncsRunInOrderAtTheirTimes(t *testing.T) {
	f := NewFake(start)
	var got []time.Duration
	for _, d := range []time.Duration{3 * time.Second, time.Second, 2 * time.Second} {
		f.AfterFunc(d, func() { got = append(got, f.Now().Sub(start)) })
	}
	f.Step(5 * time.Second)
	want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("ran at %v, want %v", got, want)
	}
	if now := f.Now(); !now.Equal(start.Add(5 * time.Second)) {
		t.Fatalf("now %v after the step", now)
	}
}

func TestFakeWaitPendingReturnsOnceTheWaiterWaits(t *testing.T) {
	f := NewFake(start)
	go f.NewTimer(time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.WaitPending(ctx, 1); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithCancel(t.Context())
	cancel2()
	if err := f.WaitPending(short, 2); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitPending on an ended context: %v", err)
	}
}

func TestWithTimeoutEndsOnTheClocksTime(t *testing.T) {
	f := NewFake(start)
	ctx, cancel := WithTimeout(t.Context(), f, time.Minute)
	defer cancel()
	f.Step(59 * time.Second)
	if ctx.Err() != nil {
		t.Fatalf("ended early: %v", ctx.Err())
	}
	f.Step(time.Second)
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("err %v, want DeadlineExceeded", ctx.Err())
	}

	ctx, cancel = WithTimeout(t.Context(), f, time.Minute)
	cancel()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("cancelled: err %v", ctx.Err())
	}
	parent, cancelParent := context.WithCancel(t.Context())
	ctx, cancel = WithTimeout(parent, f, time.Minute)
	defer cancel()
	cancelParent()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("parent cancelled: err %v", ctx.Err())
	}
	wait, cancelWait := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancelWait()
	if err := waitNone(wait, f); err != nil { // the timers go with their contexts (on context's goroutine)
		t.Fatalf("%d timers pending after their contexts ended", f.Pending())
	}

	ctx, cancel = WithTimeout(t.Context(), nil, time.Millisecond)
	defer cancel()
	if _, ok := ctx.Deadline(); !ok {
		t.Fatal("a nil clock's timeout has no deadline")
	}
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("real: err %v", ctx.Err())
	}
}

// waitNone waits until nothing is pending on f.
func waitNone(ctx context.Context, f *Fake) error {
	for {
		f.mu.Lock()
		n, ch := len(f.pending), f.changed
		f.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
