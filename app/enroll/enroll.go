// Package enroll gives agents their own NATS identity. An agent sends its
// public key, pc_id and an enrollment token over the shared enrollment
// credential; the server checks the token and the key, binds the pc_id to
// the key (held for an admin's approval unless the token auto-approves)
// and answers with a user credential naming the pc_id, which NATS then
// pins to that PC's own subjects. Admins approve, reject and revoke.
package enroll

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/events"
	"github.com/kanadehq/kanade/app/sign"
	"github.com/kanadehq/kanade/store"
)

// DefaultTokenID is the token written into DATA/agent-credentials.
const DefaultTokenID = "default"

// maxClockSkew bounds how old or new a signed request may be.
const maxClockSkew = 10 * time.Minute

// Service answers enrollment and renewal requests.
type Service struct {
	st   *store.Store
	b    *bus.Bus
	keys *sign.Keyring
	ev   *events.Broker
	log  *slog.Logger
	now  func() time.Time
	// RetryAfter is what pending agents are told to wait.
	RetryAfter time.Duration
	// Audit records decisions (nil records nothing).
	Audit *audit.Recorder
	// Lifetime is how long an issued credential is valid (at most
	// bus.AgentJWTLifetime, which bounds the revocation list).
	Lifetime time.Duration
}

// New returns a service; b must run the embedded broker.
func New(st *store.Store, b *bus.Bus, keys *sign.Keyring, ev *events.Broker, log *slog.Logger) *Service {
	return &Service{st: st, b: b, keys: keys, ev: ev, log: log, now: func() time.Time { return time.Now().UTC() }, RetryAfter: 10 * time.Second, Lifetime: bus.AgentJWTLifetime}
}

// Revocations are the keys the broker must refuse, for its start.
func Revocations(ctx context.Context, st *store.Store, now time.Time) ([]bus.Revocation, error) {
	keys, err := st.RevokedKeys(ctx, now.Add(-bus.AgentJWTLifetime-time.Hour))
	if err != nil {
		return nil, err
	}
	out := make([]bus.Revocation, 0, len(keys))
	for _, k := range keys {
		out = append(out, bus.Revocation{PublicKey: k.PublicKey, At: k.RevokedAt})
	}
	return out, nil
}

// HashSecret is how token secrets are stored.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewSecret returns a random token secret.
func NewSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "kanade-enroll-" + base64.RawURLEncoding.EncodeToString(b)
}

// Token block markers in the agent credentials file.
const (
	TokenBegin = "-----BEGIN KANADE ENROLLMENT TOKEN-----"
	TokenEnd   = "------END KANADE ENROLLMENT TOKEN------"
)

