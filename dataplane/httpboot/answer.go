package httpboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Answers renders a vendor installer's answer file (preseed, kickstart,
// autoinstall) for a live order: on a boot server the agent, from its
// view and the image's staged template. base is the boot server's
// absolute HTTP base. Errors: ErrUnknownOrder (404), ErrNoAnswer (409),
// ErrBadAnswerInput (422); anything else is 503. The body carries the
// order's secrets: the handler never logs it.
type Answers interface {
	Answer(ctx context.Context, order, base string) (contentType string, body []byte, err error)
}

// Sentinel errors of an Answers backend.
var (
	// ErrNoAnswer: the order is known but has no answer file now (its
	// image is not an installer image with an answer template, or the
	// order does not boot).
	ErrNoAnswer = errors.New("no answer file")
	// ErrBadAnswerInput: the order's data does not render (a required
	// parameter missing, a value the flavor cannot quote); the error
	// names the parameter, never its value.
	ErrBadAnswerInput = errors.New("answer file does not render")
)

// maxAnswerBytes bounds a served answer file (ips/answer renders at most 1 MiB).
const maxAnswerBytes = 1 << 20

// answerURL is {{.AnswerURL}} of b: <base>/answer/<order>?token=<token>,
// or "" when b has no answer file. A vendor installer cannot send an
// Authorization header, so its token rides in the query.
func answerURL(b Boot, base string) (string, error) {
	if !b.Answer {
		return "", nil
	}
	if b.Order == "" || b.Token == "" {
		return "", fmt.Errorf("%w: an answer file needs the order and its token", ErrUnsafeValue)
	}
	return strings.TrimSuffix(base, "/") + "/answer/" + b.Order + "?token=" + url.QueryEscape(b.Token), nil
}

// seedParts are the files cloud-init's NoCloud datasource reads from a
// seed URL ("ds=nocloud;s=URL"): it appends each name to the URL, so
// "s={{.AnswerURL}}&part=" turns them into ?part=NAME of this route.
// user-data is the answer file itself (Ubuntu's autoinstall is
// cloud-config); meta-data names the instance so cloud-init runs once per
// order; vendor-data is empty. An empty part is the answer file.
var seedParts = map[string]bool{"": true, "user-data": true, "meta-data": true, "vendor-data": true}

// serveAnswer answers GET /answer/{order}?token=TOKEN[&part=NAME]: the
// order's token (constant time) bound to its target's addresses as for
// POST /status, then the rendered answer file (or a NoCloud seed part,
// see seedParts), never cached. Neither the token nor the body is logged.
func (h *Handler) serveAnswer(w http.ResponseWriter, r *http.Request) {
	order := r.PathValue("order")
	w.Header().Set("Cache-Control", "no-store")
	part := r.URL.Query().Get("part")
	if !seedParts[part] {
		h.metrics.answers.WithLabelValues("refused").Inc()
		http.Error(w, fmt.Sprintf("httpboot: answer for order %q: no part %q (want user-data, meta-data or vendor-data)", order, part), http.StatusNotFound)
		return
	}
	if h.answers == nil {
		h.metrics.answers.WithLabelValues("disabled").Inc()
		http.Error(w, "httpboot: this boot server serves no answer files", http.StatusNotFound)
		return
	}
	if err := checkOrder(order); err != nil {
		h.metrics.answers.WithLabelValues("refused").Inc()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	herr := refusal(http.StatusUnauthorized, "no_token", "httpboot: answer for order %q: no token in the query", order)
	if token := r.URL.Query().Get("token"); token != "" {
		herr = h.authorizeToken(r, order, token)
	}
	if herr != nil {
		outcome := "refused"
		if herr.code == http.StatusNotFound {
			outcome = "unknown_order"
		}
		h.metrics.answers.WithLabelValues(outcome).Inc()
		if ok, suppressed := h.refusals.allow("answer/"+herr.reason, h.clock.Now()); ok {
			h.log.Warn("answer refused", "order", order, "client", r.RemoteAddr, "reason", herr.reason,
				"code", herr.code, "suppressed", suppressed)
		}
		http.Error(w, strings.Replace(herr.msg, "status for", "answer for", 1), herr.code)
		return
	}
	if part == "meta-data" || part == "vendor-data" {
		body := ""
		if part == "meta-data" {
			body = "instance-id: " + order + "\n"
		}
		h.metrics.answers.WithLabelValues("served").Inc()
		h.log.Info("answer", "order", order, "client", r.RemoteAddr, "part", part, "bytes", len(body))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
		return
	}
	ctype, body, err := h.answers.Answer(r.Context(), order, h.absoluteBase(r))
	if err == nil && len(body) > maxAnswerBytes {
		err = fmt.Errorf("%d bytes, over %d", len(body), maxAnswerBytes)
	}
	if err != nil {
		code, outcome := backendError(err, ErrNoAnswer, ErrBadAnswerInput)
		h.metrics.answers.WithLabelValues(outcome).Inc()
		h.log.Warn("answer not served", "order", order, "client", r.RemoteAddr, "outcome", outcome, "err", err)
		http.Error(w, fmt.Sprintf("httpboot: answer for order %q: %v", order, err), code)
		return
	}
	if ctype == "" {
		ctype = "text/plain; charset=utf-8"
	}
	h.metrics.answers.WithLabelValues("served").Inc()
	h.log.Info("answer", "order", order, "client", r.RemoteAddr, "part", part, "bytes", len(body))
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}
