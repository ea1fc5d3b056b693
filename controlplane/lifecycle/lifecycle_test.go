package lifecycle

import (
	"reflect"
	"testing"
	"time"

	"osim/controlplane/api"
)

func TestOrderStateMachineAllowsOnlyTheDocumentedSteps(t *testing.T) {
	allowed := map[[2]api.OrderState]bool{
		{api.OrderPending, api.OrderStaged}:       true,
		{api.OrderStaged, api.OrderBooting}:       true,
		{api.OrderBooting, api.OrderInstalling}:   true,
		{api.OrderInstalling, api.OrderDone}:      true,
		{api.OrderPending, api.OrderFailed}:       true,
		{api.OrderStaged, api.OrderFailed}:        true,
		{api.OrderBooting, api.OrderFailed}:       true,
		{api.OrderInstalling, api.OrderFailed}:    true,
		{api.OrderPending, api.OrderCancelled}:    true,
		{api.OrderStaged, api.OrderCancelled}:     true,
		{api.OrderBooting, api.OrderCancelled}:    true,
		{api.OrderInstalling, api.OrderCancelled}: true,
	}
	states := append([]api.OrderState{"bogus"}, api.OrderStates...)
	for _, from := range states {
		for _, to := range states {
			if got := CanMove(from, to); got != allowed[[2]api.OrderState{from, to}] {
				t.Errorf("CanMove(%s, %s) = %v", from, to, got)
			}
		}
	}
	for _, s := range api.OrderStates {
		if CanRetry(s) != (s == api.OrderFailed || s == api.OrderCancelled) {
			t.Errorf("CanRetry(%s) = %v", s, CanRetry(s))
		}
	}
}

func TestOnlyStagedBootingAndInstallingOrdersBootTheInstaller(t *testing.T) {
	boots := map[api.OrderState]bool{api.OrderStaged: true, api.OrderBooting: true, api.OrderInstalling: true}
	for _, s := range append([]api.OrderState{"bogus"}, api.OrderStates...) {
		if Boots(s) != boots[s] {
			t.Errorf("Boots(%s) = %v", s, Boots(s))
		}
	}
}

var at = time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)

func TestMoveRecordsTheTransitionAndWhatTheStateMeans(t *testing.T) {
	cases := []struct {
		name     string
		from, to api.OrderState
		reason   string
		want     api.Order // State, Progress, Message after
	}{
		{"a step forward keeps progress and message", api.OrderBooting, api.OrderInstalling, "r",
			api.Order{State: api.OrderInstalling, Progress: 40, Message: "m"}},
		{"done is at 100 percent", api.OrderInstalling, api.OrderDone, "r",
			api.Order{State: api.OrderDone, Progress: 100, Message: "m"}},
		{"failed keeps the reason as its message", api.OrderInstalling, api.OrderFailed, "disk gone",
			api.Order{State: api.OrderFailed, Progress: 40, Message: "disk gone"}},
		{"failed without a reason keeps the message", api.OrderStaged, api.OrderFailed, "",
			api.Order{State: api.OrderFailed, Progress: 40, Message: "m"}},
		{"cancelled from pending", api.OrderPending, api.OrderCancelled, "op",
			api.Order{State: api.OrderCancelled, Progress: 40, Message: "m"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := api.Order{State: c.from, Progress: 40, Message: "m"}
			if !Move(&o, c.to, c.reason, at, 7) {
				t.Fatal("refused")
			}
			if o.State != c.want.State || o.Progress != c.want.Progress || o.Message != c.want.Message {
				t.Fatalf("got %s %d %q, want %s %d %q", o.State, o.Progress, o.Message, c.want.State, c.want.Progress, c.want.Message)
			}
			want := []api.Transition{{From: c.from, To: c.to, At: at, Reason: c.reason, Event: 7}}
			if !reflect.DeepEqual(o.History, want) {
				t.Fatalf("history %+v", o.History)
			}
		})
	}
}

func TestMoveRefusedLeavesTheOrderAlone(t *testing.T) {
	for _, c := range [][2]api.OrderState{
		{api.OrderPending, api.OrderBooting},
		{api.OrderDone, api.OrderFailed},
		{api.OrderStaged, "bogus"},
		{api.OrderInstalling, api.OrderPending},
	} {
		o := api.Order{State: c[0], Progress: 5, Message: "m"}
		before := o
		if Move(&o, c[1], "r", at, 1) || !reflect.DeepEqual(o, before) {
			t.Errorf("%s → %s: moved to %+v", c[0], c[1], o)
		}
	}
}

