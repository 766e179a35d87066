package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gorilla/sessions"

	"github.com/kanadehq/kanade/store"
)

// Cookie names.
const (
	SessionCookie = "kanade_session"
	LoginCookie   = "kanade_login"
)

// loginTTL bounds how long a user may take at the issuer's sign-in page.
const loginTTL = 10 * time.Minute

// touchEvery is how stale last-seen (session) and last-used (token) times
// may get, so that busy callers do not write on every request.
const touchEvery = time.Minute

// Config configures a Service.
type Config struct {
	// OIDC signs users in; nil is dev mode (no sign-in, callers without a
	// token act as the admin "dev").
	OIDC *OIDC
	// Lifetime is how long a session lasts from sign-in; IdleTimeout ends
	// it earlier after that long without a request.
	Lifetime, IdleTimeout time.Duration
	// SecureCookies marks cookies Secure (sent over HTTPS only); they are
	// also Secure on any request that came over TLS.
	SecureCookies bool
	// Keys are the cookie keys: 64 bytes to sign, then 32 to encrypt (KeyFile).
	Keys []byte
	Now  func() time.Time
	Log  *slog.Logger
}

// Service authenticates requests and runs the sign-in flow.
type Service struct {
	cfg     Config
	st      *store.Store
	session *sessions.CookieStore
	login   *sessions.CookieStore
	// csrfKey keys the CSRF tokens (derived from the cookie signing key).
	csrfKey []byte
}

// KeySize is the length of the cookie key material.
const KeySize = 96

// New returns the service.
func New(st *store.Store, cfg Config) (*Service, error) {
	if len(cfg.Keys) != KeySize {
		return nil, fmt.Errorf("auth: cookie keys must be %d bytes", KeySize)
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return time.Now().UTC() }
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Lifetime <= 0 || cfg.IdleTimeout <= 0 {
		return nil, errors.New("auth: session lifetime and idle timeout must be positive")
	}
	mk := func(maxAge time.Duration) *sessions.CookieStore {
		cs := sessions.NewCookieStore(cfg.Keys[:64], cfg.Keys[64:])
		cs.Options = &sessions.Options{Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: cfg.SecureCookies}
		cs.MaxAge(int(maxAge / time.Second))
		return cs
	}
	kdf := hmac.New(sha256.New, cfg.Keys[:64])
	kdf.Write([]byte("kanade csrf tokens"))
	return &Service{cfg: cfg, st: st, session: mk(cfg.Lifetime), login: mk(loginTTL), csrfKey: kdf.Sum(nil)}, nil
}

// Secure reports whether cookies set in answer to r get the Secure
// attribute: when configured (the server's external URL is https), and on
// any request that came over TLS.
func (s *Service) Secure(r *http.Request) bool { return s.cfg.SecureCookies || r.TLS != nil }

// CSRFToken returns the CSRF token bound to binding (a session's id hash,
// or a random value the browser keeps in a cookie): an HMAC under a key
// derived from the cookie signing key, so that nobody computes one without
// the key and a token taken from one session fails in any other.
func (s *Service) CSRFToken(binding string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(binding))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckCSRF reports whether token is the CSRF token of binding.
func (s *Service) CheckCSRF(binding, token string) bool {
	return token != "" && hmac.Equal([]byte(token), []byte(s.CSRFToken(binding)))
}

// saveCookie saves sess with the Secure attribute r calls for.
func (s *Service) saveCookie(w http.ResponseWriter, r *http.Request, sess *sessions.Session) error {
	opts := *sess.Options
	opts.Secure = s.Secure(r)
	sess.Options = &opts
	return sess.Save(r, w)
}

// DevMode reports whether nobody signs in.
func (s *Service) DevMode() bool { return s.cfg.OIDC == nil }

