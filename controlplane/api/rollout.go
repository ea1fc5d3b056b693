package api

import (
	"fmt"
	"strings"
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
	// MaxInFlightPerSite and MaxInFlightPerBootServer cap the wave's
	// orders started and not ended, per site and per healthy boot server
	// of the site (0: no cap); a wave's other targets wait their turn.
	// Independently, a site whose boot servers report an egress ceiling
	// gets no more in flight than that egress sustains (see Admission).
	MaxInFlightPerSite       int `json:"max_in_flight_per_site,omitempty"`
	MaxInFlightPerBootServer int `json:"max_in_flight_per_boot_server,omitempty"`
	// Window, when set, is when orders may start: outside it no wave and
	// no order starts (running installs go on).
	Window *RolloutWindow `json:"window,omitempty"`
}

// RolloutWindow is a daily time window, "HH:MM" to "HH:MM" in Zone (an
// IANA zone name, default UTC); an End before Start crosses midnight.
type RolloutWindow struct {
	Start string `json:"start"`
	End   string `json:"end"`
	Zone  string `json:"zone,omitempty"`
}

// ParseWindow reads a window as "HH:MM-HH:MM" with an optional "/ZONE"
// (22:00-06:00/Europe/Berlin), as osimctl and the console take it.
func ParseWindow(s string) (*RolloutWindow, error) {
	span, zone, _ := strings.Cut(strings.TrimSpace(s), "/")
	start, end, ok := strings.Cut(span, "-")
	if !ok {
		return nil, fmt.Errorf("%q is not HH:MM-HH:MM[/ZONE]", s)
	}
	w := &RolloutWindow{Start: start, End: end, Zone: zone}
	return w, w.Validate()
}

// clock parses "HH:MM" into minutes since midnight.
func clock(s string) (int, bool) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, false
	}
	return t.Hour()*60 + t.Minute(), true
}

// Validate checks w; the error names the field.
func (w *RolloutWindow) Validate() error {
	a, ok := clock(w.Start)
	if !ok {
		return fmt.Errorf("policy.window.start: %q is not HH:MM", w.Start)
	}
	b, ok := clock(w.End)
	if !ok {
		return fmt.Errorf("policy.window.end: %q is not HH:MM", w.End)
	}
	if a == b {
		return fmt.Errorf("policy.window: start and end are both %s (leave the window out for always)", w.Start)
	}
	if _, err := time.LoadLocation(w.Zone); err != nil {
		return fmt.Errorf("policy.window.zone: %q is not a time zone: %v", w.Zone, err)
	}
	return nil
}

// Open reports whether t is inside w, and when w next opens (t itself
// when open). w must be valid.
func (w *RolloutWindow) Open(t time.Time) (bool, time.Time) {
	loc, _ := time.LoadLocation(w.Zone)
	a, _ := clock(w.Start)
	b, _ := clock(w.End)
	lt := t.In(loc)
	m := lt.Hour()*60 + lt.Minute()
	in := a <= m && m < b
	if a > b { // crosses midnight
		in = m >= a || m < b
	}
	if in {
		return true, t
	}
	next := time.Date(lt.Year(), lt.Month(), lt.Day(), a/60, a%60, 0, 0, loc)
	if !next.After(lt) {
		next = time.Date(lt.Year(), lt.Month(), lt.Day()+1, a/60, a%60, 0, 0, loc)
	}
	return false, next
}

// String is "22:00-06:00 Europe/Berlin".
func (w *RolloutWindow) String() string {
	z := w.Zone
	if z == "" {
		z = "UTC"
	}
	return w.Start + "-" + w.End + " " + z
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
	case p.MaxInFlightPerSite < 0:
		return fmt.Errorf("policy.max_in_flight_per_site: %d is negative", p.MaxInFlightPerSite)
	case p.MaxInFlightPerBootServer < 0:
		return fmt.Errorf("policy.max_in_flight_per_boot_server: %d is negative", p.MaxInFlightPerBootServer)
	}
	if p.Window != nil {
		if err := p.Window.Validate(); err != nil {
			return err
		}
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
	// Admitted are the targets whose orders were made, in the order they
	// were admitted; the wave's others wait for room in flight.
	Admitted []string `json:"admitted,omitempty"`
	// Admitting is the chunk being admitted (written before its orders,
	// so a restarted manager makes the same request again) and Chunks
	// how many chunks were admitted.
	Admitting []string `json:"admitting,omitempty"`
	Chunks    int      `json:"chunks,omitempty"`
	// Powered are the orders whose start (power action) was asked, once
	// each was staged.
	Powered []string `json:"powered,omitempty"`
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
	// Forgiven are the failures an operator accepted by resuming a
	// stopped rollout: the budget counts the failures after them.
	Forgiven int `json:"forgiven,omitempty"`
	// NextWave is when the next wave may start (after Pause).
	NextWave time.Time `json:"next_wave,omitzero"`
	// ETA is when the last wave should end, from the ended waves' mean
	// length and the pauses (zero until a wave has ended).
	ETA time.Time `json:"eta,omitzero"`
	// Holding says why a running rollout starts nothing now (outside its
	// window; every site at its cap): "" when it is not held.
	Holding string `json:"holding,omitempty"`
	// Admission is, per site of the running wave, what the last step
	// saw and allowed.
	Admission []SiteAdmission `json:"admission,omitempty"`
	By        string          `json:"by,omitempty"`
	Created   time.Time       `json:"created"`
	Updated   time.Time       `json:"updated"`
}

// SiteAdmission is how many of a site's orders a rollout's wave may have
// in flight (started, not ended) and why.
type SiteAdmission struct {
	Site        string `json:"site"`
	InFlight    int    `json:"in_flight"`
	Active      int    `json:"active"`  // booting or installing
	Waiting     int    `json:"waiting"` // the wave's targets not admitted yet
	Limit       int    `json:"limit"`   // -1: no limit
	BootServers int    `json:"boot_servers"`
	// Egress is the site's healthy boot servers' delivered bytes/s
	// (HTTP and TFTP, from their last two heartbeats) and Ceiling the sum
	// of the ceilings they report (0: one reports none; no egress limit).
	Egress  float64 `json:"egress_bytes_per_second"`
	Ceiling float64 `json:"egress_ceiling"`
	// LimitBy names what set Limit: "site", "boot_server", "egress",
	// "egress probe", "no boot server", or "" (none).
	LimitBy string `json:"limit_by,omitempty"`
}
