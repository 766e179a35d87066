// Package enroll gives an agent its own NATS identity. The agent creates
// an nkey pair once (the seed never leaves the PC and is stored readable
// only by the agent's user), asks the server for a credential over the
// shared enrollment credential, keeps the credential it gets, and renews
// it before it expires.
package enroll

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/kanadehq/kanade/agent/wire"
)

// Files in the agent's data directory.
const (
	keyFile        = "identity.nk"
	credentialFile = "credential.json"
)

// Token block markers in an agent credentials file (see the server).
const (
	tokenBegin = "-----BEGIN KANADE ENROLLMENT TOKEN-----"
	tokenEnd   = "------END KANADE ENROLLMENT TOKEN------"
)

// IsEnrollmentFile reports whether a credentials file is the server's
// enrollment credential (rather than a ready identity).
func IsEnrollmentFile(b []byte) bool { return bytes.Contains(b, []byte(tokenBegin)) }

// EnrollmentFile is the parsed DATA/agent-credentials of the server.
type EnrollmentFile struct {
	JWT   string
	Seed  []byte
	Token string
	// CA is the broker's TLS CA (PEM) when the server serves TLS: the
	// agent then trusts only broker certificates it signed.
	CA []byte
}

// ParseEnrollmentFile reads the enrollment credential and its token.
func ParseEnrollmentFile(b []byte) (EnrollmentFile, error) {
	var f EnrollmentFile
	i, j := bytes.Index(b, []byte(tokenBegin)), bytes.Index(b, []byte(tokenEnd))
	if i < 0 || j < i {
		return f, errors.New("no enrollment token in the credentials file")
	}
	f.Token = strings.TrimSpace(string(b[i+len(tokenBegin) : j]))
	creds := b[:i]
	var err error
	if f.JWT, err = blockAfter(creds, "BEGIN NATS USER JWT"); err != nil {
		return f, err
	}
	seed, err := blockAfter(creds, "BEGIN USER NKEY SEED")
	if err != nil {
		return f, err
	}
	f.Seed = []byte(seed)
	if f.Token == "" {
		return f, errors.New("the enrollment token is empty")
	}
	if f.CA, err = certificates(b[j:]); err != nil {
		return f, err
	}
	return f, nil
}

// certificates returns the CERTIFICATE blocks of b as PEM (nil: none).
func certificates(b []byte) ([]byte, error) {
	var out []byte
	for {
		i := bytes.Index(b, []byte("-----BEGIN CERTIFICATE-----"))
		if i < 0 {
			break
		}
		blk, rest := pem.Decode(b[i:])
		if blk == nil {
			return nil, errors.New("the broker CA in the credentials file is not a readable PEM certificate")
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return nil, fmt.Errorf("the broker CA in the credentials file: %w", err)
		}
		out = append(out, pem.EncodeToMemory(blk)...)
		b = rest
	}
	return out, nil
}

// both applies two options.
func both(a, b nats.Option) nats.Option {
	return func(o *nats.Options) error {
		if err := a(o); err != nil {
			return err
		}
		return b(o)
	}
}

// blockAfter returns the line that follows a "-----BEGIN …-----" marker.
func blockAfter(b []byte, marker string) (string, error) {
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.Contains(l, marker) && i+1 < len(lines) {
			return strings.TrimSpace(lines[i+1]), nil
		}
	}
	return "", fmt.Errorf("no %q block in the credentials file", marker)
}

