package httpboot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Plans answers the osim installer's install plan for a live order: on a
// boot server the agent, from its local view (an api.InstallPlan; this
// package only encodes it, a dataplane package imports no controlplane
// type). base is the boot server's absolute HTTP base, for the plan's
// file and status URLs. Errors: ErrUnknownOrder (404), ErrNoPlan (409),
// ErrBadPlanInput (422); anything else is 503.
type Plans interface {
	Plan(ctx context.Context, order, base string) (any, error)
}

// Sentinel errors of a Plans backend.
var (
	// ErrNoPlan: the order is known but has no plan now (not a disk
	// image, or not in a state that boots the installer).
	ErrNoPlan = errors.New("no install plan")
	// ErrBadPlanInput: the order's parameters do not make a plan (a disk
	// size that is not a size); the error names the parameter.
	ErrBadPlanInput = errors.New("bad install parameters")
)

// maxPlanBytes bounds an encoded plan (procedures are at most 64 KiB each).
const maxPlanBytes = 4 << 20

// serveInstall answers GET /install/{order}: the same bearer token and
// address binding as POST /status, then the order's plan as JSON, never
// cached. The token is never logged.
func (h *Handler) serveInstall(w http.ResponseWriter, r *http.Request) {
	order := r.PathValue("order")
	w.Header().Set("Cache-Control", "no-store")
	if h.plans == nil {
		h.metrics.installPlans.WithLabelValues("disabled").Inc()
		http.Error(w, "httpboot: this boot server serves no install plans", http.StatusNotFound)
		return
	}
	if err := checkOrder(order); err != nil {
		h.metrics.installPlans.WithLabelValues("refused").Inc()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if herr := h.authorize(w, r, order); herr != nil {
		outcome := "refused"
		if herr.code == http.StatusNotFound {
			outcome = "unknown_order"
		}
		h.metrics.installPlans.WithLabelValues(outcome).Inc()
		if ok, suppressed := h.refusals.allow("install/"+herr.reason, h.clock.Now()); ok {
			h.log.Warn("install plan refused", "order", order, "client", r.RemoteAddr, "reason", herr.reason,
				"code", herr.code, "suppressed", suppressed)
		}
		http.Error(w, herr.msg, herr.code)
		return
	}
	plan, err := h.plans.Plan(r.Context(), order, h.absoluteBase(r))
	if err != nil {
		code, outcome := backendError(err, ErrNoPlan, ErrBadPlanInput)
		h.metrics.installPlans.WithLabelValues(outcome).Inc()
		h.log.Warn("install plan not served", "order", order, "client", r.RemoteAddr, "outcome", outcome, "err", err)
		http.Error(w, fmt.Sprintf("httpboot: install plan for order %q: %v", order, err), code)
		return
	}
	body, err := json.Marshal(plan)
	if err == nil && len(body) > maxPlanBytes {
		err = fmt.Errorf("%d bytes, over %d", len(body), maxPlanBytes)
	}
	if err != nil {
		h.metrics.installPlans.WithLabelValues("error").Inc()
		h.log.Warn("install plan not encoded", "order", order, "err", err)
		http.Error(w, fmt.Sprintf("httpboot: install plan for order %q: %v", order, err), http.StatusInternalServerError)
		return
	}
	h.metrics.installPlans.WithLabelValues("served").Inc()
	h.log.Info("install plan", "order", order, "client", r.RemoteAddr, "bytes", len(body))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// backendError maps what a per-order backend (Plans, Answers) answered
// to a code and an outcome label: unknown order 404, conflict (the order
// has nothing of that kind now) 409, invalid (its data cannot render) 422,
// anything else 503.
func backendError(err, conflict, invalid error) (code int, outcome string) {
	switch {
	case errors.Is(err, ErrUnknownOrder):
		return http.StatusNotFound, "unknown_order"
	case errors.Is(err, conflict):
		return http.StatusConflict, "conflict"
	case errors.Is(err, invalid):
		return http.StatusUnprocessableEntity, "invalid"
	}
	return http.StatusServiceUnavailable, "error"
}

// absoluteBase is the configured base URL, or the one the request came
// to when none is configured (standalone runs): a plan's URLs are used
// by a program, never resolved against a page.
func (h *Handler) absoluteBase(r *http.Request) string {
	if h.base != "" {
		return h.base
	}
	return requestBase(r)
}

// requestBase is http(s)://<Host> of r.
func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
