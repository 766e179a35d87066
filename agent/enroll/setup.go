package enroll

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Identity is how an agent authenticates once set up.
type Identity struct {
	// Option authenticates the agent's connection.
	Option nats.Option
	// Groups are the groups in the credential (nil for a static credential:
	// then the configured groups apply).
	Groups []string
	// Enrolled is true for a per-agent credential issued by the server.
	Enrolled bool
	// Renew keeps the credential fresh; nil for a static credential.
	Renew func(ctx context.Context, nc *nats.Conn)
	// Keeper verifies signed messages (nil for a static credential).
	Keeper *Keeper
}

// Setup turns the configured credentials file into the agent's identity.
// The server's enrollment credential (DATA/agent-credentials) makes the
// agent enroll once (waiting for approval if needed) and then use its own
// credential, kept in dataDir; a .creds or nkey seed file is used as is.
func Setup(ctx context.Context, url, credsPath, dataDir string, r Request, log *slog.Logger) (Identity, error) {
	b, err := os.ReadFile(credsPath)
	if err != nil {
		return Identity{}, fmt.Errorf("credentials: %w", err)
	}
	if !IsEnrollmentFile(b) {
		opt, err := staticOption(credsPath, b)
		return Identity{Option: opt}, err
	}
	f, err := ParseEnrollmentFile(b)
	if err != nil {
		return Identity{}, fmt.Errorf("credentials %s: %w", credsPath, err)
	}
	kp, err := LoadOrCreateKey(dataDir)
	if err != nil {
		return Identity{}, err
	}
	c, ok := LoadCredential(dataDir, time.Now())
	// A credential of another account than the bundle's (the server's
	// identity was re-created, or it moved endpoints to an account of
	// their own) cannot connect: enroll again with the same key.
	if ok && IssuerAccount(c.JWT) != IssuerAccount(f.JWT) {
		log.Info("the stored credential is for another broker account than the enrollment file; enrolling again")
		ok = false
	}
	if !ok || len(c.CommandKeys) == 0 {
		c, err = Enroll(ctx, url, f, kp, r, log)
		if err != nil {
			return Identity{}, err
		}
		if err := SaveCredential(dataDir, c); err != nil {
			return Identity{}, fmt.Errorf("save credential: %w", err)
		}
	}
	tr := &trust{}
	if err := tr.set(f.CA); err != nil {
		return Identity{}, fmt.Errorf("credentials %s: %w", credsPath, err)
	}
	k := NewKeeper(kp, c, dataDir, r.PCID, log)
	tr.onFail = k.ConnError
	k.rec = &recovery{url: url, credsPath: credsPath, req: r, trust: tr, kick: make(chan Cause, 1)}
	return Identity{Option: both(tr.option(), k.Option()), Groups: c.Groups, Enrolled: true, Renew: k.Run, Keeper: k}, nil
}

// IssuerAccount is the account a user JWT belongs to: the issuer account
// of a user signed by a signing key, else the issuer ("" when the JWT
// cannot be read). The signature is the broker's to check.
func IssuerAccount(userJWT string) string {
	parts := strings.Split(userJWT, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Issuer string `json:"iss"`
		NATS   struct {
			IssuerAccount string `json:"issuer_account"`
		} `json:"nats"`
	}
	if json.Unmarshal(b, &claims) != nil {
		return ""
	}
	if claims.NATS.IssuerAccount != "" {
		return claims.NATS.IssuerAccount
	}
	return claims.Issuer
}

func staticOption(path string, b []byte) (nats.Option, error) {
	if bytes.Contains(b, []byte("BEGIN NATS USER JWT")) {
		return nats.UserCredentials(path), nil
	}
	opt, err := nats.NkeyOptionFromSeed(path)
	if err != nil {
		return nil, fmt.Errorf("credentials %s: not an enrollment credential, a .creds file or an nkey seed: %w", path, err)
	}
	return opt, nil
}
