package manager

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the hand-written OpenAPI 3.0 description of every route;
// x-osim-roles on each operation lists the roles allowed.
//
//go:embed openapi.json
var openAPIDoc []byte

func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request, _ *principal) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
}
