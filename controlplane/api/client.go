package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Client calls the manager's API. The zero HTTP client means
// http.DefaultClient; long-polls pass their own wait and rely on ctx.
type Client struct {
	BaseURL string // e.g. https://manager:8443 (no /api/v1)
	Token   string
	HTTP    *http.Client
}

// NewClient returns a client for base with token. insecure skips TLS
// verification (labs with self-signed certificates).
func NewClient(base, token string, insecure bool) *Client {
	c := &Client{BaseURL: strings.TrimRight(base, "/"), Token: token}
	if insecure {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for
		c.HTTP = &http.Client{Transport: tr}
	}
	return c
}

// NewClientCA is NewClient trusting the CA certificates (PEM) in caFile
// for the manager's TLS certificate: a manager behind a private CA.
func NewClientCA(base, token, caFile string, insecure bool) (*Client, error) {
	c := NewClient(base, token, insecure)
	if caFile == "" || insecure {
		return c, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c.HTTP = &http.Client{Transport: tr}
	return c, nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// IsStatus reports whether err is an API error with HTTP status code.
func IsStatus(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Do sends a request with a JSON body (nil: none) and decodes a JSON
// answer into out (nil: discard). A non-2xx answer becomes *Error with the
// manager's message.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("api: encoding %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if err := checkResponse(resp); err != nil {
		return err
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("api: %s %s: decoding answer: %w", method, path, err)
	}
	return nil
}

func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, body io.Reader) (*http.Request, error) {
	u := c.BaseURL + Prefix + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("api: %s %s: %w", method, u, err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// checkResponse turns a non-2xx answer into *Error, keeping the manager's
// message (or the body's first line when it is not an API error).
func checkResponse(resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Code: resp.StatusCode}
	if json.Unmarshal(b, e) != nil || e.Message == "" {
		e.Message = strings.TrimSpace(string(b))
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	e.Code = resp.StatusCode
	return e
}

func pageQuery(after string, limit int) url.Values {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}

// CreateTarget registers a target.
func (c *Client) CreateTarget(ctx context.Context, s TargetSpec) (Target, error) {
	var t Target
	err := c.Do(ctx, http.MethodPost, "/targets", nil, s, &t)
	return t, err
}

// ListTargets returns a page of targets matching selector (may be empty)
// and site (may be empty).
func (c *Client) ListTargets(ctx context.Context, selector, site, after string, limit int) (TargetList, error) {
	q := pageQuery(after, limit)
	if selector != "" {
		q.Set("selector", selector)
	}
	if site != "" {
		q.Set("site", site)
	}
	var l TargetList
	err := c.Do(ctx, http.MethodGet, "/targets", q, nil, &l)
	return l, err
}

// GetTarget returns a target by id or by one of its MACs.
func (c *Client) GetTarget(ctx context.Context, idOrMAC string) (Target, error) {
	var t Target
	err := c.Do(ctx, http.MethodGet, "/targets/"+url.PathEscape(idOrMAC), nil, nil, &t)
	return t, err
}

// UpdateTarget changes the fields set in p.
func (c *Client) UpdateTarget(ctx context.Context, id string, p TargetPatch) (Target, error) {
	var t Target
	err := c.Do(ctx, http.MethodPatch, "/targets/"+url.PathEscape(id), nil, p, &t)
	return t, err
}

// DeleteTarget removes a target without a live order.
func (c *Client) DeleteTarget(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/targets/"+url.PathEscape(id), nil, nil, nil)
}

// BlobStatus asks how much of a blob the manager has (HEAD answers with
// the same fields as headers; this uses GET .../status).
func (c *Client) BlobStatus(ctx context.Context, sha string) (BlobStatus, error) {
	var s BlobStatus
	err := c.Do(ctx, http.MethodGet, "/blobs/"+url.PathEscape(sha)+"/status", nil, nil, &s)
	return s, err
}

// UploadBlobChunk sends data as bytes [offset, offset+len(data)) of the
// blob sha of total size size (PUT with Content-Range).
func (c *Client) UploadBlobChunk(ctx context.Context, sha string, size, offset int64, data []byte) (BlobStatus, error) {
	req, err := c.newRequest(ctx, http.MethodPut, "/blobs/"+url.PathEscape(sha), nil, bytes.NewReader(data))
	if err != nil {
		return BlobStatus{}, err
	}
	req.ContentLength = int64(len(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	end := offset + int64(len(data)) - 1
	if len(data) == 0 {
		req.Header.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
	} else {
		req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", offset, end, size))
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return BlobStatus{}, fmt.Errorf("api: PUT blob %s: %w", sha, err)
	}
	defer resp.Body.Close()
	if err := checkResponse(resp); err != nil {
		return BlobStatus{}, err
	}
	var s BlobStatus
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return BlobStatus{}, fmt.Errorf("api: PUT blob %s: decoding answer: %w", sha, err)
	}
	return s, nil
}

// UploadBlob uploads r (size bytes, hashing to sha) in chunks, resuming
// from what the manager already holds; chunk 0 means 8 MiB. r must be
// seekable to resume. When the manager answers 409 (it holds a different
// number of bytes than this upload assumed: an interrupted earlier upload
// was still being written, or another uploader is at work), it asks the
// status again and continues from there, a few times at most.
func (c *Client) UploadBlob(ctx context.Context, sha string, size int64, r io.ReadSeeker, chunk int) (BlobStatus, error) {
	if chunk <= 0 {
		chunk = 8 << 20
	}
	buf := make([]byte, chunk)
	var st BlobStatus
	var err error
	for resync := 0; ; resync++ {
		st, err = c.BlobStatus(ctx, sha)
		if err != nil && !IsStatus(err, http.StatusNotFound) {
			return st, err
		}
		if st.Complete {
			return st, nil
		}
		st, err = c.uploadFrom(ctx, sha, size, r, st.Received, buf)
		if !IsStatus(err, http.StatusConflict) || resync == maxBlobResyncs {
			return st, err
		}
		// Another writer may hold the blob (an earlier, interrupted
		// attempt whose cut body the manager has not seen end yet): give
		// it a moment before reading the status again.
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(blobResyncPause << resync):
		}
	}
}

// maxBlobResyncs bounds how often UploadBlob re-reads the status after a
// 409; the pauses between them double from blobResyncPause (3.1 s in all).
const (
	maxBlobResyncs  = 5
	blobResyncPause = 100 * time.Millisecond
)

// uploadFrom sends r from off to the end in chunks of len(buf).
func (c *Client) uploadFrom(ctx context.Context, sha string, size int64, r io.ReadSeeker, off int64, buf []byte) (BlobStatus, error) {
	if _, err := r.Seek(off, io.SeekStart); err != nil {
		return BlobStatus{}, fmt.Errorf("api: blob %s: seeking to %d: %w", sha, off, err)
	}
	var st BlobStatus
	for {
		n, rerr := io.ReadFull(r, buf)
		if n == 0 && size > 0 && off >= size {
			return st, nil
		}
		var err error
		if st, err = c.UploadBlobChunk(ctx, sha, size, off, buf[:n]); err != nil {
			return st, err
		}
		off += int64(n)
		if st.Complete || off >= size {
			return st, nil
		}
		if rerr != nil {
			return st, fmt.Errorf("api: blob %s: reading at %d of %d: %w", sha, off, size, rerr)
		}
	}
}

// DownloadBlob streams a blob from offset (resuming a download) into w.
func (c *Client) DownloadBlob(ctx context.Context, sha string, offset int64, w io.Writer) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/blobs/"+url.PathEscape(sha), nil, nil)
	if err != nil {
		return 0, err
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return 0, fmt.Errorf("api: GET blob %s: %w", sha, err)
	}
	defer resp.Body.Close()
	if err := checkResponse(resp); err != nil {
		return 0, err
	}
	if offset > 0 && resp.StatusCode != http.StatusPartialContent {
		return 0, fmt.Errorf("api: GET blob %s from %d: the manager answered %s, not a range", sha, offset, resp.Status)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("api: GET blob %s: %w", sha, err)
	}
	return n, nil
}

// CreateImage registers an image whose blobs are uploaded.
func (c *Client) CreateImage(ctx context.Context, s ImageSpec) (Image, error) {
	var i Image
	err := c.Do(ctx, http.MethodPost, "/images", nil, s, &i)
	return i, err
}

// ListImages returns every image (following pages).
func (c *Client) ListImages(ctx context.Context) ([]Image, error) {
	var all []Image
	after := ""
	for {
		var page ImageList
		if err := c.Do(ctx, http.MethodGet, "/images", pageQuery(after, 1000), nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Images...)
		if page.Next == "" {
			return all, nil
		}
		after = page.Next
	}
}

// GetImage returns one image.
func (c *Client) GetImage(ctx context.Context, id string) (Image, error) {
	var i Image
	err := c.Do(ctx, http.MethodGet, "/images/"+url.PathEscape(id), nil, nil, &i)
	return i, err
}

// DeleteImage removes an image no live order uses.
func (c *Client) DeleteImage(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/images/"+url.PathEscape(id), nil, nil, nil)
}

// Register trades a join token (the client's Token) for a boot server
// credential.
func (c *Client) Register(ctx context.Context, r RegisterRequest) (RegisterResponse, error) {
	var out RegisterResponse
	err := c.Do(ctx, http.MethodPost, "/bootservers/register", nil, r, &out)
	return out, err
}

// ListBootServers returns every boot server with its health.
func (c *Client) ListBootServers(ctx context.Context) ([]BootServer, error) {
	var out BootServerList
	err := c.Do(ctx, http.MethodGet, "/bootservers", nil, nil, &out)
	return out.BootServers, err
}

// Heartbeat reports the calling boot server alive.
func (c *Client) Heartbeat(ctx context.Context, hb Heartbeat) (BootServer, error) {
	var out BootServer
	err := c.Do(ctx, http.MethodPost, "/bootservers/heartbeat", nil, hb, &out)
	return out, err
}

// CreateOrders creates orders (one target, a list or a selector).
func (c *Client) CreateOrders(ctx context.Context, r OrderRequest) ([]Order, error) {
	out, err := c.PlaceOrders(ctx, r)
	return out.Orders, err
}

// PlaceOrders creates orders and answers the whole OrderList (its request
// id, and whether it replayed an earlier identical request).
func (c *Client) PlaceOrders(ctx context.Context, r OrderRequest) (OrderList, error) {
	r.DryRun = false
	var out OrderList
	err := c.Do(ctx, http.MethodPost, "/orders", nil, r, &out)
	return out, err
}

// PlanOrders is a dry run of r: the targets it would order; nothing is
// written.
func (c *Client) PlanOrders(ctx context.Context, r OrderRequest) (OrderPlan, error) {
	r.DryRun = true
	var out OrderPlan
	err := c.Do(ctx, http.MethodPost, "/orders", nil, r, &out)
	return out, err
}

// ListOrders returns a page of orders filtered by state, target and site
// (each may be empty).
func (c *Client) ListOrders(ctx context.Context, state OrderState, target, site, after string, limit int) (OrderList, error) {
	q := pageQuery(after, limit)
	if state != "" {
		q.Set("state", string(state))
	}
	if target != "" {
		q.Set("target", target)
	}
	if site != "" {
		q.Set("site", site)
	}
	var out OrderList
	err := c.Do(ctx, http.MethodGet, "/orders", q, nil, &out)
	return out, err
}

// GetOrder returns one order.
func (c *Client) GetOrder(ctx context.Context, id string) (Order, error) {
	var o Order
	err := c.Do(ctx, http.MethodGet, "/orders/"+url.PathEscape(id), nil, nil, &o)
	return o, err
}

// CancelOrder cancels a live order.
func (c *Client) CancelOrder(ctx context.Context, id string) (Order, error) {
	var o Order
	err := c.Do(ctx, http.MethodPost, "/orders/"+url.PathEscape(id)+"/cancel", nil, nil, &o)
	return o, err
}

// RetryOrder starts a new attempt of a failed or cancelled order.
func (c *Client) RetryOrder(ctx context.Context, id string) (Order, error) {
	var o Order
	err := c.Do(ctx, http.MethodPost, "/orders/"+url.PathEscape(id)+"/retry", nil, nil, &o)
	return o, err
}

// EventFilter narrows an event query.
type EventFilter struct {
	Order, Target, Type string
	Limit               int
	// Wait makes the call a long-poll: it returns as soon as an event
	// past after exists, or empty after Wait.
	Wait time.Duration
	// Newest lists the newest Limit matching events (oldest first among
	// them) and never waits; the list's Last is then the manager's last
	// event, where a tail continues.
	Newest bool
}

// ListEvents returns events with Seq > after.
func (c *Client) ListEvents(ctx context.Context, after uint64, f EventFilter) (EventList, error) {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}}
	if f.Order != "" {
		q.Set("order", f.Order)
	}
	if f.Target != "" {
		q.Set("target", f.Target)
	}
	if f.Type != "" {
		q.Set("type", f.Type)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Wait > 0 {
		q.Set("wait", f.Wait.String())
	}
	if f.Newest {
		q.Set("newest", "1")
	}
	var out EventList
	err := c.Do(ctx, http.MethodGet, "/events", q, nil, &out)
	return out, err
}

