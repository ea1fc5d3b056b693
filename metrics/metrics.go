// Package metrics holds the shared Prometheus plumbing: one registry per
// process and the HTTP handler that exposes it at /metrics.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"osim/internal/buildinfo"
)

// Namespace prefixes every metric of the project: osim_<subsystem>_<name>_<unit>.
const Namespace = "osim"

// NewRegistry returns the process's registry with the Go runtime and process
// collectors and osim_build_info already registered. Subsystems register
// their own collectors on it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if err := buildinfo.Register(reg); err != nil {
		panic(err) // a fresh registry: only a programming error gets here
	}
	return reg
}

// Handler serves the registry in the Prometheus exposition formats.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
}

// Mux returns a ServeMux with /metrics and a trivial /healthz.
func Mux(g prometheus.Gatherer) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler(g))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Serve listens on addr and serves /metrics until ctx ends. It returns once
// the listener is bound (so a bad address fails fast) and serves in the
// background; the returned address is the bound one (useful with port 0).
func Serve(ctx context.Context, addr string, g prometheus.Gatherer, log *slog.Logger) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %q: %w", addr, err)
	}
	srv := &http.Server{Handler: Mux(g), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return ln.Addr(), nil
}
