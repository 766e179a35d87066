package enroll

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// CheckSecret lets a token download the agent exactly while it may
// enroll PCs, and says why not otherwise.
func TestCheckSecret(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	tok, err := f.svc.CheckSecret(ctx, f.file.Token)
	if err != nil || tok.ID != DefaultTokenID {
		t.Fatalf("default token: %+v %v", tok, err)
	}
	for _, bad := range []string{"", "kanade-enroll-nope", f.file.Token + "x"} {
		if _, err := f.svc.CheckSecret(ctx, bad); !errors.Is(err, ErrUnknownToken) {
			t.Errorf("CheckSecret(%q) = %v, want ErrUnknownToken", bad, err)
		}
	}

	revoked, _ := f.issue(t, TokenRequest{Name: "revoked", By: "alice"})
	if err := f.svc.RevokeToken(ctx, revoked.Token.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	once, _ := f.issue(t, TokenRequest{Name: "once", MaxUses: 1, By: "alice"})
	if _, err := f.svc.CheckSecret(ctx, once.Secret); err != nil {
		t.Fatalf("unused one-PC token: %v", err)
	}
	if err := f.st.CountTokenUse(ctx, once.Token.ID); err != nil {
		t.Fatal(err)
	}
	day, _ := f.issue(t, TokenRequest{Name: "day", ExpiresIn: 24 * time.Hour, By: "alice"})
	if _, err := f.svc.CheckSecret(ctx, day.Secret); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	start := time.Now().UTC()
	f.svc.now = func() time.Time { return start.Add(25 * time.Hour) }
	for _, tc := range []struct{ secret, why string }{
		{revoked.Secret, "revoked"}, {once.Secret, "used up"}, {day.Secret, "expired"},
	} {
		_, err := f.svc.CheckSecret(ctx, tc.secret)
		if !errors.Is(err, ErrTokenUnusable) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s token: %v", tc.why, err)
		}
	}
}

// DefaultBundle is DATA/agent-credentials as last written, also after a
// rotation; BundleSecret reads the secret back out of any bundle.
func TestDefaultBundle(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	b, err := f.svc.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	onDisk, _ := os.ReadFile(f.creds)
	if !bytes.Equal(b, onDisk) {
		t.Fatal("DefaultBundle differs from DATA/agent-credentials")
	}
	if s, err := BundleSecret(b); err != nil || s != f.file.Token {
		t.Fatalf("BundleSecret = %q, %v", s, err)
	}
	if err := f.svc.RotateDefault(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	rotated, err := f.svc.DefaultBundle()
	if err != nil || bytes.Equal(rotated, b) {
		t.Fatalf("after rotation: %v (same bundle: %v)", err, bytes.Equal(rotated, b))
	}
	s, _ := BundleSecret(rotated)
	if _, err := f.svc.CheckSecret(ctx, s); err != nil {
		t.Errorf("the rotated secret: %v", err)
	}
	if _, err := f.svc.CheckSecret(ctx, f.file.Token); !errors.Is(err, ErrUnknownToken) {
		t.Errorf("the old secret after rotation: %v", err)
	}

	is, _ := f.issue(t, TokenRequest{Name: "n", By: "alice"})
	if s, err := BundleSecret(is.Bundle); err != nil || s != is.Secret {
		t.Errorf("BundleSecret of a created token = %q, %v", s, err)
	}
	for _, bad := range [][]byte{nil, []byte("no token here"), []byte(TokenBegin + "\n \n" + TokenEnd)} {
		if _, err := BundleSecret(bad); err == nil {
			t.Errorf("BundleSecret(%q) succeeded", bad)
		}
	}
}

// A service that never wrote the default bundle says so.
func TestDefaultBundle_NotWritten(t *testing.T) {
	s := &Service{}
	if _, err := s.DefaultBundle(); !errors.Is(err, ErrState) {
		t.Errorf("DefaultBundle = %v, want ErrState", err)
	}
}
