package mdb

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
)

func getBootServer(txn *badger.Txn, id string) (api.BootServer, error) {
	var b api.BootServer
	ok, err := badgerkv.GetJSON(txn, k(pBS, id), &b)
	if err != nil {
		return b, err
	}
	if !ok {
		return b, fmt.Errorf("%w: boot server %s", ErrNotFound, id)
	}
	return b, nil
}

func validToken(t *Token) error {
	if !api.ValidSHA256(t.Hash) {
		return fmt.Errorf("%w: token hash: not 64 lower-case hex digits", ErrInvalid)
	}
	if !slices.Contains(api.Roles, t.Role) {
		return fmt.Errorf("%w: token role: %q is not a role", ErrInvalid, t.Role)
	}
	if t.ID != "" && !api.ValidName(t.ID) {
		return fmt.Errorf("%w: token id: %q is not valid", ErrInvalid, t.ID)
	}
	if err := validJoin(t.TokenInfo); err != nil {
		return err
	}
	t.Secret, t.Used = "", 0
	return nil
}

// validJoin checks the binding of a join token: a site, at least one
// registration, an expiry. Other roles carry none of these.
func validJoin(t api.TokenInfo) error {
	if t.Role != api.RoleJoin {
		if t.Site != "" || t.Uses != 0 || !t.Expires.IsZero() {
			return fmt.Errorf("%w: token: site, uses and expiry are for join tokens only (role %s)", ErrInvalid, t.Role)
		}
		return nil
	}
	switch {
	case !api.ValidName(t.Site):
		return fmt.Errorf("%w: token site: %q is not a valid site name (a join token is bound to a site)", ErrInvalid, t.Site)
	case t.Name != "" && !api.ValidName(t.Name):
		return fmt.Errorf("%w: token name: %q is not a valid boot server name", ErrInvalid, t.Name)
	case t.Uses < 1:
		return fmt.Errorf("%w: token uses: %d: a join token admits at least one registration", ErrInvalid, t.Uses)
	case t.Expires.IsZero():
		return fmt.Errorf("%w: token expires: a join token must expire", ErrInvalid)
	}
	return nil
}

// admitJoin checks, in the registering transaction, that join token id
// admits req now, and counts the registration against its uses.
func (w *wtx) admitJoin(id string, req api.RegisterRequest) error {
	var t Token
	ok, err := badgerkv.GetJSON(w.txn, k(pToken, id), &t)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%w: join token %s no longer exists", ErrForbidden, id)
	case t.Role != api.RoleJoin:
		return fmt.Errorf("%w: token %s is a %s token, not a join token", ErrForbidden, id, t.Role)
	case !w.now.Before(t.Expires):
		return fmt.Errorf("%w: join token %s expired at %s", ErrForbidden, id, t.Expires.UTC().Format(time.RFC3339))
	case t.Site != req.Site:
		return fmt.Errorf("%w: join token %s registers boot servers of site %s, not %s", ErrForbidden, id, t.Site, req.Site)
	case t.Name != "" && t.Name != req.Name:
		return fmt.Errorf("%w: join token %s registers boot server %s only, not %s", ErrForbidden, id, t.Name, req.Name)
	case t.Used >= t.Uses:
		return fmt.Errorf("%w: join token %s is used up (%d of %d registrations)", ErrForbidden, id, t.Used, t.Uses)
	}
	t.Used++
	return w.setJSON(k(pToken, id), t)
}

func (w *wtx) putToken(t *Token) error {
	if ok, err := badgerkv.Exists(w.txn, k(pTokenHash, t.Hash)); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("%w: a token with this hash exists", ErrConflict)
	}
	if t.ID == "" {
		id, err := w.newID("tok-", pToken)
		if err != nil {
			return err
		}
		t.ID = id
	} else if ok, err := badgerkv.Exists(w.txn, k(pToken, t.ID)); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("%w: token %s exists", ErrConflict, t.ID)
	}
	if t.Created.IsZero() {
		t.Created = w.now
	}
	if err := w.setJSON(k(pToken, t.ID), t); err != nil {
		return err
	}
	return w.set(k(pTokenHash, t.Hash), []byte(t.ID))
}

