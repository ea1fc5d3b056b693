package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"strings"

	"osim/controlplane/api"
	"osim/controlplane/bootplan"
	"osim/controlplane/lifecycle"
	"osim/dataplane/httpboot"
	"osim/internal/cmdline"
	"osim/ips/answer"
)

var _ httpboot.Answers = (*Agent)(nil)

// Answer is the httpboot.Answers: the answer file of a live order whose
// image is an installer image with an answer template, rendered from the
// staged template with the target's host name, the image's defaults
// merged with the order's parameters, and the order's status URL and
// token. Its errors never quote a parameter's value.
func (l *localView) Answer(_ context.Context, order, base string) (string, []byte, error) {
	l.mu.RLock()
	o, ok := l.v.orders[order]
	t := l.v.targets[o.Target]
	img, haveImg := l.v.images[o.Image]
	l.mu.RUnlock()
	if !ok {
		return "", nil, fmt.Errorf("%w: %q", httpboot.ErrUnknownOrder, order)
	}
	if !lifecycle.Boots(o.State) {
		return "", nil, fmt.Errorf("%w: order %s is %s; an answer file is for an order that boots (staged, booting, installing)", httpboot.ErrNoAnswer, o.ID, o.State)
	}
	if !haveImg {
		return "", nil, fmt.Errorf("agent: order %s: image %q is not in the local view", o.ID, o.Image)
	}
	f, ok := bootplan.AnswerFile(img)
	if !ok {
		return "", nil, fmt.Errorf("%w: order %s: image %s (format %q) has no answer file", httpboot.ErrNoAnswer, o.ID, img.ID, img.Format)
	}
	text, err := l.readTemplate(f)
	if err != nil {
		return "", nil, fmt.Errorf("agent: order %s: answer template %s of image %s: %w", o.ID, f.Name, img.ID, err)
	}
	base = strings.TrimSuffix(base, "/")
	params := map[string]string{}
	maps.Copy(params, img.Defaults)
	maps.Copy(params, o.Params)
	mac := ""
	if len(t.MACs) > 0 {
		mac = t.MACs[0]
	} else if len(o.MACs) > 0 {
		mac = o.MACs[0]
	}
	d := answer.Data{Hostname: t.Hostname, Order: o.ID, Token: o.Token, MAC: mac, BaseURL: base,
		StatusURL: base + "/status/" + o.ID, Params: params}
	d.AnswerURL, err = answerURLOf(base, o)
	if err != nil {
		return "", nil, err
	}
	body, err := answer.Render(f.Flavor, text, d)
	if err != nil {
		return "", nil, fmt.Errorf("%w: order %s, image %s: %w", httpboot.ErrBadAnswerInput, o.ID, img.ID, err)
	}
	l.answerServed(t, o, mac)
	return answer.ContentType(f.Flavor), body, nil
}

// answerURLOf is the answer file's own URL, as httpboot names it
// ({{.AnswerURL}} of the command line).
func answerURLOf(base string, o api.Order) (string, error) {
	u := base + "/answer/" + o.ID + "?token=" + url.QueryEscape(o.Token)
	if err := cmdline.SafeToken("answer URL", u); err != nil {
		return "", fmt.Errorf("agent: order %s: %w", o.ID, err)
	}
	return u, nil
}

// readTemplate reads a staged template blob, at most
// answer.MaxTemplateBytes.
func (l *localView) readTemplate(f api.ImageFile) (string, error) {
	if f.Size > answer.MaxTemplateBytes {
		return "", fmt.Errorf("%d bytes, over %d", f.Size, answer.MaxTemplateBytes)
	}
	b, err := l.openBlob(f)
	if err != nil {
		return "", fmt.Errorf("not staged: %w", err)
	}
	defer b.Close()
	text, err := io.ReadAll(io.LimitReader(b, answer.MaxTemplateBytes+1))
	if err != nil {
		return "", err
	}
	if len(text) > answer.MaxTemplateBytes {
		return "", errors.New("over the template limit")
	}
	return string(text), nil
}

// answerServed reports the first answer fetch of an order attempt as a
// file.served event (file answer/<order>), for the manager's event log.
func (l *localView) answerServed(t api.Target, o api.Order, mac string) {
	if !l.seen.pass(fmt.Sprintf("answer/%s/%d", o.ID, o.Attempt), false, l.clock.Now()) {
		return
	}
	if err := l.q.Emit(api.Event{Type: api.EventFileServed, Target: t.ID, MAC: mac, Order: o.ID,
		Data: map[string]string{"file": "answer/" + o.ID}}); err != nil {
		l.log.Warn("file.served not buffered", "order", o.ID, "err", err)
	}
}
