package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDCConfig says where users sign in and how their claims become a role.
type OIDCConfig struct {
	Issuer, ClientID, ClientSecret, RedirectURL string
	Scopes                                      []string
	// RolesClaim names the claim whose values map to roles ("groups";
	// a dotted path reaches nested claims, e.g. "realm_access.roles").
	RolesClaim string
	// NameClaim names the claim recorded as the actor; empty:
	// preferred_username, then email, then name, then upn, and the
	// subject only when the issuer sends none of them (see NameClaims).
	NameClaim string
	// RoleMap maps claim values to roles; the highest match wins.
	RoleMap map[string]Role
	// DefaultRole is given to users no value maps; RoleNone refuses them.
	DefaultRole Role
	// HTTPClient talks to the issuer (nil: http.DefaultClient).
	HTTPClient *http.Client
}

// Identity is a user the issuer vouched for.
type Identity struct {
	Subject, Name, Display, Email string
	// Values are the RolesClaim values, Role what they map to.
	Values []string
	Role   Role
}

// OIDC signs users in with an OpenID Connect issuer (authorization code
// flow with PKCE, state and nonce). The issuer is discovered on first use,
// so the server starts even while the issuer is unreachable.
type OIDC struct {
	cfg OIDCConfig

	mu       sync.Mutex
	provider *oidc.Provider
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// NewOIDC returns a client for cfg; discovery happens on first use.
func NewOIDC(cfg OIDCConfig) *OIDC {
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "profile", "email"}
	}
	if !slices.Contains(cfg.Scopes, oidc.ScopeOpenID) {
		cfg.Scopes = append([]string{oidc.ScopeOpenID}, cfg.Scopes...)
	}
	return &OIDC{cfg: cfg}
}

func (o *OIDC) ctx(ctx context.Context) context.Context {
	if o.cfg.HTTPClient != nil {
		return oidc.ClientContext(ctx, o.cfg.HTTPClient)
	}
	return ctx
}

// discover fetches the issuer's metadata once it is reachable.
func (o *OIDC) discover(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return nil
	}
	p, err := oidc.NewProvider(o.ctx(ctx), o.cfg.Issuer)
	if err != nil {
		return fmt.Errorf("oidc: discovering %s: %w", o.cfg.Issuer, err)
	}
	o.provider = p
	o.oauth = oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, RedirectURL: o.cfg.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: o.cfg.Scopes}
	o.verifier = p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID})
	return nil
}

// Check discovers the issuer now (the server calls it at start to warn early).
func (o *OIDC) Check(ctx context.Context) error { return o.discover(ctx) }

// Issuer is the configured issuer URL.
func (o *OIDC) Issuer() string { return o.cfg.Issuer }

// LoginURL is where the browser goes to sign in.
func (o *OIDC) LoginURL(ctx context.Context, state, nonce, verifier string) (string, error) {
	if err := o.discover(ctx); err != nil {
		return "", err
	}
	return o.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), nil
}

// ErrLogin is wrapped by every reason a sign-in is refused.
var ErrLogin = errors.New("sign-in failed")

