package manager

import (
	"context"
	"errors"
	"net/http"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
)

// credentialStore is the part of the store that keeps BMC credentials
// (mdb.DB implements it).
type credentialStore interface {
	PutCredential(ctx context.Context, c mdb.Credential) (api.Credential, error)
	GetCredential(ctx context.Context, name string) (mdb.Credential, error)
	ListCredentials(ctx context.Context) ([]api.Credential, error)
	DeleteCredential(ctx context.Context, name string) error
	CredentialUsedInSite(ctx context.Context, name, site string) (bool, error)
}

// storePart is the store as the optional part T (credentials, the power
// queue, rollouts), or a 501 saying what this store lacks.
func storePart[T any](s *Server, w http.ResponseWriter, r *http.Request, what string) (T, bool) {
	part, ok := s.store.(T)
	if !ok {
		s.fail(w, r, errorf(http.StatusNotImplemented, "this store keeps no %s", what))
	}
	return part, ok
}

func (s *Server) credentials(w http.ResponseWriter, r *http.Request) (credentialStore, bool) {
	return storePart[credentialStore](s, w, r, "credentials")
}

// putCredential answers POST /credentials (admin): the password is sealed
// with the manager's key before it is stored, and never answered.
func (s *Server) putCredential(w http.ResponseWriter, r *http.Request, p *principal) {
	cs, ok := s.credentials(w, r)
	if !ok {
		return
	}
	if s.cfg.CredentialsKey == nil {
		s.fail(w, r, errorf(http.StatusConflict, "this manager keeps no credentials: start it with --credentials-key FILE (osim-manager credentials-key FILE makes one)"))
		return
	}
	var req api.CredentialRequest
	if err := decode(w, r, s.cfg.MaxBody, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Password == "" || len(req.Password) > 256 {
		s.fail(w, r, errorf(http.StatusBadRequest, "password: is required (at most 256 bytes)"))
		return
	}
	sealed, err := s.cfg.CredentialsKey.Seal([]byte(req.Password), req.Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := cs.PutCredential(r.Context(), mdb.Credential{Credential: api.Credential{Name: req.Name, Username: req.Username}, Sealed: sealed})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("credential stored", "name", c.Name, "by", p.ID)
	writeJSON(w, http.StatusCreated, c)
}

func (s *Server) listCredentials(w http.ResponseWriter, r *http.Request, _ *principal) {
	cs, ok := s.credentials(w, r)
	if !ok {
		return
	}
	l, err := cs.ListCredentials(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if l == nil {
		l = []api.Credential{}
	}
	writeJSON(w, http.StatusOK, l)
}

func (s *Server) deleteCredential(w http.ResponseWriter, r *http.Request, p *principal) {
	cs, ok := s.credentials(w, r)
	if !ok {
		return
	}
	if err := cs.DeleteCredential(r.Context(), r.PathValue("name")); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("credential deleted", "name", r.PathValue("name"), "by", p.ID)
	w.WriteHeader(http.StatusNoContent)
}

// credentialSecret answers GET /credentials/{name}/secret to a boot
// server of a site where a target names the credential: the one place a
// password leaves the manager, over the boot server's authenticated
// connection, to run a power action.
func (s *Server) credentialSecret(w http.ResponseWriter, r *http.Request, p *principal) {
	cs, ok := s.credentials(w, r)
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
	name := r.PathValue("name")
	used, err := cs.CredentialUsedInSite(r.Context(), name, bs.Site)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !used {
		// Not found for this caller: whether it exists elsewhere is not
		// the boot server's business.
		s.fail(w, r, errorf(http.StatusNotFound, "no target of site %s names credential %q", bs.Site, name))
		return
	}
	if s.cfg.CredentialsKey == nil {
		s.fail(w, r, errorf(http.StatusConflict, "this manager keeps no credentials key (--credentials-key)"))
		return
	}
	c, err := cs.GetCredential(r.Context(), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	pw, err := s.cfg.CredentialsKey.Open(c.Sealed, c.Name)
	if err != nil {
		s.log.Error("credential does not open with this manager's key", "name", name, "err", err)
		s.fail(w, r, errors.New("credential does not open with this manager's key"))
		return
	}
	s.log.Info("credential handed to a boot server", "name", name, "boot_server", id)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, api.CredentialSecret{Name: c.Name, Username: c.Username, Password: string(pw)})
}
