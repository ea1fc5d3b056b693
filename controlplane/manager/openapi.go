package manager

import (
	"bytes"
	_ "embed"
	"net/http"
)

// openAPIDoc is the hand-written OpenAPI 3.0 description of every route;
// x-osim-roles on each operation lists the roles allowed. redocly lints
// it (openapi_lint_test.go) and the API tests hold every answer to it
// (internal/apicheck).
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPIDocument returns the document GET /api/v1/openapi.json answers.
func OpenAPIDocument() []byte { return bytes.Clone(openAPIDoc) }

func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request, _ *principal) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
}