// RequestPower queues a power action on a target.
func (c *Client) RequestPower(ctx context.Context, target string, r PowerActionRequest) (PowerRequest, error) {
	var out PowerRequest
	err := c.Do(ctx, http.MethodPost, "/targets/"+url.PathEscape(target)+"/power", nil, r, &out)
	return out, err
}

// GetPowerRequest reads one power request.
func (c *Client) GetPowerRequest(ctx context.Context, id string) (PowerRequest, error) {
	var out PowerRequest
	err := c.Do(ctx, http.MethodGet, "/power/"+url.PathEscape(id), nil, nil, &out)
	return out, err
}

// ClaimPower takes the caller's site's pending power requests (boot
// server), waiting up to wait for one.
func (c *Client) ClaimPower(ctx context.Context, wait time.Duration) ([]PowerRequest, error) {
	var out []PowerRequest
	err := c.Do(ctx, http.MethodGet, "/power/claim", url.Values{"wait": {wait.String()}}, nil, &out)
	return out, err
}

// ReportPower reports a held power request's outcome (boot server).
func (c *Client) ReportPower(ctx context.Context, id string, r PowerResult) (PowerRequest, error) {
	var out PowerRequest
	err := c.Do(ctx, http.MethodPost, "/power/"+url.PathEscape(id)+"/result", nil, r, &out)
	return out, err
}

