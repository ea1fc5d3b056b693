package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"osim/controlplane/api"
)

// fakeManager implements the routes the agent calls, with a change log it
// can truncate (so since=N becomes a snapshot answer), snapshot pages
// that can fail, event dedupe by origin_seq and blobs with Range.
type fakeManager struct {
	t   *testing.T
	srv *httptest.Server

	mu         sync.Mutex
	rev        uint64
	changes    []api.Change // the log, oldest first
	minRev     uint64       // since < minRev is too old: snapshot
	targets    map[string]api.Target
	orders     map[string]api.Order
	images     map[string]api.Image
	notify     chan struct{}
	pageSize   int
	failPage   int // snapshot page number (2, 3, …) answered 500
	down       bool
	reject     string // event type answered 422 (the whole batch)
	registers  int
	heartbeats int
	// lastHeartbeat is the body of the last heartbeat; managerInterval
	// what the answers announce as the manager's interval (0: none).
	lastHeartbeat   api.Heartbeat
	managerInterval float64
	taken           int // registrations answered 409 (name taken) before one succeeds
	syncSince       []uint64
	syncLimits      []int
	events          map[uint64]api.Event
	received        int // events received (duplicates included)
	blobs           map[string][]byte
	corrupt         map[string]bool
	ranges          []string
}

const (
	joinToken = "join-secret"
	bsToken   = "bs-secret"
)

func newFakeManager(t *testing.T) *fakeManager {
	f := &fakeManager{t: t, targets: map[string]api.Target{}, orders: map[string]api.Order{}, images: map[string]api.Image{},
		notify: make(chan struct{}), pageSize: 2, events: map[uint64]api.Event{}, blobs: map[string][]byte{}, corrupt: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/bootservers/register", f.register)
	mux.HandleFunc("POST /api/v1/bootservers/heartbeat", f.auth(func(w http.ResponseWriter, r *http.Request) {
		var hb api.Heartbeat
		if err := json.NewDecoder(r.Body).Decode(&hb); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		f.mu.Lock()
		f.heartbeats++
		f.lastHeartbeat = hb
		every := f.managerInterval
		f.mu.Unlock()
		writeJSON(w, 200, api.BootServer{ID: "bs-1", ManagerHeartbeatInterval: every})
	}))
	mux.HandleFunc("GET /api/v1/sync", f.auth(f.sync))
	mux.HandleFunc("POST /api/v1/events", f.auth(f.upload))
	mux.HandleFunc("GET /api/v1/blobs/{sha}", f.auth(f.blob))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeManager) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		down := f.down
		f.mu.Unlock()
		if down {
			writeJSON(w, 503, api.Error{Code: 503, Message: "manager down"})
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+bsToken {
			writeJSON(w, 401, api.Error{Code: 401, Message: "bad token"})
			return
		}
		h(w, r)
	}
}

func (f *fakeManager) register(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+joinToken {
		writeJSON(w, 401, api.Error{Code: 401, Message: "bad join token"})
		return
	}
	var req api.RegisterRequest
	_ = json.NewDecoder(r.Body).Decode(&req)
	f.mu.Lock()
	if f.taken > 0 {
		f.taken--
		f.mu.Unlock()
		writeJSON(w, 409, api.Error{Code: 409, Message: "boot server name " + req.Name + " is taken by bs-0"})
		return
	}
	f.registers++
	f.mu.Unlock()
	writeJSON(w, 200, api.RegisterResponse{BootServer: api.BootServer{ID: "bs-1", Name: req.Name, Site: req.Site}, Token: bsToken})
}

// put records a change at a new revision and wakes long-polls.
func (f *fakeManager) put(c api.Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rev++
	c.Rev = f.rev
	switch c.Kind {
	case api.ChangeTarget:
		if c.Deleted {
			delete(f.targets, c.ID)
		} else {
			c.Target.Revision = c.Rev
			f.targets[c.ID] = *c.Target
		}
	case api.ChangeOrder:
		if c.Deleted || c.Order.State.Final() {
			delete(f.orders, c.ID)
		} else {
			c.Order.Revision = c.Rev
			f.orders[c.ID] = *c.Order
		}
	case api.ChangeImage:
		if c.Deleted {
			delete(f.images, c.ID)
		} else {
			c.Image.Revision = c.Rev
			f.images[c.ID] = *c.Image
		}
	}
	f.changes = append(f.changes, c)
	close(f.notify)
	f.notify = make(chan struct{})
}

func (f *fakeManager) putTarget(t api.Target) {
	f.put(api.Change{Kind: api.ChangeTarget, ID: t.ID, Target: &t})
}
func (f *fakeManager) putOrder(o api.Order) {
	f.put(api.Change{Kind: api.ChangeOrder, ID: o.ID, Order: &o})
}
func (f *fakeManager) putImage(i api.Image) {
	f.put(api.Change{Kind: api.ChangeImage, ID: i.ID, Image: &i})
}
func (f *fakeManager) del(kind, id string) { f.put(api.Change{Kind: kind, ID: id, Deleted: true}) }

// truncate forgets the log: every since below the current revision now
// gets a snapshot.
func (f *fakeManager) truncate() {
	f.mu.Lock()
	f.minRev = f.rev
	f.changes = nil
	f.mu.Unlock()
}

