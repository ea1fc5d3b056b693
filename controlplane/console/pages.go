package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"osim/controlplane/api"
)

// Paging of the targets page.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
	// apiPage is how many rows one in-process API call lists.
	apiPage = 1000
)

// maxListed bounds the discovered machines and boot loops the overview
// lists (their counts are exact).
const maxListed = 100

// overview: orders by state, boot servers by health, discovered machines,
// recent failures and boot loops.
func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	cl := c.client(s)
	counts, err := cl.OrderCounts(ctx)
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	// Recent failures: the newest transitions to failed among the last
	// 1,000 order transitions (a backward read of the event log, however
	// many orders there are).
	evs, err := cl.ListEvents(ctx, 0, api.EventFilter{Type: api.EventOrderState, Limit: 1000, Newest: true})
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	var failed []failure
	for i := len(evs.Events) - 1; i >= 0 && len(failed) < 10; i-- {
		if e := evs.Events[i]; e.Data["to"] == string(api.OrderFailed) {
			failed = append(failed, failure{ID: e.Order, Target: e.Target, Message: e.Message, Updated: e.Time})
		}
	}
	hosts := map[string]string{}
	for _, o := range failed {
		if t, err := cl.GetTarget(ctx, o.Target); err == nil {
			hosts[t.ID] = t.Hostname
		}
	}
	bss, err := cl.ListBootServers(ctx)
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	health := map[string]int{}
	for _, b := range bss {
		health[b.Health]++
	}
	rev, err := cl.Revision(ctx, 0, 0)
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	discovered, err := cl.FindTargets(ctx, api.TargetFilter{State: api.TargetDiscovered, Count: true}, "", maxListed)
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	loops, err := cl.FindTargets(ctx, api.TargetFilter{BootLoop: true, Count: true}, "", maxListed)
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	var states []stateCount
	total := 0
	for _, st := range api.OrderStates {
		states = append(states, stateCount{State: string(st), N: counts[st]})
		total += counts[st]
	}
	c.render(w, r, "overview", s, map[string]any{"Title": "Overview", "States": states, "Total": total,
		"BootServers": bss, "Health": health, "Discovered": discovered.Targets, "NDiscovered": deref(discovered.Total),
		"Loops": loops.Targets, "NLoops": deref(loops.Total), "Failed": failed, "Hosts": hosts, "Revision": rev})
}

