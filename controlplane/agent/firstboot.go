package agent

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"osim/controlplane/api"
	"osim/dataplane/httpboot"
)

var _ httpboot.FirstBoots = (*Agent)(nil)

// Bounds of the first-boot report window: an order's token stays good
// for reports this long after the order was done, for at most this many
// done orders (the oldest go first). They live in memory only: a
// restarted boot server takes no reports for orders done before.
const (
	FirstBootWindow    = 24 * time.Hour
	MaxFirstBootOrders = 10000
)

// doneOrder is what a done order leaves for its first-boot reports.
type doneOrder struct {
	token, target string
	at            time.Time
}

// doneTokens remembers done orders' tokens for FirstBootWindow.
type doneTokens struct {
	mu    sync.Mutex
	by    map[string]doneOrder
	order []string // ids, oldest first
	// ended are orders that failed or were cancelled: a report for one
	// answers 410, not 404 (bounded like by).
	ended map[string]bool
}

// remember notes an order change: a done order's token is kept, an
// order that ended otherwise is only marked.
func (d *doneTokens) remember(c api.Change, now time.Time) {
	if c.Kind != api.ChangeOrder || c.Order == nil || !c.Order.State.Final() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.by == nil {
		d.by, d.ended = map[string]doneOrder{}, map[string]bool{}
	}
	if _, ok := d.by[c.ID]; ok || d.ended[c.ID] {
		return
	}
	if c.Order.State == api.OrderDone && c.Order.Token != "" {
		d.by[c.ID] = doneOrder{token: c.Order.Token, target: c.Order.Target, at: now}
	} else {
		d.ended[c.ID] = true
	}
	d.order = append(d.order, c.ID)
	for len(d.order) > MaxFirstBootOrders {
		delete(d.by, d.order[0])
		delete(d.ended, d.order[0])
		d.order = d.order[1:]
	}
}

func (d *doneTokens) get(id string) (doneOrder, bool, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.by[id]
	return o, ok, d.ended[id]
}

// FirstBootToken is the httpboot.FirstBoots: a live order's token (the
// installed system may report before the manager's done reached us), or
// a done one's within FirstBootWindow.
func (l *localView) FirstBootToken(_ context.Context, order string) (string, error) {
	l.mu.RLock()
	o, live := l.v.orders[order]
	l.mu.RUnlock()
	if live {
		return o.Token, nil
	}
	d, ok, ended := l.done.get(order)
	switch {
	case ended:
		return "", fmt.Errorf("%w: order %s failed or was cancelled", httpboot.ErrReportWindowClosed, order)
	case !ok:
		return "", fmt.Errorf("%w: %q", httpboot.ErrUnknownOrder, order)
	case l.clock.Now().Sub(d.at) > FirstBootWindow:
		return "", fmt.Errorf("%w: order %s was done at %s, over %s ago", httpboot.ErrReportWindowClosed, order, d.at.UTC().Format(time.RFC3339), FirstBootWindow)
	}
	return d.token, nil
}

// FirstBootReport is the httpboot.FirstBoots: a firstboot.result event.
func (l *localView) FirstBootReport(_ context.Context, r httpboot.FirstBootReport) error {
	target := ""
	l.mu.RLock()
	if o, ok := l.v.orders[r.Order]; ok {
		target = o.Target
	}
	l.mu.RUnlock()
	if d, ok, _ := l.done.get(r.Order); ok {
		target = d.target
	}
	return l.q.Emit(api.Event{Type: api.EventFirstBoot, Order: r.Order, Target: target, Time: r.Time,
		Message: fmt.Sprintf("first-boot procedure %s exited %d", r.Procedure, r.ExitCode),
		Data: map[string]string{"procedure": r.Procedure, "exit_code": strconv.Itoa(r.ExitCode),
			"output_tail": r.OutputTail, "client": r.Client}})
}