func (f *fakeManager) set(fn func(f *fakeManager)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// view returns the manager's view sorted by id, like Agent.View.
func (f *fakeManager) view() ([]api.Target, []api.Order, []api.Image, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ts := sortedValues(f.targets)
	os := sortedValues(f.orders)
	is := sortedValues(f.images)
	return ts, os, is, f.rev
}

func sortedValues[V any](m map[string]V) []V {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []V
	for _, k := range keys {
		out = append(out, m[k])
	}
	return out
}

func (f *fakeManager) snapshotPage(rev uint64, off int) api.SyncResponse {
	var all []api.Change
	for _, i := range sortedValues(f.images) {
		all = append(all, api.Change{Rev: i.Revision, Kind: api.ChangeImage, ID: i.ID, Image: &i})
	}
	for _, t := range sortedValues(f.targets) {
		all = append(all, api.Change{Rev: t.Revision, Kind: api.ChangeTarget, ID: t.ID, Target: &t})
	}
	for _, o := range sortedValues(f.orders) {
		all = append(all, api.Change{Rev: o.Revision, Kind: api.ChangeOrder, ID: o.ID, Order: &o})
	}
	end := min(off+f.pageSize, len(all))
	resp := api.SyncResponse{Revision: rev, Snapshot: true, Changes: all[off:end]}
	if end < len(all) {
		resp.Cursor = fmt.Sprintf("%d:%d", rev, end)
	}
	return resp
}

func (f *fakeManager) sync(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	if cur := q.Get("snapshot"); cur != "" {
		var rev uint64
		var off int
		fmt.Sscanf(cur, "%d:%d", &rev, &off)
		page := off/f.pageSize + 1
		if page == f.failPage {
			f.mu.Unlock()
			writeJSON(w, 500, api.Error{Code: 500, Message: "snapshot page failed"})
			return
		}
		resp := f.snapshotPage(rev, off)
		f.mu.Unlock()
		writeJSON(w, 200, resp)
		return
	}
	since, _ := strconv.ParseUint(q.Get("since"), 10, 64)
	f.syncSince = append(f.syncSince, since)
	if since == 0 || since < f.minRev {
		resp := f.snapshotPage(f.rev, 0)
		f.mu.Unlock()
		writeJSON(w, 200, resp)
		return
	}
	wait, _ := time.ParseDuration(q.Get("wait"))
	deadline := time.After(wait)
	for f.rev <= since {
		ch := f.notify
		f.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			writeJSON(w, 200, api.SyncResponse{Revision: since, Changes: []api.Change{}})
			return
		case <-r.Context().Done():
			return
		}
		f.mu.Lock()
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	f.syncLimits = append(f.syncLimits, limit)
	resp := api.SyncResponse{Revision: f.rev}
	for _, c := range f.changes {
		if c.Rev <= since {
			continue
		}
		if limit > 0 && len(resp.Changes) == limit { // one change per revision: whole revisions
			resp.Revision = resp.Changes[limit-1].Rev
			break
		}
		resp.Changes = append(resp.Changes, c)
	}
	f.mu.Unlock()
	writeJSON(w, 200, resp)
}

func (f *fakeManager) upload(w http.ResponseWriter, r *http.Request) {
	var b api.EventBatch
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		writeJSON(w, 400, api.Error{Code: 400, Message: err.Error()})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range b.Events {
		if f.reject != "" && e.Type == f.reject {
			writeJSON(w, 422, api.Error{Code: 422, Message: "events: type " + e.Type + " is not known"})
			return
		}
	}
	var ack api.EventAck
	for _, e := range b.Events {
		f.received++
		if _, dup := f.events[e.OriginSeq]; dup {
			ack.Duplicates++
		} else {
			f.events[e.OriginSeq] = e
			ack.Accepted++
		}
		ack.LastSeq = max(ack.LastSeq, e.OriginSeq)
	}
	writeJSON(w, 200, ack)
}

func (f *fakeManager) blob(w http.ResponseWriter, r *http.Request) {
	sha := r.PathValue("sha")
	f.mu.Lock()
	data, ok := f.blobs[sha]
	if f.corrupt[sha] {
		data = slices.Clone(data)
		data[len(data)/2] ^= 0xff
	}
	f.ranges = append(f.ranges, r.Header.Get("Range"))
	f.mu.Unlock()
	if !ok {
		writeJSON(w, 404, api.Error{Code: 404, Message: "no blob " + sha})
		return
	}
	if rg := r.Header.Get("Range"); rg != "" {
		off, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
		if err != nil || off >= len(data) {
			writeJSON(w, 416, api.Error{Code: 416, Message: "bad range " + rg})
			return
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, len(data)-1, len(data)))
		w.WriteHeader(http.StatusPartialContent)
		_, _ = w.Write(data[off:])
		return
	}
	_, _ = w.Write(data)
}

func (f *fakeManager) eventsOf(typ string) []api.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Event
	for _, e := range sortedEvents(f.events) {
		if typ == "" || e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func sortedEvents(m map[uint64]api.Event) []api.Event {
	var out []api.Event
	for _, e := range m {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b api.Event) int { return int(a.OriginSeq) - int(b.OriginSeq) })
	return out
}
