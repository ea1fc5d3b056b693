package console

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"osim/controlplane/api"
)

// Live updates. A page opens one EventSource on /ui/stream. The console
// follows two long-polls with the session's token: the MDB's revision
// (GET /api/v1/revision: every change to targets, images, orders, the
// change stream boot servers sync from) and the event list (GET
// /api/v1/events?wait=: DHCP, TFTP, HTTP and installer events, which
// change no record). It sends one "change" message per LiveInterval at
// most, naming what moved; console.js turns it into htmx refreshes of the
// page's live parts. A burst of thousands of changes is one refresh, and
// no page polls.
const (
	streamPoll      = 25 * time.Second // one long-poll
	streamKeepalive = 15 * time.Second // a comment line keeps proxies from closing the stream
	// streamRecheck is how often an open stream checks that its session
	// and token still stand (a token revoked through the API or osimctl
	// ends its streams within this).
	streamRecheck = 5 * time.Second
)

// streamSignal is what one of the long-polls saw: kinds that moved, or
// the error that ended it.
type streamSignal struct {
	kinds []string
	err   error
}

func (c *Console) stream(w http.ResponseWriter, r *http.Request, s *session) {
	rc := http.NewResponseController(w)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	cl := c.client(s)
	// Start where the manager is now: the page was rendered just now
	// (and console.js refreshes once when the stream opens).
	head, err := cl.ListEvents(ctx, 0, api.EventFilter{Limit: 1, Newest: true})
	var rev uint64
	if err == nil {
		rev, err = cl.Revision(ctx, 0, 0)
	}
	if err != nil {
		code, msg := apiError(err)
		http.Error(w, fmt.Sprintf("console: stream: %d %s", code, msg), code)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	fmt.Fprintf(w, "retry: 5000\n: osim console stream from event %d, revision %d\n\n", head.Last, rev)
	if rc.Flush() != nil {
		return
	}
	sig := make(chan streamSignal, 16)
	send := func(v streamSignal) bool {
		select {
		case sig <- v:
			return true
		case <-ctx.Done():
			return false
		}
	}
	go func() { // events
		after := head.Last
		for ctx.Err() == nil {
			l, err := cl.ListEvents(ctx, after, api.EventFilter{Limit: 1000, Wait: streamPoll})
			if err != nil {
				send(streamSignal{err: err})
				return
			}
			if len(l.Events) == 0 {
				continue
			}
			kinds := map[string]bool{}
			for _, e := range l.Events {
				if safeKind(e.Type) {
					kinds[e.Type] = true // what a boot server names goes onto the stream's data line
				} else {
					kinds["event"] = true
				}
			}
			after = l.Last
			if !send(streamSignal{kinds: sorted(kinds)}) {
				return
			}
		}
	}()
	go func() { // the MDB's revision
		after := rev
		for ctx.Err() == nil {
			n, err := cl.Revision(ctx, after, streamPoll)
			if err != nil {
				send(streamSignal{err: err})
				return
			}
			if n > after {
				after = n
				if !send(streamSignal{kinds: []string{"revision"}}) {
					return
				}
			}
		}
	}()
	keep := time.NewTicker(streamKeepalive)
	defer keep.Stop()
	recheck := time.NewTicker(streamRecheck)
	defer recheck.Stop()
	lastSent := time.Time{}
	for {
		var first streamSignal
		select {
		case <-ctx.Done():
			return
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
			continue
		case <-recheck.C:
			if !c.sessionStands(ctx, s) {
				c.streamGone(w, rc, &api.Error{Code: http.StatusUnauthorized, Message: "the session ended or its token was revoked"})
				return
			}
			continue
		case first = <-sig:
		}
		if first.err != nil {
			c.streamGone(w, rc, first.err)
			return
		}
		kinds := map[string]bool{}
		for _, k := range first.kinds {
			kinds[k] = true
		}
		// Coalesce: wait out the rest of the interval, taking in what
		// arrives meanwhile.
		if wait := c.cfg.LiveInterval - c.now().Sub(lastSent); wait > 0 {
			timer := time.NewTimer(wait)
		collect:
			for {
				select {
				case <-ctx.Done():
					timer.Stop()
					return
				case v := <-sig:
					if v.err != nil {
						timer.Stop()
						c.streamGone(w, rc, v.err)
						return
					}
					for _, k := range v.kinds {
						kinds[k] = true
					}
				case <-timer.C:
					break collect
				}
			}
		}
		if _, err := fmt.Fprintf(w, "event: change\ndata: %s\n\n", strings.Join(sorted(kinds), " ")); err != nil || rc.Flush() != nil {
			return
		}
		lastSent = c.now()
	}
}

// sessionStands reports whether s is still a live session of an existing
// token.
func (c *Console) sessionStands(ctx context.Context, s *session) bool {
	c.sessions.mu.Lock()
	live := c.sessions.m[s.id] == s && c.now().Before(s.expires)
	c.sessions.mu.Unlock()
	if !live {
		return false
	}
	ok, err := c.tokenStands(ctx, s)
	return ok || err != nil // a store hiccup does not end a stream; a revoked token does
}

// streamGone tells the page the stream ended for good (a revoked token,
// say): it stops reconnecting.
func (c *Console) streamGone(w http.ResponseWriter, rc *http.ResponseController, err error) {
	code, msg := apiError(err)
	if code == 499 {
		return
	}
	fmt.Fprintf(w, "event: gone\ndata: %d %s\n\n", code, strings.Join(strings.Fields(msg), " "))
	rc.Flush()
}

// safeKind: an event type that may go onto an SSE data line as it is.
func safeKind(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for _, c := range k {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func sorted(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
