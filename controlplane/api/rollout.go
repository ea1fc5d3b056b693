package api

import (
	"fmt"
	"time"
)

// RolloutPolicy is how a rollout reimages its targets: in waves, stopping
// when the failures pass its budget.
type RolloutPolicy struct {
	// WaveSize is the targets per wave (default 10), or WavePercent a
	// share of all the rollout's targets (1..100); WaveBy instead makes
	// one wave per value of that label (one rack at a time), in the
	// values' order.
	WaveSize    int    `json:"wave_size,omitempty"`
	WavePercent int    `json:"wave_percent,omitempty"`
	WaveBy      string `json:"wave_by,omitempty"`
	// FailureBudget stops the rollout (no new wave starts) once this
	// many orders failed in all; WaveFailurePercent once a wave's failed
	// share reaches it. 0: no such limit.
	FailureBudget      int `json:"failure_budget,omitempty"`
	WaveFailurePercent int `json:"wave_failure_percent,omitempty"`
	// Pause is the wait between a wave's end and the next one's start
	// (a Go duration).
	Pause string `json:"pause,omitempty"`
	// Start: "power" (default) power-cycles each target of a wave with
	// network boot next where it has a power spec; "manual" leaves the
	// reboots to the operator.
	Start string `json:"start,omitempty"`
}

// Validate checks p; the error names the field.
func (p *RolloutPolicy) Validate() error {
	n := 0
	for _, set := range []bool{p.WaveSize != 0, p.WavePercent != 0, p.WaveBy != ""} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return fmt.Errorf("policy: give one of wave_size, wave_percent, wave_by")
	case p.WaveSize < 0:
		return fmt.Errorf("policy.wave_size: %d is negative", p.WaveSize)
	case p.WavePercent < 0 || p.WavePercent > 100:
		return fmt.Errorf("policy.wave_percent: %d is not 1..100", p.WavePercent)
	case p.WaveBy != "" && !ValidName(p.WaveBy):
		return fmt.Errorf("policy.wave_by: %q is not a label key", p.WaveBy)
	case p.FailureBudget < 0:
		return fmt.Errorf("policy.failure_budget: %d is negative", p.FailureBudget)
	case p.WaveFailurePercent < 0 || p.WaveFailurePercent > 100:
		return fmt.Errorf("policy.wave_failure_percent: %d is not 0..100", p.WaveFailurePercent)
	case p.Start != "" && p.Start != "power" && p.Start != "manual":
		return fmt.Errorf("policy.start: %q is not power or manual", p.Start)
	}
	if p.Pause != "" {
		if d, err := time.ParseDuration(p.Pause); err != nil || d < 0 {
			return fmt.Errorf("policy.pause: %q is not a duration", p.Pause)
		}
	}
	return nil
}

// RolloutRequest starts a rollout: the orders of Orders (targets,
// selector, image, parameters as for POST /orders; not a dry run), made
// one wave at a time by Policy.
type RolloutRequest struct {
	Orders OrderRequest  `json:"orders"`
	Policy RolloutPolicy `json:"policy"`
}

// Rollout states.
const (
	RolloutRunning = "running"
	RolloutPaused  = "paused"
	RolloutStopped = "stopped" // the failure budget was spent: no new wave
	RolloutAborted = "aborted"
	RolloutDone    = "done"
)

// Wave states.
const (
	WaveWaiting = "waiting"
	WaveRunning = "running"
	WaveEnded   = "ended"
)

// Wave is one step of a rollout.
type Wave struct {
	Label   string    `json:"label,omitempty"` // its WaveBy value
	Targets []string  `json:"targets"`
	Batch   string    `json:"batch,omitempty"` // the orders' request id, once started
	State   string    `json:"state"`
	Done    int       `json:"done"`
	Failed  int       `json:"failed"`
	Other   int       `json:"other"` // cancelled, or no order made (the target had another)
	Started time.Time `json:"started,omitzero"`
	Ended   time.Time `json:"ended,omitzero"`
}

// Rollout is a reimage in waves.
type Rollout struct {
	ID       string        `json:"id"`
	State    string        `json:"state"`
	Reason   string        `json:"reason,omitempty"` // why stopped, aborted or paused
	Orders   OrderRequest  `json:"orders"`
	Policy   RolloutPolicy `json:"policy"`
	Waves    []Wave        `json:"waves"`
	Current  int           `json:"current"`  // the wave running or next
	Failures int           `json:"failures"` // failed orders of the ended waves
	// NextWave is when the next wave may start (after Pause).
	NextWave time.Time `json:"next_wave,omitzero"`
	// ETA is when the last wave should end, from the ended waves' mean
	// length and the pauses (zero until a wave has ended).
	ETA     time.Time `json:"eta,omitzero"`
	By      string    `json:"by,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}
