package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kanadehq/kanade/store"
)

// TokenPrefix starts every API token, so that secret scanners and people
// recognise one.
const TokenPrefix = "kanade_"

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// randomText returns n random bytes as lower-case base32.
func randomText(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return strings.ToLower(b32.EncodeToString(b))
}

// HashSecret returns the SHA-256 (hex) under which a token or session id is stored.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewTokenRequest is what creating an API token needs.
type NewTokenRequest struct {
	Name      string
	Role      Role
	ExpiresIn time.Duration // 0: never
	By        string
	// FromCLI marks tokens created on the server host; the server audits them when it runs.
	FromCLI bool
}

// ErrInvalid is wrapped by errors about bad input.
var ErrInvalid = errors.New("invalid")

// FieldError is one problem with one field of a request; it wraps ErrInvalid.
type FieldError struct{ Field, Message string }

func (e *FieldError) Error() string        { return e.Field + ": " + e.Message }
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// FieldErrors returns the field problems joined in err.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var fe *FieldError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, FieldErrors(e)...)
		}
	} else if errors.As(err, &fe) {
		out = append(out, fe)
	}
	return out
}

// Validate names every problem with r.
func (r NewTokenRequest) Validate() error {
	var errs []error
	bad := func(field, msg string) { errs = append(errs, &FieldError{field, msg}) }
	if msg := checkTokenName(r.Name); msg != "" {
		bad("name", msg)
	}
	if r.Role < Viewer || r.Role > Admin {
		bad("role", "must be viewer, operator, approver or admin")
	}
	if r.ExpiresIn < 0 {
		bad("expires_in", "must not be negative")
	}
	return errors.Join(errs...)
}

// ReservedNames are the actors the server records for itself in the audit
// log: dev mode's caller, the rollout engine and enrollment ("kanade"),
// schedule fires ("scheduler"), a refused sign-in without a name
// ("anonymous"). An API token named like one would make its actions read
// as theirs, so none may take one (compared without case). Nor may a name
// start with "token " (kept free to mark token actors as such), and the
// characters allowed leave out the "@" of users' email addresses and the
// ":" of the CLI's "cli:user@host".
var ReservedNames = []string{"dev", "kanade", "scheduler", "anonymous", "system", "cli"}

// checkTokenName returns what is wrong with an API token's name, or "".
func checkTokenName(name string) string {
	n := strings.TrimSpace(name)
	switch {
	case n == "":
		return "must not be empty"
	case utf8.RuneCountInString(n) > 64:
		return "at most 64 characters"
	case strings.ContainsFunc(n, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ' ' || c == '-')
	}):
		return "may contain only letters A-Z and a-z, digits, spaces, dots, dashes and underscores"
	case len(n) >= len("token ") && strings.EqualFold(n[:len("token ")], "token "):
		return fmt.Sprintf("%q is reserved: a name may not start with \"token \"", n)
	}
	for _, r := range ReservedNames {
		if strings.EqualFold(n, r) {
			return fmt.Sprintf("%q is reserved for the server's own actions in the audit log; choose another name", n)
		}
	}
	return ""
}

// ParseLifetime reads a token lifetime: a Go duration ("720h") or a
// number of days ("90d").
func ParseLifetime(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err = fmt.Sscanf(n, "%d", &days); err == nil && fmt.Sprint(days) != n {
			err = errors.New("not a whole number of days")
		}
		d = time.Duration(days) * 24 * time.Hour
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration like 720h or 90d", s)
	}
	return d, nil
}

// CreateToken stores a new API token and returns it with its secret, which
// is shown once and never stored.
func CreateToken(ctx context.Context, st *store.Store, r NewTokenRequest, now time.Time) (store.APIToken, string, error) {
	if err := r.Validate(); err != nil {
		return store.APIToken{}, "", err
	}
	t := store.APIToken{ID: randomText(10), Name: strings.TrimSpace(r.Name), Role: r.Role.String(), CreatedAt: now,
		CreatedBy: r.By, AuditPending: r.FromCLI}
	if r.ExpiresIn > 0 {
		t.ExpiresAt = now.Add(r.ExpiresIn)
	}
	secret := TokenPrefix + randomText(32)
	if err := st.CreateAPIToken(ctx, t, HashSecret(secret)); err != nil {
		return store.APIToken{}, "", err
	}
	return t, secret, nil
}