// failure is one recent failure on the overview.
type failure struct {
	ID, Target, Message string
	Updated             time.Time
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

type stateCount struct {
	State string
	N     int
}

// allTargets lists every target through the API.
func (c *Console) allTargets(ctx context.Context, cl *api.Client) ([]api.Target, error) {
	var out []api.Target
	after := ""
	for {
		l, err := cl.ListTargets(ctx, "", "", after, apiPage)
		if err != nil {
			return nil, err
		}
		out = append(out, l.Targets...)
		if after = l.Next; after == "" {
			return out, nil
		}
	}
}

// targetFilter is the targets page's query.
type targetFilter struct {
	State, Site, Label, Arch, Q string
	After                       string
	Limit                       int
}

func (f targetFilter) query(after string) string {
	v := url.Values{}
	for k, s := range map[string]string{"state": f.State, "site": f.Site, "label": f.Label, "arch": f.Arch, "q": f.Q} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if after != "" {
		v.Set("after", after)
	}
	if f.Limit != defaultPageSize {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	return v.Encode()
}

// targetRow is one line of the targets table.
type targetRow struct {
	api.Target
	Order *api.Order // the newest order, if any
}

// targets lists targets with filters, paged and counted by the manager
// (GET /targets with q, arch, order_state, count): only the page crosses.
func (c *Console) targets(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	q := r.URL.Query()
	f := targetFilter{State: q.Get("state"), Site: q.Get("site"), Label: q.Get("label"), Arch: q.Get("arch"),
		Q: strings.TrimSpace(q.Get("q")), After: q.Get("after"), Limit: defaultPageSize}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 {
		f.Limit = min(n, maxPageSize)
	}
	filter := api.TargetFilter{Selector: f.Label, Site: f.Site, Text: f.Q, Arch: f.Arch, Count: true}
	if f.State == api.TargetDiscovered {
		filter.State = f.State
	} else {
		filter.OrderState = f.State
	}
	cl := c.client(s)
	l, err := cl.FindTargets(ctx, filter, f.After, f.Limit)
	if err != nil {
		if code, _ := apiError(err); code == http.StatusBadRequest {
			// A filter the manager refuses (a selector typo): say so on
			// the page, with the form to fix it.
			w.WriteHeader(code)
			c.render(w, r, "targets", s, map[string]any{"Title": "Targets", "Filter": f, "Error": errMsg(err),
				"States": targetStates(), "Arches": api.Arches})
			return
		}
		c.failed(w, r, s, err)
		return
	}
	rows := make([]targetRow, 0, len(l.Targets))
	for _, t := range l.Targets {
		row := targetRow{Target: t}
		if id := lastOrder(t); id != "" {
			if o, err := cl.GetOrder(ctx, id); err == nil {
				row.Order = &o
			}
		}
		rows = append(rows, row)
	}
	next := ""
	if l.Next != "" {
		// The whole URL: in an href, html/template escapes a substituted
		// query string as one value.
		next = "/ui/targets?" + f.query(l.Next)
	}
	siteNames, err := knownSites(ctx, cl)
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	before := deref(l.Before)
	c.render(w, r, "targets", s, map[string]any{"Title": "Targets", "Rows": rows, "Filter": f, "Matched": deref(l.Total),
		"From": before + 1, "To": before + len(rows), "Next": next, "Sites": siteNames, "Arches": api.Arches,
		"States": targetStates()})
}

// knownSites are the sites with settings or a boot server: suggestions
// for the site filter (a target's site may be neither yet).
func knownSites(ctx context.Context, cl *api.Client) ([]string, error) {
	var sl api.SiteList
	if err := cl.Do(ctx, http.MethodGet, "/sites", nil, nil, &sl); err != nil {
		return nil, err
	}
	bss, err := cl.ListBootServers(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, st := range sl.Sites {
		seen[st.Name] = true
	}
	for _, b := range bss {
		seen[b.Site] = true
	}
	return keys(seen), nil
}

func targetStates() []string { return append([]string{"none", api.TargetDiscovered}, stateNames()...) }

func lastOrder(t api.Target) string {
	if t.CurrentOrder != "" {
		return t.CurrentOrder
	}
	return t.LastOrder
}

func stateNames() []string {
	out := make([]string, 0, len(api.OrderStates))
	for _, s := range api.OrderStates {
		out = append(out, string(s))
	}
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// targetsAction runs one action on the selected targets: reimage goes to
// the reimage form with them; cancel and retry act on their newest
// orders; label sets (k=v) or removes (k=) one label.
func (c *Console) targetsAction(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	ids := r.PostForm["id"]
	if len(ids) == 0 {
		c.refuse(w, r, http.StatusBadRequest, fmt.Errorf("console: select at least one target"))
		return
	}
	action := r.PostForm.Get("action")
	if action == "reimage" {
		http.Redirect(w, r, "/ui/reimage?"+url.Values{"targets": {strings.Join(ids, ",")}}.Encode(), http.StatusSeeOther)
		return
	}
	cl := c.client(s)
	var done, skipped int
	var errs []string
	for _, id := range ids {
		t, err := cl.GetTarget(ctx, id)
		if err != nil {
			errs = append(errs, id+": "+errMsg(err))
			continue
		}
		switch action {
		case "cancel", "retry":
			oid := lastOrder(t)
			if oid == "" {
				skipped++
				continue
			}
			if action == "cancel" {
				_, err = cl.CancelOrder(ctx, oid)
			} else {
				_, err = cl.RetryOrder(ctx, oid)
			}
		case "label":
			k, v, ok := strings.Cut(r.PostForm.Get("label"), "=")
			if !ok || k == "" {
				c.refuse(w, r, http.StatusBadRequest, fmt.Errorf("console: label %q: want key=value (key= removes it)", r.PostForm.Get("label")))
				return
			}
			labels := map[string]string{}
			for lk, lv := range t.Labels {
				labels[lk] = lv
			}
			if v == "" {
				delete(labels, k)
			} else {
				labels[k] = v
			}
			_, err = cl.UpdateTarget(ctx, t.ID, api.TargetPatch{Labels: &labels})
		default:
			c.refuse(w, r, http.StatusBadRequest, fmt.Errorf("console: unknown action %q", action))
			return
		}
		if err != nil {
			if code, _ := apiError(err); code == http.StatusForbidden || code == http.StatusUnauthorized {
				c.failed(w, r, s, err)
				return
			}
			errs = append(errs, t.Hostname+": "+errMsg(err))
			continue
		}
		done++
	}
	msg := fmt.Sprintf("%s: %d done", action, done)
	if skipped > 0 {
		msg += fmt.Sprintf(", %d without an order", skipped)
	}
	if len(errs) > 0 {
		msg += fmt.Sprintf(", %d refused (%s)", len(errs), strings.Join(errs[:min(len(errs), 5)], "; "))
	}
	back := r.PostForm.Get("back")
	if !strings.HasPrefix(back, "/ui/targets") {
		back = "/ui/targets"
	}
	c.redirectFlash(w, r, s, back, msg)
}

// redirectFlash sends the browser to path (a GET after a POST) with msg
// shown once there.
func (c *Console) redirectFlash(w http.ResponseWriter, r *http.Request, s *session, path, msg string) {
	c.sessions.setFlash(s, msg)
	http.Redirect(w, r, path, http.StatusSeeOther)
}

func errMsg(err error) string {
	_, m := apiError(err)
	return m
}

// target: facts, order history, the live event timeline.
func (c *Console) target(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	cl := c.client(s)
	t, err := cl.GetTarget(ctx, r.PathValue("id"))
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	var orders []api.Order
	after := ""
	for {
		l, err := cl.ListOrders(ctx, "", t.ID, "", after, apiPage)
		if err != nil {
			c.failed(w, r, s, err)
			return
		}
		orders = append(orders, l.Orders...)
		if after = l.Next; after == "" {
			break
		}
	}
	sort.Slice(orders, func(i, j int) bool { return orders[i].Created.After(orders[j].Created) })
	evs, err := c.lastEvents(ctx, cl, api.EventFilter{Target: t.ID}, 200)
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	script, why := bootScript(ctx, cl, t)
	var powers []api.PowerRequest
	if t.Power != nil {
		if err := cl.Do(ctx, http.MethodGet, "/targets/"+url.PathEscape(t.ID)+"/power", nil, nil, &powers); err != nil {
			c.failed(w, r, s, err)
			return
		}
		powers = powers[:min(len(powers), 5)]
	}
	c.render(w, r, "target", s, map[string]any{"Title": "Target " + t.Hostname, "T": t, "Orders": orders, "Events": evs,
		"Script": script, "ScriptWhy": why, "Powers": powers})
}

// lastEvents returns the newest n (at most 1000) events the filter
// matches, newest first.
func (c *Console) lastEvents(ctx context.Context, cl *api.Client, f api.EventFilter, n int) ([]api.Event, error) {
	f.Limit, f.Newest = n, true
	l, err := cl.ListEvents(ctx, 0, f)
	if err != nil {
		return nil, err
	}
	slices.Reverse(l.Events)
	return l.Events, nil
}

// reimageForm: by selector or selection, image and boot image, parameters.
func (c *Console) reimageForm(w http.ResponseWriter, r *http.Request, s *session) {
	c.reimagePage(w, r, s, reimageInput{Targets: r.URL.Query().Get("targets"), Selector: r.URL.Query().Get("selector")}, nil, "")
}

type reimageInput struct {
	Targets, Selector, Image, BootImage, Params string
	All                                         bool
}

func (in reimageInput) request() (api.OrderRequest, error) {
	req := api.OrderRequest{Image: in.Image, BootImage: in.BootImage, All: in.All}
	if in.Targets != "" {
		for _, id := range strings.FieldsFunc(in.Targets, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' }) {
			req.Targets = append(req.Targets, id)
		}
	} else {
		req.Selector = in.Selector
	}
	for _, line := range strings.Split(in.Params, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return req, fmt.Errorf("parameter line %q: want name=value", line)
		}
		if req.Params == nil {
			req.Params = map[string]string{}
		}
		req.Params[strings.TrimSpace(k)] = v
	}
	return req, nil
}

func (c *Console) reimagePage(w http.ResponseWriter, r *http.Request, s *session, in reimageInput, plan *api.OrderPlan, errText string) {
	imgs, err := c.client(s).ListImages(r.Context())
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	var osImgs, bootImgs []api.Image
	for _, im := range imgs {
		if im.Kind == api.KindBoot {
			bootImgs = append(bootImgs, im)
		} else {
			osImgs = append(osImgs, im)
		}
	}
	if errText != "" {
		w.WriteHeader(http.StatusUnprocessableEntity)
	}
	c.render(w, r, "reimage", s, map[string]any{"Title": "Reimage", "In": in, "OS": osImgs, "Boot": bootImgs,
		"Plan": plan, "Error": errText})
}

// reimage plans (dry run) or creates the orders; creation needs the plan's
// confirmation and goes to the batch's live progress.
func (c *Console) reimage(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	in := reimageInput{Targets: strings.TrimSpace(f.Get("targets")), Selector: strings.TrimSpace(f.Get("selector")),
		Image: f.Get("image"), BootImage: f.Get("boot_image"), Params: f.Get("params"), All: f.Get("all") == "on"}
	req, err := in.request()
	if err != nil {
		c.reimagePage(w, r, s, in, nil, err.Error())
		return
	}
	cl := c.client(s)
	if f.Get("confirm") != "yes" {
		req.DryRun = true
		plan, err := cl.PlanOrders(r.Context(), req)
		if err != nil {
			c.reimageRefused(w, r, s, in, err)
			return
		}
		sort.Slice(plan.Targets, func(i, j int) bool { return plan.Targets[i].Hostname < plan.Targets[j].Hostname })
		c.reimagePage(w, r, s, in, &plan, "")
		return
	}
	policy, waves, err := rolloutPolicy(f)
	if err != nil {
		c.reimagePage(w, r, s, in, nil, err.Error())
		return
	}
	if waves {
		var ro api.Rollout
		if err := cl.Do(r.Context(), http.MethodPost, "/rollouts", nil, api.RolloutRequest{Orders: req, Policy: policy}, &ro); err != nil {
			c.reimageRefused(w, r, s, in, err)
			return
		}
		c.redirectFlash(w, r, s, "/ui/rollouts/"+url.PathEscape(ro.ID), fmt.Sprintf("rollout of %d waves started", len(ro.Waves)))
		return
	}
	l, err := cl.PlaceOrders(r.Context(), req)
	if err != nil {
		c.reimageRefused(w, r, s, in, err)
		return
	}
	msg := fmt.Sprintf("%d orders created", len(l.Orders))
	if len(l.Warnings) > 0 {
		msg += "; " + strings.Join(l.Warnings, "; ")
	}
	c.redirectFlash(w, r, s, "/ui/batches/"+url.PathEscape(l.RequestID), msg)
}

// reimageRefused answers a refused plan or order: the role's 403 as an
// error page, anything else on the form, with what the API said.
func (c *Console) reimageRefused(w http.ResponseWriter, r *http.Request, s *session, in reimageInput, err error) {
	if code, _ := apiError(err); code == http.StatusForbidden {
		c.failed(w, r, s, err)
		return
	}
	c.reimagePage(w, r, s, in, nil, errMsg(err))
}

// maxFailuresShown bounds the failures a batch page lists (with their
// targets' hostnames); the full list is ?all=1.
const maxFailuresShown = 100

// batch: the live progress of one order request: counts per state, a bar,
// the failures with their reasons. ?all=1 lists every order (not live: a
// mass reimage's thousands of rows are not re-sent every few seconds).
func (c *Console) batch(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	cl := c.client(s)
	orders, err := c.batchOrders(ctx, cl, r.PathValue("id"))
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	all := r.URL.Query().Get("all") == "1"
	counts := map[api.OrderState]int{}
	var failed []api.Order
	for _, o := range orders {
		counts[o.State]++
		if o.State == api.OrderFailed {
			failed = append(failed, o)
		}
	}
	nFailed := len(failed)
	if !all {
		failed = failed[:min(len(failed), maxFailuresShown)]
	}
	hosts := map[string]string{}
	if all {
		targets, err := c.allTargets(ctx, cl)
		if err != nil {
			c.failed(w, r, s, err)
			return
		}
		for _, t := range targets {
			hosts[t.ID] = t.Hostname
		}
	} else {
		for _, o := range failed {
			if t, err := cl.GetTarget(ctx, o.Target); err == nil {
				hosts[t.ID] = t.Hostname
			}
		}
	}
	var states []stateCount
	for _, st := range api.OrderStates {
		if counts[st] > 0 {
			states = append(states, stateCount{State: string(st), N: counts[st]})
		}
	}
	ended := counts[api.OrderDone] + counts[api.OrderFailed] + counts[api.OrderCancelled]
	data := map[string]any{"Title": "Reimage " + r.PathValue("id"), "ID": r.PathValue("id"),
		"States": states, "Total": len(orders), "Done": counts[api.OrderDone], "Ended": ended,
		"Failed": failed, "NFailed": nFailed, "Live": len(orders) - ended, "Hosts": hosts, "All": all}
	if all {
		data["Orders"] = orders
	}
	c.render(w, r, "batch", s, data)
}

func (c *Console) batchOrders(ctx context.Context, cl *api.Client, id string) ([]api.Order, error) {
	var out []api.Order
	after := ""
	for {
		q := url.Values{"batch": {id}, "limit": {strconv.Itoa(apiPage)}}
		if after != "" {
			q.Set("after", after)
		}
		var l api.OrderList
		if err := cl.Do(ctx, http.MethodGet, "/orders", q, nil, &l); err != nil {
			return nil, err
		}
		out = append(out, l.Orders...)
		if after = l.Next; after == "" {
			break
		}
	}
	if len(out) == 0 {
		return nil, &api.Error{Code: http.StatusNotFound, Message: fmt.Sprintf("no orders of request %q", id)}
	}
	return out, nil
}

// batchAction cancels every live order of a batch, or retries its failed
// ones.
func (c *Console) batchAction(action string) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		ctx := r.Context()
		cl := c.client(s)
		id := r.PathValue("id")
		orders, err := c.batchOrders(ctx, cl, id)
		if err != nil {
			c.failed(w, r, s, err)
			return
		}
		n := 0
		for _, o := range orders {
			switch {
			case action == "cancel" && o.State.Live():
				_, err = cl.CancelOrder(ctx, o.ID)
			case action == "retry" && o.State == api.OrderFailed:
				_, err = cl.RetryOrder(ctx, o.ID)
			default:
				continue
			}
			if err != nil {
				c.failed(w, r, s, err)
				return
			}
			n++
		}
		c.redirectFlash(w, r, s, "/ui/batches/"+url.PathEscape(id), fmt.Sprintf("%s: %d orders", action, n))
	}
}

// orderAction cancels or retries one order, back to its target.
func (c *Console) orderAction(action string) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		cl := c.client(s)
		var o api.Order
		var err error
		if action == "cancel" {
			o, err = cl.CancelOrder(r.Context(), r.PathValue("id"))
		} else {
			o, err = cl.RetryOrder(r.Context(), r.PathValue("id"))
		}
		if err != nil {
			c.failed(w, r, s, err)
			return
		}
		c.redirectFlash(w, r, s, "/ui/targets/"+url.PathEscape(o.Target), fmt.Sprintf("order %s: %s (%s)", o.ID, action, o.State))
	}
}

