package manager

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
	"osim/metrics"
)

// DefaultMaxOrderShare is Config.MaxOrderShare when it is zero: a
// selector may order at most half of a site's targets without "all".
const DefaultMaxOrderShare = 0.5

type orderMetrics struct {
	refused *prometheus.CounterVec
	resumed prometheus.Counter
}

// initOrders checks the order settings, registers the order metrics and
// finishes the order batches a crash left open, before anything is
// served: from then on every order request is all or nothing.
func (s *Server) initOrders() error {
	if s.cfg.MaxOrderShare == 0 {
		s.cfg.MaxOrderShare = DefaultMaxOrderShare
	}
	if s.cfg.MaxOrderShare < 0 || s.cfg.MaxOrderShare > 1 {
		return fmt.Errorf("manager: Config.MaxOrderShare %g is not in (0, 1]", s.cfg.MaxOrderShare)
	}
	m := &orderMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: subsystem, Name: "order_requests_refused_total",
			Help: "Order requests refused by the share guard (needs_all: the selector matches every target, or more than the max order share of a site, without \"all\").",
		}, []string{"reason"}),
		resumed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: subsystem, Name: "order_batches_resumed_total",
			Help: "Order batches left open by a crash and finished at start.",
		}),
	}
	m.refused.WithLabelValues("needs_all")
	if s.cfg.Registry != nil {
		for _, c := range []prometheus.Collector{m.refused, m.resumed} {
			if err := s.cfg.Registry.Register(c); err != nil {
				return err
			}
		}
	}
	s.orders = m
	n, err := s.store.ResumeOrderBatches(context.Background())
	if err != nil {
		return fmt.Errorf("manager: finishing open order batches: %w", err)
	}
	if n > 0 {
		s.log.Warn("order batches left open by a crash finished", "batches", n)
	}
	m.resumed.Add(float64(n))
	return nil
}

// userOrder hides the installer's status token and the values of secret
// parameters from user-facing answers.
func userOrder(o api.Order) api.Order {
	o.Token = ""
	return api.RedactOrder(o)
}

func userOrders(os []api.Order) []api.Order {
	out := make([]api.Order, len(os))
	for i, o := range os {
		out[i] = userOrder(o)
	}
	return out
}

// createOrders places an order request: 201 with the orders, 200 with
// the orders of an identical earlier request (replayed), or for a dry run
// 200 with the plan.
func (s *Server) createOrders(w http.ResponseWriter, r *http.Request, p *principal) {
	var req api.OrderRequest
	if err := decode(w, r, s.cfg.MaxBody, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	n := 0
	for _, set := range []bool{req.Target != "", len(req.Targets) > 0, req.Selector != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		s.fail(w, r, errorf(http.StatusBadRequest, "exactly one of target, targets, selector must be set (got %d)", n))
		return
	}
	if req.Image == "" {
		s.fail(w, r, errorf(http.StatusBadRequest, "image: required"))
		return
	}
	if err := s.checkOrderParams(r.Context(), req); err != nil {
		s.fail(w, r, err)
		return
	}
	// The store guards by what the selector matches, not its spelling.
	res, err := s.store.PlaceOrders(r.Context(), req, mdb.OrderOptions{MaxShare: s.cfg.MaxOrderShare})
	if err != nil {
		if errors.Is(err, mdb.ErrNeedsAll) {
			s.orders.refused.WithLabelValues("needs_all").Inc()
			s.log.Warn("order request refused: needs all", "selector", req.Selector, "by", p.ID, "err", err)
		}
		s.fail(w, r, err)
		return
	}
	if req.DryRun {
		writeJSON(w, http.StatusOK, res.Plan)
		return
	}
	out := api.OrderList{Orders: userOrders(res.Orders), RequestID: res.RequestID, Replayed: res.Replayed}
	if res.Replayed {
		s.log.Info("order request replayed", "request", res.RequestID, "count", len(res.Orders), "by", p.ID)
		writeJSON(w, http.StatusOK, out)
		return
	}
	out.Warnings = s.orderWarnings(r.Context(), res.Orders, res.RequestID) // orderwarn.go
	s.log.Info("orders created", "request", res.RequestID, "count", len(res.Orders), "image", req.Image,
		"selector", req.Selector, "all", req.All, "by", p.ID)
	writeJSON(w, http.StatusCreated, out)
}

// orderCounts answers GET /orders/counts: how many orders are in each
// state (every state named, zeros too), from the store's counters.
func (s *Server) orderCounts(w http.ResponseWriter, r *http.Request, _ *principal) {
	n, err := s.store.CountOrders(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make(map[api.OrderState]int, len(api.OrderStates))
	for _, st := range api.OrderStates {
		out[st] = n[st]
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listOrders(w http.ResponseWriter, r *http.Request, _ *principal) {
	pg, err := page(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	qv := r.URL.Query()
	q := mdb.OrderQuery{Page: pg, State: api.OrderState(qv.Get("state")), Target: qv.Get("target"), Site: qv.Get("site"), Batch: qv.Get("batch")}
	if q.State != "" && !q.State.Valid() {
		states := make([]string, len(api.OrderStates))
		for i, st := range api.OrderStates {
			states[i] = string(st)
		}
		s.fail(w, r, errorf(http.StatusBadRequest, "query state: %q is not one of %s", q.State, strings.Join(states, ", ")))
		return
	}
	orders, next, err := s.store.ListOrders(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.OrderList{Orders: userOrders(orders), Next: next})
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request, _ *principal) {
	o, err := s.store.GetOrder(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, userOrder(o))
}

func (s *Server) cancelOrder(w http.ResponseWriter, r *http.Request, p *principal) {
	reason := "cancelled by " + tokenLabel(p)
	o, err := s.store.Transition(r.Context(), r.PathValue("id"), api.OrderCancelled, reason)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("order cancelled", "order", o.ID, "by", p.ID)
	writeJSON(w, http.StatusOK, userOrder(o))
}

func (s *Server) retryOrder(w http.ResponseWriter, r *http.Request, p *principal) {
	o, err := s.store.Retry(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("order retried", "order", o.ID, "attempt", o.Attempt, "by", p.ID)
	writeJSON(w, http.StatusOK, userOrder(o))
}