// LoadKeys reads the cookie keys from path, creating them (owner-only)
// on first use. Replacing the file signs every user out.
func LoadKeys(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != KeySize {
			return nil, fmt.Errorf("auth: %s: want %d bytes, found %d (delete it to make new keys; everyone signs in again)", path, KeySize, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("auth: %w", err)
	}
	b = make([]byte, KeySize)
	_, _ = rand.Read(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return b, nil
}

// ErrUnauthorized is wrapped by every reason a credential is refused.
var ErrUnauthorized = errors.New("unauthorized")

// Authenticate identifies the caller of r: a bearer token, else a session
// cookie, else (dev mode) the admin "dev". It returns nil when nobody is
// signed in, and an error wrapping ErrUnauthorized when a presented token
// is not valid. An expired or ended session's cookie is cleared.
func (s *Service) Authenticate(w http.ResponseWriter, r *http.Request) (*Principal, error) {
	ctx := r.Context()
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, secret, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
			return nil, fmt.Errorf("%w: use the header \"Authorization: Bearer <token>\"", ErrUnauthorized)
		}
		return s.token(ctx, strings.TrimSpace(secret))
	}
	if p := s.sessionPrincipal(w, r); p != nil {
		return p, nil
	}
	if s.DevMode() {
		return &Principal{Kind: KindDev, Name: "dev", Display: "dev", Role: Admin, Subject: "dev"}, nil
	}
	return nil, nil
}

func (s *Service) token(ctx context.Context, secret string) (*Principal, error) {
	t, err := s.st.APITokenBySecret(ctx, HashSecret(secret))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown API token", ErrUnauthorized)
	}
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	if why := t.Usable(now); why != "" {
		return nil, fmt.Errorf("%w: %s", ErrUnauthorized, why)
	}
	role, err := ParseRole(t.Role)
	if err != nil {
		return nil, fmt.Errorf("%w: the API token has no valid role", ErrUnauthorized)
	}
	if now.Sub(t.LastUsedAt) >= touchEvery {
		if err := s.st.TouchAPIToken(ctx, t.ID, now); err != nil {
			s.cfg.Log.Warn("api token: recording use", "token", t.Name, "err", err)
		}
	}
	return &Principal{Kind: KindToken, Name: t.Name, Display: t.Name, Role: role, ID: t.ID, Subject: "token:" + t.ID}, nil
}

// sessionPrincipal returns the signed-in user, or nil.
func (s *Service) sessionPrincipal(w http.ResponseWriter, r *http.Request) *Principal {
	if s.DevMode() {
		return nil
	}
	if _, err := r.Cookie(SessionCookie); err != nil {
		return nil
	}
	sess, err := s.session.Get(r, SessionCookie)
	sid, _ := sess.Values["sid"].(string)
	if err != nil || sid == "" {
		s.clear(w, r) // undecodable: old keys or tampering
		return nil
	}
	hash := HashSecret(sid)
	ss, err := s.st.Session(r.Context(), hash)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.cfg.Log.Warn("session lookup", "err", err)
		} else {
			s.clear(w, r)
		}
		return nil
	}
	now := s.cfg.Now()
	if !now.Before(ss.ExpiresAt) || now.Sub(ss.LastSeenAt) >= s.cfg.IdleTimeout {
		_ = s.st.DeleteSession(r.Context(), hash)
		s.clear(w, r)
		return nil
	}
	role, err := ParseRole(ss.Role)
	if err != nil {
		return nil
	}
	if now.Sub(ss.LastSeenAt) >= touchEvery {
		if err := s.st.TouchSession(r.Context(), hash, now); err != nil {
			s.cfg.Log.Warn("session: recording activity", "err", err)
		}
	}
	return &Principal{Kind: KindUser, Name: ss.Name, Display: ss.Display, Role: role, ID: hash, Subject: userSubject(ss.Subject)}
}

// clear deletes the session cookie from the browser.
func (s *Service) clear(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: s.Secure(r)})
}

// BeginLogin remembers a new state, nonce and PKCE verifier in the login
// cookie and returns the issuer URL to send the browser to. next is where
// the user lands after signing in (a local path; anything else is "/").
func (s *Service) BeginLogin(w http.ResponseWriter, r *http.Request, next string) (string, error) {
	if s.DevMode() {
		return "/", nil
	}
	state, nonce, verifier := randomText(20), randomText(20), randomText(40)
	u, err := s.cfg.OIDC.LoginURL(r.Context(), state, nonce, verifier)
	if err != nil {
		return "", err
	}
	sess, _ := s.login.New(r, LoginCookie)
	sess.Values["state"], sess.Values["nonce"], sess.Values["verifier"], sess.Values["next"] = state, nonce, verifier, LocalPath(next)
	if err := s.saveCookie(w, r, sess); err != nil {
		return "", fmt.Errorf("auth: saving the login cookie: %w", err)
	}
	return u, nil
}

