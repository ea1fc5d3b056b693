package httpboot

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Phase is where an installer is.
type Phase string

// The phases an installer reports.
const (
	PhaseInstalling Phase = "installing"
	PhaseDone       Phase = "done"
	PhaseFailed     Phase = "failed"
)

// Status is one validated report from an installer.
type Status struct {
	Order    string
	Phase    Phase
	Message  string
	Progress int // percent, 0..100; -1 when the report carried none
	Client   string
	Received time.Time
	// Facts is the inventory the installer reported with this status
	// (nil when the body had none): at most 256 keys named like API names,
	// values of at most 256 bytes.
	Facts map[string]string
	// Step is the install step the report is about (one of Steps; ""
	// when the body named none).
	Step string
	// Data is the report's details (bytes written, the disk chosen, a
	// procedure's exit code), with the same bounds as Facts.
	Data map[string]string
}

// Steps are the install steps a status may name (controlplane/api's
// Step* values; this package imports no controlplane type).
var Steps = []string{"inventory", "plan", "pre", "disk", "write", "verify", "customize", "post", "finish"}

// StatusSink takes validated reports; on a boot server it buffers them as
// events for the manager. An error makes the handler answer 503 so the
// installer retries.
type StatusSink interface {
	Report(ctx context.Context, s Status) error
}

// Tokens returns the status token of an order, or ErrUnknownOrder. The
// handler compares in constant time.
type Tokens interface {
	Token(ctx context.Context, order string) (string, error)
}

// StaticTokens maps order ids to tokens; for standalone runs and tests.
type StaticTokens map[string]string

// Token returns the order's token or ErrUnknownOrder.
func (s StaticTokens) Token(_ context.Context, order string) (string, error) {
	t, ok := s[order]
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrUnknownOrder, order)
	}
	return t, nil
}

const (
	maxStatusBody = 64 << 10 // a big machine's inventory
	maxMessage    = 4096
	maxOrderLen   = 128
	maxFacts      = 256
	maxFactKey    = 63
	maxFactValue  = 256
)

// statusBody is the JSON an installer sends; unknown fields are refused.
type statusBody struct {
	Phase    Phase  `json:"phase"`
	Message  string `json:"message"`
	Progress *int   `json:"progress"`
	// Facts is optional inventory: {"cpu_model": "...", "disk0_size": "..."}.
	Facts map[string]string `json:"facts"`
	// Step and Data are optional: the install step and its details.
	Step string            `json:"step"`
	Data map[string]string `json:"data"`
}