func (w *wtx) delToken(id string) error {
	var t Token
	ok, err := badgerkv.GetJSON(w.txn, k(pToken, id), &t)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: token %s", ErrNotFound, id)
	}
	if t.Role == api.RoleAdmin {
		n, err := countAdmins(w.txn)
		if err != nil {
			return err
		}
		if n <= 1 {
			return fmt.Errorf("%w: token %s is the last admin token: deleting it would lock every admin out; create another admin token first", ErrConflict, id)
		}
	}
	return w.removeToken(t)
}

// countAdmins counts the admin tokens.
func countAdmins(txn *badger.Txn) (n int, err error) {
	err = scan(txn, pToken, "", true, func(_ []byte, item *badger.Item) (bool, error) {
		var t Token
		if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &t) }); err != nil {
			return false, err
		}
		if t.Role == api.RoleAdmin {
			n++
		}
		return true, nil
	})
	return n, err
}

// removeToken deletes t, read in this transaction, and its hash index.
func (w *wtx) removeToken(t Token) error {
	if err := w.del(k(pTokenHash, t.Hash)); err != nil {
		return err
	}
	return w.del(k(pToken, t.ID))
}

func validRegister(req api.RegisterRequest) error {
	if !api.ValidName(req.Name) {
		return fmt.Errorf("%w: name: %q is not a valid boot server name", ErrInvalid, req.Name)
	}
	if !api.ValidName(req.Site) {
		return fmt.Errorf("%w: site: %q is not a valid site name", ErrInvalid, req.Site)
	}
	for i, a := range req.Addresses {
		if _, err := netip.ParseAddr(a); err != nil {
			return fmt.Errorf("%w: addresses[%d]: %q is not an IP address", ErrInvalid, i, a)
		}
	}
	for i, s := range req.Subnets {
		if _, err := netip.ParsePrefix(s); err != nil {
			return fmt.Errorf("%w: subnets[%d]: %q is not a prefix", ErrInvalid, i, s)
		}
	}
	return validBootArches(req.BootArches)
}

// validHeartbeatStats bounds a heartbeat's stats and staged images.
func validHeartbeatStats(hb api.Heartbeat) error {
	if len(hb.Stats) > api.MaxHeartbeatStats {
		return fmt.Errorf("%w: stats: %d, at most %d", ErrInvalid, len(hb.Stats), api.MaxHeartbeatStats)
	}
	for k, v := range hb.Stats {
		if !api.ValidStatName(k) {
			return fmt.Errorf("%w: stats: %q is not a metric name", ErrInvalid, k)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: stats: %s is %v", ErrInvalid, k, v)
		}
	}
	if c := hb.EgressCeiling; math.IsNaN(c) || math.IsInf(c, 0) || c < 0 {
		return fmt.Errorf("%w: egress_ceiling: %v is not a rate", ErrInvalid, c)
	}
	// Any positive interval up to an hour (tests beat every 200 ms; a
	// boot server's configuration asks 1 s at least).
	if i := hb.IntervalSeconds; math.IsNaN(i) || i < 0 || i > 3600 {
		return fmt.Errorf("%w: interval_seconds: %v is not 0..3600", ErrInvalid, i)
	}
	if len(hb.StagedImages) > api.MaxStagedImages {
		return fmt.Errorf("%w: staged_images: %d, at most %d", ErrInvalid, len(hb.StagedImages), api.MaxStagedImages)
	}
	for i, id := range hb.StagedImages {
		if !api.ValidName(id) {
			return fmt.Errorf("%w: staged_images[%d]: %q is not an image id", ErrInvalid, i, id)
		}
	}
	return nil
}

// egressStats are the counters of what a boot server delivers.
var egressStats = []string{"osim_httpboot_response_bytes_total", "osim_tftp_bytes_sent_total"}

