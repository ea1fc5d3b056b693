package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"osim/controlplane/api"
)

var orderHeader = []string{"ID", "TARGET", "SITE", "IMAGE", "STATE", "ATTEMPT", "PROGRESS", "UPDATED", "MESSAGE"}

func orderRows(os []api.Order) [][]string {
	rows := make([][]string, 0, len(os))
	for _, o := range os {
		rows = append(rows, []string{o.ID, o.Target, o.Site, o.Image, string(o.State), fmt.Sprint(o.Attempt),
			fmt.Sprintf("%d%%", o.Progress), fmtTime(o.Updated), o.Message})
	}
	return rows
}

func (a *app) printOrders(os []api.Order) error {
	if a.json() {
		if os == nil {
			os = []api.Order{}
		}
		return a.printJSON(api.OrderList{Orders: os})
	}
	a.table(orderHeader, orderRows(os))
	return nil
}

func (a *app) showOrder(o api.Order) error {
	o = api.RedactOrder(o) // the manager masks them too; never print one
	if a.json() {
		return a.printJSON(o)
	}
	a.fields([][2]string{
		{"id", o.ID}, {"target", o.Target}, {"site", o.Site}, {"macs", strings.Join(o.MACs, ", ")}, {"arch", o.Arch},
		{"image", o.Image}, {"boot image", o.BootImage}, {"params", formatKV(o.Params)},
		{"state", string(o.State)}, {"attempt", fmt.Sprint(o.Attempt)}, {"progress", fmt.Sprintf("%d%%", o.Progress)},
		{"message", o.Message}, {"revision", fmt.Sprint(o.Revision)},
		{"created", fmtTime(o.Created)}, {"updated", fmtTime(o.Updated)},
	})
	if len(o.History) > 0 {
		fmt.Fprintln(a.stdout)
		rows := make([][]string, 0, len(o.History))
		for _, t := range o.History {
			ev := ""
			if t.Event != 0 {
				ev = fmt.Sprint(t.Event)
			}
			rows = append(rows, []string{fmtTime(t.At), string(t.From), string(t.To), ev, t.Reason})
		}
		a.table([]string{"AT", "FROM", "TO", "EVENT", "REASON"}, rows)
	}
	return nil
}

// targetID turns a MAC into the target's id; anything else is taken as an id.
func (a *app) targetID(s string) (string, error) {
	if _, err := api.CanonicalMAC(s); err != nil {
		return s, nil
	}
	t, err := a.client.GetTarget(a.ctx, s)
	if err != nil {
		return "", err
	}
	return t.ID, nil
}

func ordersCreate(a *app, args []string) error {
	const name = "osimctl orders create"
	fs := a.flags("orders.create", "usage: osimctl orders create (--target ID|MAC | --targets ID,ID | --selector SEL [--all]) --image ID [--boot-image ID] [--param k=v ...] [--dry-run] [--request-id ID]\n")
	var req api.OrderRequest
	targets := fs.String("targets", "", "comma-separated target ids or MACs")
	fs.StringVar(&req.Target, "target", "", "one target, by id or MAC")
	fs.StringVar(&req.Selector, "selector", "", "every target whose labels match")
	fs.BoolVar(&req.All, "all", false, "confirm a selector that matches every target, or more than the manager's --max-order-share of a site")
	fs.BoolVar(&req.DryRun, "dry-run", false, "list the targets that would be ordered (id, hostname, site); create nothing")
	fs.StringVar(&req.RequestID, "request-id", "", "id that makes a retry of this request answer the orders already made (default: derived from the request)")
	fs.StringVar(&req.Image, "image", "", "OS image id")
	fs.StringVar(&req.BootImage, "boot-image", "", "boot image id (default: for a disk image the site's default boot image, else the boot server's own NBPs)")
	params := kvFlag{}
	fs.Var(params, "param", "parameter k=v overriding the image's defaults (repeatable)")
	if _, err := a.parse(fs, args, 0, 0); err != nil {
		return err
	}
	n := 0
	for _, s := range []string{req.Target, *targets, req.Selector} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return usagef(name, "give exactly one of --target, --targets, --selector")
	}
	if req.Image == "" {
		return usagef(name, "--image is required")
	}
	if req.Selector != "" {
		if _, err := api.ParseSelector(req.Selector); err != nil {
			return usagef(name, "--selector: %v", err)
		}
	}
	if len(params) > 0 {
		req.Params = params
	}
	var err error
	if req.Target != "" {
		if req.Target, err = a.targetID(req.Target); err != nil {
			return err
		}
	}
	if *targets != "" {
		for t := range strings.SplitSeq(*targets, ",") {
			if t = strings.TrimSpace(t); t == "" {
				continue
			}
			id, err := a.targetID(t)
			if err != nil {
				return err
			}
			req.Targets = append(req.Targets, id)
		}
	}
	if req.DryRun {
		plan, err := a.client.PlanOrders(a.ctx, req)
		if err != nil {
			return err
		}
		return a.printPlan(plan)
	}
	out, err := a.client.PlaceOrders(a.ctx, req)
	if err != nil {
		return err
	}
	if out.Replayed && !a.json() {
		fmt.Fprintf(a.stderr, "request %s was already made: its orders, nothing new\n", out.RequestID)
	}
	for _, w := range out.Warnings { // orders created that will not boot as they are
		fmt.Fprintln(a.stderr, "warning:", w)
	}
	return a.printOrders(out.Orders)
}