// LoginError is a refused sign-in: Identity is set when the issuer vouched
// for the user but no role maps to them.
type LoginError struct {
	Identity Identity
	Err      error
}

func (e *LoginError) Error() string { return e.Err.Error() }
func (e *LoginError) Unwrap() error { return e.Err }

// FinishLogin handles the issuer's redirect back: it checks the state,
// redeems the code, verifies the ID token and nonce, maps the role, then
// starts a new session (a new id: any earlier session cookie is
// replaced). It returns the identity and where to go next.
func (s *Service) FinishLogin(w http.ResponseWriter, r *http.Request) (Identity, string, error) {
	if s.DevMode() {
		return Identity{}, "/", &LoginError{Err: fmt.Errorf("%w: sign-in is not configured (dev mode)", ErrLogin)}
	}
	sess, err := s.login.Get(r, LoginCookie)
	state, _ := sess.Values["state"].(string)
	nonce, _ := sess.Values["nonce"].(string)
	verifier, _ := sess.Values["verifier"].(string)
	next, _ := sess.Values["next"].(string)
	// The login cookie is single-use.
	http.SetCookie(w, &http.Cookie{Name: LoginCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.Secure(r)})
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		msg := e
		if d := q.Get("error_description"); d != "" {
			msg += ": " + d
		}
		return Identity{}, "", &LoginError{Err: fmt.Errorf("%w: the identity provider said %q", ErrLogin, msg)}
	}
	if err != nil || state == "" {
		return Identity{}, "", &LoginError{Err: fmt.Errorf("%w: the sign-in took too long or started in another browser; try again", ErrLogin)}
	}
	if subtle.ConstantTimeCompare([]byte(state), []byte(q.Get("state"))) != 1 {
		return Identity{}, "", &LoginError{Err: fmt.Errorf("%w: the state does not match this sign-in; try again", ErrLogin)}
	}
	code := q.Get("code")
	if code == "" {
		return Identity{}, "", &LoginError{Err: fmt.Errorf("%w: the identity provider sent no code", ErrLogin)}
	}
	id, err := s.cfg.OIDC.Exchange(r.Context(), code, verifier, nonce)
	if err != nil {
		return id, "", &LoginError{Identity: id, Err: err}
	}
	if err := s.startSession(w, r, id); err != nil {
		return id, "", err
	}
	return id, LocalPath(next), nil
}

func (s *Service) startSession(w http.ResponseWriter, r *http.Request, id Identity) error {
	sid := randomText(32)
	now := s.cfg.Now()
	ss := store.Session{IDHash: HashSecret(sid), Subject: id.Subject, Name: id.Name, Display: id.Display, Email: id.Email,
		Role: id.Role.String(), CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.cfg.Lifetime)}
	// A session the browser still carried ends: one browser, one session.
	if old, err := s.session.Get(r, SessionCookie); err == nil {
		if osid, _ := old.Values["sid"].(string); osid != "" {
			_ = s.st.DeleteSession(r.Context(), HashSecret(osid))
		}
	}
	if err := s.st.CreateSession(r.Context(), ss); err != nil {
		return err
	}
	sess, _ := s.session.New(r, SessionCookie)
	sess.Values["sid"] = sid
	if err := s.saveCookie(w, r, sess); err != nil {
		return fmt.Errorf("auth: saving the session cookie: %w", err)
	}
	return nil
}

// Logout ends the caller's session (the row is deleted, so a copied cookie
// is worthless too) and clears the cookie.
func (s *Service) Logout(w http.ResponseWriter, r *http.Request) error {
	defer s.clear(w, r)
	sess, err := s.session.Get(r, SessionCookie)
	if err != nil {
		return nil
	}
	if sid, _ := sess.Values["sid"].(string); sid != "" {
		if err := s.st.DeleteSession(r.Context(), HashSecret(sid)); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// Prune deletes expired and idle sessions.
func (s *Service) Prune(ctx context.Context) (int, error) {
	now := s.cfg.Now()
	return s.st.DeleteSessionsBefore(ctx, now, now.Add(-s.cfg.IdleTimeout))
}

// LocalPath returns p when it is a path on this server, else "/": a
// sign-in never redirects to another site.
func LocalPath(p string) string {
	if p == "" || p[0] != '/' || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") {
		return "/"
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return p
}