// CredentialSecret fetches a credential with its password (boot server).
func (c *Client) CredentialSecret(ctx context.Context, name string) (CredentialSecret, error) {
	var out CredentialSecret
	err := c.Do(ctx, http.MethodGet, "/credentials/"+url.PathEscape(name)+"/secret", nil, nil, &out)
	return out, err
}

// OrderCounts answers how many orders are in each state.
func (c *Client) OrderCounts(ctx context.Context) (map[OrderState]int, error) {
	var out map[OrderState]int
	err := c.Do(ctx, http.MethodGet, "/orders/counts", nil, nil, &out)
	return out, err
}

// FindTargets lists one page of the targets f matches (after, limit as
// in ListTargets).
func (c *Client) FindTargets(ctx context.Context, f TargetFilter, after string, limit int) (TargetList, error) {
	q := f.Query()
	for k, v := range pageQuery(after, limit) {
		q[k] = v
	}
	var out TargetList
	err := c.Do(ctx, http.MethodGet, "/targets", q, nil, &out)
	return out, err
}

// Revision answers the MDB's revision once it passes after, or after
// wait (0: at once).
func (c *Client) Revision(ctx context.Context, after uint64, wait time.Duration) (uint64, error) {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var out RevisionInfo
	err := c.Do(ctx, http.MethodGet, "/revision", q, nil, &out)
	return out.Revision, err
}

