package agent

import (
	"os"
	"slices"

	"osim/controlplane/api"
)

// stats sums each of api.BootServerStatNames over its label sets from the
// process's registry, for the heartbeat: the manager's console shows a
// boot server's service without scraping it. A family not registered in
// this process (no XDP, say) is left out; nil without a Gatherer.
func (a *Agent) stats() map[string]float64 {
	if a.cfg.Stats == nil {
		return nil
	}
	fams, err := a.cfg.Stats.Gather()
	if err != nil && len(fams) == 0 {
		a.log.Debug("heartbeat stats: gather failed", "err", err)
		return nil
	}
	out := map[string]float64{}
	for _, f := range fams {
		if !slices.Contains(api.BootServerStatNames, f.GetName()) {
			continue
		}
		sum := 0.0
		for _, m := range f.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetUntyped() != nil:
				sum += m.GetUntyped().GetValue()
			}
		}
		out[f.GetName()] = sum
	}
	return out
}

// stagedImages lists the images of the view whose every file is staged
// here (sorted), for the heartbeat.
func (l *localView) stagedImages() []string {
	l.mu.RLock()
	imgs := make([]api.Image, 0, len(l.v.images))
	for _, img := range l.v.images {
		imgs = append(imgs, img)
	}
	l.mu.RUnlock()
	out := []string{}
	for _, img := range imgs {
		staged := len(img.Files) > 0
		for _, f := range img.Files {
			if _, err := os.Stat(l.blobs.path(f.SHA256)); err != nil {
				staged = false
				break
			}
		}
		if staged {
			out = append(out, img.ID)
		}
	}
	slices.Sort(out)
	if len(out) > api.MaxStagedImages {
		out = out[:api.MaxStagedImages]
	}
	return out
}