// printPlan shows a dry run: the targets, each site's share, and why
// the request would need --all.
func (a *app) printPlan(p api.OrderPlan) error {
	if a.json() {
		return a.printJSON(p)
	}
	rows := make([][]string, 0, len(p.Targets))
	for _, t := range p.Targets {
		rows = append(rows, []string{t.ID, t.Hostname, t.Site})
	}
	a.table([]string{"ID", "HOSTNAME", "SITE"}, rows)
	fmt.Fprintf(a.stdout, "\ndry run: %d targets would be ordered", len(p.Targets))
	for _, s := range p.Sites {
		fmt.Fprintf(a.stdout, "; site %s: %d of %d", s.Site, s.Ordered, s.Total)
	}
	fmt.Fprintln(a.stdout)
	if p.NeedsAll != "" {
		fmt.Fprintf(a.stdout, "needs --all: %s\n", p.NeedsAll)
	}
	return nil
}

func ordersList(a *app, args []string) error {
	fs := a.flags("orders.list", "usage: osimctl orders list [--state S] [--target ID|MAC] [--site S] [--limit N] [--all]\n")
	state := fs.String("state", "", "only orders in this state")
	target := fs.String("target", "", "only this target's orders")
	site := fs.String("site", "", "only this site")
	limit := fs.Int("limit", 100, "page size")
	all := fs.Bool("all", false, "follow every page")
	if _, err := a.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *state != "" && !api.OrderState(*state).Valid() {
		return usagef("osimctl orders list", "--state %q: want one of %s", *state, statesList())
	}
	tid := *target
	if tid != "" {
		var err error
		if tid, err = a.targetID(tid); err != nil {
			return err
		}
	}
	var out api.OrderList
	after := ""
	for {
		page, err := a.client.ListOrders(a.ctx, api.OrderState(*state), tid, *site, after, *limit)
		if err != nil {
			return err
		}
		out.Orders = append(out.Orders, page.Orders...)
		out.Next = page.Next
		if !*all || page.Next == "" {
			break
		}
		after = page.Next
	}
	if a.json() {
		if out.Orders == nil {
			out.Orders = []api.Order{}
		}
		return a.printJSON(out)
	}
	a.table(orderHeader, orderRows(out.Orders))
	if out.Next != "" {
		fmt.Fprintf(a.stderr, "(more orders: --all, or a larger --limit)\n")
	}
	return nil
}

