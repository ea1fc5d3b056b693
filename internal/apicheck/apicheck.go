// Package apicheck holds a server's answers to its OpenAPI document in
// tests: wrapped around the handler, it checks every answer to a
// documented operation (its status is one the operation lists, its JSON
// body matches that status's schema) and reports a mismatch as a test
// error. The manager's tests and internal/mgrtest run the manager behind
// it, so the document cannot drift from what the server says.
package apicheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// Checker checks answers against one OpenAPI 3.0 document.
type Checker struct {
	doc    *openapi3.T
	mux    *http.ServeMux            // one pattern per operation, to find a request's
	routes map[string]*routers.Route // pattern → operation

	checked, unmatched atomic.Int64
}

// New parses and validates doc. Object schemas that name their properties
// and say nothing of others are taken as closed (additionalProperties:
// false), so an answer's field the document does not name is a mismatch.
func New(doc []byte) (*Checker, error) {
	loader := openapi3.NewLoader()
	t, err := loader.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("apicheck: loading the document: %w", err)
	}
	if err := t.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("apicheck: the document is not valid OpenAPI: %w", err)
	}
	closeSchemas(t)
	c := &Checker{doc: t, mux: http.NewServeMux(), routes: map[string]*routers.Route{}}
	for path, item := range t.Paths.Map() {
		for method, op := range item.Operations() {
			pattern := method + " " + path
			// ServeMux takes the same {name} templates as OpenAPI, and
			// picks the most specific (/orders/counts over /orders/{id}).
			c.mux.Handle(pattern, http.NotFoundHandler())
			c.routes[pattern] = &routers.Route{Spec: t, Path: path, PathItem: item, Method: method, Operation: op}
		}
	}
	return c, nil
}

// closeSchemas sets additionalProperties: false on every object schema
// with properties and no additionalProperties of its own, except the
// members of an allOf: each knows only its own share of the properties,
// so closed, every member would refuse the others'.
func closeSchemas(t *openapi3.T) {
	open := map[*openapi3.Schema]bool{}
	eachSchema(t, func(s *openapi3.Schema) {
		for _, m := range s.AllOf {
			if m != nil && m.Value != nil {
				open[m.Value] = true
			}
		}
	})
	eachSchema(t, func(s *openapi3.Schema) {
		if !open[s] && len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
			closed := false
			s.AdditionalProperties.Has = &closed
		}
	})
}

// eachSchema calls f once on every schema the document's components and
// responses reach.
func eachSchema(t *openapi3.T, f func(*openapi3.Schema)) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(*openapi3.SchemaRef)
	walk = func(r *openapi3.SchemaRef) {
		if r == nil || r.Value == nil || seen[r.Value] {
			return
		}
		s := r.Value
		seen[s] = true
		f(s)
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
		walk(s.AdditionalProperties.Schema)
		for _, l := range []openapi3.SchemaRefs{s.OneOf, s.AnyOf, s.AllOf} {
			for _, x := range l {
				walk(x)
			}
		}
		walk(s.Not)
	}
	for _, s := range t.Components.Schemas {
		walk(s)
	}
	for _, item := range t.Paths.Map() {
		for _, op := range item.Operations() {
			for _, rr := range op.Responses.Map() {
				if rr.Value == nil {
					continue
				}
				for _, mt := range rr.Value.Content {
					walk(mt.Schema)
				}
			}
		}
	}
}

// ErrUndocumented marks an answer whose status the operation does not list.
var ErrUndocumented = errors.New("status not documented")

// Check holds one answer to r against the document: nil when it matches
// or when r is no documented operation (a wrong path or method, which
// the document does not describe). A 4xx (or 2xx, 3xx) must be listed by
// the operation itself; only a 5xx may fall to its default response.
func (c *Checker) Check(r *http.Request, status int, header http.Header, body []byte) error {
	_, pattern := c.mux.Handler(r)
	rt := c.routes[pattern]
	if rt == nil {
		c.unmatched.Add(1)
		return nil
	}
	c.checked.Add(1)
	op := fmt.Sprintf("%s %s (%s)", rt.Method, rt.Path, rt.Operation.OperationID)
	if rt.Operation.Responses.Status(status) == nil && (status < 500 || rt.Operation.Responses.Default() == nil) {
		listed := rt.Operation.Responses.Keys()
		slices.Sort(listed)
		return fmt.Errorf("%s: %w: answered %d, the document lists %s", op, ErrUndocumented, status,
			strings.Join(listed, ", "))
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, Route: rt},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true,
			// The reason and where, not the whole schema.
			SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()}},
	}
	if err := openapi3filter.ValidateResponse(r.Context(), in); err != nil {
		return fmt.Errorf("%s: answer %d %s: %w", op, status, clip(body), err)
	}
	return nil
}

// Checked and Unmatched count the answers checked, and those to requests
// that are no documented operation.
func (c *Checker) Checked() int64   { return c.checked.Load() }
func (c *Checker) Unmatched() int64 { return c.unmatched.Load() }

// TB is the part of testing.TB a Handler reports to.
type TB interface {
	Errorf(format string, args ...any)
}

// Handler serves next and checks each answer when it is complete,
// reporting a mismatch to t. The answer streams through as it is written
// (long polls, blob downloads); only a JSON body is kept, to be checked.
// An answer to a client that went away is not checked: nobody read it.
func (c *Checker) Handler(t TB, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if r.Context().Err() != nil {
			return
		}
		if err := c.Check(r, rec.code(), w.Header(), rec.body.Bytes()); err != nil {
			t.Errorf("openapi.json: %s %s: %v", r.Method, r.URL.RequestURI(), err)
		}
	})
}

// recorder passes an answer on and keeps its status and JSON body.
type recorder struct {
	http.ResponseWriter
	status int
	keep   bool
	body   bytes.Buffer
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		mt, _, _ := mime.ParseMediaType(w.Header().Get("Content-Type"))
		w.keep = mt == "application/json"
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	if w.keep {
		w.body.Write(b[:n])
	}
	return n, err
}

func (w *recorder) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach the connection (flushes,
// read deadlines).
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// clip shortens a body for an error message.
func clip(b []byte) string {
	const max = 300
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
