package httpboot

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// FirstBoots takes the reports of the first-boot reporter the osim
// installer leaves on the installed system (POST /firstboot/{order}):
// the order is done by then, so its token is looked up among the live
// orders and those done within the backend's report window.
type FirstBoots interface {
	// FirstBootToken answers the order's token; ErrUnknownOrder (404)
	// or ErrReportWindowClosed (410) when it has none any more.
	FirstBootToken(ctx context.Context, order string) (string, error)
	// FirstBootReport records one procedure's result.
	FirstBootReport(ctx context.Context, r FirstBootReport) error
}

// ErrReportWindowClosed: the order finished longer ago than the report
// window (or was cancelled or failed): 410 Gone.
var ErrReportWindowClosed = errors.New("first-boot report window closed")

// FirstBootReport is one first-boot procedure's result.
type FirstBootReport struct {
	Order     string
	Procedure string
	ExitCode  int
	// OutputTail is the end of the output, at most MaxFirstBootTail
	// bytes, line breaks and tabs escaped, other control bytes and
	// invalid UTF-8 replaced by U+FFFD.
	OutputTail string
	Client     string
	Time       time.Time
}

// Bounds of a first-boot report.
const (
	// maxFirstBootBody is what the handler reads of a body; the reporter
	// sends the last 2 KiB of the output.
	maxFirstBootBody = 64 << 10
	// MaxFirstBootTail is the output tail kept: one event data value.
	MaxFirstBootTail = 256
)

// serveFirstBoot answers POST /firstboot/{order}?procedure=NAME&exit_code=N
// with the output tail as the body (text/plain): 204 when recorded. The
// bearer token is the order's; the address is not bound (the installed
// system may hold another). The token is never logged.
func (h *Handler) serveFirstBoot(w http.ResponseWriter, r *http.Request) {
	order := r.PathValue("order")
	if h.firstboots == nil {
		http.Error(w, "httpboot: this boot server takes no first-boot reports", http.StatusNotFound)
		return
	}
	rep, err := parseFirstBoot(w, r, order)
	if err != nil {
		h.metrics.firstboots.WithLabelValues("refused").Inc()
		h.log.Warn("first-boot report refused", "order", order, "client", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if code, reason := h.firstBootAuth(r, order); code != 0 {
		outcome := "refused"
		switch code {
		case http.StatusGone:
			outcome = "gone"
		case http.StatusServiceUnavailable:
			outcome = "error"
		}
		h.metrics.firstboots.WithLabelValues(outcome).Inc()
		h.log.Warn("first-boot report refused", "order", order, "client", r.RemoteAddr, "reason", reason, "code", code)
		http.Error(w, fmt.Sprintf("httpboot: first-boot report for order %q: %s", order, reason), code)
		return
	}
	rep.Client, rep.Time = clientAddr(r.RemoteAddr).String(), h.clock.Now()
	if err := h.firstboots.FirstBootReport(r.Context(), rep); err != nil {
		h.metrics.firstboots.WithLabelValues("error").Inc()
		h.log.Warn("first-boot report not recorded", "order", order, "procedure", rep.Procedure, "err", err)
		http.Error(w, fmt.Sprintf("httpboot: first-boot report for order %q: %v", order, err), http.StatusServiceUnavailable)
		return
	}
	outcome := "succeeded"
	if rep.ExitCode != 0 {
		outcome = "failed"
	}
	h.metrics.firstboots.WithLabelValues(outcome).Inc()
	h.log.Info("first-boot report", "order", order, "procedure", rep.Procedure, "exit_code", rep.ExitCode, "client", rep.Client)
	w.WriteHeader(http.StatusNoContent)
}

// firstBootAuth checks the bearer token (constant time): 0 when it
// matches, else the code and why.
func (h *Handler) firstBootAuth(r *http.Request, order string) (int, string) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return http.StatusUnauthorized, "no bearer token"
	}
	want, err := h.firstboots.FirstBootToken(r.Context(), order)
	switch {
	case errors.Is(err, ErrUnknownOrder):
		return http.StatusNotFound, "unknown order"
	case errors.Is(err, ErrReportWindowClosed):
		return http.StatusGone, err.Error()
	case err != nil:
		return http.StatusServiceUnavailable, "token lookup: " + err.Error()
	case want == "" || subtle.ConstantTimeCompare([]byte(token), []byte(want)) != 1:
		return http.StatusForbidden, "token does not match"
	}
	return 0, ""
}

// parseFirstBoot reads the query and at most maxFirstBootBody bytes of
// body; the error names what is wrong.
func parseFirstBoot(w http.ResponseWriter, r *http.Request, order string) (FirstBootReport, error) {
	rep := FirstBootReport{Order: order}
	if err := checkOrder(order); err != nil {
		return rep, err
	}
	q := r.URL.Query()
	rep.Procedure = q.Get("procedure")
	if err := checkProcedureName(rep.Procedure); err != nil {
		return rep, err
	}
	n, err := strconv.Atoi(q.Get("exit_code"))
	if err != nil || n < -1 || n > 255 {
		return rep, fmt.Errorf("httpboot: exit_code %q: want -1..255", q.Get("exit_code"))
	}
	rep.ExitCode = n
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFirstBootBody))
	if err != nil {
		return rep, fmt.Errorf("httpboot: first-boot report body: %w (at most %d bytes)", err, maxFirstBootBody)
	}
	rep.OutputTail = FitTail(string(body), MaxFirstBootTail)
	return rep, nil
}

// checkProcedureName: 1..63 of [A-Za-z0-9._-], as image procedures are named.
func checkProcedureName(s string) error {
	if s == "" || len(s) > 63 {
		return fmt.Errorf("httpboot: procedure %q: want 1..63 bytes", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("httpboot: procedure %q: only letters, digits, '.', '_' and '-'", s)
		}
	}
	return nil
}

// FitTail escapes line breaks and tabs (\n \r \t), replaces other
// control characters and invalid UTF-8 by U+FFFD, and keeps the last max
// bytes (whole characters).
func FitTail(s string, max int) string {
	var b strings.Builder
	for len(s) > 0 {
		c, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		switch {
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == utf8.RuneError || c < 0x20 || c == 0x7f:
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(c)
		}
	}
	out := b.String()
	for len(out) > max {
		_, size := utf8.DecodeRuneInString(out)
		out = out[size:]
	}
	return out
}
