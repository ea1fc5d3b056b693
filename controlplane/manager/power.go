package manager

import (
	"context"
	"net/http"
	"time"

	"osim/controlplane/api"
	"osim/internal/clock"
)

// powerStore is the part of the store that queues power requests (mdb.DB
// implements it).
type powerStore interface {
	CreatePowerRequest(ctx context.Context, target string, req api.PowerActionRequest, by string) (api.PowerRequest, error)
	GetPowerRequest(ctx context.Context, id string) (api.PowerRequest, error)
	ListPowerRequests(ctx context.Context, target string) ([]api.PowerRequest, error)
	ClaimPower(ctx context.Context, bs, site string, lease time.Duration, max int) ([]api.PowerRequest, error)
	PowerPending(ctx context.Context, site string) (bool, time.Time, error)
	WaitPower(ctx context.Context) error
	FinishPower(ctx context.Context, bs, id string, r api.PowerResult) (api.PowerRequest, error)
}

// Power queue limits.
const (
	powerLease    = 5 * time.Minute // a boot server's time to run a claimed request
	powerClaimMax = 16
)

func (s *Server) powerQueue(w http.ResponseWriter, r *http.Request) (powerStore, bool) {
	return storePart[powerStore](s, w, r, "power queue")
}

// requestPower answers POST /targets/{id}/power: 202 with the queued
// request; the site's boot server runs it.
func (s *Server) requestPower(w http.ResponseWriter, r *http.Request, p *principal) {
	ps, ok := s.powerQueue(w, r)
	if !ok {
		return
	}
	t, err := s.resolveTarget(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req api.PowerActionRequest
	if err := decode(w, r, s.cfg.MaxBody, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	pr, err := ps.CreatePowerRequest(r.Context(), t.ID, req, p.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("power requested", "request", pr.ID, "target", t.ID, "action", pr.Action, "network_boot", pr.NetworkBoot, "by", p.ID)
	writeJSON(w, http.StatusAccepted, pr)
}

func (s *Server) listPower(w http.ResponseWriter, r *http.Request, _ *principal) {
	ps, ok := s.powerQueue(w, r)
	if !ok {
		return
	}
	t, err := s.resolveTarget(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	l, err := ps.ListPowerRequests(r.Context(), t.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if l == nil {
		l = []api.PowerRequest{}
	}
	writeJSON(w, http.StatusOK, l)
}

func (s *Server) getPower(w http.ResponseWriter, r *http.Request, _ *principal) {
	ps, ok := s.powerQueue(w, r)
	if !ok {
		return
	}
	pr, err := ps.GetPowerRequest(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pr)
}

// claimPower answers GET /power/claim?wait=D to a boot server: the
// requests of its site it should run now (leased to it), waiting up to
// D for one.
func (s *Server) claimPower(w http.ResponseWriter, r *http.Request, p *principal) {
	ps, ok := s.powerQueue(w, r)
	if !ok {
		return
	}
	id, err := callerBootServer(p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	bs, err := s.store.GetBootServer(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	wait, err := queryWait(r, s.cfg.SyncWaitMax)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := clock.WithTimeout(r.Context(), s.cfg.Clock, wait)
	defer cancel()
	for {
		pending, next, err := ps.PowerPending(r.Context(), bs.Site)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if pending {
			l, err := ps.ClaimPower(r.Context(), id, bs.Site, powerLease, powerClaimMax)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			if len(l) > 0 {
				writeJSON(w, http.StatusOK, l)
				return
			}
		}
		wctx, wcancel := ctx, context.CancelFunc(func() {})
		if !next.IsZero() {
			// A lease running out is no store change: wake for it.
			wctx, wcancel = clock.WithTimeout(ctx, s.cfg.Clock, next.Sub(s.now())+time.Millisecond)
		}
		if wait <= 0 {
			wcancel()
			writeJSON(w, http.StatusOK, []api.PowerRequest{})
			return
		}
		ps.WaitPower(wctx) // a change, a lease's end, or the wait's
		wcancel()
		if ctx.Err() != nil {
			writeJSON(w, http.StatusOK, []api.PowerRequest{})
			return
		}
	}
}

// powerResult answers POST /power/{id}/result from the boot server that
// holds the request.
func (s *Server) powerResult(w http.ResponseWriter, r *http.Request, p *principal) {
	ps, ok := s.powerQueue(w, r)
	if !ok {
		return
	}
	id, err := callerBootServer(p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var res api.PowerResult
	if err := decode(w, r, s.cfg.MaxBody, &res); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(res.Message) > 1024 {
		res.Message = res.Message[:1024]
	}
	pr, err := ps.FinishPower(r.Context(), id, r.PathValue("id"), res)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("power result", "request", pr.ID, "target", pr.Target, "state", pr.State, "boot_server", id, "message", pr.Message)
	writeJSON(w, http.StatusOK, pr)
}
