package manager

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
)

// ---- targets ----

func (s *Server) createTarget(w http.ResponseWriter, r *http.Request, _ *principal) {
	var spec api.TargetSpec
	if err := decode(w, r, s.cfg.MaxBody, &spec); err != nil {
		s.fail(w, r, err)
		return
	}
	t, err := s.store.CreateTarget(r.Context(), spec)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

func (s *Server) listTargets(w http.ResponseWriter, r *http.Request, _ *principal) {
	pg, err := page(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	qv := r.URL.Query()
	q := mdb.TargetQuery{Page: pg, Site: qv.Get("site"), State: qv.Get("state"), Text: qv.Get("q"), Arch: qv.Get("arch"),
		OrderState: qv.Get("order_state")}
	if q.Selector, err = api.ParseSelector(qv.Get("selector")); err != nil {
		s.fail(w, r, errorf(http.StatusBadRequest, "query %v", err))
		return
	}
	for name, dst := range map[string]*bool{"boot_loop": &q.BootLoop, "count": &q.Count} {
		switch qv.Get(name) {
		case "", "0", "false":
		case "1", "true":
			*dst = true
		default:
			s.fail(w, r, errorf(http.StatusBadRequest, "query %s: %q is not 1 or 0", name, qv.Get(name)))
			return
		}
	}
	p, err := s.store.ListTargetsPage(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := api.TargetList{Targets: p.Targets, Next: p.Next}
	if out.Targets == nil {
		out.Targets = []api.Target{}
	}
	if q.Count {
		out.Total, out.Before = &p.Total, &p.Before
	}
	writeJSON(w, http.StatusOK, out)
}

// resolveTarget finds {id}: a target id, or any of its MACs in any form
// net.ParseMAC reads.
func (s *Server) resolveTarget(r *http.Request) (api.Target, error) {
	id := r.PathValue("id")
	if mac, err := api.CanonicalMAC(id); err == nil {
		t, err := s.store.TargetByMAC(r.Context(), mac)
		if !errors.Is(err, mdb.ErrNotFound) {
			return t, err
		}
	}
	return s.store.GetTarget(r.Context(), id)
}

func (s *Server) getTarget(w http.ResponseWriter, r *http.Request, _ *principal) {
	t, err := s.resolveTarget(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) updateTarget(w http.ResponseWriter, r *http.Request, _ *principal) {
	var p api.TargetPatch
	if err := decode(w, r, s.cfg.MaxBody, &p); err != nil {
		s.fail(w, r, err)
		return
	}
	t, err := s.resolveTarget(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	t, err = s.store.UpdateTarget(r.Context(), t.ID, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) deleteTarget(w http.ResponseWriter, r *http.Request, _ *principal) {
	t, err := s.resolveTarget(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.store.DeleteTarget(r.Context(), t.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ---- images ----

func (s *Server) createImage(w http.ResponseWriter, r *http.Request, p *principal) {
	var spec api.ImageSpec
	if err := decode(w, r, s.cfg.MaxBody, &spec); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := checkCmdline(spec); err != nil {
		s.fail(w, r, err)
		return
	}
	img, err := s.store.CreateImage(r.Context(), spec)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, userImage(p, img))
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request, p *principal) {
	pg, err := page(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	imgs, next, err := s.store.ListImages(r.Context(), pg)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if imgs == nil {
		imgs = []api.Image{}
	}
	writeJSON(w, http.StatusOK, api.ImageList{Images: userImages(p, imgs), Next: next})
}

func (s *Server) getImage(w http.ResponseWriter, r *http.Request, p *principal) {
	img, err := s.store.GetImage(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, userImage(p, img))
}

func (s *Server) deleteImage(w http.ResponseWriter, r *http.Request, _ *principal) {
	if err := s.store.DeleteImage(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ---- boot servers ----

// health says how a boot server is doing from its last heartbeat (or its
// registration, before the first one).
func (s *Server) health(bs api.BootServer) string {
	last := bs.LastHeartbeat
	if last.IsZero() {
		last = bs.Created
	}
	age := s.now().Sub(last)
	// By the interval the boot server said it keeps: one that beats
	// every 30 s is not stale after 3 of the manager's 2 s.
	every := s.cfg.HeartbeatInterval
	if bs.HeartbeatInterval > 0 {
		every = time.Duration(bs.HeartbeatInterval * float64(time.Second))
	}
	switch {
	case age >= downAfterBeats*every:
		return api.HealthDown
	case age >= staleAfterBeats*every:
		return api.HealthStale
	}
	return api.HealthHealthy
}

func (s *Server) withHealth(bs api.BootServer) api.BootServer {
	bs.Health = s.health(bs)
	bs.ManagerHeartbeatInterval = s.cfg.HeartbeatInterval.Seconds()
	return bs
}

func (s *Server) register(w http.ResponseWriter, r *http.Request, p *principal) {
	var req api.RegisterRequest
	if err := decode(w, r, s.cfg.MaxBody, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if !api.ValidName(req.Name) {
		s.fail(w, r, errorf(http.StatusBadRequest, "name: %q is not a valid boot server name", req.Name))
		return
	}
	if p.Role == api.RoleBootServer {
		s.reRegister(w, r, p, req)
		return
	}
	stored, info, err := MintToken(api.RoleBootServer, "", "", s.now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	bs, err := s.store.RegisterBootServer(r.Context(), req, p.ID, stored)
	if err != nil {
		s.log.Warn("boot server registration refused", "name", req.Name, "site", req.Site, "join_token", p.ID, "err", err)
		s.fail(w, r, err)
		return
	}
	s.log.Info("boot server registered", "boot_server", bs.ID, "name", bs.Name, "site", bs.Site, "join_token", p.ID)
	writeJSON(w, http.StatusCreated, api.RegisterResponse{BootServer: s.withHealth(bs), Token: info.Secret})
}

// reRegister is a boot server registering again with its own credential,
// which proves it is the boot server holding the name: 200, the stored
// addresses, subnets and version updated, the same credential echoed.
func (s *Server) reRegister(w http.ResponseWriter, r *http.Request, p *principal, req api.RegisterRequest) {
	id, err := callerBootServer(p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	bs, err := s.store.ReRegisterBootServer(r.Context(), id, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	_, secret, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	s.log.Info("boot server registered again", "boot_server", bs.ID, "name", bs.Name, "site", bs.Site)
	writeJSON(w, http.StatusOK, api.RegisterResponse{BootServer: s.withHealth(bs), Token: strings.TrimSpace(secret)})
}

// callerBootServer is the boot server a boot-server token is bound to.
func callerBootServer(p *principal) (string, error) {
	if p.BootServer == "" {
		return "", errorf(http.StatusForbidden, "token %s is not bound to a boot server", p.ID)
	}
	return p.BootServer, nil
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request, p *principal) {
	id, err := callerBootServer(p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var hb api.Heartbeat
	if err := decode(w, r, s.cfg.MaxBody, &hb); err != nil {
		s.fail(w, r, err)
		return
	}
	bs, err := s.store.Heartbeat(r.Context(), id, hb, s.now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.noteSynced(id, hb.SyncedRevision)
	writeJSON(w, http.StatusOK, s.withHealth(bs))
}

func (s *Server) listBootServers(w http.ResponseWriter, r *http.Request, _ *principal) {
	bss, err := s.store.ListBootServers(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]api.BootServer, 0, len(bss))
	for _, bs := range bss {
		out = append(out, s.withHealth(bs))
	}
	writeJSON(w, http.StatusOK, api.BootServerList{BootServers: out})
}

func (s *Server) getBootServer(w http.ResponseWriter, r *http.Request, _ *principal) {
	bs, err := s.store.GetBootServer(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.withHealth(bs))
}

func (s *Server) deleteBootServer(w http.ResponseWriter, r *http.Request, p *principal) {
	id := r.PathValue("id")
	if err := s.store.DeleteBootServer(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	s.syncMu.Lock()
	delete(s.syncedRevs, id)
	s.syncMu.Unlock()
	s.log.Info("boot server deleted", "boot_server", id, "by", p.ID)
	w.WriteHeader(http.StatusNoContent)
}

func tokenLabel(p *principal) string {
	if p.Name != "" {
		return fmt.Sprintf("%s (%s)", p.Name, p.ID)
	}
	return "token " + p.ID
}

// ---- tokens ----

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, p *principal) {
	var req api.TokenRequest
	if err := decode(w, r, s.cfg.MaxBody, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	info, err := NewToken(r.Context(), s.store, req, s.now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("token created", "token", info.ID, "role", info.Role, "name", info.Name, "site", info.Site,
		"uses", info.Uses, "expires", info.Expires, "by", p.ID)
	writeJSON(w, http.StatusCreated, info)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, _ *principal) {
	toks, err := s.store.ListTokens(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for i := range toks {
		toks[i].Secret = ""
	}
	if toks == nil {
		toks = []api.TokenInfo{}
	}
	writeJSON(w, http.StatusOK, api.TokenList{Tokens: toks})
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request, p *principal) {
	id := r.PathValue("id")
	if err := s.store.DeleteToken(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("token deleted", "token", id, "by", p.ID)
	w.WriteHeader(http.StatusNoContent)
}

// noteSynced records the revision a boot server said it holds.
func (s *Server) noteSynced(id string, rev uint64) {
	s.syncMu.Lock()
	if rev > s.syncedRevs[id] {
		s.syncedRevs[id] = rev
	}
	s.syncMu.Unlock()
}
