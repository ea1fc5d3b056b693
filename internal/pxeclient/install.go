package pxeclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// The kernel command line parameters the installer reads (the boot
// server's script template puts them there, see dataplane/httpboot):
//
//	osim.status=<URL>   where to POST status reports (…/status/<order>)
//	osim.token=<TOKEN>  sent as "Authorization: Bearer <TOKEN>"
const (
	ParamStatus = "osim.status"
	ParamToken  = "osim.token"
)

// InstallConfig is what the simulated installer does once the kernel and
// initrds are fetched: one "installing" report at progress 0, Steps more
// with rising progress, Delay apart, then "done" (or "failed" with Fail).
type InstallConfig struct {
	Steps int           // progress reports after the first; 0: none
	Delay time.Duration // between two reports
	Fail  bool          // end with phase "failed" instead of "done"
	// Facts, when not empty, go with the final report as "facts".
	Facts map[string]string
	// Retries is how many times one report is resent after a 503 or a
	// transport error (default 5); RetryBase is the first backoff
	// (default 500 ms), doubled per retry up to 10 s.
	Retries   int
	RetryBase time.Duration
	// Sleep waits d or until ctx ends; nil: a real timer. Tests pass
	// one that records the waits.
	Sleep func(ctx context.Context, d time.Duration) error
	// Image is how an install-mode boot (osim.mode=install on the kernel
	// command line) handles the disk image; nil: the zero ImageConfig.
	// Steps, Delay, Fail and Facts are for the status-only flow.
	Image *ImageConfig
}

// StatusReport is the JSON body of one status call, as
// dataplane/httpboot's status endpoint accepts it.
type StatusReport struct {
	Phase    string            `json:"phase"`
	Step     string            `json:"step,omitempty"` // install mode only: api.Step*
	Progress *int              `json:"progress,omitempty"`
	Message  string            `json:"message,omitempty"`
	Facts    map[string]string `json:"facts,omitempty"`
}

// retryable marks a status answer the installer should resend.
type retryable struct{ error }

func (r retryable) Unwrap() error { return r.error }

// CmdlineParam returns the value of the first key=value word of cmdline
// with that key.
func CmdlineParam(cmdline, key string) (string, bool) {
	for _, w := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(w, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// install plays the installer against the status URL in cmdline.
func (c *client) install(ctx context.Context, fw *Firmware, cmdline string) error {
	ic := *c.cfg.Install
	if ic.Sleep == nil {
		ic.Sleep = sleepCtx
	}
	if ic.Retries <= 0 {
		ic.Retries = 5
	}
	if ic.RetryBase <= 0 {
		ic.RetryBase = 500 * time.Millisecond
	}
	if mode, _ := CmdlineParam(cmdline, ParamMode); mode == ModeInstall {
		return c.installImage(ctx, fw, &ic, cmdline)
	}
	statusURL, ok := CmdlineParam(cmdline, ParamStatus)
	if !ok || !isHTTP(statusURL) {
		return fmt.Errorf("kernel command line %q has no %s=<http URL>", cmdline, ParamStatus)
	}
	token, ok := CmdlineParam(cmdline, ParamToken)
	if !ok || token == "" {
		return fmt.Errorf("kernel command line %q has no %s", cmdline, ParamToken)
	}
	progress := func(p int) *int { return &p }
	reports := []StatusReport{{Phase: "installing", Progress: progress(0), Message: "installer started"}}
	for i := 1; i <= ic.Steps; i++ {
		reports = append(reports, StatusReport{Phase: "installing", Progress: progress(i * 100 / (ic.Steps + 1)),
			Message: fmt.Sprintf("step %d of %d", i, ic.Steps)})
	}
	last := StatusReport{Phase: "done", Progress: progress(100), Message: "installed", Facts: ic.Facts}
	if ic.Fail {
		last = StatusReport{Phase: "failed", Message: "simulated installer failure", Facts: ic.Facts}
	}
	if len(last.Facts) == 0 {
		last.Facts = nil
	}
	reports = append(reports, last)
	for i, r := range reports {
		if i > 0 {
			if err := ic.Sleep(ctx, ic.Delay); err != nil {
				return err
			}
		}
		if err := c.report(ctx, fw, &ic, statusURL, token, r); err != nil {
			return err
		}
	}
	c.res.Installed = last.Phase
	return nil
}

// report sends one status report, retrying a 503 or a transport error with
// backoff; a 4xx (or another answer) is a PhaseError for PhaseStatus.
func (c *client) report(ctx context.Context, fw *Firmware, ic *InstallConfig, statusURL, token string, r StatusReport) error {
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	wait := ic.RetryBase
	for try := 0; ; try++ {
		err := c.post(ctx, statusURL, token, body)
		if err == nil {
			return nil
		}
		var rt retryable
		if !errors.As(err, &rt) {
			return &PhaseError{Stage: fw.Name, Phase: PhaseStatus, Err: err}
		}
		if try >= ic.Retries {
			return &PhaseError{Stage: fw.Name, Phase: PhaseStatus, Err: fmt.Errorf("gave up after %d tries: %w", try+1, rt.error)}
		}
		if err := ic.Sleep(ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, 10*time.Second)
	}
}

func (c *client) post(ctx context.Context, statusURL, token string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, statusURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	c.res.StatusCalls++
	resp, err := c.httpClient().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return retryable{fmt.Errorf("POST %s: %w", statusURL, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	err = fmt.Errorf("POST %s: %s: %s", statusURL, resp.Status, strings.TrimSpace(string(b)))
	if resp.StatusCode == http.StatusServiceUnavailable {
		return retryable{err}
	}
	return err
}
