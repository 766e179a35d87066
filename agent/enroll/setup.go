package enroll

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
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
	if !ok || len(c.CommandKeys) == 0 {
		c, err = Enroll(ctx, url, f, kp, r, log)
		if err != nil {
			return Identity{}, err
		}
		if err := SaveCredential(dataDir, c); err != nil {
			return Identity{}, fmt.Errorf("save credential: %w", err)
		}
	}
	k := NewKeeper(kp, c, dataDir, r.PCID, log)
	return Identity{Option: k.Option(), Groups: c.Groups, Enrolled: true, Renew: k.Run, Keeper: k}, nil
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
