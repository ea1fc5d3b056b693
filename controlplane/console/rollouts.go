package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"osim/controlplane/api"
)

func (c *Console) rolloutsPage(w http.ResponseWriter, r *http.Request, s *session) {
	var l []api.Rollout
	if err := c.client(s).Do(r.Context(), http.MethodGet, "/rollouts", nil, nil, &l); err != nil {
		c.failed(w, r, s, err)
		return
	}
	c.render(w, r, "rollouts", s, map[string]any{"Title": "Rollouts", "Rollouts": l})
}

func (c *Console) rolloutPage(w http.ResponseWriter, r *http.Request, s *session) {
	var ro api.Rollout
	if err := c.client(s).Do(r.Context(), http.MethodGet, "/rollouts/"+url.PathEscape(r.PathValue("id")), nil, nil, &ro); err != nil {
		c.failed(w, r, s, err)
		return
	}
	total, ended := 0, 0
	for _, wv := range ro.Waves {
		total += len(wv.Targets)
		ended += wv.Done + wv.Failed + wv.Other
	}
	c.render(w, r, "rollout", s, map[string]any{"Title": "Rollout " + ro.ID, "R": ro, "Total": total, "Ended": ended})
}

func (c *Console) rolloutAction(action string) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		id := r.PathValue("id")
		q := url.Values{}
		if action == "abort" && r.PostForm.Get("cancel_running") == "on" {
			q.Set("cancel_running", "1")
		}
		var ro api.Rollout
		if err := c.client(s).Do(r.Context(), http.MethodPost, "/rollouts/"+url.PathEscape(id)+"/"+action, q, nil, &ro); err != nil {
			c.failed(w, r, s, err)
			return
		}
		c.redirectFlash(w, r, s, "/ui/rollouts/"+url.PathEscape(ro.ID), "rollout "+action+": "+ro.State)
	}
}

// rolloutPolicy reads the reimage form's "in waves" part; ok false when
// the form asks for plain orders.
func rolloutPolicy(f url.Values) (p api.RolloutPolicy, ok bool, err error) {
	if f.Get("waves") != "on" {
		return p, false, nil
	}
	num := func(name string) (int, error) {
		v := strings.TrimSpace(f.Get(name))
		if v == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not a number", strings.ReplaceAll(name, "_", " "), v)
		}
		return n, nil
	}
	if p.WaveSize, err = num("wave_size"); err != nil {
		return p, true, err
	}
	if p.FailureBudget, err = num("failure_budget"); err != nil {
		return p, true, err
	}
	if p.WaveFailurePercent, err = num("wave_failure_percent"); err != nil {
		return p, true, err
	}
	if p.MaxInFlightPerSite, err = num("max_per_site"); err != nil {
		return p, true, err
	}
	if p.MaxInFlightPerBootServer, err = num("max_per_boot_server"); err != nil {
		return p, true, err
	}
	if v := strings.TrimSpace(f.Get("window")); v != "" {
		if p.Window, err = api.ParseWindow(v); err != nil {
			return p, true, fmt.Errorf("window: %v", err)
		}
	}
	p.WaveBy, p.Pause = strings.TrimSpace(f.Get("wave_by")), strings.TrimSpace(f.Get("pause"))
	if p.WaveBy != "" {
		p.WaveSize = 0
	}
	if f.Get("manual") == "on" {
		p.Start = "manual"
	}
	return p, true, p.Validate()
}