// Exchange redeems the code, verifies the ID token and its nonce, and
// maps the user's claims to a role. A user who maps to no role gets an
// Identity (for the message and the audit log) and an error wrapping
// ErrNoRole.
func (o *OIDC) Exchange(ctx context.Context, code, verifier, nonce string) (Identity, error) {
	if err := o.discover(ctx); err != nil {
		return Identity{}, err
	}
	tok, err := o.oauth.Exchange(o.ctx(ctx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Identity{}, fmt.Errorf("%w: exchanging the code: %w", ErrLogin, err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return Identity{}, fmt.Errorf("%w: the issuer returned no id_token", ErrLogin)
	}
	idt, err := o.verifier.Verify(o.ctx(ctx), raw)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: verifying the id_token: %w", ErrLogin, err)
	}
	if idt.Nonce != nonce {
		return Identity{}, fmt.Errorf("%w: the id_token's nonce does not match this sign-in", ErrLogin)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("%w: reading claims: %w", ErrLogin, err)
	}
	if o.needsUserInfo(claims) {
		o.addUserInfo(ctx, tok, idt.Subject, claims)
	}
	id := o.identity(idt.Subject, claims)
	if id.Role == RoleNone {
		return id, fmt.Errorf("%w: %w", ErrLogin, ErrNoRole)
	}
	return id, nil
}

// ErrNoRole: the user signed in but none of their claim values maps to a role.
var ErrNoRole = errors.New("no kanade role for this user")

// NameClaims are the claims that name a user when name_claim is not set,
// in the order they are tried: a person's user name, then their email,
// then their full name. The subject (an opaque id such as "id1") is the
// last resort; it is kept in the session and the sign-in's audit detail.
var NameClaims = []string{"preferred_username", "email", "name", "upn"}

// needsUserInfo reports whether the ID token lacks what names the user or
// carries their roles: many issuers put the profile, email and group
// claims only in the UserInfo response unless configured otherwise.
func (o *OIDC) needsUserInfo(claims map[string]any) bool {
	if o.cfg.RolesClaim != "" && claimAt(claims, o.cfg.RolesClaim) == nil {
		return true
	}
	if o.cfg.NameClaim != "" {
		return claimString(claims, o.cfg.NameClaim) == ""
	}
	for _, k := range NameClaims {
		if claimString(claims, k) != "" {
			return false
		}
	}
	return true
}

// addUserInfo completes claims with the issuer's UserInfo response: a
// claim the ID token carries is kept. A response about another subject is
// not used (OpenID Connect Core 5.3.2), and an issuer without the endpoint
// or one that fails leaves the claims as they are: the sign-in goes ahead
// with what the verified ID token says.
func (o *OIDC) addUserInfo(ctx context.Context, tok *oauth2.Token, subject string, claims map[string]any) {
	ui, err := o.provider.UserInfo(o.ctx(ctx), oauth2.StaticTokenSource(tok))
	if err != nil || ui.Subject != subject {
		return
	}
	var extra map[string]any
	if ui.Claims(&extra) != nil {
		return
	}
	for k, v := range extra {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
}

// identity builds the Identity from verified claims.
func (o *OIDC) identity(subject string, claims map[string]any) Identity {
	id := Identity{Subject: subject, Email: claimString(claims, "email")}
	if o.cfg.NameClaim != "" {
		id.Name = claimString(claims, o.cfg.NameClaim)
	}
	for _, k := range NameClaims {
		if id.Name == "" {
			id.Name = claimString(claims, k)
		}
	}
	if id.Name == "" {
		id.Name = subject
	}
	id.Display = claimString(claims, "name")
	if id.Display == "" {
		id.Display = id.Name
	}
	id.Values = claimValues(claims, o.cfg.RolesClaim)
	id.Role = MapRole(id.Values, o.cfg.RoleMap, o.cfg.DefaultRole)
	return id
}

// MapRole returns the highest role any value maps to, or def.
func MapRole(values []string, m map[string]Role, def Role) Role {
	best := RoleNone
	for _, v := range values {
		if r, ok := m[v]; ok && r > best {
			best = r
		}
	}
	if best == RoleNone {
		return def
	}
	return best
}

// claimAt follows a dotted path through nested claim objects; a key that
// itself contains dots is found first.
func claimAt(claims map[string]any, path string) any {
	if v, ok := claims[path]; ok {
		return v
	}
	head, rest, ok := strings.Cut(path, ".")
	if !ok {
		return nil
	}
	sub, _ := claims[head].(map[string]any)
	if sub == nil {
		return nil
	}
	return claimAt(sub, rest)
}

func claimString(claims map[string]any, path string) string {
	s, _ := claimAt(claims, path).(string)
	return strings.TrimSpace(s)
}

// claimValues reads a claim that is a list of strings, one string, or
// space- or comma-separated strings.
func claimValues(claims map[string]any, path string) []string {
	if path == "" {
		return nil
	}
	var out []string
	switch v := claimAt(claims, path).(type) {
	case string:
		out = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok && s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}