// UploadEvents sends a boot server's buffered events.
func (c *Client) UploadEvents(ctx context.Context, b EventBatch) (EventAck, error) {
	var out EventAck
	err := c.Do(ctx, http.MethodPost, "/events", nil, b, &out)
	return out, err
}

// Sync asks for changes since revision since, waiting up to wait for one.
func (c *Client) Sync(ctx context.Context, since uint64, wait time.Duration, limit int) (SyncResponse, error) {
	q := url.Values{"since": {strconv.FormatUint(since, 10)}}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out SyncResponse
	err := c.Do(ctx, http.MethodGet, "/sync", q, nil, &out)
	return out, err
}

// SyncSnapshot fetches the snapshot page after cursor.
func (c *Client) SyncSnapshot(ctx context.Context, cursor string, limit int) (SyncResponse, error) {
	q := url.Values{"snapshot": {cursor}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out SyncResponse
	err := c.Do(ctx, http.MethodGet, "/sync", q, nil, &out)
	return out, err
}

// CreateToken makes a token (admin); the answer's Secret is shown once.
func (c *Client) CreateToken(ctx context.Context, r TokenRequest) (TokenInfo, error) {
	var out TokenInfo
	err := c.Do(ctx, http.MethodPost, "/tokens", nil, r, &out)
	return out, err
}

// ListTokens lists tokens (without secrets).
func (c *Client) ListTokens(ctx context.Context) ([]TokenInfo, error) {
	var out TokenList
	err := c.Do(ctx, http.MethodGet, "/tokens", nil, nil, &out)
	return out.Tokens, err
}

// DeleteToken revokes a token.
func (c *Client) DeleteToken(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/tokens/"+url.PathEscape(id), nil, nil, nil)
}
