package manager

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
)

// SecretPrefix starts every token secret.
const SecretPrefix = "osim_"

var secretEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewSecret returns a fresh token secret: "osim_" and 32 random bytes in
// lower-case base32.
func NewSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("manager: token secret: %w", err)
	}
	return SecretPrefix + strings.ToLower(secretEncoding.EncodeToString(b[:])), nil
}

// HashSecret is what the store keeps of a secret: hex sha256.
func HashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func newTokenID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("manager: token id: %w", err)
	}
	return "tok-" + hex.EncodeToString(b[:]), nil
}

// MintToken makes a token of role for a boot server (bootServer may be
// empty) without storing it: the stored form and the info carrying the
// secret, shown once.
func MintToken(role, name, bootServer string, now time.Time) (mdb.Token, api.TokenInfo, error) {
	secret, err := NewSecret()
	if err != nil {
		return mdb.Token{}, api.TokenInfo{}, err
	}
	id, err := newTokenID()
	if err != nil {
		return mdb.Token{}, api.TokenInfo{}, err
	}
	info := api.TokenInfo{ID: id, Role: role, Name: name, BootServer: bootServer, Created: now.UTC()}
	stored := mdb.Token{TokenInfo: info, Hash: HashSecret(secret)}
	info.Secret = secret
	return stored, info, nil
}

// Join token defaults and bounds (api.TokenRequest documents them).
const (
	DefaultJoinUses = 1
	MaxJoinUses     = 10000
	DefaultJoinTTL  = 24 * time.Hour
	MaxJoinTTL      = 30 * 24 * time.Hour
)

// CreateToken stores a new token of role with name (a label), for the
// roles that need nothing more: a join token needs a site (NewToken).
func CreateToken(ctx context.Context, store Store, role, name string, now time.Time) (api.TokenInfo, error) {
	return NewToken(ctx, store, api.TokenRequest{Role: role, Name: name}, now)
}

// NewToken stores the token req asks for (any of api.Roles but
// boot-server, which only registration makes) and returns it with its
// secret. A join token is bound to req.Site (and req.Name, if given),
// admits req.Uses registrations (DefaultJoinUses) and expires after
// req.TTL (DefaultJoinTTL).
func NewToken(ctx context.Context, store Store, req api.TokenRequest, now time.Time) (api.TokenInfo, error) {
	role, name := req.Role, req.Name
	if !slices.Contains(api.Roles, role) {
		return api.TokenInfo{}, fmt.Errorf("role: %q is not one of %s: %w", role, strings.Join(api.Roles, ", "), mdb.ErrInvalid)
	}
	if role == api.RoleBootServer {
		return api.TokenInfo{}, fmt.Errorf("role: boot-server tokens are made by registering a boot server (POST /api/v1/bootservers/register with a join token): %w", mdb.ErrInvalid)
	}
	if name != "" && !api.ValidName(name) {
		return api.TokenInfo{}, fmt.Errorf("name: %q is not valid (1-63 of A-Z a-z 0-9 . _ -): %w", name, mdb.ErrInvalid)
	}
	stored, info, err := MintToken(role, name, "", now)
	if err != nil {
		return api.TokenInfo{}, err
	}
	if err := bindJoin(&stored.TokenInfo, req, now); err != nil {
		return api.TokenInfo{}, err
	}
	info.Site, info.Uses, info.Expires = stored.Site, stored.Uses, stored.Expires
	if err := store.CreateToken(ctx, stored); err != nil {
		return api.TokenInfo{}, err
	}
	return info, nil
}

// bindJoin sets a join token's site, uses and expiry from req; other
// roles take none of them.
func bindJoin(t *api.TokenInfo, req api.TokenRequest, now time.Time) error {
	if t.Role != api.RoleJoin {
		if req.Site != "" || req.Uses != 0 || req.TTL != "" {
			return fmt.Errorf("site, uses and ttl are for join tokens only, not %s: %w", t.Role, mdb.ErrInvalid)
		}
		return nil
	}
	if req.Site == "" {
		return fmt.Errorf("site: is required: a join token registers boot servers of one site (osimctl tokens create --role join --site SITE): %w", mdb.ErrInvalid)
	}
	if !api.ValidName(req.Site) {
		return fmt.Errorf("site: %q is not a valid site name: %w", req.Site, mdb.ErrInvalid)
	}
	uses := req.Uses
	switch {
	case uses == 0:
		uses = DefaultJoinUses
	case uses < 0 || uses > MaxJoinUses:
		return fmt.Errorf("uses: %d is not in 1..%d: %w", uses, MaxJoinUses, mdb.ErrInvalid)
	}
	ttl := DefaultJoinTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > MaxJoinTTL {
			return fmt.Errorf("ttl: %q is not a duration in (0, %v] (e.g. 24h): %w", req.TTL, MaxJoinTTL, mdb.ErrInvalid)
		}
		ttl = d
	}
	t.Site, t.Uses, t.Expires = req.Site, uses, now.Add(ttl).UTC()
	return nil
}

// principal is the caller, as its token says.
type principal = api.TokenInfo

// authenticate finds the caller's token; on failure it has answered 401.
// There is no cache: a deleted token stops working at once.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*principal, bool) {
	h := r.Header.Get("Authorization")
	scheme, secret, _ := strings.Cut(h, " ")
	secret = strings.TrimSpace(secret)
	deny := func(msg string) (*principal, bool) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="osim"`)
		writeError(w, http.StatusUnauthorized, msg)
		return nil, false
	}
	switch {
	case h == "":
		return deny("missing Authorization: Bearer token")
	case !strings.EqualFold(scheme, "Bearer") || secret == "":
		return deny("Authorization must be \"Bearer <token>\"")
	case !strings.HasPrefix(secret, SecretPrefix):
		return deny("invalid token")
	}
	t, err := s.store.TokenByHash(r.Context(), HashSecret(secret))
	if errors.Is(err, mdb.ErrNotFound) {
		return deny("invalid token")
	}
	if err != nil {
		s.fail(w, r, fmt.Errorf("token lookup: %w", err))
		return nil, false
	}
	if !t.Expires.IsZero() && !s.now().Before(t.Expires) {
		return deny(fmt.Sprintf("token %s expired at %s", t.ID, t.Expires.UTC().Format(time.RFC3339)))
	}
	p := t.TokenInfo
	p.Secret = ""
	return &p, true
}