func statesList() string {
	s := make([]string, len(api.OrderStates))
	for i, st := range api.OrderStates {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

func orderByID(a *app, args []string, verb string, f func(id string) (api.Order, error)) error {
	fs := a.flags("orders."+verb, fmt.Sprintf("usage: osimctl orders %s ID\n", verb))
	pos, err := a.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	o, err := f(pos[0])
	if err != nil {
		return err
	}
	return a.showOrder(o)
}

func ordersShow(a *app, args []string) error {
	return orderByID(a, args, "show", func(id string) (api.Order, error) { return a.client.GetOrder(a.ctx, id) })
}

func ordersCancel(a *app, args []string) error { return ordersAct(a, args, "cancel") }

func ordersRetry(a *app, args []string) error { return ordersAct(a, args, "retry") }

// ordersAct cancels or retries orders named by id, by the targets of a
// selector (their live order to cancel, their last to retry), or, to
// retry, every failed order (of a site, of a selector's targets).
func ordersAct(a *app, args []string, verb string) error {
	name := "osimctl orders " + verb
	help := fmt.Sprintf("usage: osimctl orders %[1]s ID [ID ...]\n       osimctl orders %[1]s --selector SEL [--site S]\n", verb)
	if verb == "retry" {
		help += "       osimctl orders retry --failed [--selector SEL] [--site S]\n"
	}
	help += "\nEach order's outcome is one row; the exit code is 1 when any failed.\n"
	fs := a.flags("orders."+verb, help)
	sel := fs.String("selector", "", "the orders of the targets it matches (cancel: their live one; retry: their last)")
	site := fs.String("site", "", "only orders of this site")
	failed := false
	if verb == "retry" {
		fs.BoolVar(&failed, "failed", false, "every failed order")
	}
	ids, err := a.parse(fs, args, 0, -1)
	if err != nil {
		return err
	}
	if len(ids) > 0 && (*sel != "" || failed) || len(ids) == 0 && *sel == "" && !failed {
		return usagef(name, "give order ids, or --selector%s", map[bool]string{true: " or --failed", false: ""}[verb == "retry"])
	}
	act := a.client.CancelOrder
	if verb == "retry" {
		act = a.client.RetryOrder
	}
	if len(ids) == 1 {
		o, err := act(a.ctx, ids[0])
		if err != nil {
			return err
		}
		return a.showOrder(o)
	}
	if len(ids) == 0 {
		if ids, err = a.selectOrders(*sel, *site, verb, failed); err != nil {
			return err
		}
		if len(ids) == 0 {
			return fmt.Errorf("no order to %s", verb)
		}
	}
	var rows [][]string
	var done []api.Order
	bad := 0
	for _, id := range ids {
		o, err := act(a.ctx, id)
		if err != nil {
			bad++
			rows = append(rows, []string{id, "-", "-", err.Error()})
			continue
		}
		done = append(done, o)
		rows = append(rows, []string{o.ID, o.Target, string(o.State), verb})
	}
	if a.json() {
		if err := a.printJSON(api.OrderList{Orders: done}); err != nil {
			return err
		}
	} else {
		a.table([]string{"ORDER", "TARGET", "STATE", "RESULT"}, rows)
	}
	if bad > 0 {
		fmt.Fprintf(a.stderr, "%d of %d orders not %s\n", bad, len(ids), map[string]string{"cancel": "cancelled", "retry": "retried"}[verb])
		return exitCode(1)
	}
	return nil
}

// selectOrders finds the orders a selector's targets (cancel: their live
// order; retry: their last) or --failed name.
func (a *app) selectOrders(sel, site, verb string, failed bool) ([]string, error) {
	var targets map[string]api.Target
	if sel != "" {
		if _, err := api.ParseSelector(sel); err != nil {
			return nil, usagef("osimctl orders "+verb, "--selector: %v", err)
		}
		targets = map[string]api.Target{}
		for after := ""; ; {
			page, err := a.client.ListTargets(a.ctx, sel, site, after, 1000)
			if err != nil {
				return nil, err
			}
			for _, t := range page.Targets {
				targets[t.ID] = t
			}
			if after = page.Next; after == "" {
				break
			}
		}
	}
	var ids []string
	if failed {
		for after := ""; ; {
			page, err := a.client.ListOrders(a.ctx, api.OrderFailed, "", site, after, 1000)
			if err != nil {
				return nil, err
			}
			for _, o := range page.Orders {
				if _, ok := targets[o.Target]; targets == nil || ok {
					ids = append(ids, o.ID)
				}
			}
			if after = page.Next; after == "" {
				return ids, nil
			}
		}
	}
	for _, t := range targets {
		switch {
		case verb == "cancel" && t.CurrentOrder != "":
			ids = append(ids, t.CurrentOrder)
		case verb == "retry" && t.CurrentOrder == "" && t.LastOrder != "":
			ids = append(ids, t.LastOrder)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// watcher follows a set of orders until each is final.
type watcher struct {
	a      *app
	orders map[string]api.Order
	ids    []string          // in the order given
	hosts  map[string]string // target id → hostname, looked up once
}

// host names a target by its hostname (its id when it has none or the
// lookup fails).
func (w *watcher) host(target string) string {
	if h, ok := w.hosts[target]; ok {
		return h
	}
	if w.hosts == nil {
		w.hosts = map[string]string{}
	}
	h := target
	if t, err := w.a.client.GetTarget(w.a.ctx, target); err == nil && t.Hostname != "" {
		h = t.Hostname
	}
	w.hosts[target] = h
	return h
}

func ordersWatch(a *app, args []string) error {
	const help = `usage: osimctl orders watch [ID ...] [--selector SEL] [--all [--site S]] [--after N]

Follows the event log (long-poll) and prints each watched order's transitions and progress as
they happen, with a running tally per state. IDs: those orders; --selector: the live orders of
the targets the selector matches; --all: every live order (of --site).
Exits when every watched order is final: 0 if all are done, 3 if any failed or was cancelled,
1 on an API or network error, 130 when interrupted.
`
	const name = "osimctl orders watch"
	fs := a.flags("orders.watch", help)
	sel := fs.String("selector", "", "watch the live orders of the targets this selector matches")
	all := fs.Bool("all", false, "watch every live order")
	site := fs.String("site", "", "with --all: only this site")
	after := fs.Uint64("after", 0, "start reading events after this sequence number (default: from the orders' history)")
	ids, err := a.parse(fs, args, 0, -1)
	if err != nil {
		return err
	}
	n := 0
	if len(ids) > 0 {
		n++
	}
	if *sel != "" {
		n++
	}
	if *all {
		n++
	}
	if n != 1 {
		return usagef(name, "give order ids, --selector or --all (exactly one)")
	}
	w := &watcher{a: a, orders: map[string]api.Order{}}
	var initial []api.Order
	switch {
	case len(ids) > 0:
		for _, id := range ids {
			o, err := a.client.GetOrder(a.ctx, id)
			if err != nil {
				return err
			}
			initial = append(initial, o)
		}
	case *sel != "":
		if initial, err = w.bySelector(*sel); err != nil {
			return err
		}
	default:
		if initial, err = w.live(*site); err != nil {
			return err
		}
	}
	if len(initial) == 0 {
		if !a.json() {
			fmt.Fprintln(a.stdout, "no live orders to watch")
		}
		return nil
	}
	cursor := *after
	if *after == 0 {
		cursor = ^uint64(0)
	}
	for _, o := range initial {
		if _, dup := w.orders[o.ID]; dup {
			continue
		}
		w.ids = append(w.ids, o.ID)
		w.orders[o.ID] = o
		w.printOrder(o, nil)
		if *after == 0 {
			var last uint64
			for _, t := range o.History {
				last = max(last, t.Event)
			}
			cursor = min(cursor, last)
		}
	}
	w.tally()
	return w.loop(cursor)
}

func (w *watcher) bySelector(sel string) ([]api.Order, error) {
	if _, err := api.ParseSelector(sel); err != nil {
		return nil, usagef("osimctl orders watch", "--selector: %v", err)
	}
	var out []api.Order
	after := ""
	for {
		page, err := w.a.client.ListTargets(w.a.ctx, sel, "", after, 1000)
		if err != nil {
			return nil, err
		}
		for _, t := range page.Targets {
			if t.CurrentOrder == "" {
				continue
			}
			o, err := w.a.client.GetOrder(w.a.ctx, t.CurrentOrder)
			if err != nil {
				return nil, err
			}
			out = append(out, o)
		}
		if page.Next == "" {
			return out, nil
		}
		after = page.Next
	}
}

func (w *watcher) live(site string) ([]api.Order, error) {
	var out []api.Order
	for _, st := range api.OrderStates {
		if st.Final() {
			continue
		}
		after := ""
		for {
			page, err := w.a.client.ListOrders(w.a.ctx, st, "", site, after, 1000)
			if err != nil {
				return nil, err
			}
			out = append(out, page.Orders...)
			if page.Next == "" {
				break
			}
			after = page.Next
		}
	}
	return out, nil
}

func (w *watcher) pending() int {
	n := 0
	for _, o := range w.orders {
		if !o.State.Final() {
			n++
		}
	}
	return n
}

// loop long-polls events; an event naming a watched live order makes it
// fetched again; an empty poll re-fetches every live one (nothing missed).
func (w *watcher) loop(after uint64) error {
	a := w.a
	f := api.EventFilter{Limit: 1000, Wait: a.longPoll()}
	if len(w.ids) == 1 {
		f.Order = w.ids[0]
	}
	fails := 0
	for w.pending() > 0 {
		evs, err := a.client.ListEvents(a.ctx, after, f)
		if err != nil {
			if a.ctx.Err() != nil {
				fmt.Fprintln(a.stderr, "osimctl: interrupted")
				return exitCode(130)
			}
			var ae *api.Error
			if errors.As(err, &ae) || fails >= 5 {
				return err
			}
			fails++
			fmt.Fprintf(a.stderr, "osimctl: %v (retrying)\n", err)
			select {
			case <-a.ctx.Done():
			case <-time.After(time.Duration(fails) * time.Second):
			}
			continue
		}
		fails = 0
		dirty := map[string]bool{}
		for _, e := range evs.Events {
			if o, ok := w.orders[e.Order]; ok && !o.State.Final() {
				dirty[e.Order] = true
			}
		}
		if len(evs.Events) == 0 {
			for id, o := range w.orders {
				if !o.State.Final() {
					dirty[id] = true
				}
			}
		}
		if evs.Last > after {
			after = evs.Last
		}
		changed := false
		for _, id := range w.ids {
			if !dirty[id] {
				continue
			}
			o, err := a.client.GetOrder(a.ctx, id)
			if err != nil {
				return err
			}
			prev := w.orders[id]
			if o.State != prev.State || o.Progress != prev.Progress || o.Message != prev.Message || len(o.History) != len(prev.History) {
				w.orders[id] = o
				w.printOrder(o, &prev)
				changed = changed || o.State != prev.State
			}
		}
		if changed {
			w.tally()
		}
	}
	bad := 0
	for _, o := range w.orders {
		if o.State != api.OrderDone {
			bad++
		}
	}
	if !a.json() {
		fmt.Fprintf(a.stdout, "all %d orders final: %s\n", len(w.orders), w.counts())
	}
	if bad > 0 {
		return exitCode(exitFailed)
	}
	return nil
}

// printOrder prints an order as first seen (prev nil) or what changed.
func (w *watcher) printOrder(o api.Order, prev *api.Order) {
	a := w.a
	if a.json() {
		b, _ := json.Marshal(o)
		fmt.Fprintln(a.stdout, string(b))
		return
	}
	ts := a.now().Local().Format(time.TimeOnly)
	if prev == nil {
		fmt.Fprintf(a.stdout, "%s %s %s %s (attempt %d)%s\n", ts, o.ID, w.host(o.Target), o.State, o.Attempt, msg(o.Message))
		return
	}
	// Every transition since the last look, in order.
	start := min(len(prev.History), len(o.History))
	if len(o.History) < len(prev.History) || (o.Attempt != prev.Attempt) {
		start = len(o.History)
	}
	printed := false
	for _, t := range o.History[start:] {
		fmt.Fprintf(a.stdout, "%s %s %s %s -> %s%s\n", ts, o.ID, w.host(o.Target), t.From, t.To, msg(t.Reason))
		printed = true
	}
	if !printed && o.State != prev.State {
		fmt.Fprintf(a.stdout, "%s %s %s %s -> %s%s\n", ts, o.ID, w.host(o.Target), prev.State, o.State, msg(o.Message))
		printed = true
	}
	if !printed || o.Progress != prev.Progress {
		if o.State == api.OrderInstalling {
			fmt.Fprintf(a.stdout, "%s %s %s installing %d%%%s\n", ts, o.ID, w.host(o.Target), o.Progress, msg(o.Message))
		}
	}
}

func msg(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

func (w *watcher) counts() string {
	n := map[api.OrderState]int{}
	for _, o := range w.orders {
		n[o.State]++
	}
	var parts []string
	for _, st := range api.OrderStates {
		if n[st] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", st, n[st]))
		}
	}
	return strings.Join(parts, ", ")
}

func (w *watcher) tally() {
	if !w.a.json() {
		fmt.Fprintf(w.a.stdout, "  [%s]\n", w.counts())
	}
}
