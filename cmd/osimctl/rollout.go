package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"osim/controlplane/api"
)

func rolloutCreate(a *app, args []string) error {
	const help = "usage: osimctl orders rollout create (--selector SEL | --targets ID,ID) --image ID [--all]\n" +
		"        [--wave-size N | --wave-percent P | --wave-by LABEL] [--failure-budget N] [--wave-failure-percent P]\n" +
		"        [--pause 5m] [--manual] [--max-per-site N] [--max-per-boot-server N] [--window 22:00-06:00[/ZONE]]\n" +
		"        [--param k=v ...]\n\n" +
		"Reimages in waves: a wave's targets get their orders as room in flight allows (the caps, and what the\n" +
		"site's boot servers' egress sustains when they report a ceiling), each machine power-cycled with network\n" +
		"boot next where it has a power spec (--manual: you reboot them); nothing new starts outside the window\n" +
		"or after the failure budget.\n"
	fs := a.flags("orders.rollout.create", help)
	var req api.RolloutRequest
	params := kvFlag{}
	var targets string
	fs.StringVar(&req.Orders.Selector, "selector", "", "label selector")
	fs.StringVar(&targets, "targets", "", "comma-separated target ids or MACs")
	fs.StringVar(&req.Orders.Image, "image", "", "OS image id")
	fs.StringVar(&req.Orders.BootImage, "boot-image", "", "boot image id (default: the site's)")
	fs.BoolVar(&req.Orders.All, "all", false, "confirm a selector covering a whole site")
	fs.Var(params, "param", "order parameter k=v (repeatable)")
	fs.IntVar(&req.Policy.WaveSize, "wave-size", 0, "targets per wave (default 10)")
	fs.IntVar(&req.Policy.WavePercent, "wave-percent", 0, "a wave as a share of the targets (1..100)")
	fs.StringVar(&req.Policy.WaveBy, "wave-by", "", "one wave per value of this label (rack)")
	fs.IntVar(&req.Policy.FailureBudget, "failure-budget", 0, "stop after this many failed orders")
	fs.IntVar(&req.Policy.WaveFailurePercent, "wave-failure-percent", 0, "stop when a wave fails this share or more")
	fs.StringVar(&req.Policy.Pause, "pause", "", "wait between waves (5m)")
	manual := fs.Bool("manual", false, "do not power-cycle: the operator reboots each wave's machines")
	fs.IntVar(&req.Policy.MaxInFlightPerSite, "max-per-site", 0, "orders in flight per site at most")
	fs.IntVar(&req.Policy.MaxInFlightPerBootServer, "max-per-boot-server", 0, "orders in flight per healthy boot server of a site at most")
	window := fs.String("window", "", "daily window HH:MM-HH:MM, optionally /ZONE (22:00-06:00/Europe/Berlin)")
	if _, err := a.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if targets != "" {
		for _, t := range strings.Split(targets, ",") {
			if t = strings.TrimSpace(t); t != "" {
				req.Orders.Targets = append(req.Orders.Targets, t)
			}
		}
	}
	if len(params) > 0 {
		req.Orders.Params = params
	}
	if *manual {
		req.Policy.Start = "manual"
	}
	if *window != "" {
		w, err := api.ParseWindow(*window)
		if err != nil {
			return usagef("osimctl orders rollout create", "--window: %v", err)
		}
		req.Policy.Window = w
	}
	if err := req.Policy.Validate(); err != nil {
		return usagef("osimctl orders rollout create", "%v", err)
	}
	var ro api.Rollout
	if err := a.client.Do(a.ctx, "POST", "/rollouts", nil, req, &ro); err != nil {
		return err
	}
	return a.showRollout(ro)
}

func rolloutList(a *app, args []string) error {
	fs := a.flags("orders.rollout.list", "usage: osimctl orders rollout list\n")
	if _, err := a.parse(fs, args, 0, 0); err != nil {
		return err
	}
	var l []api.Rollout
	if err := a.client.Do(a.ctx, "GET", "/rollouts", nil, nil, &l); err != nil {
		return err
	}
	if a.json() {
		return a.printJSON(l)
	}
	var rows [][]string
	for _, ro := range l {
		rows = append(rows, []string{ro.ID, ro.State, fmt.Sprintf("%d/%d", min(ro.Current+1, len(ro.Waves)), len(ro.Waves)),
			strconv.Itoa(ro.Failures), ro.Reason, ro.Created.UTC().Format(time.RFC3339)})
	}
	a.table([]string{"ID", "STATE", "WAVE", "FAILURES", "REASON", "CREATED"}, rows)
	return nil
}