// WriteAgentCredentials makes sure the default token exists (its secret
// kept in DATA/secrets/enroll-token) and writes DATA/agent-credentials:
// the enrollment credential followed by the token. autoApprove says
// whether agents enrolling with it are approved without an admin.
func (s *Service) WriteAgentCredentials(ctx context.Context, dataDir string, autoApprove bool, groups []string) (string, error) {
	secretPath := filepath.Join(dataDir, bus.SecretsDir, "enroll-token")
	secret := ""
	if b, err := os.ReadFile(secretPath); err == nil {
		secret = strings.TrimSpace(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if secret == "" {
		secret = NewSecret()
		if err := os.WriteFile(secretPath, []byte(secret+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("write %s: %w", secretPath, err)
		}
	}
	tok := store.EnrollmentToken{ID: DefaultTokenID, Name: "Default (DATA/agent-credentials)", DefaultGroups: groups,
		AutoApprove: autoApprove, CreatedAt: s.now(), CreatedBy: "kanade"}
	if err := s.st.CreateEnrollmentToken(ctx, tok, HashSecret(secret)); err != nil {
		return "", err
	}
	body, err := s.AgentCredentialsFor(secret)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dataDir, "agent-credentials")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, body, 0o600); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// Run serves enrollment and renewal requests until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	nc := s.b.NC
	sub1, err := nc.QueueSubscribe(wire.EnrollSubject, "kanade-enroll", func(m *nats.Msg) {
		s.respond(m, s.handleEnroll(ctx, m.Data))
	})
	if err != nil {
		return err
	}
	defer sub1.Unsubscribe()
	sub2, err := nc.QueueSubscribe(wire.RenewWildcard, "kanade-enroll", func(m *nats.Msg) {
		s.respond(m, s.handleRenew(ctx, wire.LastToken(m.Subject)))
	})
	if err != nil {
		return err
	}
	defer sub2.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func (s *Service) respond(m *nats.Msg, r wire.EnrollReply) {
	b, _ := json.Marshal(r)
	if err := m.Respond(b); err != nil {
		s.log.Warn("enroll: reply", "err", err)
	}
}

func rejected(reason string) wire.EnrollReply {
	return wire.EnrollReply{Status: wire.EnrollRejected, Reason: reason}
}

func (s *Service) handleEnroll(ctx context.Context, data []byte) wire.EnrollReply {
	var req wire.EnrollRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return rejected("undecodable request")
	}
	req.Groups = wire.NormalizeGroups(req.Groups)
	if err := req.Validate(); err != nil {
		return rejected("invalid request: " + err.Error())
	}
	now := s.now()
	log := s.log.With("pc_id", req.PCID, "public_key", req.PublicKey)
	kp, err := nkeys.FromPublicKey(req.PublicKey)
	if err != nil || !nkeys.IsValidPublicUserKey(req.PublicKey) {
		return rejected("public_key is not a user key")
	}
	if kp.Verify(req.SigningBytes(), req.Signature) != nil {
		log.Warn("enroll: bad signature")
		return rejected("the signature does not match the public key")
	}
	if d := now.Sub(req.At); d > maxClockSkew || d < -maxClockSkew {
		return rejected("the request is too old or from the future; check the PC's clock")
	}
	tok, err := s.st.EnrollmentTokenBySecret(ctx, HashSecret(req.Token))
	if errors.Is(err, store.ErrNotFound) {
		log.Warn("enroll: unknown token")
		return rejected("the enrollment token is not valid")
	}
	if err != nil {
		log.Error("enroll", "err", err)
		return rejected("server error; try again")
	}
	if why := tok.Usable(now); why != "" {
		return rejected(why)
	}
	if revoked, err := s.st.KeyRevoked(ctx, req.PublicKey); err != nil || revoked {
		return rejected("this key was revoked; the agent must create a new key")
	}
	cur, err := s.st.AgentKey(ctx, req.PCID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		log.Error("enroll", "err", err)
		return rejected("server error; try again")
	case cur.PublicKey == req.PublicKey:
		switch cur.Status {
		case store.KeyApproved:
			return s.mint(ctx, cur) // the agent lost its credential: same key, new one
		case store.KeyPending:
			return wire.EnrollReply{Status: wire.EnrollPending, Reason: "waiting for an admin to approve", RetryAfter: wire.Duration(s.RetryAfter)}
		default:
			return rejected("enrollment " + cur.Status + ": " + cur.Reason)
		}
	case cur.Status == store.KeyApproved || cur.Status == store.KeyPending:
		log.Warn("enroll: pc_id bound to another key")
		return rejected(fmt.Sprintf("pc_id %s is already bound to another key; an admin must re-bind it", req.PCID))
	}
	k := store.AgentKey{PCID: req.PCID, PublicKey: req.PublicKey, Status: store.KeyPending, Hostname: req.Hostname,
		OS: req.OS, Arch: req.Arch, Groups: wire.NormalizeGroups(append(slices.Clone(tok.DefaultGroups), req.Groups...)),
		TokenID: tok.ID, RequestedAt: now}
	// A PC whose earlier key was revoked or rejected needs an admin again.
	if tok.AutoApprove && cur.PublicKey == "" {
		k.Status, k.DecidedAt, k.DecidedBy, k.Reason = store.KeyApproved, now, "token "+tok.ID, "approved by token "+tok.ID
	}
	if err := s.st.PutAgentKey(ctx, k); err != nil {
		log.Error("enroll", "err", err)
		return rejected("server error; try again")
	}
	if err := s.st.CountTokenUse(ctx, tok.ID); err != nil {
		log.Error("enroll", "err", err)
	}
	s.ev.Publish(events.Enrollments)
	log.Info("enrollment request", "status", k.Status, "token", tok.ID, "groups", k.Groups)
	if k.Status != store.KeyApproved {
		return wire.EnrollReply{Status: wire.EnrollPending, Reason: "waiting for an admin to approve", RetryAfter: wire.Duration(s.RetryAfter)}
	}
	return s.mint(ctx, k)
}

// mint signs a fresh credential for an approved key.
func (s *Service) mint(ctx context.Context, k store.AgentKey) wire.EnrollReply {
	expiry := s.now().Add(min(s.Lifetime, bus.AgentJWTLifetime))
	j, err := s.b.ID.MintAgent(k.PublicKey, k.PCID, k.Groups, expiry)
	if err != nil {
		s.log.Error("enroll: mint", "pc_id", k.PCID, "err", err)
		return rejected("server error; try again")
	}
	k.JWTExpiresAt = expiry
	if err := s.st.PutAgentKey(ctx, k); err != nil {
		s.log.Error("enroll", "err", err)
		return rejected("server error; try again")
	}
	return wire.EnrollReply{Status: wire.EnrollApproved, JWT: j, Groups: k.Groups, Expiry: expiry, CommandKeys: s.keys.Trusted()}
}

// handleRenew re-mints the credential of an enrolled agent. Only that
// agent's own credential may publish on its renewal subject.
func (s *Service) handleRenew(ctx context.Context, pc string) wire.EnrollReply {
	k, err := s.st.AgentKey(ctx, pc)
	if err != nil || k.Status != store.KeyApproved {
		return rejected("not enrolled")
	}
	return s.mint(ctx, k)
}

// Approve lets a pending (or rejected) agent in; its next request gets a credential.
func (s *Service) Approve(ctx context.Context, pc, by string) error {
	k, err := s.st.AgentKey(ctx, pc)
	if err != nil {
		return err
	}
	if k.Status == store.KeyRevoked {
		return fmt.Errorf("%w: the key of %s was revoked; the agent must enroll with a new key", ErrState, pc)
	}
	k.Status, k.DecidedAt, k.DecidedBy, k.Reason = store.KeyApproved, s.now(), by, "approved by "+by
	if err := s.st.PutAgentKey(ctx, k); err != nil {
		return err
	}
	s.ev.Publish(events.Enrollments)
	s.log.Info("enrollment approved", "pc_id", pc, "by", by)
	_ = s.Audit.Record(ctx, by, audit.EnrollmentApprove, pc, map[string]any{"public_key": k.PublicKey, "groups": k.Groups, "hostname": k.Hostname})
	return nil
}

// ErrState reports an action that does not fit the enrollment's state.
var ErrState = errors.New("conflict")

// Reject refuses a pending agent.
func (s *Service) Reject(ctx context.Context, pc, by string) error {
	k, err := s.st.AgentKey(ctx, pc)
	if err != nil {
		return err
	}
	if k.Status != store.KeyPending {
		return fmt.Errorf("%w: %s is %s, not pending", ErrState, pc, k.Status)
	}
	k.Status, k.DecidedAt, k.DecidedBy, k.Reason = store.KeyRejected, s.now(), by, "rejected by "+by
	if err := s.st.PutAgentKey(ctx, k); err != nil {
		return err
	}
	s.ev.Publish(events.Enrollments)
	_ = s.Audit.Record(ctx, by, audit.EnrollmentReject, pc, map[string]any{"public_key": k.PublicKey, "hostname": k.Hostname})
	return nil
}

// Revoke cuts an agent off: its key is added to the account's revocations
// and pushed to the broker, which drops the connection at once; the key can
// never connect or enroll again.
func (s *Service) Revoke(ctx context.Context, pc, by string) error {
	now := s.now()
	k, err := s.st.RevokeAgentKey(ctx, pc, by, now)
	if err != nil {
		return err
	}
	revs, err := Revocations(ctx, s.st, now)
	if err != nil {
		return err
	}
	if err := s.b.UpdateAccount(ctx, revs); err != nil {
		return err
	}
	s.ev.Publish(events.Enrollments)
	s.log.Info("agent revoked", "pc_id", pc, "by", by)
	_ = s.Audit.Record(ctx, by, audit.AgentRevoke, pc, map[string]any{"public_key": k.PublicKey})
	return nil
}

// TokenRequest describes a new enrollment token.
type TokenRequest struct {
	Name          string
	DefaultGroups []string
	ExpiresIn     time.Duration // 0: never
	MaxUses       int           // 0: unlimited
	AutoApprove   bool
	By            string
}

// CreateToken makes an enrollment token and returns its secret, which is
// shown once: only its hash is stored.
func (s *Service) CreateToken(ctx context.Context, r TokenRequest) (store.EnrollmentToken, string, error) {
	var ps []string
	r.Name = strings.TrimSpace(r.Name)
	if r.Name == "" || len(r.Name) > 100 {
		ps = append(ps, "name: give the token a name of at most 100 characters")
	}
	r.DefaultGroups = wire.NormalizeGroups(r.DefaultGroups)
	for _, g := range r.DefaultGroups {
		if err := wire.ValidateGroup(g); err != nil {
			ps = append(ps, "default_groups: "+err.Error())
		}
	}
	if r.ExpiresIn < 0 || r.MaxUses < 0 {
		ps = append(ps, "expires_in and max_uses must not be negative")
	}
	if len(ps) > 0 {
		return store.EnrollmentToken{}, "", fmt.Errorf("%w: %s", ErrInvalid, strings.Join(ps, "; "))
	}
	now := s.now()
	t := store.EnrollmentToken{ID: tokenID(), Name: r.Name, DefaultGroups: r.DefaultGroups, AutoApprove: r.AutoApprove,
		MaxUses: r.MaxUses, CreatedAt: now, CreatedBy: r.By}
	if r.ExpiresIn > 0 {
		t.ExpiresAt = now.Add(r.ExpiresIn)
	}
	secret := NewSecret()
	if err := s.st.CreateEnrollmentToken(ctx, t, HashSecret(secret)); err != nil {
		return store.EnrollmentToken{}, "", err
	}
	s.log.Info("enrollment token created", "id", t.ID, "name", t.Name, "by", r.By)
	_ = s.Audit.Record(ctx, r.By, audit.TokenCreate, t.ID, map[string]any{"name": t.Name, "default_groups": t.DefaultGroups,
		"auto_approve": t.AutoApprove, "max_uses": t.MaxUses, "expires_at": t.ExpiresAt})
	return t, secret, nil
}

// ErrInvalid reports a bad request.
var ErrInvalid = errors.New("invalid")

func tokenID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "tok-" + hex.EncodeToString(b)
}