// httpError is a refusal with its code and the reason it is counted
// under; every bad input maps to a 4xx.
type httpError struct {
	code   int
	reason string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func refusal(code int, reason, format string, a ...any) *httpError {
	return &httpError{code: code, reason: reason, msg: fmt.Sprintf(format, a...)}
}

// serveStatus answers POST /status/{order}: Authorization: Bearer <token>,
// a JSON body, 204 when the sink took it.
func (h *Handler) serveStatus(w http.ResponseWriter, r *http.Request) {
	order := r.PathValue("order")
	st, herr := h.parseStatus(w, r, order)
	if herr != nil {
		label := "refused"
		if herr.code >= 500 {
			label = "backend_error"
			h.log.Warn("status not checked", "order", order, "client", r.RemoteAddr, "err", herr.msg)
		} else {
			h.refused(r, order, herr)
		}
		h.metrics.statusReports.WithLabelValues(label).Inc()
		http.Error(w, herr.msg, herr.code)
		return
	}
	if err := h.sink.Report(r.Context(), st); err != nil {
		h.log.Warn("status sink failed", "order", order, "err", err)
		h.metrics.statusReports.WithLabelValues("sink_error").Inc()
		w.Header().Set("Retry-After", "5")
		http.Error(w, fmt.Sprintf("httpboot: status for order %q not stored, retry: %v", order, err), http.StatusServiceUnavailable)
		return
	}
	h.metrics.statusReports.WithLabelValues(string(st.Phase)).Inc()
	h.log.Info("status", "order", order, "phase", st.Phase, "step", st.Step, "progress", st.Progress, "client", r.RemoteAddr)
	w.WriteHeader(http.StatusNoContent)
}

// refused counts a refusal by reason and logs it at warn, at most one line
// per reason per second (the others are counted in the next line's
// "suppressed").
func (h *Handler) refused(r *http.Request, order string, herr *httpError) {
	h.metrics.statusRefused.WithLabelValues(herr.reason).Inc()
	if ok, suppressed := h.refusals.allow(herr.reason, h.clock.Now()); ok {
		h.log.Warn("status refused", "order", order, "client", r.RemoteAddr, "reason", herr.reason,
			"code", herr.code, "err", herr.msg, "suppressed", suppressed)
	}
}

func (h *Handler) parseStatus(w http.ResponseWriter, r *http.Request, order string) (Status, *httpError) {
	if err := checkOrder(order); err != nil {
		return Status{}, refusal(http.StatusBadRequest, "bad_order", "%v", err)
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return Status{}, refusal(http.StatusUnsupportedMediaType, "content_type", "httpboot: status for order %q: content type %q, want application/json", order, ct)
		}
	}
	if herr := h.authorize(w, r, order); herr != nil {
		return Status{}, herr
	}
	b, herr := parseStatusBody(r.Body, w, order)
	if herr != nil {
		return Status{}, herr
	}
	progress := -1
	if b.Progress != nil {
		progress = *b.Progress
	}
	return Status{Order: order, Phase: b.Phase, Message: b.Message, Progress: progress,
		Client: r.RemoteAddr, Received: h.clock.Now(), Facts: b.Facts, Step: b.Step, Data: b.Data}, nil
}

// authorize checks the bearer token of a live order (constant time), then
// that it comes from an address the order's target is known to hold.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, order string) *httpError {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="osim"`)
		return refusal(http.StatusUnauthorized, "no_token", "httpboot: status for order %q: no bearer token", order)
	}
	return h.authorizeToken(r, order, token)
}

// authorizeToken checks token against the live order's (constant time)
// and binds it to the order's target's addresses: the checks of
// authorize, for a token that came another way (answer.go's query).
func (h *Handler) authorizeToken(r *http.Request, order, token string) *httpError {
	want, err := h.tokens.Token(r.Context(), order)
	if errors.Is(err, ErrUnknownOrder) {
		return refusal(http.StatusNotFound, "unknown_order", "httpboot: status for unknown order %q", order)
	}
	if err != nil {
		return refusal(http.StatusServiceUnavailable, "backend_error", "httpboot: status for order %q: token lookup: %v", order, err)
	}
	if want == "" || subtle.ConstantTimeCompare([]byte(token), []byte(want)) != 1 {
		return refusal(http.StatusForbidden, "bad_token", "httpboot: status for order %q: token does not match", order)
	}
	bound, err := h.boundAddrs(r.Context(), order, want)
	if errors.Is(err, ErrUnknownOrder) {
		return refusal(http.StatusNotFound, "unknown_order", "httpboot: status for unknown order %q", order)
	}
	if err != nil {
		return refusal(http.StatusServiceUnavailable, "backend_error", "httpboot: status for order %q: target lookup: %v", order, err)
	}
	if len(bound) == 0 {
		h.metrics.statusUnbound.Inc()
		return nil
	}
	client := clientAddr(r.RemoteAddr)
	if !slices.Contains(bound, client) {
		return refusal(http.StatusForbidden, "address", "httpboot: status for order %q from %s: not an address the order's target booted from or holds", order, client)
	}
	return nil
}