func rolloutShow(a *app, args []string) error {
	fs := a.flags("orders.rollout.show", "usage: osimctl orders rollout show ID\n")
	pos, err := a.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	var ro api.Rollout
	if err := a.client.Do(a.ctx, "GET", "/rollouts/"+url.PathEscape(pos[0]), nil, nil, &ro); err != nil {
		return err
	}
	return a.showRollout(ro)
}

// rolloutAction is pause, resume or abort.
func rolloutAction(action string) func(a *app, args []string) error {
	return func(a *app, args []string) error {
		fs := a.flags("orders.rollout."+action, "usage: osimctl orders rollout "+action+" ID"+map[bool]string{true: " [--cancel-running]", false: ""}[action == "abort"]+"\n")
		cancel := false
		if action == "abort" {
			fs.BoolVar(&cancel, "cancel-running", false, "also cancel the running wave's live orders")
		}
		pos, err := a.parse(fs, args, 1, 1)
		if err != nil {
			return err
		}
		q := url.Values{}
		if cancel {
			q.Set("cancel_running", "1")
		}
		var ro api.Rollout
		if err := a.client.Do(a.ctx, "POST", "/rollouts/"+url.PathEscape(pos[0])+"/"+action, q, nil, &ro); err != nil {
			return err
		}
		return a.showRollout(ro)
	}
}

func (a *app) showRollout(ro api.Rollout) error {
	if a.json() {
		return a.printJSON(ro)
	}
	a.fields([][2]string{{"id", ro.ID}, {"state", ro.State}, {"reason", ro.Reason},
		{"wave", fmt.Sprintf("%d of %d", min(ro.Current+1, len(ro.Waves)), len(ro.Waves))}, {"failures", strconv.Itoa(ro.Failures)},
		{"eta", etaText(ro.ETA)}, {"holding", ro.Holding}})
	if ro.Policy.Window != nil {
		a.fields([][2]string{{"window", ro.Policy.Window.String()}})
	}
	if len(ro.Admission) > 0 {
		var rows [][]string
		for _, s := range ro.Admission {
			egress := "-"
			if s.Ceiling > 0 {
				egress = fmt.Sprintf("%s of %s", rateText(s.Egress), rateText(s.Ceiling))
			}
			rows = append(rows, []string{s.Site, strconv.Itoa(s.InFlight), strconv.Itoa(s.Active), strconv.Itoa(s.Waiting),
				limitText(s.Limit), s.LimitBy, strconv.Itoa(s.BootServers), egress})
		}
		fmt.Fprintln(a.stdout)
		a.table([]string{"SITE", "IN FLIGHT", "ACTIVE", "WAITING", "LIMIT", "BY", "BOOT SERVERS", "EGRESS"}, rows)
	}
	var rows [][]string
	for i, w := range ro.Waves {
		rows = append(rows, []string{strconv.Itoa(i + 1), w.Label, strconv.Itoa(len(w.Targets)), w.State,
			strconv.Itoa(w.Done), strconv.Itoa(w.Failed), strconv.Itoa(w.Other), w.Batch})
	}
	fmt.Fprintln(a.stdout)
	a.table([]string{"WAVE", "LABEL", "TARGETS", "STATE", "DONE", "FAILED", "OTHER", "BATCH"}, rows)
	return nil
}

func limitText(n int) string {
	if n < 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

// rateText is bytes/s in MB/s.
func rateText(b float64) string { return fmt.Sprintf("%.0f MB/s", b/1e6) }

// ordersRollout is "orders rollout VERB": the rollouts noun's verbs.
func ordersRollout(a *app, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(a.stderr, nounUsage("rollouts"))
		return usagef("", "orders rollout: no verb given (create, list, show, pause, resume, abort)")
	}
	c, ok := commands["rollouts"][args[0]]
	if !ok {
		fmt.Fprint(a.stderr, nounUsage("rollouts"))
		return usagef("", "orders rollout: unknown verb %q", args[0])
	}
	return c.run(a, args[1:])
}

// init wires "orders rollout" (commands cannot name ordersRollout in its
// own initializer: ordersRollout reads commands).
func init() {
	c := commands["orders"]["rollout"]
	c.run = ordersRollout
	commands["orders"]["rollout"] = c
}

func etaText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
