package console

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"osim/controlplane/api"
)

// Live updates. A page opens one EventSource on /ui/stream; the console
// long-polls the manager's event stream (GET /api/v1/events?wait=, the
// change feed boot servers' events and every order transition land in)
// with the session's token and sends one "change" message per
// LiveInterval at most, naming the event types seen. console.js turns a
// message into htmx refreshes of the page's live parts, so a burst of
// thousands of events is one refresh, and no page polls.
const (
	streamPoll      = 25 * time.Second // one long-poll of the event list
	streamKeepalive = 15 * time.Second // a comment line keeps proxies from closing the stream
)

func (c *Console) stream(w http.ResponseWriter, r *http.Request, s *session) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	ctx := r.Context()
	cl := c.client(s)
	// Start at the newest event: the page was rendered just now.
	head, err := cl.ListEvents(ctx, 0, api.EventFilter{Limit: 1, Newest: true})
	if err != nil {
		code, msg := apiError(err)
		http.Error(w, fmt.Sprintf("console: stream: %d %s", code, msg), code)
		return
	}
	after := head.Last
	fmt.Fprintf(w, "retry: 5000\n: osim console stream from event %d\n\n", after)
	if err := rc.Flush(); err != nil {
		return
	}
	lastSent := time.Time{}
	for ctx.Err() == nil {
		l, err := cl.ListEvents(ctx, after, api.EventFilter{Limit: 1000, Wait: streamPoll})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			code, msg := apiError(err)
			fmt.Fprintf(w, "event: gone\ndata: %d %s\n\n", code, strings.Join(strings.Fields(msg), " "))
			rc.Flush()
			return
		}
		if len(l.Events) == 0 {
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
			continue
		}
		types := map[string]bool{}
		for _, e := range l.Events {
			types[e.Type] = true
			after = e.Seq
		}
		// Coalesce: wait out the rest of the interval, taking in what
		// arrives meanwhile (without waiting on the manager).
		if wait := c.cfg.LiveInterval - c.now().Sub(lastSent); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			if more, err := cl.ListEvents(ctx, after, api.EventFilter{Limit: 1000}); err == nil {
				for _, e := range more.Events {
					types[e.Type] = true
					after = e.Seq
				}
			}
		}
		if _, err := fmt.Fprintf(w, "event: change\nid: %d\ndata: %s\n\n", after, typeList(types)); err != nil || rc.Flush() != nil {
			return
		}
		lastSent = c.now()
	}
}

func typeList(m map[string]bool) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}
