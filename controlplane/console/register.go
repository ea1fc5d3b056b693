package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strings"

	"osim/controlplane/api"
)

// Registration from an osim-ips build output: the images page's form
// sends the output folder's manifest.json first and then its files
// (multipart, in form order). Each file is streamed into the manager's
// blob store as it arrives (no copy on the manager's disk beside the
// blob), checked against the manifest's size and sha256, and the image is
// registered as `osim-ips build --register` would.

// uploadChunk is one PUT of a blob through the API.
const uploadChunk = 16 << 20

// maxManifestBytes bounds manifest.json (a debian image's lists every
// package: some hundred KiB).
const maxManifestBytes = 8 << 20

// ipsManifest is the part of osim-ips's manifest.json (ips/build.Manifest)
// that registers an image; its parameters have api.Parameter's JSON.
type ipsManifest struct {
	Tool       string               `json:"tool"`
	Name       string               `json:"name"`
	Version    string               `json:"version"`
	Kind       string               `json:"kind"`
	Format     string               `json:"format"`
	Files      []api.ImageFile      `json:"files"`
	Cmdline    string               `json:"cmdline"`
	Defaults   map[string]string    `json:"defaults"`
	Parameters []api.Parameter      `json:"parameters"`
	Procedures []api.Procedure      `json:"procedures"`
	Install    *api.InstallSettings `json:"install"`
	Digest     string               `json:"digest"`
}

func (m ipsManifest) spec() api.ImageSpec {
	return api.ImageSpec{Name: m.Name, Version: m.Version, Kind: m.Kind, Format: m.Format, Install: m.Install,
		Files: m.Files, Cmdline: m.Cmdline, Defaults: m.Defaults, Procedures: m.Procedures, Parameters: m.Parameters}
}

