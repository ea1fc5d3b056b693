package pxeclient

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"osim/controlplane/api"
)

// The kernel command line keys of the osim installer (controlplane/api's
// install contract): with osim.mode=install the client plays the image
// install instead of the status-only installer.
const (
	ParamMode   = "osim.mode"
	ParamURL    = "osim.url"
	ParamOrder  = "osim.order"
	ParamMAC    = "osim.mac"
	ModeInstall = "install"
)

// Phases of the image install, timed inside PhaseInstall.
const (
	PhasePlan  = "install-plan"  // GET /install/{order}
	PhaseImage = "install-image" // streaming the disk files
)

// ImageConfig is how the simulated installer handles a disk image
// (InstallConfig.Image); the zero value counts bytes into io.Discard.
type ImageConfig struct {
	// DiskSize is the simulated disk's size in bytes, reported as fact
	// disk0_size (default 64 GiB).
	DiskSize int64
	// Sink opens where a disk file's bytes go; nil: io.Discard.
	Sink func(order string, f api.PlanFile) (io.WriteCloser, error)
	// Decompress writes a gzip or zstd file decompressed, as the real
	// installer does; off, the bytes are counted as served.
	Decompress bool
	// ProgressEvery is the most time between two progress reports while
	// streaming (default 5 s, the contract's bound).
	ProgressEvery time.Duration
	// Now reads the clock for the progress cadence; nil: time.Now.
	Now func() time.Time
}

// ImageResult is what the image install did.
type ImageResult struct {
	Order   string
	Files   int           // disk files the boot server answered with 200
	Served  int64         // bytes read from the boot server
	Written int64         // bytes written to the sink
	Stream  time.Duration // streaming time, all disk files
	Reason  string        // why the install failed, when it did
}

// imageSession is one install-mode run's reporting state.
type imageSession struct {
	c         *client
	fw        *Firmware
	ic        *InstallConfig
	cfg       ImageConfig
	statusURL string
	token     string
}

// installImage plays the osim installer's install mode: inventory, plan,
// stream and verify each disk file, then done; a failure it can report
// (a bad plan, a hash mismatch) ends in a failed report and a nil error.
func (c *client) installImage(ctx context.Context, fw *Firmware, ic *InstallConfig, cmdline string) error {
	p := map[string]string{}
	for _, k := range []string{ParamURL, ParamOrder, ParamToken, ParamMAC} {
		v, ok := CmdlineParam(cmdline, k)
		if !ok || v == "" {
			return fmt.Errorf("kernel command line %q has %s=%s but no %s", cmdline, ParamMode, ModeInstall, k)
		}
		p[k] = v
	}
	base := strings.TrimSuffix(p[ParamURL], "/")
	if !isHTTP(base) {
		return fmt.Errorf("kernel command line: %s=%q is not an http URL", ParamURL, base)
	}
	s := &imageSession{c: c, fw: fw, ic: ic, token: p[ParamToken], statusURL: base + "/status/" + p[ParamOrder]}
	if ic.Image != nil {
		s.cfg = *ic.Image
	}
	if s.cfg.DiskSize <= 0 {
		s.cfg.DiskSize = 64 << 30
	}
	if s.cfg.ProgressEvery <= 0 {
		s.cfg.ProgressEvery = 5 * time.Second
	}
	if s.cfg.Now == nil {
		s.cfg.Now = time.Now
	}
	c.res.Image = &ImageResult{Order: p[ParamOrder]}
	facts := map[string]string{"mac": p[ParamMAC], "disk0_size": strconv.FormatInt(s.cfg.DiskSize, 10),
		"disk0_path": "/dev/vda", "firmware": firmwareMode(fw)}
	if err := s.report(ctx, StatusReport{Phase: "installing", Step: api.StepInventory, Progress: pct(0),
		Message: "inventory", Facts: facts}); err != nil {
		return err
	}
	var plan api.InstallPlan
	err := c.timed(fw, PhasePlan, func() error {
		var err error
		plan, err = c.plan(ctx, base+"/install/"+p[ParamOrder], s.token)
		return err
	})
	if err != nil {
		return s.fail(ctx, api.StepPlan, err.Error(), err)
	}
	if plan.StatusURL != "" {
		s.statusURL = plan.StatusURL
	}
	var disks []api.PlanFile
	var total int64
	for _, f := range plan.Files {
		if f.Role == api.RoleDisk {
			disks, total = append(disks, f), total+f.Size
		}
	}
	if len(disks) == 0 {
		return s.fail(ctx, api.StepPlan, fmt.Sprintf("plan of order %s has no %s file", plan.Order, api.RoleDisk), nil)
	}
	var step, reason string
	err = c.timed(fw, PhaseImage, func() error {
		var err error
		step, reason, err = s.stream(ctx, disks, total)
		return err
	})
	if err != nil {
		return err
	}
	if reason != "" {
		return s.fail(ctx, step, reason, nil)
	}
	if err := s.report(ctx, StatusReport{Phase: "done", Step: api.StepFinish, Progress: pct(100), Message: "image written"}); err != nil {
		return err
	}
	c.res.Installed = "done"
	return nil
}

