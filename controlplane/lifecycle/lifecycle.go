// Package lifecycle is where an installation order changes state: which
// transitions are allowed, what an event from a boot server does to an
// order, and which states boot a target into its installation. It is
// pure (no store, no clock): mdb persists what it decides, the agent asks
// it what to answer. The states themselves are wire values (api.OrderState).
package lifecycle

import (
	"time"

	"osim/controlplane/api"
)

// forward is the path of an order that goes well.
var forward = []api.OrderState{api.OrderPending, api.OrderStaged, api.OrderBooting, api.OrderInstalling, api.OrderDone}

// CanMove reports whether an order may move from one state to another:
// one step forward along pending → staged → booting → installing → done,
// or to failed or cancelled from any state that is not final. Retry
// (final failed/cancelled → pending) is a separate operation, see CanRetry.
func CanMove(from, to api.OrderState) bool {
	if !from.Valid() || from.Final() || !to.Valid() {
		return false
	}
	if to == api.OrderFailed || to == api.OrderCancelled {
		return true
	}
	i := indexOf(from)
	return i >= 0 && i+1 < len(forward) && forward[i+1] == to
}

// CanRetry reports whether an order in s may be retried: a new attempt
// that starts again at pending.
func CanRetry(s api.OrderState) bool { return s == api.OrderFailed || s == api.OrderCancelled }

// Boots reports whether a boot server boots a target whose order is in s
// into its installation: from staged (everything is on the boot server)
// until the installer is done. Other states get the no-order answer.
func Boots(s api.OrderState) bool {
	return s == api.OrderStaged || s == api.OrderBooting || s == api.OrderInstalling
}

// Move moves o to state to at time at and records it in o.History (cause:
// the seq of the event that caused it, 0 for an API call). A failed order
// keeps the reason as its message, a done one is at 100%. It reports
// false and leaves o alone when CanMove refuses.
func Move(o *api.Order, to api.OrderState, reason string, at time.Time, cause uint64) bool {
	if !CanMove(o.State, to) {
		return false
	}
	o.History = append(o.History, api.Transition{From: o.State, To: to, At: at, Reason: reason, Event: cause})
	o.State = to
	if to == api.OrderFailed && reason != "" {
		o.Message = reason
	}
	if to == api.OrderDone {
		o.Progress = 100
	}
	return true
}

// Retry starts a new attempt of a failed or cancelled order at pending,
// recorded in o.History; the caller gives it a new token and the
// target's current site, MACs and arch. It reports false and leaves o
// alone when CanRetry refuses.
func Retry(o *api.Order, at time.Time) bool {
	if !CanRetry(o.State) {
		return false
	}
	o.History = append(o.History, api.Transition{From: o.State, To: api.OrderPending, At: at, Reason: "retry"})
	o.State, o.Attempt, o.Progress, o.Message = api.OrderPending, o.Attempt+1, 0, ""
	return true
}

// Step is one transition an event makes.
type Step struct {
	To     api.OrderState
	Reason string
}

// Effect is what an event does to an order: the order's progress and
// message after it (its own when the event leaves them), then the
// transitions to make, in order, each allowed from the state before it.
type Effect struct {
	Progress int
	Message  string
	Steps    []Step
}

// OnEvent says what event e from a boot server does to order o:
//   - order.staged: pending → staged;
//   - file.served: staged → booting;
//   - install.status installing or done: forward one step at a time from
//     staged or booting (an installer may report before the boot
//     server's booting event); failed: from any live state. Its progress
//     (0-100) and message are copied.
//
// A step the state machine refuses ends the walk: the event is stored
// and changes nothing more. An event for a final order changes nothing.
func OnEvent(o api.Order, e api.Event) Effect {
	eff := Effect{Progress: o.Progress, Message: o.Message}
	if o.State.Final() {
		return eff
	}
	var path []api.OrderState
	switch e.Type {
	case api.EventOrderStaged:
		path = []api.OrderState{api.OrderStaged}
	case api.EventFileServed:
		path = []api.OrderState{api.OrderBooting}
	case api.EventInstallStatus:
		if e.Progress >= 0 && e.Progress <= 100 {
			eff.Progress = e.Progress
		}
		if e.Message != "" {
			eff.Message = e.Message
		}
		switch e.Phase {
		case "installing":
			path = walkTo(o.State, api.OrderInstalling)
		case "done":
			path = walkTo(o.State, api.OrderDone)
		case "failed":
			path = []api.OrderState{api.OrderFailed}
		}
	}
	reason := e.Type
	if e.Phase != "" {
		reason += " " + e.Phase
	}
	at := o.State
	for _, to := range path {
		if !CanMove(at, to) {
			break
		}
		r := reason
		if to == api.OrderFailed && e.Message != "" {
			r = e.Message
		}
		eff.Steps = append(eff.Steps, Step{To: to, Reason: r})
		at = to
	}
	return eff
}

// walkTo is the forward path from a staged, booting or installing order
// to to; from anywhere else just to (which CanMove then refuses).
func walkTo(from, to api.OrderState) []api.OrderState {
	i, j := indexOf(from), indexOf(to)
	if from == api.OrderPending || i < 0 || j <= i {
		return []api.OrderState{to}
	}
	return forward[i+1 : j+1]
}

func indexOf(s api.OrderState) int {
	for i, f := range forward {
		if f == s {
			return i
		}
	}
	return -1
}