// AgentCredentialsFor is the credentials file for a token secret: what an
// admin hands to the PCs that should enroll with it.
func (s *Service) AgentCredentialsFor(secret string) ([]byte, error) {
	creds, err := s.b.ID.EnrollCreds()
	if err != nil {
		return nil, err
	}
	return append(creds, []byte("\n"+TokenBegin+"\n"+secret+"\n"+TokenEnd+"\n")...), nil
}

// SetGroups changes an agent's groups. An enrolled agent gets a re-minted
// credential pushed on control.pc.<pc> (signed), follows it at once and
// reconnects, so NATS itself lets it read the new groups' commands and
// no longer the old ones'. An agent that is offline fetches it when it
// reconnects.
func (s *Service) SetGroups(ctx context.Context, pc string, groups []string, by string) ([]string, error) {
	groups = wire.NormalizeGroups(groups)
	for _, g := range groups {
		if err := wire.ValidateGroup(g); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	if err := s.st.SetGroups(ctx, pc, groups); err != nil {
		return nil, err
	}
	s.ev.Publish(events.Agents)
	s.log.Info("agent groups changed", "pc_id", pc, "groups", groups, "by", by)
	_ = s.Audit.Record(ctx, by, audit.AgentGroups, pc, map[string]any{"groups": groups})
	k, err := s.st.AgentKey(ctx, pc)
	if errors.Is(err, store.ErrNotFound) || (err == nil && k.Status != store.KeyApproved) {
		return groups, nil
	}
	if err != nil {
		return nil, err
	}
	rep := s.mint(ctx, k)
	if rep.Status != wire.EnrollApproved {
		return nil, fmt.Errorf("re-mint the credential of %s: %s", pc, rep.Reason)
	}
	body, err := json.Marshal(wire.Control{Kind: wire.ControlCredential, Credential: &rep})
	if err != nil {
		return nil, err
	}
	if err := s.b.NC.PublishMsg(s.keys.Msg(wire.ControlPCSubject(pc), body, s.now())); err != nil {
		return nil, fmt.Errorf("push the new credential: %w", err)
	}
	return groups, nil
}