// LoadOrCreateKey returns the agent's key pair, creating it on first use.
func LoadOrCreateKey(dataDir string) (nkeys.KeyPair, error) {
	path := filepath.Join(dataDir, keyFile)
	if b, err := os.ReadFile(path); err == nil {
		return nkeys.FromSeed(bytes.TrimSpace(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	seed, _ := kp.Seed()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, append(seed, '\n')); err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	return kp, nil
}

// Credential is what the server issued.
type Credential struct {
	JWT    string    `json:"jwt"`
	Groups []string  `json:"groups"`
	Expiry time.Time `json:"expiry"`
	// CommandKeys sign the commands, kills and control messages this agent accepts.
	CommandKeys []wire.CommandKey `json:"command_keys"`
	// ReleaseKeys sign the release records of the binaries this agent
	// installs (self-update); none: it installs none.
	ReleaseKeys []wire.CommandKey `json:"release_keys,omitempty"`
}

// LoadCredential reads the stored credential; ok is false when there is
// none or it expired.
func LoadCredential(dataDir string, now time.Time) (Credential, bool) {
	var c Credential
	b, err := os.ReadFile(filepath.Join(dataDir, credentialFile))
	if err != nil || json.Unmarshal(b, &c) != nil || c.JWT == "" || !now.Before(c.Expiry) {
		return Credential{}, false
	}
	return c, true
}

// SaveCredential stores a credential (owner-only).
func SaveCredential(dataDir string, c Credential) error {
	b, _ := json.MarshalIndent(c, "", "  ")
	return writeFileAtomic(filepath.Join(dataDir, credentialFile), b)
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Request describes this agent to the server.
type Request struct {
	PCID, Hostname string
	Groups         []string
}

// Enroll asks the server for a credential, waiting while the request is
// pending approval, until it is approved, rejected or ctx ends.
func Enroll(ctx context.Context, url string, f EnrollmentFile, kp nkeys.KeyPair, r Request, log *slog.Logger) (Credential, error) {
	return enroll(ctx, url, f, kp, r, log, nats.RetryOnFailedConnect(true))
}

// enroll is Enroll with the connection's retry behaviour as an option: a
// first enrollment waits for the broker; a re-enrollment gives up on a
// broker that refuses the bundle, so that a replaced bundle is read.
func enroll(ctx context.Context, url string, f EnrollmentFile, kp nkeys.KeyPair, r Request, log *slog.Logger, connect nats.Option) (Credential, error) {
	kf, err := nkeys.FromSeed(f.Seed)
	if err != nil {
		return Credential{}, fmt.Errorf("enrollment credential: %w", err)
	}
	var mu sync.Mutex
	var lastErr string
	report := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil || err.Error() == lastErr {
			return
		}
		lastErr = err.Error()
		cause, hint := Diagnose(err)
		log.Error("cannot connect to the broker to enroll", "url", url, "err", err, "cause", string(cause), "what_to_do", hint)
	}
	tr := &trust{onFail: report}
	if err := tr.set(f.CA); err != nil {
		return Credential{}, err
	}
	nc, err := nats.Connect(url, nats.Name("kanade-agent enroll "+r.PCID), tr.option(),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { report(err) }),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			if s == nil {
				report(err)
			}
		}),
		nats.UserJWT(func() (string, error) { return f.JWT, nil }, kf.Sign),
		nats.CustomInboxPrefix(wire.EnrollInboxPrefix), nats.MaxReconnects(-1), connect)
	if err != nil {
		return Credential{}, fmt.Errorf("connect %s: %w", url, err)
	}
	defer nc.Close()
	pub, _ := kp.PublicKey()
	for {
		// A curve key of this request's own: the server seals its reply to
		// it, as every holder of the enrollment file can read the inbox.
		curve, err := nkeys.CreateCurveKeys()
		if err != nil {
			return Credential{}, err
		}
		curvePub, _ := curve.PublicKey()
		req := wire.EnrollRequest{Protocol: wire.ProtocolVersion, PCID: r.PCID, Hostname: r.Hostname, OS: runtime.GOOS,
			Arch: runtime.GOARCH, PublicKey: pub, Token: f.Token, Groups: r.Groups, At: time.Now().UTC(), ReplyKey: curvePub}
		req.Signature, err = kp.Sign(req.SigningBytes())
		if err != nil {
			return Credential{}, err
		}
		data, _ := json.Marshal(req)
		wait := 5 * time.Second
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		msg, err := nc.RequestWithContext(rctx, wire.EnrollSubject, data)
		cancel()
		if err == nil {
			rep, err := openReply(curve, msg.Data)
			if err != nil {
				return Credential{}, fmt.Errorf("enrollment reply: %w", err)
			}
			switch rep.Status {
			case wire.EnrollApproved:
				log.Info("enrolled", "groups", strings.Join(rep.Groups, ","), "expiry", rep.Expiry)
				if len(rep.CommandKeys) == 0 {
					return Credential{}, errors.New("enrollment reply without command keys")
				}
				return Credential{JWT: rep.JWT, Groups: rep.Groups, Expiry: rep.Expiry, CommandKeys: rep.CommandKeys, ReleaseKeys: rep.ReleaseKeys}, nil
			case wire.EnrollPending:
				log.Info("enrollment is waiting for an admin's approval (Pending agents page)", "public_key", pub)
				if rep.RetryAfter > 0 {
					wait = rep.RetryAfter.D()
				}
			default:
				return Credential{}, fmt.Errorf("enrollment refused: %s", rep.Reason)
			}
		} else if ctx.Err() == nil {
			log.Warn("enrollment request failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return Credential{}, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// openReply reads an enrollment reply, sealed to curve (or, from a
// server that does not seal, plain).
func openReply(curve nkeys.KeyPair, data []byte) (wire.EnrollReply, error) {
	var rep wire.EnrollReply
	var sealed wire.SealedReply
	if err := json.Unmarshal(data, &sealed); err == nil && len(sealed.Sealed) > 0 {
		plain, err := curve.Open(sealed.Sealed, sealed.From)
		if err != nil {
			return rep, fmt.Errorf("open the sealed reply: %w", err)
		}
		data = plain
	}
	err := json.Unmarshal(data, &rep)
	return rep, err
}

// Keeper holds the agent's current credential, authenticates its NATS
// connection with it and renews it before it expires.
type Keeper struct {
	kp       nkeys.KeyPair
	dataDir  string
	pcID     string
	log      *slog.Logger
	mu       sync.Mutex
	cred     Credential
	obtained time.Time
	// rec, when set, lets the keeper enroll again after the broker
	// refused its credential (ConnError).
	rec *recovery
}

// NewKeeper returns a keeper for an issued credential.
func NewKeeper(kp nkeys.KeyPair, c Credential, dataDir, pcID string, log *slog.Logger) *Keeper {
	return &Keeper{kp: kp, cred: c, obtained: time.Now(), dataDir: dataDir, pcID: pcID, log: log}
}

// Credential returns the current credential.
func (k *Keeper) Credential() Credential {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cred
}

// Keys returns the trusted command keys.
func (k *Keeper) Keys() []wire.CommandKey { return k.Credential().CommandKeys }

// ReleaseKeys returns the trusted release keys.
func (k *Keeper) ReleaseKeys() []wire.CommandKey { return k.Credential().ReleaseKeys }

// SetReleaseKeys replaces the trusted release keys (after a signed
// rotation announcement).
func (k *Keeper) SetReleaseKeys(keys []wire.CommandKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.cred
	c.ReleaseKeys = keys
	if err := SaveCredential(k.dataDir, c); err != nil {
		return err
	}
	k.cred = c
	return nil
}

// Refresh renews the credential now, which also fetches the current keys.
func (k *Keeper) Refresh(ctx context.Context, nc *nats.Conn) error { return k.renew(ctx, nc) }

// SetKeys replaces the trusted keys (after a signed rotation announcement).
func (k *Keeper) SetKeys(keys []wire.CommandKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.cred
	c.CommandKeys = keys
	if err := SaveCredential(k.dataDir, c); err != nil {
		return err
	}
	k.cred = c
	return nil
}

// Option authenticates a connection with the current credential, also on
// every reconnect.
func (k *Keeper) Option() nats.Option {
	return nats.UserJWT(func() (string, error) { return k.Credential().JWT, nil }, k.kp.Sign)
}

// Run renews the credential when a third of its lifetime is left, and
// retries every minute (or sooner, close to expiry) after a failure.
func (k *Keeper) Run(ctx context.Context, nc *nats.Conn) {
	var kick chan Cause
	if k.rec != nil {
		kick = k.rec.kick
	}
	for {
		k.mu.Lock()
		c, obtained := k.cred, k.obtained
		k.mu.Unlock()
		renewAt := obtained.Add(c.Expiry.Sub(obtained) * 2 / 3)
		t := time.NewTimer(time.Until(renewAt))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case cause := <-kick:
			t.Stop()
			k.reenroll(ctx, cause)
			continue
		case <-t.C:
		}
		for {
			err := k.renew(ctx, nc)
			if err == nil {
				break
			}
			k.log.Warn("credential renewal failed; will retry", "err", err)
			retry := min(time.Minute, max(time.Second, time.Until(c.Expiry)/10))
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
		}
	}
}

func (k *Keeper) renew(ctx context.Context, nc *nats.Conn) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	msg, err := nc.RequestWithContext(rctx, wire.RenewSubject(k.pcID), []byte("{}"))
	if err != nil {
		return err
	}
	var rep wire.EnrollReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return err
	}
	if err := k.SetCredential(rep); err != nil {
		return err
	}
	k.log.Info("credential renewed", "expiry", rep.Expiry)
	return nil
}

// SetCredential stores a credential the server issued (a renewal, or a
// re-mint pushed after the agent's groups changed).
func (k *Keeper) SetCredential(rep wire.EnrollReply) error {
	if rep.Status != wire.EnrollApproved || rep.JWT == "" {
		return fmt.Errorf("credential refused: %s", rep.Reason)
	}
	c := Credential{JWT: rep.JWT, Groups: rep.Groups, Expiry: rep.Expiry, CommandKeys: rep.CommandKeys, ReleaseKeys: rep.ReleaseKeys}
	if len(c.CommandKeys) == 0 {
		c.CommandKeys = k.Keys()
	}
	if len(c.ReleaseKeys) == 0 {
		c.ReleaseKeys = k.ReleaseKeys()
	}
	if err := SaveCredential(k.dataDir, c); err != nil {
		return err
	}
	k.mu.Lock()
	k.cred, k.obtained = c, time.Now()
	k.mu.Unlock()
	return nil
}

// Groups are the groups of the current credential.
func (k *Keeper) Groups() []string { return k.Credential().Groups }