func TestRetryStartsANewAttemptAtPending(t *testing.T) {
	for _, s := range []api.OrderState{api.OrderFailed, api.OrderCancelled} {
		o := api.Order{State: s, Attempt: 2, Progress: 60, Message: "disk gone"}
		if !Retry(&o, at) {
			t.Fatalf("%s: refused", s)
		}
		want := api.Order{State: api.OrderPending, Attempt: 3,
			History: []api.Transition{{From: s, To: api.OrderPending, At: at, Reason: "retry"}}}
		if !reflect.DeepEqual(o, want) {
			t.Fatalf("%s: %+v", s, o)
		}
	}
	for _, s := range []api.OrderState{api.OrderPending, api.OrderStaged, api.OrderBooting, api.OrderInstalling, api.OrderDone} {
		o := api.Order{State: s, Attempt: 1}
		if Retry(&o, at) || o.State != s || o.Attempt != 1 || o.History != nil {
			t.Errorf("%s: retried: %+v", s, o)
		}
	}
}

func status(phase string, progress int, msg string) api.Event {
	return api.Event{Type: api.EventInstallStatus, Phase: phase, Progress: progress, Message: msg}
}

func steps(reason string, to ...api.OrderState) []Step {
	var out []Step
	for _, s := range to {
		out = append(out, Step{To: s, Reason: reason})
	}
	return out
}

func TestWhatAnEventDoesToAnOrder(t *testing.T) {
	const (
		pending    = api.OrderPending
		staged     = api.OrderStaged
		booting    = api.OrderBooting
		installing = api.OrderInstalling
		done       = api.OrderDone
		failed     = api.OrderFailed
		cancelled  = api.OrderCancelled
	)
	staging := api.Event{Type: api.EventOrderStaged}
	served := api.Event{Type: api.EventFileServed}
	cases := []struct {
		name  string
		state api.OrderState
		event api.Event
		want  Effect // Progress and Message default to the order's 10 and "old"
	}{
		{"OrderStagedFromPendingStagesTheOrder", pending, staging,
			Effect{Steps: steps("order.staged", staged)}},
		{"OrderStagedTwiceChangesNothing", staged, staging, Effect{}},
		{"FileServedFromStagedMakesTheOrderBooting", staged, served,
			Effect{Steps: steps("file.served", booting)}},
		{"FileServedWhileBootingChangesNothing", booting, served, Effect{}},
		{"FileServedBeforeStagingChangesNothing", pending, served, Effect{}},
		{"InstallInstallingFromBootingMakesTheOrderInstalling", booting, status("installing", 30, ""),
			Effect{Progress: 30, Steps: steps("install.status installing", installing)}},
		{"InstallInstallingFromStagedWalksThroughBooting", staged, status("installing", 5, "writing"),
			Effect{Progress: 5, Message: "writing", Steps: steps("install.status installing", booting, installing)}},
		{"InstallInstallingWhileInstallingCopiesProgressOnly", installing, status("installing", 70, "customizing"),
			Effect{Progress: 70, Message: "customizing"}},
		{"InstallDoneFromInstallingMakesTheOrderDone", installing, status("done", 100, ""),
			Effect{Progress: 100, Steps: steps("install.status done", done)}},
		{"InstallDoneFromStagedWalksEveryStep", staged, status("done", 100, ""),
			Effect{Progress: 100, Steps: steps("install.status done", booting, installing, done)}},
		{"InstallDoneFromPendingIsRefusedButCopiesProgress", pending, status("done", 100, ""),
			Effect{Progress: 100}},
		{"InstallFailedFromAnyLiveStateFailsTheOrderWithItsMessage", booting, status("failed", 20, "no disk"),
			Effect{Progress: 20, Message: "no disk", Steps: steps("no disk", failed)}},
		{"InstallFailedWithoutAMessageNamesTheEvent", pending, status("failed", -1, ""),
			Effect{Steps: steps("install.status failed", failed)}},
		{"ProgressOutOfRangeIsIgnored", installing, status("installing", 101, ""), Effect{}},
		{"AnUnknownPhaseCopiesProgressOnly", installing, status("rebooting", 90, "bye"),
			Effect{Progress: 90, Message: "bye"}},
		{"OtherEventsChangeNothing", booting, api.Event{Type: api.EventInventory, Progress: 50, Message: "x"}, Effect{}},
		{"EventForADoneOrderChangesNothing", done, status("failed", 50, "late"), Effect{}},
		{"EventForAFailedOrderChangesNothing", failed, status("done", 100, ""), Effect{}},
		{"EventForACancelledOrderChangesNothing", cancelled, staging, Effect{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := api.Order{State: c.state, Progress: 10, Message: "old"}
			want := c.want
			if want.Progress == 0 {
				want.Progress = 10
			}
			if want.Message == "" {
				want.Message = "old"
			}
			got := OnEvent(o, c.event)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
			// Every step is one the state machine allows, in order.
			at := o.State
			for _, s := range got.Steps {
				if !CanMove(at, s.To) {
					t.Fatalf("step %s → %s refused", at, s.To)
				}
				at = s.To
			}
		})
	}
}