// egressRate is the bytes/s delivered between two heartbeats' stats; 0
// when it cannot be told (no earlier stats, a restart reset the counters,
// or the heartbeats are too far apart to say anything about now).
func egressRate(prev map[string]float64, prevAt time.Time, now map[string]float64, at time.Time) float64 {
	dt := at.Sub(prevAt).Seconds()
	if prev == nil || prevAt.IsZero() || dt <= 0 || dt > 300 {
		return 0
	}
	var d float64
	for _, k := range egressStats {
		if now[k] < prev[k] {
			return 0
		}
		d += now[k] - prev[k]
	}
	return d / dt
}

func validBootArches(arches []string) error {
	for i, a := range arches {
		if !api.ValidArch(a) {
			return fmt.Errorf("%w: boot_arches[%d]: %q is not one of %v", ErrInvalid, i, a, api.Arches)
		}
	}
	return nil
}

// RegisterBootServer creates a boot server and its credential (cred.Role
// is forced to boot-server and cred.BootServer to the new id). join is
// the id of the join token that admits it: read again in the same
// transaction, it must be unexpired, bound to req's site (and name, if
// bound to one) and not used up; the registration counts as one of its
// uses. join "" (offline tools, tests) skips that check. A name that
// exists is ErrConflict: the boot server that holds it re-registers with
// its own credential (ReRegisterBootServer).
func (d *DB) RegisterBootServer(ctx context.Context, req api.RegisterRequest, join string, cred Token) (b api.BootServer, err error) {
	if err := validRegister(req); err != nil {
		return b, err
	}
	cred.Role = api.RoleBootServer
	if err := validToken(&cred); err != nil {
		return b, err
	}
	err = d.update(ctx, func(w *wtx) error {
		if join != "" {
			if err := w.admitJoin(join, req); err != nil {
				return err
			}
		}
		if other, ok, err := badgerkv.GetString(w.txn, k(pBSName, req.Name)); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("%w: boot server name %s is taken by %s (only %s's own credential re-registers it; delete %s if it is gone)",
				ErrConflict, req.Name, other, other, other)
		}
		id, err := w.newID("bs-", pBS)
		if err != nil {
			return err
		}
		b = api.BootServer{ID: id, Name: req.Name, Site: req.Site, Addresses: slices.Clone(req.Addresses),
			Subnets: slices.Clone(req.Subnets), Version: req.Version, BootArches: slices.Clone(req.BootArches),
			Revision: w.bump(), Created: w.now}
		cred.BootServer = id
		if cred.Name == "" {
			cred.Name = req.Name
		}
		if err := w.putToken(&cred); err != nil {
			return err
		}
		if err := w.setJSON(k(pBS, id), b); err != nil {
			return err
		}
		if err := w.set(k(pBSName, req.Name), []byte(id)); err != nil {
			return err
		}
		_, err = w.putEvent(api.Event{Type: api.EventBootServer, Origin: "",
			Data: map[string]string{"boot_server": id, "name": req.Name, "site": req.Site}})
		return err
	})
	return b, err
}

// ReRegisterBootServer is a registration by boot server id itself (the
// caller presented its credential): req must keep its name and site; its
// addresses, subnets and version replace the stored ones. No credential
// is made: the caller keeps the one it proved itself with.
func (d *DB) ReRegisterBootServer(ctx context.Context, id string, req api.RegisterRequest) (b api.BootServer, err error) {
	if err := validRegister(req); err != nil {
		return b, err
	}
	err = d.update(ctx, func(w *wtx) error {
		if b, err = getBootServer(w.txn, id); err != nil {
			return err
		}
		if b.Name != req.Name || b.Site != req.Site {
			return fmt.Errorf("%w: boot server %s is %s at site %s: its credential re-registers it under that name and site only, not %s at %s",
				ErrConflict, id, b.Name, b.Site, req.Name, req.Site)
		}
		b.Addresses, b.Subnets, b.Version = slices.Clone(req.Addresses), slices.Clone(req.Subnets), req.Version
		b.BootArches = slices.Clone(req.BootArches)
		b.Revision = w.bump()
		return w.setJSON(k(pBS, id), b)
	})
	return b, err
}

// GetBootServer reads a boot server.
func (d *DB) GetBootServer(ctx context.Context, id string) (b api.BootServer, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error { b, err = getBootServer(txn, id); return err })
	return b, err
}

