package mdb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
)

// ErrDiscovered refuses orders for a discovered target (with ErrConflict:
// 409) until it is accepted.
var ErrDiscovered = errors.New("the target is discovered, not accepted: accept it first (osimctl targets accept, POST /api/v1/targets/{id}/accept)")

// ingestOf applies e as ingest does, plus what needs the origin's site:
// discovery registers targets at the boot server's site.
func (w *wtx) ingestOf(e api.Event, site string) error {
	switch e.Type {
	case api.EventTargetDiscovered:
		return w.ingestDiscovered(e, site)
	case api.EventBootLoop:
		return w.ingestBootLoop(e)
	}
	return w.ingest(e)
}

// ingestDiscovered stores a target.discovered event and registers its
// MAC as a discovered target of site (hostname api.DiscoveredHostname,
// arch from api.DataDHCPArch, default bios, the facts attached). A MAC
// that is already a discovered target of site gets its facts (and its
// arch, when the event names one) updated; one that is a normal target, or another site's, changes
// nothing (the event is kept).
func (w *wtx) ingestDiscovered(e api.Event, site string) error {
	mac, err := api.CanonicalMAC(e.MAC)
	if err != nil {
		_, err := w.putEvent(e)
		return err
	}
	e.MAC = mac
	arch, archKnown := e.Data[api.DataDHCPArch], api.ValidArch(e.Data[api.DataDHCPArch])
	if !archKnown {
		arch = "bios"
	}
	facts := map[string]string{}
	for key, v := range e.Data {
		if key != "" && len(key) <= 128 {
			facts[key] = v
		}
	}
	id, known, err := badgerkv.GetString(w.txn, k(pMAC, mac))
	if err != nil {
		return err
	}
	if known {
		t, err := getTarget(w.txn, id)
		if err != nil {
			return err
		}
		if t.Site == site {
			e.Target = id // never another site's target: not this boot server's to name
		}
		if _, err := w.putEvent(e); err != nil {
			return err
		}
		if t.State != api.TargetDiscovered || t.Site != site {
			return nil
		}
		if t.Facts == nil {
			t.Facts = map[string]string{}
		}
		maps.Copy(t.Facts, facts)
		if archKnown {
			t.Arch = arch // a report without it keeps what an earlier one said
		}
		return w.putTarget(&t)
	}
	if id, err = w.newID("t-", pTarget); err != nil {
		return err
	}
	hostname := api.DiscoveredHostname(mac)
	if err := checkHostname(w.txn, site, hostname, "", ""); err != nil {
		hostname += "-" + id // an operator took the name: still unique
	}
	t := api.Target{ID: id, Hostname: hostname, MACs: []string{mac}, Arch: arch, Site: site, Facts: facts,
		State: api.TargetDiscovered, Created: w.now}
	if err := w.putTarget(&t); err != nil {
		return err
	}
	if err := w.set(k(pMAC, mac), []byte(id)); err != nil {
		return err
	}
	if err := w.set(k(pSiteTgt, site, "/", id), nil); err != nil {
		return err
	}
	if err := w.moveHostname(id, "", "", site, hostname); err != nil {
		return err
	}
	e.Target = id
	if _, err := w.putEvent(e); err != nil {
		return err
	}
	w.discovered++
	w.d.log.Info("target discovered", "target", id, "mac", mac, "site", site, "arch", arch, "facts", len(facts))
	return nil
}

// ingestBootLoop stores a boot.loop event and marks its target, unless
// the target got an order since (the report is stale then).
func (w *wtx) ingestBootLoop(e api.Event) error {
	e, err := w.putEvent(e)
	if err != nil || e.Target == "" {
		return err
	}
	t, err := getTarget(w.txn, e.Target)
	if errors.Is(err, ErrNotFound) || (err == nil && t.CurrentOrder != "") {
		return nil
	}
	if err != nil {
		return err
	}
	t.BootLoop = e.Time
	if t.BootLoop.IsZero() {
		t.BootLoop = w.now
	}
	return w.putTarget(&t)
}

// AcceptTarget makes discovered target id a normal target with the
// request's hostname (unique in its site) and labels; it clears a boot
// loop mark. A target that is not discovered is ErrConflict.
func (d *DB) AcceptTarget(ctx context.Context, id string, req api.AcceptRequest) (t api.Target, err error) {
	if err := req.Validate(); err != nil {
		return t, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	err = d.update(ctx, func(w *wtx) error {
		if t, err = getTarget(w.txn, id); err != nil {
			return err
		}
		if t.State != api.TargetDiscovered {
			return fmt.Errorf("%w: target %s is not a discovered target (state %q)", ErrConflict, id, t.State)
		}
		if err := checkHostname(w.txn, t.Site, req.Hostname, id, ""); err != nil {
			return err
		}
		if err := w.moveHostname(id, t.Site, t.Hostname, t.Site, req.Hostname); err != nil {
			return err
		}
		t.Hostname, t.Labels, t.State, t.BootLoop = req.Hostname, maps.Clone(req.Labels), "", time.Time{}
		return w.putTarget(&t)
	})
	return t, err
}

// TargetsDiscovered is how many targets discovery registered since Open.
func (d *DB) TargetsDiscovered() uint64 { return d.discovered.Load() }