func pct(p int) *int { return &p }

func firmwareMode(fw *Firmware) string {
	if fw.Arch == 7 {
		return "uefi"
	}
	return "bios"
}

// fail reports phase failed with step and reason; err, when set, is also
// returned if the report cannot be sent (the reason is lost otherwise).
func (s *imageSession) fail(ctx context.Context, step, reason string, cause error) error {
	s.c.res.Image.Reason = reason
	if err := s.report(ctx, StatusReport{Phase: "failed", Step: step, Message: reason}); err != nil {
		if cause != nil {
			return fmt.Errorf("%w (and the failure was not reported: %v)", cause, err)
		}
		return err
	}
	s.c.res.Installed = "failed"
	return nil
}

func (s *imageSession) report(ctx context.Context, r StatusReport) error {
	return s.c.report(ctx, s.fw, s.ic, s.statusURL, s.token, r)
}

// plan fetches the install plan with the order's bearer token.
func (c *client) plan(ctx context.Context, u, token string) (api.InstallPlan, error) {
	var plan api.InstallPlan
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return plan, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return plan, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return plan, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&plan); err != nil {
		return plan, fmt.Errorf("GET %s: plan: %w", u, err)
	}
	return plan, nil
}

// stream writes every disk file to its sink, reporting progress as
// percent of the bytes served at least every ProgressEvery. A file that
// is not what the plan says is a reason (with its step); err is for what
// ends the run without a report (the context, a report not sent).
func (s *imageSession) stream(ctx context.Context, files []api.PlanFile, total int64) (step, reason string, err error) {
	t0 := s.cfg.Now()
	defer func() { s.c.res.Image.Stream += s.cfg.Now().Sub(t0) }()
	pr := &progress{s: s, ctx: ctx, total: total, last: t0}
	for _, f := range files {
		if step, reason, err = s.one(ctx, f, pr); reason != "" || err != nil {
			return step, reason, err
		}
	}
	return "", "", nil
}

// one streams f into its sink and checks its sha256.
func (s *imageSession) one(ctx context.Context, f api.PlanFile, pr *progress) (step, reason string, err error) {
	broken := func(format string, a ...any) (string, string, error) {
		if pr.err != nil {
			return "", "", pr.err
		}
		if ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		return api.StepWrite, fmt.Sprintf(format, a...), nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return broken("%s: bad URL %q: %v", f.Name, f.URL, err)
	}
	resp, err := s.c.httpClient().Do(req)
	if err != nil {
		return broken("GET %s: %v", f.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return broken("GET %s: %s", f.URL, resp.Status)
	}
	s.c.res.Image.Files++
	sink := io.WriteCloser(nopCloser{io.Discard})
	if s.cfg.Sink != nil {
		if sink, err = s.cfg.Sink(s.c.res.Image.Order, f); err != nil {
			return broken("%s: sink: %v", f.Name, err)
		}
	}
	h := sha256.New()
	served := io.TeeReader(io.TeeReader(resp.Body, h), pr)
	in := served
	if s.cfg.Decompress {
		if in, err = decompressor(f.Compression, served); err != nil {
			sink.Close()
			return broken("%s: %v", f.Name, err)
		}
	}
	n, err := io.Copy(struct{ io.Writer }{sink}, in)
	s.c.res.Image.Written += n
	if cerr := sink.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("sink: %w", cerr)
	}
	if err != nil {
		return broken("%s: after %d bytes written: %v", f.Name, n, err)
	}
	// What the decompressor left unread still counts for the hash.
	if _, err := io.Copy(io.Discard, served); err != nil {
		return broken("%s: %v", f.Name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return api.StepVerify, fmt.Sprintf("%s: sha256 %s, plan says %s", f.Name, got, f.SHA256), nil
	}
	return "", "", nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// decompressor reads a gzip or zstd stream; "" is raw.
func decompressor(compression string, r io.Reader) (io.Reader, error) {
	switch compression {
	case api.CompressionNone:
		return r, nil
	case api.CompressionGzip:
		return gzip.NewReader(r)
	case api.CompressionZstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("compression %q is not gzip or zstd", compression)
}

// progress counts served bytes and reports percent of total whenever
// ProgressEvery passed since the last report.
type progress struct {
	s     *imageSession
	ctx   context.Context
	total int64
	done  int64
	last  time.Time
	err   error // a report that could not be sent ends the stream
}

var errReport = errors.New("progress report not sent")

func (p *progress) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	p.s.c.res.Image.Served += int64(len(b))
	if p.err != nil {
		return 0, p.err
	}
	now := p.s.cfg.Now()
	if now.Sub(p.last) < p.s.cfg.ProgressEvery {
		return len(b), nil
	}
	p.last = now
	percent := int(min(99, p.done*100/max(1, p.total)))
	if err := p.s.report(p.ctx, StatusReport{Phase: "installing", Step: api.StepWrite, Progress: &percent,
		Message: fmt.Sprintf("%d of %d bytes", p.done, p.total)}); err != nil {
		p.err = fmt.Errorf("%w: %w", errReport, err)
		return 0, p.err
	}
	return len(b), nil
}
