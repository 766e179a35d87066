package enroll

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kanadehq/kanade/store"
)

// ErrUnknownToken reports a secret that belongs to no enrollment token.
var ErrUnknownToken = errors.New("the enrollment token is not valid")

// ErrTokenUnusable reports a token that is revoked, expired or used up.
var ErrTokenUnusable = errors.New("enrollment token unusable")

// CheckSecret returns the token a secret belongs to when that token may
// still enroll PCs (so it may also download the agent): ErrUnknownToken
// when none, ErrTokenUnusable (with the reason) when revoked, expired or
// used up.
func (s *Service) CheckSecret(ctx context.Context, secret string) (store.EnrollmentToken, error) {
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return store.EnrollmentToken{}, ErrUnknownToken
	}
	tok, err := s.st.EnrollmentTokenBySecret(ctx, HashSecret(secret))
	if errors.Is(err, store.ErrNotFound) {
		return store.EnrollmentToken{}, ErrUnknownToken
	}
	if err != nil {
		return store.EnrollmentToken{}, err
	}
	if why := tok.Usable(s.now()); why != "" {
		return tok, fmt.Errorf("%w: %s", ErrTokenUnusable, why)
	}
	return tok, nil
}

// DefaultBundle returns the default token's bundle, DATA/agent-credentials,
// as WriteAgentCredentials (or RotateDefault) last wrote it.
func (s *Service) DefaultBundle() ([]byte, error) {
	s.bundleMu.Lock()
	defer s.bundleMu.Unlock()
	if s.dataDir == "" {
		return nil, fmt.Errorf("%w: no default enrollment bundle was written", ErrState)
	}
	b, err := os.ReadFile(filepath.Join(s.dataDir, "agent-credentials"))
	if err != nil {
		return nil, fmt.Errorf("default enrollment bundle: %w", err)
	}
	return b, nil
}

// BundleSecret returns the token secret a bundle carries.
func BundleSecret(bundle []byte) (string, error) {
	i, j := bytes.Index(bundle, []byte(TokenBegin)), bytes.Index(bundle, []byte(TokenEnd))
	if i < 0 || j < i {
		return "", errors.New("the enrollment bundle has no token")
	}
	secret := strings.TrimSpace(string(bundle[i+len(TokenBegin) : j]))
	if secret == "" {
		return "", errors.New("the enrollment bundle's token is empty")
	}
	return secret, nil
}