// parseStatusBody reads and validates a status body of at most
// maxStatusBody bytes (w, when not nil, is told to close the connection
// past that).
func parseStatusBody(body io.ReadCloser, w http.ResponseWriter, order string) (statusBody, *httpError) {
	var b statusBody
	data, err := io.ReadAll(http.MaxBytesReader(w, body, maxStatusBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return b, refusal(http.StatusRequestEntityTooLarge, "too_large", "httpboot: status for order %q: body over %d bytes", order, maxStatusBody)
		}
		return b, refusal(http.StatusBadRequest, "bad_body", "httpboot: status for order %q: read body: %v", order, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return b, refusal(http.StatusBadRequest, "bad_body", "httpboot: status for order %q: body: %v", order, err)
	}
	if dec.More() {
		return b, refusal(http.StatusBadRequest, "bad_body", "httpboot: status for order %q: data after the JSON object", order)
	}
	switch b.Phase {
	case PhaseInstalling, PhaseDone, PhaseFailed:
	default:
		return b, refusal(http.StatusUnprocessableEntity, "invalid", "httpboot: status for order %q: phase %q, want installing, done or failed", order, b.Phase)
	}
	if len(b.Message) > maxMessage {
		return b, refusal(http.StatusUnprocessableEntity, "invalid", "httpboot: status for order %q: message of %d bytes exceeds %d", order, len(b.Message), maxMessage)
	}
	if err := checkText(b.Message); err != nil {
		return b, refusal(http.StatusUnprocessableEntity, "invalid", "httpboot: status for order %q: message: %v", order, err)
	}
	if b.Progress != nil && (*b.Progress < 0 || *b.Progress > 100) {
		return b, refusal(http.StatusUnprocessableEntity, "invalid", "httpboot: status for order %q: progress %d outside 0..100", order, *b.Progress)
	}
	if err := checkFacts("facts", b.Facts); err != nil {
		return b, refusal(http.StatusUnprocessableEntity, "invalid", "httpboot: status for order %q: %v", order, err)
	}
	if b.Step != "" && !slices.Contains(Steps, b.Step) {
		return b, refusal(http.StatusUnprocessableEntity, "invalid", "httpboot: status for order %q: step %q, want one of %s", order, b.Step, strings.Join(Steps, ", "))
	}
	if err := checkFacts("data", b.Data); err != nil {
		return b, refusal(http.StatusUnprocessableEntity, "invalid", "httpboot: status for order %q: %v", order, err)
	}
	return b, nil
}

// checkText refuses text a terminal or a log would interpret: invalid
// UTF-8, C0 controls (ESC starts an escape sequence, CR and LF forge
// lines), DEL and C1 controls (U+009B is a one-rune CSI).
func checkText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for i, c := range s {
		if c < 0x20 || 0x7f <= c && c < 0xa0 {
			return fmt.Errorf("control character %U at byte %d", c, i)
		}
	}
	return nil
}

// checkFacts accepts at most maxFacts keys of 1-63 of [A-Za-z0-9._-]
// starting with a letter or digit (the API's names), each value at most
// maxFactValue bytes of checkText; field ("facts", "data") names the map.
func checkFacts(field string, facts map[string]string) error {
	if len(facts) > maxFacts {
		return fmt.Errorf("%s: %d keys, at most %d", field, len(facts), maxFacts)
	}
	for k, v := range facts {
		if !validFactKey(k) {
			return fmt.Errorf("%s: key %q: want 1-%d of letters, digits, '.', '_' and '-', starting with a letter or digit", field, k, maxFactKey)
		}
		if len(v) > maxFactValue {
			return fmt.Errorf("%s.%s: value of %d bytes exceeds %d", field, k, len(v), maxFactValue)
		}
		if err := checkText(v); err != nil {
			return fmt.Errorf("%s.%s: value: %w", field, k, err)
		}
	}
	return nil
}

func validFactKey(k string) bool {
	if k == "" || len(k) > maxFactKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// checkOrder accepts order ids of letters, digits, '.', '_' and '-'.
func checkOrder(order string) error {
	if order == "" || len(order) > maxOrderLen {
		return fmt.Errorf("httpboot: order id of %d bytes, want 1..%d", len(order), maxOrderLen)
	}
	if order == "." || order == ".." {
		return fmt.Errorf("httpboot: order id %q is not a name", order)
	}
	for i := 0; i < len(order); i++ {
		c := order[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("httpboot: order id %q: only letters, digits, '.', '_' and '-'", order)
		}
	}
	return nil
}
