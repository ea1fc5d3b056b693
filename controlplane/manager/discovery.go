package manager

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"osim/controlplane/api"
	"osim/metrics"
)

// Discovery on the manager: boot servers' target.discovered events
// register discovered targets and boot.loop events mark targets, both in
// the store's event ingest (mdb/discovered.go); here are the accept
// route and the metric.

// acceptor is the part of the store that accepts discovered targets.
type acceptor interface {
	AcceptTarget(ctx context.Context, id string, req api.AcceptRequest) (api.Target, error)
}

// acceptTarget answers POST /api/v1/targets/{id}/accept: a discovered
// target becomes a normal one with the request's hostname and labels.
func (s *Server) acceptTarget(w http.ResponseWriter, r *http.Request, _ *principal) {
	var req api.AcceptRequest
	if err := decode(w, r, s.cfg.MaxBody, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := req.Validate(); err != nil {
		s.fail(w, r, errorf(http.StatusBadRequest, "%v", err))
		return
	}
	t, err := s.resolveTarget(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	acc, ok := s.store.(acceptor)
	if !ok {
		s.fail(w, r, errorf(http.StatusNotImplemented, "this store cannot accept discovered targets"))
		return
	}
	if t, err = acc.AcceptTarget(r.Context(), t.ID, req); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("discovered target accepted", "target", t.ID, "hostname", t.Hostname, "site", t.Site)
	writeJSON(w, http.StatusOK, t)
}

// registerDiscoveryMetrics adds osim_manager_targets_discovered_total,
// read from the store when it counts (mdb.DB does).
func (s *Server) registerDiscoveryMetrics(reg prometheus.Registerer) error {
	c, ok := s.store.(interface{ TargetsDiscovered() uint64 })
	if reg == nil || !ok {
		return nil
	}
	return reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Subsystem: subsystem, Name: "targets_discovered_total",
		Help: "Targets registered by discovery (target.discovered events of unknown MACs) since the manager started.",
	}, func() float64 { return float64(c.TargetsDiscovered()) }))
}
