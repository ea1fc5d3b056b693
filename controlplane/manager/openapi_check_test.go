package manager

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"osim/controlplane/api"
	"osim/internal/apicheck"
)

// TestAPICheckRefusesAnswersTheDocumentDoesNotAllow holds made-up answers
// to GET /api/v1/targets/{id} against openapi.json: the check that every
// test's answers pass must fail on an undocumented status, a body of the
// wrong shape and a field the document does not name.
func TestAPICheckRefusesAnswersTheDocumentDoesNotAllow(t *testing.T) {
	c, err := docCheck()
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/api/v1/targets/t-1", nil)
	target := `{"id":"t-1","hostname":"h1","macs":["52:54:00:00:00:01"],"site":"s1","revision":3,"created":"2026-03-01T12:00:00Z","updated":"2026-03-01T12:00:00Z"}`
	for _, tc := range []struct {
		name   string
		status int
		ctype  string
		body   string
		ok     bool
	}{
		{"a target", 200, "application/json", target, true},
		{"not found", 404, "application/json", `{"code":404,"message":"target t-1: not found"}`, true},
		{"a server error falls to default", 500, "application/json", `{"code":500,"message":"internal error"}`, true},
		{"an undocumented status", 418, "application/json", `{"code":418,"message":"teapot"}`, false},
		{"a 4xx the operation does not list", 409, "application/json", `{"code":409,"message":"conflict"}`, false},
		{"a field of the wrong type", 200, "application/json", `{"id":5}`, false},
		{"a field the document does not name", 200, "application/json", `{"id":"t-1","colour":"blue"}`, false},
		{"an error without its message", 404, "application/json", `{"code":404}`, false},
		{"not JSON", 200, "text/plain", "t-1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Content-Type": {tc.ctype}}
			err := c.Check(req, tc.status, h, []byte(tc.body))
			t.Logf("Check: %v", err)
			if (err == nil) != tc.ok {
				t.Fatalf("Check(%d %s) = %v, want ok %v", tc.status, tc.body, err, tc.ok)
			}
			if tc.status == 418 && !errors.Is(err, apicheck.ErrUndocumented) {
				t.Fatalf("Check(418) = %v, want ErrUndocumented", err)
			}
		})
	}

	// A request that is no documented operation is not checked.
	before := c.Unmatched()
	if err := c.Check(httptest.NewRequest("GET", "/api/v1/nothing", nil), 404, nil, nil); err != nil || c.Unmatched() != before+1 {
		t.Fatalf("an undocumented route: %v, unmatched %d → %d", err, before, c.Unmatched())
	}
}

// errorRecorder is a TB that keeps what it is told.
type errorRecorder struct{ errs []string }

func (r *errorRecorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestAPICheckHandlerReportsAWrongAnswer puts a handler that answers
// wrong behind the check, as newEnv puts the manager, and sees the test
// told; and sees newEnv's server checked.
func TestAPICheckHandlerReportsAWrongAnswer(t *testing.T) {
	c, err := docCheck()
	if err != nil {
		t.Fatal(err)
	}
	rec := &errorRecorder{}
	wrong := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int{"targets": 1}) // TargetList.targets is an array
	})
	ts := httptest.NewServer(c.Handler(rec, wrong))
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/api/v1/targets")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "GET /api/v1/targets") || !strings.Contains(rec.errs[0], "targets") {
		t.Fatalf("reported %q, want one mismatch of GET /api/v1/targets", rec.errs)
	}

	e := newEnv(t)
	before := c.Checked()
	if _, err := e.client(api.RoleViewer).ListTargets(t.Context(), "", "", "", 0); err != nil {
		t.Fatal(err)
	}
	if c.Checked() == before {
		t.Fatal("newEnv's server answered GET /api/v1/targets unchecked")
	}
}