// ListBootServers lists every boot server by id.
func (d *DB) ListBootServers(ctx context.Context) (out []api.BootServer, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error {
		return scan(txn, pBS, "", true, func(_ []byte, item *badger.Item) (bool, error) {
			var b api.BootServer
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &b) }); err != nil {
				return false, err
			}
			out = append(out, b)
			return true, nil
		})
	})
	return out, err
}

// Heartbeat records a heartbeat; it does not bump the revision.
func (d *DB) Heartbeat(ctx context.Context, id string, hb api.Heartbeat, at time.Time) (b api.BootServer, err error) {
	if err := validBootArches(hb.BootArches); err != nil {
		return b, err
	}
	if err := validHeartbeatStats(hb); err != nil {
		return b, err
	}
	err = d.update(ctx, func(w *wtx) error {
		if b, err = getBootServer(w.txn, id); err != nil {
			return err
		}
		b.LastHeartbeat = at.UTC()
		b.SyncedRevision = hb.SyncedRevision
		if hb.Version != "" {
			b.Version = hb.Version
		}
		if hb.BootArches != nil {
			b.BootArches = slices.Clone(hb.BootArches)
		}
		if hb.Stats != nil {
			b.Egress = egressRate(b.Stats, b.StatsAt, hb.Stats, at)
			b.Stats, b.StatsAt = maps.Clone(hb.Stats), at.UTC()
		}
		b.EgressCeiling = hb.EgressCeiling
		b.HeartbeatInterval = hb.IntervalSeconds
		if hb.StagedImages != nil {
			b.StagedImages = slices.Sorted(slices.Values(hb.StagedImages))
		}
		return w.setJSON(k(pBS, id), b)
	})
	return b, err
}

// DeleteBootServer deletes a boot server and its tokens.
func (d *DB) DeleteBootServer(ctx context.Context, id string) error {
	return d.updateFreeing(ctx, func(w *wtx) error {
		b, err := getBootServer(w.txn, id)
		if err != nil {
			return err
		}
		var toks []Token
		err = scan(w.txn, pToken, "", true, func(key []byte, item *badger.Item) (bool, error) {
			var t Token
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &t) }); err != nil {
				return false, err
			}
			if t.BootServer == id {
				toks = append(toks, t)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		// The scan read each token whole: delete without reading it again.
		for _, t := range toks {
			if err := w.removeToken(t); err != nil {
				return err
			}
		}
		if err := w.del(k(pBSName, b.Name)); err != nil {
			return err
		}
		w.bump()
		return w.del(k(pBS, id))
	})
}

// CreateToken stores a token (an id is assigned when t.ID is empty). It
// does not bump the revision.
func (d *DB) CreateToken(ctx context.Context, t Token) error {
	if err := validToken(&t); err != nil {
		return err
	}
	return d.update(ctx, func(w *wtx) error { return w.putToken(&t) })
}

// TokenByHash finds a token by the hash of its secret.
func (d *DB) TokenByHash(ctx context.Context, hash string) (t Token, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error {
		id, ok, err := badgerkv.GetString(txn, k(pTokenHash, hash))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: no token with this hash", ErrNotFound)
		}
		if ok, err = badgerkv.GetJSON(txn, k(pToken, id), &t); err == nil && !ok {
			err = fmt.Errorf("%w: token %s", ErrNotFound, id)
		}
		return err
	})
	return t, err
}

// ListTokens lists tokens by id (no secrets, no hashes).
func (d *DB) ListTokens(ctx context.Context) (out []api.TokenInfo, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error {
		return scan(txn, pToken, "", true, func(_ []byte, item *badger.Item) (bool, error) {
			var t Token
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &t) }); err != nil {
				return false, err
			}
			out = append(out, t.TokenInfo)
			return true, nil
		})
	})
	return out, err
}

// DeleteToken deletes a token.
func (d *DB) DeleteToken(ctx context.Context, id string) error {
	return d.updateFreeing(ctx, func(w *wtx) error { return w.delToken(id) })
}
