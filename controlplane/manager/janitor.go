package manager

import (
	"context"
	"time"
)

// Run applies the retention every JanitorInterval until ctx ends: events
// past EventMaxAge or EventMaxCount, finished power requests older than
// EventMaxAge (their events go then too) and unfinished uploads idle
// longer than UploadTTL are deleted; and it runs the rollout engine.
// cmd/osim-manager runs it beside the server.
func (s *Server) Run(ctx context.Context) {
	go s.runRollouts(ctx)
	t, tick := s.cfg.Clock.NewTicker(s.cfg.JanitorInterval)
	defer t.Stop()
	for {
		s.Sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}

// Sweep applies the retention once.
func (s *Server) Sweep(ctx context.Context) {
	now := s.now()
	age, count, err := s.store.DropEvents(ctx, now.Add(-s.cfg.EventMaxAge), s.cfg.EventMaxCount)
	s.metrics.eventsDropped.WithLabelValues("age").Add(float64(age))
	s.metrics.eventsDropped.WithLabelValues("count").Add(float64(count))
	if err != nil && ctx.Err() == nil {
		s.log.Error("retention: dropping old events", "err", err)
	}
	if age+count > 0 {
		s.log.Info("retention: dropped events", "by_age", age, "by_count", count,
			"max_age", s.cfg.EventMaxAge, "max_count", s.cfg.EventMaxCount)
	}
	if ps, ok := s.store.(interface {
		DropPowerRequests(context.Context, time.Time) (int, error)
	}); ok {
		n, err := ps.DropPowerRequests(ctx, now.Add(-s.cfg.EventMaxAge))
		if err != nil && ctx.Err() == nil {
			s.log.Error("retention: dropping finished power requests", "err", err)
		} else if n > 0 {
			s.log.Info("retention: dropped finished power requests", "n", n, "max_age", s.cfg.EventMaxAge)
		}
	}
	n, err := s.store.ExpireUploads(ctx, now.Add(-s.cfg.UploadTTL))
	s.metrics.uploadsExpired.Add(float64(n))
	if err != nil && ctx.Err() == nil {
		s.log.Error("retention: expiring unfinished uploads", "err", err)
	}
}

// runRollouts steps the rollouts every RolloutTick until ctx ends.
func (s *Server) runRollouts(ctx context.Context) {
	t, tick := s.cfg.Clock.NewTicker(s.cfg.RolloutTick)
	defer t.Stop()
	for {
		s.StepRollouts(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}
