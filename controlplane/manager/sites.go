package manager

import (
	"net/http"

	"osim/controlplane/api"
)

// ---- sites ----

func (s *Server) listSites(w http.ResponseWriter, r *http.Request, _ *principal) {
	sites, err := s.store.ListSites(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if sites == nil {
		sites = []api.Site{}
	}
	writeJSON(w, http.StatusOK, api.SiteList{Sites: sites})
}

func (s *Server) getSite(w http.ResponseWriter, r *http.Request, _ *principal) {
	site, err := s.store.GetSite(r.Context(), r.PathValue("site"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, site)
}

// putSite sets a site's settings; the body's name, when set, must be
// the path's.
func (s *Server) putSite(w http.ResponseWriter, r *http.Request, _ *principal) {
	var in api.Site
	if err := decode(w, r, s.cfg.MaxBody, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	name := r.PathValue("site")
	if in.Name != "" && in.Name != name {
		s.fail(w, r, errorf(http.StatusUnprocessableEntity, "name: %q in the body, %q in the path", in.Name, name))
		return
	}
	in.Name = name
	out, err := s.store.PutSite(r.Context(), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("site set", "site", name, "default_boot_image", out.DefaultBootImage)
	writeJSON(w, http.StatusOK, out)
}