// powerAction queues a power action on the target; its boot server runs
// it, and the target page shows the outcome live.
func (c *Console) powerAction(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	req := api.PowerActionRequest{Action: r.PostForm.Get("action"), NetworkBoot: r.PostForm.Get("network_boot") == "on"}
	pr, err := c.client(s).RequestPower(r.Context(), id, req)
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	msg := "power " + pr.Action + " queued for the site's boot server"
	if pr.NetworkBoot {
		msg += " (network boot next)"
	}
	c.redirectFlash(w, r, s, "/ui/targets/"+url.PathEscape(pr.Target), msg)
}

func (c *Console) acceptTarget(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	body := api.AcceptRequest{Hostname: strings.TrimSpace(r.PostForm.Get("hostname"))}
	var t api.Target
	if err := c.client(s).Do(r.Context(), http.MethodPost, "/targets/"+url.PathEscape(id)+"/accept", nil, body, &t); err != nil {
		c.failed(w, r, s, err)
		return
	}
	c.redirectFlash(w, r, s, "/ui/targets/"+url.PathEscape(t.ID), "accepted as "+t.Hostname)
}

func (c *Console) images(w http.ResponseWriter, r *http.Request, s *session) {
	cl := c.client(s)
	imgs, err := cl.ListImages(r.Context())
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	staged, err := stagedOn(r.Context(), cl)
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	c.render(w, r, "images", s, map[string]any{"Title": "Images", "Images": imgs, "Staged": staged})
}