// registerImage answers POST /ui/images/register (multipart: csrf, then
// manifest, then the files).
func (c *Console) registerImage(w http.ResponseWriter, r *http.Request) {
	s := c.sessions.fromRequest(r)
	if s != nil {
		ok, err := c.tokenStands(r.Context(), s)
		if err != nil {
			http.Error(w, "console: the token store is unavailable; try again", http.StatusServiceUnavailable)
			return
		}
		if !ok {
			c.sessions.drop(s.id)
			s = nil
		}
	}
	if s == nil {
		http.Error(w, "console: not signed in (or the session expired, or its token was revoked)", http.StatusUnauthorized)
		return
	}
	if err := checkOrigin(r); err != nil {
		c.refuse(w, r, http.StatusForbidden, err)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "multipart/form-data" {
		c.refuse(w, r, http.StatusBadRequest, errors.New("console: register: want a multipart form"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, c.cfg.MaxUpload)
	mr, err := r.MultipartReader()
	if err != nil {
		c.refuse(w, r, http.StatusBadRequest, fmt.Errorf("console: register: %v", err))
		return
	}
	// The CSRF token is the form's first field: nothing is read or
	// written before it is checked.
	p, err := mr.NextPart()
	if err != nil || p.FormName() != "csrf" {
		c.refuse(w, r, http.StatusForbidden, errors.New("console: register: the form's first field must be its CSRF token"))
		return
	}
	tok, _ := io.ReadAll(io.LimitReader(p, 128))
	if !s.csrfOK(string(tok)) {
		c.refuse(w, r, http.StatusForbidden, errors.New("console: the form's CSRF token does not match this session (reload the page)"))
		return
	}
	img, err := c.receiveBuild(r.Context(), c.client(s), mr)
	if err != nil {
		if code, _ := apiError(err); code == http.StatusForbidden || code == http.StatusUnauthorized {
			c.failed(w, r, s, err)
			return
		}
		c.log.Warn("console: image registration refused", "err", err)
		w.WriteHeader(http.StatusUnprocessableEntity)
		c.render(w, r, "error", s, map[string]any{"Title": "Registration refused", "Code": http.StatusUnprocessableEntity, "Error": errMsg(err)})
		return
	}
	c.log.Info("console: image registered", "image", img.ID, "name", img.Name, "version", img.Version, "token", s.tokenID)
	c.redirectFlash(w, r, s, "/ui/images/"+url.PathEscape(img.ID), "registered "+img.Name+" "+img.Version)
}

// receiveBuild reads the manifest part, streams each file part into its
// blob, checks that every manifest file is then held whole, and registers.
func (c *Console) receiveBuild(ctx context.Context, cl *api.Client, mr *multipart.Reader) (api.Image, error) {
	p, err := mr.NextPart()
	if err != nil || p.FormName() != "manifest" {
		return api.Image{}, errors.New("register: the manifest.json of the osim-ips build output comes first")
	}
	raw, err := io.ReadAll(io.LimitReader(p, maxManifestBytes+1))
	if err != nil {
		return api.Image{}, fmt.Errorf("register: reading the manifest: %w", err)
	}
	if len(raw) > maxManifestBytes {
		return api.Image{}, fmt.Errorf("register: the manifest is over %d bytes", maxManifestBytes)
	}
	var m ipsManifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return api.Image{}, fmt.Errorf("register: %s is not an osim-ips manifest: %v", p.FileName(), err)
	}
	if m.Tool != "osim-ips" || m.Name == "" || len(m.Files) == 0 {
		return api.Image{}, fmt.Errorf("register: %s is not an osim-ips manifest (tool %q, name %q, %d files)", p.FileName(), m.Tool, m.Name, len(m.Files))
	}
	byName := map[string]api.ImageFile{}
	for i, f := range m.Files {
		if !api.ValidSHA256(f.SHA256) || f.Size < 0 || f.Name == "" || path.Base(f.Name) != f.Name {
			return api.Image{}, fmt.Errorf("register: the manifest's files[%d] (%q): want a plain file name, a size and a sha256 of 64 hex digits", i, f.Name)
		}
		byName[f.Name] = f
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return api.Image{}, fmt.Errorf("register: reading the upload: %w", err)
		}
		if p.FormName() != "files" || p.FileName() == "" {
			continue
		}
		name := path.Base(strings.ReplaceAll(p.FileName(), "\\", "/"))
		f, ok := byName[name]
		if !ok {
			if name == "manifest.json" {
				continue // chosen with the files: already read
			}
			return api.Image{}, fmt.Errorf("register: %s is not a file of this build's manifest", name)
		}
		if err := streamBlob(ctx, cl, f, p); err != nil {
			return api.Image{}, err
		}
	}
	for _, f := range m.Files {
		st, err := cl.BlobStatus(ctx, f.SHA256)
		if err != nil || !st.Complete {
			return api.Image{}, fmt.Errorf("register: %s (%s) was not uploaded: choose every file of the build output folder", f.Name, f.SHA256[:12])
		}
	}
	return cl.CreateImage(ctx, m.spec())
}

// streamBlob writes one file part into its blob, resuming after what the
// manager already holds (a blob another image shares is skipped), and
// checks the bytes against the manifest's size and sha256.
func streamBlob(ctx context.Context, cl *api.Client, f api.ImageFile, r io.Reader) error {
	var have int64
	st, err := cl.BlobStatus(ctx, f.SHA256)
	switch {
	case err == nil && st.Complete:
		_, err := io.Copy(io.Discard, r)
		return err
	case err == nil:
		have = st.Received
	default:
		if code, _ := apiError(err); code != http.StatusNotFound {
			return err
		}
	}
	h := sha256.New()
	if _, err := io.CopyN(h, r, have); err != nil {
		return fmt.Errorf("register: %s: shorter than the %d bytes already uploaded", f.Name, have)
	}
	buf := make([]byte, uploadChunk)
	off := have
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if off+int64(n) > f.Size {
				return fmt.Errorf("register: %s is larger than the manifest's %d bytes", f.Name, f.Size)
			}
			h.Write(buf[:n])
			if _, err := cl.UploadBlobChunk(ctx, f.SHA256, f.Size, off, buf[:n]); err != nil {
				return fmt.Errorf("register: %s: %w", f.Name, err)
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("register: reading %s: %w", f.Name, err)
		}
	}
	if off != f.Size {
		return fmt.Errorf("register: %s is %d bytes, the manifest says %d", f.Name, off, f.Size)
	}
	if f.Size == 0 {
		if _, err := cl.UploadBlobChunk(ctx, f.SHA256, 0, 0, nil); err != nil {
			return fmt.Errorf("register: %s: %w", f.Name, err)
		}
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 {
		return fmt.Errorf("register: %s has sha256 %s, the manifest says %s", f.Name, sum, f.SHA256)
	}
	return nil
}