// stagedOn maps an image id to the names of the boot servers whose last
// heartbeat said they hold all of it.
func stagedOn(ctx context.Context, cl *api.Client) (map[string][]string, error) {
	bss, err := cl.ListBootServers(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, b := range bss {
		for _, id := range b.StagedImages {
			out[id] = append(out[id], b.Name)
		}
	}
	return out, nil
}

func (c *Console) image(w http.ResponseWriter, r *http.Request, s *session) {
	cl := c.client(s)
	im, err := cl.GetImage(r.Context(), r.PathValue("id"))
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	staged, err := stagedOn(r.Context(), cl)
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	c.render(w, r, "image", s, map[string]any{"Title": "Image " + im.Name + " " + im.Version, "I": im, "StagedOn": staged[im.ID]})
}

func (c *Console) bootServers(w http.ResponseWriter, r *http.Request, s *session) {
	cl := c.client(s)
	bss, err := cl.ListBootServers(r.Context())
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	// Lag is against the MDB's revision: a boot server at it has every
	// change (a site without changes lately stays behind by the other
	// sites' changes only until its next sync answers).
	head, err := cl.Revision(r.Context(), 0, 0)
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	c.render(w, r, "bootservers", s, map[string]any{"Title": "Boot servers", "BootServers": bss, "Head": head,
		"Now": c.now()})
}

func (c *Console) events(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	f := api.EventFilter{Type: q.Get("type"), Target: q.Get("target"), Order: q.Get("order")}
	evs, err := c.lastEvents(r.Context(), c.client(s), f, 200)
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	c.render(w, r, "events", s, map[string]any{"Title": "Events", "Events": evs, "F": f})
}

func (c *Console) tokens(w http.ResponseWriter, r *http.Request, s *session) {
	toks, err := c.client(s).ListTokens(r.Context())
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	c.render(w, r, "tokens", s, map[string]any{"Title": "Tokens", "Tokens": toks, "Roles": []string{api.RoleViewer, api.RoleOperator, api.RoleAdmin, api.RoleJoin}})
}

// createToken shows the new secret once, on the answer page itself (never
// in a redirect URL or a flash).
func (c *Console) createToken(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	req := api.TokenRequest{Role: f.Get("role"), Name: strings.TrimSpace(f.Get("name")), Site: strings.TrimSpace(f.Get("site"))}
	info, err := c.client(s).CreateToken(r.Context(), req)
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	toks, err := c.client(s).ListTokens(r.Context())
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	c.render(w, r, "tokens", s, map[string]any{"Title": "Tokens", "Tokens": toks, "New": info,
		"Roles": []string{api.RoleViewer, api.RoleOperator, api.RoleAdmin, api.RoleJoin}})
}

func (c *Console) revokeToken(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if err := c.client(s).DeleteToken(r.Context(), id); err != nil {
		c.failed(w, r, s, err)
		return
	}
	c.sessions.dropToken(id)
	c.redirectFlash(w, r, s, "/ui/tokens", "token "+id+" revoked")
}
